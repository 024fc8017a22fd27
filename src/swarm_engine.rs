//! The operations on the Swarm target: `up`, `scale`, `down`, `status` and `logs` on a swarm.
//! `up` and `scale` observe the swarm (`DockerClient::observe_swarm`), ask the pure plan
//! ([`crate::swarm::plan`]) what to do, and [`apply`] it: the executor decides nothing, it
//! runs the plan's steps tier by tier and waits, with a deadline, until each service has
//! converged ([`crate::swarm::convergence`]).
//!
//! The executor states the Docker verbs it needs as [`SwarmVerbs`], implemented here for the
//! facade and in `fake::swarm` for its unit tests.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::desired::Role;
use crate::docker::DockerClient;
use crate::lock::ProjectLock;
use crate::readiness::POLL_INTERVAL;
use crate::status::{ServiceStatus, SwarmStatus};
use crate::swarm::convergence::{convergence, Convergence};
use crate::swarm::observed::{
    ObjectKind, ObservedNode, ObservedService, ObservedTask, SpecHash, SwarmObserved,
};
use crate::swarm::plan::{ServiceAction, SwarmPlan};
use crate::swarm::{self, Service, Stack, SwarmConfig, SwarmSecret};
use crate::ui::Ui;
use crate::{app_image, certificates};

/// Config and secret name → id, for the specs that mount them.
pub type ObjectIds = HashMap<String, String>;

/// The Docker verbs the Swarm executor uses: each does one thing and decides nothing.
#[allow(async_fn_in_trait)] // used generically within the crate, never as `dyn` or across threads
pub trait SwarmVerbs {
    /// The hashes of the spec `create_service`/`update_service` would send (see [`SpecHash`]).
    fn spec_hash(&self, st: &Stack, s: &Service, ids: &ObjectIds) -> SpecHash;
    async fn add_node_labels(&self, node_id: &str, labels: &[String]) -> Result<()>;
    async fn create_overlay_network(&self, project: &str, name: &str) -> Result<()>;
    /// Returns the new config's id.
    async fn create_config(&self, project: &str, c: &SwarmConfig) -> Result<String>;
    /// Returns the new secret's id.
    async fn create_secret(&self, project: &str, s: &SwarmSecret) -> Result<String>;
    /// Returns the hash the service's tasks carry.
    async fn create_service(&self, st: &Stack, s: &Service, ids: &ObjectIds) -> Result<String>;
    /// Returns the hash the tasks of the new spec carry.
    async fn update_service(&self, st: &Stack, s: &Service, ids: &ObjectIds) -> Result<String>;
    /// `kind`: `config` or `secret`; `name`: its name or id. Missing is fine.
    async fn remove_config_or_secret(&self, kind: &str, name: &str) -> Result<()>;
    async fn list_services(&self, project: &str) -> Result<Vec<ObservedService>>;
    /// The tasks Swarm wants running.
    async fn service_tasks(&self, service: &str) -> Result<Vec<ObservedTask>>;
    /// Every task Swarm still knows, those it is stopping included.
    async fn all_service_tasks(&self, service: &str) -> Result<Vec<ObservedTask>>;
    /// Runs a command in a container; returns its exit code and output.
    async fn exec(&self, container: &str, cmd: &[String]) -> Result<(i64, String)>;
    async fn remove_service(&self, name: &str) -> Result<()>;
    /// The project's services, configs, secrets and networks, as `kind name`.
    async fn stack_leftovers(&self, project: &str) -> Result<Vec<String>>;
    async fn remove_network(&self, name: &str) -> Result<()>;
    /// How many containers of the project's tasks exist on this node.
    async fn stack_containers(&self, project: &str) -> Result<usize>;
    async fn stack_volumes(&self, project: &str) -> Result<Vec<String>>;
    async fn remove_volume(&self, name: &str) -> Result<()>;
    /// Every node of the swarm with its state and labels.
    async fn swarm_nodes(&self) -> Result<Vec<ObservedNode>>;
    async fn remove_node_labels(&self, node_id: &str, labels: &[String]) -> Result<()>;
    /// Creates the release command's one-off job service (see `DockerClient::create_job`).
    async fn create_job(&self, st: &Stack, job: &Service, ids: &ObjectIds) -> Result<()>;
    /// A task's whole log, as lines (once it has ended).
    async fn task_log_lines(&self, task_id: &str) -> Result<Vec<String>>;
}

