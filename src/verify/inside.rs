//! Evidence gathered inside the project network through the Docker API: each instance's
//! health endpoints (asked from a container next to it, so no instance port is published and it
//! works on Docker Desktop too), and the Sentinels' and replica's own view of Redis HA. Who is
//! asked, and from which container, comes from the [`Topology`]: the same checks serve one host
//! and a swarm.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::evaluate::{self, InstanceHealth};
use super::topology::{Member, Topology};
use super::{
    Check, Options, Status, GROUP_HA, GROUP_HEALTH, GROUP_INSTANCES, GROUP_LIVENESS,
    GROUP_READINESS,
};
use crate::config::AppPaths;
use crate::docker::DockerClient;
use crate::probes::{self, parse_raw_http, split_sections, Resp, SentinelReplica};

const EXEC_DEADLINE: Duration = Duration::from_secs(15);

/// The port a Sentinel is asked on.
const SENTINEL_PORT: u16 = 26379;

/// Each instance's own checks: (path, its variable, group, word); no path: turned off.
type InstancePath = (Option<String>, &'static str, &'static str, &'static str);

fn instance_paths(paths: &AppPaths) -> [InstancePath; 3] {
    let s = |p: &Option<crate::config::AppPath>| p.as_ref().map(ToString::to_string);
    [
        (s(&paths.health), "APP_HEALTH_PATH", GROUP_HEALTH, "healthy"),
        (s(&paths.ready), "APP_READY_PATH", GROUP_READINESS, "ready"),
        (s(&paths.live), "APP_LIVE_PATH", GROUP_LIVENESS, "live"),
    ]
}

pub struct InstanceEvidence {
    pub checks: Vec<Check>,
    /// The `instanceId` each instance reports (its alias when it reports none).
    pub ids: Vec<String>,
    /// What its health check saw of each instance, by the id in `ids`: the load distribution
    /// tells an idle healthy instance (nginx sends it nothing) from one that is down.
    pub health: BTreeMap<String, InstanceHealth>,
    /// Each instance's addresses on the project network → its id: nginx's upstream header
    /// names an instance by its address.
    pub addresses: BTreeMap<String, String>,
}

fn skipped(group: &'static str, name: &str, why: &str) -> Check {
    Check {
        group,
        name: name.to_string(),
        status: Status::Skip,
        detail: why.to_string(),
        duration_ms: 0,
    }
}

fn failed(group: &'static str, name: String, detail: String) -> Check {
    Check {
        group,
        name,
        status: Status::Fail,
        detail,
        duration_ms: 0,
    }
}

const NO_DOCKER: &str = "not run: no Docker access (only the HTTP checks ran)";

async fn exec(
    docker: &DockerClient,
    container: &str,
    cmd: Vec<String>,
) -> Result<(i64, String), String> {
    match tokio::time::timeout(EXEC_DEADLINE, docker.exec(container, &cmd)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {}s from a command in {container}",
            EXEC_DEADLINE.as_secs()
        )),
    }
}

/// Where the per-instance and HA evidence comes from: `None` without Docker access.
pub type Evidence<'a> = Option<(&'a DockerClient, &'a Result<Topology, String>)>;

