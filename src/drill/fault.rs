//! What the single-host fault drills (`postgres`, `nginx`, `redis` without Sentinels,
//! `network`, `memory`) share: their default budgets, the `verified` step that ends each
//! timeline (every container of the project running and healthy, the balancer serving), the
//! first failed request after the fault, and the data checks (pure, unit-tested).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::stats::{Sample, Verdict};
use super::Options;
use crate::docker::ContainerFacts;
use crate::http::HttpClient;
use crate::observed::{ContainerState, Health, ObservedContainer};

/// Postgres is not on the load's path: `/health/backend` needs no dependency and sessions
/// live in Redis. A Postgres crash must fail no request.
pub const DEFAULT_MAX_FAILED_POSTGRES: u64 = 0;
/// nginx is the only door: while it restarts every client is refused. Docker's restart
/// policy starts it again within about a second (the longest gap seen here 1.0–2.0 s, `scripts/
/// bench-drills.sh`); 5 s leaves room for a loaded host.
pub const DEFAULT_MAX_OUTAGE_MS_NGINX: u64 = 5000;
/// Redis restarted by its restart policy replays its append-only file; sessions fail until it
/// answers and the app reconnects (session outage seen here: 1.5 s). 5 s leaves room for a
/// loaded host.
pub const DEFAULT_MAX_OUTAGE_MS_REDIS_RESTART: u64 = 5000;
/// A cut-off instance answers nothing: nginx's new connections to it time out and are retried
/// elsewhere (slow, not failed), but a request already sent to it on a kept-alive connection
/// waits until the link is back (seen: 0 failed with cuts of 3–10 s, the worst client waiting
/// about the whole cut) or until the client gives up after 12 s (a 14 s cut: 4 timeouts), and
/// the instance answers a few sessions with 503 while it reconnects to Redis (3 seen). So: at
/// most one per client plus a few, with the default 8 clients.
pub const DEFAULT_MAX_FAILED_NETWORK: u64 = 20;
/// An instance killed by its memory limit is a crash: nginx retries its GETs elsewhere.
pub const DEFAULT_MAX_FAILED_MEMORY: u64 = 0;

const POLL: Duration = Duration::from_millis(250);

/// One data check after the fault (rows still there, no instance restarted, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    /// What must hold, as shown to a person.
    pub budget: String,
}

impl Check {
    pub fn verdict(&self) -> Verdict {
        Verdict {
            name: self.name.clone(),
            measured: self.detail.clone(),
            budget: self.budget.clone(),
            passed: self.passed,
        }
    }
}

/// The first request after `after_ms` that failed (when its answer came).
pub fn first_error_after(samples: &[Sample], after_ms: u64) -> Option<u64> {
    samples
        .iter()
        .filter(|s| s.sent_ms >= after_ms && !s.ok())
        .map(|s| s.done_ms)
        .min()
}

/// The first successful answer to a request sent at or after `after_ms`: when a door that
/// was shut (nginx) serves again.
pub fn first_ok_after(samples: &[Sample], after_ms: u64) -> Option<u64> {
    samples
        .iter()
        .filter(|s| s.sent_ms >= after_ms && s.ok())
        .map(|s| s.done_ms)
        .min()
}

/// What is not fully healthy in the project, one line each; empty when all is.
pub fn unhealthy(containers: &[ObservedContainer]) -> Vec<String> {
    containers
        .iter()
        .filter_map(|c| match (&c.state, &c.health) {
            (ContainerState::Running, Health::Healthy | Health::None) => None,
            (ContainerState::Running, h) => Some(format!("{} is {h:?}", c.alias())),
            (s, _) => Some(format!("{} is {s:?} ({})", c.alias(), c.status)),
        })
        .collect()
}

