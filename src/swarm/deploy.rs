//! The `up`/`down`/`status` operations on the Swarm target: the stack from [`super::build`]
//! through the facade's service, config and secret calls, with a deadline on every wait.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{Service, Stack};
use crate::app_image;
use crate::desired::Role;
use crate::docker::{Deployed, DockerClient, ObservedService, SwarmMembership};
use crate::lock::ProjectLock;
use crate::readiness::POLL_INTERVAL;
use crate::status::{ServiceStatus, SwarmStatus};
use crate::ui::Ui;

/// The node this run talks to, once it is known to be a manager.
pub async fn manager(docker: &DockerClient) -> Result<String> {
    match docker.swarm_membership().await? {
        SwarmMembership::Manager { node_id } => Ok(node_id),
        SwarmMembership::Worker => bail!(
            "this Docker daemon ({}) is a swarm worker; --target swarm needs a manager\n  \
             fix: point DOCKER_HOST at a manager node, or promote this one (`docker node promote`)",
            docker.endpoint.describe()
        ),
        SwarmMembership::NotInSwarm => bail!(
            "this Docker daemon ({}) is not part of a swarm\n  fix: run `docker swarm init` \
             (or `docker swarm join` an existing swarm as a manager), or use --target single",
            docker.endpoint.describe()
        ),
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

/// Start order by readiness, as on one host: data stores, Sentinels, the app, then nginx
/// (which resolves `tasks.app` when it loads its config). On a first deploy (`cold`) the app
/// starts with the data stores: nothing serves yet, and its healthcheck's start period covers
/// the seconds until Postgres and Redis answer (it reconnects by itself), which saves a whole
/// tier of Swarm scheduling and health polling. Changes to a running stack keep the strict
/// order, so an app update never meets a data store that is restarting.
fn tiers(st: &Stack, cold: bool) -> Vec<Vec<&Service>> {
    let tier_of = |r: Role| match r {
        Role::Postgres | Role::Redis | Role::RedisReplica => 0,
        Role::Sentinel => 1,
        Role::App if cold => 0,
        Role::App => 2,
        Role::Nginx => 3,
    };
    (0..4)
        .map(|t| {
            st.services
                .iter()
                .filter(|s| tier_of(s.spec.role) == t)
                .collect()
        })
        .filter(|v: &Vec<&Service>| !v.is_empty())
        .collect()
}

/// What `up` does before the services: the node labels that pin services (nginx's on this
/// manager, whose address is where clients connect; the others spread over the nodes), the
/// network, the configs and secrets. Returns the labels added, whether the network was
/// created, and config/secret name → id. With `dry_run` nothing changes and it says what would.
async fn prepare(
    docker: &DockerClient,
    st: &Stack,
    node: &str,
    dry_run: bool,
) -> Result<(
    Vec<(String, String)>,
    bool,
    std::collections::HashMap<String, String>,
)> {
    let (edge, spread): (Vec<&Service>, Vec<&Service>) = st
        .services
        .iter()
        .filter(|s| !s.constraints.is_empty())
        .partition(|s| s.spec.role == Role::Nginx);
    let label = |s: &&Service| st.placement_label(&s.name);
    let edge: Vec<String> = edge.iter().map(label).collect();
    let keys: Vec<String> = spread.iter().map(label).collect();
    let prefix = st.placement_label("");
    let labelled = docker
        .ensure_node_labels(node, &keys, &edge, &prefix, dry_run)
        .await?;
    let network = docker
        .ensure_overlay_network(&st.project, &st.network, dry_run)
        .await?;
    let ids = docker.ensure_configs_and_secrets(st, dry_run).await?;
    Ok((labelled, network, ids))
}

/// The app service's image.
fn app_image(st: &Stack) -> Option<&str> {
    st.services
        .iter()
        .find(|s| s.spec.role == Role::App)
        .map(|s| s.spec.image.as_str())
}

/// `up --target swarm --dry-run`: what `up` would change on the swarm, one line each, in the
/// order it would; nothing is changed. `app_builder_image`: as for [`up`].
pub async fn plan(
    docker: &DockerClient,
    st: &Stack,
    app_builder_image: &str,
) -> Result<Vec<String>> {
    let node = manager(docker).await?;
    let (labelled, network, ids) = prepare(docker, st, &node, true).await?;
    let mut lines: Vec<String> = Vec::new();
    if let Some(image) = app_image(st) {
        let decision = app_image::check(docker, image).await?;
        lines.extend(app_image::plan_line(image, app_builder_image, &decision));
    }
    lines.extend(
        labelled.iter().map(|(label, host)| {
            format!("label   node {host}: {label}=true (pins a service there)")
        }),
    );
    if network {
        lines.push(format!(
            "create  network {} (overlay, attachable)",
            st.network
        ));
    }
    for (name, kind) in st
        .configs
        .iter()
        .map(|c| (&c.name, "config"))
        .chain(st.secrets.iter().map(|s| (&s.name, "secret")))
    {
        if ids.get(name).is_none_or(String::is_empty) {
            lines.push(format!("create  {kind} {name}"));
        }
    }
    let cold = docker.list_services(&st.project).await?.is_empty();
    for s in tiers(st, cold).into_iter().flatten() {
        let name = st.service_name(s);
        let (what, _) = docker.deploy_service(st, s, &ids, true).await?;
        lines.push(match what {
            Deployed::Created => format!(
                "create  service {name} ({} task{})",
                s.replicas,
                if s.replicas == 1 { "" } else { "s" }
            ),
            Deployed::Updated => format!(
                "update  service {name} (its spec changed: Swarm's rolling update, {})",
                match s.update_order {
                    super::UpdateOrder::StartFirst => "start-first",
                    super::UpdateOrder::StopFirst => "stop-first",
                }
            ),
            Deployed::Unchanged => format!("keep    service {name} (unchanged)"),
        });
    }
    Ok(lines)
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
    let node = manager(docker).await?;
    let _lock = ProjectLock::for_project(&docker.endpoint.host, &st.project, ui).await?;
    let mut report = UpReport::default();
    if let Some(image) = app_image(st) {
        app_image::ensure(docker, image, app_builder_image, ui).await?;
    }

    let (labelled, _, ids) = prepare(docker, st, &node, false).await?;
    for (label, host) in &labelled {
        ui.info(&format!("node {host}: label {label}=true (pins it there)"));
    }
    report.labelled = labelled;

    let cold = docker.list_services(&st.project).await?.is_empty();
    let mut app_changed = false;
    let mut nginx_changed = false;
    for tier in tiers(st, cold) {
        let mut hashes = Vec::new();
        let mut outcomes = Vec::new();
        for s in &tier {
            let (what, hash) = docker.deploy_service(st, s, &ids, false).await?;
            hashes.push(hash);
            outcomes.push(what);
            match what {
                Deployed::Created => report.created += 1,
                Deployed::Updated => report.updated += 1,
                Deployed::Unchanged => report.unchanged += 1,
            }
            if what != Deployed::Unchanged {
                ui.info(&format!(
                    "service {}: {}",
                    st.service_name(s),
                    if what == Deployed::Created {
                        "created"
                    } else {
                        "updating"
                    }
                ));
                match s.spec.role {
                    Role::App => app_changed = true,
                    Role::Nginx => nginx_changed = true,
                    _ => {}
                }
            }
        }
        let deadline = t0 + timeout;
        for ((s, hash), what) in tier.iter().zip(&hashes).zip(&outcomes) {
            let follow = (s.spec.role == Role::App && *what == Deployed::Updated).then_some(st);
            wait_converged(
                docker,
                &st.project,
                &st.service_name(s),
                s.replicas,
                hash,
                deadline,
                follow,
            )
            .await?;
        }
    }
    // nginx resolved `tasks.app` when it loaded its config; a new task set needs a reload.
    if app_changed && !nginx_changed {
        reload_nginx(docker, st).await?;
        report.nginx_reloaded = true;
    }
    // Configs and secrets of earlier versions, no longer used by any service.
    let keep: Vec<String> = st
        .configs
        .iter()
        .map(|c| c.name.clone())
        .chain(st.secrets.iter().map(|s| s.name.clone()))
        .collect();
    docker.prune_configs_and_secrets(&st.project, &keep).await?;
    report.elapsed = t0.elapsed();
    Ok(report)
}

/// Waits until the service has `replicas` tasks running the spec `hash` (healthy: a task with
/// a healthcheck counts as running only once healthy) and no rolling update in progress; fails at once when
/// Swarm rolled an update back or paused it.
pub async fn wait_converged(
    docker: &DockerClient,
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
        // During a rolling update of the app, nginx follows the task set: a reload each time a
        // new task is running (healthy), so nginx always knows live tasks as old ones stop —
        // the last reload before it would otherwise name only stopped tasks.
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
        let svc: Option<ObservedService> = docker
            .list_services(project)
            .await?
            .into_iter()
            .find(|s| s.name == service);
        let update = svc.as_ref().and_then(|s| s.update_state.clone());
        if let Some(state @ ("rollback_completed" | "paused" | "rollback_paused")) =
            update.as_deref()
        {
            if let Some(st) = follow {
                reload_nginx(docker, st).await?;
            }
            bail!(
                "service {service}: Swarm's rolling update ended in {state}: {}",
                svc.and_then(|s| s.update_message).unwrap_or_default()
            );
        }
        let running = tasks
            .iter()
            .filter(|t| t.running && t.config_hash.as_deref() == Some(hash))
            .count();
        let updating = matches!(update.as_deref(), Some("updating" | "rollback_started"));
        // Tasks being stopped (scale down, replaced) still answer on their addresses and are
        // still in `tasks.app`: converged only once they are gone, so nginx's reload drops them.
        let stopping = docker
            .all_service_tasks(service)
            .await?
            .iter()
            .filter(|t| t.running && t.desired != "running")
            .count();
        if running == replicas as usize
            && tasks.len() == replicas as usize
            && !updating
            && stopping == 0
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let states: Vec<String> = tasks
                .iter()
                .map(|t| {
                    format!(
                        "slot {}: {} {}",
                        t.slot.unwrap_or(0),
                        t.state,
                        t.message.trim()
                    )
                })
                .collect();
            bail!(
                "service {service}: {running}/{replicas} tasks running and healthy by the \
                 deadline (tasks: {})\n  fix: `docker service ps --no-trunc {service}` shows \
                 why; raise --timeout if the node is slow",
                if states.is_empty() {
                    "none scheduled".to_string()
                } else {
                    states.join("; ")
                }
            );
        }
        tokio::time::sleep(POLL_INTERVAL * 2).await;
    }
}

