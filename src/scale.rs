//! The `scale` operation: change the number of app instances of a running deployment with no
//! failed request (DESIGN.md §7), then remember the count in the env file so a later `up`
//! keeps it.
//!
//! Scaling is a plan like `up`'s, restricted to what scaling may do: add instances (they
//! become healthy before nginx's reload puts them in the upstream) and remove instances
//! (nginx's reload takes them out, its old workers finish what they sent them, then they are
//! stopped; the app drains on SIGTERM too). A running instance is never recreated: when the
//! deployment differs from the env file in anything else, `scale` refuses and says to run
//! `up`, which rolls such changes out. A removed instance's log volume is kept, like every
//! data volume (`down --volumes` deletes them); scaling up again reuses it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::apply::{self, ApplyOptions};
use crate::config::{self, Config, Origin, Overrides};
use crate::desired::{self, Deployment, Role};
use crate::docker::DockerClient;
use crate::endpoint::Endpoint;
use crate::lock::ProjectLock;
use crate::observed::{ContainerState, Observed};
use crate::plan::{self, Action, Plan};
use crate::ui::Ui;

pub struct ScaleOptions {
    pub env_file: PathBuf,
    pub project: String,
    pub instances: u32,
    /// The deadline of each wait.
    pub timeout: Duration,
    /// `--strict`: an unknown env-file variable is an error.
    pub strict: bool,
}

pub struct ScaleReport {
    pub project: String,
    pub from: usize,
    pub to: u32,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub elapsed: Duration,
    /// Where the new count was saved.
    pub env_file: PathBuf,
    /// APP_INSTANCES is also set in the process environment, which overrides the file.
    pub overridden_by_environment: bool,
}

/// The configuration with `n` instances, validated like `up --instances n`: the count's range
/// and APP_INSTANCES x DB_POOL_SIZE against POSTGRES_MAX_CONNECTIONS, named with the numbers.
pub fn config(opts: &ScaleOptions, ha: bool) -> Result<Config> {
    let inputs = config::Inputs::from_process(
        opts.env_file.clone(),
        opts.project.clone(),
        Overrides {
            ha,
            instances: Some(opts.instances),
            strict: opts.strict,
        },
    );
    config::resolve(&inputs).map_err(|mut e| {
        for p in &mut e.problems {
            if p.origin == Some(Origin::Flag("--instances")) {
                p.origin = Some(Origin::Flag("`scale N`"));
            }
        }
        e.into()
    })
}

pub async fn scale(endpoint: &Endpoint, opts: &ScaleOptions, ui: &Ui) -> Result<ScaleReport> {
    let t0 = Instant::now();
    // Validate first: a bad count is reported without touching Docker.
    let cfg = config(opts, false)?;
    for w in &cfg.warnings {
        ui.warn(&w.to_string());
    }
    let client = &DockerClient::connect(endpoint).await?;
    let _lock = ProjectLock::for_project(&client.endpoint.host, &opts.project, ui).await?;
    let observed = Observed::snapshot(client, &opts.project).await?;
    ensure_up(&opts.project, &observed)?;
    // The running deployment's HA mode, whether it came from the env file or `up --ha`.
    let ha = crate::status::runs_ha(observed.containers.iter().filter_map(|c| c.role()));
    let cfg = if ha && !cfg.ha_enabled {
        config(opts, true)?
    } else {
        cfg
    };
    let d = desired::build(&cfg);
    let plan = plan::plan(&d, &observed);
    only_scaling(&d, &plan)?;
    let from = observed
        .containers
        .iter()
        .filter(|c| c.role() == Some(Role::App.service()))
        .count();
    if plan.is_empty() {
        ui.detail(&plan.to_string());
    } else {
        ui.info(plan.to_string().trim_end());
    }
    let apply_opts = ApplyOptions {
        timeout: opts.timeout,
    };
    let run = apply::apply(client, &d, &plan, &apply_opts, ui);
    let applied = tokio::select! {
        r = run => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!(
            "interrupted: the stack is partly scaled; run `radar-deploy scale {}` again to finish",
            opts.instances
        )),
    };
    if let Err(e) = applied {
        let undone = roll_back_new_instances(client, &d, &plan).await;
        return Err(e.context(format!(
            "scale to {} failed; {undone}; the env file is unchanged",
            opts.instances
        )));
    }
    crate::envfile::set_var(&opts.env_file, "APP_INSTANCES", &opts.instances.to_string())
        .context("the deployment is scaled, but the new count could not be saved")?;
    let names = |f: fn(&Action) -> Option<&String>| -> Vec<String> {
        plan.steps
            .iter()
            .filter_map(|s| f(&s.action).cloned())
            .filter(|a| a.starts_with("app-"))
            .collect()
    };
    Ok(ScaleReport {
        project: opts.project.clone(),
        from,
        to: opts.instances,
        added: names(|a| match a {
            Action::Create { alias, .. } => Some(alias),
            _ => None,
        }),
        removed: names(|a| match a {
            Action::Remove { alias, .. } => Some(alias),
            _ => None,
        }),
        elapsed: t0.elapsed(),
        env_file: opts.env_file.clone(),
        overridden_by_environment: std::env::var_os("APP_INSTANCES").is_some(),
    })
}

