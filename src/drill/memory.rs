//! `drill memory`: an app instance is killed by its memory limit under load, and Docker must
//! report it as such (`State.OOMKilled`); its restart policy brings it back, and nginx retries
//! the GETs it was serving elsewhere (no failed request is the budget).
//!
//! How the memory is eaten, for any app image: an app's own leak cannot be triggered from
//! outside, and an image need not have a shell (the reference app is `FROM scratch`: one
//! static binary). So the drill uploads a 504-byte static program (`hog/x86_64.S`, no libc,
//! raw system calls) into the instance's log volume (the one path every instance has that its
//! user can write) and runs it there with `docker exec`, in the container's memory cgroup. It
//! removes its file, raises the oom_score_adj of the container's main process (PID 1, the
//! same user: raising needs no privilege) so that the kernel's OOM killer picks the app rather
//! than the hog, then touches memory until the limit is reached. The kernel kills the app
//! exactly as it would kill a leaking app; its container exits (137), Docker records
//! OOMKilled, and the restart policy starts it again. Only x86-64 daemons have the hog;
//! elsewhere the drill exits 2 saying so.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::fault;
use super::service::load_clock_now;
use super::{
    assemble, first_served_by, interrupted, is_running, Event, Measured, Options, Recovery, Report,
};
use crate::desired::Role;
use crate::observed::{Health, ObservedContainer};

const POLL: Duration = Duration::from_millis(50);
/// Assembled by `scripts/drill-hog.sh` from `hog/x86_64.S`.
const HOG_X86_64: &[u8] = include_bytes!("hog/x86_64.bin");
/// In the instance's log volume (`desired.rs`: `/var/log/app`, owned by the app's user).
const HOG_PATH: &str = "/var/log/app/.radar-drill-hog";
/// From the hog's start: long enough to fill any sane limit, short enough to report a hog
/// that could not do its job.
const OOM_DEADLINE: Duration = Duration::from_secs(60);
/// How long after the hog's end the container's death must show.
const HOG_GONE: Duration = Duration::from_secs(5);

/// `--instance` (alias or container name), else the highest numbered app instance.
pub(super) fn pick_instance<'a>(
    opts: &Options,
    containers: &'a [ObservedContainer],
) -> Result<&'a ObservedContainer> {
    let mut apps: Vec<&ObservedContainer> = containers
        .iter()
        .filter(|c| c.role_kind() == Some(Role::App))
        .collect();
    apps.sort_by_key(|c| c.instance_number());
    let listed = apps
        .iter()
        .map(|c| c.alias())
        .collect::<Vec<_>>()
        .join(", ");
    match &opts.instance {
        Some(t) => match apps.iter().find(|c| &c.alias() == t || &c.name == t) {
            Some(c) => Ok(c),
            None => bail!(
                "--instance {t}: no such app instance in project {} (instances: {listed})",
                opts.project
            ),
        },
        None => match apps.last() {
            Some(c) => Ok(c),
            None => bail!(
                "project {} has no app instances: is the stack up?",
                opts.project
            ),
        },
    }
}

