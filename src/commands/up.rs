use std::time::Duration;

use anyhow::Result;

use super::Globals;
use crate::cli::{Target, UpArgs};
use crate::config::Overrides;
use crate::outcome::Outcome;
use crate::{desired, engine, swarm, swarm_engine, verify};

pub async fn run(g: &Globals, args: UpArgs) -> Result<Outcome> {
    let UpArgs {
        target,
        ha,
        instances,
        timeout,
        no_verify,
        dry_run,
    } = args;
    let cfg = g.config(Overrides {
        ha,
        instances,
        ..Overrides::default()
    })?;
    let deployment = desired::build(&cfg);
    let docker = g.docker().await?;
    if target == Target::Swarm {
        let stack = swarm::build(&deployment);
        if dry_run {
            // What would change on the swarm; `render --target swarm` shows the whole stack.
            let plan = swarm_engine::plan(&docker, &stack, cfg.app.builder_image.as_str()).await?;
            print!("{plan}");
            return Ok(Outcome::Success);
        }
        let r = swarm_engine::up(
            &docker,
            &stack,
            Duration::from_secs(timeout),
            cfg.app.builder_image.as_str(),
            &g.ui,
        )
        .await?;
        g.ui.success(&format!(
            "{} is up on the swarm: {} services ({} created, {} updated, {} unchanged) ready in {:.1}s{}",
            stack.project,
            stack.services.len(),
            r.created,
            r.updated,
            r.unchanged,
            r.elapsed.as_secs_f64(),
            if r.nginx_reloaded { "; nginx reloaded for the new tasks" } else { "" }
        ));
        if no_verify {
            return Ok(Outcome::Success);
        }
        let report =
            swarm::verify::verify(&docker, &verify::Options::for_config(&cfg, None)).await?;
        print!("{}", verify::report::text(&report, &g.ui));
        return Ok(if report.passed {
            Outcome::Success
        } else {
            Outcome::ChecksFailed
        });
    }
    let opts = engine::UpOptions {
        timeout: Duration::from_secs(timeout),
        dry_run,
        app_builder_image: cfg.app.builder_image.to_string(),
    };
    let report = engine::up(&docker, &deployment, &opts, &g.ui).await?;
    if dry_run {
        return Ok(Outcome::Success);
    }
    g.ui.success(&format!(
        "{} is up: {} containers ready, {} step{} applied in {:.1}s",
        deployment.project,
        deployment.containers.len(),
        report.steps,
        if report.steps == 1 { "" } else { "s" },
        report.elapsed.as_secs_f64()
    ));
    if no_verify {
        return Ok(Outcome::Success);
    }
    // The stack is up; now prove it works. A failed check is exit 1, as with `verify`.
    let report = verify::run(&verify::Options::for_config(&cfg, Some(docker))).await?;
    print!("{}", verify::report::text(&report, &g.ui));
    Ok(if report.passed {
        Outcome::Success
    } else {
        Outcome::ChecksFailed
    })
}
