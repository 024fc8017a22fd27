use std::time::Duration;

use anyhow::Result;

use super::Globals;
use crate::cli::ScaleArgs;
use crate::outcome::Outcome;
use crate::scale::{self, ScaleOptions};

pub async fn run(g: &Globals, args: ScaleArgs) -> Result<Outcome> {
    let ScaleArgs { instances, timeout } = args;
    let opts = ScaleOptions {
        env_file: g.env_file.clone(),
        project: g.project.clone(),
        instances,
        timeout: Duration::from_secs(timeout),
    };
    let r = scale::scale(&opts, &g.ui).await?;
    let change = match (r.added.is_empty(), r.removed.is_empty()) {
        (true, true) => "nothing to change".to_string(),
        (false, _) => format!("added {}", r.added.join(", ")),
        (true, false) => format!("removed {} (log volumes kept)", r.removed.join(", ")),
    };
    g.ui.success(&format!(
        "{}: {} → {} app instance{} ({change}) in {:.1}s, no running instance recreated",
        r.project,
        r.from,
        r.to,
        if r.to == 1 { "" } else { "s" },
        r.elapsed.as_secs_f64()
    ));
    g.ui.info(&format!(
        "saved APP_INSTANCES={} in {}, so a later `up` keeps {} instances",
        r.to,
        r.env_file.display(),
        r.to
    ));
    if r.overridden_by_environment {
        g.ui.info(
            "note: APP_INSTANCES is also set in the environment, which overrides the env file",
        );
    }
    Ok(Outcome::Success)
}
