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
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use futures_util::future::{try_join_all, BoxFuture};
use tokio::sync::watch;

use crate::desired::{self, Container, Deployment, Role};
use crate::docker::{self, ContainerFacts, DockerClient};
use crate::observed::{ContainerState, Observed, ObservedContainer};
use crate::plan::{self, Action, Plan, Step};
use crate::probes;
use crate::readiness::{assess, Probe, Readiness, Verdict, WaitFailure, POLL_INTERVAL};
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

/// The Docker verbs the single-host executors need: this one, `engine`'s and `scale`'s. Stated
/// as a trait so their unit tests run them against a fake engine (`fake/host.rs`);
/// [`DockerClient`] is the real one, below.
pub trait HostEngine: Sync {
    /// The daemon's address: the per-project lock is taken per daemon.
    fn daemon_host(&self) -> &str;
    /// Whether the daemon runs on this machine, so its published ports are this machine's.
    fn is_local(&self) -> bool;
    fn observe(&self, project: &str) -> impl Future<Output = docker::Result<Observed>> + Send;
    fn list_containers(
        &self,
        project: &str,
    ) -> impl Future<Output = docker::Result<Vec<ObservedContainer>>> + Send;
    fn container_facts(
        &self,
        container: &str,
    ) -> impl Future<Output = docker::Result<ContainerFacts>> + Send;
    fn image_exists(&self, image: &str) -> impl Future<Output = docker::Result<bool>> + Send;
    /// The image's own user (empty: none set), `None` when the image is not on the daemon.
    fn image_user(
        &self,
        image: &str,
    ) -> impl Future<Output = docker::Result<Option<String>>> + Send;
    fn pull(
        &self,
        image: &str,
        progress: impl FnMut(&str, &str, Option<i64>, Option<i64>) + Send,
    ) -> impl Future<Output = docker::Result<()>> + Send;
    fn create_network(
        &self,
        project: &str,
        name: &str,
    ) -> impl Future<Output = docker::Result<()>> + Send;
    fn create_volume(
        &self,
        project: &str,
        volume: &str,
        name: &str,
    ) -> impl Future<Output = docker::Result<()>> + Send;
    /// Creates (does not start) the container for `c` named `name`, known on the network by
    /// its alias and `extra_aliases`.
    fn create_container(
        &self,
        d: &Deployment,
        c: &Container,
        name: &str,
        extra_aliases: &[String],
    ) -> impl Future<Output = docker::Result<String>> + Send;
    fn upload(
        &self,
        container: &str,
        tar: Vec<u8>,
    ) -> impl Future<Output = docker::Result<()>> + Send;
    fn start(&self, container: &str) -> impl Future<Output = docker::Result<()>> + Send;
    fn stop_and_remove(
        &self,
        container: &str,
        grace_secs: u32,
    ) -> impl Future<Output = docker::Result<()>> + Send;
    fn remove_container(&self, container: &str) -> impl Future<Output = docker::Result<()>> + Send;
    fn rename(
        &self,
        container: &str,
        new_name: &str,
    ) -> impl Future<Output = docker::Result<()>> + Send;
    fn exec(
        &self,
        container: &str,
        cmd: &[String],
    ) -> impl Future<Output = docker::Result<(i64, String)>> + Send;
    fn probe(
        &self,
        container: &str,
        readiness: &Readiness,
    ) -> impl Future<Output = docker::Result<Probe>> + Send;
    fn tail_logs(
        &self,
        container: &str,
        tail: u32,
    ) -> impl Future<Output = docker::Result<Vec<String>>> + Send;
    fn remove_network(&self, name: &str) -> impl Future<Output = docker::Result<()>> + Send;
    fn remove_volume(&self, name: &str) -> impl Future<Output = docker::Result<()>> + Send;
    /// Calls `on_line` with each line of a container's log, from its start, until the
    /// container stops (the release command's output, live).
    fn follow_logs(
        &self,
        container: &str,
        on_line: impl FnMut(&str) + Send,
    ) -> impl Future<Output = docker::Result<()>> + Send;
}