/// `scale` changes a running deployment; it does not create one.
fn ensure_up(project: &str, observed: &Observed) -> Result<()> {
    let running = |role: Role| {
        observed
            .containers
            .iter()
            .any(|c| c.role() == Some(role.service()) && c.state == ContainerState::Running)
    };
    if !running(Role::Nginx) || !running(Role::App) {
        bail!(
            "project {project} is not up (no running nginx and app instances){}\n  fix: `radar-deploy up` deploys it (with --instances N for the count you want); `scale` changes a running deployment",
            if observed.containers.is_empty() {
                ": it has no containers"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// Scaling adds or removes instances and reloads nginx; anything else in the plan is a change
/// of configuration, which `up` rolls out.
fn only_scaling(d: &Deployment, plan: &Plan) -> Result<()> {
    let is_app = |name: &str| {
        d.containers
            .iter()
            .any(|c| c.role == Role::App && d.container_name(c) == name)
    };
    let other = plan.steps.iter().any(|s| match &s.action {
        Action::CreateVolume { volume, .. } => !volume.starts_with("app-"),
        Action::Create { name, .. } | Action::Start { name, .. } => !is_app(name),
        Action::Reload {
            alias, upstream, ..
        } => alias != "nginx" || upstream.is_some(),
        Action::Drain { .. } => false,
        Action::Remove { name, .. } => !name.starts_with(&format!("{}-app-", d.project)),
        _ => true,
    });
    if other {
        bail!(
            "the running deployment differs from the env file in more than the instance count, and `scale` never recreates a running instance; what `up` would do:\n{}\n  fix: run `radar-deploy up` to roll those changes out (one instance at a time), then scale",
            plan.to_string()
                .lines()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}

/// After a failed scale up: the new instances never joined the upstream when nginx was not
/// reloaded (its reload waits for all of them), so they go, and the deployment is as before.
async fn roll_back_new_instances(client: &DockerClient, d: &Deployment, plan: &Plan) -> String {
    let created: Vec<&str> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Create { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    if created.is_empty() {
        return "nothing was added".into();
    }
    let reloaded = match Observed::snapshot(client, &d.project).await {
        Ok(o) => d.containers_of(Role::Nginx).next().is_some_and(|n| {
            o.container(&d.container_name(n))
                .and_then(|c| c.reload_hash().map(str::to_string))
                == d.reload_hash(n)
        }),
        Err(_) => true,
    };
    if reloaded {
        return "nginx already serves the new instances, so they stay".into();
    }
    let mut removed = vec![];
    for name in created {
        if client.stop_and_remove(name, 30).await.is_ok() {
            removed.push(name.to_string());
        }
    }
    format!(
        "the new instances never joined the upstream and were removed ({})",
        removed.join(", ")
    )
}
