//! Executes a [`Plan`]; makes no decisions of its own.
//!
//! The converge steps run at once: every container waits until the containers its step is
//! `after` (by alias) are ready, so data stores start first, then the replica and Sentinels,
//! then the app instances, then nginx; containers with no dependency between them are created
//! and started in parallel. Every container of the desired state is waited for, changed or
//! not, so the converge part ends with the whole stack ready. Then the plan's sequence runs,
//! one step at a time: drains, removals and rolling replacements, in the plan's order.
//! Last, Docker's own verdict on every container with a healthcheck ([`docker_verdicts`]).
//! Every wait has its own deadline (`--timeout`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use futures_util::future::try_join_all;
use tokio::sync::watch;

use crate::desired::{Container, Deployment, Role};
use crate::docker::{self, DockerClient, Readiness};
use crate::observed::ContainerState;
use crate::plan::{Action, Plan, Step};
use crate::ui::Ui;

/// Log lines shown when a container does not become ready.
const FAILURE_LOG_LINES: u32 = 20;
/// How long nginx may take to start the workers of a new config after `nginx -s reload`.
const RELOAD_EFFECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the workers of a previous config may take to finish their requests: nginx's
/// `worker_shutdown_timeout` (templates/nginx.conf.j2) plus a margin; nginx closes what is
/// left at that point, so waiting longer would gain nothing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(35);
/// Grace period of a removed container: SIGTERM, then SIGKILL. The reference app drains in
/// at most 9 s.
const REMOVE_GRACE_SECS: u32 = 30;

pub struct ApplyOptions {
    /// The deadline of each wait.
    pub timeout: Duration,
}

pub async fn apply(
    client: &DockerClient,
    d: &Deployment,
    plan: &Plan,
    opts: &ApplyOptions,
    ui: &Ui,
) -> Result<()> {
    let started = Instant::now();
    // Network and volumes first, all at once: containers need them at creation.
    let mut prerequisites = Vec::new();
    for step in &plan.steps {
        match &step.action {
            Action::CreateNetwork { name } => prerequisites.push(Box::pin(async move {
                client.create_network(&d.project, name).await?;
                ui.detail(&format!("  created network {name}"));
                Ok::<_, anyhow::Error>(())
            })
                as std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>),
            Action::CreateVolume { volume, name } => prerequisites.push(Box::pin(async move {
                client.create_volume(&d.project, volume, name).await?;
                ui.detail(&format!("  created volume {name}"));
                Ok(())
            })),
            _ => {}
        }
    }
    try_join_all(prerequisites).await?;

    let ready: HashMap<&str, watch::Sender<bool>> = d
        .containers
        .iter()
        .map(|c| (c.alias.as_str(), watch::channel(false).0))
        .collect();
    let tasks = d
        .containers
        .iter()
        .map(|c| converge_container(client, d, plan, c, &ready, opts, ui, started));
    try_join_all(tasks).await?;

    for step in plan.sequence() {
        run_in_sequence(client, d, step, opts, ui).await?;
    }
    docker_verdicts(client, d, opts, ui).await
}

