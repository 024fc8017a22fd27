//! What the clients saw, second by second: the samples of a drill cut into one-second bins on
//! the fault's clock (bin 0 starts at the fault), each with its successful answers, its failed
//! requests by kind and the latency percentiles of the requests sent in it; and the moments the
//! picture marks (fault, recovered, verified). Pure: no clock, no IO; `picture.rs` draws it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::stats::{percentile, Sample};
use super::{Kind, Report};

/// A bin's width. The load's first and last bins are cut by its start and stop; one shorter
/// than half of this joins its neighbour, so a sliver never shows as a spike or a dip.
pub const BIN_MS: i64 = 1000;

/// Latency percentiles of the requests sent in one bin, failed ones included (a request that
/// failed after 10 s cost its user 10 s, as in the report's figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub p50_ms: u64,
    pub p95_ms: u64,
    pub p99_ms: u64,
}

/// One bin of the load, times in ms relative to the fault (negative: before it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bin {
    pub from_ms: i64,
    pub to_ms: i64,
    /// Successful answers that arrived in it.
    pub ok: u64,
    /// Failed requests, by kind (`HTTP 502`, `transport: …`), whose failure arrived in it.
    pub failed: BTreeMap<String, u64>,
    /// Of the requests sent in it; none when no request was sent in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<Percentiles>,
}

impl Bin {
    fn secs(&self) -> f64 {
        (self.to_ms - self.from_ms).max(1) as f64 / 1000.0
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    pub fn ok_per_s(&self) -> f64 {
        self.ok as f64 / self.secs()
    }

    pub fn failed_per_s(&self) -> f64 {
        self.failed_total() as f64 / self.secs()
    }

    /// Failures of `kind` per second.
    pub fn kind_per_s(&self, kind: &str) -> f64 {
        self.failed.get(kind).copied().unwrap_or(0) as f64 / self.secs()
    }
}

/// Cuts the load (from its start, `fault_at_ms` before the fault, to `duration_ms`, both on
/// the load's clock) into bins aligned on the fault. Successes and failures count where their
/// answer arrived; latency where the request was sent.
pub fn per_second(samples: &[Sample], fault_at_ms: u64, duration_ms: u64) -> Vec<Bin> {
    let fault = fault_at_ms as i64;
    let (start, end) = (-fault, duration_ms as i64 - fault);
    let edges = edges(start, end);
    let mut bins: Vec<Bin> = edges
        .windows(2)
        .map(|w| Bin {
            from_ms: w[0],
            to_ms: w[1],
            ok: 0,
            failed: BTreeMap::new(),
            latency: None,
        })
        .collect();
    if bins.is_empty() {
        return bins;
    }
    // The bin holding `t` (load clock); a time outside the load goes to its nearest bin.
    let ends = &edges[1..];
    let index = |t: u64| {
        let rel = t as i64 - fault;
        ends.partition_point(|&e| e <= rel).min(ends.len() - 1)
    };
    let mut latencies: Vec<Vec<u64>> = vec![vec![]; bins.len()];
    for s in samples {
        let answered = index(s.done_ms);
        match &s.result {
            Ok(_) => bins[answered].ok += 1,
            Err(f) => *bins[answered].failed.entry(f.kind()).or_insert(0) += 1,
        }
        latencies[index(s.sent_ms)].push(s.latency_ms());
    }
    for (bin, mut v) in bins.iter_mut().zip(latencies) {
        if v.is_empty() {
            continue;
        }
        v.sort_unstable();
        bin.latency = Some(Percentiles {
            p50_ms: percentile(&v, 50.0),
            p95_ms: percentile(&v, 95.0),
            p99_ms: percentile(&v, 99.0),
        });
    }
    bins
}

/// The bins' edges from `start` to `end`: every whole second of the fault's clock in between,
/// without an edge that would leave a first or last bin shorter than half a bin.
fn edges(start: i64, end: i64) -> Vec<i64> {
    if end <= start {
        return vec![];
    }
    let mut inner: Vec<i64> = (start.div_euclid(BIN_MS) + 1..)
        .map(|k| k * BIN_MS)
        .take_while(|&e| e < end)
        .filter(|&e| e > start)
        .collect();
    if inner.first().is_some_and(|&e| e - start < BIN_MS / 2) {
        inner.remove(0);
    }
    if inner.last().is_some_and(|&e| end - e < BIN_MS / 2) {
        inner.pop();
    }
    std::iter::once(start)
        .chain(inner)
        .chain(std::iter::once(end))
        .collect()
}

/// A moment the picture marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// `fault`, `recovered` or `verified`: the label on the charts.
    pub label: &'static str,
    /// Ms relative to the fault.
    pub at_ms: i64,
    /// What it means in this drill, for the legend under the charts.
    pub meaning: String,
}

