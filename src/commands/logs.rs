use anyhow::Result;

use super::Globals;
use crate::cli::LogsArgs;
use crate::engine;
use crate::outcome::Outcome;

pub async fn run(g: &Globals, args: LogsArgs) -> Result<Outcome> {
    let LogsArgs {
        service,
        follow,
        tail,
    } = args;
    engine::logs(&g.project, service.as_deref(), follow, tail).await?;
    Ok(Outcome::Success)
}
