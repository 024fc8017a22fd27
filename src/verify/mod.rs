//! `verify`: the proof that a deployment works (docs/design.md §6).
//!
//! Evidence is gathered concurrently — through the balancer over HTTP (`crate::http`), and per
//! instance through the Docker API (`inside.rs`: an HTTP request made from a container on the
//! project network, so no instance port is published and it works where the host cannot reach
//! container addresses) — then judged by the pure rules in `evaluate.rs`.

pub mod evaluate;
mod inside;
pub mod report;
pub mod topology;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use crate::certificates;
use crate::config::Target;
use crate::config::{AppPaths, Config, LbStrategy};
use crate::docker::DockerClient;
use crate::http::{HttpClient, HttpError, HttpsRoute};
use crate::templates::UPSTREAM_HEADER;
use evaluate::{check, Distribution, InstanceHealth, ServedBy, SessionSample};

/// Outcome of one check. A skipped check is reported as skipped, never as passed. A warning
/// passes (exit status 0) but is shown: something will fail soon (a certificate near its end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub group: &'static str,
    pub name: String,
    pub status: Status,
    /// What was seen: on failure the evidence (URL, status, body excerpt, dependency).
    pub detail: String,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub passed: bool,
    pub url: String,
    pub checks: Vec<Check>,
    pub distribution: Option<Distribution>,
    pub duration_ms: u64,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.count(Status::Fail)
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

pub const GROUP_BALANCER: &str = "Load balancer";
pub const GROUP_HTTPS: &str = "HTTPS";
pub const GROUP_INSTANCES: &str = "Instances";
pub const GROUP_HEALTH: &str = "Health";
pub const GROUP_READINESS: &str = "Readiness";
pub const GROUP_LIVENESS: &str = "Liveness";
pub const GROUP_DISTRIBUTION: &str = "Load distribution";
pub const GROUP_SESSION: &str = "Session persistence";
pub const GROUP_ENDPOINTS: &str = "Health endpoints";
pub const GROUP_HA: &str = "Redis HA";

/// The order groups are shown in.
pub const GROUPS: &[&str] = &[
    GROUP_BALANCER,
    GROUP_HTTPS,
    GROUP_INSTANCES,
    GROUP_HEALTH,
    GROUP_READINESS,
    GROUP_LIVENESS,
    GROUP_DISTRIBUTION,
    GROUP_SESSION,
    GROUP_ENDPOINTS,
    GROUP_HA,
];

/// What to verify, resolved by the command from flags and (when valid) the config.
#[derive(Clone)]
pub struct Options {
    pub project: String,
    pub url: String,
    pub requests: u32,
    pub ha: bool,
    pub app_port: u16,
    /// Instances the configuration asks for, when known.
    pub expected_instances: Option<u32>,
    pub lb_strategy: Option<LbStrategy>,
    pub master_name: String,
    /// The app's paths (`APP_*_PATH`); an empty one's checks are skipped, with the reason.
    pub paths: AppPaths,
    /// `None`: no Docker access; per-instance and HA checks are reported as skipped (one host
    /// only: a swarm's instances are known only through Docker).
    pub docker: Option<DockerClient>,
    /// Where the deployment runs: on a swarm its instances are tasks.
    pub target: Target,
    /// TLS on: requests through the balancer go over HTTPS by this route (`url` is its base).
    pub https: Option<HttpsRoute>,
    /// The HTTPS front door to check (`None`: TLS_MODE=off, no HTTPS checks).
    pub tls: Option<TlsExpectations>,
}

/// What the HTTPS checks expect, from the configuration's TLS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsExpectations {
    /// PUBLIC_HOSTS: each gets a handshake check; the first also the redirect check.
    pub hosts: Vec<String>,
    pub https_port: u16,
    pub http_port: u16,
    /// ACME_CA_FILE's text: PEM certificates trusted besides the platform's roots.
    pub extra_roots_pem: Option<String>,
}

