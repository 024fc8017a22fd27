use anyhow::Result;

use super::Globals;
use crate::cli::LogsArgs;
use crate::outcome::Outcome;
use crate::target::{self, LogsOptions};

pub async fn run(g: &Globals, args: LogsArgs) -> Result<Outcome> {
    let LogsArgs {
        target,
        service,
        follow,
        tail,
    } = args;
    let docker = g.docker().await?;
    let opts = LogsOptions {
        service: service.as_deref(),
        follow,
        tail,
    };
    target::logs(target.into(), &docker, &g.project, &opts).await?;
    Ok(Outcome::Success)
}