impl SwarmVerbs for DockerClient {
    fn spec_hash(&self, st: &Stack, s: &Service, ids: &ObjectIds) -> SpecHash {
        DockerClient::spec_hash(self, st, s, ids)
    }
    async fn add_node_labels(&self, node_id: &str, labels: &[String]) -> Result<()> {
        Ok(DockerClient::add_node_labels(self, node_id, labels).await?)
    }
    async fn create_overlay_network(&self, project: &str, name: &str) -> Result<()> {
        Ok(DockerClient::create_overlay_network(self, project, name).await?)
    }
    async fn create_config(&self, project: &str, c: &SwarmConfig) -> Result<String> {
        Ok(DockerClient::create_config(self, project, c).await?)
    }
    async fn create_secret(&self, project: &str, s: &SwarmSecret) -> Result<String> {
        Ok(DockerClient::create_secret(self, project, s).await?)
    }
    async fn create_service(&self, st: &Stack, s: &Service, ids: &ObjectIds) -> Result<String> {
        Ok(DockerClient::create_service(self, st, s, ids).await?)
    }
    async fn update_service(&self, st: &Stack, s: &Service, ids: &ObjectIds) -> Result<String> {
        Ok(DockerClient::update_service(self, st, s, ids).await?)
    }
    async fn remove_config_or_secret(&self, kind: &str, name: &str) -> Result<()> {
        Ok(DockerClient::remove_config_or_secret(self, kind, name).await?)
    }
    async fn list_services(&self, project: &str) -> Result<Vec<ObservedService>> {
        Ok(DockerClient::list_services(self, project).await?)
    }
    async fn service_tasks(&self, service: &str) -> Result<Vec<ObservedTask>> {
        Ok(DockerClient::service_tasks(self, service).await?)
    }
    async fn all_service_tasks(&self, service: &str) -> Result<Vec<ObservedTask>> {
        Ok(DockerClient::all_service_tasks(self, service).await?)
    }
    async fn exec(&self, container: &str, cmd: &[String]) -> Result<(i64, String)> {
        Ok(DockerClient::exec(self, container, cmd).await?)
    }
    async fn remove_service(&self, name: &str) -> Result<()> {
        Ok(DockerClient::remove_service(self, name).await?)
    }
    async fn stack_leftovers(&self, project: &str) -> Result<Vec<String>> {
        Ok(DockerClient::stack_leftovers(self, project).await?)
    }
    async fn remove_network(&self, name: &str) -> Result<()> {
        Ok(DockerClient::remove_network(self, name).await?)
    }
    async fn stack_containers(&self, project: &str) -> Result<usize> {
        Ok(DockerClient::stack_containers(self, project).await?)
    }
    async fn stack_volumes(&self, project: &str) -> Result<Vec<String>> {
        Ok(DockerClient::stack_volumes(self, project).await?)
    }
    async fn remove_volume(&self, name: &str) -> Result<()> {
        Ok(DockerClient::remove_volume(self, name).await?)
    }
    async fn swarm_nodes(&self) -> Result<Vec<ObservedNode>> {
        Ok(DockerClient::swarm_nodes(self).await?)
    }
    async fn remove_node_labels(&self, node_id: &str, labels: &[String]) -> Result<()> {
        Ok(DockerClient::remove_node_labels(self, node_id, labels).await?)
    }
    async fn create_job(&self, st: &Stack, job: &Service, ids: &ObjectIds) -> Result<()> {
        Ok(DockerClient::create_job(self, st, job, ids).await?)
    }
    async fn task_log_lines(&self, task_id: &str) -> Result<Vec<String>> {
        use futures_util::StreamExt;
        let mut lines = Vec::new();
        let mut s = Box::pin(self.task_logs(task_id, None, false));
        while let Some(line) = s.next().await {
            lines.push(line?.text);
        }
        Ok(lines)
    }
}

#[derive(Debug, Default)]
pub struct UpReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Node labels added, with the node's host name.
    pub labelled: Vec<(String, String)>,
    pub nginx_reloaded: bool,
    pub elapsed: Duration,
}

/// The facade's spec hash of every service of the stack, with the ids of the configs and
/// secrets already on the swarm: what the plan compares with the services there.
pub fn spec_hashes(
    docker: &impl SwarmVerbs,
    st: &Stack,
    observed: &SwarmObserved,
) -> BTreeMap<String, SpecHash> {
    let ids = observed.object_ids();
    st.services
        .iter()
        .map(|s| (st.service_name(s), docker.spec_hash(st, s, &ids)))
        .collect()
}