/// The fault; "recovered": the first moment the faulted part served clients again (the
/// instance, or nginx, answering through the balancer; the sessions back after a failover;
/// otherwise the drill's own recovery: back, healthy and the load served); and "verified":
/// every container running and healthy and the balancer serving. A moment the drill did not
/// reach (or does not measure) is left out.
pub fn markers(r: &Report) -> Vec<Marker> {
    let rc = &r.recovery;
    let mut m = vec![Marker {
        label: "fault",
        at_ms: 0,
        meaning: r.fault.clone(),
    }];
    let recovered = if let Some(t) = rc.serving_after_ms {
        Some((
            t,
            match r.drill {
                Kind::Nginx => {
                    "nginx answered again: the first success after its first refusal".to_string()
                }
                Kind::Daemon => "served again: the first answer after the outage".to_string(),
                _ => format!("{} answered through nginx again", rc.target),
            },
        ))
    } else if let Some(t) = rc.sessions_back_after_ms {
        Some((
            t,
            "sessions served again: the session client's first answer after the outage".into(),
        ))
    } else {
        rc.recovered_after_ms.map(|t| {
            (
                t,
                format!("{} back: running, healthy, the load served", rc.target),
            )
        })
    };
    if let Some((t, meaning)) = recovered {
        m.push(Marker {
            label: "recovered",
            at_ms: t as i64,
            meaning,
        });
    }
    let verified = rc
        .verified_after_ms
        .map(|t| {
            (
                t,
                "every container running and healthy, the balancer serving",
            )
        })
        .or_else(|| {
            rc.daemon
                .as_ref()
                .and_then(|d| d.verified_after_ms)
                .map(|t| (t, "`verify` passed again"))
        });
    if let Some((t, meaning)) = verified {
        m.push(Marker {
            label: "verified",
            at_ms: t as i64,
            meaning: meaning.into(),
        });
    }
    m
}

#[cfg(test)]
mod tests {
    use super::super::stats::Failure;
    use super::*;

    fn ok(sent: u64, done: u64) -> Sample {
        Sample {
            client: 0,
            path: "/health/backend".into(),
            sent_ms: sent,
            done_ms: done,
            result: Ok(Some("app-1".into())),
        }
    }

    fn failed(sent: u64, done: u64, failure: Failure) -> Sample {
        Sample {
            result: Err(failure),
            ..ok(sent, done)
        }
    }

    fn http(status: u16) -> Failure {
        Failure::Status {
            status,
            body: String::new(),
        }
    }

    #[test]
    fn bins_are_whole_seconds_of_the_faults_clock() {
        // Fault at 2.0 s of a 5.0 s load: -2..-1, -1..0, 0..1, 1..2, 2..3.
        let bins = per_second(&[], 2000, 5000);
        let spans: Vec<(i64, i64)> = bins.iter().map(|b| (b.from_ms, b.to_ms)).collect();
        assert_eq!(
            spans,
            [
                (-2000, -1000),
                (-1000, 0),
                (0, 1000),
                (1000, 2000),
                (2000, 3000)
            ]
        );
    }

    #[test]
    fn a_sliver_at_either_end_joins_its_neighbour() {
        // Fault at 2.1 s of a 4.3 s load: the first 100 ms and the last 200 ms are slivers.
        let spans: Vec<(i64, i64)> = per_second(&[], 2100, 4300)
            .iter()
            .map(|b| (b.from_ms, b.to_ms))
            .collect();
        assert_eq!(spans, [(-2100, -1000), (-1000, 0), (0, 1000), (1000, 2200)]);
        // At least half a bin stays a bin of its own.
        let spans: Vec<(i64, i64)> = per_second(&[], 1600, 2600)
            .iter()
            .map(|b| (b.from_ms, b.to_ms))
            .collect();
        assert_eq!(spans, [(-1600, -1000), (-1000, 0), (0, 1000)]);
        // A load shorter than a bin is one bin; none at all, no bin.
        assert_eq!(per_second(&[], 100, 300).len(), 1);
        assert!(per_second(&[], 0, 0).is_empty());
    }

