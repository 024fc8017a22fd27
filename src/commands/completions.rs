use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::outcome::Outcome;

/// Writes the completion script to stdout, e.g.
/// `radar-deploy completions bash > /etc/bash_completion.d/radar-deploy`.
pub fn run(args: CompletionsArgs) -> Result<Outcome> {
    let CompletionsArgs { shell } = args;
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "radar-deploy",
        &mut std::io::stdout(),
    );
    Ok(Outcome::Success)
}
