//! `drill redis`: stop the Redis master under load (HA stack only). The Sentinels must promote
//! the replica, the app must follow the new master (sessions keep their data), and the old
//! master, started again, must rejoin as a linked replica.
//!
//! On one host the master's container is stopped and started again. On Swarm stopping a
//! container is not enough (Swarm would start a new task before the Sentinels' down-after
//! period ends), so the master's service goes to 0 replicas and back to 1; Redis is asked
//! through a Sentinel's container on this node (`redis-cli -h <service>`), wherever its task
//! runs. One flow ([`failover`]) measures both; [`Failover`] holds what differs.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};

use super::stats;
use super::{
    assemble, interrupted, is_running, session_gap, stop_load, Event, Measured, Options, Recovery,
    Report,
};
use crate::desired::Role;
use crate::docker::DockerClient;
use crate::observed::ObservedContainer;
use crate::probes;
use crate::sentinels::{self, exec};

const POLL: Duration = Duration::from_millis(250);
/// Redis saves and exits on SIGTERM well within this.
const STOP_GRACE_SECS: u32 = 10;
/// How long a drill waits for every Sentinel to know the replica: one INFO period (10 s) and
/// some slack.
const SENTINELS_LEARN_WITHIN: Duration = Duration::from_secs(15);

/// The master, its replica, the Sentinels, and how the master is taken away and brought back.
struct Failover {
    master: String,
    replica: String,
    /// Containers on this daemon to ask the Sentinels in.
    sentinels: Vec<String>,
    way: Way,
}

enum Way {
    /// One host: `docker stop`/`docker start` of the master's container; each Redis is asked
    /// in its own container.
    Containers { master: String, replica: String },
    /// Swarm: the master's service to 0 replicas and back to 1.
    Service { master: String },
}

impl Failover {
    fn fault(&self) -> String {
        match &self.way {
            Way::Containers { master, .. } => format!(
                "Redis master {} ({master}) stopped (docker stop)",
                self.master
            ),
            Way::Service { master } => format!(
                "Redis master {} stopped: service {master} scaled to 0 replicas",
                self.master
            ),
        }
    }

    /// Returns once the master no longer runs.
    async fn take_down(&self, docker: &DockerClient) -> Result<()> {
        match &self.way {
            Way::Containers { master, .. } => Ok(docker.stop(master, STOP_GRACE_SECS).await?),
            Way::Service { master } => {
                docker.set_service_replicas(master, 0).await?;
                let deadline =
                    Instant::now() + Duration::from_secs(u64::from(STOP_GRACE_SECS) + 10);
                while Instant::now() < deadline {
                    let tasks = docker.all_service_tasks(master).await?;
                    if !tasks.iter().any(|t| t.running) {
                        break;
                    }
                    tokio::time::sleep(POLL).await;
                }
                Ok(())
            }
        }
    }

