//! A real `redis-server` on a free loopback port, killed on drop (the
//! process fixture of `seqline-testkit`, plus restarts on the same port).

use seqline_testkit::servers::{self, ServerProcess};

pub struct RedisServer {
    port: u16,
    process: ServerProcess,
}

impl RedisServer {
    /// Starts one on a free port and waits for it to answer PING.
    pub fn start() -> Self {
        let process = servers::redis();
        let port = process
            .addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port");
        Self { port, process }
    }

    /// Starts one on `port` (a restart reuses the old one's port).
    pub fn start_on(port: u16) -> Self {
        Self {
            port,
            process: servers::redis_on(port),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server and waits until it is gone.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Kills it and starts a fresh one on the same port (no data survives:
    /// persistence is off).
    pub fn restart(&mut self) {
        self.kill();
        *self = Self::start_on(self.port);
    }
}
