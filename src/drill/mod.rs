//! `drill`: inject a fault into a running deployment while a built-in load runs, and measure
//! what its clients saw (issues 6 and 13, docs/design.md §7 and §10). One file per fault:
//!
//! - `load.rs`: the load generator (keep-alive clients through the balancer, and one session
//!   client whose counter must never go back).
//! - `instance.rs`: SIGKILL one app instance; its restart policy brings it back (on Swarm, a
//!   new task in the same slot), nginx must route around it meanwhile.
//! - `redis.rs`: with Sentinels, stop the Redis master (on Swarm, its service goes to 0
//!   replicas); the Sentinels promote the replica, the app follows, the old master rejoins.
//! - `service.rs`: SIGKILL Postgres, nginx, or Redis on a stack without Sentinels; the restart
//!   policy brings it back; Postgres's marker rows and the instances' restart counts checked.
//! - `network.rs`: one app instance off the project network for `--cut-secs`, then back.
//! - `memory.rs`: one app instance driven to its memory limit (a static hog, `hog/`, run inside
//!   it); the OOM kill must be reported as such.
//! - `fault.rs`: what the single-host faults share: budgets, the `verified` step, data checks.
//! - `daemon.rs`: restart the Docker daemon (`--restart-command`); every container comes back
//!   by its restart policy and `verify` passes again.
//! - `stats.rs`: pure figures and budget verdicts; `report.rs`: text and JSON.
//! - `series.rs`: the load second by second and the moments to mark (pure);
//!   `picture.rs`: those drawn as charts, the SVG or HTML file of `--report`.
//!
//! Every report names the fault, its timeline (fault, first failed request, recovered,
//! verified: every container running and healthy, the balancer serving) and the failed
//! requests by kind. A drill always tries to leave the deployment as it found it: a stopped
//! master is started again (its service set back to 1 replica on Swarm), a container that does
//! not come back by itself is started, a cut-off instance is attached again (also on Ctrl-C).
//!
//! `--target swarm` drills the Swarm stack of `up --target swarm` (`instance` and `redis`).
//! Docker is asked through the daemon of this node (a manager): the killed task's container
//! must run on it, and so must a Sentinel for `drill redis` (every Redis query goes through
//! one).

pub mod daemon;
mod fault;
#[cfg(test)]
mod fixture;
mod instance;
pub mod load;
mod memory;
mod network;
pub mod picture;
pub(crate) mod redis;
pub mod report;
pub mod series;
mod service;
pub mod stats;

use std::collections::BTreeMap;

use crate::config::AppPaths;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::config::Target;
use crate::desired::Role;
use crate::docker::DockerClient;
use crate::http::{HttpClient, HttpsRoute};
use crate::observed::{ContainerState, ObservedContainer};
use crate::readiness::Readiness;
use load::{LoadOptions, LoadResult};
use stats::{Failures, Gap, Latency, SessionIntegrity, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Instance,
    Redis,
    Postgres,
    Nginx,
    Network,
    Memory,
    Daemon,
}

/// Default budgets (issue 6): no failed request when an instance crashes; at most 7 s without
/// sessions when the Redis master goes away.
pub const DEFAULT_MAX_FAILED_INSTANCE: u64 = 0;
pub const DEFAULT_MAX_OUTAGE_MS_REDIS: u64 = 7000;
/// Budgets of the single-host faults (issue 13); `fault.rs` says how each was chosen.
pub use fault::{
    DEFAULT_MAX_FAILED_MEMORY, DEFAULT_MAX_FAILED_NETWORK, DEFAULT_MAX_FAILED_POSTGRES,
    DEFAULT_MAX_OUTAGE_MS_NGINX, DEFAULT_MAX_OUTAGE_MS_REDIS_RESTART,
};

