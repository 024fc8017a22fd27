//! Pure judgements: given the evidence collected (HTTP responses, command output), decide
//! whether a check passed and say why. No I/O here, so every rule is unit-tested.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Check, Status};
use crate::probes::SentinelReplica;

/// A short, single-line excerpt of a body for evidence.
pub fn excerpt(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 160 {
        format!("{}…", one_line.chars().take(160).collect::<String>())
    } else if one_line.is_empty() {
        "(empty body)".into()
    } else {
        one_line
    }
}

/// `instanceId` from a JSON body, if there is one.
pub fn instance_id(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get("instanceId")?.as_str().map(str::to_string)
}

/// One `/api/session` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionSample {
    pub session_id: String,
    pub views: i64,
    pub instance_id: String,
}

pub fn parse_session(body: &str) -> Result<SessionSample, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|_| format!("not JSON: {}", excerpt(body)))?;
    let field = |k: &str| {
        v.get(k)
            .ok_or_else(|| format!("JSON without {k:?}: {}", excerpt(body)))
    };
    let session_id = match field("sessionId")? {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let views = field("views")?
        .as_i64()
        .ok_or_else(|| format!("\"views\" is not a number: {}", excerpt(body)))?;
    let instance_id = field("instanceId")?
        .as_str()
        .ok_or_else(|| format!("\"instanceId\" is not a string: {}", excerpt(body)))?
        .to_string();
    Ok(SessionSample {
        session_id,
        views,
        instance_id,
    })
}