impl HostEngine for DockerClient {
    fn daemon_host(&self) -> &str {
        &self.endpoint.host
    }
    fn is_local(&self) -> bool {
        self.endpoint.is_local()
    }
    async fn observe(&self, project: &str) -> docker::Result<Observed> {
        DockerClient::observe(self, project).await
    }
    async fn list_containers(&self, project: &str) -> docker::Result<Vec<ObservedContainer>> {
        DockerClient::list_containers(self, project).await
    }
    async fn container_facts(&self, container: &str) -> docker::Result<ContainerFacts> {
        DockerClient::container_facts(self, container).await
    }
    async fn image_exists(&self, image: &str) -> docker::Result<bool> {
        DockerClient::image_exists(self, image).await
    }
    async fn image_user(&self, image: &str) -> docker::Result<Option<String>> {
        DockerClient::image_user(self, image).await
    }
    async fn pull(
        &self,
        image: &str,
        progress: impl FnMut(&str, &str, Option<i64>, Option<i64>) + Send,
    ) -> docker::Result<()> {
        DockerClient::pull(self, image, progress).await
    }
    async fn create_network(&self, project: &str, name: &str) -> docker::Result<()> {
        DockerClient::create_network(self, project, name).await
    }
    async fn create_volume(&self, project: &str, volume: &str, name: &str) -> docker::Result<()> {
        DockerClient::create_volume(self, project, volume, name).await
    }
    async fn create_container(
        &self,
        d: &Deployment,
        c: &Container,
        name: &str,
        extra_aliases: &[String],
    ) -> docker::Result<String> {
        DockerClient::create_container_as(self, d, c, name, extra_aliases).await
    }
    async fn upload(&self, container: &str, tar: Vec<u8>) -> docker::Result<()> {
        DockerClient::upload(self, container, tar).await
    }
    async fn start(&self, container: &str) -> docker::Result<()> {
        DockerClient::start(self, container).await
    }
    async fn stop_and_remove(&self, container: &str, grace_secs: u32) -> docker::Result<()> {
        DockerClient::stop_and_remove(self, container, grace_secs).await
    }
    async fn remove_container(&self, container: &str) -> docker::Result<()> {
        DockerClient::remove_container(self, container).await
    }
    async fn rename(&self, container: &str, new_name: &str) -> docker::Result<()> {
        DockerClient::rename(self, container, new_name).await
    }
    async fn exec(&self, container: &str, cmd: &[String]) -> docker::Result<(i64, String)> {
        DockerClient::exec(self, container, cmd).await
    }
    async fn probe(&self, container: &str, readiness: &Readiness) -> docker::Result<Probe> {
        DockerClient::probe(self, container, readiness).await
    }
    async fn tail_logs(&self, container: &str, tail: u32) -> docker::Result<Vec<String>> {
        DockerClient::tail_logs(self, container, tail).await
    }
    async fn remove_network(&self, name: &str) -> docker::Result<()> {
        DockerClient::remove_network(self, name).await
    }
    async fn remove_volume(&self, name: &str) -> docker::Result<()> {
        DockerClient::remove_volume(self, name).await
    }
    async fn follow_logs(
        &self,
        container: &str,
        mut on_line: impl FnMut(&str) + Send,
    ) -> docker::Result<()> {
        use futures_util::StreamExt;
        let mut lines = Box::pin(self.logs(container, None, true));
        while let Some(line) = lines.next().await {
            on_line(&line?.text);
        }
        Ok(())
    }
}

pub struct ApplyOptions<'a> {
    /// The deadline of each wait.
    pub timeout: Duration,
    /// Run just before the release command when the plan says so (`BACKUP_BEFORE_RELEASE`).
    pub before_release: Option<&'a BeforeRelease<'a>>,
}

/// What runs before the release command when the plan asks for a backup first; it answers what
/// it made (the backup file, for `up` to name). The caller supplies it: a backup is an operation
/// of its own that needs the whole configuration (`commands::up` passes
/// [`crate::backup::before_release`]); an executor only runs it.
pub type BeforeRelease<'a> = dyn Fn() -> BoxFuture<'a, Result<String>> + Send + Sync + 'a;