pub struct Options {
    pub kind: Kind,
    pub project: String,
    /// Base URL of the balancer.
    pub url: String,
    /// TLS on: the balancer is asked over HTTPS by this route (`url` is its base).
    pub https: Option<HttpsRoute>,
    /// How long the load runs at least; it runs on until full health is back (or `timeout`).
    pub duration: Duration,
    pub concurrency: usize,
    /// Where the stack runs: one Docker host, or the swarm this daemon manages.
    pub on: Target,
    /// `drill instance`: the instance to kill (`app-2`; on Swarm the task in slot 2); default
    /// the highest numbered.
    pub instance: Option<String>,
    pub max_failed: Option<u64>,
    pub max_outage_ms: Option<u64>,
    /// `drill network`: how long the instance stays cut off.
    pub cut: Duration,
    /// Deadline for each recovery, from the fault.
    pub timeout: Duration,
    pub master_name: String,
    /// What "healthy" means for an app instance (its healthcheck, as `up` waits for it).
    pub app_readiness: Readiness,
    /// The app's paths: the load asks [`AppPaths::load_path`], the session client
    /// `APP_SESSION_PATH` (none when it is empty).
    pub paths: AppPaths,
    pub docker: DockerClient,
    pub daemon: daemon::Settings,
}

impl Options {
    /// Load before the fault, so the report shows the steady state it disturbed.
    fn warmup(&self) -> Duration {
        (self.duration / 4).clamp(Duration::from_millis(500), Duration::from_secs(2))
    }

    /// Starts the load and lets it run for the warm-up; returns it with the timeline begun.
    /// Ctrl-C during the warm-up stops the drill before any fault.
    async fn start_load(&self, progress: &dyn Fn(&str)) -> Result<(load::Load, Vec<Event>)> {
        let mut load_options = self.load_options();
        load_options.addresses = self.instance_addresses().await;
        let load = load::Load::start(&load_options)?;
        let clients = format!("{} clients + 1 session client", self.concurrency);
        let timeline = vec![Event {
            at_ms: 0,
            what: format!("load started: {clients}"),
        }];
        progress(&format!("load: {clients} against {}", self.url));
        tokio::time::sleep(self.warmup()).await;
        if interrupted() {
            load.stop().await;
            bail!("interrupted (Ctrl-C) before the fault: nothing was changed");
        }
        Ok((load, timeline))
    }

    fn load_options(&self) -> LoadOptions {
        LoadOptions {
            base_url: self.url.clone(),
            concurrency: self.concurrency,
            paths: self.balancer_paths(),
            session_path: self.paths.session.as_ref().map(ToString::to_string),
            addresses: BTreeMap::new(),
            https: self.https.clone(),
        }
    }

    /// What the load asks through the balancer: the app's cheap path that names the instance
    /// (`/health/backend` for the reference app), and its session path when it has one.
    pub fn balancer_paths(&self) -> Vec<String> {
        self.paths
            .load_path()
            .into_iter()
            .chain(self.paths.session.as_ref().map(ToString::to_string))
            .collect()
    }

    /// The app instances' addresses on the project network → their names (`app-2`): nginx's
    /// upstream header names the instance of an app that reports no instanceId by address.
    /// Empty when Docker cannot say (the answers then keep the address).
    async fn instance_addresses(&self) -> BTreeMap<String, String> {
        let Ok(containers) = self.docker.list_containers(&self.project).await else {
            return BTreeMap::new();
        };
        containers
            .iter()
            .filter(|c| c.role_kind() == Some(crate::desired::Role::App))
            .flat_map(|c| c.ips.iter().map(move |ip| (ip.clone(), c.alias())))
            .collect()
    }
}

/// One moment of the drill, in milliseconds since the load started.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at_ms: u64,
    pub what: String,
}

