//! The `tuneflow` binary: parse the command line, run the command, map the result to an exit
//! code. Everything else lives in the library.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: it keeps freed memory for reuse, where glibc
/// returns it to the kernel and faults it back in on the next request (a third of a TPE
/// suggestion's time at 1,000 trials went to page faults).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // TUNEFLOW_LOG, else RUST_LOG, else warnings; colour only on a terminal without NO_COLOR.
    let filter = tracing_subscriber::EnvFilter::try_from_env("TUNEFLOW_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
    let cli = tuneflow::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: cannot start the async runtime: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    let exit = runtime.block_on(tuneflow::cli::run(cli));
    ExitCode::from(exit.code())
}
