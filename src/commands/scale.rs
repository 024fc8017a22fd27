use std::time::Duration;

use anyhow::Result;

use super::Globals;
use crate::cli::ScaleArgs;
use crate::outcome::Outcome;
use crate::scale::ScaleOptions;
use crate::target;

pub async fn run(g: &Globals, args: ScaleArgs) -> Result<Outcome> {
    let ScaleArgs {
        target,
        instances,
        timeout,
    } = args;
    let opts = ScaleOptions {
        env_file: g.env_file.clone(),
        project: g.project.clone(),
        instances,
        timeout: Duration::from_secs(timeout),
        strict: g.strict,
    };
    let r = target::scale(target.into(), &g.endpoint()?, &opts, &g.ui).await?;
    g.ui.success(&r.summary());
    for note in r.notes() {
        g.ui.info(&note);
    }
    Ok(Outcome::Success)
}