pub async fn run(
    opts: &Options,
    containers: &[ObservedContainer],
    progress: &dyn Fn(&str),
) -> Result<Report> {
    let target = pick_instance(opts, containers)?;
    let alias = target.alias();
    let docker = &opts.docker;
    if !is_running(target) || !matches!(target.health, Health::Healthy | Health::None) {
        bail!(
            "{alias} ({}) is not running and healthy ({}): a drill starts from a healthy deployment; run `radar-deploy verify`",
            target.name,
            target.status
        );
    }
    let arch = docker.daemon.architecture.as_str();
    if !matches!(arch, "x86_64" | "amd64") {
        bail!(
            "`drill memory` runs its memory hog inside the instance, and the hog exists for x86-64 only; \
             this daemon is {arch}"
        );
    }
    let before = docker.container_facts(&target.name).await?;
    if before.memory_limit <= 0 {
        bail!(
            "{alias} has no memory limit: the drill would eat the host's memory instead\n  fix: set APP_MEMORY (e.g. 256m) and run `radar-deploy up`"
        );
    }
    let mut notes = vec![];
    if before.oom_killed {
        notes.push(format!(
            "{alias} was already marked OOMKilled before the drill (an earlier OOM kill): the restart is the evidence"
        ));
    }

    let (load, mut timeline) = opts.start_load(progress).await?;
    let seen_before = load.live.last_success_of(&alias).is_some();
    let fault_at_ms = load.now_ms();
    let started = Instant::now();
    if let Err(e) = docker
        .upload(
            &target.name,
            crate::docker::executable_tar(HOG_PATH, HOG_X86_64),
        )
        .await
    {
        load.stop().await;
        bail!("cannot put the memory hog into {alias} at {HOG_PATH}: {e}");
    }
    // The exec ends when the hog (or the whole container) is killed: not awaited here.
    let mut hog = {
        let docker = docker.clone();
        let name = target.name.clone();
        tokio::spawn(async move {
            docker
                .exec(&name, &[HOG_PATH.to_string(), "drill".to_string()])
                .await
        })
    };
    let limit_mb = before.memory_limit >> 20;
    let fault = format!(
        "{alias} ({}) eats memory up to its limit of {limit_mb} MiB (a hog run inside it with docker exec)",
        target.name
    );
    progress(&fault);
    timeline.push(Event {
        at_ms: fault_at_ms,
        what: fault.clone(),
    });

    let duration_ms = opts.duration.as_millis() as u64;
    let deadline = started + opts.timeout;
    let (mut killed, mut oom, mut healthy) = (None::<u64>, None::<bool>, None::<u64>);
    let mut exit_code = None;
    let mut hog_ended = None::<Instant>;
    let mut verified = None::<Result<u64, String>>;
    loop {
        let now = load.now_ms();
        let facts = docker.container_facts(&target.name).await.ok();
        if let Some(f) = &facts {
            let restarted = f.started_at != before.started_at;
            if killed.is_none() && (!f.running || restarted) {
                killed = Some(now);
                exit_code = f.exit_code.filter(|c| *c != 0);
                progress(&format!("{alias} was killed (OOMKilled {})", f.oom_killed));
                let what = if f.running {
                    format!(
                        "{alias} killed and already started again (restart count {} → {}), Docker's OOMKilled {}",
                        before.restart_count, f.restart_count, f.oom_killed
                    )
                } else {
                    format!(
                        "{alias} killed: {} (exit {}), Docker's OOMKilled {}",
                        f.status,
                        f.exit_code.unwrap_or(-1),
                        f.oom_killed
                    )
                };
                timeline.push(Event { at_ms: now, what });
            }
            // OOMKilled stays set after the restart policy starts the container again.
            if killed.is_some() && f.oom_killed {
                oom = Some(true);
            } else if killed.is_some() && oom.is_none() && f.running && restarted {
                oom = Some(false);
            }
            if killed.is_some()
                && healthy.is_none()
                && f.running
                && restarted
                && f.health == Health::Healthy
            {
                healthy = Some(now);
                progress(&format!("{alias} is healthy again (restart policy)"));
                timeline.push(Event {
                    at_ms: now,
                    what: format!("{alias} healthy again (restart policy)"),
                });
            }
        }
        // The hog's exec ends when the container dies, often before Docker reports the
        // exit: only a hog gone for a while with the container untouched was killed alone.
        if hog.is_finished() && hog_ended.is_none() {
            hog_ended = Some(Instant::now());
        }
        let hog_gone = hog_ended.is_some_and(|t| t.elapsed() >= HOG_GONE);
        if killed.is_none() && (hog_gone || started.elapsed() >= OOM_DEADLINE) {
            notes.push(format!(
                "{alias} was not killed: {}",
                if hog_gone {
                    "the hog itself ended (the kernel killed it instead of the app, or it could not run)"
                } else {
                    "its memory limit was not reached in time"
                }
            ));
            break;
        }
        let serving = healthy.is_some()
            && (!seen_before
                || load
                    .live
                    .last_success_of(&alias)
                    .is_some_and(|t| Some(t) > healthy));
        if serving && verified.is_none() {
            verified = Some(fault::verify(opts, || load.now_ms()).await);
        }
        if serving && now >= duration_ms {
            break;
        }
        if interrupted() {
            progress("interrupted (Ctrl-C): the restart policy brings the instance back");
            break;
        }
        if healthy.is_none() && Instant::now() >= deadline {
            break;
        }
        load.tick(progress);
        tokio::time::sleep(POLL).await;
    }
    let result = load.stop().await;
    if killed.is_none() && hog.is_finished() {
        // What the hog said (it says nothing when it works): why it could not do its job.
        if let Ok(r) = (&mut hog).await {
            notes.push(format!(
                "the hog's exec: {}",
                match r {
                    Ok((code, out)) => format!("exit {code} {}", out.trim()),
                    Err(e) => e.to_string(),
                }
            ));
        }
    }
    hog.abort();
    timeline.push(Event {
        at_ms: result.duration_ms,
        what: "load stopped".into(),
    });
    // A container that did not come back by itself is started: the drill leaves the
    // deployment as it found it.
    if let Ok(f) = docker.container_facts(&target.name).await {
        if !f.running && f.status != "restarting" {
            match docker.start(&target.name).await {
                Ok(()) => notes.push(format!(
                    "{alias} did not come back by itself; the drill started it again"
                )),
                Err(e) => notes.push(format!("{alias} could not be started again: {e}")),
            }
        }
    }
    let served = killed.and_then(|k| first_served_by(&result.samples, &alias, k));
    if let Some(t) = served {
        timeline.push(Event {
            at_ms: t,
            what: format!("recovered: {alias} answered through nginx again"),
        });
    }
    let verified = match verified {
        Some(v) => v,
        None => fault::verify(opts, || load_clock_now(&result, started, fault_at_ms)).await,
    };
    let verified = fault::record_verified(verified, &mut timeline, &mut notes);
    let first_error = fault::record_first_error(&result.samples, fault_at_ms, &mut timeline);
    timeline.sort_by_key(|e| e.at_ms);

    let after = |t: Option<u64>| t.map(|t| t.saturating_sub(fault_at_ms));
    let recovered = match (healthy, served, seen_before) {
        (Some(h), Some(s), _) => Some(h.max(s)),
        (Some(h), None, false) => Some(h),
        _ => None,
    };
    let recovery = Recovery {
        target: alias.clone(),
        time_to_full_health_ms: after(recovered),
        down_after_ms: after(killed),
        healthy_after_ms: after(healthy),
        serving_after_ms: after(served),
        first_error_after_ms: after(first_error),
        recovered_after_ms: after(recovered),
        verified_after_ms: after(verified),
        oom_killed: oom,
        ..Default::default()
    };
    let oom_check = fault::Check {
        name: "killed by its memory limit (Docker: OOMKilled)".into(),
        passed: killed.is_some() && oom == Some(true),
        detail: match (killed, oom) {
            (None, _) => "not killed".into(),
            (Some(_), Some(true)) => format!(
                "yes: OOMKilled, exit {}",
                exit_code.map_or("137".into(), |c| c.to_string())
            ),
            (Some(_), _) => "killed, but Docker does not report OOMKilled".into(),
        },
        budget: "OOMKilled".into(),
    };
    let budgets = vec![
        oom_check.verdict(),
        super::stats::judge_recovery(
            "time to verified",
            recovery.verified_after_ms,
            opts.timeout.as_millis() as u64,
        ),
    ];
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

/// The checked-in hog is what its source assembles to: nobody has to trust the bytes. Linux
/// hosts only (GNU binutils, as CI has them); the drill itself runs from any host.
#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
mod hog_tests {
    #[test]
    fn the_embedded_hog_is_its_source_assembled() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("hog.bin");
        let root = env!("CARGO_MANIFEST_DIR");
        let run = std::process::Command::new("bash")
            .arg(format!("{root}/scripts/drill-hog.sh"))
            .arg(&out)
            .output()
            .expect("bash runs scripts/drill-hog.sh");
        assert!(
            run.status.success(),
            "scripts/drill-hog.sh failed (needs GNU binutils: as, ld):\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let built = std::fs::read(&out).expect("the script wrote its output");
        assert!(
            built == super::HOG_X86_64,
            "src/drill/hog/x86_64.bin ({} bytes) is not what x86_64.S assembles to ({} bytes): run scripts/drill-hog.sh",
            super::HOG_X86_64.len(),
            built.len()
        );
    }
}
