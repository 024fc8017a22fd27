use anyhow::Result;

use super::Globals;
use crate::cli::DownArgs;
use crate::outcome::Outcome;
use crate::target;

pub async fn run(g: &Globals, args: DownArgs) -> Result<Outcome> {
    let DownArgs { target, volumes } = args;
    let docker = g.docker().await?;
    let r = target::down(target.into(), &docker, &g.project, volumes, &g.ui).await?;
    g.ui.success(&r.summary(&g.project));
    for note in r.left_elsewhere() {
        g.ui.warn(note);
    }
    Ok(Outcome::Success)
}
