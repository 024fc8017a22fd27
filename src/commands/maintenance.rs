use anyhow::Result;

use super::Globals;
use crate::cli::{MaintenanceArgs, OnOff};
use crate::maintenance;
use crate::outcome::Outcome;

pub async fn run(g: &Globals, args: MaintenanceArgs) -> Result<Outcome> {
    let MaintenanceArgs { target, state } = args;
    maintenance::refuse_swarm(target.into(), "maintenance")?;
    let docker = g.docker().await?;
    let nginx = maintenance::nginx(&docker, &g.project).await?;
    let on = state == OnOff::On;
    let was = maintenance::set(&docker, &nginx, on).await?;
    let now = if on { "on" } else { "off" };
    let change = if was == on { "already" } else { "now" };
    g.ui.success(&format!(
        "maintenance mode {change} {now} for project {}{}",
        g.project,
        if on {
            ": nginx answers 503 with Retry-After to every request but /health"
        } else {
            ": requests reach the instances again"
        }
    ));
    Ok(Outcome::Success)
}