pub async fn instance_checks(opts: &Options, evidence: Evidence<'_>) -> InstanceEvidence {
    let names = [
        (GROUP_INSTANCES, "App instances present"),
        (GROUP_HEALTH, "Each instance is healthy"),
        (GROUP_READINESS, "Each instance is ready"),
        (GROUP_LIVENESS, "Each instance is live"),
    ];
    let Some((docker, topo)) = evidence else {
        let checks = names
            .into_iter()
            .map(|(g, n)| skipped(g, n, NO_DOCKER))
            .collect();
        return InstanceEvidence {
            checks,
            ids: vec![],
            health: BTreeMap::new(),
            addresses: BTreeMap::new(),
        };
    };
    let topo = match topo {
        Ok(t) => t,
        Err(e) => {
            return InstanceEvidence {
                checks: vec![failed(GROUP_INSTANCES, names[0].1.into(), e.clone())],
                ids: vec![],
                health: BTreeMap::new(),
                addresses: BTreeMap::new(),
            }
        }
    };
    let mut checks = vec![];
    let paths = instance_paths(&opts.paths);
    // The reference contract names the instance at /health/backend; other apps are named by
    // their container (one host) or address (swarm).
    let identity = opts
        .paths
        .health_through_balancer()
        .filter(|p| p == AppPaths::REFERENCE_BACKEND);
    let asked: Vec<String> = paths
        .iter()
        .filter_map(|(p, ..)| p.clone())
        .chain(identity.clone())
        .collect();
    let asked = &asked;
    let probes = topo.apps.iter().map(|app| async move {
        let started = Instant::now();
        if let Some(why) = &app.down {
            return (app, Err(why.clone()), started.elapsed());
        }
        let helper = match &topo.helper {
            Ok(h) => h,
            Err(why) => return (app, Err(why.clone()), started.elapsed()),
        };
        let asked: Vec<&str> = asked.iter().map(String::as_str).collect();
        let cmd = probes::http_get_argv(&app.address, opts.app_port, &asked);
        let out = exec(docker, helper, cmd).await;
        (app, out.map(|(_, text)| text), started.elapsed())
    });
    let mut ids = vec![];
    let mut health = BTreeMap::new();
    let mut addresses = BTreeMap::new();
    let mut results = join_all(probes).await;
    // In instance order (app-2 before app-10), also when Swarm's DNS listed them otherwise.
    let order = |m: &Member| (m.label().len(), m.label().to_string());
    results.sort_by_key(|(app, _, _)| order(app));
    for (app, out, elapsed) in results {
        let ms = elapsed.as_millis() as u64;
        let sections = match out {
            Ok(text) => split_sections(&text),
            Err(why) => {
                let label = app.label().to_string();
                for (path, _, group, word) in &paths {
                    if path.is_some() {
                        checks.push(failed(group, format!("{label} is {word}"), why.clone()));
                    }
                }
                health.insert(label.clone(), InstanceHealth::NotHealthy(why));
                ids.push(label);
                continue;
            }
        };
        let reported = sections
            .iter()
            .find(|(p, _)| Some(p) == identity.as_ref())
            .and_then(|(_, t)| parse_raw_http(t))
            .and_then(|r| evaluate::instance_id(&r.body));
        // A Swarm task is known by its address only: name it by the id it reports.
        let label = app
            .name
            .clone()
            .or_else(|| reported.clone())
            .unwrap_or_else(|| app.address.clone());
        let id = reported.clone().unwrap_or_else(|| label.clone());
        for ip in &app.ips {
            addresses.insert(ip.clone(), id.clone());
        }
        for (path, _, group, word) in &paths {
            let Some(path) = path else {
                continue;
            };
            let group = *group;
            let url = format!("http://{}:{}{path}", app.address, opts.app_port);
            let (status, detail) = match sections.iter().find(|(p, _)| p == path) {
                None => (Status::Fail, format!("GET {url}: no answer")),
                Some((_, text)) => match parse_raw_http(text) {
                    Some(r) if r.status == 200 => (Status::Pass, format!("GET {url} → 200")),
                    Some(r) => (
                        Status::Fail,
                        format!("GET {url} → {}: {}", r.status, evaluate::excerpt(&r.body)),
                    ),
                    None => (
                        Status::Fail,
                        format!("GET {url}: {}", evaluate::excerpt(text)),
                    ),
                },
            };
            if group == GROUP_HEALTH {
                let seen = match status {
                    Status::Pass => InstanceHealth::Healthy,
                    _ => InstanceHealth::NotHealthy(detail.clone()),
                };
                health.insert(id.clone(), seen);
            }
            checks.push(Check {
                group,
                name: format!("{label} is {word}"),
                status,
                detail,
                duration_ms: ms,
            });
        }
        ids.push(id);
    }
    // Listed by the ids they report: a Swarm task is otherwise only an address.
    checks.insert(0, presence_check(opts, &topo.apps, &ids));
    // A check turned off is reported once, as skipped, with the reason.
    for (path, var, group, _) in &paths {
        if path.is_none() {
            let name = names
                .iter()
                .find(|(g, _)| g == group)
                .map_or("", |(_, n)| n);
            checks.push(skipped(group, name, &AppPaths::off_reason(var)));
        }
    }
    InstanceEvidence {
        checks,
        ids,
        health,
        addresses,
    }
}

