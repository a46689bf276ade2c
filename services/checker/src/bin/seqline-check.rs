//! `seqline-check HISTORY [--bound-ms N] [--members FILE] [--witnesses N] [--json]`
//!
//! Reads a history file, runs every check and prints the report (as JSON with
//! `--json`). `--members` names a JSON object `{"conv": ["user", ...]}` of
//! members from conv_seq 0. Exits 1 when any check found an anomaly.

use anyhow::{bail, Context};
use seqline_checker::{check, read_history, CheckOptions};
use std::process::ExitCode;

fn main() -> anyhow::Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let mut opts = CheckOptions::default();
    let (mut path, mut json) = (None, false);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--bound-ms" => opts.convergence_bound_micros = value()?.parse::<u64>()? * 1000,
            "--witnesses" => opts.max_witnesses = value()?.parse()?,
            "--members" => {
                let file = value()?;
                let text = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
                opts.initial_members = serde_json::from_str(&text).with_context(|| format!("parsing {file}"))?;
            }
            "--json" => json = true,
            "-h" | "--help" => {
                println!("usage: seqline-check HISTORY [--bound-ms N] [--members FILE] [--witnesses N] [--json]");
                return Ok(ExitCode::SUCCESS);
            }
            _ if path.is_none() && !arg.starts_with('-') => path = Some(arg),
            _ => bail!("unexpected argument {arg}; see --help"),
        }
    }
    let Some(path) = path else {
        bail!("usage: seqline-check HISTORY [options]; see --help")
    };
    let events = read_history(&path)?;
    let report = check(&events, &opts);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
