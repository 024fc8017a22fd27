//! What nginx's access log says of the traffic, without IO: one JSON object per request (the
//! `radar` log format of `templates/nginx.conf.j2`) parsed into an [`Entry`], and the entries
//! of a time window summed up per instance ([`summarize`]): requests per second, share of the
//! traffic, upstream time percentiles, 4xx/5xx, upstream failures and retries, and the mean
//! number of requests in flight. `top` and `status` read the log through the Docker facade and
//! hand the lines here; [`view`] is what they print.
//!
//! nginx writes the log line when a request ends, so an entry's time is its end. Its
//! `$upstream_*` variables list every upstream nginx tried for the request, in order,
//! separated by `, ` (and ` : ` across an internal redirect): the last one answered, the ones
//! before failed (connect error, timeout, 502 or 504: `proxy_next_upstream`) and were retried.

pub mod view;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One request nginx logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When it ended, in milliseconds since the Unix epoch (nginx's `$msec`).
    pub at_ms: u64,
    /// The status the client got.
    pub status: u16,
    /// The whole request as nginx timed it (`$request_time`), in milliseconds.
    pub request_ms: f64,
    /// Every upstream tried, in order; empty when nginx answered itself (a redirect,
    /// maintenance mode, a 404 of its own).
    pub attempts: Vec<Attempt>,
}

/// One try of one upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// `10.0.1.5:8080`, or the upstream group's name when no server was live.
    pub addr: String,
    /// The upstream's status; `None` when it gave none (nginx logs `-`).
    pub status: Option<u16>,
    /// Its response time in milliseconds; `None` when it gave none.
    pub ms: Option<f64>,
}

impl Attempt {
    /// Whether nginx counted this try as the upstream's failure: no answer, or 502/504 (what
    /// `proxy_next_upstream` passes on). A 500 is the app's answer, not a failure of the hop.
    fn failed(&self) -> bool {
        !matches!(self.status, Some(s) if s != 502 && s != 504)
    }
}

/// The log line's fields, as the `radar` log format writes them.
#[derive(Deserialize)]
struct Line {
    msec: f64,
    status: u16,
    request_time: f64,
    #[serde(default)]
    upstream: String,
    #[serde(default)]
    upstream_status: String,
    #[serde(default)]
    upstream_time: String,
}