/// Waits for Docker's own verdict, `healthy`, on every container that has a healthcheck, as
/// `docker compose up --wait` does. The waits above run the healthcheck themselves so each
/// dependency is seen ready at once, seconds before Docker's next probe; but an operator who
/// runs `docker ps` (or a script that checks health) right after `up` must not see
/// `health: starting`. All at once, so the cost is at most one healthcheck interval (2 s,
/// `desired.rs`) after the last start (nginx's); API 1.41 has no `start_interval` to shorten
/// that first probe.
async fn docker_verdicts(
    client: &DockerClient,
    d: &Deployment,
    opts: &ApplyOptions,
    ui: &Ui,
) -> Result<()> {
    let t0 = Instant::now();
    let waits = d
        .containers
        .iter()
        .filter(|c| c.healthcheck.is_some())
        .map(|c| async move {
            let name = d.container_name(c);
            match client
                .wait_ready(&name, &Readiness::DockerHealthy, t0 + opts.timeout)
                .await
            {
                Ok(()) => Ok(()),
                Err(failure) => {
                    Err(not_ready_error(client, &name, &c.alias, failure, opts.timeout).await)
                }
            }
        });
    try_join_all(waits).await?;
    ui.detail(&format!(
        "  Docker reports every container healthy ({:.1}s after the last was ready)",
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// One step of the plan's sequence; the next starts only when it is done.
async fn run_in_sequence(
    client: &DockerClient,
    d: &Deployment,
    step: &Step,
    opts: &ApplyOptions,
    ui: &Ui,
) -> Result<()> {
    match &step.action {
        Action::StartNext {
            name,
            alias,
            next_alias,
            replaces,
        } => {
            let c = d
                .containers
                .iter()
                .find(|c| &c.alias == alias)
                .ok_or_else(|| anyhow!("{alias} is not part of the desired state"))?;
            client
                .create_container_as(d, c, name, std::slice::from_ref(next_alias))
                .await?;
            upload_files(client, d, c, name).await?;
            client.start(name).await?;
            let t0 = Instant::now();
            if let Err(failure) = client
                .wait_ready(name, &Readiness::of(c), t0 + opts.timeout)
                .await
            {
                let err = not_ready_error(client, name, alias, failure, opts.timeout).await;
                // Roll back: the replacement never joined the upstream, so removing it
                // touches no request; the instance it was to replace keeps serving.
                let removed = match client.stop_and_remove(name, REMOVE_GRACE_SECS).await {
                    Ok(()) => format!("{name} was removed"),
                    Err(e) => {
                        format!("removing {name} failed too ({e}); `radar-deploy up` removes it")
                    }
                };
                return Err(err.context(format!(
                    "rolling update stopped: the replacement of {alias} did not become healthy; {removed}, {replaces} keeps serving with its old configuration (instances replaced before it keep their new one)"
                )));
            }
            ui.info(&format!(
                "  {} {alias}'s replacement {name} ready ({:.1}s)",
                ui.green("✓"),
                t0.elapsed().as_secs_f64()
            ));
        }
        Action::Reload {
            name,
            upstream,
            alias,
        } => {
            let c = d
                .containers
                .iter()
                .find(|c| &d.container_name(c) == name)
                .ok_or_else(|| anyhow!("{alias} is not part of the desired state"))?;
            let variant = upstream.as_ref().map(|hosts| d.with_upstream(hosts));
            reload(client, variant.as_ref().unwrap_or(d), c, name, ui).await?;
            ui.detail(&format!("  reloaded {name}: {}", step.reason));
        }
        Action::Drain {
            name, instances, ..
        } => {
            let t0 = Instant::now();
            drain(client, name, ui).await?;
            ui.detail(&format!(
                "  drained {} ({:.1}s)",
                instances.join(", "),
                t0.elapsed().as_secs_f64()
            ));
        }
        Action::Remove { name, alias } => {
            client
                .stop_and_remove(name, REMOVE_GRACE_SECS)
                .await
                .with_context(|| format!("removing {name} ({alias})"))?;
            ui.info(&format!("  - removed {name} ({alias})"));
        }
        Action::Rename { from, to } => {
            client
                .rename(from, to)
                .await
                .with_context(|| format!("renaming {from} to {to}"))?;
            ui.detail(&format!("  renamed {from} → {to}"));
        }
        Action::CreateNetwork { .. }
        | Action::CreateVolume { .. }
        | Action::Create { .. }
        | Action::Start { .. }
        | Action::Recreate { .. } => {
            return Err(anyhow!(
                "bug: a converge step in the plan's sequence: {:?}",
                step.action
            ))
        }
    }
    Ok(())
}

/// Waits until no nginx worker of a previous config is left: they finish their requests in
/// flight, then exit. Bounded: past [`DRAIN_TIMEOUT`] nginx has closed what was left anyway.
async fn drain(client: &DockerClient, nginx: &str, ui: &Ui) -> Result<()> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        match client.nginx_workers(nginx).await {
            Ok(w) if !w.iter().any(|(_, shutting_down)| *shutting_down) => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                // Without a way to look, wait the whole bound: slower, never unsafe.
                ui.detail(&format!(
                    "  cannot see nginx's workers ({e}); waiting {}s",
                    DRAIN_TIMEOUT.as_secs()
                ));
                tokio::time::sleep(DRAIN_TIMEOUT).await;
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            ui.info(&format!(
                "  {nginx}: workers of the previous config still busy after {}s; continuing (nginx closes their connections now)",
                DRAIN_TIMEOUT.as_secs()
            ));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn converge_container(
    client: &DockerClient,
    d: &Deployment,
    plan: &Plan,
    c: &Container,
    ready: &HashMap<&str, watch::Sender<bool>>,
    opts: &ApplyOptions,
    ui: &Ui,
    started: Instant,
) -> Result<()> {
    let name = d.container_name(c);
    let action = plan.step_for(&name).map(|s| &s.action);
    // Creating and delivering files needs no dependency: do it at once, in parallel with
    // everything else, so that only the start waits for readiness of what it depends on.
    match action {
        Some(Action::Create { .. }) => create_over_leftover(client, d, c).await?,
        Some(Action::Recreate { .. }) => {
            client
                .stop_and_remove(&name, c.stop_grace_secs)
                .await
                .with_context(|| format!("removing the old {name} to recreate it"))?;
            create_with_files(client, d, c).await?;
        }
        Some(Action::Start { .. }) => match upload_files(client, d, c, &name).await {
            // Docker rolls back a create whose request was cut off (Ctrl-C), possibly after
            // the snapshot saw the container: then it is simply created again.
            Err(e) if is_not_found(&e) => create_over_leftover(client, d, c).await?,
            r => r?,
        },
        _ => {}
    }
    // A running instance the sequence replaces serves as it is until then: not waited for,
    // so an update can also fix instances that are unhealthy now.
    if plan
        .sequence()
        .iter()
        .any(|s| matches!(&s.action, Action::StartNext { replaces, .. } if *replaces == name))
    {
        if let Some(tx) = ready.get(c.alias.as_str()) {
            tx.send_replace(true);
        }
        return Ok(());
    }
    let after = plan.step_for(&name).map_or(&[][..], |s| s.after.as_slice());
    for dep in after {
        if let Some(tx) = ready.get(dep.as_str()) {
            let mut rx = tx.subscribe();
            // The sender lives in `ready` for the whole apply, so this only ends by the value.
            let _ = rx.wait_for(|r| *r).await;
        }
    }
    match action {
        Some(Action::Create { .. } | Action::Recreate { .. } | Action::Start { .. }) => {
            client.start(&name).await?;
            ui.detail(&format!("  started {name}"));
        }
        Some(Action::Reload { .. }) => reload(client, d, c, &name, ui).await?,
        Some(_) | None => {}
    }
    if plan.already_ready.contains(&name) {
        if let Some(tx) = ready.get(c.alias.as_str()) {
            tx.send_replace(true);
        }
        return Ok(());
    }
    let t0 = Instant::now();
    if let Err(failure) = client
        .wait_ready(&name, &Readiness::of(c), t0 + opts.timeout)
        .await
    {
        return Err(not_ready_error(client, &name, &c.alias, failure, opts.timeout).await);
    }
    if action.is_some() {
        ui.info(&format!(
            "  {} {} ready ({:.1}s)",
            ui.green("✓"),
            c.alias,
            started.elapsed().as_secs_f64()
        ));
    }
    if let Some(tx) = ready.get(c.alias.as_str()) {
        tx.send_replace(true);
    }
    Ok(())
}

/// Create, then deliver secrets and files: secrets reach the container as files before its
/// process runs, so none is in its environment, command or `docker inspect`.
/// Creates `c`, where an interrupted run may have left its name taken after the snapshot: the
/// daemon finishes a create whose client is gone (a Postgres create, which fills its volume,
/// can take a second), or is still rolling one back. A never-started container under the name
/// is such a leftover and is replaced; a removal in progress is waited for; anything else (a
/// running container) is not ours to touch here and is reported.
async fn create_over_leftover(client: &DockerClient, d: &Deployment, c: &Container) -> Result<()> {
    let name = d.container_name(c);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let err = match create_with_files(client, d, c).await {
            Err(e) if is_conflict(&e) && Instant::now() < deadline => e,
            r => return r,
        };
        match client.probe(&name, &Readiness::Running).await {
            Ok(p) if p.state == ContainerState::Created => {
                client.remove_container(&name).await.with_context(|| {
                    format!("removing {name}, left never started by an interrupted run")
                })?;
            }
            Ok(p) if p.state == ContainerState::Removing => {
                tokio::time::sleep(Duration::from_millis(250)).await
            }
            Err(e) if e.is_not_found() => tokio::time::sleep(Duration::from_millis(250)).await,
            _ => return Err(err),
        }
    }
}

async fn create_with_files(client: &DockerClient, d: &Deployment, c: &Container) -> Result<()> {
    let name = d.container_name(c);
    client.create_container(d, c).await?;
    upload_files(client, d, c, &name).await?;
    Ok(())
}

async fn upload_files(
    client: &DockerClient,
    d: &Deployment,
    c: &Container,
    name: &str,
) -> Result<()> {
    if !c.secrets.is_empty() {
        client
            .upload(name, docker::secrets_tar(d, c))
            .await
            .with_context(|| format!("delivering the secrets of {name}"))?;
    }
    if !c.files.is_empty() {
        client
            .upload(name, docker::file_tar(d, c, false, ""))
            .await
            .with_context(|| format!("delivering the config files of {name}"))?;
    }
    if let Some(h) = d.reload_hash(c) {
        client.upload(name, docker::reload_marker_tar(&h)).await?;
    }
    Ok(())
}

/// Stage the new files next to their targets, have nginx check them, and only then put them
/// in place and reload: a bad config never replaces the one nginx is serving with.
async fn reload(
    client: &DockerClient,
    d: &Deployment,
    c: &Container,
    name: &str,
    ui: &Ui,
) -> Result<()> {
    let Some(hash) = d.reload_hash(c) else {
        return Ok(());
    };
    if c.role != Role::Nginx {
        return Err(anyhow!(
            "{name}: no reload procedure for role {}",
            c.role.service()
        ));
    }
    client
        .upload(name, docker::file_tar(d, c, true, ".next"))
        .await
        .with_context(|| format!("uploading the new config to {name}"))?;
    for m in c.files.iter().filter(|m| m.reload) {
        let staged = format!("{}.next", m.target);
        let (code, out) = client
            .exec(
                name,
                &["nginx".into(), "-t".into(), "-c".into(), staged.clone()],
            )
            .await?;
        if code != 0 {
            return Err(anyhow!(
                "{name}: the new {} was refused by `nginx -t` (exit {code}); nginx keeps serving the old one:\n{}",
                m.file,
                indent(&out)
            ));
        }
    }
    client
        .upload(name, docker::file_tar(d, c, true, ""))
        .await?;
    // `nginx -s reload` only signals the master: it returns before the new workers run.
    // Whoever comes next (a drain, a stop) needs the old workers told to finish first.
    let before = client.nginx_workers(name).await;
    let (code, out) = client
        .exec(name, &["nginx".into(), "-s".into(), "reload".into()])
        .await?;
    if code != 0 {
        return Err(anyhow!(
            "{name}: `nginx -s reload` failed (exit {code}):\n{}",
            indent(&out)
        ));
    }
    match before {
        Ok(before) => wait_reload_in_effect(client, name, &before).await?,
        Err(e) => {
            ui.detail(&format!(
                "  cannot see nginx's workers ({e}); giving the reload 1s"
            ));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    client
        .upload(name, docker::reload_marker_tar(&hash))
        .await?;
    Ok(())
}

/// Until none of the workers that ran before the reload still takes new requests: each is
/// gone or shutting down (finishing what it has).
async fn wait_reload_in_effect(
    client: &DockerClient,
    name: &str,
    before: &[(u32, bool)],
) -> Result<()> {
    let deadline = Instant::now() + RELOAD_EFFECT_TIMEOUT;
    loop {
        let now = client.nginx_workers(name).await?;
        let old_still_active = before
            .iter()
            .any(|(pid, was_down)| !was_down && now.iter().any(|(p, down)| p == pid && !down));
        if !old_still_active {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(anyhow!(
                "{name}: nginx did not apply the new configuration within {}s (its old workers still run)\n  fix: `radar-deploy logs nginx` shows why",
                RELOAD_EFFECT_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn not_ready_error(
    client: &DockerClient,
    name: &str,
    alias: &str,
    failure: docker::WaitFailure,
    timeout: Duration,
) -> anyhow::Error {
    let logs = client
        .tail_logs(name, FAILURE_LOG_LINES)
        .await
        .unwrap_or_else(|e| vec![format!("(logs unavailable: {e})")]);
    let probe = failure
        .probe
        .last_output()
        .unwrap_or_else(|| "(no probe has run yet)".into());
    anyhow!(
        "{name} ({alias}) did not become healthy: {why} (waited up to {secs}s)\n  last health probe: {probe}\n  last {n} log lines:\n{logs}\n  fix: read the logs above; `radar-deploy logs {alias}` shows more, and --timeout gives slow services longer",
        why = failure.why,
        secs = timeout.as_secs(),
        probe = probe.trim(),
        n = FAILURE_LOG_LINES,
        logs = if logs.is_empty() {
            "    (empty)".to_string()
        } else {
            indent(&logs.join("\n"))
        },
    )
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_conflict(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<docker::DockerError>(),
            Some(docker::DockerError::Conflict { .. })
        )
    })
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<docker::DockerError>()
            .is_some_and(docker::DockerError::is_not_found)
    })
}
