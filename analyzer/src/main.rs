//! The `tidemark` command. Everything happens in the library (`tidemark_analyzer::cli`); this
//! file maps results to exit codes: 0 ok, 1 a check failed, 2 an error. A closed stdout (broken
//! pipe, e.g. `tidemark summary x.tmk | head`) is success.

use std::process::ExitCode;

use clap::Parser;
use tidemark_analyzer::cli::{self, Cli, EXIT_ERROR, EXIT_OK};

fn main() -> ExitCode {
    let args = match Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() { EXIT_ERROR } else { EXIT_OK };
            // If even this cannot be printed there is nothing left to report to.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) if cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidemark: error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