    #[test]
    fn answers_count_where_they_arrived_and_rates_are_per_second() {
        let samples = vec![
            ok(900, 950),   // -1.1 s: bin -2..-1
            ok(1990, 2010), // sent before the fault, answered after: bin 0..1
            ok(2100, 2200),
            failed(2300, 2400, http(502)),
        ];
        let bins = per_second(&samples, 2000, 3400);
        assert_eq!(bins.len(), 3);
        let (before, at) = (&bins[0], &bins[2]);
        assert_eq!((before.ok, before.failed_total()), (1, 0));
        assert_eq!((at.ok, at.failed_total()), (2, 1));
        assert_eq!(bins[1].ok, 0);
        // The last bin is 1.4 s long (the 0.4 s sliver joined it).
        assert_eq!((at.from_ms, at.to_ms), (0, 1400));
        assert!((at.ok_per_s() - 2.0 / 1.4).abs() < 1e-9);
        assert!((at.failed_per_s() - 1.0 / 1.4).abs() < 1e-9);
    }

    #[test]
    fn failures_are_counted_by_kind() {
        let refused = Failure::Transport {
            reason: "cannot connect (Connection refused)".into(),
        };
        let samples = vec![
            failed(1000, 1010, http(502)),
            failed(1000, 1020, http(502)),
            failed(1000, 1030, refused.clone()),
            failed(2000, 2010, http(503)),
        ];
        let bins = per_second(&samples, 1000, 3000);
        assert_eq!(bins[1].failed["HTTP 502"], 2);
        assert_eq!(
            bins[1].failed["transport: cannot connect (Connection refused)"],
            1
        );
        assert_eq!(bins[1].kind_per_s("HTTP 502"), 2.0);
        assert_eq!(bins[1].kind_per_s("HTTP 503"), 0.0);
        assert_eq!(bins[2].failed.keys().collect::<Vec<_>>(), ["HTTP 503"]);
        assert!(bins[0].failed.is_empty());
    }

    #[test]
    fn latency_is_of_the_requests_sent_in_the_bin_and_absent_when_none_was() {
        // 100 requests sent in 0..1 with latencies 1..=100 ms; one sent at 1.2 s that took
        // 10 s (a timeout, failed): it belongs to 1..2 although it ended much later.
        let mut samples: Vec<Sample> = (1..=100).map(|l| ok(1000 + l, 1000 + 2 * l)).collect();
        samples.push(failed(2200, 12_200, http(504)));
        let bins = per_second(&samples, 1000, 13_000);
        assert_eq!(
            bins[1].latency,
            Some(Percentiles {
                p50_ms: 50,
                p95_ms: 95,
                p99_ms: 99
            })
        );
        assert_eq!(
            bins[2].latency,
            Some(Percentiles {
                p50_ms: 10_000,
                p95_ms: 10_000,
                p99_ms: 10_000
            })
        );
        // Seconds with no request sent in them: no latency, not a latency of 0.
        assert!(bins[0].latency.is_none());
        assert!(bins[3..].iter().all(|b| b.latency.is_none()));
        assert_eq!(bins[12].failed_total(), 1);
    }

    #[test]
    fn the_markers_are_the_fault_clients_served_again_and_verified() {
        let mut r = super::super::fixture::report();
        let at = |r: &Report| -> Vec<(&'static str, i64)> {
            markers(r).iter().map(|m| (m.label, m.at_ms)).collect()
        };
        // nginx: served again with the first success after its first refusal.
        assert_eq!(
            at(&r),
            [("fault", 0), ("recovered", 3501), ("verified", 4300)]
        );
        assert!(markers(&r)[1].meaning.contains("first success"));
        // An instance: when it answered through nginx again, not when it was healthy.
        r.drill = Kind::Instance;
        r.recovery.target = "app-3".into();
        assert_eq!(markers(&r)[1].meaning, "app-3 answered through nginx again");
        // A Redis failover: the sessions back.
        r.drill = Kind::Redis;
        r.recovery.serving_after_ms = None;
        r.recovery.sessions_back_after_ms = Some(6500);
        assert_eq!(at(&r)[1], ("recovered", 6500));
        // Postgres: the drill's own recovery (back, healthy, the load served).
        r.drill = Kind::Postgres;
        r.recovery.sessions_back_after_ms = None;
        assert_eq!(at(&r)[1], ("recovered", 4200));
        // A moment not reached is not marked (on Swarm `drill instance` does not verify).
        r.recovery.recovered_after_ms = None;
        r.recovery.verified_after_ms = None;
        assert_eq!(at(&r), [("fault", 0)]);
    }

    #[test]
    fn a_time_outside_the_load_counts_in_its_nearest_bin() {
        let bins = per_second(&[ok(0, 5000)], 1000, 3000);
        assert_eq!(bins.last().map(|b| b.ok), Some(1));
        assert_eq!(bins[0].latency.map(|l| l.p50_ms), Some(5000));
    }
}