/// The `verified` step: every container of the project running and healthy (by Docker's own
/// verdict) and the balancer serving `/health/backend` and `/api/session`, retried until
/// `deadline`. Ok(()) or the last thing that was wrong.
pub async fn full_health(opts: &Options, deadline: Instant) -> Result<(), String> {
    let http = HttpClient::with_route(Duration::from_secs(5), true, opts.https.as_ref())
        .map_err(|e| e.reason)?;
    loop {
        let problem = match opts.docker.list_containers(&opts.project).await {
            Err(e) => e.to_string(),
            Ok(cs) => {
                let bad = unhealthy(&cs);
                if bad.is_empty() {
                    match balancer_serves(&http, opts).await {
                        Ok(()) => return Ok(()),
                        Err(e) => e,
                    }
                } else {
                    bad.join("; ")
                }
            }
        };
        if Instant::now() >= deadline || super::interrupted() {
            return Err(problem);
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn balancer_serves(http: &HttpClient, opts: &Options) -> Result<(), String> {
    for path in opts.balancer_paths() {
        match http.get(&format!("{}{path}", opts.url)).await {
            Ok(r) if r.status == 200 => {}
            Ok(r) => return Err(format!("GET {path} through the balancer → {}", r.status)),
            Err(e) => return Err(format!("GET {path} through the balancer: {}", e.reason)),
        }
    }
    Ok(())
}

/// Each app instance's restart count and start time.
pub async fn instance_facts(
    opts: &Options,
    containers: &[ObservedContainer],
) -> Vec<(String, Option<ContainerFacts>)> {
    let mut v = vec![];
    for c in containers
        .iter()
        .filter(|c| c.role_kind() == Some(crate::desired::Role::App))
    {
        v.push((c.alias(), opts.docker.container_facts(&c.name).await.ok()));
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// No app instance restarted between the two looks: the same restart count and start time.
pub fn no_instance_restarted(
    before: &[(String, Option<ContainerFacts>)],
    after: &[(String, Option<ContainerFacts>)],
) -> Check {
    let mut restarted = vec![];
    for (alias, b) in before {
        let a = after
            .iter()
            .find(|(x, _)| x == alias)
            .and_then(|(_, f)| f.as_ref());
        match (b, a) {
            (Some(b), Some(a))
                if a.restart_count == b.restart_count && a.started_at == b.started_at => {}
            (Some(b), Some(a)) => restarted.push(format!(
                "{alias} (restarts {} → {}, started {} → {})",
                b.restart_count, a.restart_count, b.started_at, a.started_at
            )),
            _ => restarted.push(format!("{alias} (could not be inspected)")),
        }
    }
    Check {
        name: "no app instance restarted".into(),
        passed: restarted.is_empty() && !before.is_empty(),
        detail: if before.is_empty() {
            "no app instance to look at".into()
        } else if restarted.is_empty() {
            format!(
                "{} instances: same restart count and start time before and after",
                before.len()
            )
        } else {
            format!("restarted: {}", restarted.join(", "))
        },
        budget: "none restarts".into(),
    }
}

/// Marker rows written before the fault, counted after it.
pub fn rows_survived(written: u64, found: Result<u64, String>) -> Check {
    let (passed, detail) = match found {
        Ok(n) if n == written => (true, format!("{n} of {written} rows written before the fault are there")),
        Ok(n) => (false, format!("only {n} of {written} rows written before the fault are there: committed data was lost")),
        Err(e) => (false, format!("the rows written before the fault could not be read back: {e}")),
    };
    Check {
        name: "Postgres rows written before the fault".into(),
        passed,
        detail,
        budget: "every one there".into(),
    }
}

/// A marker unique enough to find this drill's rows: letters and digits only, so it is safe
/// in SQL and shell alike.
pub fn marker_token(project: &str, now_ms: u128) -> String {
    let p: String = project
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(20)
        .collect();
    format!("drill{p}{now_ms}")
}

/// The `verified` step, taken as soon as the drill saw recovery (the load still running):
/// Ok(when, on the drill's clock) or what is still wrong.
pub async fn verify(opts: &Options, now_ms: impl Fn() -> u64) -> Result<u64, String> {
    full_health(opts, Instant::now() + opts.timeout)
        .await
        .map(|()| now_ms())
}

/// Puts the `verified` step into the timeline, or what was wrong into the notes; returns when.
pub fn record_verified(
    verified: Result<u64, String>,
    timeline: &mut Vec<super::Event>,
    notes: &mut Vec<String>,
) -> Option<u64> {
    match verified {
        Ok(at) => {
            timeline.push(super::Event {
                at_ms: at,
                what: "verified: every container running and healthy, the balancer serving".into(),
            });
            Some(at)
        }
        Err(e) => {
            notes.push(format!("not verified: {e}"));
            None
        }
    }
}

/// The first failed request after the fault, put into the timeline; returns when.
pub fn record_first_error(
    samples: &[Sample],
    fault_at_ms: u64,
    timeline: &mut Vec<super::Event>,
) -> Option<u64> {
    let first = first_error_after(samples, fault_at_ms);
    if let Some(t) = first {
        timeline.push(super::Event {
            at_ms: t,
            what: "first failed request".into(),
        });
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::stats::Failure;

    fn facts(restarts: i64, started: &str) -> Option<ContainerFacts> {
        Some(ContainerFacts {
            restart_count: restarts,
            started_at: started.into(),
            ..Default::default()
        })
    }

    #[test]
    fn an_instance_restart_is_seen_by_its_count_or_its_start_time() {
        let before = vec![
            ("app-1".into(), facts(0, "t0")),
            ("app-2".into(), facts(1, "t1")),
        ];
        assert!(no_instance_restarted(&before, &before).passed);
        let counted = vec![
            ("app-1".into(), facts(1, "t0")),
            ("app-2".into(), facts(1, "t1")),
        ];
        let c = no_instance_restarted(&before, &counted);
        assert!(!c.passed);
        assert!(c.detail.contains("app-1 (restarts 0 → 1"), "{}", c.detail);
        // Docker's restart count misses a container started by hand: the start time does not.
        let started = vec![
            ("app-1".into(), facts(0, "t0")),
            ("app-2".into(), facts(1, "t9")),
        ];
        assert!(!no_instance_restarted(&before, &started).passed);
        let gone = vec![("app-1".into(), facts(0, "t0")), ("app-2".into(), None)];
        assert!(!no_instance_restarted(&before, &gone).passed);
        assert!(!no_instance_restarted(&[], &[]).passed);
    }

    #[test]
    fn every_marker_row_must_survive() {
        assert!(rows_survived(100, Ok(100)).passed);
        let lost = rows_survived(100, Ok(97));
        assert!(!lost.passed);
        assert!(lost.detail.contains("only 97 of 100"));
        assert!(!rows_survived(100, Err("psql: connection refused".into())).passed);
    }

    #[test]
    fn the_marker_is_letters_and_digits_only() {
        assert_eq!(marker_token("rdd-x_1'; drop", 42), "drillrddx1drop42");
    }

    #[test]
    fn the_first_error_is_the_first_failed_request_sent_after_the_fault() {
        let s = |sent, done, ok: bool| Sample {
            client: 0,
            path: "/".into(),
            sent_ms: sent,
            done_ms: done,
            result: if ok {
                Ok(None)
            } else {
                Err(Failure::Transport {
                    reason: "refused".into(),
                })
            },
        };
        let samples = vec![
            s(10, 20, false),
            s(100, 150, true),
            s(120, 300, false),
            s(200, 210, false),
        ];
        assert_eq!(first_error_after(&samples, 100), Some(210));
        assert_eq!(first_error_after(&samples, 250), None);
        assert_eq!(first_ok_after(&samples, 0), Some(150));
        assert_eq!(first_ok_after(&samples, 101), None);
    }

    #[test]
    fn full_health_names_what_is_not_running_or_not_healthy() {
        let c = |role: &str, state, health| {
            let mut labels = std::collections::BTreeMap::new();
            labels.insert(crate::labels::LABEL_ROLE.to_string(), role.to_string());
            ObservedContainer {
                id: "x".into(),
                name: role.into(),
                image: "i".into(),
                state,
                health,
                status: "Restarting (137) 1 second ago".into(),
                ports: vec![],
                labels,
                applied_reload_hash: None,
                ips: vec![],
            }
        };
        assert!(unhealthy(&[c("nginx", ContainerState::Running, Health::Healthy)]).is_empty());
        let bad = unhealthy(&[
            c("postgres", ContainerState::Running, Health::Starting),
            c("nginx", ContainerState::Restarting, Health::None),
        ]);
        assert_eq!(bad.len(), 2);
        assert!(bad[0].contains("postgres is Starting"), "{bad:?}");
        assert!(bad[1].contains("nginx is Restarting"), "{bad:?}");
    }
}
