//! `seqline-check HISTORY`: reads a history file and prints the checks.

fn main() -> anyhow::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: seqline-check HISTORY.jsonl"))?;
    let events = seqline_checker::read_history(&path)?;
    println!("{} events", events.len());
    Ok(())
}
