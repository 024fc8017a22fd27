use std::time::Duration;

use anyhow::Result;

use super::Globals;
use crate::cli::{StatusFormat, TopArgs};
use crate::outcome::Outcome;
use crate::{top, ui};

pub async fn run(g: &Globals, args: TopArgs) -> Result<Outcome> {
    let TopArgs {
        target,
        format,
        window,
    } = args;
    let docker = g.docker().await?;
    let window = Duration::from_secs(window);
    match format {
        StatusFormat::Json => {
            let screen = top::snapshot(&docker, &g.project, target.into(), window).await?;
            ui::out(&format!("{}\n", screen.to_json()?))?;
        }
        StatusFormat::Text => top::live(&docker, &g.project, target.into(), window, &g.ui).await?,
    }
    Ok(Outcome::Success)
}