/// Recovery figures, in milliseconds after the fault; absent when not reached (or not
/// applicable to this drill).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recovery {
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_full_health_ms: Option<u64>,
    // drill instance
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving_after_ms: Option<u64>,
    // drill redis
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_master: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promoted_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions_back_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_outage_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_master_restarted_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_master_rejoined_after_ms: Option<u64>,
    // drill postgres, nginx, redis (no Sentinels), network, memory
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error_after_ms: Option<u64>,
    /// The container (or instance) is back: running, healthy, the load served again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_after_ms: Option<u64>,
    /// Every container running and healthy, the balancer serving, the data checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_failed_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_back_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_killed: Option<bool>,
    /// The data invariant of the drill, checked after it (marker rows, no instance restart).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<fault::Check>,
    // drill daemon
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon: Option<daemon::DaemonRecovery>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub clients: usize,
    pub paths: Vec<String>,
    pub duration_ms: u64,
    pub requests: u64,
    pub succeeded: u64,
    pub requests_per_second: f64,
    /// GETs the HTTP client sent once more on a new connection because the server closed the
    /// kept-alive one as they went out (as browsers do); each counts as one request above.
    pub resent_on_new_connection: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    pub requests: u64,
    /// The session client's longest span without a successful answer.
    pub longest_gap: Gap,
    pub integrity: SessionIntegrity,
    /// The load clients' own sessions checked too, and how many were intact.
    pub client_sessions_checked: usize,
    pub client_sessions_intact: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub drill: Kind,
    pub project: String,
    pub url: String,
    pub passed: bool,
    pub fault: String,
    /// When the fault was injected, in ms since the load started.
    pub fault_at_ms: u64,
    pub load: LoadSummary,
    pub failures: Failures,
    pub latency: Latency,
    /// The longest span in which no client got a successful answer.
    pub longest_gap: Gap,
    /// Each load client's longest gap (the session client's is under `session`).
    pub client_gaps: Vec<Gap>,
    pub session: SessionSummary,
    pub recovery: Recovery,
    pub timeline: Vec<Event>,
    pub budgets: Vec<Verdict>,
    /// The load second by second, for the picture of `--report`.
    pub series: Vec<series::Bin>,
    /// Things a person should know that are not a budget (e.g. a figure that could not be
    /// measured).
    pub notes: Vec<String>,
    /// Stopped early by Ctrl-C: the figures are incomplete.
    pub interrupted: bool,
}

impl Report {
    /// The worst gap any one load client saw.
    pub fn worst_client_gap(&self) -> Gap {
        self.client_gaps
            .iter()
            .copied()
            .max_by_key(|g| g.ms)
            .unwrap_or_default()
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Ctrl-C was pressed: the drill stops waiting, puts the deployment back (a stopped master is
/// started again) and reports what it measured so far.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Runs the drill. An error means it could not run (exit 2); budgets decide `passed`.
pub async fn run(opts: &Options, progress: &dyn Fn(&str)) -> Result<Report> {
    let ctrl_c = tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            INTERRUPTED.store(true, Ordering::SeqCst);
        }
    });
    let r = run_drill(opts, progress).await;
    ctrl_c.abort();
    r
}

async fn run_drill(opts: &Options, progress: &dyn Fn(&str)) -> Result<Report> {
    if opts.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if opts.on == Target::Swarm {
        let node = opts.docker.swarm_manager().await?;
        if opts.docker.list_services(&opts.project).await?.is_empty() {
            bail!(
                "project {} has no services on the swarm: is the stack up (radar-deploy up --target swarm), and is --project right?",
                opts.project
            );
        }
        balancer_answers(opts).await?;
        return match opts.kind {
            Kind::Instance => instance::run_swarm(opts, &node, progress).await,
            Kind::Redis => redis::run_swarm(opts, &node, progress).await,
            other => bail!(
                "`drill {}` runs on one Docker host only; on Swarm there are `drill instance` and `drill redis`",
                other.name()
            ),
        };
    }
    let containers = opts.docker.list_containers(&opts.project).await?;
    if containers.is_empty() {
        bail!(
            "project {} has no containers: is the stack up (radar-deploy up), and is --project right?",
            opts.project
        );
    }
    balancer_answers(opts).await?;
    match opts.kind {
        Kind::Instance => instance::run(opts, &containers, progress).await,
        // Without Sentinels there is nothing to fail over to: Redis is killed and restarted.
        Kind::Redis
            if !containers
                .iter()
                .any(|c| c.role_kind() == Some(Role::Sentinel)) =>
        {
            service::run(opts, &containers, progress).await
        }
        Kind::Redis => redis::run(opts, &containers, progress).await,
        Kind::Postgres | Kind::Nginx => service::run(opts, &containers, progress).await,
        Kind::Network => network::run(opts, &containers, progress).await,
        Kind::Memory => memory::run(opts, &containers, progress).await,
        Kind::Daemon => daemon::run(opts, &containers, progress).await,
    }
}

impl Kind {
    /// The name on the command line (`drill postgres`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Instance => "instance",
            Kind::Redis => "redis",
            Kind::Postgres => "postgres",
            Kind::Nginx => "nginx",
            Kind::Network => "network",
            Kind::Memory => "memory",
            Kind::Daemon => "daemon",
        }
    }
}

