//! `drill daemon`: the Docker daemon the stack runs on is restarted under load. Unless the
//! daemon has live-restore on, it stops every container as it shuts down and starts again
//! those whose restart policy says so (`unless-stopped`, `always`), all at once, in no order;
//! nginx must come back although its upstream names resolve only once the instances run, and
//! the instances although Postgres and Redis start beside them. The drill follows the daemon
//! (gone, answering again), each container (running again, healthy), the balancer (serving
//! again, every instance answering through it) and `verify` until it passes again.
//!
//! The Engine API has no restart call, and the daemon may be remote, rootless or Docker
//! Desktop's: the operator names how it is restarted (`--restart-command`), which the drill
//! runs with the platform's shell and then measures.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;

use super::stats::{self, secs, Verdict};
use super::{assemble, stop_load, stop_waiting, Event, Measured, Options, Recovery, Report};
use crate::desired::Role;
use crate::docker::{ContainerFacts, DockerClient};
use crate::observed::{Health, ObservedContainer};
use crate::readiness::{assess, Readiness, Verdict as Ready};

/// Default budget from the fault until `verify` passes again. Measured on the test daemon
/// (2 shared cores, a 2-instance stack, 10 runs): 7.2-10.4 s, once 35.0 s (verify failing for
/// 28 s after every container was healthy: nginx's `fail_timeout=30s` for an instance it saw
/// refusing while it started). A daemon with more containers, or whose shutdown waits out a
/// container's stop timeout, takes longer.
pub const DEFAULT_MAX_RECOVERY_MS: u64 = 60_000;

const POLL: Duration = Duration::from_millis(250);
/// How often the daemon is pinged while the restart command runs.
const PING_EVERY: Duration = Duration::from_millis(100);
/// A command that only asks for a restart (a service manager's `restart &`, Docker Desktop)
/// may return before the daemon goes away: it is given this long to go.
const GO_AWAY_GRACE: Duration = Duration::from_secs(10);
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);
const VERIFY_DEADLINE: Duration = Duration::from_secs(30);
const VERIFY_EVERY: Duration = Duration::from_secs(1);
/// Lines of the restart command's output kept for the report.
const OUTPUT_LINES: usize = 12;

/// What `drill daemon` needs beyond the common options.
#[derive(Clone, Default)]
pub struct Settings {
    pub restart_command: Option<String>,
    pub max_recovery_ms: Option<u64>,
    /// What `verify` checks once everything is back; its Docker client is replaced by one
    /// connected after the restart.
    pub verify: Option<crate::verify::Options>,
}

/// The shell the restart command runs with, as the report names it.
pub fn shell_name() -> &'static str {
    if cfg!(windows) {
        "cmd /d /s /c"
    } else {
        "sh -c"
    }
}

/// `--restart-command` is required: the drill restarts a real daemon and cannot guess how.
/// The error (exit 2) says what to pass, per platform.
pub fn require_restart_command(command: Option<&str>) -> Result<String> {
    match command.map(str::trim) {
        Some(c) if !c.is_empty() => Ok(c.to_string()),
        _ => bail!(
            "drill daemon needs --restart-command: how to restart the Docker daemon the stack \
             runs on (the Engine API has no restart call, and the daemon may be remote)\n  \
             the drill runs it with {} and waits until the daemon answers again (--timeout)\n  \
             Linux (systemd):         --restart-command \"sudo systemctl restart docker\"\n  \
             Linux (rootless Docker): --restart-command \"systemctl --user restart docker\"\n  \
             a remote Linux host:     --restart-command \"ssh admin@host sudo systemctl restart docker\"\n  \
             Docker Desktop (Mac, Windows): no command restarts it reliably (it restarts its whole \
             VM, may take minutes or ask for input); drill a Linux host with systemd instead\n  \
             note: every container on that daemon stops, of every project, unless the daemon has \
             live-restore on",
            shell_name()
        ),
    }
}

/// The restart command under the platform's shell: `sh -c` (no bash needed), `cmd /d /s /c`
/// on Windows with the command line passed as typed (cmd has its own quoting rules).
fn shell(command: &str) -> tokio::process::Command {
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        let comspec = std::env::var_os("ComSpec").unwrap_or_else(|| "cmd.exe".into());
        let mut c = std::process::Command::new(comspec);
        c.args(["/d", "/s", "/c"]).raw_arg(format!("\"{command}\""));
        tokio::process::Command::from(c)
    }
    #[cfg(not(windows))]
    {
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(command);
        c
    }
}

