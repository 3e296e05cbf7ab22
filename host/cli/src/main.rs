//! The `wasmfn` command.

use clap::Parser;

/// Requests allocate and free many small objects across worker threads;
/// mimalloc does that with less contention than the system allocator
/// (measured in docs/performance.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = wasmfn::Cli::parse();
    match wasmfn::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
