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

/// One session answer; an app that reports no `instanceId` is named by `upstream` (nginx's
/// upstream address, for the caller to map to an instance).
pub fn parse_session(body: &str, upstream: Option<&str>) -> Result<SessionSample, String> {
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
    let instance_id = match (v.get("instanceId"), upstream) {
        (None, Some(addr)) => addr.to_string(),
        _ => field("instanceId")?
            .as_str()
            .ok_or_else(|| format!("\"instanceId\" is not a string: {}", excerpt(body)))?
            .to_string(),
    };
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
    /// The path asked through the balancer.
    pub path: String,
    /// How the instances were told apart: `instanceId` (the app's JSON), `X-Radar-Upstream`
    /// (nginx's upstream address, mapped to the instance through Docker), or both.
    pub named_by: Vec<String>,
}

/// Who served one answer: the app's `instanceId`, else nginx's upstream address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServedBy {
    InstanceId(String),
    Upstream(String),
}

/// What names the instances in [`Distribution::named_by`].
pub const NAMED_BY_INSTANCE_ID: &str = "instanceId";
pub const NAMED_BY_UPSTREAM: &str = "X-Radar-Upstream";

impl ServedBy {
    /// From one answer: the `instanceId` of its JSON body, else the upstream nginx named.
    pub fn of(body: &str, upstream: Option<&str>) -> Option<ServedBy> {
        instance_id(body)
            .map(ServedBy::InstanceId)
            .or_else(|| upstream.map(|u| ServedBy::Upstream(u.to_string())))
    }

    /// The instance's name: an upstream address as `addresses` maps it (ip or ip:port → the
    /// instance), else the address itself.
    pub fn name(&self, addresses: &BTreeMap<String, String>) -> String {
        match self {
            ServedBy::InstanceId(id) => id.clone(),
            ServedBy::Upstream(addr) => addresses
                .get(addr)
                .or_else(|| addresses.get(host_of(addr)))
                .cloned()
                .unwrap_or_else(|| addr.clone()),
        }
    }
}

/// `172.18.0.5` of `172.18.0.5:3000` (and `[fd00::5]:3000` → `fd00::5`).
pub fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => addr,
    }
}

/// Counts answers by instance; `None` is a failed request.
pub fn distribution(
    path: &str,
    answers: &[Option<ServedBy>],
    addresses: &BTreeMap<String, String>,
) -> Distribution {
    let mut d = Distribution {
        requests: answers.len() as u32,
        counts: BTreeMap::new(),
        failed: 0,
        path: path.to_string(),
        named_by: vec![],
    };
    for a in answers {
        match a {
            Some(s) => {
                *d.counts.entry(s.name(addresses)).or_insert(0) += 1;
                let by = match s {
                    ServedBy::InstanceId(_) => NAMED_BY_INSTANCE_ID,
                    ServedBy::Upstream(_) => NAMED_BY_UPSTREAM,
                };
                if !d.named_by.iter().any(|b| b == by) {
                    d.named_by.push(by.to_string());
                }
            }
            None => d.failed += 1,
        }
    }
    d
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
        assert!(parse_session("<html>", None)
            .unwrap_err()
            .contains("not JSON"));
        assert!(parse_session("{\"sessionId\":\"a\"}", None)
            .unwrap_err()
            .contains("views"));
        let ok = parse_session(
            "{\"sessionId\":\"a\",\"views\":3,\"instanceId\":\"app-1\"}",
            Some("10.0.0.9:3000"),
        )
        .unwrap();
        assert_eq!((ok.views, ok.instance_id.as_str()), (3, "app-1"));
        // No instanceId: nginx's upstream names the instance; without either it is refused.
        let body = "{\"sessionId\":\"a\",\"views\":3}";
        let by_nginx = parse_session(body, Some("10.0.0.9:3000")).unwrap();
        assert_eq!(by_nginx.instance_id, "10.0.0.9:3000");
        assert!(parse_session(body, None)
            .unwrap_err()
            .contains("instanceId"));
    }

    #[test]
    fn answers_are_named_by_instance_id_else_by_the_upstream_nginx_reports() {
        let addresses: BTreeMap<String, String> = [
            ("172.18.0.5".to_string(), "app-1".to_string()),
            ("172.18.0.6".to_string(), "app-2".to_string()),
        ]
        .into();
        let answers = [
            ServedBy::of("<html>", Some("172.18.0.5:8000")),
            ServedBy::of("", Some("172.18.0.6:8000")),
            ServedBy::of("{\"instanceId\":\"app-3\"}", Some("172.18.0.7:8000")),
            ServedBy::of("<html>", Some("172.18.0.9:8000")),
            ServedBy::of("<html>", None),
        ];
        let d = distribution("/", &answers, &addresses);
        assert_eq!(d.counts["app-1"], 1);
        assert_eq!(d.counts["app-2"], 1);
        assert_eq!(d.counts["app-3"], 1);
        // An address no instance has stays visible as what it is.
        assert_eq!(d.counts["172.18.0.9:8000"], 1);
        assert_eq!(d.failed, 1);
        assert_eq!(d.named_by, [NAMED_BY_UPSTREAM, NAMED_BY_INSTANCE_ID]);
        assert_eq!(host_of("[fd00::5]:80"), "fd00::5");
        assert_eq!(host_of("10.0.1.5"), "10.0.1.5");
    }

    fn dist(counts: &[(&str, u32)], failed: u32) -> Distribution {
        Distribution {
            requests: counts.iter().map(|(_, n)| n).sum::<u32>() + failed,
            counts: counts.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            failed,
            path: "/health/backend".into(),
            named_by: vec![NAMED_BY_INSTANCE_ID.into()],
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