/// One container of the stack, followed through the restart.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerBack {
    pub name: String,
    pub alias: String,
    pub restart_policy: String,
    /// It never stopped (live-restore kept it).
    pub kept_running: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_after_ms: Option<u64>,
    /// Its healthcheck passes (Docker's verdict, or the drill's own run of the test), or it
    /// runs, without a healthcheck.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_after_ms: Option<u64>,
    /// Restarts by its restart policy after the daemon started again: it crashed on the way
    /// back (e.g. nginx while an upstream name did not resolve yet).
    pub policy_restarts: i64,
    /// An app instance: its first answer through nginx to a request sent after the daemon
    /// went away.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving_after_ms: Option<u64>,
}

/// `drill daemon`'s part of the recovery, in ms after the fault.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DaemonRecovery {
    pub restart_command: String,
    pub shell: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_finished_after_ms: Option<u64>,
    /// The last lines the command printed.
    pub command_output: Vec<String>,
    /// The daemon's live-restore before the restart (what its shutdown did) and after.
    pub live_restore: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_restore_after: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon_down_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon_back_after_ms: Option<u64>,
    pub containers: Vec<ContainerBack>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_healthy_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_instances_serving_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_after_ms: Option<u64>,
    pub verify_runs: u32,
    /// The checks the last failed `verify` run failed (also when a later run passed).
    pub verify_failed: Vec<String>,
    /// When `verify` first failed after every container was healthy, and how often.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_first_failed_after_ms: Option<u64>,
    pub verify_failed_runs: u32,
}

struct Watched {
    name: String,
    alias: String,
    is_app: bool,
    before: ContainerFacts,
    back: ContainerBack,
    /// Found healthy by its own healthcheck run while Docker still reported another status.
    docker_behind: bool,
}