pub async fn apply<E: HostEngine>(
    client: &E,
    d: &Deployment,
    plan: &Plan,
    opts: &ApplyOptions<'_>,
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

    let release = plan.converge().iter().find_map(|s| match &s.action {
        Action::Release { backup_first, .. } => Some((s, *backup_first)),
        _ => None,
    });
    let ready: HashMap<&str, watch::Sender<bool>> = d
        .containers
        .iter()
        .map(|c| c.alias.as_str())
        .chain(release.map(|_| plan::RELEASE))
        .map(|alias| (alias, watch::channel(false).0))
        .collect();
    let tasks = d
        .containers
        .iter()
        .map(|c| converge_container(client, d, plan, c, &ready, opts, ui, started));
    // A failed release drops the converge tasks waiting for it: nothing it gates was created.
    let release = async {
        match release {
            Some((step, backup_first)) => {
                let backup = if backup_first {
                    Some(opts.before_release.ok_or_else(|| {
                        anyhow!("bug: the plan takes a backup before the release, but apply was given no way to")
                    })?)
                } else {
                    None
                };
                run_release(client, d, step, backup, &ready, ui).await
            }
            None => Ok(()),
        }
    };
    tokio::try_join!(try_join_all(tasks), release)?;

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
async fn docker_verdicts<E: HostEngine>(
    client: &E,
    d: &Deployment,
    opts: &ApplyOptions<'_>,
    ui: &Ui,
) -> Result<()> {
    let t0 = Instant::now();
    let waits = d
        .containers
        .iter()
        .filter(|c| c.healthcheck.is_some())
        .map(|c| async move {
            let name = d.container_name(c);
            match wait_ready(client, &name, &Readiness::DockerHealthy, t0 + opts.timeout).await {
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
async fn run_in_sequence<E: HostEngine>(
    client: &E,
    d: &Deployment,
    step: &Step,
    opts: &ApplyOptions<'_>,
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
                .create_container(d, c, name, std::slice::from_ref(next_alias))
                .await?;
            upload_files(client, d, c, name).await?;
            client.start(name).await?;
            let t0 = Instant::now();
            if let Err(failure) =
                wait_ready(client, name, &Readiness::of(c), t0 + opts.timeout).await
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
        | Action::Release { .. }
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
async fn drain<E: HostEngine>(client: &E, nginx: &str, ui: &Ui) -> Result<()> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        match nginx_workers(client, nginx).await {
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
async fn converge_container<E: HostEngine>(
    client: &E,
    d: &Deployment,
    plan: &Plan,
    c: &Container,
    ready: &HashMap<&str, watch::Sender<bool>>,
    opts: &ApplyOptions<'_>,
    ui: &Ui,
    started: Instant,
) -> Result<()> {
    let name = d.container_name(c);
    let action = plan.step_for(&name).map(|s| &s.action);
    // A container the release gates is not even created before the release succeeded, so a
    // failed release leaves nothing of the new version behind.
    if plan
        .step_for(&name)
        .is_some_and(|s| s.after.iter().any(|a| a == plan::RELEASE))
    {
        wait_for(ready, plan::RELEASE).await;
    }
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
        wait_for(ready, dep).await;
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
    if let Err(failure) = wait_ready(client, &name, &Readiness::of(c), t0 + opts.timeout).await {
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

/// Waits until `alias` (a container, or the release) is ready; an alias not in this apply is
/// not waited for.
async fn wait_for(ready: &HashMap<&str, watch::Sender<bool>>, alias: &str) {
    if let Some(tx) = ready.get(alias) {
        let mut rx = tx.subscribe();
        // The sender lives in `ready` for the whole apply, so this only ends by the value.
        let _ = rx.wait_for(|r| *r).await;
    }
}

/// Lines of the release command's output repeated in the error when it fails.
const RELEASE_ERROR_LINES: usize = 20;
/// How long a release container may take to be reported stopped once its log has ended.
const RELEASE_EXIT_WAIT: Duration = Duration::from_secs(10);

/// The release step: once what it is `after` is ready, the command runs to completion in its
/// one-off container, its output streamed (`release | ...`); the container is removed whatever
/// the outcome. Success opens the gate of the app containers waiting for it; a non-zero exit or
/// the deadline (`APP_RELEASE_TIMEOUT`) is an error that ends the apply before any of them.
async fn run_release<E: HostEngine>(
    client: &E,
    d: &Deployment,
    step: &Step,
    backup: Option<&BeforeRelease<'_>>,
    ready: &HashMap<&str, watch::Sender<bool>>,
    ui: &Ui,
) -> Result<()> {
    let Action::Release { name, command, .. } = &step.action else {
        return Err(anyhow!(
            "bug: run_release given a step that is not the release"
        ));
    };
    let release = d
        .release
        .as_ref()
        .ok_or_else(|| anyhow!("bug: a release step without a release command"))?;
    for dep in &step.after {
        wait_for(ready, dep).await;
    }
    // BACKUP_BEFORE_RELEASE: here, because the data stores are ready and nothing of the new
    // version has run yet, so the backup is of exactly what the release command will change.
    if let Some(backup) = backup {
        ui.info("  ▶ backup before the release (BACKUP_BEFORE_RELEASE)");
        let t = Instant::now();
        let file = backup().await.context(
            "nothing was created or replaced: the running instances (if any) keep serving the previous version",
        )?;
        ui.info(&format!(
            "  {} backup {file} ({:.1}s)",
            ui.green("✓"),
            t.elapsed().as_secs_f64()
        ));
    }
    let c = &release.container;
    let shown = shell_words::join(command);
    let deadline = Duration::from_secs(release.timeout_secs.into());
    ui.info(&format!("  ▶ release: `{shown}` in {name}"));
    let t0 = Instant::now();
    // A container of this name is the leftover of an interrupted run: it goes first.
    client
        .remove_container(name)
        .await
        .with_context(|| format!("removing {name}, left by an interrupted release"))?;
    let outcome = async {
        client.create_container(d, c, name, &[]).await?;
        upload_files(client, d, c, name).await?;
        client.start(name).await?;
        let mut last = std::collections::VecDeque::with_capacity(RELEASE_ERROR_LINES);
        let within = tokio::time::timeout(deadline, async {
            let followed = client
                .follow_logs(name, |line| {
                    ui.info(&format!("  release | {line}"));
                    if last.len() == RELEASE_ERROR_LINES {
                        last.pop_front();
                    }
                    last.push_back(line.to_string());
                })
                .await;
            if let Err(e) = followed {
                ui.detail(&format!(
                    "  release: its log stream ended early ({e}); waiting for it to exit"
                ));
            }
            release_exit(client, name, t0 + deadline).await
        })
        .await;
        Ok::<_, anyhow::Error>((within, last))
    }
    .await;
    // Removed whatever happened, also when it is still running (the deadline).
    let removed = client.remove_container(name).await;
    let (within, last) =
        outcome.with_context(|| format!("starting the release command in {name}"))?;
    let output = if last.is_empty() {
        "  (no output)".to_string()
    } else {
        indent(&Vec::from(last).join("\n"))
    };
    let kept = "nothing was created or replaced: the running instances (if any) keep serving the previous version";
    let fix = "fix the command (APP_RELEASE_COMMAND) or the app, then run `radar-deploy up` again (the release runs again)";
    match within {
        Err(_elapsed) => Err(anyhow!(
            "release command `{shown}` did not finish within {}s (APP_RELEASE_TIMEOUT) and was stopped; {kept}; its last output:\n{output}\n  fix: {fix}, or raise APP_RELEASE_TIMEOUT",
            deadline.as_secs()
        )),
        Ok(Err(e)) => Err(e.context(format!("release command `{shown}` in {name}; {kept}"))),
        Ok(Ok(0)) => {
            if let Err(e) = removed {
                ui.detail(&format!("  release: removing {name} failed ({e}); the next `up` removes it"));
            }
            ui.info(&format!(
                "  {} release `{shown}` done ({:.1}s)",
                ui.green("✓"),
                t0.elapsed().as_secs_f64()
            ));
            if let Some(tx) = ready.get(plan::RELEASE) {
                tx.send_replace(true);
            }
            Ok(())
        }
        Ok(Ok(code)) => Err(anyhow!(
            "release command `{shown}` exited with {code} after {:.1}s; {kept}; its last output:\n{output}\n  fix: {fix}",
            t0.elapsed().as_secs_f64()
        )),
    }
}

/// The exit code of a release container whose log has ended (it is stopping, or stopped).
async fn release_exit<E: HostEngine>(client: &E, name: &str, deadline: Instant) -> Result<i64> {
    let stop_by = deadline.min(Instant::now() + RELEASE_EXIT_WAIT);
    loop {
        let p = client.probe(name, &Readiness::Running).await?;
        match p.state {
            ContainerState::Exited | ContainerState::Dead => return Ok(p.exit_code.unwrap_or(-1)),
            _ if Instant::now() >= stop_by => {
                return Err(anyhow!(
                    "{name}: its log ended but it is still {:?} after {}s",
                    p.state,
                    RELEASE_EXIT_WAIT.as_secs()
                ))
            }
            _ => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Create, then deliver secrets and files: secrets reach the container as files before its
/// process runs, so none is in its environment, command or `docker inspect`.
/// Creates `c`, where an interrupted run may have left its name taken after the snapshot: the
/// daemon finishes a create whose client is gone (a Postgres create, which fills its volume,
/// can take a second), or is still rolling one back. A never-started container under the name
/// is such a leftover and is replaced; a removal in progress is waited for; anything else (a
/// running container) is not ours to touch here and is reported.
async fn create_over_leftover<E: HostEngine>(
    client: &E,
    d: &Deployment,
    c: &Container,
) -> Result<()> {
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

async fn create_with_files<E: HostEngine>(client: &E, d: &Deployment, c: &Container) -> Result<()> {
    let name = d.container_name(c);
    client.create_container(d, c, &name, &[]).await?;
    upload_files(client, d, c, &name).await?;
    Ok(())
}

async fn upload_files<E: HostEngine>(
    client: &E,
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
    upload_certificate(client, d, c, name).await?;
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

/// nginx's certificate and key, into their directory ([`desired::TlsMaterial::dir`]).
async fn upload_certificate<E: HostEngine>(
    client: &E,
    d: &Deployment,
    c: &Container,
    name: &str,
) -> Result<()> {
    if let (Role::Nginx, Some(tls)) = (c.role, &d.tls) {
        client
            .upload(name, docker::certificate_tar(tls))
            .await
            .with_context(|| format!("delivering the TLS certificate to {name}"))?;
    }
    Ok(())
}

/// Stage the new files next to their targets, have nginx check them, and only then put them
/// in place and reload: a bad config never replaces the one nginx is serving with.
async fn reload<E: HostEngine>(
    client: &E,
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
    // A new certificate goes into a directory of its own, which only the staged config names:
    // `nginx -t` below checks the two together, and the running nginx is not disturbed.
    upload_certificate(client, d, c, name).await?;
    client
        .upload(name, docker::file_tar(d, c, true, ".next"))
        .await
        .with_context(|| format!("uploading the new config to {name}"))?;
    for m in c.files.iter().filter(|m| m.reload) {
        let staged = format!("{}.next", m.target);
        let (code, out) = client
            .exec(name, &probes::nginx_check_argv(&staged))
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
    let before = nginx_workers(client, name).await;
    let (code, out) = client.exec(name, &probes::nginx_reload_argv()).await?;
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
    if let Some(tls) = &d.tls {
        // Best effort: a leftover directory costs nothing but disk and is pruned next time.
        let argv = probes::prune_certificates_argv(desired::TLS_DIR, &tls.dir());
        if let Ok((code, out)) = client.exec(name, &argv).await {
            if code != 0 {
                ui.detail(&format!(
                    "  {name}: old certificates not removed: {}",
                    out.trim()
                ));
            }
        }
    }
    Ok(())
}

/// nginx's worker processes inside its container, as (pid, shutting down).
async fn nginx_workers<E: HostEngine>(client: &E, container: &str) -> Result<Vec<(u32, bool)>> {
    let (code, out) = client
        .exec(container, &probes::nginx_workers_argv())
        .await?;
    if code != 0 {
        return Err(anyhow!(
            "container {container}: listing nginx's workers failed (exit {code}): {}",
            out.trim()
        ));
    }
    Ok(probes::parse_nginx_workers(&out))
}

/// Until none of the workers that ran before the reload still takes new requests: each is
/// gone or shutting down (finishing what it has).
async fn wait_reload_in_effect<E: HostEngine>(
    client: &E,
    name: &str,
    before: &[(u32, bool)],
) -> Result<()> {
    let deadline = Instant::now() + RELOAD_EFFECT_TIMEOUT;
    loop {
        let now = nginx_workers(client, name).await?;
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

/// The polling loop of every wait: one predicate ([`assess`]), one deadline.
async fn wait_ready<E: HostEngine>(
    client: &E,
    container: &str,
    readiness: &Readiness,
    deadline: Instant,
) -> std::result::Result<(), WaitFailure> {
    let mut last = Probe::default();
    loop {
        match client.probe(container, readiness).await {
            Ok(p) => {
                let verdict = assess(readiness, &p);
                last = p;
                match verdict {
                    Verdict::Ready => return Ok(()),
                    Verdict::Failed(why) => return Err(WaitFailure { why, probe: last }),
                    Verdict::NotYet => {}
                }
            }
            Err(e) if e.is_not_found() => {
                return Err(WaitFailure {
                    why: e.to_string(),
                    probe: last,
                })
            }
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            return Err(WaitFailure {
                why: "did not become ready before the deadline (--timeout)".into(),
                probe: last,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn not_ready_error<E: HostEngine>(
    client: &E,
    name: &str,
    alias: &str,
    failure: WaitFailure,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::config;
    use crate::desired;
    use crate::fake::host::FakeHost;
    use crate::plan;

    fn ui() -> Ui {
        Ui::new(true, true, 0)
    }

    fn deployment(extra: &str) -> Deployment {
        desired::build(&config(extra, false))
    }

    fn name(d: &Deployment, alias: &str) -> String {
        let c = d.containers.iter().find(|c| c.alias == alias);
        d.container_name(c.unwrap_or_else(|| panic!("no {alias} in the deployment")))
    }

    /// Plans `d` against what the fake holds and applies it, each wait bounded by `timeout`.
    async fn converge(fake: &FakeHost, d: &Deployment, timeout: Duration) -> Result<()> {
        converge_with(fake, d, timeout, None).await
    }

    async fn converge_with<'a>(
        fake: &FakeHost,
        d: &Deployment,
        timeout: Duration,
        before_release: Option<&'a BeforeRelease<'a>>,
    ) -> Result<()> {
        let observed = HostEngine::observe(fake, &d.project).await?;
        let plan = plan::plan(d, &observed);
        let opts = ApplyOptions {
            timeout,
            before_release,
        };
        apply(fake, d, &plan, &opts, &ui()).await
    }

    const LONG: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn a_fresh_project_is_created_and_then_needs_nothing() {
        let fake = FakeHost::new();
        let d = deployment("");
        converge(&fake, &d, LONG).await.unwrap();
        let mut expected: Vec<String> = d.containers.iter().map(|c| d.container_name(c)).collect();
        expected.sort();
        assert_eq!(fake.container_names(), expected);
        for n in &expected {
            let c = fake.container(n).unwrap();
            assert_eq!(c.state, ContainerState::Running, "{n}");
        }
        assert_eq!(fake.network_names(), vec![d.network.clone()]);
        assert_eq!(fake.volume_names().len(), d.volumes.len());
        // What was delivered (secrets, files, the reload marker) is what the plan expects.
        let again = plan::plan(&d, &HostEngine::observe(&fake, &d.project).await.unwrap());
        assert!(again.is_empty(), "{again}");
    }

    #[tokio::test]
    async fn independent_containers_start_at_once_and_dependents_wait_for_readiness() {
        let fake = FakeHost::new();
        let d = deployment("APP_INSTANCES=2");
        let (postgres, redis) = (name(&d, "postgres"), name(&d, "redis"));
        let (app1, app2, nginx) = (name(&d, "app-1"), name(&d, "app-2"), name(&d, "nginx"));
        fake.ready_after(&postgres, Duration::from_millis(400));
        converge(&fake, &d, LONG).await.unwrap();
        let at = |c: &str| fake.position(c);
        // Redis does not wait for PostgreSQL, which is slow to become ready.
        assert!(at(&format!("start {redis}")) < at(&format!("ready {postgres}")));
        for app in [&app1, &app2] {
            let start = at(&format!("start {app}"));
            assert!(at(&format!("ready {postgres}")) < start, "{app}");
            assert!(at(&format!("ready {redis}")) < start, "{app}");
            assert!(
                at(&format!("ready {app}")) < at(&format!("start {nginx}")),
                "{app}"
            );
        }
    }

    /// Makes `verb` fail for the container of `alias`, converges, and returns the fake, the
    /// container's name and the error.
    async fn failing(verb: &str, alias: &str) -> (FakeHost, Deployment, String, String) {
        let fake = FakeHost::new();
        let d = deployment("APP_INSTANCES=2");
        let container = name(&d, alias);
        fake.fail(verb, &container);
        let err = format!("{:#}", converge(&fake, &d, LONG).await.unwrap_err());
        (fake, d, container, err)
    }

    #[tokio::test]
    async fn a_failed_create_names_the_container() {
        let (_, _, app2, err) = failing("create", "app-2").await;
        assert!(err.contains(&app2), "{err}");
    }

    #[tokio::test]
    async fn a_failed_start_names_the_container_and_nothing_after_it_starts() {
        let (fake, d, postgres, err) = failing("start", "postgres").await;
        assert!(err.contains(&postgres), "{err}");
        let app1 = name(&d, "app-1");
        assert!(!fake.calls().contains(&format!("start {app1}")));
    }

    #[tokio::test]
    async fn a_wait_that_times_out_names_the_container_its_last_probe_and_its_logs() {
        let fake = FakeHost::new();
        let d = deployment("");
        let (app1, nginx) = (name(&d, "app-1"), name(&d, "nginx"));
        fake.never_ready(&app1);
        let err = converge(&fake, &d, Duration::from_millis(600))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "{app1} (app-1) did not become healthy: did not become ready before the deadline (--timeout)"
            )),
            "{err}"
        );
        assert!(
            err.contains("last health probe: exit 1: connection refused"),
            "{err}"
        );
        assert!(
            err.contains(&format!("{app1}: the fake engine's log line")),
            "{err}"
        );
        assert!(!fake.calls().contains(&format!("start {nginx}")));
    }

    #[tokio::test]
    async fn an_exited_container_fails_the_wait_at_once() {
        let fake = FakeHost::new();
        let d = deployment("");
        let redis = name(&d, "redis");
        fake.exits(&redis, 3);
        let t0 = Instant::now();
        let err = converge(&fake, &d, LONG).await.unwrap_err().to_string();
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(
            err.starts_with(&format!(
                "{redis} (redis) did not become healthy: the container exited (code 3)"
            )),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_replacement_that_never_becomes_ready_is_removed_and_the_instance_keeps_serving() {
        let fake = FakeHost::new();
        let before = deployment("");
        converge(&fake, &before, LONG).await.unwrap();
        let app1 = name(&before, "app-1");
        let next = format!("{app1}{}", plan::NEXT_SUFFIX);
        fake.never_ready(&next);
        let after =
            deployment("APP_IMAGE=example/app:2\nAPP_HEALTHCHECK='/radar-app healthcheck'\n");
        let err = format!(
            "{:#}",
            converge(&fake, &after, Duration::from_millis(600))
                .await
                .unwrap_err()
        );
        assert!(
            err.starts_with(&format!(
                "rolling update stopped: the replacement of app-1 did not become healthy; {next} was removed, {app1} keeps serving"
            )),
            "{err}"
        );
        assert!(fake.container(&next).is_none());
        let kept = fake.container(&app1).unwrap();
        assert_eq!(kept.state, ContainerState::Running);
        assert_ne!(kept.image, "example/app:2");
    }

    #[tokio::test]
    async fn a_config_nginx_refuses_is_never_loaded() {
        let fake = FakeHost::new();
        let before = deployment("APP_INSTANCES=2");
        converge(&fake, &before, LONG).await.unwrap();
        let after = deployment("APP_INSTANCES=3");
        let nginx_c = after.containers_of(Role::Nginx).next().unwrap();
        let nginx = after.container_name(nginx_c);
        let conf = nginx_c.files.iter().find(|m| m.reload).unwrap();
        let check = probes::nginx_check_argv(&format!("{}.next", conf.target));
        fake.answer_exec(&check, 1, "nginx: [emerg] unexpected end of file");
        let err = format!("{:#}", converge(&fake, &after, LONG).await.unwrap_err());
        assert!(
            err.contains("was refused by `nginx -t` (exit 1); nginx keeps serving the old one"),
            "{err}"
        );
        assert!(err.contains("[emerg] unexpected end of file"), "{err}");
        let reload = format!("exec {nginx} {}", probes::nginx_reload_argv().join(" "));
        assert!(!fake.calls().contains(&reload), "{:#?}", fake.calls());
    }

    const MIGRATE: &str = "APP_RELEASE_COMMAND=migrate\n";

    /// The name of the release container the plan of `d` against the fake would run.
    async fn release_name(fake: &FakeHost, d: &Deployment) -> String {
        let p = plan::plan(d, &HostEngine::observe(fake, &d.project).await.unwrap());
        p.converge()
            .iter()
            .find_map(|s| match &s.action {
                Action::Release { name, .. } => Some(name.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no release in {p}"))
    }

    #[tokio::test]
    async fn a_first_deploy_runs_the_release_once_after_the_data_stores_and_before_any_instance() {
        let fake = FakeHost::new();
        let d = deployment(MIGRATE);
        let release = release_name(&fake, &d).await;
        fake.ready_after(&name(&d, "postgres"), Duration::from_millis(300));
        converge(&fake, &d, LONG).await.unwrap();
        let calls = fake.calls();
        let at = |c: &str| fake.position(c);
        let create = at(&format!("create {release}"));
        assert!(at(&format!("ready {}", name(&d, "postgres"))) < create);
        assert!(at(&format!("ready {}", name(&d, "redis"))) < create);
        let removed = calls
            .iter()
            .rposition(|c| *c == format!("remove {release}"))
            .unwrap();
        assert!(at(&format!("follow_logs {release}")) < removed);
        for app in ["app-1", "app-2", "app-3"] {
            assert!(removed < at(&format!("create {}", name(&d, app))), "{app}");
        }
        assert_eq!(
            calls
                .iter()
                .filter(|c| c.starts_with("start ") && c.contains("-release-run-"))
                .count(),
            1
        );
        assert!(fake.container(&release).is_none(), "the one-off is removed");
        // Its labels: Compose's one-off of the app service.
        // (checked on the spec, as the fake removed the container)
        let c = &d.release.as_ref().unwrap().container;
        let labels = docker::container_labels(&d, c);
        assert_eq!(labels[crate::labels::LABEL_ONEOFF], "True");
        assert_eq!(labels[crate::labels::LABEL_SERVICE], "app");
        // Unchanged afterwards: no release.
        let again = plan::plan(&d, &HostEngine::observe(&fake, &d.project).await.unwrap());
        assert!(again.is_empty(), "{again}");
    }

    #[tokio::test]
    async fn a_failed_release_replaces_nothing_and_its_output_is_in_the_error() {
        let fake = FakeHost::new();
        let before = deployment(MIGRATE);
        converge(&fake, &before, LONG).await.unwrap();
        let ids: Vec<String> = ["app-1", "app-2", "app-3"]
            .iter()
            .map(|a| fake.container(&name(&before, a)).unwrap().id)
            .collect();
        let after = deployment(&format!("{MIGRATE}APP_ENV_X=2\n"));
        let release = release_name(&fake, &after).await;
        fake.exits(&release, 3);
        let err = format!("{:#}", converge(&fake, &after, LONG).await.unwrap_err());
        assert!(
            err.starts_with("release command `migrate` exited with 3"),
            "{err}"
        );
        assert!(err.contains("nothing was created or replaced"), "{err}");
        assert!(
            err.contains(&format!("{release}: the fake engine's log line")),
            "{err}"
        );
        let now: Vec<String> = ["app-1", "app-2", "app-3"]
            .iter()
            .map(|a| fake.container(&name(&before, a)).unwrap().id)
            .collect();
        assert_eq!(ids, now, "the running instances are the same containers");
        assert!(
            !fake.calls().iter().any(|c| c.contains("-next")),
            "nothing replaced"
        );
        assert!(fake.container(&release).is_none(), "the one-off is removed");
    }

    #[tokio::test]
    async fn a_failed_release_on_a_first_deploy_creates_no_instance() {
        let fake = FakeHost::new();
        let d = deployment(MIGRATE);
        let release = release_name(&fake, &d).await;
        fake.exits(&release, 1);
        converge(&fake, &d, LONG).await.unwrap_err();
        assert!(
            !fake.container_names().iter().any(|n| n.contains("-app-")),
            "{:?}",
            fake.container_names()
        );
    }

    #[tokio::test]
    async fn backup_before_release_runs_after_the_data_stores_and_before_the_release() {
        use futures_util::FutureExt;
        let fake = FakeHost::new();
        let d = deployment(&format!("{MIGRATE}BACKUP_BEFORE_RELEASE=true\n"));
        let release = release_name(&fake, &d).await;
        // The hook records where in the engine's calls it ran.
        let ran_at = std::sync::Mutex::new(None);
        let backup = || {
            *ran_at.lock().unwrap() = Some(fake.calls().len());
            async { Ok("proj-backup.radar-backup".to_string()) }.boxed()
        };
        converge_with(&fake, &d, LONG, Some(&backup)).await.unwrap();
        let at = ran_at.lock().unwrap().expect("the backup ran");
        assert!(fake.position(&format!("ready {}", name(&d, "postgres"))) < at);
        assert!(at <= fake.position(&format!("create {release}")));

        // A failed backup: no release, no instance.
        let fresh = FakeHost::new();
        let failing = || async { Err(anyhow!("disk full")) }.boxed();
        let err = format!(
            "{:#}",
            converge_with(&fresh, &d, LONG, Some(&failing))
                .await
                .unwrap_err()
        );
        assert!(
            err.contains("nothing was created or replaced") && err.contains("disk full"),
            "{err}"
        );
        assert!(!fresh.calls().iter().any(|c| c.contains("-release-run-")));
        assert!(!fresh.container_names().iter().any(|n| n.contains("-app-")));

        // Planned but not offered: a clear error, nothing run.
        let none = FakeHost::new();
        let err = format!("{:#}", converge(&none, &d, LONG).await.unwrap_err());
        assert!(err.contains("backup before the release"), "{err}");
    }
}
