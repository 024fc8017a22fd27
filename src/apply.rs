//! Executes a [`Plan`]; makes no decisions of its own.
//!
//! Order comes from the model: every container waits until the containers it depends on
//! (`depends_on`, by alias) are ready, so data stores start first, then the replica and
//! Sentinels, then the app instances, then nginx; containers with no dependency between them
//! are created and started in parallel. Every container of the desired state is waited for,
//! changed or not, so `up` ends with the whole stack ready. Removals come last, after nginx
//! has been reloaded without the instances being removed, so none of them gets new requests.
//! Every wait has its own deadline (`--timeout`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use futures_util::future::try_join_all;
use tokio::sync::watch;

use crate::desired::{Container, Deployment, Role};
use crate::docker::{self, DockerClient, Readiness};
use crate::plan::{Action, Plan};
use crate::ui::Ui;

/// Log lines shown when a container does not become ready.
const FAILURE_LOG_LINES: u32 = 20;

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

    let removals = plan.removals().map(|(name, alias)| async move {
        client
            .stop_and_remove(name, 30)
            .await
            .with_context(|| format!("removing {name} ({alias})"))?;
        ui.info(&format!("  - removed {name} ({alias})"));
        Ok::<_, anyhow::Error>(())
    });
    try_join_all(removals).await?;
    Ok(())
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
        Some(Action::Create { .. }) => create_with_files(client, d, c).await?,
        Some(Action::Recreate { .. }) => {
            client
                .stop_and_remove(&name, c.stop_grace_secs)
                .await
                .with_context(|| format!("removing the old {name} to recreate it"))?;
            create_with_files(client, d, c).await?;
        }
        Some(Action::Start { .. }) => upload_files(client, d, c, &name).await?,
        _ => {}
    }
    for dep in &c.depends_on {
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
        Some(Action::Reload { .. }) => reload(client, d, c, &name).await?,
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
async fn reload(client: &DockerClient, d: &Deployment, c: &Container, name: &str) -> Result<()> {
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
    let (code, out) = client
        .exec(name, &["nginx".into(), "-s".into(), "reload".into()])
        .await?;
    if code != 0 {
        return Err(anyhow!(
            "{name}: `nginx -s reload` failed (exit {code}):\n{}",
            indent(&out)
        ));
    }
    client
        .upload(name, docker::reload_marker_tar(&hash))
        .await?;
    Ok(())
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