impl Options {
    /// Options for a deployment described by `cfg` (used by `up` after converging).
    /// With TLS on, the balancer is asked over HTTPS ([`certificates::balancer_route`]).
    pub fn for_config(
        cfg: &Config,
        target: Target,
        docker: Option<DockerClient>,
    ) -> anyhow::Result<Options> {
        let https = certificates::balancer_route(cfg)?;
        let tls = match (&cfg.tls, &https) {
            (Some(t), Some(route)) => Some(TlsExpectations {
                hosts: t.host_names(),
                https_port: t.https_port.get(),
                http_port: cfg.http_port.get(),
                extra_roots_pem: route.extra_roots_pem.clone(),
            }),
            _ => None,
        };
        Ok(Options {
            project: cfg.project.to_string(),
            url: https.as_ref().map_or_else(
                || format!("http://localhost:{}", cfg.http_port),
                HttpsRoute::base_url,
            ),
            https,
            requests: 30,
            ha: cfg.ha_enabled,
            app_port: cfg.app.port.get(),
            expected_instances: Some(cfg.app.instances.get()),
            lb_strategy: Some(cfg.lb_strategy),
            master_name: cfg.sentinel.master_name.clone(),
            paths: cfg.app.paths.clone(),
            docker,
            target,
            tls,
        })
    }
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs every check, on either target. Returns an error only when verification could not run
/// at all.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    match (opts.target, &opts.docker) {
        (Target::Single, _) => checks(opts).await,
        (Target::Swarm, Some(docker)) => on_swarm(docker, opts).await,
        (Target::Swarm, None) => bail!(
            "verify --target swarm needs the Docker daemon (a swarm manager); --url alone is not \
             enough"
        ),
    }
}

/// The common checks, and each service's tasks as Swarm sees them. Swarm counts a task with a
/// healthcheck as running only once it is healthy, so "running" is Docker's health verdict for
/// each task.
async fn on_swarm(docker: &DockerClient, opts: &Options) -> anyhow::Result<Report> {
    docker.swarm_manager().await?;
    let mut report = checks(opts).await?;
    // The probe container, if the topology needed one.
    let _ = docker
        .remove_container(&DockerClient::probe_name(&opts.project))
        .await;
    let tasks = topology::swarm_tasks(docker, &opts.project)
        .await
        .map_err(anyhow::Error::msg)?;
    let at = report
        .checks
        .iter()
        .position(|c| c.group == GROUP_HEALTH)
        .unwrap_or(report.checks.len());
    report
        .checks
        .splice(at..at, task_checks(&opts.project, &tasks));
    report.passed = report.checks.iter().all(|c| c.status != Status::Fail);
    Ok(report)
}

/// One check per service of the stack: all its tasks running (and healthy).
fn task_checks(project: &str, all: &topology::Tasks) -> Vec<Check> {
    all.iter()
        .map(|(service, tasks)| {
            let running = tasks.iter().filter(|t| t.running).count();
            let problems: Vec<String> = tasks
                .iter()
                .filter(|t| !t.running)
                .map(|t| topology::task_problem(service, t))
                .collect();
            Check {
                group: GROUP_HEALTH,
                name: format!("{service} tasks running and healthy"),
                status: if problems.is_empty() && running > 0 {
                    Status::Pass
                } else {
                    Status::Fail
                },
                detail: if tasks.is_empty() {
                    format!(
                        "no task: the service is scaled to 0 (`docker service scale \
                         {project}_{service}=1`, or `radar-deploy up --target swarm`)"
                    )
                } else if problems.is_empty() {
                    format!("{running}/{}", tasks.len())
                } else {
                    format!("{running}/{}; {}", tasks.len(), problems.join("; "))
                },
                duration_ms: 0,
            }
        })
        .collect()
}

