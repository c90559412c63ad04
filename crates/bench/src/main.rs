//! Benchmarks that print their figures (calls, time, ratio to the bound, peak memory) for
//! `docs/PERFORMANCE.md`. Speed targets are checked here, not in timed unit tests.
//!
//! `cargo run --release -p orgsync-bench -- emulator` — emulator throughput.
//! `cargo run --release -p orgsync-bench -- client` — client listing: calls, time, peak RSS.
//! `cargo run --release -p orgsync-bench -- contacts` — the contacts sync: calls vs bound, time, RSS.
//! `cargo run --release -p orgsync-bench -- contacts --quota [--adapt]` — the same under Google's
//! quota model with the shipped defaults: wall time vs the quota bound, 429s.
//! `cargo run --release -p orgsync-bench -- scim` — SCIM provisioning into scim2-server: first
//! sync and no-change requests vs bound, push latency through `serve`.
//! `cargo run --release -p orgsync-bench -- big` — peak memory of `orgsync` over 100,000 and
//! 500,000 directory users, per directory user.
//! `cargo run --release -p orgsync-bench -- serve` — users reconcile, change→row latency, pushes/s.
//! `cargo run --release -p orgsync-bench -- serve --phases contacts` — change→every address book
//! through the daemon under Google's quota model.

mod big;
mod client;
mod contacts;
mod contacts_quota;
mod emulator;
mod measure;
mod scim;
mod serve;
mod serve_contacts;

use anyhow::bail;

/// The same allocator as the `orgsync` binary, so the figures are the shipped binary's.
/// Built with `--no-default-features` the system allocator is used instead, for heap
/// profilers that hook `malloc` (heaptrack).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // As the `orgsync` binary does (see its main.rs), so the figures are the shipped
    // binary's; the emulator child, this binary re-executed, inherits it.
    #[cfg(target_os = "linux")]
    rustix::thread::disable_transparent_huge_pages(true)?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("emulator") => emulator::run(&args[1..]).await,
        Some("client") => client::run(&args[1..]).await,
        Some("contacts") => contacts::run(&args[1..]).await,
        Some("serve") => serve::run(&args[1..]).await,
        Some("scim") => scim::run(&args[1..]).await,
        Some("big") => big::run(&args[1..]).await,
        _ => bail!(
            "usage: orgsync-bench big [--users 100000,500000] [--limit L] [--contacts-users N] | scim [--users N] [--groups N] [--latency-ms MS] [--changes N] | emulator [--users N] [--seconds S] [--concurrency C] | client [--users N] [--contacts N] | contacts [--users 300,2000] [--targets N] [--latency-ms MS] [--concurrency C] | contacts --quota [--adapt] [--users 2000,10000] [--targets 400,100] [--latency-ms MS] [--quota-minute-secs S] | serve [--phases reconcile,latency,push,connections] [--postgres URL|none] [--reconcile-users N] [--latency-ms MS] [--changes N] [--concurrency C] [--spacing-ms MS] [--push-users N] [--seconds S] [--connections N] [--drain-latency-ms MS] [--rounds N] [--conn-count N] [--conn-parallel N] [--contacts-users 300,1000] [--contacts-changes N] [--contacts-burst N]"
        ),
    }
}
