use anyhow::Result;

use super::Globals;
use crate::cli::{StatusArgs, StatusFormat, Target};
use crate::engine;
use crate::outcome::Outcome;

pub async fn run(g: &Globals, args: StatusArgs) -> Result<Outcome> {
    let StatusArgs { target, format } = args;
    let docker = g.docker().await?;
    // With -v, connecting said it already.
    if format == StatusFormat::Text && g.ui.verbose == 0 {
        g.ui.info(&format!("daemon: {}", docker.describe()));
    }
    if target == Target::Swarm {
        let report = crate::swarm_engine::status(&docker, &g.project).await?;
        match format {
            StatusFormat::Text => print!("{}", report.to_text(&g.ui)),
            StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        }
        return Ok(Outcome::Success);
    }
    let report = engine::status(&docker, &g.project).await?;
    match format {
        StatusFormat::Text => print!("{}", report.to_text(&g.ui)),
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(Outcome::Success)
}
