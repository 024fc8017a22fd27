//! `top`: what each instance is doing now, from what nginx already records. nginx writes one
//! JSON line per request to its stdout (which instance served it, its status and timings);
//! `top` follows that log through the Engine API (a container's log on one host, the nginx
//! task's on a swarm, asked of the manager), sums up the last window per instance
//! ([`crate::traffic::summarize`]) and adds what Docker knows: each instance's health, its CPU
//! and memory against its limits (the stats API), nginx's connection counters (`stub_status`,
//! by an exec in its container) and the data stores' state. Nothing is published, nothing is
//! installed in the containers.
//!
//! The log's times are the daemon's clock; the window is placed on it by the difference
//! between that clock and this machine's, measured once (`docker info`), so a remote daemon
//! whose clock is off still gets the right window.

use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::config::Target;
use crate::desired::{Role, NGINX_PORT};
use crate::docker::{DockerClient, LogLine};
use crate::observed::{ContainerState, Health, ObservedContainer, UsageSample};
use crate::probes::{self, StubStatus};
use crate::traffic::view::{Balancer, InstanceRow, Screen, ServiceState};
use crate::traffic::{self, Entry, Traffic};
use crate::ui::{self, Ui};
use crate::verify::topology;

/// How often the live view is redrawn.
pub const REFRESH: Duration = Duration::from_secs(2);
/// The shortest span two CPU samples may be apart for the CPU figure of a snapshot.
const CPU_SPAN: Duration = Duration::from_secs(1);

/// Where nginx's access log is read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LogSource {
    Container(String),
    Task(String),
}

/// One app instance as Docker knows it.
#[derive(Debug, Clone)]
struct Instance {
    name: String,
    ips: Vec<String>,
    health: String,
    /// Its container, when it runs on the daemon reached (stats work only there).
    container: Option<String>,
    cpu_limit: Option<f64>,
}

/// What one refresh reads from; looked up again every refresh, so a `scale`, a rolling update
/// or a recreated nginx shows at once.
#[derive(Debug, Default)]
struct Found {
    logs: Vec<LogSource>,
    /// A running nginx container on the daemon reached, for `stub_status`.
    nginx: Option<String>,
    instances: Vec<Instance>,
    services: Vec<ServiceState>,
    notes: Vec<String>,
}

fn health_word(state: ContainerState, health: Health) -> String {
    match (state, health) {
        (ContainerState::Running, Health::Healthy) => "healthy".into(),
        (ContainerState::Running, Health::Unhealthy) => "unhealthy".into(),
        (ContainerState::Running, Health::Starting) => "starting".into(),
        (ContainerState::Running, Health::None) => "running".into(),
        (state, _) => format!("{state:?}").to_lowercase(),
    }
}

fn service_state(c: &ObservedContainer) -> ServiceState {
    let state = match (c.state, c.health) {
        (ContainerState::Running, Health::None) => "running".to_string(),
        (ContainerState::Running, h) => format!("running ({})", format!("{h:?}").to_lowercase()),
        (s, _) => format!("{s:?}").to_lowercase(),
    };
    ServiceState {
        name: c.alias(),
        ok: c.state == ContainerState::Running && c.health != Health::Unhealthy,
        state,
    }
}

/// Finds a project's instances, nginx and data stores on one Docker host. CPU limits are
/// inspected once per container (`limits` keeps them by container id).
async fn find_single(
    docker: &DockerClient,
    project: &str,
    limits: &mut HashMap<String, f64>,
) -> Result<Found> {
    let mut containers = docker.list_containers(project).await?;
    if containers.is_empty() {
        return Err(anyhow!(
            "project {project} has no containers on {}\n  fix: run `radar-deploy up` first, or \
             name the project with --project (or the target with --target swarm)",
            docker.describe()
        ));
    }
    containers.sort_by_key(ObservedContainer::instance_number);
    let mut found = Found::default();
    for c in &containers {
        let running = c.state == ContainerState::Running;
        match c.role_kind() {
            Some(Role::App) => {
                let limit = match limits.get(&c.id) {
                    Some(l) => Some(*l),
                    None => match docker.container_facts(&c.name).await {
                        Ok(f) => {
                            let l = f.nano_cpus as f64 / 1e9;
                            limits.insert(c.id.clone(), l);
                            Some(l)
                        }
                        Err(_) => None,
                    },
                };
                found.instances.push(Instance {
                    name: c.alias(),
                    ips: c.ips.clone(),
                    health: health_word(c.state, c.health),
                    container: running.then(|| c.name.clone()),
                    cpu_limit: limit.filter(|l| *l > 0.0),
                });
            }
            Some(Role::Nginx) => {
                if running {
                    found.logs.push(LogSource::Container(c.name.clone()));
                    found.nginx.get_or_insert_with(|| c.name.clone());
                }
                found.services.push(service_state(c));
            }
            Some(Role::Release) | None => {}
            Some(_) => found.services.push(service_state(c)),
        }
    }
    if found.logs.is_empty() {
        found
            .notes
            .push("nginx is not running: there is no traffic to read".into());
    }
    Ok(found)
}

