//! Evidence gathered inside the project network through the Docker API: each instance's
//! health endpoints (asked from a container next to it, so no instance port is published and it
//! works on Docker Desktop too), and the Sentinels' and replica's own view of Redis HA.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::evaluate::{self, parse_raw_http};
use super::{
    Check, Options, Status, GROUP_HA, GROUP_HEALTH, GROUP_INSTANCES, GROUP_LIVENESS,
    GROUP_READINESS,
};
use crate::desired::Role;
use crate::docker::DockerClient;
use crate::observed::{ContainerState, ObservedContainer};

/// An HTTP/1.0 GET of each path, in plain bash (`/dev/tcp`): bash is in the nginx, redis and
/// postgres images, curl and wget are not promised. Arguments are passed positionally, never
/// spliced into the script.
const HTTP_SCRIPT: &str = r#"host=$1; port=$2; shift 2
for path in "$@"; do
  printf '@@radar-deploy %s\n' "$path"
  if exec 3<>"/dev/tcp/$host/$port"; then
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
    while IFS= read -r -t 3 line || [ -n "$line" ]; do printf '%s\n' "$line"; line=; done <&3
    exec 3<&-
  fi
done"#;

const EXEC_DEADLINE: Duration = Duration::from_secs(15);

const PATHS: [(&str, &str, &str); 3] = [
    ("/health", GROUP_HEALTH, "healthy"),
    ("/health/ready", GROUP_READINESS, "ready"),
    ("/health/live", GROUP_LIVENESS, "live"),
];