/// Whether a drill's wait for recovery ends now, for Ctrl-C or at its deadline (saying
/// which; `who` is what did not recover).
fn stop_waiting(
    recovered: bool,
    deadline: std::time::Instant,
    who: &str,
    opts: &Options,
    progress: &dyn Fn(&str),
) -> bool {
    if interrupted() {
        progress("interrupted (Ctrl-C): putting the deployment back");
        return true;
    }
    if !recovered && std::time::Instant::now() >= deadline {
        progress(&format!(
            "{who} did not recover within {}s (--timeout)",
            opts.timeout.as_secs()
        ));
        return true;
    }
    false
}

/// Stops the load and marks the moment on the timeline.
async fn stop_load(load: load::Load, timeline: &mut Vec<Event>) -> LoadResult {
    let result = load.stop().await;
    timeline.push(Event {
        at_ms: result.duration_ms,
        what: "load stopped".into(),
    });
    result
}

/// The drill measures a working deployment: the balancer must answer before anything starts.
async fn balancer_answers(opts: &Options) -> Result<()> {
    let url = &opts.url;
    let http = HttpClient::with_route(Duration::from_secs(5), true, opts.https.as_ref())?;
    for path in opts.balancer_paths() {
        let u = format!("{url}{path}");
        match http.get(&u).await {
            Ok(r) if r.status == 200 => {}
            Ok(r) => bail!(
                "GET {u} → {} before the drill: {}\n  a drill starts from a working deployment; run `radar-deploy verify` first",
                r.status,
                crate::verify::evaluate::excerpt(&r.body)
            ),
            Err(e) => bail!(
                "GET {e} before the drill\n  is the stack up, and is HTTP_PORT (or --url) right?"
            ),
        }
    }
    Ok(())
}

fn is_running(c: &ObservedContainer) -> bool {
    c.state == ContainerState::Running
}

/// What a drill gathered, before judgement.
struct Measured {
    fault: String,
    fault_at_ms: u64,
    result: LoadResult,
    recovery: Recovery,
    timeline: Vec<Event>,
    /// The drill's own verdicts (recovery deadlines).
    budgets: Vec<Verdict>,
    notes: Vec<String>,
}