/// Finds a stack's tasks on the swarm the daemon manages. Tasks are named `app-N` by their
/// slot and matched to nginx's upstream addresses through the stack network's task list;
/// CPU and memory are read for the tasks on the node reached (the stats API is per node).
async fn find_swarm(docker: &DockerClient, project: &str) -> Result<Found> {
    let node = docker.swarm_manager().await?;
    let tasks = topology::swarm_tasks(docker, project)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    if tasks.is_empty() {
        return Err(anyhow!(
            "stack {project} has no services on the swarm of {}\n  fix: run `radar-deploy up \
             --target swarm` first, or name the project with --project",
            docker.describe()
        ));
    }
    let network = format!("{project}_default");
    let addresses = match docker.network_task_addresses(&network).await {
        Ok(a) => a,
        Err(e) => {
            return Ok(Found {
                notes: vec![format!(
                    "cannot read the task addresses of network {network} ({e}): instances \
                     are named by address"
                )],
                ..find_swarm_tasks(&tasks, &node, &[])
            })
        }
    };
    Ok(find_swarm_tasks(&tasks, &node, &addresses))
}

/// The pure half of [`find_swarm`]: tasks and the network's (task name, address) pairs.
fn find_swarm_tasks(tasks: &topology::Tasks, node: &str, addresses: &[(String, String)]) -> Found {
    let mut found = Found::default();
    let mut elsewhere = vec![];
    for (service, list) in tasks {
        let running = list.iter().filter(|t| t.running).count();
        if service == "app" {
            let mut list = list.clone();
            list.sort_by_key(|t| t.slot);
            for t in list {
                let name = format!("app-{}", t.slot.unwrap_or(0));
                let local = t.running && t.node_id == node;
                if t.running && !local {
                    elsewhere.push(name.clone());
                }
                found.instances.push(Instance {
                    ips: addresses
                        .iter()
                        .filter(|(task, _)| !t.id.is_empty() && task.ends_with(&t.id))
                        .map(|(_, ip)| ip.clone())
                        .collect(),
                    name,
                    health: t.state.clone(),
                    container: if local { t.container_id.clone() } else { None },
                    cpu_limit: (t.cpu_limit > 0.0).then_some(t.cpu_limit),
                });
            }
            continue;
        }
        if service == "nginx" {
            for t in list.iter().filter(|t| t.running) {
                found.logs.push(LogSource::Task(t.id.clone()));
                if t.node_id == node && found.nginx.is_none() {
                    found.nginx = t.container_id.clone();
                }
            }
        }
        if service == "release" {
            continue;
        }
        found.services.push(ServiceState {
            name: service.clone(),
            state: format!("{running}/{} running", list.len()),
            ok: running == list.len() && running > 0,
        });
    }
    if !elsewhere.is_empty() {
        found.notes.push(format!(
            "{} run on other nodes: their CPU and memory are read only on the node reached \
             (point DOCKER_HOST at that node's daemon for them)",
            elsewhere.join(", ")
        ));
    }
    if found.logs.is_empty() {
        found
            .notes
            .push("no nginx task is running: there is no traffic to read".into());
    }
    found
}

fn local_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The daemon's clock minus this machine's, in milliseconds (0 when the daemon does not say).
async fn clock_skew_ms(docker: &DockerClient) -> Result<i64> {
    let before = local_ms();
    let daemon = docker.daemon_clock_ms().await?;
    let after = local_ms();
    Ok(daemon.map_or(0, |d| d - (before + after) / 2))
}

