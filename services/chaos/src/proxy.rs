//! A TCP proxy in front of the gateways that injects network faults (F10).
