//! `drill instance`: SIGKILL one app instance under load. Its restart policy brings it back;
//! meanwhile nginx must send every request elsewhere (`proxy_next_upstream` retries idempotent
//! GETs on the next instance). Full health is back when the instance passes its healthcheck
//! again and answers through nginx.
//!
//! On one host the same container is restarted. On Swarm the killed task is replaced by a new
//! task (a new container, a new address) in the same slot, so it keeps its name (`app-N`);
//! nginx learns the new address from its `tasks.app` watcher (see `swarm.rs`). Both are
//! measured by one loop ([`measure`]); only how the instance is found, killed and watched
//! differs ([`Victim`]).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::stats;
use super::{
    assemble, first_served_by, is_running, stop_waiting, Event, Measured, Options, Recovery, Report,
};
use crate::desired::Role;
use crate::observed::ObservedContainer;
use crate::readiness::{assess, Verdict};
use crate::swarm::ObservedTask;

const POLL: Duration = Duration::from_millis(100);

/// The instance a drill kills, and how its recovery is seen.
enum Victim {
    /// A container on one host: its restart policy starts the same container again.
    Container { name: String, id: String },
    /// A task of the Swarm app service: Swarm replaces it with a new task in the same slot.
    Task {
        service: String,
        slot: i64,
        container_id: String,
    },
}

impl Victim {
    /// How the fault and the report name it.
    fn describe(&self) -> String {
        match self {
            Victim::Container { name, .. } => name.clone(),
            Victim::Task {
                service,
                slot,
                container_id,
            } => format!("task in slot {slot} of {service}, container {container_id:.12}"),
        }
    }

    /// Ready while the instance is up, or once it (or its replacement) is healthy again.
    async fn state(&self, opts: &Options) -> Verdict {
        let probe = |c: String| async move {
            match opts.docker.probe(&c, &opts.app_readiness).await {
                Ok(p) => assess(&opts.app_readiness, &p),
                Err(e) => Verdict::Failed(e.to_string()),
            }
        };
        match self {
            Victim::Container { name, .. } => probe(name.clone()).await,
            Victim::Task {
                service,
                slot,
                container_id,
            } => {
                if probe(container_id.clone()).await == Verdict::Ready {
                    return Verdict::Ready;
                }
                // The killed container never runs again; a new task in its slot does.
                let replacement = opts
                    .docker
                    .service_tasks(service)
                    .await
                    .ok()
                    .and_then(|ts| {
                        ts.into_iter()
                            .find(|t| {
                                t.slot == Some(*slot)
                                    && t.running
                                    && t.container_id.as_ref() != Some(container_id)
                            })
                            .and_then(|t| t.container_id)
                    });
                match replacement {
                    Some(c) => match probe(c).await {
                        Verdict::Ready => Verdict::Ready,
                        _ => Verdict::NotYet,
                    },
                    None => Verdict::NotYet,
                }
            }
        }
    }

    fn container(&self) -> (&str, &str) {
        match self {
            Victim::Container { name, id } => (name, id),
            Victim::Task { container_id, .. } => (container_id, container_id),
        }
    }
}

