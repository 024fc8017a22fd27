use anyhow::Result;

use super::Globals;
use crate::cli::LogsArgs;
use crate::outcome::Outcome;
use crate::target;

pub async fn run(g: &Globals, args: LogsArgs) -> Result<Outcome> {
    let LogsArgs {
        target,
        service,
        follow,
        tail,
    } = args;
    let docker = g.docker().await?;
    target::logs(
        target.into(),
        &docker,
        &g.project,
        service.as_deref(),
        follow,
        tail,
    )
    .await?;
    Ok(Outcome::Success)
}