/// `drill daemon` on one host.
pub async fn run(
    opts: &Options,
    containers: &[ObservedContainer],
    progress: &dyn Fn(&str),
) -> Result<Report> {
    let command = require_restart_command(opts.daemon.restart_command.as_deref())?;
    let docker = &opts.docker;
    let live_restore = docker.live_restore().await?;
    let mut watched = vec![];
    let mut notes = vec![];
    for c in containers {
        let life = docker.container_facts(&c.name).await?;
        if !life.running {
            bail!(
                "{} ({}) is not running ({}): a drill starts from a healthy deployment; run `radar-deploy verify`",
                c.alias(),
                c.name,
                c.status
            );
        }
        if !live_restore && !life.policy_restarts_after_daemon_restart() {
            notes.push(format!(
                "{} has restart policy `{}`: the daemon does not start it again after its restart \
                 (radar-deploy gives every container `unless-stopped`; was it created by something else?)",
                c.name, life.restart_policy
            ));
        }
        watched.push(Watched {
            name: c.name.clone(),
            alias: c.alias(),
            is_app: c.role_kind() == Some(Role::App),
            back: ContainerBack {
                name: c.name.clone(),
                alias: c.alias(),
                restart_policy: life.restart_policy.clone(),
                kept_running: false,
                running_after_ms: None,
                healthy_after_ms: None,
                policy_restarts: 0,
                serving_after_ms: None,
            },
            before: life,
            docker_behind: false,
        });
    }
    watched.sort_by(|a, b| a.name.cmp(&b.name));
    let apps: Vec<String> = watched
        .iter()
        .filter(|w| w.is_app)
        .map(|w| w.alias.clone())
        .collect();
    progress(&format!(
        "daemon {}: live-restore {}",
        docker.endpoint.describe(),
        if live_restore {
            "on (containers should keep running)"
        } else {
            "off (the daemon stops every container; restart policies bring them back)"
        }
    ));

    let (load, mut timeline) = opts.start_load(progress).await?;
    let fault_at_ms = load.now_ms();
    let fault_started = Instant::now();
    let deadline = fault_started + opts.timeout;
    let fault = format!(
        "the Docker daemon restarted: `{command}` ({}), live-restore {}",
        shell_name(),
        if live_restore { "on" } else { "off" }
    );
    progress(&format!("running the restart command: {command}"));
    timeline.push(Event {
        at_ms: fault_at_ms,
        what: format!("restart command started: {command}"),
    });

    // 1. The command runs; meanwhile the daemon is watched going away: its event stream
    // closes, or a ping fails.
    let child = shell(&command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            load.stop().await;
            bail!(
                "cannot run the restart command with {}: {e}\n  command: {command}\n  nothing was changed",
                shell_name()
            );
        }
    };
    let mut rec = DaemonRecovery {
        restart_command: command.clone(),
        shell: shell_name().into(),
        live_restore,
        ..Default::default()
    };
    let mut down: Option<u64> = None;
    let finished = {
        let output = tokio::time::timeout_at(deadline.into(), child.wait_with_output());
        tokio::pin!(output);
        let gone = docker.until_disconnected();
        tokio::pin!(gone);
        let mut ping = tokio::time::interval(PING_EVERY);
        loop {
            tokio::select! {
                out = &mut output => break out,
                () = &mut gone, if down.is_none() => {
                    down = Some(load.now_ms());
                    progress("the daemon went away (its connection closed)");
                }
                _ = ping.tick(), if down.is_none() => {
                    if !answers(docker).await {
                        down = Some(load.now_ms());
                        progress("the daemon went away (no answer to ping)");
                    }
                }
            }
            load.tick(progress);
        }
    };
    let finished_ms = load.now_ms();
    match finished {
        Err(_) => {
            notes.push(format!(
                "the restart command did not finish within {}s (--timeout) and was killed",
                opts.timeout.as_secs()
            ));
        }
        Ok(Err(e)) => notes.push(format!("the restart command could not be waited for: {e}")),
        Ok(Ok(out)) => {
            rec.command_exit_code = out.status.code();
            rec.command_finished_after_ms = Some(finished_ms - fault_at_ms);
            rec.command_output = last_lines(&out.stdout, &out.stderr, OUTPUT_LINES);
            let code = out
                .status
                .code()
                .map_or_else(|| "by a signal".to_string(), |c| format!("exit {c}"));
            progress(&format!("the restart command finished ({code})"));
            timeline.push(Event {
                at_ms: finished_ms,
                what: format!("restart command finished ({code})"),
            });
            if !out.status.success() {
                notes.push(format!(
                    "the restart command failed ({code}); its last output: {}",
                    rec.command_output.join(" | ")
                ));
            }
        }
    }

    // 2. A command that succeeded before the daemon went away (it only asked a service manager
    // for the restart) gets a moment for it to go; one that failed does not.
    if down.is_none() && rec.command_exit_code == Some(0) {
        let grace = (Instant::now() + GO_AWAY_GRACE).min(deadline);
        let gone = docker.until_disconnected();
        tokio::pin!(gone);
        while down.is_none() && Instant::now() < grace {
            tokio::select! {
                () = &mut gone => down = Some(load.now_ms()),
                () = tokio::time::sleep(PING_EVERY) => {
                    if !answers(docker).await {
                        down = Some(load.now_ms());
                    }
                }
            }
            load.tick(progress);
        }
    }
    // The fault never happened (a password prompt, a wrong service name, another daemon):
    // nothing was drilled, which is an error to fix, not a verdict on the deployment.
    let Some(down) = down else {
        load.stop().await;
        let how = match (rec.command_exit_code, rec.command_finished_after_ms) {
            (Some(c), Some(_)) => format!("exited {c}"),
            (None, Some(_)) => "was killed by a signal".into(),
            _ => format!(
                "did not finish within {}s (--timeout)",
                opts.timeout.as_secs()
            ),
        };
        let output = if rec.command_output.is_empty() {
            "(no output)".to_string()
        } else {
            rec.command_output.join("\n    ")
        };
        bail!(
            "the restart command {how}, and the Docker daemon at {} never stopped answering: \
             nothing was drilled\n  command: {command}\n  its output:\n    {output}\n  fix: run the \
             command by hand; it must restart the daemon the stack runs on without a prompt (its \
             input is not a terminal: `sudo -n`, or a sudoers rule for the restart)",
            docker.endpoint.describe()
        );
    };
    timeline.push(Event {
        at_ms: down,
        what: "the daemon went away".into(),
    });
    rec.daemon_down_after_ms = Some(down - fault_at_ms);

    // 3. The daemon answers again: a new connection (the old one died with the daemon).
    let mut fresh: Option<DockerClient> = None;
    while Instant::now() < deadline {
        if let Ok(Ok(d)) =
            tokio::time::timeout(CONNECT_DEADLINE, DockerClient::connect(&docker.endpoint)).await
        {
            fresh = Some(d);
            break;
        }
        load.tick(progress);
        tokio::time::sleep(POLL).await;
    }
    let Some(d) = fresh else {
        let result = load.stop().await;
        notes.push(format!(
            "the daemon did not answer again within {}s (--timeout): the stack is down until it \
             does; start it ({})",
            opts.timeout.as_secs(),
            docker.endpoint.fix(crate::endpoint::Os::current())
        ));
        timeline.push(Event {
            at_ms: result.duration_ms,
            what: "load stopped".into(),
        });
        return Ok(finish(
            opts,
            fault,
            fault_at_ms,
            result,
            rec,
            timeline,
            notes,
            &apps,
        ));
    };
    let back = load.now_ms();
    rec.daemon_back_after_ms = Some(back - fault_at_ms);
    progress("the daemon answers again");
    timeline.push(Event {
        at_ms: back,
        what: "the daemon answers again".into(),
    });
    rec.live_restore_after = d.live_restore().await.ok();
    // Answers from requests sent after this came from the containers as they are now.
    let since = down;

    // 4. Every container back and healthy, every instance serving through nginx, then
    // `verify` until it passes.
    let verify_opts = opts.daemon.verify.clone().map(|mut v| {
        v.docker = Some(d.clone());
        v.url = opts.url.clone();
        v.ha |= containers
            .iter()
            .any(|c| c.role_kind() == Some(Role::Sentinel));
        v
    });
    let duration_ms = opts.duration.as_millis() as u64;
    let mut last_verify: Option<Instant> = None;
    loop {
        let now = load.now_ms();
        for w in watched
            .iter_mut()
            .filter(|w| w.back.healthy_after_ms.is_none())
        {
            let Ok(life) = d.container_facts(&w.name).await else {
                continue;
            };
            w.back.policy_restarts = w.back.policy_restarts.max(life.restart_count);
            let restarted = life.started_at != w.before.started_at;
            if life.running && w.back.running_after_ms.is_none() {
                w.back.kept_running = !restarted;
                w.back.running_after_ms = Some(now - fault_at_ms);
                let what = if restarted {
                    format!("{} running again", w.alias)
                } else {
                    format!("{} kept running", w.alias)
                };
                progress(&what);
                timeline.push(Event { at_ms: now, what });
            }
            if !life.running {
                continue;
            }
            // Its healthcheck, run by the drill too when Docker has not said healthy: Docker
            // before 23.0 stops running the healthchecks of live-restored containers
            // (moby/moby#41871), so its status would never change.
            let readiness = Readiness::Healthy {
                test: life.healthcheck.clone(),
            };
            let Ok(p) = d.probe(&w.name, &readiness).await else {
                continue;
            };
            if assess(&readiness, &p) == Ready::Ready {
                w.back.healthy_after_ms = Some(now - fault_at_ms);
                w.docker_behind = p.docker_health != Health::Healthy;
                let what = format!("{} healthy (its healthcheck)", w.alias);
                progress(&what);
                timeline.push(Event { at_ms: now, what });
            }
        }
        let all_healthy = watched.iter().all(|w| w.back.healthy_after_ms.is_some());
        if all_healthy && rec.all_healthy_after_ms.is_none() {
            rec.all_healthy_after_ms = Some(now - fault_at_ms);
        }
        let serving = apps
            .iter()
            .all(|a| load.live.last_success_of(a).is_some_and(|t| t > since));
        if serving && rec.all_instances_serving_after_ms.is_none() {
            rec.all_instances_serving_after_ms = Some(now - fault_at_ms);
            progress("every instance answers through nginx again");
            timeline.push(Event {
                at_ms: now,
                what: "every instance answers through nginx again".into(),
            });
        }
        if all_healthy
            && serving
            && rec.verified_after_ms.is_none()
            && last_verify.is_none_or(|t| t.elapsed() >= VERIFY_EVERY)
        {
            if let Some(v) = &verify_opts {
                last_verify = Some(Instant::now());
                rec.verify_runs += 1;
                match tokio::time::timeout(VERIFY_DEADLINE, crate::verify::run(v)).await {
                    Ok(Ok(r)) if r.passed => {
                        let at = load.now_ms();
                        rec.verified_after_ms = Some(at - fault_at_ms);
                        progress("verify passes again");
                        timeline.push(Event {
                            at_ms: at,
                            what: format!("verify passes again ({} checks)", r.checks.len()),
                        });
                    }
                    Ok(Ok(r)) => {
                        rec.verify_failed = r
                            .checks
                            .iter()
                            .filter(|c| c.status == crate::verify::Status::Fail)
                            .map(|c| format!("{}: {}", c.name, c.detail))
                            .collect();
                    }
                    Ok(Err(e)) => rec.verify_failed = vec![format!("verify could not run: {e}")],
                    Err(_) => {
                        rec.verify_failed = vec![format!(
                            "verify did not finish within {}",
                            secs(VERIFY_DEADLINE.as_millis() as u64)
                        )]
                    }
                }
                if rec.verified_after_ms.is_none() {
                    rec.verify_failed_runs += 1;
                    rec.verify_first_failed_after_ms
                        .get_or_insert(now - fault_at_ms);
                }
            }
        }
        let recovered =
            rec.verified_after_ms.is_some() || (verify_opts.is_none() && all_healthy && serving);
        if recovered && load.now_ms() >= duration_ms {
            break;
        }
        if stop_waiting(recovered, deadline, "the stack", opts, progress) {
            break;
        }
        load.tick(progress);
        tokio::time::sleep(POLL).await;
    }
    let result = stop_load(load, &mut timeline).await;

    // Put things back: a container the daemon did not start again is started, and the report
    // shows what it logged.
    for w in &watched {
        if w.back.healthy_after_ms.is_some() {
            continue;
        }
        let log = d
            .tail_logs(&w.name, 3)
            .await
            .unwrap_or_default()
            .join(" | ");
        let running = d.container_facts(&w.name).await.is_ok_and(|l| l.running);
        if running {
            notes.push(format!(
                "{} runs but was not healthy by the end of the drill; its last log lines: {log}",
                w.name
            ));
            continue;
        }
        match d.start(&w.name).await {
            Ok(()) => notes.push(format!(
                "{} did not come back by itself (restart policy `{}`); the drill started it. Its last log lines: {log}",
                w.name, w.back.restart_policy
            )),
            Err(e) => notes.push(format!("{} could not be started again: {e}", w.name)),
        }
    }
    // Docker's own verdict, once more at the end: still not `healthy` for a container whose
    // healthcheck passes means its health monitor stopped.
    let mut stale = vec![];
    for w in watched.iter().filter(|w| w.docker_behind) {
        let status = d
            .probe(&w.name, &Readiness::Running)
            .await
            .map(|p| p.docker_health);
        if status.is_ok_and(|h| h != Health::Healthy) {
            stale.push(w.alias.clone());
        }
    }
    if !stale.is_empty() {
        notes.push(format!(
            "Docker still reports {} as not healthy although their healthchecks pass when run: \
             this daemon stopped running the healthchecks of containers it kept through its \
             restart (live-restore; fixed in Docker 23.0, moby/moby#41871), so `docker ps` shows \
             a status frozen at the restart; `docker restart`, or pause and unpause, of each \
             container resumes them",
            stale.join(", ")
        ));
    }
    for w in watched.iter().filter(|w| w.back.policy_restarts > 0) {
        notes.push(format!(
            "{} crashed {} time(s) on the way back and its restart policy restarted it",
            w.alias, w.back.policy_restarts
        ));
    }
    match (rec.verified_after_ms, rec.verify_first_failed_after_ms) {
        (None, _) if !rec.verify_failed.is_empty() => notes.push(format!(
            "verify never passed; its last run failed: {}",
            rec.verify_failed.join("; ")
        )),
        (Some(ok), Some(first)) => notes.push(format!(
            "every container was healthy, yet verify failed {} time(s) from +{} until it passed at +{}; the last failed run: {}",
            rec.verify_failed_runs,
            secs(first),
            secs(ok),
            rec.verify_failed.join("; ")
        )),
        _ => {}
    }
    rec.containers = watched.into_iter().map(|w| w.back).collect();
    Ok(finish(
        opts,
        fault,
        fault_at_ms,
        result,
        rec,
        timeline,
        notes,
        &apps,
    ))
}