/// Turns what the load saw into the report's figures and verdicts.
fn assemble(opts: &Options, m: Measured) -> Report {
    let Measured {
        fault,
        fault_at_ms,
        result,
        recovery,
        timeline,
        mut budgets,
        notes,
    } = m;
    let window = (0, result.duration_ms);
    let session_client = opts.concurrency;
    let load_samples: Vec<stats::Sample> = result
        .samples
        .iter()
        .filter(|s| s.client != session_client)
        .cloned()
        .collect();
    let (client_gaps, _) = stats::gaps(&load_samples, opts.concurrency, window);
    let (_, longest_gap) = stats::gaps(&result.samples, opts.concurrency + 1, window);
    let session_gap = session_gap(&result, session_client, 0);
    let session_requests = result
        .samples
        .iter()
        .filter(|s| s.client == session_client)
        .count() as u64;
    let failures = stats::failures(&result.samples);
    let succeeded = result.samples.iter().filter(|s| s.ok()).count() as u64;
    let requests = result.samples.len() as u64;

    let integrity = stats::session_integrity(&result.sessions);
    let client_checks: Vec<SessionIntegrity> = result
        .client_sessions
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| stats::session_integrity(s))
        .collect();
    let client_intact = client_checks.iter().filter(|c| c.intact).count();

    // The session verdict covers every session: the session client's first, then any load
    // client whose own session went back.
    let mut session_verdict = stats::judge_session(&integrity);
    if session_verdict.passed {
        if let Some((i, bad)) = client_checks.iter().enumerate().find(|(_, c)| !c.intact) {
            session_verdict.passed = false;
            session_verdict.measured = format!(
                "load client {}'s session: {}",
                i + 1,
                bad.problem.clone().unwrap_or_default()
            );
        }
    }
    if !client_checks.is_empty() && session_verdict.passed {
        session_verdict.measured +=
            &format!(" (and {} load-client sessions intact)", client_checks.len());
    }

    let mut verdicts = vec![];
    let max_failed = opts.max_failed.or(match opts.kind {
        Kind::Instance => Some(DEFAULT_MAX_FAILED_INSTANCE),
        Kind::Postgres => Some(DEFAULT_MAX_FAILED_POSTGRES),
        Kind::Network => Some(DEFAULT_MAX_FAILED_NETWORK),
        Kind::Memory => Some(DEFAULT_MAX_FAILED_MEMORY),
        Kind::Redis | Kind::Nginx | Kind::Daemon => None,
    });
    if let Some(max) = max_failed {
        verdicts.push(stats::judge_failed(failures.total, max));
    }
    // The failover flow (Sentinels) always records the old master's restart; the restart flow
    // (no Sentinels: Redis itself killed and brought back) never does.
    let failover = recovery.old_master_restarted_after_ms.is_some();
    let max_outage = opts.max_outage_ms.or(match opts.kind {
        Kind::Redis if failover => Some(DEFAULT_MAX_OUTAGE_MS_REDIS),
        Kind::Redis => Some(DEFAULT_MAX_OUTAGE_MS_REDIS_RESTART),
        Kind::Nginx => Some(DEFAULT_MAX_OUTAGE_MS_NGINX),
        Kind::Instance | Kind::Postgres | Kind::Network | Kind::Memory | Kind::Daemon => None,
    });
    if let Some(max) = max_outage {
        verdicts.push(match opts.kind {
            Kind::Nginx => stats::judge_outage("longest gap (any client)", longest_gap, max),
            Kind::Instance | Kind::Postgres | Kind::Network | Kind::Memory => stats::judge_outage(
                "longest gap (worst client)",
                client_gaps
                    .iter()
                    .copied()
                    .max_by_key(|g| g.ms)
                    .unwrap_or_default(),
                max,
            ),
            Kind::Redis => stats::judge_outage("session outage", session_gap, max),
            Kind::Daemon => stats::judge_outage("longest gap (any client)", longest_gap, max),
        });
    }
    // An app without sessions (APP_SESSION_PATH empty) has no session to judge: the verdict is
    // left out, not passed.
    if opts.paths.session.is_some() {
        verdicts.push(session_verdict);
    }
    verdicts.append(&mut budgets);

    let passed = verdicts.iter().all(|v| v.passed);
    let secs = result.duration_ms as f64 / 1000.0;
    Report {
        drill: opts.kind,
        project: opts.project.clone(),
        url: opts.url.clone(),
        passed,
        fault,
        fault_at_ms,
        load: LoadSummary {
            clients: opts.concurrency,
            paths: opts.load_options().paths,
            duration_ms: result.duration_ms,
            requests,
            succeeded,
            requests_per_second: if secs > 0.0 {
                (requests as f64 / secs * 10.0).round() / 10.0
            } else {
                0.0
            },
            resent_on_new_connection: crate::http::closed_connection_retries(),
        },
        failures,
        latency: stats::latency(&result.samples),
        longest_gap,
        client_gaps,
        session: SessionSummary {
            requests: session_requests,
            longest_gap: session_gap,
            integrity,
            client_sessions_checked: client_checks.len(),
            client_sessions_intact: client_intact,
        },
        recovery,
        timeline,
        budgets: verdicts,
        series: series::per_second(&result.samples, fault_at_ms, result.duration_ms),
        notes,
        interrupted: interrupted(),
    }
}

/// When the first successful answer from `instance` to a request sent after `after_ms`
/// arrived.
fn first_served_by(samples: &[stats::Sample], instance: &str, after_ms: u64) -> Option<u64> {
    samples
        .iter()
        .filter(|s| s.sent_ms > after_ms)
        .filter(|s| matches!(&s.result, Ok(Some(id)) if id == instance))
        .map(|s| s.done_ms)
        .min()
}

/// The session client's longest span without a successful answer: the session outage.
/// The session client's longest span without a successful answer, from `from_ms` to the end.
pub fn session_gap(result: &LoadResult, session_client: usize, from_ms: u64) -> Gap {
    let own: Vec<stats::Sample> = result
        .samples
        .iter()
        .filter(|s| s.client == session_client)
        .map(|s| stats::Sample {
            client: 0,
            ..s.clone()
        })
        .collect();
    stats::gaps(&own, 1, (from_ms, result.duration_ms)).1
}