    async fn bring_back(&self, docker: &DockerClient) -> Result<()> {
        match &self.way {
            Way::Containers { master, .. } => Ok(docker.start(master).await?),
            // Retried: a deployment left without its old master is worse than a slow drill.
            Way::Service { master } => {
                let mut tries = 0;
                loop {
                    match docker.set_service_replicas(master, 1).await {
                        Ok(()) => return Ok(()),
                        Err(e) if tries >= 4 => {
                            return Err(anyhow!(e).context(format!(
                                "fix: `docker service scale {master}=1` puts the old master back"
                            )))
                        }
                        Err(_) => tries += 1,
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn bring_back_text(&self) -> &'static str {
        match self.way {
            Way::Containers { .. } => "started again",
            Way::Service { .. } => "started again (its service back to 1 replica)",
        }
    }

    /// Whether the Redis known as `alias` is a replica whose link to its master is up.
    async fn linked_replica(&self, docker: &DockerClient, alias: &str) -> bool {
        let answer = match &self.way {
            Way::Containers { master, replica } => {
                let container = if alias == self.master {
                    master
                } else {
                    replica
                };
                exec(
                    docker,
                    container,
                    &["bash", "-c", probes::REPLICATION_SCRIPT],
                )
                .await
            }
            Way::Service { .. } => {
                let mut answer = Err(String::new());
                for s in &self.sentinels {
                    let cmd = [
                        "bash",
                        "-c",
                        probes::REMOTE_REPLICATION_SCRIPT,
                        "redis-info",
                        alias,
                    ];
                    answer = exec(docker, s, &cmd).await;
                    if answer.is_ok() {
                        break;
                    }
                }
                answer
            }
        };
        answer.is_ok_and(|out| is_linked_replica(&out))
    }
}

/// `drill redis` on one host.
pub async fn run(
    opts: &Options,
    containers: &[ObservedContainer],
    progress: &dyn Fn(&str),
) -> Result<Report> {
    let mut sentinels: Vec<&ObservedContainer> = containers
        .iter()
        .filter(|c| c.role_kind() == Some(Role::Sentinel))
        .collect();
    if sentinels.is_empty() {
        bail!(
            "project {} has no Sentinels: `drill redis` needs the HA stack (radar-deploy up --ha)",
            opts.project
        );
    }
    sentinels.sort_by_key(|c| c.instance_number());
    let sentinels: Vec<String> = sentinels
        .iter()
        .filter(|c| is_running(c))
        .map(|c| c.name.clone())
        .collect();
    let nodes: Vec<&ObservedContainer> = containers
        .iter()
        .filter(|c| matches!(c.role_kind(), Some(Role::Redis | Role::RedisReplica)))
        .collect();
    let master_alias = master_of(opts, &sentinels).await?;
    let Some(master) = nodes.iter().find(|c| c.alias() == master_alias) else {
        bail!(
            "the Sentinels name {master_alias} as master {}, which is none of the project's Redis containers ({})",
            opts.master_name,
            nodes.iter().map(|c| c.alias()).collect::<Vec<_>>().join(", ")
        );
    };
    let Some(replica) = nodes.iter().find(|c| c.alias() != master_alias) else {
        bail!("no Redis replica next to the master {master_alias}: nothing to fail over to");
    };
    let f = Failover {
        master: master_alias,
        replica: replica.alias(),
        sentinels,
        way: Way::Containers {
            master: master.name.clone(),
            replica: replica.name.clone(),
        },
    };
    failover(opts, &f, progress).await
}

/// `drill redis --target swarm`: the services `redis` and `redis-replica`; a Sentinel task
/// must run on this node.
pub async fn run_swarm(opts: &Options, node: &str, progress: &dyn Fn(&str)) -> Result<Report> {
    let docker = &opts.docker;
    let prefix = format!("{}_", opts.project);
    let services: Vec<String> = docker
        .list_services(&opts.project)
        .await?
        .into_iter()
        .filter_map(|s| s.name.strip_prefix(&prefix).map(String::from))
        .collect();
    let sentinel_services: Vec<&String> = services
        .iter()
        .filter(|s| s.starts_with(&format!("{}-", Role::Sentinel.service())))
        .collect();
    if sentinel_services.is_empty() {
        bail!(
            "project {} has no Sentinel services on the swarm: `drill redis` needs the HA stack (radar-deploy up --target swarm --ha)",
            opts.project
        );
    }
    let mut sentinels = vec![];
    for s in sentinel_services {
        for t in docker.service_tasks(&format!("{prefix}{s}")).await? {
            if let (true, true, Some(c)) = (t.running, t.node_id == node, t.container_id) {
                sentinels.push(c);
            }
        }
    }
    if sentinels.is_empty() {
        bail!(
            "no Sentinel task of project {} runs on this node ({node:.12}): the drill asks the \
             Sentinels and Redis through a Sentinel's container on the node of this Docker daemon\n  \
             fix: run the drill against the daemon of a manager node that runs a Sentinel (DOCKER_HOST)",
            opts.project
        );
    }
    let master = master_of(opts, &sentinels).await?;
    let pair = [Role::Redis.service(), Role::RedisReplica.service()];
    if !pair.contains(&master.as_str()) || !services.contains(&master) {
        bail!(
            "the Sentinels name {master} as master {}, which is none of the project's Redis services ({})",
            opts.master_name,
            pair.iter().filter(|p| services.iter().any(|s| s == *p)).map(|p| format!("{prefix}{p}")).collect::<Vec<_>>().join(", ")
        );
    }
    let Some(replica) = pair
        .iter()
        .find(|p| **p != master && services.iter().any(|s| s == *p))
    else {
        bail!("no Redis replica service next to the master {master}: nothing to fail over to");
    };
    let f = Failover {
        replica: replica.to_string(),
        sentinels,
        way: Way::Service {
            master: format!("{prefix}{master}"),
        },
        master,
    };
    failover(opts, &f, progress).await
}

async fn master_of(opts: &Options, sentinels: &[String]) -> Result<String> {
    sentinels::ask_master(&opts.docker, sentinels, &opts.master_name)
        .await
        .map_err(|e| {
            anyhow!(
                "cannot ask the Sentinels for master {}: {e}",
                opts.master_name
            )
        })
}

/// Takes the master away under load, follows the failover, brings the old master back (also
/// after a failure or Ctrl-C: a drill leaves the deployment as it found it) and follows it
/// rejoining as a replica.
async fn failover(opts: &Options, f: &Failover, progress: &dyn Fn(&str)) -> Result<Report> {
    let docker = &opts.docker;
    let sentinels = &f.sentinels;
    let master_alias = f.master.clone();
    if !f.linked_replica(docker, &f.replica).await {
        bail!(
            "{} is not a linked replica of {master_alias} before the drill: a drill starts from a healthy deployment; run `radar-deploy verify --ha`",
            f.replica
        );
    }

    // A Sentinel that knows no replica cannot fail over, yet may win the leader vote and abort
    // ("-failover-abort-no-good-slave"), again every 2 x failover-timeout: each must have
    // learnt of the replica from the master's INFO (every 10 s) before the master goes.
    let deadline = Instant::now() + SENTINELS_LEARN_WITHIN;
    loop {
        let unaware = sentinels_unaware_of(docker, sentinels, &opts.master_name, &f.replica).await;
        if unaware.is_empty() {
            break;
        }
        if Instant::now() >= deadline || interrupted() {
            bail!(
                "Sentinel {} does not know the replica {} of master {}: it could not fail over \
                 to it; a drill starts from a healthy deployment (the Sentinels learn of a replica \
                 from the master within 10 s; run `radar-deploy verify --ha`)",
                unaware.join(", "),
                f.replica,
                opts.master_name
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let (load, mut timeline) = opts.start_load(progress).await?;

    let fault_at_ms = load.now_ms();
    let fault_started = Instant::now();
    let deadline = fault_started + opts.timeout;
    progress(&format!("stopping the Redis master: {}", f.fault()));
    timeline.push(Event {
        at_ms: fault_at_ms,
        what: format!("stopping: {}", f.fault()),
    });
    if let Err(e) = f.take_down(docker).await {
        load.stop().await;
        let _ = f.bring_back(docker).await;
        return Err(e);
    }
    let stopped = load.now_ms();
    timeline.push(Event {
        at_ms: stopped,
        what: format!("{master_alias} stopped"),
    });

    // 1. A Sentinel names another master.
    let mut promoted = None;
    let mut new_master = None;
    while Instant::now() < deadline && !interrupted() {
        if let Ok(m) = sentinels::ask_master(docker, sentinels, &opts.master_name).await {
            if m != master_alias {
                let now = load.now_ms();
                progress(&format!("the Sentinels promoted {m}"));
                timeline.push(Event {
                    at_ms: now,
                    what: format!("a Sentinel names {m} as the new master"),
                });
                promoted = Some(now);
                new_master = Some(m);
                break;
            }
        }
        load.tick(progress);
        tokio::time::sleep(POLL).await;
    }

    // 2. The app serves sessions again (seen by the session client).
    let mut sessions_back = false;
    if let Some(p) = promoted {
        while Instant::now() < deadline && !interrupted() {
            let ok = load
                .live
                .session_last_ok
                .load(std::sync::atomic::Ordering::SeqCst);
            let failed = load
                .live
                .session_last_failure
                .load(std::sync::atomic::Ordering::SeqCst);
            if ok > p && ok > failed {
                progress("the app serves sessions again");
                sessions_back = true;
                break;
            }
            load.tick(progress);
            tokio::time::sleep(POLL).await;
        }
    }

    // 3. The old master comes back, and must rejoin as a replica. Started whatever happened
    // above: a drill leaves the deployment as it found it.
    let restarted = load.now_ms();
    progress(&format!("starting {master_alias} again"));
    let mut notes = vec![];
    let mut rejoined = None;
    match f.bring_back(docker).await {
        Err(e) => notes.push(format!("{master_alias} could not be started again: {e:#}")),
        Ok(()) => {
            timeline.push(Event {
                at_ms: restarted,
                what: format!("{master_alias} {}", f.bring_back_text()),
            });
            // It may rejoin after the deadline of the failover; give it its own.
            let rejoin_deadline = Instant::now() + opts.timeout;
            while Instant::now() < rejoin_deadline && !interrupted() {
                if f.linked_replica(docker, &master_alias).await {
                    let now = load.now_ms();
                    progress(&format!("{master_alias} rejoined as a replica"));
                    timeline.push(Event {
                        at_ms: now,
                        what: format!("{master_alias} linked as a replica (master_link_status:up)"),
                    });
                    rejoined = Some(now);
                    break;
                }
                load.tick(progress);
                tokio::time::sleep(POLL).await;
            }
        }
    }
    if promoted.is_none() {
        notes.push(format!(
            "no Sentinel named a new master within {}s (--timeout)",
            opts.timeout.as_secs()
        ));
    } else if !sessions_back {
        notes.push("the app did not serve sessions again before the deadline".into());
    }

    // Verified as soon as the old master is back (one host; on Swarm `verify --target swarm`).
    let verified = if opts.on == crate::config::Target::Single && !interrupted() {
        Some(super::fault::verify(opts, || load.now_ms()).await)
    } else {
        None
    };

    // Let the load run its full duration, so the steady state after the drill shows too.
    let duration_ms = opts.duration.as_millis() as u64;
    while load.now_ms() < duration_ms && !interrupted() {
        load.tick(progress);
        tokio::time::sleep(POLL).await;
    }
    let result = stop_load(load, &mut timeline).await;
    let verified =
        verified.and_then(|v| super::fault::record_verified(v, &mut timeline, &mut notes));

    // The outage is the session client's longest span without an answer; it ends with the
    // first session served again.
    let outage = session_gap(&result, opts.concurrency, 0);
    let back = (outage.to_ms > fault_at_ms).then_some(outage.to_ms);
    if let Some(t) = back {
        timeline.push(Event {
            at_ms: outage.from_ms,
            what: "last session answer before the outage".into(),
        });
        timeline.push(Event {
            at_ms: t,
            what: "first session answer after the outage".into(),
        });
    }
    timeline.sort_by_key(|e| e.at_ms);

    let after = |t: Option<u64>| t.map(|t| t.saturating_sub(fault_at_ms));
    let full = match (promoted, back) {
        (Some(p), Some(b)) if sessions_back => Some(p.max(b)),
        (Some(p), None) if sessions_back => Some(p),
        _ => None,
    };
    let timeout_ms = opts.timeout.as_millis() as u64;
    let recovery = Recovery {
        target: master_alias.clone(),
        time_to_full_health_ms: after(full),
        new_master,
        promoted_after_ms: after(promoted),
        sessions_back_after_ms: after(back),
        session_outage_ms: Some(outage.ms),
        old_master_restarted_after_ms: after(Some(restarted)),
        old_master_rejoined_after_ms: after(rejoined),
        first_error_after_ms: after(super::fault::first_error_after(
            &result.samples,
            fault_at_ms,
        )),
        recovered_after_ms: after(full),
        verified_after_ms: after(verified),
        ..Default::default()
    };
    let budgets = vec![
        stats::judge_recovery(
            "time to full health (new master, sessions served)",
            recovery.time_to_full_health_ms,
            timeout_ms,
        ),
        stats::judge_recovery(
            "old master rejoined as a replica (after its restart)",
            rejoined.map(|t| t.saturating_sub(restarted)),
            timeout_ms,
        ),
    ];
    Ok(assemble(
        opts,
        Measured {
            fault: f.fault(),
            fault_at_ms,
            result,
            recovery,
            timeline,
            budgets,
            notes,
        },
    ))
}

/// The Sentinels (containers) whose `SENTINEL replicas` does not list `replica`, or that do not
/// answer.
async fn sentinels_unaware_of(
    docker: &DockerClient,
    sentinels: &[String],
    name: &str,
    replica: &str,
) -> Vec<String> {
    let mut unaware = vec![];
    for s in sentinels {
        let cmd = [
            "bash",
            "-c",
            probes::SENTINEL_REPLICAS_SCRIPT,
            "sentinel-ask",
            name,
        ];
        let knows = exec(docker, s, &cmd)
            .await
            .is_ok_and(|out| out.lines().any(|l| l.trim() == replica));
        if !knows {
            unaware.push(s.clone());
        }
    }
    unaware
}

/// `redis-cli` prints the host and the port on two lines; `(nil)` for an unknown master.
/// `info replication` of a replica whose link to its master is up.
fn is_linked_replica(info: &str) -> bool {
    let field = |k: &str| info.lines().find_map(|l| l.trim().strip_prefix(k));
    field("role:") == Some("slave") && field("master_link_status:") == Some("up")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linked_replica_reports_slave_with_its_link_up() {
        let up =
            "# Replication\r\nrole:slave\r\nmaster_host:redis-replica\r\nmaster_link_status:up\r\n";
        assert!(is_linked_replica(up));
        assert!(!is_linked_replica(&up.replace(":up", ":down")));
        assert!(!is_linked_replica(
            "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n"
        ));
    }
}
