//! Pure judgements: given the evidence collected (HTTP responses, command output), decide
//! whether a check passed and say why. No I/O here, so every rule is unit-tested.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Check, Status};
use crate::http::{RedirectProbe, TlsFailureKind, TlsProbe, REDIRECT_PROBE_PATH};
use crate::probes::SentinelReplica;
use crate::tls::{self, CertInfo};

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

/// Fewer days left than this and the HTTPS check warns (renewal starts at 30: a certificate
/// this close to its end means renewals have been failing for two weeks).
pub const TLS_WARN_DAYS: i64 = 14;

/// One host's HTTPS probe judged: a refused handshake or a non-200 `/health` fails, with the
/// reason's fix (and the certificate the server presented, when it was refused); an expired
/// certificate fails; fewer than [`TLS_WARN_DAYS`] days left, or no HTTP/2, warns. The detail
/// says the TLS and HTTP versions, the issuer and the days left. `extra_roots`: whether
/// ACME_CA_FILE's certificates were trusted too.
pub fn judge_tls(probe: &TlsProbe, now_unix: i64, extra_roots: bool) -> (Status, String) {
    let via = format!("GET {} (via {})", probe.url, probe.addr);
    let answer = match &probe.result {
        Ok(answer) => answer,
        Err(failure) => {
            let shown = failure
                .peer_certificate
                .as_deref()
                .and_then(|der| tls::leaf_info_der(der).ok());
            return (
                Status::Fail,
                format!(
                    "{via}: {}",
                    tls_refusal(failure.kind, &failure.reason, shown.as_ref(), extra_roots)
                ),
            );
        }
    };
    let cert = answer.peer_certificate.as_deref().map(tls::leaf_info_der);
    let versions = match &answer.tls_version {
        Some(v) => format!("{v}, {}", answer.http_version),
        None => answer.http_version.clone(),
    };
    if answer.status != 200 {
        return (
            Status::Fail,
            format!(
                "{via} → {} over {versions}: nginx's own /health answers 200 on every server",
                answer.status
            ),
        );
    }
    let mut warnings = Vec::new();
    let about = match cert {
        Some(Ok(info)) => {
            let days = info.days_left(now_unix);
            if info.not_after < now_unix {
                return (
                    Status::Fail,
                    format!(
                        "{versions}; {}: expired on {} (renew: `radar-deploy renew`, or a new \
                         TLS_CERT_FILE)",
                        describe_cert(&info),
                        tls::utc(info.not_after)
                    ),
                );
            }
            if days < TLS_WARN_DAYS {
                warnings.push(format!(
                    "only {days} day{} left: renewal is failing or not running (`radar-deploy \
                     renew`, or a new TLS_CERT_FILE)",
                    if days == 1 { "" } else { "s" }
                ));
            }
            format!("{}, {days} days left", describe_cert(&info))
        }
        Some(Err(e)) => {
            warnings.push(format!("the certificate presented cannot be read ({e})"));
            "certificate unreadable".to_string()
        }
        None => {
            warnings.push("no certificate reported by the TLS library".to_string());
            "no certificate".to_string()
        }
    };
    if answer.http_version != "HTTP/2" {
        warnings.push(format!(
            "served over {}: nginx did not offer HTTP/2 (ALPN h2)",
            answer.http_version
        ));
    }
    let seen = format!("{versions}; {about}");
    if warnings.is_empty() {
        (Status::Pass, seen)
    } else {
        (Status::Warn, format!("{seen}; {}", warnings.join("; ")))
    }
}

/// `CN=…, issued by CN=…, until 2027-01-15 08:00:00 UTC`.
fn describe_cert(info: &CertInfo) -> String {
    format!(
        "{}, issued by {}, until {}",
        info.subject,
        info.issuer,
        tls::utc(info.not_after)
    )
}

