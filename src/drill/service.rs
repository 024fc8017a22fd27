//! `drill postgres`, `drill nginx` and `drill redis` on a stack without Sentinels: the
//! service's container crashes (SIGKILL to its processes, as `drill instance` does) under load
//! and its restart policy brings it back. What each proves:
//!
//! - postgres: readiness goes 503 while sessions keep working through Redis (the load never
//!   touches Postgres: no request may fail), the instances reconnect by themselves (none
//!   restarts: restart count and start time compared), and rows committed before the crash
//!   are there after it (WAL replay): the drill writes marker rows with `psql` inside the
//!   Postgres container first, reads them back after, then deletes them.
//! - nginx: how long the front door is shut (the longest span in which no client got an
//!   answer) and when it serves again.
//! - redis: sessions survive through the append-only file (`appendonly yes`, which `up`
//!   sets): the session counter never goes back. A SIGKILL ends only the process: what Redis
//!   wrote to the AOF before answering is in the kernel's page cache and survives it;
//!   `appendfsync everysec` puts up to a second of writes at risk only when the machine
//!   itself goes down, which this drill does not do. So the counter check is strict.
//!
//! Every timeline ends with `verified`: all containers running and healthy, the balancer
//! serving, the data checked.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::fault::{self, Check};
use super::instance::{crash, Crash};
use super::{
    assemble, is_running, stop_load, stop_waiting, Event, Kind, Measured, Options, Recovery, Report,
};
use crate::desired::Role;
use crate::docker::DockerClient;
use crate::http::HttpClient;
use crate::observed::{Health, ObservedContainer};

const POLL: Duration = Duration::from_millis(100);
const EXEC_DEADLINE: Duration = Duration::from_secs(15);
const MARKER_ROWS: u64 = 100;
const MARKER_TABLE: &str = "radar_drill_marker";

/// psql inside the Postgres container over TCP with the password from its secret file (the
/// same way in the official image and the offline one); the SQL is `$1`, never part of the
/// script.
const PSQL: &str = "PGPASSWORD=\"$(cat \"$POSTGRES_PASSWORD_FILE\" 2>/dev/null || printf %s \"$POSTGRES_PASSWORD\")\" \
     psql -h 127.0.0.1 -v ON_ERROR_STOP=1 -qAt -U \"$POSTGRES_USER\" -d \"${POSTGRES_DB:-$POSTGRES_USER}\" -c \"$1\"";
const REDIS_CONFIG: &str =
    "REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" redis-cli config get appendonly; \
     REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" redis-cli config get appendfsync";

