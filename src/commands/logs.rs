use anyhow::Result;

use super::Globals;
use crate::cli::{LogsArgs, Target};
use crate::engine;
use crate::outcome::Outcome;

pub async fn run(g: &Globals, args: LogsArgs) -> Result<Outcome> {
    let LogsArgs {
        target,
        service,
        follow,
        tail,
    } = args;
    let docker = g.docker().await?;
    match target {
        Target::Single => {
            engine::logs(&docker, &g.project, service.as_deref(), follow, tail).await?
        }
        Target::Swarm => {
            crate::swarm_engine::logs(&docker, &g.project, service.as_deref(), follow, tail).await?
        }
    }
    Ok(Outcome::Success)
}