pub struct InstanceEvidence {
    pub checks: Vec<Check>,
    /// The `instanceId` each instance reports (its alias when it reports none).
    pub ids: Vec<String>,
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

fn role_of(c: &ObservedContainer) -> Option<Role> {
    [
        Role::Postgres,
        Role::Redis,
        Role::RedisReplica,
        Role::Sentinel,
        Role::App,
        Role::Nginx,
    ]
    .into_iter()
    .find(|r| c.role() == Some(r.service()))
}

fn instance_number(c: &ObservedContainer) -> u32 {
    c.labels
        .get(crate::desired::LABEL_INSTANCE)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn not_running(c: &ObservedContainer) -> Option<String> {
    (c.state != ContainerState::Running || c.status.contains("Paused")).then(|| {
        format!(
            "{} ({}) is not running: {}",
            c.alias(),
            c.name,
            if c.status.is_empty() {
                "no status"
            } else {
                &c.status
            }
        )
    })
}

pub async fn instance_checks(opts: &Options) -> InstanceEvidence {
    let Some(docker) = &opts.docker else {
        let checks = [
            (GROUP_INSTANCES, "App instances present"),
            (GROUP_HEALTH, "Each instance is healthy"),
            (GROUP_READINESS, "Each instance is ready"),
            (GROUP_LIVENESS, "Each instance is live"),
        ]
        .into_iter()
        .map(|(g, n)| skipped(g, n, NO_DOCKER))
        .collect();
        return InstanceEvidence {
            checks,
            ids: vec![],
        };
    };
    let containers = match docker.list_containers(&opts.project).await {
        Ok(c) => c,
        Err(e) => {
            return InstanceEvidence {
                checks: vec![failed(
                    GROUP_INSTANCES,
                    "App instances present".into(),
                    format!(
                        "cannot list the containers of project {}: {e}",
                        opts.project
                    ),
                )],
                ids: vec![],
            }
        }
    };
    let mut apps: Vec<&ObservedContainer> = containers
        .iter()
        .filter(|c| role_of(c) == Some(Role::App))
        .collect();
    apps.sort_by_key(|c| instance_number(c));

    let mut checks = vec![presence_check(opts, &apps)];
    // Ask from a container on the same network that has bash; nginx first, as it is the one
    // that really forwards to the instances.
    let helper = [
        Role::Nginx,
        Role::Redis,
        Role::Postgres,
        Role::RedisReplica,
        Role::Sentinel,
    ]
    .into_iter()
    .find_map(|r| {
        containers
            .iter()
            .find(|c| role_of(c) == Some(r) && not_running(c).is_none())
    });
    let probes = apps.iter().map(|app| async move {
        let started = Instant::now();
        if let Some(why) = not_running(app) {
            return (app, Err(why), started.elapsed());
        }
        let Some(helper) = helper else {
            return (
                app,
                Err("no running container of the project to ask from (nginx, redis and postgres are all down)".to_string()),
                started.elapsed(),
            );
        };
        let mut cmd = vec![
            "bash".to_string(),
            "-c".to_string(),
            HTTP_SCRIPT.to_string(),
            "radar-deploy-verify".to_string(),
            app.alias(),
            opts.app_port.to_string(),
        ];
        cmd.extend(PATHS.iter().map(|(p, _, _)| p.to_string()));
        cmd.push("/health/backend".into());
        let out = exec(docker, &helper.name, cmd).await;
        (app, out.map(|(_, text)| text), started.elapsed())
    });
    let mut ids = vec![];
    for (app, out, elapsed) in join_all(probes).await {
        let alias = app.alias();
        let ms = elapsed.as_millis() as u64;
        let sections = match out {
            Ok(text) => split_sections(&text),
            Err(why) => {
                for (_, group, word) in PATHS {
                    checks.push(failed(group, format!("{alias} is {word}"), why.clone()));
                }
                ids.push(alias);
                continue;
            }
        };
        for (path, group, word) in PATHS {
            let name = format!("{alias} is {word}");
            let url = format!("http://{alias}:{}{path}", opts.app_port);
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
            checks.push(Check {
                group,
                name,
                status,
                detail,
                duration_ms: ms,
            });
        }
        let id = sections
            .iter()
            .find(|(p, _)| p == "/health/backend")
            .and_then(|(_, t)| parse_raw_http(t))
            .and_then(|r| evaluate::instance_id(&r.body))
            .unwrap_or(alias);
        ids.push(id);
    }
    InstanceEvidence { checks, ids }
}

fn presence_check(opts: &Options, apps: &[&ObservedContainer]) -> Check {
    let name = "App instances present".to_string();
    let listed: Vec<String> = apps.iter().map(|c| c.alias()).collect();
    if apps.is_empty() {
        return failed(
            GROUP_INSTANCES,
            name,
            format!(
                "no app container labelled with project {} (is the stack up? is --project right?)",
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

/// Splits the script's output into (path, raw response or error text).
fn split_sections(text: &str) -> Vec<(String, String)> {
    text.split("@@radar-deploy ")
        .filter(|s| !s.trim().is_empty())
        .filter_map(|s| {
            let (path, rest) = s.split_once('\n')?;
            Some((path.trim().to_string(), rest.to_string()))
        })
        .collect()
}

pub async fn ha_checks(opts: &Options) -> Vec<Check> {
    let names = [
        "Three Sentinels running",
        "Sentinels agree on the master",
        "Sentinel quorum (ckquorum)",
        "Replica linked to the master",
    ];
    let Some(docker) = &opts.docker else {
        return names
            .iter()
            .map(|n| skipped(GROUP_HA, n, NO_DOCKER))
            .collect();
    };
    let containers = match docker.list_containers(&opts.project).await {
        Ok(c) => c,
        Err(e) => {
            return vec![failed(
                GROUP_HA,
                names[0].into(),
                format!(
                    "cannot list the containers of project {}: {e}",
                    opts.project
                ),
            )]
        }
    };
    let mut sentinels: Vec<&ObservedContainer> = containers
        .iter()
        .filter(|c| role_of(c) == Some(Role::Sentinel))
        .collect();
    sentinels.sort_by_key(|c| instance_number(c));
    let running: Vec<&ObservedContainer> = sentinels
        .iter()
        .copied()
        .filter(|c| not_running(c).is_none())
        .collect();
    let mut checks = vec![];

    checks.push(if running.len() == 3 {
        Check {
            group: GROUP_HA,
            name: names[0].into(),
            status: Status::Pass,
            detail: running
                .iter()
                .map(|c| c.alias())
                .collect::<Vec<_>>()
                .join(", "),
            duration_ms: 0,
        }
    } else {
        let states: Vec<String> = sentinels
            .iter()
            .map(|c| not_running(c).unwrap_or_else(|| format!("{} running", c.alias())))
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

    // Each running Sentinel's answer to "who is the master?".
    let master = &opts.master_name;
    let answers = join_all(running.iter().map(|s| async move {
        let cmd = [
            "redis-cli",
            "-p",
            "26379",
            "sentinel",
            "get-master-addr-by-name",
            master,
        ];
        let out = exec(docker, &s.name, cmd.iter().map(|a| a.to_string()).collect()).await;
        let host = out.ok().and_then(|(code, text)| {
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let host = lines.next()?.to_string();
            let port = lines.next()?.to_string();
            (code == 0).then(|| format!("{host}:{port}"))
        });
        (s.alias(), host)
    }))
    .await;
    let named: Vec<&String> = answers.iter().filter_map(|(_, h)| h.as_ref()).collect();
    let agreed = named.first().filter(|first| {
        named.len() == answers.len() && !answers.is_empty() && named.iter().all(|h| h == *first)
    });
    let master_host = agreed.map(|h| h.split(':').next().unwrap_or("").to_string());
    checks.push(match agreed {
        Some(addr) => Check {
            group: GROUP_HA,
            name: names[1].into(),
            status: Status::Pass,
            detail: format!("{} Sentinels name {addr} as master {master}", answers.len()),
            duration_ms: 0,
        },
        None => failed(
            GROUP_HA,
            names[1].into(),
            if answers.is_empty() {
                "no Sentinel is running".into()
            } else {
                answers
                    .iter()
                    .map(|(s, h)| format!("{s}: {}", h.as_deref().unwrap_or("no answer")))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        ),
    });

    checks.push(match running.first() {
        None => failed(GROUP_HA, names[2].into(), "no Sentinel is running".into()),
        Some(s) => {
            let cmd = ["redis-cli", "-p", "26379", "sentinel", "ckquorum", master];
            match exec(docker, &s.name, cmd.iter().map(|a| a.to_string()).collect()).await {
                Ok((0, text)) if text.trim_start().starts_with("OK") => Check {
                    group: GROUP_HA,
                    name: names[2].into(),
                    status: Status::Pass,
                    detail: format!("{}: {}", s.alias(), text.trim()),
                    duration_ms: 0,
                },
                Ok((_, text)) => failed(
                    GROUP_HA,
                    names[2].into(),
                    format!("{}: {}", s.alias(), evaluate::excerpt(&text)),
                ),
                Err(e) => failed(GROUP_HA, names[2].into(), e),
            }
        }
    });

    checks.push(replica_check(docker, &containers, master_host.as_deref(), names[3]).await);
    checks
}

/// The data node that is not the master must be a replica with its link up.
async fn replica_check(
    docker: &DockerClient,
    containers: &[ObservedContainer],
    master_host: Option<&str>,
    name: &str,
) -> Check {
    let master = master_host.unwrap_or("redis");
    let nodes: Vec<&ObservedContainer> = containers
        .iter()
        .filter(|c| matches!(role_of(c), Some(Role::Redis | Role::RedisReplica)))
        .collect();
    let Some(replica) = nodes.iter().find(|c| c.alias() != master) else {
        return failed(
            GROUP_HA,
            name.into(),
            format!("no Redis container other than the master ({master}) exists"),
        );
    };
    if let Some(why) = not_running(replica) {
        return failed(GROUP_HA, name.into(), why);
    }
    let script = "REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" redis-cli info replication";
    let cmd = vec!["bash".into(), "-c".into(), script.into()];
    match exec(docker, &replica.name, cmd).await {
        Err(e) => failed(GROUP_HA, name.into(), e),
        Ok((_, text)) => {
            let field = |k: &str| {
                text.lines()
                    .find_map(|l| l.trim().strip_prefix(k).map(str::to_string))
            };
            let role = field("role:");
            let link = field("master_link_status:");
            let of = field("master_host:").unwrap_or_default();
            if role.as_deref() == Some("slave") && link.as_deref() == Some("up") {
                Check {
                    group: GROUP_HA,
                    name: name.into(),
                    status: Status::Pass,
                    detail: format!("{} replicates {of} (link up)", replica.alias()),
                    duration_ms: 0,
                }
            } else {
                failed(
                    GROUP_HA,
                    name.into(),
                    format!(
                        "{}: role {}, master link {}",
                        replica.alias(),
                        role.as_deref().unwrap_or("unknown"),
                        link.as_deref().unwrap_or("absent")
                    ),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_output_splits_per_path() {
        let out = "@@radar-deploy /health\nHTTP/1.1 200 OK\r\n\r\nok\n@@radar-deploy /health/ready\nbash: connect: Connection refused\n";
        let s = split_sections(out);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, "/health");
        assert_eq!(parse_raw_http(&s[0].1).unwrap().status, 200);
        assert!(s[1].1.contains("Connection refused"));
    }
}