/// What a log stream error means to an operator.
fn log_problem(source: &LogSource, e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    let what = match source {
        LogSource::Container(c) => format!("container {c}"),
        LogSource::Task(t) => format!("task {t}"),
    };
    if text.contains("does not support reading") {
        format!(
            "nginx's log ({what}) cannot be read back: its log driver does not support reading \
             (`docker logs` fails alike); give nginx the json-file or local log driver"
        )
    } else {
        format!("nginx's log ({what}) cannot be read: {text}")
    }
}

fn stream_of(
    docker: &DockerClient,
    source: &LogSource,
    since_unix: Option<i64>,
    follow: bool,
) -> BoxStream<'static, crate::docker::Result<LogLine>> {
    match source {
        LogSource::Container(c) => docker.stdout_since(c, since_unix, follow).boxed(),
        LogSource::Task(t) => docker.task_stdout_since(t, since_unix, follow).boxed(),
    }
}

/// The entries read so far, oldest first, and how late each line arrived.
#[derive(Default)]
struct Log {
    entries: Mutex<VecDeque<Entry>>,
    /// Receive time minus nginx's time of the recent lines (ms): how stale the view is.
    lag_ms: Mutex<VecDeque<f64>>,
    problems: Mutex<HashMap<LogSource, String>>,
    /// The window's earlier lines, read back beside the follower: a source is here while its
    /// history is being read (`None`) or when that failed (why); the figures are partial then.
    history: Mutex<HashMap<LogSource, Option<String>>>,
}

impl Log {
    fn push(&self, e: Entry, lag_ms: f64) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.push_back(e);
        }
        if let Ok(mut lags) = self.lag_ms.lock() {
            lags.push_back(lag_ms);
            if lags.len() > 10_000 {
                lags.pop_front();
            }
        }
    }

    /// Adds lines read back (not followed: they say nothing of the lag).
    fn extend(&self, more: impl Iterator<Item = Entry>) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.extend(more);
        }
    }

    /// The window ending at `to_ms`, summed under the lock (no copy of the entries); what
    /// ended before it is dropped, as the window is all that is kept.
    fn window(&self, found: &Found, to_ms: i64, window_ms: i64) -> Traffic {
        let Ok(mut entries) = self.entries.lock() else {
            return summarize(found, &[], to_ms, window_ms);
        };
        let from_ms = u64::try_from(to_ms - window_ms).unwrap_or(0);
        // Lines of several nginx tasks interleave: dropped by time, not by position.
        entries.retain(|e| e.at_ms > from_ms);
        summarize(found, entries.make_contiguous(), to_ms, window_ms)
    }

    /// A source no longer followed (nginx recreated, a task replaced): what was said of it goes.
    fn forget(&self, source: &LogSource) {
        if let Ok(mut p) = self.problems.lock() {
            p.remove(source);
        }
        if let Ok(mut h) = self.history.lock() {
            h.remove(source);
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .problems
            .lock()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default();
        if let Ok(history) = self.history.lock() {
            let reading = history.values().filter(|h| h.is_none()).count();
            if reading > 0 {
                all.push(
                    "reading the window's earlier lines from nginx's log: the figures are \
                     partial until they are in"
                        .into(),
                );
            }
            all.extend(history.values().flatten().map(|why| {
                format!("{why}: the figures count only the requests since top started")
            }));
        }
        all
    }

    fn lag_p95(&self) -> Option<f64> {
        let mut lags: Vec<f64> = self.lag_ms.lock().ok()?.iter().copied().collect();
        lags.sort_by(f64::total_cmp);
        traffic::percentile(&lags, 95.0)
    }
}