/// The app service's image.
fn app_image(st: &Stack) -> Option<&str> {
    st.services
        .iter()
        .find(|s| s.spec.role == Role::App)
        .map(|s| s.spec.image.as_str())
}

/// `up --target swarm --dry-run`: what `up` would change on the swarm, in the order it would;
/// nothing is changed. `app_builder_image`: as for [`up`].
pub async fn plan(docker: &DockerClient, st: &Stack, app_builder_image: &str) -> Result<SwarmPlan> {
    docker.swarm_manager().await?;
    let observed = docker.observe_swarm(&st.project).await?;
    let mut plan = swarm::plan(st, &observed, &spec_hashes(docker, st, &observed))?;
    if let Some(image) = app_image(st) {
        let decision = app_image::check(docker, image).await?;
        plan.preflight = app_image::plan_line(image, app_builder_image, &decision);
    }
    Ok(plan)
}

/// Converges the stack. When the app is the reference image and it is missing or stale on the
/// manager, it is built there first with `app_builder_image`, as on one host (`app_image`);
/// other nodes need it too (no registry carries it), which is the operator's part.
pub async fn up(
    docker: &DockerClient,
    st: &Stack,
    timeout: Duration,
    app_builder_image: &str,
    ui: &Ui,
) -> Result<UpReport> {
    let t0 = Instant::now();
    docker.swarm_manager().await?;
    let _lock = ProjectLock::for_project(&docker.endpoint.host, &st.project, ui).await?;
    if let Some(image) = app_image(st) {
        app_image::ensure(docker, image, app_builder_image, ui).await?;
    }
    let observed = docker.observe_swarm(&st.project).await?;
    let plan = swarm::plan(st, &observed, &spec_hashes(docker, st, &observed))?;
    let mut report = apply(docker, st, &plan, &observed, t0 + timeout, ui).await?;
    report.elapsed = t0.elapsed();
    Ok(report)
}

/// Applies a plan: node labels, network, configs and secrets, then the services tier by tier,
/// each tier waited for (until `deadline`) before the next starts; then nginx's reload and the
/// pruning of earlier configs and secrets, as the plan says. `observed`: what the plan was
/// made from (the ids of the configs and secrets already there).
pub async fn apply(
    docker: &impl SwarmVerbs,
    st: &Stack,
    plan: &SwarmPlan,
    observed: &SwarmObserved,
    deadline: Instant,
    ui: &Ui,
) -> Result<UpReport> {
    let mut report = UpReport::default();
    let mut by_node: Vec<(&str, Vec<String>)> = vec![];
    for l in &plan.labels {
        match by_node.iter_mut().find(|(id, _)| *id == l.node_id) {
            Some((_, labels)) => labels.push(l.label.clone()),
            None => by_node.push((&l.node_id, vec![l.label.clone()])),
        }
    }
    for (node_id, labels) in &by_node {
        docker.add_node_labels(node_id, labels).await?;
    }
    for l in &plan.labels {
        ui.info(&format!(
            "node {}: label {}=true (pins it there)",
            l.host, l.label
        ));
        report.labelled.push((l.label.clone(), l.host.clone()));
    }
    if let Some(network) = &plan.network {
        docker.create_overlay_network(&st.project, network).await?;
    }
    let mut ids = observed.object_ids();
    for (kind, name) in &plan.create {
        let id = match kind {
            ObjectKind::Config => {
                let c = st.configs.iter().find(|c| c.name == *name);
                docker
                    .create_config(&st.project, c.expect("the plan's configs are the stack's"))
                    .await?
            }
            ObjectKind::Secret => {
                let s = st.secrets.iter().find(|s| s.name == *name);
                docker
                    .create_secret(&st.project, s.expect("the plan's secrets are the stack's"))
                    .await?
            }
        };
        ids.insert(name.clone(), id);
    }
    for (i, tier) in plan.tiers.iter().enumerate() {
        if let Some(r) = plan.release.as_ref().filter(|r| r.before_tier == i) {
            run_release_job(docker, st, r, &ids, deadline, ui).await?;
        }
        let mut hashes = Vec::new();
        for step in tier {
            let s = st
                .services
                .iter()
                .find(|s| s.name == step.service)
                .expect("the plan's services are the stack's");
            let (hash, note) = match &step.action {
                ServiceAction::Create => {
                    report.created += 1;
                    (
                        docker.create_service(st, s, &ids).await?,
                        Some("created".to_string()),
                    )
                }
                ServiceAction::Update { reasons, rolling } => {
                    report.updated += 1;
                    let note = if *rolling {
                        "updating".to_string()
                    } else {
                        reasons.join(", ")
                    };
                    (docker.update_service(st, s, &ids).await?, Some(note))
                }
                ServiceAction::Keep => {
                    report.unchanged += 1;
                    (step.hash.tasks.clone(), None)
                }
            };
            if let Some(note) = note {
                ui.info(&format!("service {}: {note}", step.name));
            }
            hashes.push(hash);
        }
        for (step, hash) in tier.iter().zip(&hashes) {
            let follow = step.follow_nginx.then_some(st);
            wait_converged(
                docker,
                &st.project,
                &step.name,
                step.replicas,
                hash,
                deadline,
                follow,
            )
            .await?;
        }
    }
    if plan.reload_nginx {
        reload_nginx(docker, st).await?;
        report.nginx_reloaded = true;
    }
    // One still in use (by a task being stopped) is left for the next run.
    for o in &plan.prune {
        let _ = docker.remove_config_or_secret(o.kind.as_str(), &o.id).await;
    }
    Ok(report)
}

