//! The `wasmfn` command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = wasmfn::cli::Cli::parse();
    match wasmfn::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