fn presence_check(opts: &Options, apps: &[Member], ids: &[String]) -> Check {
    let name = "App instances present".to_string();
    let mut listed: Vec<&str> = ids.iter().map(String::as_str).collect();
    listed.sort_by_key(|id| (id.len(), *id));
    if apps.is_empty() {
        return failed(
            GROUP_INSTANCES,
            name,
            format!(
                "no app instance of project {} (is the stack up? is --project right?)",
                opts.project
            ),
        );
    }
    match opts.expected_instances {
        Some(n) if n as usize != apps.len() => failed(
            GROUP_INSTANCES,
            name,
            format!(
                "the configuration asks for {n} instances, Docker has {}: {}",
                apps.len(),
                listed.join(", ")
            ),
        ),
        _ => Check {
            group: GROUP_INSTANCES,
            name,
            status: Status::Pass,
            detail: format!("{} instances: {}", apps.len(), listed.join(", ")),
            duration_ms: 0,
        },
    }
}

/// One Sentinel's answers, asked over its own protocol from the helper container (so it
/// works wherever the Sentinel runs, also on another swarm node).
#[derive(Debug, Default)]
struct SentinelView {
    /// `host:port` of the master it names.
    master: Option<String>,
    /// `ckquorum`'s answer: Ok(text) or Err(text).
    quorum: Option<Result<String, String>>,
    replicas: Vec<SentinelReplica>,
    /// Why it could not be asked.
    error: Option<String>,
}

async fn ask_sentinel(
    docker: &DockerClient,
    helper: &str,
    s: &Member,
    master: &str,
) -> SentinelView {
    let cmd = probes::sentinel_argv(&s.address, SENTINEL_PORT, master);
    match exec(docker, helper, cmd).await {
        Err(e) => SentinelView {
            error: Some(e),
            ..SentinelView::default()
        },
        Ok((_, text)) => {
            let mut answers = probes::parse_resp(&text);
            // The AUTH (or PING) answer first; a refused password fails every question after it.
            if let Some(Resp::Error(e)) = answers.first() {
                return SentinelView {
                    error: Some(format!(
                        "{}:26379 refused the password in {helper}: {e}",
                        s.address
                    )),
                    ..SentinelView::default()
                };
            }
            if let Some(Resp::Error(e)) = answers.get(1).filter(|_| answers.len() > 1) {
                if e.starts_with("NOAUTH") {
                    return SentinelView {
                        error: Some(format!(
                            "{}:26379 requires a password and {helper} has none \
                             (no /run/secrets/redis_password): {e}",
                            s.address
                        )),
                        ..SentinelView::default()
                    };
                }
            }
            if !answers.is_empty() {
                answers.remove(0);
            }
            if answers.len() < 3 {
                return SentinelView {
                    error: Some(format!(
                        "no answer from {}:26379: {}",
                        s.address,
                        evaluate::excerpt(&text)
                    )),
                    ..SentinelView::default()
                };
            }
            SentinelView {
                master: probes::master_addr(&answers[0]),
                quorum: Some(match &answers[1] {
                    Resp::Simple(t) => Ok(t.clone()),
                    other => Err(other.text()),
                }),
                replicas: probes::sentinel_replicas(&answers[2]),
                error: None,
            }
        }
    }
}