/// `nginx -t`, then a reload, in every running nginx task on this node: nginx resolves
/// `tasks.app` again and so balances over the current tasks.
pub async fn reload_nginx(docker: &DockerClient, st: &Stack) -> Result<()> {
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
    let app = st
        .services
        .iter()
        .find(|s| s.spec.role == Role::App)
        .expect("every stack has the app service");
    let name = st.service_name(app);
    let from = docker
        .list_services(&st.project)
        .await?
        .into_iter()
        .find(|s| s.name == name)
        .map(|s| s.replicas)
        .with_context(|| {
            format!(
                "service {name} not found: deploy first with `up --target swarm` (is --project right?)"
            )
        })?;
    let ids = docker.ensure_configs_and_secrets(st, false).await?;
    let (what, hash) = docker.deploy_service(st, app, &ids, false).await?;
    if what != Deployed::Unchanged {
        ui.info(&format!("service {name}: {from} → {} tasks", app.replicas));
    }
    wait_converged(
        docker,
        &st.project,
        &name,
        app.replicas,
        &hash,
        t0 + timeout,
        None,
    )
    .await?;
    let nginx_reloaded = what != Deployed::Unchanged;
    if nginx_reloaded {
        reload_nginx(docker, st).await?;
    }
    Ok(ScaleReport {
        from,
        nginx_reloaded,
        elapsed: t0.elapsed(),
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
    let node = manager(docker).await?;
    let _lock = ProjectLock::for_project(&docker.endpoint.host, project, ui).await?;
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
                let (removed, elsewhere) = docker.remove_node_labels(&node, &prefix).await?;
                r.node_labels = removed;
                r.elsewhere = elsewhere
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
    manager(docker).await?;
    let mut services = Vec::new();
    let hosts = docker.node_states().await?;
    for s in docker.list_services(project).await? {
        let tasks = docker.service_tasks(&s.name).await?;
        let mut nodes = std::collections::BTreeMap::new();
        for t in tasks.iter().filter(|t| t.running) {
            let host = hosts.get(&t.node_id).map_or(&t.node_id, |(h, _)| h);
            *nodes.entry(host.clone()).or_insert(0) += 1;
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
    Ok(SwarmStatus::new(project, services))
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
    manager(docker).await?;
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