/// `drill instance` on one host: the container of `--instance` (default the highest numbered).
pub async fn run(
    opts: &Options,
    containers: &[ObservedContainer],
    progress: &dyn Fn(&str),
) -> Result<Report> {
    let mut apps: Vec<&ObservedContainer> = containers
        .iter()
        .filter(|c| c.role_kind() == Some(Role::App))
        .collect();
    apps.sort_by_key(|c| c.instance_number());
    let listed = || {
        apps.iter()
            .map(|c| c.alias())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let target = match &opts.instance {
        Some(t) => match apps.iter().find(|c| &c.alias() == t || &c.name == t) {
            Some(c) => *c,
            None => bail!(
                "--instance {t}: no such app instance in project {} (instances: {})",
                opts.project,
                listed()
            ),
        },
        None => match apps.last() {
            Some(c) => *c,
            None => bail!(
                "project {} has no app instances: is the stack up?",
                opts.project
            ),
        },
    };
    let alias = target.alias();
    if !is_running(target) {
        bail!(
            "{alias} ({}) is not running ({}): a drill starts from a healthy deployment",
            target.name,
            target.status
        );
    }
    let victim = Victim::Container {
        name: target.name.clone(),
        id: target.id.clone(),
    };
    healthy_before(opts, &victim, &alias).await?;
    measure(opts, &victim, alias, apps.len(), progress).await
}

/// `drill instance --target swarm`: the task in the slot `--instance app-N` names (default the
/// highest slot). Its container must run on this daemon's node: that is where it can be killed.
pub async fn run_swarm(opts: &Options, node: &str, progress: &dyn Fn(&str)) -> Result<Report> {
    let service = format!("{}_{}", opts.project, Role::App.service());
    let mut tasks: Vec<ObservedTask> = opts.docker.service_tasks(&service).await?;
    if tasks.is_empty() {
        bail!(
            "service {service} has no tasks: is the stack up (radar-deploy up --target swarm), and is --project right?"
        );
    }
    tasks.sort_by_key(|t| t.slot.unwrap_or(0));
    let alias_of = |t: &ObservedTask| format!("app-{}", t.slot.unwrap_or(0));
    let listed = |on_node: bool| {
        tasks
            .iter()
            .filter(|t| !on_node || t.node_id == node)
            .map(alias_of)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let task = match &opts.instance {
        Some(i) => {
            let Some(slot) = task_slot(i) else {
                bail!(
                    "--instance {i}: on Swarm an instance is app-N, the task in slot N (instances: {})",
                    listed(false)
                );
            };
            match tasks.iter().find(|t| t.slot == Some(slot)) {
                Some(t) => t,
                None => bail!(
                    "--instance {i}: service {service} has no task in slot {slot} (instances: {})",
                    listed(false)
                ),
            }
        }
        None => tasks.last().expect("not empty"),
    };
    let alias = alias_of(task);
    let (true, Some(container_id)) = (task.running, task.container_id.clone()) else {
        bail!(
            "{alias} (slot {} of {service}) is not running ({} {}): a drill starts from a healthy deployment; run `radar-deploy verify --target swarm`",
            task.slot.unwrap_or(0),
            task.state,
            task.message.trim()
        );
    };
    if task.node_id != node {
        let there = opts
            .docker
            .node_hostname(&task.node_id)
            .await
            .unwrap_or_else(|_| task.node_id.clone());
        let here = listed(true);
        bail!(
            "{alias} runs on node {there} ({:.12}), not on the node of this Docker daemon ({node:.12}): \
             a task's container can only be killed through the daemon of its node\n  fix: run the \
             drill against that node's daemon (DOCKER_HOST; it must be a manager){}",
            task.node_id,
            if here.is_empty() {
                String::new()
            } else {
                format!(", or pick an instance on this node with --instance ({here})")
            }
        );
    }
    let victim = Victim::Task {
        service,
        slot: task.slot.unwrap_or(0),
        container_id,
    };
    healthy_before(opts, &victim, &alias).await?;
    measure(opts, &victim, alias, tasks.len(), progress).await
}

/// `app-3` → slot 3.
fn task_slot(instance: &str) -> Option<i64> {
    instance
        .strip_prefix("app-")
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
}

async fn healthy_before(opts: &Options, victim: &Victim, alias: &str) -> Result<()> {
    let (container, _) = victim.container();
    let before = opts.docker.probe(container, &opts.app_readiness).await?;
    if assess(&opts.app_readiness, &before) != Verdict::Ready {
        bail!(
            "{alias} ({}) is not healthy before the drill ({}): a drill starts from a healthy deployment; run `radar-deploy verify`",
            victim.describe(),
            before.last_output().unwrap_or_else(|| format!("{:?}", before.state))
        );
    }
    Ok(())
}

/// Kills the instance under load and follows it back: down, healthy, serving through nginx.
async fn measure(
    opts: &Options,
    victim: &Victim,
    alias: String,
    instances: usize,
    progress: &dyn Fn(&str),
) -> Result<Report> {
    let on_swarm = matches!(victim, Victim::Task { .. });
    let mut notes = vec![];
    if instances < 2 {
        notes.push(format!(
            "only one app instance ({alias}): nothing can serve while it is down"
        ));
    }

    let (load, mut timeline) = opts.start_load(progress).await?;
    // The app reports INSTANCE_ID, which radar-deploy sets to the alias; an app that reports
    // something else cannot be followed through nginx, and the report says so.
    let seen_before = load.live.last_success_of(&alias).is_some();

    // On one host a restart policy can start the container again between two polls; its
    // start time then shows the crash the poll missed.
    let started_before = match victim {
        Victim::Container { name, .. } => opts
            .docker
            .container_facts(name)
            .await
            .ok()
            .map(|f| f.started_at),
        Victim::Task { .. } => None,
    };
    let fault_at_ms = load.now_ms();
    let fault_started = Instant::now();
    let (name, id) = victim.container();
    let how = match crash(opts, name, id).await {
        Ok(how) => how,
        Err(e) => {
            load.stop().await;
            return Err(e);
        }
    };
    // Any answer from the instance to a request sent from now on comes from a new process.
    let dead_ms = load.now_ms();
    progress(&format!(
        "{alias} ({}) {}",
        victim.describe(),
        how.describe()
    ));
    timeline.push(Event {
        at_ms: fault_at_ms,
        what: format!("{alias} {}", how.describe()),
    });
    // Swarm replaces a task whose container stopped, however it was killed.
    if how == Crash::ApiKill && !on_swarm {
        notes.push(
            "the Docker daemon is not local (or its processes cannot be signalled from here), so the \
             instance was killed through the API: Docker then disables the restart policy until the \
             next start, and the drill starts the container itself as soon as it is down, as the \
             restart policy does after a real crash"
                .into(),
        );
    }
    let deadline = fault_started + opts.timeout;
    let duration_ms = opts.duration.as_millis() as u64;
    let (mut down, mut healthy, mut serving) = (None::<u64>, None::<u64>, None::<u64>);
    let mut restarted = false;
    let mut verified = None::<Result<u64, String>>;
    loop {
        let now = load.now_ms();
        let verdict = victim.state(opts).await;
        let restarted_unseen = match (&started_before, down) {
            (Some(before), None) => opts
                .docker
                .container_facts(name)
                .await
                .is_ok_and(|f| &f.started_at != before),
            _ => false,
        };
        match (down, healthy, verdict) {
            (None, _, Verdict::Ready) if !restarted_unseen => {}
            (None, _, _) => {
                down = Some(now);
                progress(&format!("{alias} is down"));
                timeline.push(Event {
                    at_ms: now,
                    what: format!("{alias} seen down"),
                });
            }
            (Some(_), None, Verdict::Failed(_))
                if how == Crash::ApiKill && !restarted && !on_swarm =>
            {
                restarted = true;
                if let Err(e) = opts.docker.start(victim.container().0).await {
                    notes.push(format!("{alias} could not be started again: {e}"));
                }
                timeline.push(Event {
                    at_ms: load.now_ms(),
                    what: format!(
                        "{alias} started again by the drill (standing in for the restart policy)"
                    ),
                });
            }
            (Some(_), None, Verdict::Ready) => {
                healthy = Some(now);
                let how = if on_swarm {
                    "Swarm's new task in its slot passes the healthcheck"
                } else {
                    "its healthcheck passes"
                };
                progress(&format!("{alias} is healthy again ({how})"));
                timeline.push(Event {
                    at_ms: now,
                    what: format!("{alias} healthy again ({how})"),
                });
            }
            _ => {}
        }
        if let (Some(_), None) = (down, serving) {
            if load
                .live
                .last_success_of(&alias)
                .is_some_and(|t| t > dead_ms)
            {
                serving = Some(now);
                progress(&format!("{alias} answers through nginx again"));
            }
        }
        let recovered = healthy.is_some() && (serving.is_some() || !seen_before);
        if recovered && verified.is_none() && !on_swarm {
            verified = Some(super::fault::verify(opts, || load.now_ms()).await);
        }
        if recovered && now >= duration_ms {
            break;
        }
        if stop_waiting(recovered, deadline, &alias, opts, progress) {
            break;
        }
        load.tick(progress);
        tokio::time::sleep(POLL).await;
    }
    let result = load.stop().await;

    // Put things back: an instance its restart policy did not revive is started by hand. On
    // Swarm only Swarm can start a task; the report says where to look.
    match victim {
        _ if healthy.is_some() => {}
        Victim::Container { name, .. } => match opts.docker.start(name).await {
            Ok(()) => notes.push(format!(
                "{alias} did not come back by itself; the drill started it again"
            )),
            Err(e) => notes.push(format!("{alias} could not be started again: {e}")),
        },
        Victim::Task { service, slot, .. } => notes.push(format!(
            "Swarm did not bring a healthy task back into slot {slot} before the drill ended: \
             `docker service ps --no-trunc {service}` shows why"
        )),
    }

    // Exact times from the samples rather than the poll: the first answer from the restarted
    // instance.
    let served_at = first_served_by(&result.samples, &alias, dead_ms);
    if let Some(t) = served_at {
        timeline.push(Event {
            at_ms: t,
            what: format!("{alias} answered through nginx again"),
        });
    }
    if let (Some(h), Some(s)) = (healthy, served_at) {
        if s > h + 5000 && on_swarm {
            notes.push(format!(
                "nginx sent {alias} no request for {} after its new task was healthy: nginx \
                 learns a new task's address when its watcher sees `tasks.app` change (every \
                 {} s); is the watcher running (`docker service logs` of nginx shows its reloads)?",
                stats::secs(s - h),
                crate::swarm::NGINX_WATCH_SECS
            ));
        } else if s > h + 5000 {
            notes.push(format!(
                "nginx sent {alias} no request for {} after it was healthy again: it had marked \
                 the instance failed (the `max_fails`/`fail_timeout` of its server line) and waits \
                 out fail_timeout before trying it again",
                stats::secs(s - h)
            ));
        }
    }
    if !seen_before {
        notes.push(format!(
            "{alias} served none of the load before the fault (does the app report INSTANCE_ID as its instanceId?): \
             \"serving through nginx again\" is not measured"
        ));
    }
    if down.is_none() {
        notes.push(format!(
            "{alias} was never seen down: the kill had no visible effect"
        ));
    }
    timeline.push(Event {
        at_ms: result.duration_ms,
        what: "load stopped".into(),
    });
    // The Swarm stack is verified by `verify --target swarm`, not here.
    let verified =
        verified.and_then(|v| super::fault::record_verified(v, &mut timeline, &mut notes));
    timeline.sort_by_key(|e| e.at_ms);

    let after = |t: Option<u64>| t.map(|t| t.saturating_sub(fault_at_ms));
    let full = match (healthy, served_at, seen_before) {
        (Some(h), Some(s), _) => Some(h.max(s)),
        (Some(h), None, false) => Some(h),
        _ => None,
    };
    let recovery = Recovery {
        target: alias.clone(),
        time_to_full_health_ms: after(full),
        down_after_ms: after(down),
        healthy_after_ms: after(healthy),
        serving_after_ms: after(served_at),
        first_error_after_ms: after(super::fault::first_error_after(
            &result.samples,
            fault_at_ms,
        )),
        recovered_after_ms: after(full),
        verified_after_ms: after(verified),
        ..Default::default()
    };
    let budgets = vec![stats::judge_recovery(
        "time to full health",
        recovery.time_to_full_health_ms,
        opts.timeout.as_millis() as u64,
    )];
    Ok(assemble(
        opts,
        Measured {
            fault: format!("{alias} ({}) {}", victim.describe(), how.describe()),
            fault_at_ms,
            result,
            recovery,
            timeline,
            budgets,
            notes,
        },
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Crash {
    /// SIGKILL to the container's processes from the host: a real crash, which Docker's
    /// restart policy answers.
    HostSigkill,
    /// SIGKILL through the Engine API: Docker counts it as a manual stop.
    ApiKill,
}

impl Crash {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Crash::HostSigkill => "crashed: its processes were sent SIGKILL",
            Crash::ApiKill => "killed through the Docker API (SIGKILL)",
        }
    }
}

/// Makes the instance crash. Docker treats `docker kill` (the API's kill) as a manual stop and
/// disables the restart policy until the next start — so the drill would test itself, not the
/// deployment. When the daemon runs on this Linux host, the container's processes are sent
/// SIGKILL directly instead, exactly what an out-of-memory kill or a segfault looks like to
/// Docker; otherwise the API kill is the fallback.
///
/// On Swarm either kill is a crash: Swarm replaces a task whose container stopped.
/// `drill postgres|nginx|redis` crash their container the same way.
pub(super) async fn crash(opts: &Options, name: &str, id: &str) -> Result<Crash> {
    if opts.docker.endpoint.is_local() {
        // One `kill` per process: when the main process dies first, its children go with it
        // and a later pid no longer exists; that is still a crash, not a reason to kill again
        // through the API (which would also switch the restart policy off).
        let mut killed = false;
        for pid in container_pids(id) {
            let status = tokio::process::Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .stderr(std::process::Stdio::null())
                .status()
                .await;
            killed |= status.is_ok_and(|s| s.success());
        }
        if killed {
            return Ok(Crash::HostSigkill);
        }
    }
    opts.docker.kill(name).await?;
    Ok(Crash::ApiKill)
}

/// The host's process ids in the container's cgroup (its id appears in `/proc/PID/cgroup`
/// with both the cgroupfs and the systemd cgroup drivers). Empty when this is not the
/// daemon's host or `/proc` cannot be read.
fn container_pids(id: &str) -> Vec<u32> {
    if id.len() < 12 || !cfg!(target_os = "linux") {
        return vec![];
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|cg| cg.lines().any(|l| l.contains(id)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swarm_instance_is_named_by_its_task_slot() {
        assert_eq!(task_slot("app-3"), Some(3));
        assert_eq!(task_slot("app-12"), Some(12));
        assert_eq!(task_slot("app-0"), None);
        assert_eq!(task_slot("app-x"), None);
        assert_eq!(task_slot("3"), None);
        assert_eq!(task_slot("reporadar_app.3"), None);
    }
}