/// Swarm's task states in which a task has ended.
const ENDED: [&str; 5] = ["complete", "failed", "rejected", "shutdown", "orphaned"];

/// The release job: once the tiers before it converged (Postgres and Redis ready), its one
/// task runs to completion; its log is shown (`release | ...`) and the job service removed
/// whatever the outcome. Anything but `complete` within the deadline (`APP_RELEASE_TIMEOUT`,
/// and `up`'s own) stops `up` before the app service is created or updated.
async fn run_release_job(
    docker: &impl SwarmVerbs,
    st: &Stack,
    r: &crate::swarm::plan::ReleaseStep,
    ids: &ObjectIds,
    deadline: Instant,
    ui: &Ui,
) -> Result<()> {
    let job = st
        .release
        .as_ref()
        .context("bug: a release step without a release command")?;
    // ── BACKUP_BEFORE_RELEASE hook (Swarm) ──────────────────────────────────────────────
    // As on one host (apply::run_release): the data stores are ready, nothing new runs yet.
    // ──────────────────────────────────────────────────────────────────────────────────────
    let shown = shell_words::join(&r.command);
    let t0 = Instant::now();
    let deadline = deadline.min(t0 + Duration::from_secs(job.timeout_secs.into()));
    ui.info(&format!("job {}: `{shown}` (the release command)", r.name));
    // A job of that name is the leftover of an interrupted run.
    docker.remove_service(&r.name).await?;
    docker.create_job(st, &job.service, ids).await?;
    let ended = loop {
        let tasks = docker.all_service_tasks(&r.name).await?;
        if let Some(t) = tasks
            .into_iter()
            .find(|t| ENDED.contains(&t.state.as_str()))
        {
            break Some(t);
        }
        if Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    let lines = match &ended {
        Some(t) => docker.task_log_lines(&t.id).await.unwrap_or_default(),
        None => vec![],
    };
    for line in &lines {
        ui.info(&format!("  release | {line}"));
    }
    let removed = docker.remove_service(&r.name).await;
    let last: Vec<&str> = lines
        .iter()
        .rev()
        .take(20)
        .rev()
        .map(String::as_str)
        .collect();
    let output = if last.is_empty() {
        "    (no output)".to_string()
    } else {
        last.iter()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let kept = "the app service was not created or updated: its running tasks keep serving";
    match ended {
        Some(t) if t.state == "complete" => {
            if let Err(e) = removed {
                ui.detail(&format!("job {}: removal failed ({e}); the next `up` removes it", r.name));
            }
            ui.info(&format!(
                "job {}: done ({:.1}s)",
                r.name,
                t0.elapsed().as_secs_f64()
            ));
            Ok(())
        }
        Some(t) => bail!(
            "release command `{shown}` failed on the swarm (task {}: {}); {kept}; its last output:\n{output}\n  fix: fix the command (APP_RELEASE_COMMAND) or the app, then run `radar-deploy up --target swarm` again",
            t.state,
            t.message
        ),
        None => bail!(
            "release command `{shown}` did not finish within {:.0}s (APP_RELEASE_TIMEOUT, or up's --timeout); its job was removed; {kept}",
            t0.elapsed().as_secs_f64()
        ),
    }
}

/// Waits until the service has converged ([`convergence`]: `replicas` tasks running the spec
/// `hash`, healthy, no rolling update in progress, none stopping); fails at once when Swarm
/// rolled an update back or paused it, and at `deadline` naming the tasks that are not there.
/// `follow`: during a rolling update of the app, nginx follows the task set: a reload each
/// time a new task is running (healthy), so nginx always knows live tasks as old ones stop —
/// the last reload before it would otherwise name only stopped tasks.
pub async fn wait_converged(
    docker: &impl SwarmVerbs,
    project: &str,
    service: &str,
    replicas: u32,
    hash: &str,
    deadline: Instant,
    follow: Option<&Stack>,
) -> Result<()> {
    let mut seen: Option<Vec<String>> = None;
    loop {
        let tasks = docker.service_tasks(service).await?;
        if let Some(st) = follow {
            let mut now: Vec<String> = tasks
                .iter()
                .filter(|t| t.running)
                .filter_map(|t| t.container_id.clone())
                .collect();
            now.sort();
            if seen.as_ref().is_some_and(|s| *s != now) {
                reload_nginx(docker, st).await?;
            }
            seen = Some(now);
        }
        let svc = docker
            .list_services(project)
            .await?
            .into_iter()
            .find(|s| s.name == service);
        let all = docker.all_service_tasks(service).await?;
        match convergence(service, replicas, hash, svc.as_ref(), &tasks, &all) {
            Convergence::Converged => return Ok(()),
            Convergence::Failed(why) => {
                // nginx follows the rolled-back task set too.
                if let Some(st) = follow {
                    reload_nginx(docker, st).await?;
                }
                bail!(why);
            }
            Convergence::Waiting(why) if Instant::now() >= deadline => bail!(why),
            Convergence::Waiting(_) => {}
        }
        tokio::time::sleep(POLL_INTERVAL * 2).await;
    }
}

/// `nginx -t`, then a reload, in every running nginx task on this node: nginx resolves
/// `tasks.app` again and so balances over the current tasks.
pub async fn reload_nginx(docker: &impl SwarmVerbs, st: &Stack) -> Result<()> {
    let Some(nginx) = st.services.iter().find(|s| s.spec.role == Role::Nginx) else {
        return Ok(());
    };
    let name = st.service_name(nginx);
    for t in docker.service_tasks(&name).await? {
        let Some(id) = t.container_id.filter(|_| t.running) else {
            continue;
        };
        let cmd = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (code, out) = docker
            .exec(&id, &cmd(&["nginx", "-t"]))
            .await
            .with_context(|| format!("nginx -t in a task of {name} (node {})", t.node_id))?;
        if code != 0 {
            bail!("nginx -t failed in a task of {name}; not reloaded:\n{out}");
        }
        let (code, out) = docker.exec(&id, &cmd(&["nginx", "-s", "reload"])).await?;
        if code != 0 {
            bail!("nginx -s reload failed in a task of {name}:\n{out}");
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
pub struct ScaleReport {
    pub from: u64,
    pub nginx_reloaded: bool,
    pub elapsed: Duration,
}

/// Whether the project's stack on the swarm runs the HA profile ([`crate::status::runs_ha`]).
pub async fn deployed_with_ha(docker: &DockerClient, project: &str) -> Result<bool> {
    let prefix = format!("{project}_");
    let services = docker.list_services(project).await?;
    Ok(crate::status::runs_ha(
        services.iter().filter_map(|s| s.name.strip_prefix(&prefix)),
    ))
}

/// `scale N` on the swarm: only the app service's replica count changes (Swarm starts or
/// stops tasks; no running task is replaced), then nginx is reloaded so its upstream lists
/// exactly the tasks that run. New tasks get traffic only after they are healthy (the reload
/// comes after the wait). A removed task drains its in-flight requests on SIGTERM; requests
/// nginx sends it meanwhile fail to connect and are retried on another task
/// (`proxy_next_upstream error`, idempotent requests only), until the reload drops it.
pub async fn scale(
    docker: &DockerClient,
    st: &Stack,
    timeout: Duration,
    ui: &Ui,
) -> Result<ScaleReport> {
    let t0 = Instant::now();
    let _lock = ProjectLock::for_project(&docker.endpoint.host, &st.project, ui).await?;
    let observed = docker.observe_swarm(&st.project).await?;
    let mut report = scale_observed(docker, st, &observed, t0 + timeout, ui).await?;
    report.elapsed = t0.elapsed();
    Ok(report)
}

/// [`scale`] from what the swarm holds: the plan of the app's replica count, applied.
pub async fn scale_observed(
    docker: &impl SwarmVerbs,
    st: &Stack,
    observed: &SwarmObserved,
    deadline: Instant,
    ui: &Ui,
) -> Result<ScaleReport> {
    let plan = swarm::plan_scale(st, observed, &spec_hashes(docker, st, observed))?;
    let from = plan
        .steps()
        .find_map(|s| observed.service(&s.name))
        .map_or(0, |s| s.replicas);
    let applied = apply(docker, st, &plan, observed, deadline, ui).await?;
    Ok(ScaleReport {
        from,
        nginx_reloaded: applied.nginx_reloaded,
        elapsed: Duration::ZERO,
    })
}

#[derive(Debug, Default)]
pub struct DownReport {
    pub services: usize,
    pub objects: usize,
    pub volumes: usize,
    pub kept_volumes: usize,
    /// Placement labels removed from this node (with `--volumes`).
    pub node_labels: usize,
    /// With `--volumes`: what other nodes keep, one message each.
    pub elsewhere: Vec<String>,
}

/// Removes the project's services, then (once their tasks are gone) its configs, secrets,
/// network and, with `volumes`, its volumes on this node.
pub async fn down(
    docker: &DockerClient,
    project: &str,
    volumes: bool,
    timeout: Duration,
    ui: &Ui,
) -> Result<DownReport> {
    let node = docker.swarm_manager().await?;
    let _lock = ProjectLock::for_project(&docker.endpoint.host, project, ui).await?;
    remove_stack(docker, project, &node, volumes, timeout).await
}

/// [`down`] on the manager `node`, the lock held.
pub async fn remove_stack(
    docker: &impl SwarmVerbs,
    project: &str,
    node: &str,
    volumes: bool,
    timeout: Duration,
) -> Result<DownReport> {
    let mut r = DownReport::default();
    let services = docker.list_services(project).await?;
    for s in &services {
        docker.remove_service(&s.name).await?;
    }
    r.services = services.len();
    // Removing a service stops its tasks asynchronously; configs, secrets, the network and
    // volumes stay in use until the containers are gone, so retry until the deadline.
    let deadline = Instant::now() + timeout;
    // A network the managers deleted stays listed on this node until its last container goes.
    let mut removed = std::collections::BTreeSet::new();
    loop {
        let mut left = Vec::new();
        for item in docker.stack_leftovers(project).await? {
            let (kind, name) = item.split_once(' ').unwrap_or(("", &item));
            let res = match kind {
                "config" | "secret" => docker.remove_config_or_secret(kind, name).await,
                "network" => docker.remove_network(name).await,
                _ => Ok(()),
            };
            match res {
                Ok(()) if kind != "service" => {
                    removed.insert(item);
                }
                _ => left.push(item),
            }
        }
        let containers = docker.stack_containers(project).await?;
        if containers > 0 {
            left.push(format!("{containers} task containers (stopping)"));
        }
        let vols = docker.stack_volumes(project).await?;
        if volumes {
            for v in &vols {
                if docker.remove_volume(v).await.is_ok() {
                    r.volumes += 1;
                } else {
                    left.push(format!("volume {v}"));
                }
            }
        } else {
            r.kept_volumes = vols.len();
        }
        if left.is_empty() {
            r.objects = removed.len();
            // This node's data is gone, so nothing needs pinning here any more. Volumes on
            // other nodes cannot be reached from this daemon: their labels stay (a later `up`
            // puts the services back on their data) and the report names them.
            if volumes {
                let prefix = crate::labels::placement_label(project, "");
                let nodes = docker.swarm_nodes().await?;
                let labels = swarm::plan::placed_labels(&nodes, node, &prefix);
                if !labels.here.is_empty() {
                    docker.remove_node_labels(node, &labels.here).await?;
                }
                r.node_labels = labels.here.len();
                r.elsewhere = labels
                    .elsewhere
                    .into_iter()
                    .map(|(host, labels)| {
                        let services: Vec<&str> = labels
                            .iter()
                            .filter_map(|l| l.strip_prefix(&prefix))
                            .collect();
                        format!(
                            "node {host} keeps the volumes of {} (not reachable from this \
                             daemon): remove them there with `docker volume rm` \
                             ({project}_*-data), then its labels with `docker node update \
                             --label-rm {prefix}<service> {host}`",
                            services.join(", ")
                        )
                    })
                    .collect();
            }
            return Ok(r);
        }
        if Instant::now() >= deadline {
            bail!(
                "{project}: still present after {}s: {}",
                timeout.as_secs(),
                left.join(", ")
            );
        }
        tokio::time::sleep(POLL_INTERVAL * 2).await;
    }
}

pub async fn status(docker: &DockerClient, project: &str) -> Result<SwarmStatus> {
    let node = docker.swarm_manager().await?;
    let mut services = Vec::new();
    let mut certificate = None;
    let hosts = docker.node_states().await?;
    for s in docker.list_services(project).await? {
        let tasks = docker.service_tasks(&s.name).await?;
        let mut nodes = std::collections::BTreeMap::new();
        for t in tasks.iter().filter(|t| t.running) {
            let host = hosts.get(&t.node_id).map_or(&t.node_id, |(h, _)| h);
            *nodes.entry(host.clone()).or_insert(0) += 1;
        }
        // The certificate as served: read from an nginx task on this node (the daemon reached
        // can read only its own containers).
        let nginx = format!("{project}_{}", Role::Nginx.service());
        if s.name == nginx && certificate.is_none() {
            let here = tasks.iter().filter(|t| t.running && t.node_id == node);
            if let Some(id) = here.filter_map(|t| t.container_id.as_deref()).next() {
                certificate = certificates::served(docker, id).await;
            }
        }
        services.push(ServiceStatus {
            nodes,
            running: tasks.iter().filter(|t| t.running).count(),
            name: s.name,
            image: s.image,
            replicas: s.replicas,
            published: s.published,
            update_state: s.update_state,
            tasks,
        });
    }
    Ok(SwarmStatus {
        certificate,
        ..SwarmStatus::new(project, services)
    })
}

/// `logs --target swarm`: the log of every task Swarm wants running, or of one service
/// (`nginx`, `app`) or app slot (`app-3`), each line prefixed with the task's name
/// (`app-3`, `nginx`), wherever in the swarm the task runs.
pub async fn logs(
    docker: &DockerClient,
    project: &str,
    service: Option<&str>,
    follow: bool,
    tail: Option<u32>,
) -> Result<()> {
    use futures_util::StreamExt;
    docker.swarm_manager().await?;
    let prefix = format!("{project}_");
    let mut services = docker.list_services(project).await?;
    services.sort_by(|a, b| a.name.cmp(&b.name));
    if services.is_empty() {
        bail!(
            "stack {project} has no services on the swarm\n  fix: `radar-deploy up --target \
             swarm` first, or pass --project"
        );
    }
    // A task on a node that is down has no log to give, and asking for it would hang.
    let nodes = docker.node_states().await?;
    let mut selected = vec![];
    let mut known = vec![];
    for s in &services {
        let short = s.name.strip_prefix(&prefix).unwrap_or(&s.name).to_string();
        let mut tasks = docker.service_tasks(&s.name).await?;
        tasks.sort_by_key(|t| t.slot);
        let numbered = tasks.len() > 1 || short == Role::App.service();
        for t in tasks {
            let name = match t.slot {
                Some(n) if numbered => format!("{short}-{n}"),
                _ => short.clone(),
            };
            known.push(name.clone());
            if service.is_none_or(|want| want == short || want == name) {
                match nodes.get(&t.node_id) {
                    Some((host, false)) => {
                        eprintln!("{name}: skipped, its node {host} is down (no log to read)")
                    }
                    _ => selected.push((name, t.id)),
                }
            }
        }
        known.push(short);
    }
    if selected.is_empty() {
        known.sort();
        known.dedup();
        bail!(
            "no service or task {:?} in stack {project}; known: {}",
            service.unwrap_or_default(),
            known.join(", ")
        );
    }
    let streams = selected
        .into_iter()
        .map(|(name, id)| (name, docker.task_logs(&id, tail, follow).boxed()))
        .collect();
    crate::engine::print_logs(streams, follow).await
}

#[cfg(test)]
mod tests;