/// Session persistence: one cookie jar, the same session id throughout, the counter rising by
/// exactly one per request, and at least `min_instances` different instances serving it.
pub fn judge_session(samples: &[SessionSample], min_instances: usize) -> (Status, String) {
    let Some(first) = samples.first() else {
        return (Status::Fail, "no session response".into());
    };
    for (i, pair) in samples.windows(2).enumerate() {
        let (a, b) = (&pair[0], &pair[1]);
        if b.session_id != a.session_id {
            return (
                Status::Fail,
                format!(
                    "request {} got a new session ({} served it): the session is not shared between instances (or the cookie was not kept)",
                    i + 2,
                    b.instance_id
                ),
            );
        }
        if b.views != a.views + 1 {
            return (
                Status::Fail,
                format!(
                    "request {}: views went from {} ({}) to {} ({}); expected {}",
                    i + 2,
                    a.views,
                    a.instance_id,
                    b.views,
                    b.instance_id,
                    a.views + 1
                ),
            );
        }
    }
    let served: Vec<&str> = {
        let mut v: Vec<&str> = samples.iter().map(|s| s.instance_id.as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    if served.len() < min_instances {
        return (
            Status::Fail,
            format!(
                "all {} requests were served by {}; at least {min_instances} instances must serve one session to show it is shared",
                samples.len(),
                served.join(", ")
            ),
        );
    }
    let last = samples.last().unwrap_or(first);
    (
        Status::Pass,
        format!(
            "one session over {} requests: views {}→{}, served by {}",
            samples.len(),
            first.views,
            last.views,
            served.join(", ")
        ),
    )
}

/// How requests spread over instances.
#[derive(Debug, Clone, Serialize)]
pub struct Distribution {
    pub requests: u32,
    /// Requests per instance id, including instances that served none.
    pub counts: BTreeMap<String, u32>,
    /// Requests that got no usable answer.
    pub failed: u32,
}

/// What the per-instance checks saw of one instance's own health (its health endpoint, asked
/// from inside the project network), so an idle instance is reported for what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceHealth {
    /// Its health endpoint answered 200.
    Healthy,
    /// Not running, or its health endpoint did not answer 200: what was seen.
    NotHealthy(String),
}

/// Every expected instance served some; none more than twice its fair share. `health` is what
/// the per-instance checks saw (empty without Docker access): an idle instance that is healthy
/// means nginx is not sending it requests, which is a different fault from an instance that
/// is down, and the report says which.
pub fn judge_distribution(
    d: &Distribution,
    expected: &[String],
    health: &BTreeMap<String, InstanceHealth>,
) -> (Status, String) {
    if d.failed > 0 {
        return (
            Status::Fail,
            format!("{} of {} requests failed", d.failed, d.requests),
        );
    }
    let k = expected.len().max(1) as f64;
    let fair = d.requests as f64 / k;
    let idle: Vec<&str> = expected
        .iter()
        .filter(|id| d.counts.get(*id).copied().unwrap_or(0) == 0)
        .map(String::as_str)
        .collect();
    if !idle.is_empty() {
        return (Status::Fail, idle_instances(&idle, d.requests, health));
    }
    let unknown: Vec<&str> = d
        .counts
        .iter()
        .filter(|(id, n)| **n > 0 && !expected.contains(id))
        .map(|(id, _)| id.as_str())
        .collect();
    if !unknown.is_empty() && !expected.is_empty() {
        return (
            Status::Fail,
            format!(
                "requests were served by {}, which is not one of the expected instances ({})",
                unknown.join(", "),
                expected.join(", ")
            ),
        );
    }
    if let Some((id, n)) = d.counts.iter().find(|(_, n)| **n as f64 > 2.0 * fair) {
        return (
            Status::Fail,
            format!(
                "{id} served {n} of {} requests, more than twice its fair share ({fair:.1})",
                d.requests
            ),
        );
    }
    (
        Status::Pass,
        format!(
            "{} instances served {} requests, each between 1 and {:.0}",
            expected.len(),
            d.requests,
            (2.0 * fair).floor()
        ),
    )
}

/// Why each idle instance got nothing, as far as the evidence shows: healthy ones are left
/// out by nginx (after errors it counts a server failed for `fail_timeout`; or its upstream
/// does not list the instance), unhealthy ones cannot serve.
fn idle_instances(
    idle: &[&str],
    requests: u32,
    health: &BTreeMap<String, InstanceHealth>,
) -> String {
    let (healthy, other): (Vec<&str>, Vec<&str>) = idle
        .iter()
        .partition(|id| health.get(**id) == Some(&InstanceHealth::Healthy));
    let mut parts = vec![];
    if !healthy.is_empty() {
        let (names, verb, pronoun) = match healthy.as_slice() {
            [one] => (one.to_string(), "is", "it"),
            many => (many.join(", "), "are", "them"),
        };
        parts.push(format!(
            "{names} {verb} healthy but nginx is not sending {pronoun} requests (none of {requests}); \
             nginx's log says why (`radar-deploy logs nginx`: \"upstream server temporarily \
             disabled\" after errors, or no server line for {pronoun})"
        ));
    }
    for id in other {
        parts.push(match health.get(id) {
            Some(InstanceHealth::NotHealthy(seen)) => {
                format!("{id} served no request: it is not healthy ({seen})")
            }
            _ => format!("{id} served no request"),
        });
    }
    parts.join("; ")
}

/// A check from a status, a name and what was seen.
pub fn check(group: &'static str, name: String, (status, detail): (Status, String)) -> Check {
    Check {
        group,
        name,
        status,
        detail,
        duration_ms: 0,
    }
}

/// The Sentinels (by label) whose replica list lacks `replica` (its announced name).
pub fn sentinels_unaware_of<'a>(
    views: &[(&'a str, &[SentinelReplica])],
    replica: &str,
) -> Vec<&'a str> {
    views
        .iter()
        .filter(|(_, replicas)| !replicas.iter().any(|r| r.host == replica))
        .map(|(label, _)| *label)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentinel_that_lists_no_replica_is_named() {
        let known = [SentinelReplica {
            host: "redis-replica".into(),
            flags: "slave".into(),
            link: "ok".into(),
            master_host: "redis".into(),
        }];
        let views: [(&str, &[SentinelReplica]); 3] = [
            ("sentinel-1", &known),
            ("sentinel-2", &[]),
            ("sentinel-3", &known),
        ];
        assert_eq!(
            sentinels_unaware_of(&views, "redis-replica"),
            vec!["sentinel-2"]
        );
        assert!(sentinels_unaware_of(&views[..1], "redis-replica").is_empty());
        assert_eq!(sentinels_unaware_of(&views[..1], "redis").len(), 1);
    }

    fn s(id: &str, views: i64, inst: &str) -> SessionSample {
        SessionSample {
            session_id: id.into(),
            views,
            instance_id: inst.into(),
        }
    }

    #[test]
    fn session_passes_when_shared() {
        let samples = [s("a", 1, "app-1"), s("a", 2, "app-2"), s("a", 3, "app-3")];
        assert_eq!(judge_session(&samples, 2).0, Status::Pass);
    }

    #[test]
    fn session_fails_when_not_shared() {
        let samples = [s("a", 1, "app-1"), s("b", 1, "app-2")];
        let (st, why) = judge_session(&samples, 2);
        assert_eq!(st, Status::Fail);
        assert!(why.contains("new session"), "{why}");
    }

    #[test]
    fn session_fails_when_the_counter_skips_or_resets() {
        let (st, why) = judge_session(&[s("a", 1, "app-1"), s("a", 1, "app-2")], 2);
        assert_eq!(st, Status::Fail);
        assert!(why.contains("expected 2"), "{why}");
        assert_eq!(
            judge_session(&[s("a", 1, "x"), s("a", 3, "y")], 2).0,
            Status::Fail
        );
    }

    #[test]
    fn session_fails_when_one_instance_serves_everything() {
        let (st, why) = judge_session(&[s("a", 1, "app-1"), s("a", 2, "app-1")], 2);
        assert_eq!(st, Status::Fail);
        assert!(why.contains("at least 2"), "{why}");
    }

    #[test]
    fn session_json_errors_are_evidence() {
        assert!(parse_session("<html>").unwrap_err().contains("not JSON"));
        assert!(parse_session("{\"sessionId\":\"a\"}")
            .unwrap_err()
            .contains("views"));
        let ok =
            parse_session("{\"sessionId\":\"a\",\"views\":3,\"instanceId\":\"app-1\"}").unwrap();
        assert_eq!(ok.views, 3);
    }

    fn dist(counts: &[(&str, u32)], failed: u32) -> Distribution {
        Distribution {
            requests: counts.iter().map(|(_, n)| n).sum::<u32>() + failed,
            counts: counts.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            failed,
        }
    }

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("app-{i}")).collect()
    }

    fn judge(d: &Distribution, expected: &[String]) -> (Status, String) {
        judge_distribution(d, expected, &BTreeMap::new())
    }

    #[test]
    fn even_distribution_passes() {
        let d = dist(&[("app-1", 10), ("app-2", 11), ("app-3", 9)], 0);
        assert_eq!(judge(&d, &ids(3)).0, Status::Pass);
    }

    #[test]
    fn an_idle_instance_fails() {
        let d = dist(&[("app-1", 15), ("app-2", 15), ("app-3", 0)], 0);
        let (st, why) = judge(&d, &ids(3));
        assert_eq!(st, Status::Fail);
        assert!(why.contains("app-3 served no request"));
    }

    #[test]
    fn an_idle_healthy_instance_is_one_nginx_does_not_send_requests_to() {
        let d = dist(&[("app-1", 15), ("app-2", 0), ("app-3", 15)], 0);
        let health: BTreeMap<String, InstanceHealth> = ids(3)
            .into_iter()
            .map(|id| (id, InstanceHealth::Healthy))
            .collect();
        let (st, why) = judge_distribution(&d, &ids(3), &health);
        assert_eq!(st, Status::Fail);
        assert!(
            why.starts_with("app-2 is healthy but nginx is not sending it requests (none of 30)"),
            "{why}"
        );
        assert!(why.contains("radar-deploy logs nginx"), "{why}");
        assert!(!why.contains("app-1") && !why.contains("app-3"), "{why}");
    }

    #[test]
    fn an_idle_unhealthy_instance_is_reported_as_not_healthy_not_as_nginx_s_fault() {
        let d = dist(
            &[("app-1", 10), ("app-2", 0), ("app-3", 0), ("app-4", 20)],
            0,
        );
        let health: BTreeMap<String, InstanceHealth> = [
            ("app-1", InstanceHealth::Healthy),
            (
                "app-2",
                InstanceHealth::NotHealthy("app-2 (p-app-2) is not running: Exited (137)".into()),
            ),
            ("app-3", InstanceHealth::Healthy),
            ("app-4", InstanceHealth::Healthy),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let (st, why) = judge_distribution(&d, &ids(4), &health);
        assert_eq!(st, Status::Fail);
        assert_eq!(
            why.split("; ").next(),
            Some("app-3 is healthy but nginx is not sending it requests (none of 30)"),
            "{why}"
        );
        assert!(
            why.contains(
                "app-2 served no request: it is not healthy (app-2 (p-app-2) is not running: Exited (137))"
            ),
            "{why}"
        );
        assert!(!why.contains("app-2 is healthy"), "{why}");
    }

    #[test]
    fn several_idle_healthy_instances_are_named_together() {
        let d = dist(&[("app-1", 30), ("app-2", 0), ("app-3", 0)], 0);
        let health: BTreeMap<String, InstanceHealth> = ids(3)
            .into_iter()
            .map(|id| (id, InstanceHealth::Healthy))
            .collect();
        let (_, why) = judge_distribution(&d, &ids(3), &health);
        assert!(
            why.starts_with("app-2, app-3 are healthy but nginx is not sending them requests"),
            "{why}"
        );
    }

    #[test]
    fn more_than_twice_the_fair_share_fails() {
        let d = dist(&[("app-1", 21), ("app-2", 5), ("app-3", 4)], 0);
        let (st, why) = judge(&d, &ids(3));
        assert_eq!(st, Status::Fail);
        assert!(why.contains("app-1 served 21"), "{why}");
    }

    #[test]
    fn failed_requests_fail_the_distribution() {
        let d = dist(&[("app-1", 10), ("app-2", 10), ("app-3", 9)], 1);
        assert_eq!(judge(&d, &ids(3)).0, Status::Fail);
    }

    #[test]
    fn an_unexpected_instance_fails() {
        let d = dist(&[("app-1", 10), ("app-2", 10), ("stranger", 10)], 0);
        assert_eq!(judge(&d, &ids(2)).0, Status::Fail);
    }
}
