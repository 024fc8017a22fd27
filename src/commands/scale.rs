use std::time::Duration;

use anyhow::Result;

use super::Globals;
use crate::cli::{ScaleArgs, Target};
use crate::config::Overrides;
use crate::outcome::Outcome;
use crate::scale::{self, ScaleOptions};
use crate::{desired, envfile, swarm, swarm_engine};

pub async fn run(g: &Globals, args: ScaleArgs) -> Result<Outcome> {
    let ScaleArgs {
        target,
        instances,
        timeout,
    } = args;
    if target == Target::Swarm {
        // The running stack's HA mode, whether it came from the env file or `up --ha`: the
        // app's spec (its Sentinel settings) must not change with the replica count.
        let docker = g.docker().await?;
        let ha = swarm_engine::deployed_with_ha(&docker, &g.project).await?;
        let cfg = g.config(Overrides {
            ha,
            instances: Some(instances),
            ..Overrides::default()
        })?;
        let stack = swarm::build(&desired::build(&cfg));
        let r = swarm_engine::scale(&docker, &stack, Duration::from_secs(timeout), &g.ui).await?;
        envfile::set_var(&g.env_file, "APP_INSTANCES", &instances.to_string())?;
        g.ui.success(&format!(
            "{}: {} → {instances} app tasks on the swarm in {:.1}s{}",
            stack.project,
            r.from,
            r.elapsed.as_secs_f64(),
            if r.nginx_reloaded {
                "; nginx reloaded for the new task set"
            } else {
                ""
            }
        ));
        g.ui.info(&format!(
            "saved APP_INSTANCES={instances} in {}",
            g.env_file.display()
        ));
        return Ok(Outcome::Success);
    }
    let opts = ScaleOptions {
        env_file: g.env_file.clone(),
        project: g.project.clone(),
        instances,
        timeout: Duration::from_secs(timeout),
        strict: g.strict,
    };
    let r = scale::scale(&g.endpoint()?, &opts, &g.ui).await?;
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
