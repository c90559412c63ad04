//! Benchmarks that print their figures (calls, time, ratio to the bound, peak memory) for
//! `docs/PERFORMANCE.md`. Speed targets are checked here, not in timed unit tests.
//!
//! `cargo run --release -p orgsync-bench -- emulator` — emulator throughput.

mod emulator;
mod measure;

use anyhow::bail;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("emulator") => emulator::run(&args[1..]).await,
        _ => bail!("usage: orgsync-bench emulator [--users N] [--seconds S] [--concurrency C]"),
    }
}