/// Why a handshake was refused, and what to do about it.
fn tls_refusal(
    kind: TlsFailureKind,
    reason: &str,
    shown: Option<&CertInfo>,
    extra_roots: bool,
) -> String {
    let presented = shown
        .map(|c| {
            format!(
                " The server presents {} (names: {}).",
                describe_cert(c),
                if c.names.is_empty() {
                    "none".to_string()
                } else {
                    c.names.join(", ")
                }
            )
        })
        .unwrap_or_default();
    let advice = match kind {
        TlsFailureKind::UnknownIssuer if shown.is_some_and(tls::is_placeholder) => {
            "nginx still serves radar-deploy's self-signed placeholder: no certificate has been \
             issued yet (see the ACME error of `radar-deploy up`, or run `radar-deploy renew`)"
                .to_string()
        }
        TlsFailureKind::UnknownIssuer if extra_roots => "the certificate's issuer is neither a \
             trusted root of this machine nor one of ACME_CA_FILE's certificates: put the root \
             of the CA that issued it in ACME_CA_FILE"
            .to_string(),
        TlsFailureKind::UnknownIssuer => "the certificate's issuer is not a trusted root of \
             this machine: for a private CA (your own ACME_DIRECTORY_URL, a company CA) set \
             ACME_CA_FILE to its root certificate (PEM)"
            .to_string(),
        TlsFailureKind::NameMismatch => "the certificate does not cover this host: have it \
             issued for every host of PUBLIC_HOSTS (TLS_MODE=acme: `radar-deploy renew --force`)"
            .to_string(),
        TlsFailureKind::Expired => {
            "the certificate has expired: `radar-deploy renew`, or a new TLS_CERT_FILE".to_string()
        }
        TlsFailureKind::NotYetValid => {
            "the certificate is not valid yet: check this machine's and the server's clocks"
                .to_string()
        }
        TlsFailureKind::BadCertificate => "the certificate was refused".to_string(),
        TlsFailureKind::Connect => "cannot connect: is nginx running, and HTTPS_PORT \
             published and open in the firewall?"
            .to_string(),
        TlsFailureKind::Timeout => "no answer before the deadline".to_string(),
        TlsFailureKind::BadExtraRoots => "ACME_CA_FILE holds no usable certificate".to_string(),
        TlsFailureKind::Other => "the request failed".to_string(),
    };
    format!("{advice} ({reason}).{presented}")
}

/// The plain-HTTP probe judged: a permanent redirect (301, 308) to the same path on
/// `https://host[:https_port]` passes; a temporary one (302, 307) there warns (browsers will not
/// remember it); anything else fails.
pub fn judge_redirect(probe: &RedirectProbe, host: &str, https_port: u16) -> (Status, String) {
    let via = format!("GET {} (via {})", probe.url, probe.addr);
    let expected = if https_port == 443 {
        format!("https://{host}{REDIRECT_PROBE_PATH}")
    } else {
        format!("https://{host}:{https_port}{REDIRECT_PROBE_PATH}")
    };
    let (status, location) = match &probe.result {
        Err(e) => return (Status::Fail, format!("GET {e}")),
        Ok((status, location)) => (*status, location.as_deref()),
    };
    let to_https = location.is_some_and(|l| same_https_target(l, host, https_port));
    let shown = location.unwrap_or("no Location header");
    match status {
        301 | 308 if to_https => (Status::Pass, format!("{via} → {status} {shown}")),
        302 | 307 if to_https => (
            Status::Warn,
            format!(
                "{via} → {status} {shown}: a temporary redirect; a permanent one (301 or 308) \
                 lets browsers go to HTTPS directly next time"
            ),
        ),
        300..=399 => (
            Status::Fail,
            format!("{via} → {status} {shown}; expected a redirect to {expected}"),
        ),
        _ => (
            Status::Fail,
            format!(
                "{via} → {status}, not a redirect: plain HTTP should answer 301 to {expected} \
                 (except /.well-known/acme-challenge/ and /health)"
            ),
        ),
    }
}

/// Whether `location` is `https://host[:port]` + the probe's path (443 may be written or left
/// out; the host's case does not matter).
fn same_https_target(location: &str, host: &str, https_port: u16) -> bool {
    let Some(rest) = location
        .get(..8)
        .filter(|scheme| scheme.eq_ignore_ascii_case("https://"))
        .and_then(|_| location.get(8..))
    else {
        return false;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (h, port) = match authority.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(p) => (h, p),
            Err(_) => return false,
        },
        None => (authority, 443),
    };
    h.trim_end_matches('.')
        .eq_ignore_ascii_case(host.trim_end_matches('.'))
        && port == https_port
        && path == REDIRECT_PROBE_PATH
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

