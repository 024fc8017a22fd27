use anyhow::Result;

use super::Globals;
use crate::cli::{StatusArgs, StatusFormat};
use crate::outcome::Outcome;
use crate::target;

pub async fn run(g: &Globals, args: StatusArgs) -> Result<Outcome> {
    let StatusArgs { target, format } = args;
    let docker = g.docker().await?;
    // With -v, connecting said it already.
    if format == StatusFormat::Text && g.ui.verbose == 0 {
        g.ui.info(&format!("daemon: {}", docker.describe()));
    }
    let report = target::status(target.into(), &docker, &g.project).await?;
    match format {
        StatusFormat::Text => print!("{}", report.to_text(&g.ui)),
        StatusFormat::Json => println!("{}", report.to_json()?),
    }
    Ok(Outcome::Success)
}