/// The items of one `$upstream_*` variable: `a, b : c` → `[a, b, c]`.
fn items(list: &str) -> Vec<&str> {
    list.split([',', ':'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// `$upstream_addr` holds `host:port`: its own colons must survive the split above, so the
/// addresses are split on the separators only.
fn addresses(list: &str) -> Vec<&str> {
    list.split(", ")
        .flat_map(|s| s.split(" : "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Parses one access log line; `None` for anything else (an error log line, another format).
pub fn parse(line: &str) -> Option<Entry> {
    let line: Line = serde_json::from_str(line.trim()).ok()?;
    if !(line.msec.is_finite() && line.msec >= 0.0) {
        return None;
    }
    let statuses = items(&line.upstream_status);
    let times = items(&line.upstream_time);
    let attempts = addresses(&line.upstream)
        .into_iter()
        .enumerate()
        .map(|(i, addr)| Attempt {
            addr: addr.to_string(),
            status: statuses.get(i).and_then(|s| s.parse().ok()),
            ms: times
                .get(i)
                .and_then(|t| t.parse::<f64>().ok())
                .map(|s| s * 1000.0),
        })
        .collect();
    Some(Entry {
        at_ms: (line.msec * 1000.0).round() as u64,
        status: line.status,
        request_ms: line.request_time * 1000.0,
        attempts,
    })
}

/// The `p`th percentile (0..=100) of `sorted` values by nearest rank; `None` when there are
/// none. The drills' figures use it too.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// p50, p95 and p99 in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Percentiles {
    pub fn of(mut values: Vec<f64>) -> Percentiles {
        values.sort_by(f64::total_cmp);
        Percentiles {
            p50: percentile(&values, 50.0),
            p95: percentile(&values, 95.0),
            p99: percentile(&values, 99.0),
        }
    }
}

/// One instance's traffic in a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InstanceTraffic {
    /// `app-2`; the address when no instance has it (one removed since, or another node's).
    pub name: String,
    /// Requests it answered (its try was the last one, and not a failure).
    pub requests: u64,
    pub per_sec: f64,
    /// Its part of the requests the instances answered, 0..=1.
    pub share: f64,
    /// Its upstream response times (every try, failed ones too).
    pub upstream_ms: Percentiles,
    /// Answers it gave with a 4xx or 5xx status.
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// Tries that failed (no answer, 502, 504).
    pub failures: u64,
    /// Of those, the ones nginx passed on to another instance.
    pub retried: u64,
    /// Requests in flight on it, on average over the window (its tries' time / the window).
    pub in_flight: f64,
}

/// The balancer's totals in a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub requests: u64,
    pub per_sec: f64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// Requests nginx answered without an upstream (redirects, maintenance mode, no live
    /// upstream).
    pub without_upstream: u64,
    /// Requests tried on more than one instance.
    pub retried: u64,
    /// The whole request as the client saw it at nginx (`$request_time`).
    pub request_ms: Percentiles,
}

/// A window's traffic: the totals and one row per instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Traffic {
    pub window_secs: f64,
    pub totals: Totals,
    pub instances: Vec<InstanceTraffic>,
}

/// The address without its port: `10.0.1.5:8080` → `10.0.1.5` (`[::1]:80` → `::1`).
fn host_of(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => {
            host.trim_start_matches('[').trim_end_matches(']')
        }
        _ => addr,
    }
}

#[derive(Default)]
struct Tally {
    row: InstanceTraffic,
    times: Vec<f64>,
    busy_ms: f64,
}

/// Sums up the entries that ended in `(to_ms - window_ms, to_ms]`. `instances` are the known
/// instances in display order, each with its IP addresses: they get a row even without
/// traffic (an instance nobody reaches is what an operator looks for). An address no instance
/// has gets a row of its own, named by the address.
pub fn summarize(
    entries: &[Entry],
    to_ms: u64,
    window_ms: u64,
    instances: &[(String, Vec<String>)],
) -> Traffic {
    let window_ms = window_ms.max(1);
    let from_ms = to_ms.saturating_sub(window_ms);
    let secs = window_ms as f64 / 1000.0;
    let by_ip: BTreeMap<&str, &str> = instances
        .iter()
        .flat_map(|(name, ips)| ips.iter().map(move |ip| (ip.as_str(), name.as_str())))
        .collect();
    let mut rows: Vec<Tally> = instances
        .iter()
        .map(|(name, _)| Tally {
            row: InstanceTraffic {
                name: name.clone(),
                ..InstanceTraffic::default()
            },
            ..Tally::default()
        })
        .collect();
    let mut totals = Totals::default();
    let mut request_times = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.at_ms > from_ms && e.at_ms <= to_ms)
    {
        totals.requests += 1;
        request_times.push(e.request_ms);
        match e.status {
            400..=499 => totals.status_4xx += 1,
            500..=599 => totals.status_5xx += 1,
            _ => {}
        }
        if e.attempts.is_empty() {
            totals.without_upstream += 1;
        }
        if e.attempts.len() > 1 {
            totals.retried += 1;
        }
        for (i, a) in e.attempts.iter().enumerate() {
            let name = by_ip.get(host_of(&a.addr)).map_or(a.addr.as_str(), |n| *n);
            let at = match rows.iter().position(|t| t.row.name == name) {
                Some(at) => at,
                None => {
                    rows.push(Tally {
                        row: InstanceTraffic {
                            name: name.to_string(),
                            ..InstanceTraffic::default()
                        },
                        ..Tally::default()
                    });
                    rows.len() - 1
                }
            };
            let t = &mut rows[at];
            if let Some(ms) = a.ms {
                t.times.push(ms);
                t.busy_ms += ms;
            }
            let last = i + 1 == e.attempts.len();
            if a.failed() {
                t.row.failures += 1;
                if !last {
                    t.row.retried += 1;
                }
            }
            if last && !a.failed() {
                t.row.requests += 1;
                match a.status {
                    Some(400..=499) => t.row.status_4xx += 1,
                    Some(500..=599) => t.row.status_5xx += 1,
                    _ => {}
                }
            }
        }
    }
    let answered: u64 = rows.iter().map(|t| t.row.requests).sum();
    let instances = rows
        .into_iter()
        .map(|t| {
            let mut row = t.row;
            row.per_sec = row.requests as f64 / secs;
            row.share = if answered == 0 {
                0.0
            } else {
                row.requests as f64 / answered as f64
            };
            row.upstream_ms = Percentiles::of(t.times);
            row.in_flight = t.busy_ms / window_ms as f64;
            row
        })
        .collect();
    totals.per_sec = totals.requests as f64 / secs;
    totals.request_ms = Percentiles::of(request_times);
    Traffic {
        window_secs: secs,
        totals,
        instances,
    }
}

#[cfg(test)]
mod tests;