async fn answers(docker: &DockerClient) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), docker.ping()).await,
        Ok(Ok(()))
    )
}

/// The last `n` lines of what the command printed (stdout, then stderr).
fn last_lines(stdout: &[u8], stderr: &[u8], n: usize) -> Vec<String> {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr)
    );
    let lines: Vec<String> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// The outage the clients saw: from the last success before the first failure after the fault
/// to the first success after it, when any request failed.
fn outage(
    samples: &[stats::Sample],
    clients: usize,
    fault_at_ms: u64,
    end: u64,
) -> Option<stats::Gap> {
    samples
        .iter()
        .any(|s| !s.ok() && s.done_ms >= fault_at_ms)
        .then(|| stats::gaps(samples, clients, (fault_at_ms, end)).1)
        .filter(|g| g.ms > 0)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    opts: &Options,
    fault: String,
    fault_at_ms: u64,
    result: super::load::LoadResult,
    mut rec: DaemonRecovery,
    mut timeline: Vec<Event>,
    mut notes: Vec<String>,
    apps: &[String],
) -> Report {
    let after = |t: u64| t.saturating_sub(fault_at_ms);
    // Each instance's first answer through nginx after the daemon went away. One healthy long
    // before nginx sends it anything was marked failed by nginx (`max_fails`/`fail_timeout`
    // of its server line) while it refused connections on the way back.
    let since = fault_at_ms + rec.daemon_down_after_ms.unwrap_or(0);
    for c in rec
        .containers
        .iter_mut()
        .filter(|c| apps.contains(&c.alias))
    {
        c.serving_after_ms = super::first_served_by(&result.samples, &c.alias, since).map(after);
        if let (Some(h), Some(s)) = (c.healthy_after_ms, c.serving_after_ms) {
            if s > h + 5000 {
                notes.push(format!(
                    "nginx sent {} no request until +{}, {} after it was healthy: nginx had marked \
                     it failed (`max_fails`/`fail_timeout` of its server line) while it refused \
                     connections on the way back",
                    c.alias,
                    secs(s),
                    secs(s - h)
                ));
            }
        }
    }
    let first_error = result
        .samples
        .iter()
        .filter(|s| !s.ok() && s.done_ms >= fault_at_ms)
        .map(|s| s.done_ms)
        .min();
    if let Some(t) = first_error {
        timeline.push(Event {
            at_ms: t,
            what: "first failed request".into(),
        });
    }
    let gap = outage(
        &result.samples,
        opts.concurrency + 1,
        fault_at_ms,
        result.duration_ms,
    );
    let serving_again = gap
        .filter(|g| g.to_ms < result.duration_ms)
        .map(|g| g.to_ms);
    match (gap, serving_again) {
        (Some(g), Some(t)) => {
            timeline.push(Event {
                at_ms: g.from_ms,
                what: "last answer before the outage".into(),
            });
            timeline.push(Event {
                at_ms: t,
                what: "serving again: first answer after the outage".into(),
            });
        }
        (Some(g), None) => timeline.push(Event {
            at_ms: g.from_ms,
            what: "last answer: nothing was served after it".into(),
        }),
        (None, _) => {}
    }
    timeline.sort_by_key(|e| e.at_ms);
    let mut verdicts = vec![
        Verdict {
            name: "restart command".into(),
            measured: match (rec.command_exit_code, rec.command_finished_after_ms) {
                (Some(c), Some(t)) => format!("exit {c} after {}", secs(t)),
                (None, Some(t)) => format!("killed by a signal after {}", secs(t)),
                _ => "did not finish".into(),
            },
            budget: "exit 0 within --timeout".into(),
            passed: rec.command_exit_code == Some(0),
        },
        Verdict {
            name: "daemon restarted".into(),
            measured: match (rec.daemon_down_after_ms, rec.daemon_back_after_ms) {
                (Some(d), Some(b)) => format!("gone at +{}, answering at +{}", secs(d), secs(b)),
                (Some(d), None) => format!("gone at +{}, never answered again", secs(d)),
                (None, _) => "never went away".into(),
            },
            budget: "goes away, answers again".into(),
            passed: rec.daemon_down_after_ms.is_some() && rec.daemon_back_after_ms.is_some(),
        },
    ];
    let healthy = rec
        .containers
        .iter()
        .filter(|c| c.healthy_after_ms.is_some())
        .count();
    verdicts.push(Verdict {
        name: "every container back and healthy".into(),
        measured: format!(
            "{healthy} of {}{}",
            rec.containers.len(),
            rec.all_healthy_after_ms
                .map(|t| format!(" after {}", secs(t)))
                .unwrap_or_default()
        ),
        budget: "all, by their restart policy".into(),
        passed: !rec.containers.is_empty() && healthy == rec.containers.len(),
    });
    let max = opts
        .daemon
        .max_recovery_ms
        .unwrap_or(DEFAULT_MAX_RECOVERY_MS);
    verdicts.push(Verdict {
        name: "time to verified (fault → verify passes)".into(),
        measured: rec
            .verified_after_ms
            .map_or_else(|| "not reached".into(), secs),
        budget: format!("≤ {}", secs(max)),
        passed: rec.verified_after_ms.is_some_and(|t| t <= max),
    });
    if apps.is_empty() {
        rec.all_instances_serving_after_ms = None;
    }
    let recovery = Recovery {
        target: opts.docker.endpoint.host.clone(),
        time_to_full_health_ms: rec.verified_after_ms,
        serving_after_ms: serving_again.map(after),
        daemon: Some(rec),
        ..Default::default()
    };
    assemble(
        opts,
        Measured {
            fault,
            fault_at_ms,
            result,
            recovery,
            timeline,
            budgets: verdicts,
            notes,
        },
    )
}