/// A failed check when nginx's maintenance flag is set (one host, with Docker): every other
/// failure through the balancer is then its 503, and this says why and how to end it.
async fn maintenance_check(opts: &Options) -> Option<Check> {
    let docker = opts
        .docker
        .as_ref()
        .filter(|_| opts.target == Target::Single)?;
    let nginx = crate::maintenance::nginx(docker, &opts.project)
        .await
        .ok()?;
    let on = crate::maintenance::is_on(docker, &nginx).await.ok()?;
    on.then(|| Check {
        group: GROUP_BALANCER,
        name: "maintenance mode off".into(),
        status: Status::Fail,
        detail: crate::templates::MAINTENANCE_ON_NOTE.into(),
        duration_ms: 0,
    })
}

/// The HTTPS front door, when the configuration has one: per public host a handshake (trusting
/// the platform's roots and ACME_CA_FILE) and nginx's `/health` over it, and once the plain-HTTP
/// redirect. Reached where the balancer's URL points (its host, the HTTPS port).
async fn https_checks(
    opts: &Options,
    front: Option<Result<std::net::SocketAddr, HttpError>>,
) -> Vec<Check> {
    let (Some(t), Some(front)) = (&opts.tls, front) else {
        return vec![];
    };
    let redirect_name = "HTTP redirects to HTTPS".to_string();
    let Some(first) = t.hosts.first() else {
        return vec![evaluate::check(
            GROUP_HTTPS,
            redirect_name,
            (
                Status::Fail,
                "PUBLIC_HOSTS is empty: there is no host name to ask for (HTTPS needs one)".into(),
            ),
        )];
    };
    let addr = match front {
        Ok(addr) => addr,
        Err(e) => {
            return vec![evaluate::check(
                GROUP_HTTPS,
                format!("TLS handshake and certificate for {first}"),
                (Status::Fail, format!("cannot find the balancer: {e}")),
            )]
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let extra = t.extra_roots_pem.as_deref();
    let handshakes = futures_util::future::join_all(t.hosts.iter().map(|host| async move {
        let probe = crate::http::tls_probe(addr, host, t.https_port, extra).await;
        let ms = probe
            .result
            .as_ref()
            .map_or(0, |a| a.elapsed.as_millis() as u64);
        Check {
            duration_ms: ms,
            ..evaluate::check(
                GROUP_HTTPS,
                format!("TLS handshake and certificate for {host}"),
                evaluate::judge_tls(&probe, now, extra.is_some()),
            )
        }
    }));
    let redirect = crate::http::redirect_probe(addr, first, t.http_port);
    let (mut checks, redirect) = tokio::join!(handshakes, redirect);
    checks.push(evaluate::check(
        GROUP_HTTPS,
        redirect_name,
        evaluate::judge_redirect(&redirect, first, t.https_port),
    ));
    checks
}

/// Every check but the swarm's own: through the balancer, and (with Docker) inside each
/// instance and Sentinel of the target's topology.
async fn checks(opts: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    // The HTTPS checks connect where the balancer is: the route's address (localhost, as the
    // plain default), else wherever the URL's host resolves.
    let front = match (&opts.tls, opts.https.as_ref().and_then(|r| r.addr)) {
        (None, _) => None,
        (Some(_), Some(ip)) => Some(Ok(std::net::SocketAddr::new(ip, 0))),
        (Some(_), None) => Some(crate::http::resolve_base(&opts.url).await),
    };
    let http = HttpClient::with_route(REQUEST_TIMEOUT, false, opts.https.as_ref())?;
    let jar = HttpClient::with_route(REQUEST_TIMEOUT, true, opts.https.as_ref())?;

    // Per-instance evidence (Docker) and balancer evidence (HTTP) are independent: gather both
    // at once.
    let topology = async {
        match &opts.docker {
            None => None,
            Some(d) => Some(match opts.target {
                Target::Single => topology::single_host(d, &opts.project).await,
                Target::Swarm => topology::swarm(d, &opts.project).await,
            }),
        }
    };
    let ((instances, topology), balancer, https) = tokio::join!(
        async {
            let topology = topology.await;
            let evidence = opts.docker.as_ref().zip(topology.as_ref());
            (inside::instance_checks(opts, evidence).await, topology)
        },
        balancer_checks(opts, &http, &jar),
        https_checks(opts, front),
    );
    let evidence = opts.docker.as_ref().zip(topology.as_ref());
    let mut checks = instances.checks;
    let (mut lb_checks, samples, answers) = balancer;
    checks.append(&mut lb_checks);
    checks.extend(https);
    // An app that reports no instanceId is named by nginx's upstream address: the instance
    // Docker says has that address.
    let samples = samples.map(|r| {
        r.map(|list| {
            list.into_iter()
                .map(|mut s| {
                    s.instance_id = ServedBy::Upstream(s.instance_id).name(&instances.addresses);
                    s
                })
                .collect::<Vec<_>>()
        })
    });
    let distribution_raw = answers
        .as_ref()
        .map(|(path, a)| evaluate::distribution(path, a, &instances.addresses));

    // Which instance ids should share the load: the ones seen through Docker, else as many as
    // the configuration asks for.
    let expected: Vec<String> = match (&distribution_raw, instances.ids.is_empty()) {
        (_, false) => instances.ids.clone(),
        (Some(d), true) => d.counts.keys().cloned().collect(),
        (None, true) => vec![],
    };
    let pinned = opts.lb_strategy == Some(LbStrategy::IpHash);
    let distribution = distribution_raw.map(|mut d| {
        for id in &expected {
            d.counts.entry(id.clone()).or_insert(0);
        }
        d
    });
    checks.push(match &distribution {
        Some(d) => distribution_check(opts, d, &expected, &instances.health, pinned),
        None => check(
            GROUP_DISTRIBUTION,
            format!("Load distribution over {} requests", opts.requests),
            (
                Status::Skip,
                "APP_HEALTH_PATH, APP_LIVE_PATH and APP_READY_PATH are all empty: no path to \
                 spread requests over"
                    .into(),
            ),
        ),
    });
    checks.push(match samples {
        None => check(
            GROUP_SESSION,
            SESSION_CHECK.into(),
            (Status::Skip, AppPaths::off_reason("APP_SESSION_PATH")),
        ),
        Some(samples) => session_check(samples, expected.len(), pinned),
    });

    if opts.ha {
        checks.extend(inside::ha_checks(opts, evidence).await);
    }
    if let Some(c) = maintenance_check(opts).await {
        checks.insert(0, c);
    }

    let passed = checks.iter().all(|c| c.status != Status::Fail);
    Ok(Report {
        passed,
        url: opts.url.clone(),
        checks,
        distribution,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

fn distribution_check(
    opts: &Options,
    d: &Distribution,
    expected: &[String],
    health: &BTreeMap<String, InstanceHealth>,
    pinned: bool,
) -> Check {
    let name = format!("Load distribution over {} requests", d.requests);
    if pinned {
        return check(
            GROUP_DISTRIBUTION,
            name,
            (
                Status::Skip,
                "LB_STRATEGY=ip_hash pins one client to one instance; spread is not expected"
                    .into(),
            ),
        );
    }
    if let Some(n) = opts.expected_instances {
        if expected.len() != n as usize && opts.docker.is_none() {
            return check(
                GROUP_DISTRIBUTION,
                name,
                (
                    Status::Fail,
                    format!(
                        "{} distinct instances answered ({}); the configuration asks for {n}",
                        expected.len(),
                        expected.join(", ")
                    ),
                ),
            );
        }
    }
    check(
        GROUP_DISTRIBUTION,
        name,
        evaluate::judge_distribution(d, expected, health),
    )
}

fn session_check(
    samples: Result<Vec<SessionSample>, String>,
    instances: usize,
    pinned: bool,
) -> Check {
    let name = SESSION_CHECK.to_string();
    match samples {
        Err(why) => check(GROUP_SESSION, name, (Status::Fail, why)),
        Ok(samples) => {
            // With ip_hash one client always reaches one instance: check the session only.
            let min = if pinned { 1 } else { instances.min(2) };
            check(GROUP_SESSION, name, evaluate::judge_session(&samples, min))
        }
    }
}

const SESSION_CHECK: &str = "Session persistence across instances";

/// The balancer's checks, one session's samples (`None`: APP_SESSION_PATH is off) and who
/// answered each request of the distribution (with the path asked; `None`: no path to ask).
type BalancerEvidence = (
    Vec<Check>,
    Option<Result<Vec<SessionSample>, String>>,
    Option<(String, Vec<Option<ServedBy>>)>,
);

/// Everything checked through the balancer: its own health, the health endpoints, the
/// distribution of N requests and one session's life.
async fn balancer_checks(opts: &Options, http: &HttpClient, jar: &HttpClient) -> BalancerEvidence {
    let base = &opts.url;
    let p = &opts.paths;
    // nginx's own /health, then the app's health (through the balancer), readiness, liveness.
    let mut endpoints: Vec<(&str, Option<String>)> =
        vec![("", Some(AppPaths::BALANCER_HEALTH.to_string()))];
    endpoints.extend(p.balancer_paths());
    // The reference contract's paths keep their names in the report.
    let reference: BTreeMap<&str, String> = AppPaths::reference()
        .balancer_paths()
        .into_iter()
        .filter_map(|(var, path)| Some((var, path?)))
        .collect();
    let reference = &reference;
    let lb_url = format!("{base}/health");
    let lb_health = timed_get(http, &lb_url);
    let endpoint_checks =
        futures_util::future::join_all(endpoints.iter().map(|(var, path)| async move {
            match path {
                Some(path) => {
                    let mut c = endpoint_check(http, base, path).await;
                    // An app's own paths may coincide (all `/`): each check says its variable.
                    if !var.is_empty() && reference.get(var) != Some(path) {
                        c.name = format!("{} ({var})", c.name);
                    }
                    c
                }
                None => check(
                    GROUP_ENDPOINTS,
                    format!("{var} through the balancer"),
                    (Status::Skip, AppPaths::off_reason(var)),
                ),
            }
        }));
    let (lb, endpoints) = tokio::join!(lb_health, endpoint_checks);
    // The distribution and the session run after the concurrent requests, one request at a
    // time: least_conn sends each request to the instance with the fewest requests in flight,
    // so concurrent requests measure which instance is fastest on a busy host (seen: 25 of 30
    // to one instance), not whether every instance takes its turn.
    let distribution = match p.load_path() {
        Some(path) => Some((
            path.clone(),
            distribute(http, base, &path, opts.requests).await,
        )),
        None => None,
    };
    let sessions = match &p.session {
        Some(path) => Some(
            session_samples(
                jar,
                base,
                path.as_str(),
                opts.expected_instances.unwrap_or(3),
            )
            .await,
        ),
        None => None,
    };

    let mut checks = vec![];
    let lb_name = "Load balancer is healthy".to_string();
    checks.push(match lb {
        Ok((r, ms)) if r.status == 200 => Check {
            group: GROUP_BALANCER,
            name: lb_name,
            status: Status::Pass,
            detail: format!("GET {base}/health → 200 in {ms} ms"),
            duration_ms: ms,
        },
        Ok((r, ms)) => Check {
            group: GROUP_BALANCER,
            name: lb_name,
            status: Status::Fail,
            detail: format!(
                "GET {base}/health → {}: {}",
                r.status,
                evaluate::excerpt(&r.body)
            ),
            duration_ms: ms,
        },
        Err(e) => Check {
            group: GROUP_BALANCER,
            name: lb_name,
            status: Status::Fail,
            detail: format!("GET {e}"),
            duration_ms: 0,
        },
    });
    checks.extend(endpoints);
    (checks, sessions, distribution)
}

async fn timed_get(
    http: &HttpClient,
    url: &str,
) -> Result<(crate::http::HttpResponse, u64), HttpError> {
    let r = http.get(url).await?;
    let ms = r.elapsed.as_millis() as u64;
    Ok((r, ms))
}

const DEFAULT_READY_PATH: &str = "/health/ready";

/// One health endpoint through the balancer: 200, and JSON where the contract promises it.
async fn endpoint_check(http: &HttpClient, base: &str, path: &str) -> Check {
    let url = format!("{base}{path}");
    let name = format!("GET {path} through the balancer");
    let (status, detail, ms) = match timed_get(http, &url).await {
        Err(e) => (Status::Fail, format!("GET {e}"), 0),
        Ok((r, ms)) if r.status != 200 => (
            Status::Fail,
            format!("GET {url} → {}: {}", r.status, evaluate::excerpt(&r.body)),
            ms,
        ),
        // The reference contract: its health through the balancer names the instance.
        Ok((r, ms)) if path == AppPaths::REFERENCE_BACKEND => {
            match ServedBy::of(&r.body, r.upstream.as_deref()) {
                Some(ServedBy::InstanceId(id)) => {
                    (Status::Pass, format!("200, served by {id}"), ms)
                }
                Some(ServedBy::Upstream(addr)) => (
                    Status::Pass,
                    format!("200, served by {addr} (nginx's {UPSTREAM_HEADER}; no instanceId)"),
                    ms,
                ),
                None => (
                    Status::Fail,
                    format!(
                        "GET {url} → 200 but no JSON \"instanceId\" and no {UPSTREAM_HEADER} \
                         header from nginx: {}",
                        evaluate::excerpt(&r.body)
                    ),
                    ms,
                ),
            }
        }
        // The reference contract's readiness answers JSON (an app's own path: 200 is enough).
        Ok((r, ms)) if path == DEFAULT_READY_PATH => {
            if serde_json::from_str::<serde_json::Value>(&r.body).is_ok() {
                (Status::Pass, "200 with JSON".into(), ms)
            } else {
                (
                    Status::Fail,
                    format!(
                        "GET {url} → 200 but not JSON: {}",
                        evaluate::excerpt(&r.body)
                    ),
                    ms,
                )
            }
        }
        Ok((_, ms)) => (Status::Pass, "200".into(), ms),
    };
    Check {
        group: GROUP_ENDPOINTS,
        name,
        status,
        detail,
        duration_ms: ms,
    }
}

/// N requests to `path`, one after another, each with who served it (the app's instanceId,
/// else nginx's upstream address); `None` for a failed request.
async fn distribute(
    http: &HttpClient,
    base: &str,
    path: &str,
    requests: u32,
) -> Vec<Option<ServedBy>> {
    let url = format!("{base}{path}");
    let mut answers: Vec<Option<ServedBy>> = Vec::with_capacity(requests as usize);
    for _ in 0..requests {
        answers.push(match http.get(&url).await {
            Ok(r) if r.status == 200 => ServedBy::of(&r.body, r.upstream.as_deref()),
            _ => None,
        });
    }
    answers
}

/// One cookie jar, requests one after another (the counter must rise by one each time).
/// Continues past the planned number (up to twice) until two instances have served the
/// session, so a balancer that happens to repeat an instance is not taken for a broken one.
async fn session_samples(
    jar: &HttpClient,
    base: &str,
    path: &str,
    instances: u32,
) -> Result<Vec<SessionSample>, String> {
    let url = format!("{base}{path}");
    let planned = (2 * instances).clamp(6, 12);
    let mut samples: Vec<SessionSample> = Vec::with_capacity(planned as usize);
    for i in 1..=2 * planned {
        let served_by_two = samples.iter().any(|s| {
            samples
                .first()
                .is_some_and(|f| f.instance_id != s.instance_id)
        });
        if i > planned && (served_by_two || instances < 2) {
            break;
        }
        let r = jar
            .get(&url)
            .await
            .map_err(|e| format!("request {i}: GET {e}"))?;
        if r.status != 200 {
            return Err(format!(
                "request {i}: GET {url} → {}: {}",
                r.status,
                evaluate::excerpt(&r.body)
            ));
        }
        samples.push(
            evaluate::parse_session(&r.body, r.upstream.as_deref())
                .map_err(|e| format!("request {i}: GET {url} → {e}"))?,
        );
    }
    Ok(samples)
}