#[cfg(test)]
mod tls_judging {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use crate::http::{HttpError, TlsAnswer, TlsFailure};

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    /// A self-signed certificate for `front.test` with `days` left (DER).
    fn cert(days: i64) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::new(vec!["front.test".to_string()]).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "front.test");
        let at = |t: i64| {
            x509_parser::time::ASN1Time::from_timestamp(t)
                .unwrap()
                .to_datetime()
        };
        p.not_before = at(NOW - 30 * DAY);
        p.not_after = at(NOW + days * DAY);
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8443))
    }

    fn answered(status: u16, http: &str, der: Option<Vec<u8>>) -> TlsProbe {
        TlsProbe {
            url: "https://front.test:8443/health".into(),
            addr: addr(),
            result: Ok(TlsAnswer {
                status,
                http_version: http.into(),
                tls_version: Some("TLSv1.3".into()),
                peer_certificate: der,
                elapsed: Duration::from_millis(3),
            }),
        }
    }

    fn refused(kind: TlsFailureKind, der: Option<Vec<u8>>) -> TlsProbe {
        TlsProbe {
            url: "https://front.test:8443/health".into(),
            addr: addr(),
            result: Err(TlsFailure {
                kind,
                reason: "invalid peer certificate: UnknownIssuer".into(),
                peer_certificate: der,
            }),
        }
    }

    #[test]
    fn a_good_handshake_reports_versions_issuer_and_days_left() {
        let (status, detail) = judge_tls(&answered(200, "HTTP/2", Some(cert(60))), NOW, false);
        assert_eq!(status, Status::Pass, "{detail}");
        assert!(
            detail.starts_with(
                "TLSv1.3, HTTP/2; CN=front.test, issued by CN=front.test, until 2027-03-16"
            ),
            "{detail}"
        );
        assert!(detail.ends_with("60 days left"), "{detail}");
    }

    #[test]
    fn fewer_than_14_days_left_warn_and_expiry_fails() {
        assert_eq!(
            judge_tls(&answered(200, "HTTP/2", Some(cert(14))), NOW, false).0,
            Status::Pass
        );
        let (status, detail) = judge_tls(&answered(200, "HTTP/2", Some(cert(13))), NOW, false);
        assert_eq!(status, Status::Warn);
        assert!(detail.contains("only 13 days left"), "{detail}");
        let (status, detail) = judge_tls(&answered(200, "HTTP/2", Some(cert(-1))), NOW, false);
        assert_eq!(status, Status::Fail);
        assert!(detail.contains("expired on 2027-01-14"), "{detail}");
    }

    #[test]
    fn http_1_over_tls_warns_and_a_failed_health_fails() {
        let (status, detail) = judge_tls(&answered(200, "HTTP/1.1", Some(cert(60))), NOW, false);
        assert_eq!(status, Status::Warn);
        assert!(detail.contains("did not offer HTTP/2"), "{detail}");
        let (status, detail) = judge_tls(&answered(502, "HTTP/2", Some(cert(60))), NOW, false);
        assert_eq!(status, Status::Fail);
        assert!(detail.contains("→ 502 over TLSv1.3, HTTP/2"), "{detail}");
    }

    #[test]
    fn an_unknown_issuer_advises_acme_ca_file_and_shows_the_certificate() {
        let (status, detail) = judge_tls(
            &refused(TlsFailureKind::UnknownIssuer, Some(cert(60))),
            NOW,
            false,
        );
        assert_eq!(status, Status::Fail);
        assert!(detail.starts_with("GET https://front.test:8443/health (via 127.0.0.1:8443): "));
        assert!(detail.contains("set ACME_CA_FILE to its root"), "{detail}");
        assert!(
            detail.contains("(invalid peer certificate: UnknownIssuer)"),
            "{detail}"
        );
        assert!(
            detail.contains("The server presents CN=front.test"),
            "{detail}"
        );
        let (_, detail) = judge_tls(&refused(TlsFailureKind::UnknownIssuer, None), NOW, true);
        assert!(detail.contains("neither a trusted root"), "{detail}");
        assert!(!detail.contains("presents"));
    }

    #[test]
    fn the_placeholder_is_recognised_as_nothing_issued_yet() {
        let (pem, _) = tls::placeholder(&["front.test".to_string()], NOW);
        let der = x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .contents;
        let (_, detail) = judge_tls(
            &refused(TlsFailureKind::UnknownIssuer, Some(der)),
            NOW,
            false,
        );
        assert!(
            detail.contains("still serves radar-deploy's self-signed placeholder"),
            "{detail}"
        );
    }

    #[test]
    fn every_refusal_fails_with_its_own_advice() {
        for (kind, words) in [
            (TlsFailureKind::NameMismatch, "PUBLIC_HOSTS"),
            (TlsFailureKind::Expired, "radar-deploy renew"),
            (TlsFailureKind::NotYetValid, "clocks"),
            (TlsFailureKind::Connect, "HTTPS_PORT"),
            (TlsFailureKind::Timeout, "deadline"),
            (TlsFailureKind::BadExtraRoots, "ACME_CA_FILE"),
            (TlsFailureKind::BadCertificate, "refused"),
            (TlsFailureKind::Other, "failed"),
        ] {
            let (status, detail) = judge_tls(&refused(kind, None), NOW, false);
            assert_eq!(status, Status::Fail);
            assert!(detail.contains(words), "{kind:?}: {detail}");
        }
    }

    fn redirect(status: u16, location: Option<&str>) -> RedirectProbe {
        RedirectProbe {
            url: format!("http://front.test:8080{REDIRECT_PROBE_PATH}"),
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            result: Ok((status, location.map(str::to_string))),
        }
    }

    #[test]
    fn a_permanent_redirect_to_the_same_path_over_https_passes() {
        let to = format!("https://front.test:8443{REDIRECT_PROBE_PATH}");
        for status in [301, 308] {
            let (s, detail) = judge_redirect(&redirect(status, Some(&to)), "front.test", 8443);
            assert_eq!(s, Status::Pass, "{detail}");
            assert!(detail.ends_with(&format!("→ {status} {to}")), "{detail}");
        }
        let default_port = format!("https://Front.Test{REDIRECT_PROBE_PATH}");
        assert_eq!(
            judge_redirect(&redirect(301, Some(&default_port)), "front.test", 443).0,
            Status::Pass
        );
        let explicit_443 = format!("https://front.test:443{REDIRECT_PROBE_PATH}");
        assert_eq!(
            judge_redirect(&redirect(301, Some(&explicit_443)), "front.test", 443).0,
            Status::Pass
        );
        assert_eq!(
            judge_redirect(&redirect(302, Some(&to)), "front.test", 8443).0,
            Status::Warn
        );
    }

    #[test]
    fn anything_but_a_redirect_to_https_here_fails() {
        let wrong = [
            (
                301,
                Some("http://front.test:8443/radar-deploy/redirect-probe?from=verify"),
            ),
            (
                301,
                Some("https://front.test/radar-deploy/redirect-probe?from=verify"),
            ),
            (
                301,
                Some("https://other.test:8443/radar-deploy/redirect-probe?from=verify"),
            ),
            (301, Some("https://front.test:8443/")),
            (
                301,
                Some("https://front.test:x/radar-deploy/redirect-probe?from=verify"),
            ),
            (301, Some("/radar-deploy/redirect-probe?from=verify")),
            (301, Some("https:")),
            (301, None),
            (200, None),
            (404, None),
        ];
        for (status, location) in wrong {
            let (s, detail) = judge_redirect(&redirect(status, location), "front.test", 8443);
            assert_eq!(s, Status::Fail, "{status} {location:?}: {detail}");
        }
        let (_, detail) = judge_redirect(&redirect(200, None), "front.test", 8443);
        assert!(detail.contains("not a redirect"), "{detail}");
        let err = RedirectProbe {
            result: Err(HttpError {
                url: "http://front.test:8080/x".into(),
                reason: "cannot connect (refused)".into(),
            }),
            ..redirect(0, None)
        };
        assert_eq!(
            judge_redirect(&err, "front.test", 8443),
            (
                Status::Fail,
                "GET http://front.test:8080/x: cannot connect (refused)".to_string()
            )
        );
    }
}