/// The text report's recovery rows.
pub fn recovery_rows(rc: &Recovery) -> Vec<(String, String)> {
    let t = |ms: Option<u64>| ms.map_or_else(|| "not reached".into(), secs);
    let Some(d) = &rc.daemon else {
        return vec![];
    };
    let mut rows = vec![
        (
            format!("live-restore {}", if d.live_restore { "on" } else { "off" }),
            if d.live_restore {
                "containers should keep running".into()
            } else {
                "the daemon stops every container".into()
            },
        ),
        (
            format!(
                "restart command finished{}",
                d.command_exit_code
                    .map(|c| format!(" (exit {c})"))
                    .unwrap_or_default()
            ),
            t(d.command_finished_after_ms),
        ),
        ("daemon went away".into(), t(d.daemon_down_after_ms)),
        ("daemon answers again".into(), t(d.daemon_back_after_ms)),
    ];
    let mut containers: Vec<&ContainerBack> = d.containers.iter().collect();
    containers.sort_by_key(|c| (c.healthy_after_ms.is_none(), c.healthy_after_ms));
    for c in containers {
        let how = if c.kept_running {
            "kept running".to_string()
        } else {
            format!("running {}", t(c.running_after_ms))
        };
        let mut crashes = if c.policy_restarts > 0 {
            format!(", {} crash(es) on the way", c.policy_restarts)
        } else {
            String::new()
        };
        if let Some(s) = c.serving_after_ms {
            crashes += &format!(", through nginx {}", secs(s));
        }
        rows.push((
            format!("{} healthy", c.alias),
            format!("{} ({how}{crashes})", t(c.healthy_after_ms)),
        ));
    }
    rows.push(("serving again".into(), t(rc.serving_after_ms)));
    rows.push((
        "every instance serving through nginx".into(),
        t(d.all_instances_serving_after_ms),
    ));
    rows.push((
        format!(
            "verify passes ({} run{})",
            d.verify_runs,
            if d.verify_runs == 1 { "" } else { "s" }
        ),
        t(d.verified_after_ms),
    ));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_restart_command_the_error_says_what_to_pass_per_platform() {
        for missing in [None, Some(""), Some("   ")] {
            let e = require_restart_command(missing).unwrap_err().to_string();
            assert!(e.contains("--restart-command"), "{e}");
            assert!(e.contains("sudo systemctl restart docker"), "{e}");
            assert!(e.contains("Docker Desktop"), "{e}");
            assert!(e.contains("live-restore"), "{e}");
        }
        assert_eq!(
            require_restart_command(Some(" sudo systemctl restart docker ")).unwrap(),
            "sudo systemctl restart docker"
        );
    }

    #[test]
    fn the_commands_output_keeps_its_last_lines() {
        let out = last_lines(b"a\n\nb\nc\n", b"warn\n", 3);
        assert_eq!(out, ["b", "c", "warn"]);
        assert!(last_lines(b"", b"", 3).is_empty());
    }

    fn sample(client: usize, done: u64, ok: bool) -> stats::Sample {
        stats::Sample {
            client,
            path: "/health/backend".into(),
            sent_ms: done.saturating_sub(5),
            done_ms: done,
            result: if ok {
                Ok(Some("app-1".into()))
            } else {
                Err(stats::Failure::Transport {
                    reason: "cannot connect".into(),
                })
            },
        }
    }

    #[test]
    fn the_outage_spans_the_failures_after_the_fault() {
        let samples = vec![
            sample(0, 900, true),
            sample(0, 1100, true),
            sample(0, 1200, false),
            sample(1, 1150, true),
            sample(1, 1300, false),
            sample(0, 4000, true),
            sample(1, 4100, true),
        ];
        let g = outage(&samples, 2, 1000, 5000).unwrap();
        assert_eq!((g.from_ms, g.to_ms), (1150, 4000));
        // No failure after the fault (live-restore): no outage.
        let fine = vec![sample(0, 900, true), sample(0, 1200, true)];
        assert_eq!(outage(&fine, 1, 1000, 1300), None);
    }

    fn back(alias: &str, healthy: Option<u64>, kept: bool, crashes: i64) -> ContainerBack {
        ContainerBack {
            name: format!("p-{alias}"),
            alias: alias.into(),
            restart_policy: "unless-stopped".into(),
            kept_running: kept,
            running_after_ms: Some(6000),
            healthy_after_ms: healthy,
            policy_restarts: crashes,
            serving_after_ms: None,
        }
    }

    #[test]
    fn the_recovery_rows_show_containers_in_the_order_they_came_back() {
        let rc = Recovery {
            serving_after_ms: Some(6100),
            daemon: Some(DaemonRecovery {
                command_exit_code: Some(0),
                command_finished_after_ms: Some(5900),
                daemon_down_after_ms: Some(100),
                daemon_back_after_ms: Some(6000),
                containers: vec![
                    back("nginx", Some(8000), false, 2),
                    back("app-1", Some(7000), false, 0),
                    back("redis", None, false, 0),
                ],
                verify_runs: 2,
                verified_after_ms: Some(9500),
                ..Default::default()
            }),
            ..Default::default()
        };
        let rows: Vec<String> = recovery_rows(&rc)
            .into_iter()
            .map(|(l, v)| format!("{l}: {v}"))
            .collect();
        assert_eq!(
            rows,
            [
                "live-restore off: the daemon stops every container",
                "restart command finished (exit 0): 5.90 s",
                "daemon went away: 0.10 s",
                "daemon answers again: 6.00 s",
                "app-1 healthy: 7.00 s (running 6.00 s)",
                "nginx healthy: 8.00 s (running 6.00 s, 2 crash(es) on the way)",
                "redis healthy: not reached (running 6.00 s)",
                "serving again: 6.10 s",
                "every instance serving through nginx: not reached",
                "verify passes (2 runs): 9.50 s",
            ]
        );
        let kept = Recovery {
            daemon: Some(DaemonRecovery {
                live_restore: true,
                containers: vec![back("nginx", Some(4200), true, 0)],
                ..Default::default()
            }),
            ..Default::default()
        };
        let rows = recovery_rows(&kept);
        assert_eq!(rows[0].1, "containers should keep running");
        assert!(rows
            .iter()
            .any(|(l, v)| l == "nginx healthy" && v == "4.20 s (kept running)"));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_restart_command_runs_with_sh_and_its_status_is_seen() {
        let out = shell("echo one; echo two >&2; exit 3")
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(last_lines(&out.stdout, &out.stderr, 5), ["one", "two"]);
    }
}
