use std::time::Duration;

use anyhow::Result;

use super::Globals;
use crate::cli::{StatusArgs, StatusFormat};
use crate::outcome::Outcome;
use crate::{target, top, ui};

/// The span of traffic `status` sums up from nginx's log.
const LAST_MINUTE: Duration = Duration::from_secs(60);

pub async fn run(g: &Globals, args: StatusArgs) -> Result<Outcome> {
    let StatusArgs { target, format } = args;
    let docker = g.docker().await?;
    // With -v, connecting said it already.
    if format == StatusFormat::Text && g.ui.verbose == 0 {
        g.ui.info(&format!("daemon: {}", docker.describe()));
    }
    let target = target.into();
    let mut report = target::status(target, &docker, &g.project).await?;
    report.set_traffic(top::last(&docker, &g.project, target, LAST_MINUTE).await);
    match format {
        StatusFormat::Text => ui::out(&report.to_text(&g.ui))?,
        StatusFormat::Json => ui::out(&format!("{}\n", report.to_json()?))?,
    };
    Ok(Outcome::Success)
}
