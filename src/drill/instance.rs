//! `drill instance`: SIGKILL one app instance under load. Its restart policy brings it back;
//! meanwhile nginx must send every request elsewhere (`proxy_next_upstream` retries idempotent
//! GETs on the next instance). Full health is back when the container passes its healthcheck
//! again and answers through nginx.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::load::Load;
use super::stats;
use super::{
    assemble, first_served_by, instance_number, interrupted, is_running, role_of, Event, Measured,
    Options, Recovery, Report,
};
use crate::desired::Role;
use crate::docker::{assess, Verdict};
use crate::observed::ObservedContainer;

const POLL: Duration = Duration::from_millis(100);

pub async fn run(
    opts: &Options,
    containers: &[ObservedContainer],
    progress: &dyn Fn(&str),
) -> Result<Report> {
    let mut apps: Vec<&ObservedContainer> = containers
        .iter()
        .filter(|c| role_of(c) == Some(Role::App))
        .collect();
    apps.sort_by_key(|c| instance_number(c));
    let listed = || {
        apps.iter()
            .map(|c| c.alias())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let target = match &opts.target {
        Some(t) => match apps.iter().find(|c| &c.alias() == t || &c.name == t) {
            Some(c) => *c,
            None => bail!(
                "--target {t}: no such app instance in project {} (instances: {})",
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
    let before = opts.docker.probe(&target.name, &opts.app_readiness).await?;
    if assess(&opts.app_readiness, &before) != Verdict::Ready {
        bail!(
            "{alias} ({}) is not healthy before the drill ({}): a drill starts from a healthy deployment; run `radar-deploy verify`",
            target.name,
            before.last_output().unwrap_or_else(|| target.status.clone())
        );
    }
    let mut notes = vec![];
    if apps.len() < 2 {
        notes.push(format!(
            "only one app instance ({alias}): nothing can serve while it is down"
        ));
    }

    let load = Load::start(&opts.load_options())?;
    let mut timeline = vec![Event {
        at_ms: 0,
        what: format!(
            "load started: {} clients + 1 session client",
            opts.concurrency
        ),
    }];
    progress(&format!(
        "load: {} clients + 1 session client against {}",
        opts.concurrency, opts.url
    ));
    tokio::time::sleep(opts.warmup()).await;
    if interrupted() {
        load.stop().await;
        bail!("interrupted (Ctrl-C) before the fault: nothing was changed");
    }
    // The app reports INSTANCE_ID, which radar-deploy sets to the alias; an app that reports
    // something else cannot be followed through nginx, and the report says so.
    let seen_before = load.live.last_success_of(&alias).is_some();

    let fault_at_ms = load.now_ms();
    let fault_started = Instant::now();
    let how = match crash(opts, target).await {
        Ok(how) => how,
        Err(e) => {
            load.stop().await;
            return Err(e);
        }
    };
    // Any answer from the instance to a request sent from now on comes from a new process.
    let dead_ms = load.now_ms();
    progress(&format!("{alias} ({}) {}", target.name, how.describe()));
    timeline.push(Event {
        at_ms: fault_at_ms,
        what: format!("{alias} {}", how.describe()),
    });
    if how == Crash::ApiKill {
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
    loop {
        let now = load.now_ms();
        let verdict = opts
            .docker
            .probe(&target.name, &opts.app_readiness)
            .await
            .map(|p| assess(&opts.app_readiness, &p));
        match (down, healthy, verdict) {
            (None, _, Ok(Verdict::Ready)) => {}
            (None, _, _) => {
                down = Some(now);
                progress(&format!("{alias} is down"));
                timeline.push(Event {
                    at_ms: now,
                    what: format!("{alias} seen down"),
                });
            }
            (Some(_), None, Ok(Verdict::Failed(_))) if how == Crash::ApiKill && !restarted => {
                restarted = true;
                if let Err(e) = opts.docker.start(&target.name).await {
                    notes.push(format!("{alias} could not be started again: {e}"));
                }
                timeline.push(Event {
                    at_ms: load.now_ms(),
                    what: format!(
                        "{alias} started again by the drill (standing in for the restart policy)"
                    ),
                });
            }
            (Some(_), None, Ok(Verdict::Ready)) => {
                healthy = Some(now);
                progress(&format!("{alias} is healthy again"));
                timeline.push(Event {
                    at_ms: now,
                    what: format!("{alias} healthy again (its healthcheck passes)"),
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
        if recovered && now >= duration_ms {
            break;
        }
        if interrupted() {
            progress("interrupted (Ctrl-C): putting the deployment back");
            break;
        }
        if !recovered && Instant::now() >= deadline {
            progress(&format!(
                "{alias} did not recover within {}s (--timeout)",
                opts.timeout.as_secs()
            ));
            break;
        }
        load.tick(progress);
        tokio::time::sleep(POLL).await;
    }
    let result = load.stop().await;

    // Put things back: an instance its restart policy did not revive is started by hand.
    if healthy.is_none() {
        match opts.docker.start(&target.name).await {
            Ok(()) => notes.push(format!(
                "{alias} did not come back by itself; the drill started it again"
            )),
            Err(e) => notes.push(format!("{alias} could not be started again: {e}")),
        }
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
        if s > h + 5000 {
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
            fault: format!("{alias} ({}) {}", target.name, how.describe()),
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
enum Crash {
    /// SIGKILL to the container's processes from the host: a real crash, which Docker's
    /// restart policy answers.
    HostSigkill,
    /// SIGKILL through the Engine API: Docker counts it as a manual stop.
    ApiKill,
}

impl Crash {
    fn describe(self) -> &'static str {
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
async fn crash(opts: &Options, target: &ObservedContainer) -> Result<Crash> {
    if opts.docker.address.local {
        let pids = container_pids(&target.id);
        if !pids.is_empty() {
            let status = tokio::process::Command::new("kill")
                .arg("-KILL")
                .args(pids.iter().map(u32::to_string))
                .stderr(std::process::Stdio::null())
                .status()
                .await;
            if status.is_ok_and(|s| s.success()) {
                return Ok(Crash::HostSigkill);
            }
        }
    }
    opts.docker.kill(&target.name).await?;
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