pub async fn ha_checks(opts: &Options, evidence: Evidence<'_>) -> Vec<Check> {
    let names = [
        "Three Sentinels running",
        "Sentinels agree on the master",
        "Sentinel quorum (ckquorum)",
        "Replica linked to the master",
    ];
    let Some((docker, topo)) = evidence else {
        return names
            .iter()
            .map(|n| skipped(GROUP_HA, n, NO_DOCKER))
            .collect();
    };
    let topo = match topo {
        Ok(t) => t,
        Err(e) => return vec![failed(GROUP_HA, names[0].into(), e.clone())],
    };
    let running: Vec<&Member> = topo.sentinels.iter().filter(|s| s.down.is_none()).collect();
    let mut checks = vec![];

    checks.push(if running.len() == 3 {
        Check {
            group: GROUP_HA,
            name: names[0].into(),
            status: Status::Pass,
            detail: running
                .iter()
                .map(|s| s.label())
                .collect::<Vec<_>>()
                .join(", "),
            duration_ms: 0,
        }
    } else {
        let states: Vec<String> = topo
            .sentinels
            .iter()
            .map(|s| {
                s.down
                    .clone()
                    .unwrap_or_else(|| format!("{} running", s.label()))
            })
            .collect();
        failed(
            GROUP_HA,
            names[0].into(),
            format!(
                "{} of 3 Sentinels running{}{}",
                running.len(),
                if states.is_empty() { "" } else { ": " },
                states.join("; ")
            ),
        )
    });

    let master = &opts.master_name;
    // The Sentinels are asked from a container that holds Redis's password (theirs too): a
    // running Sentinel's or Redis's on this daemon, else the general helper.
    let helper = running
        .iter()
        .copied()
        .chain(topo.redis_nodes.iter().filter(|r| r.down.is_none()))
        .find_map(|m| m.container.clone())
        .map_or_else(|| topo.helper.clone(), Ok);
    let views: Vec<(&Member, SentinelView)> = match &helper {
        Ok(helper) => {
            join_all(
                running
                    .iter()
                    .map(|s| async move { (*s, ask_sentinel(docker, helper, s, master).await) }),
            )
            .await
        }
        Err(why) => running
            .iter()
            .map(|s| {
                (
                    *s,
                    SentinelView {
                        error: Some(why.clone()),
                        ..SentinelView::default()
                    },
                )
            })
            .collect(),
    };

    // Each running Sentinel's answer to "who is the master?".
    let named: Vec<&String> = views
        .iter()
        .filter_map(|(_, v)| v.master.as_ref())
        .collect();
    let agreed = named.first().filter(|first| {
        named.len() == views.len() && !views.is_empty() && named.iter().all(|h| h == *first)
    });
    let master_host = agreed.map(|h| h.split(':').next().unwrap_or("").to_string());
    checks.push(match agreed {
        Some(addr) => Check {
            group: GROUP_HA,
            name: names[1].into(),
            status: Status::Pass,
            detail: format!("{} Sentinels name {addr} as master {master}", views.len()),
            duration_ms: 0,
        },
        None => failed(
            GROUP_HA,
            names[1].into(),
            if views.is_empty() {
                "no Sentinel is running".into()
            } else {
                views
                    .iter()
                    .map(|(s, v)| {
                        let said = v.master.clone().or_else(|| v.error.clone());
                        format!("{}: {}", s.label(), said.as_deref().unwrap_or("no master"))
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        ),
    });

    // ckquorum from the first Sentinel that answered.
    let answered = views.iter().find(|(_, v)| v.quorum.is_some());
    checks.push(match (answered, views.first()) {
        (Some((s, v)), _) => match v.quorum.as_ref().expect("found by is_some") {
            Ok(text) if text.starts_with("OK") => Check {
                group: GROUP_HA,
                name: names[2].into(),
                status: Status::Pass,
                detail: format!("{}: {text}", s.label()),
                duration_ms: 0,
            },
            Ok(text) | Err(text) => failed(
                GROUP_HA,
                names[2].into(),
                format!("{}: {}", s.label(), evaluate::excerpt(text)),
            ),
        },
        (None, Some((s, v))) => failed(
            GROUP_HA,
            names[2].into(),
            format!(
                "{}: {}",
                s.label(),
                v.error.as_deref().unwrap_or("no answer")
            ),
        ),
        (None, None) => failed(GROUP_HA, names[2].into(), "no Sentinel is running".into()),
    });

    let sentinel_views: Vec<(&str, &[SentinelReplica])> = views
        .iter()
        .filter(|(_, v)| v.error.is_none())
        .map(|(s, v)| (s.label(), v.replicas.as_slice()))
        .collect();
    checks.push(
        replica_check(
            docker,
            &topo.redis_nodes,
            master_host.as_deref(),
            &sentinel_views,
            names[3],
        )
        .await,
    );
    checks
}

/// The data node that is not the master must be a replica with its link up: asked of the
/// replica itself when its container runs on this daemon, else of a Sentinel (which reads the
/// replica's INFO every few seconds).
async fn replica_check(
    docker: &DockerClient,
    nodes: &[Member],
    master_host: Option<&str>,
    sentinel_views: &[(&str, &[SentinelReplica])],
    name: &str,
) -> Check {
    let sentinel_view = sentinel_views.first().copied();
    let master = master_host.unwrap_or("redis");
    let Some(replica) = nodes.iter().find(|c| c.label() != master) else {
        return failed(
            GROUP_HA,
            name.into(),
            format!("no Redis node other than the master ({master}) exists"),
        );
    };
    if let Some(why) = &replica.down {
        return failed(GROUP_HA, name.into(), why.clone());
    }
    let (role, link, of, source) = match &replica.container {
        Some(container) => match exec(docker, container, probes::redis_replication_argv()).await {
            Err(e) => return failed(GROUP_HA, name.into(), e),
            Ok((_, text)) => (
                probes::info_field(&text, "role"),
                probes::info_field(&text, "master_link_status"),
                probes::info_field(&text, "master_host").unwrap_or_default(),
                String::new(),
            ),
        },
        None => {
            let Some((sentinel, replicas)) = sentinel_view else {
                return failed(
                    GROUP_HA,
                    name.into(),
                    format!(
                        "{} runs on another node and no Sentinel answered about it",
                        replica.label()
                    ),
                );
            };
            match replicas.iter().find(|r| r.host == replica.address) {
                None => {
                    return failed(
                        GROUP_HA,
                        name.into(),
                        format!("{sentinel} knows no replica {}", replica.address),
                    )
                }
                Some(r) => (
                    r.flags
                        .split(',')
                        .any(|f| f == "slave")
                        .then(|| "slave".to_string()),
                    (r.link == "ok" && !r.flags.contains("_down")).then(|| "up".to_string()),
                    r.master_host.clone(),
                    format!(", per {sentinel}"),
                ),
            }
        }
    };
    // A Sentinel that does not know the replica aborts every failover it leads
    // ("-failover-abort-no-good-slave") and retries only after twice failover-timeout: seen as
    // a 68-91 s session outage instead of 7 s.
    let unaware = evaluate::sentinels_unaware_of(sentinel_views, &replica.address);
    if role.as_deref() == Some("slave") && link.as_deref() == Some("up") && !unaware.is_empty() {
        failed(
            GROUP_HA,
            name.into(),
            format!(
                "{} replicates {of} (link up{source}), but {} {} not know it: a failover led by {} would abort (-failover-abort-no-good-slave); fix: a Sentinel learns replicas from the master's INFO every 10 s, so run verify again; if this stays, restart {}",
                replica.label(),
                unaware.join(", "),
                if unaware.len() == 1 { "does" } else { "do" },
                if unaware.len() == 1 { "it" } else { "one of them" },
                if unaware.len() == 1 { "it" } else { "them" },
            ),
        )
    } else if role.as_deref() == Some("slave") && link.as_deref() == Some("up") {
        Check {
            group: GROUP_HA,
            name: name.into(),
            status: Status::Pass,
            detail: format!("{} replicates {of} (link up{source})", replica.label()),
            duration_ms: 0,
        }
    } else {
        failed(
            GROUP_HA,
            name.into(),
            format!(
                "{}: role {}, master link {}{source}",
                replica.label(),
                role.as_deref().unwrap_or("unknown"),
                link.as_deref().unwrap_or("absent")
            ),
        )
    }
}
