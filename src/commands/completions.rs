use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::outcome::Outcome;
use crate::ui;

/// Writes the completion script to stdout, e.g.
/// `radar-deploy completions bash > /etc/bash_completion.d/radar-deploy`.
pub fn run(args: CompletionsArgs) -> Result<Outcome> {
    let CompletionsArgs { shell } = args;
    // Into memory first: `generate` panics when it cannot write (`completions bash | head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "radar-deploy", &mut script);
    ui::out(&String::from_utf8_lossy(&script))?;
    Ok(Outcome::Success)
}