/// Follows one source's log into `log` until aborted: new lines only (`tail=0`, served at
/// once), while the window's earlier lines are read back beside them and added up to the first
/// line followed. When the stream ends (nginx restarted, the connection broke) it follows again
/// from then.
fn follow(
    docker: DockerClient,
    source: LogSource,
    since_ms: i64,
    skew_ms: i64,
    log: Arc<Log>,
) -> JoinHandle<()> {
    if let Ok(mut h) = log.history.lock() {
        h.insert(source.clone(), None);
    }
    tokio::spawn(async move {
        // The first followed line's time: history up to it is the read-back's, after it the
        // follower's. Both halves run in this one task, so aborting it ends both.
        let first = Mutex::new(None::<u64>);
        let history = async {
            let failed = match read_back(&docker, &source, since_ms).await {
                Ok(entries) => {
                    let until = first.lock().ok().and_then(|f| *f).unwrap_or(u64::MAX);
                    log.extend(entries.into_iter().filter(|e| e.at_ms < until));
                    None
                }
                Err(why) => Some(why),
            };
            if let Ok(mut h) = log.history.lock() {
                match failed {
                    None => h.remove(&source),
                    Some(why) => h.insert(source.clone(), Some(why)),
                };
            }
        };
        let followed = async {
            loop {
                let mut lines = stream_of(&docker, &source, None, true);
                let mut reading = false;
                while let Some(line) = lines.next().await {
                    match line {
                        Ok(line) => {
                            let Some(e) = traffic::parse(&line.text) else {
                                continue;
                            };
                            if !reading {
                                // Once per stream, not per line: the log reads again.
                                reading = true;
                                if let Ok(mut p) = log.problems.lock() {
                                    p.remove(&source);
                                }
                                if let Ok(mut f) = first.lock() {
                                    f.get_or_insert(e.at_ms);
                                }
                            }
                            let lag = (local_ms() + skew_ms) as f64 - e.at_ms as f64;
                            log.push(e, lag);
                        }
                        Err(e) => {
                            if let Ok(mut p) = log.problems.lock() {
                                p.insert(source.clone(), log_problem(&source, &e));
                            }
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        tokio::join!(history, followed);
    })
}

/// Reads the lines of one source from `since_ms` to now, without following.
async fn read_back(
    docker: &DockerClient,
    source: &LogSource,
    since_ms: i64,
) -> Result<Vec<Entry>, String> {
    let mut lines = stream_of(docker, source, Some(since_ms.div_euclid(1000)), false);
    let mut out = vec![];
    while let Some(line) = lines.next().await {
        match line {
            Ok(line) => out.extend(traffic::parse(&line.text)),
            Err(e) => return Err(log_problem(source, &e)),
        }
    }
    Ok(out)
}

async fn samples(docker: &DockerClient, found: &Found) -> HashMap<String, UsageSample> {
    let asks = found.instances.iter().filter_map(|i| {
        let c = i.container.clone()?;
        Some(async move { docker.usage(&c).await.ok().map(|s| (c, s)) })
    });
    futures_util::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Keeps `latest[container]` at the container's last resource sample, streamed by the daemon
/// (one a second), until the stream ends or the task is aborted.
fn watch_usage(
    docker: DockerClient,
    container: String,
    latest: Arc<Mutex<HashMap<String, UsageSample>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut samples = Box::pin(docker.usage_stream(&container));
        while let Some(Ok(sample)) = samples.next().await {
            if let Ok(mut l) = latest.lock() {
                l.insert(container.clone(), sample);
            }
        }
    })
}

async fn stub_status(docker: &DockerClient, found: &Found) -> Option<StubStatus> {
    let nginx = found.nginx.as_ref()?;
    let (code, out) = docker
        .exec(nginx, &probes::stub_status_argv(NGINX_PORT))
        .await
        .ok()?;
    if code != 0 {
        return None;
    }
    let section = probes::split_sections(&out).into_iter().next()?;
    probes::parse_stub_status(&probes::parse_raw_http(&section.1)?.body)
}

/// `2026-12-03 01:00:00 UTC`
fn utc(ms: i64) -> String {
    crate::tls::utc(ms.div_euclid(1000))
}

/// What one refresh read, beside the deployment it found.
struct Reading<'a> {
    traffic: Traffic,
    /// When the window ends (the daemon's clock, ms).
    to_ms: i64,
    /// Each local instance container's usage at the previous reading and now.
    before: &'a HashMap<String, UsageSample>,
    now: &'a HashMap<String, UsageSample>,
    connections: Option<StubStatus>,
    notes: Vec<String>,
    /// When the refresh began: the screen says how long it took.
    started: Instant,
}

/// Puts the pieces of one refresh together (pure but for the time the refresh took).
fn screen(project: &str, target: Target, found: &Found, reading: Reading) -> Screen {
    let Reading {
        traffic,
        to_ms,
        before,
        now,
        connections,
        mut notes,
        started,
    } = reading;
    let Traffic {
        window_secs,
        totals,
        instances: rows,
    } = traffic;
    let instances = rows
        .into_iter()
        .map(|t| {
            let known = found.instances.iter().find(|i| i.name == t.name);
            let sample = known
                .and_then(|i| i.container.as_ref())
                .and_then(|c| Some((before.get(c)?, now.get(c)?)));
            InstanceRow {
                health: known.map_or_else(|| "unknown".into(), |i| i.health.clone()),
                cpus: sample.and_then(|(b, n)| n.cpus_since(b)),
                cpu_limit: known.and_then(|i| i.cpu_limit),
                memory_bytes: sample.map(|(_, n)| n.memory_bytes),
                memory_limit_bytes: sample.map(|(_, n)| n.memory_limit_bytes).filter(|l| *l > 0),
                traffic: t,
            }
        })
        .collect();
    notes.extend(found.notes.iter().cloned());
    Screen {
        project: project.to_string(),
        target: match target {
            Target::Single => "single".into(),
            Target::Swarm => "swarm".into(),
        },
        at: utc(to_ms),
        window_secs,
        balancer: Balancer {
            totals,
            connections,
        },
        services: found.services.clone(),
        instances,
        notes,
        refresh_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
        log_lag_ms: None,
    }
}

fn named(found: &Found) -> Vec<(String, Vec<String>)> {
    found
        .instances
        .iter()
        .map(|i| (i.name.clone(), i.ips.clone()))
        .collect()
}

async fn find(
    docker: &DockerClient,
    project: &str,
    target: Target,
    limits: &mut HashMap<String, f64>,
) -> Result<Found> {
    match target {
        Target::Single => find_single(docker, project, limits).await,
        Target::Swarm => find_swarm(docker, project).await,
    }
}

/// nginx's log of the last `window`, read back from every nginx; the problems met on the way.
async fn read_window(
    docker: &DockerClient,
    found: &Found,
    to_ms: i64,
    window_ms: i64,
) -> (Vec<Entry>, Vec<String>) {
    let reads = found
        .logs
        .iter()
        .map(|s| read_back(docker, s, to_ms.saturating_sub(window_ms)));
    let mut entries = vec![];
    let mut notes = vec![];
    for read in futures_util::future::join_all(reads).await {
        match read {
            Ok(e) => entries.extend(e),
            Err(problem) => notes.push(problem),
        }
    }
    (entries, notes)
}

fn window_ms(window: Duration) -> i64 {
    i64::try_from(window.as_millis()).unwrap_or(i64::MAX)
}

fn summarize(found: &Found, entries: &[Entry], to_ms: i64, window_ms: i64) -> Traffic {
    traffic::summarize(
        entries,
        u64::try_from(to_ms).unwrap_or(0),
        u64::try_from(window_ms).unwrap_or(0),
        &named(found),
    )
}

/// The last `window`'s traffic per instance, from nginx's log alone: `status`'s last minute.
/// `Err` says why there are no figures (no nginx running, a log that cannot be read).
pub async fn last(
    docker: &DockerClient,
    project: &str,
    target: Target,
    window: Duration,
) -> Result<Traffic, String> {
    let skew = clock_skew_ms(docker).await.map_err(|e| e.to_string())?;
    let found = find(docker, project, target, &mut HashMap::new())
        .await
        .map_err(|e| format!("{e:#}"))?;
    if found.logs.is_empty() {
        return Err(found.notes.join("; "));
    }
    let to_ms = local_ms() + skew;
    let (entries, problems) = read_window(docker, &found, to_ms, window_ms(window)).await;
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(summarize(&found, &entries, to_ms, window_ms(window)))
}

/// The last `window` as nginx logged it, per instance, with Docker's view of each instance:
/// `top --format json`. CPU is the difference of two samples at least a second apart.
pub async fn snapshot(
    docker: &DockerClient,
    project: &str,
    target: Target,
    window: Duration,
) -> Result<Screen> {
    let started = Instant::now();
    let skew = clock_skew_ms(docker).await?;
    let found = find(docker, project, target, &mut HashMap::new()).await?;
    let before = samples(docker, &found).await;
    let to_ms = local_ms() + skew;
    let (entries, notes) = read_window(docker, &found, to_ms, window_ms(window)).await;
    let connections = stub_status(docker, &found).await;
    if let Some(rest) = CPU_SPAN.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let now = samples(docker, &found).await;
    let reading = Reading {
        traffic: summarize(&found, &entries, to_ms, window_ms(window)),
        to_ms,
        before: &before,
        now: &now,
        connections,
        notes,
        started,
    };
    Ok(screen(project, target, &found, reading))
}

/// Enters the terminal's alternate screen for the live view and leaves it when dropped, also
/// on Ctrl-C or an error, so the operator's scrollback is left as it was.
struct AlternateScreen;

impl AlternateScreen {
    fn enter() -> AlternateScreen {
        print!("\x1b[?1049h\x1b[?25l");
        let _ = std::io::stdout().flush();
        AlternateScreen
    }
}

impl Drop for AlternateScreen {
    fn drop(&mut self) {
        print!("\x1b[?25h\x1b[?1049l");
        let _ = std::io::stdout().flush();
    }
}

/// The live view until Ctrl-C: redrawn in place on a terminal that takes ANSI codes, else
/// printed as a block of plain lines every refresh (a log, a pipe, a dumb console).
pub async fn live(
    docker: &DockerClient,
    project: &str,
    target: Target,
    window: Duration,
    ui: &Ui,
) -> Result<()> {
    let skew = clock_skew_ms(docker).await?;
    let window_ms = window_ms(window);
    let log = Arc::new(Log::default());
    let mut readers: HashMap<LogSource, JoinHandle<()>> = HashMap::new();
    let mut limits = HashMap::new();
    let mut before: HashMap<String, UsageSample> = HashMap::new();
    let latest: Arc<Mutex<HashMap<String, UsageSample>>> = Arc::default();
    let mut watchers: HashMap<String, JoinHandle<()>> = HashMap::new();
    let in_place = std::io::stdout().is_terminal() && crate::ui::console_takes_ansi();
    let _screen = in_place.then(AlternateScreen::enter);
    loop {
        let started = Instant::now();
        let found = find(docker, project, target, &mut limits).await?;
        let start_ms = local_ms() + skew - window_ms;
        readers.retain(|source, reader| {
            let keep = found.logs.contains(source);
            if !keep {
                reader.abort();
                log.forget(source);
            }
            keep
        });
        for source in &found.logs {
            readers.entry(source.clone()).or_insert_with(|| {
                follow(docker.clone(), source.clone(), start_ms, skew, log.clone())
            });
        }
        let containers: Vec<&String> = found
            .instances
            .iter()
            .filter_map(|i| i.container.as_ref())
            .collect();
        watchers.retain(|c, w| {
            // A container gone, or a stream that ended (it restarts next time round).
            let keep = containers.contains(&c) && !w.is_finished();
            if !keep {
                w.abort();
                if let Ok(mut l) = latest.lock() {
                    l.remove(c);
                }
            }
            keep
        });
        for c in containers {
            watchers
                .entry(c.clone())
                .or_insert_with(|| watch_usage(docker.clone(), c.clone(), latest.clone()));
        }
        let connections = stub_status(docker, &found).await;
        let now = latest.lock().map(|l| l.clone()).unwrap_or_default();
        let to_ms = local_ms() + skew;
        let reading = Reading {
            traffic: log.window(&found, to_ms, window_ms),
            to_ms,
            before: &before,
            now: &now,
            connections,
            notes: log.problems(),
            started,
        };
        let mut s = screen(project, target, &found, reading);
        s.log_lag_ms = log.lag_p95();
        before = now;
        let text = s.to_text(ui);
        let shown = if in_place {
            format!("\x1b[H\x1b[2J{text}")
        } else {
            format!("{text}\n")
        };
        if !ui::out(&shown)? {
            break;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(REFRESH.saturating_sub(started.elapsed())) => {}
        }
    }
    for task in readers.values().chain(watchers.values()) {
        task.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::ObservedTask;

    #[test]
    fn the_view_says_while_its_history_is_partial_and_forgets_a_source_gone() {
        let log = Log::default();
        let nginx = LogSource::Container("demo-nginx-1".into());
        let task = LogSource::Task("t1".into());
        assert!(log.problems().is_empty());
        log.history.lock().unwrap().insert(nginx.clone(), None);
        log.history
            .lock()
            .unwrap()
            .insert(task.clone(), Some("task t1: no such task".into()));
        let said = log.problems();
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said.iter().any(|p| p.contains("partial until they are in")));
        assert!(said
            .iter()
            .any(|p| p.starts_with("task t1: no such task: the figures count only")));
        log.forget(&nginx);
        log.forget(&task);
        assert!(log.problems().is_empty());
    }

    fn task(id: &str, slot: i64, node: &str, running: bool) -> ObservedTask {
        ObservedTask {
            id: id.into(),
            slot: Some(slot),
            node_id: node.into(),
            state: if running { "running" } else { "starting" }.into(),
            running,
            container_id: Some(format!("c-{id}")),
            cpu_limit: 0.5,
            ..ObservedTask::default()
        }
    }

    #[test]
    fn swarm_tasks_are_named_by_slot_matched_to_their_addresses_and_measured_where_local() {
        let mut tasks = topology::Tasks::new();
        tasks.insert(
            "app".into(),
            vec![task("t2", 2, "n2", true), task("t1", 1, "n1", true)],
        );
        tasks.insert("nginx".into(), vec![task("ng", 1, "n1", true)]);
        tasks.insert("redis".into(), vec![task("r", 1, "n1", false)]);
        let addresses = vec![
            ("demo_app.1.t1".to_string(), "10.0.1.5".to_string()),
            ("demo_app.2.t2".to_string(), "10.0.1.6".to_string()),
            ("demo_nginx.1.ng".to_string(), "10.0.1.2".to_string()),
        ];
        let f = find_swarm_tasks(&tasks, "n1", &addresses);
        let names: Vec<&str> = f.instances.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["app-1", "app-2"]);
        assert_eq!(f.instances[0].ips, ["10.0.1.5"]);
        assert_eq!(f.instances[0].container.as_deref(), Some("c-t1"));
        assert_eq!(f.instances[1].container, None, "on another node");
        assert_eq!(f.instances[1].cpu_limit, Some(0.5));
        assert_eq!(f.logs, [LogSource::Task("ng".into())]);
        assert_eq!(f.nginx.as_deref(), Some("c-ng"));
        let redis = f.services.iter().find(|s| s.name == "redis").unwrap();
        assert!(!redis.ok);
        assert_eq!(redis.state, "0/1 running");
        assert!(f.notes[0].contains("app-2"), "{:?}", f.notes);
    }

    #[test]
    fn an_unreadable_log_driver_is_named_with_the_fix() {
        let p = log_problem(
            &LogSource::Container("demo-nginx-1".into()),
            &"configured logging driver does not support reading",
        );
        assert!(p.contains("json-file"), "{p}");
        assert!(p.contains("demo-nginx-1"), "{p}");
    }

    #[test]
    fn a_screen_joins_traffic_to_health_and_usage() {
        let found = Found {
            instances: vec![Instance {
                name: "app-1".into(),
                ips: vec!["10.0.0.2".into()],
                health: "healthy".into(),
                container: Some("c1".into()),
                cpu_limit: Some(0.5),
            }],
            ..Found::default()
        };
        let entries = vec![traffic::parse(
            r#"{"msec":10.5,"status":200,"request_time":0.004,"upstream":"10.0.9.9:8080","upstream_status":"200","upstream_time":"0.004"}"#,
        )
        .unwrap()];
        let t = traffic::summarize(&entries, 11_000, 10_000, &named(&found));
        let sample = |cpu: u64, system: u64| UsageSample {
            cpu_total_ns: cpu,
            system_ns: system,
            online_cpus: 2,
            memory_bytes: 10 << 20,
            memory_limit_bytes: 256 << 20,
        };
        let before = HashMap::from([("c1".to_string(), sample(0, 0))]);
        let now = HashMap::from([("c1".to_string(), sample(100, 1000))]);
        let reading = Reading {
            traffic: t,
            to_ms: 11_000,
            before: &before,
            now: &now,
            connections: None,
            notes: vec![],
            started: Instant::now(),
        };
        let s = screen("demo", Target::Single, &found, reading);
        assert_eq!(s.instances[0].cpus, Some(0.2));
        assert_eq!(s.instances[0].memory_limit_bytes, Some(256 << 20));
        assert_eq!(s.instances[1].health, "unknown");
        assert_eq!(s.instances[1].cpus, None);
    }
}