pub async fn run(
    opts: &Options,
    containers: &[ObservedContainer],
    progress: &dyn Fn(&str),
) -> Result<Report> {
    let role = match opts.kind {
        Kind::Postgres => Role::Postgres,
        Kind::Nginx => Role::Nginx,
        Kind::Redis => Role::Redis,
        other => bail!("`drill {}` is not a service crash", other.name()),
    };
    let Some(target) = containers.iter().find(|c| c.role_kind() == Some(role)) else {
        bail!(
            "project {} has no {} container: is the stack up (radar-deploy up)?",
            opts.project,
            role.service()
        );
    };
    let alias = target.alias();
    if !is_running(target) || !matches!(target.health, Health::Healthy | Health::None) {
        bail!(
            "{alias} ({}) is not running and healthy ({}): a drill starts from a healthy deployment; run `radar-deploy verify`",
            target.name,
            target.status
        );
    }
    let docker = &opts.docker;
    let before = docker.container_facts(&target.name).await?;
    let mut notes = vec![];
    let mut checks: Vec<Check> = vec![];

    // Before the fault: the data the drill checks after it.
    let token = fault::marker_token(&opts.project, now_ms());
    if role == Role::Postgres {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (id bigserial PRIMARY KEY, token text NOT NULL, \
             written_at timestamptz NOT NULL DEFAULT now()); \
             INSERT INTO {MARKER_TABLE} (token) SELECT '{token}' FROM generate_series(1, {MARKER_ROWS})"
        );
        if let Err(e) = psql(docker, &target.name, &sql).await {
            bail!("cannot write the marker rows in {alias} before the fault: {e}");
        }
    }
    if role == Role::Redis {
        match exec(docker, &target.name, &["bash", "-c", REDIS_CONFIG]).await {
            Ok(out) => {
                let words: Vec<&str> = out.split_whitespace().collect();
                let get = |k: &str| {
                    words
                        .windows(2)
                        .find(|w| w[0] == k)
                        .map(|w| w[1].to_string())
                };
                let (aof, fsync) = (get("appendonly"), get("appendfsync"));
                if aof.as_deref() != Some("yes") {
                    notes.push(format!(
                        "Redis runs with appendonly {}: sessions written since its last snapshot are lost on a crash",
                        aof.as_deref().unwrap_or("unknown")
                    ));
                }
                notes.push(format!(
                    "Redis persistence: appendonly {}, appendfsync {} (a process crash loses no acknowledged write; \
                     everysec risks up to 1 s of writes only if the machine itself goes down)",
                    aof.as_deref().unwrap_or("?"),
                    fsync.as_deref().unwrap_or("?")
                ));
            }
            Err(e) => notes.push(format!(
                "Redis's persistence settings could not be read: {e}"
            )),
        }
    }
    let instances_before = fault::instance_facts(opts, containers).await;

    let (load, mut timeline) = opts.start_load(progress).await?;
    let readiness = HttpClient::with_route(Duration::from_secs(2), false, opts.https.as_ref())?;
    let fault_at_ms = load.now_ms();
    let started = Instant::now();
    let how = match crash(opts, &target.name, &target.id).await {
        Ok(h) => h,
        Err(e) => {
            load.stop().await;
            return Err(e);
        }
    };
    let fault = format!("{alias} ({}) {}", target.name, how.describe());
    progress(&fault);
    timeline.push(Event {
        at_ms: fault_at_ms,
        what: fault.clone(),
    });
    if how == Crash::ApiKill {
        notes.push(format!(
            "the Docker daemon is not local, so {alias} was killed through the API: Docker then \
             disables the restart policy until the next start, and the drill starts the container \
             itself as soon as it is down, as the restart policy does after a real crash"
        ));
    }

    let deadline = started + opts.timeout;
    let duration_ms = opts.duration.as_millis() as u64;
    let (mut down, mut back, mut recovered) = (None::<u64>, None::<u64>, None::<u64>);
    let (mut ready_failed, mut ready_back) = (None::<u64>, None::<u64>);
    let mut started_by_drill = false;
    let mut verified = None::<Result<u64, String>>;
    let mut last_ready_probe = None::<Instant>;
    loop {
        let now = load.now_ms();
        let facts = docker.container_facts(&target.name).await.ok();
        let restarted = facts
            .as_ref()
            .is_some_and(|f| f.started_at != before.started_at);
        let running = facts.as_ref().is_some_and(|f| f.running);
        if down.is_none() && (!running || restarted) {
            down = Some(now);
            timeline.push(Event {
                at_ms: now,
                what: format!("{alias} seen down"),
            });
        }
        if down.is_some() && !running && how == Crash::ApiKill && !started_by_drill {
            started_by_drill = true;
            if let Err(e) = docker.start(&target.name).await {
                notes.push(format!("{alias} could not be started again: {e}"));
            }
        }
        if back.is_none()
            && restarted
            && running
            && facts
                .as_ref()
                .is_some_and(|f| matches!(f.health, Health::Healthy | Health::None))
        {
            back = Some(now);
            progress(&format!("{alias} is running and healthy again"));
            timeline.push(Event {
                at_ms: now,
                what: format!("{alias} running and healthy again (restart policy)"),
            });
        }
        // Postgres: the instances' readiness (APP_READY_PATH; not watched when it is empty),
        // asked through the balancer (any instance).
        let ready_path = opts.paths.ready.as_ref().filter(|_| role == Role::Postgres);
        if let Some(ready_path) = ready_path
            .filter(|_| last_ready_probe.is_none_or(|t| t.elapsed() >= Duration::from_millis(250)))
        {
            last_ready_probe = Some(Instant::now());
            let status = readiness
                .get(&format!("{}{ready_path}", opts.url))
                .await
                .map(|r| r.status)
                .unwrap_or(0);
            let t = load.now_ms();
            if status == 503 && ready_failed.is_none() {
                ready_failed = Some(t);
                timeline.push(Event {
                    at_ms: t,
                    what: format!("readiness answers 503 ({ready_path} through nginx)"),
                });
            } else if status == 200 && ready_failed.is_some() && ready_back.is_none() {
                ready_back = Some(t);
                timeline.push(Event {
                    at_ms: t,
                    what: "readiness answers 200 again".into(),
                });
            }
        }
        if let (Some(b), None) = (back, recovered) {
            let ok = load.live.last_ok.load(std::sync::atomic::Ordering::SeqCst);
            let ready_ok = role != Role::Postgres || ready_failed.is_none() || ready_back.is_some();
            if ok > b && ready_ok {
                recovered = Some(now);
                progress("the load is served again");
                timeline.push(Event {
                    at_ms: now,
                    what: "recovered: the container is back and the load is served".into(),
                });
                verified = Some(fault::verify(opts, || load.now_ms()).await);
            }
        }
        if recovered.is_some() && now >= duration_ms {
            break;
        }
        if stop_waiting(recovered.is_some(), deadline, &alias, opts, progress) {
            break;
        }
        load.tick(progress);
        tokio::time::sleep(POLL).await;
    }
    let result = stop_load(load, &mut timeline).await;

    // Leave it as found: a container its restart policy did not bring back is started.
    if back.is_none() {
        match docker.container_facts(&target.name).await {
            Ok(f) if f.running => {}
            _ => match docker.start(&target.name).await {
                Ok(()) => notes.push(format!(
                    "{alias} did not come back by itself; the drill started it again"
                )),
                Err(e) => notes.push(format!("{alias} could not be started again: {e}")),
            },
        }
    }

    // verified: full health (as soon as it recovered, else now), then the data.
    let verified = match verified {
        Some(v) => v,
        None => fault::verify(opts, || load_clock_now(&result, started, fault_at_ms)).await,
    };
    let verified = fault::record_verified(verified, &mut timeline, &mut notes);
    if role == Role::Postgres {
        let count = psql(
            docker,
            &target.name,
            &format!("SELECT count(*) FROM {MARKER_TABLE} WHERE token = '{token}'"),
        )
        .await
        .and_then(|out| {
            out.trim()
                .parse::<u64>()
                .map_err(|_| format!("unexpected answer {:?}", out.trim()))
        });
        checks.push(fault::rows_survived(MARKER_ROWS, count));
        if let Err(e) = psql(
            docker,
            &target.name,
            &format!("DELETE FROM {MARKER_TABLE} WHERE token = '{token}'"),
        )
        .await
        {
            notes.push(format!("the drill's marker rows could not be deleted: {e}"));
        }
        let instances_after = fault::instance_facts(opts, containers).await;
        checks.push(fault::no_instance_restarted(
            &instances_before,
            &instances_after,
        ));
    }
    timeline.sort_by_key(|e| e.at_ms);

    let after = |t: Option<u64>| t.map(|t| t.saturating_sub(fault_at_ms));
    let first_error = fault::first_error_after(&result.samples, fault_at_ms);
    // nginx: the front door serves again with the first answer after the first refusal.
    let serving = (role == Role::Nginx)
        .then(|| first_error.and_then(|t| fault::first_ok_after(&result.samples, t)))
        .flatten();
    let recovery = Recovery {
        target: alias.clone(),
        time_to_full_health_ms: after(recovered),
        down_after_ms: after(down),
        healthy_after_ms: after(back),
        serving_after_ms: after(serving),
        first_error_after_ms: after(first_error),
        recovered_after_ms: after(recovered),
        verified_after_ms: after(verified),
        readiness_failed_after_ms: after(ready_failed),
        readiness_back_after_ms: after(ready_back),
        checks: checks.clone(),
        ..Default::default()
    };
    let timeout_ms = opts.timeout.as_millis() as u64;
    let mut budgets = vec![super::stats::judge_recovery(
        "time to verified",
        recovery.verified_after_ms,
        timeout_ms,
    )];
    if role == Role::Postgres {
        if ready_failed.is_none() {
            notes.push(
                "readiness was never seen answering 503: the instances did not notice Postgres was down \
                 (or it came back between two probes)"
                    .into(),
            );
        }
        budgets.extend(checks.iter().map(fault::Check::verdict));
    }
    if let Some(t) = first_error {
        timeline.push(Event {
            at_ms: t,
            what: "first failed request".into(),
        });
        timeline.sort_by_key(|e| e.at_ms);
    }
    Ok(assemble(
        opts,
        Measured {
            fault,
            fault_at_ms,
            result,
            recovery,
            timeline,
            budgets,
            notes,
        },
    ))
}

/// The drill's clock (ms since the load started) after the load stopped.
pub(super) fn load_clock_now(
    result: &super::load::LoadResult,
    fault_started: Instant,
    fault_at_ms: u64,
) -> u64 {
    (fault_at_ms + fault_started.elapsed().as_millis() as u64).max(result.duration_ms)
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

async fn psql(docker: &DockerClient, container: &str, sql: &str) -> Result<String, String> {
    exec(docker, container, &["bash", "-c", PSQL, "psql-drill", sql]).await
}

pub(super) async fn exec(
    docker: &DockerClient,
    container: &str,
    cmd: &[&str],
) -> Result<String, String> {
    crate::sentinels::exec_within(docker, container, cmd, EXEC_DEADLINE).await
}
