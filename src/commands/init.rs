use anyhow::Result;

use super::Globals;
use crate::cli::InitArgs;
use crate::envfile;
use crate::outcome::Outcome;

pub fn run(g: &Globals, args: InitArgs) -> Result<Outcome> {
    let InitArgs { force } = args;
    let privacy = envfile::init(&g.env_file, force)?;
    g.ui.success(&format!(
        "wrote {} ({privacy}) with newly generated secrets (not shown)",
        g.env_file.display()
    ));
    g.ui.info("next: `radar-deploy up` to deploy, or `radar-deploy render` to write the files");
    Ok(Outcome::Success)
}
