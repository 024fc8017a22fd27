use std::process::ExitCode;

use clap::Parser;
use radar_deploy::{cli::Cli, outcome::EXIT_ERROR};

fn main() -> ExitCode {
    // clap exits with status 2 on a usage error, as docs/design.md §2 asks.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(radar_deploy::run(cli)) {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
