//! `orgsync`: keep address books and app user tables in step with a Google Workspace
//! directory. This binary is thin: it parses arguments (clap), loads configuration,
//! and calls the library crates. Exit codes are part of the interface (see README):
//! 0 all done, 1 some targets failed, 2 configuration or auth error, 3 stopped by the
//! safety guard, 4 another contacts run holds the lease (`--no-wait`).

mod cli;
mod commands;
mod exit;
mod progress;
mod store;

use clap::Parser;

/// mimalloc instead of glibc's allocator: a contacts run allocates and frees millions of
/// small strings across threads, where glibc spent a tenth of the CPU in `free` and
/// `malloc_consolidate` and kept freed arenas as resident memory (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transparent huge pages off for this process (and what it starts). mimalloc asks the
/// kernel for them, and a 2 MiB page with a few live objects on it stays resident whole:
/// at 10,000 people into 100 address books that was about 50 MB of a 250 MB peak
/// (docs/PERFORMANCE.md), for no measurable CPU gain. Redis advises the same for its
/// small-object heap (<https://redis.io/topics/latency>); the switch is `prctl`'s
/// `PR_SET_THP_DISABLE` (<https://man7.org/linux/man-pages/man2/prctl.2.html>).
fn no_transparent_huge_pages() {
    // Where the kernel refuses (a sandbox that filters prctl), only memory is at stake and
    // the user can do nothing about it: no warning on every command.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

fn main() -> std::process::ExitCode {
    no_transparent_huge_pages();
    let args = cli::Cli::parse();
    init_tracing(&args.global);
    // One TLS crypto provider for the whole process: if two rustls providers were ever
    // linked, rustls could not pick a default and would panic on first use
    // (https://docs.rs/rustls/latest/rustls/crypto/struct.CryptoProvider.html).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::Exit::Config.into();
        }
    };
    match runtime.block_on(commands::run(args)) {
        Ok(code) => code.into(),
        Err(err) => {
            let code = exit::classify(&err);
            eprintln!("error: {err:#}");
            code.into()
        }
    }
}

fn init_tracing(global: &cli::Global) {
    use tracing_subscriber::EnvFilter;
    let default = match global.verbose {
        0 => "warn,orgsync=info",
        1 => "info,orgsync=debug",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("ORGSYNC_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if global.log_json {
        builder.json().init();
    } else {
        builder.with_target(false).init();
    }
}
