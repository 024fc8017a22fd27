//! Pure judgement of a drill: what the load generator saw (samples with times relative to the
//! start of the load) turned into figures — failures by kind, the longest gap without a
//! successful response, latency percentiles, a session counter's integrity — and the figures
//! held against the budgets. No clock, no network: every rule here is unit-tested.

use std::collections::BTreeMap;

use serde::Serialize;

/// Why one request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Failure {
    /// An HTTP answer other than 2xx.
    Status { status: u16, body: String },
    /// No HTTP answer at all (refused, reset, timeout).
    Transport { reason: String },
}

impl Failure {
    /// The kind failures are counted by: `HTTP 502`, `transport: cannot connect (…)`.
    pub fn kind(&self) -> String {
        match self {
            Failure::Status { status, .. } => format!("HTTP {status}"),
            Failure::Transport { reason } => format!("transport: {reason}"),
        }
    }
}

/// One request of the load, times in milliseconds since the load started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Which client sent it (0-based).
    pub client: usize,
    pub path: String,
    pub sent_ms: u64,
    pub done_ms: u64,
    /// `Ok(instance that served it, when the body names one)`.
    pub result: Result<Option<String>, Failure>,
}

impl Sample {
    pub fn ok(&self) -> bool {
        self.result.is_ok()
    }

    pub fn latency_ms(&self) -> u64 {
        self.done_ms.saturating_sub(self.sent_ms)
    }
}

/// A span without any successful response, in milliseconds since the load started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub ms: u64,
    pub from_ms: u64,
    pub to_ms: u64,
}

/// The longest span inside `window` (start, end) without a success. `successes` are the times
/// successful responses arrived; the window's edges count as boundaries, so a client that
/// never succeeded has a gap as long as the whole window.
pub fn longest_gap(successes: &[u64], window: (u64, u64)) -> Gap {
    let (start, end) = window;
    let mut times: Vec<u64> = successes
        .iter()
        .copied()
        .filter(|t| (start..=end).contains(t))
        .collect();
    times.sort_unstable();
    let mut best = Gap::default();
    let mut prev = start;
    for t in times.into_iter().chain(std::iter::once(end)) {
        if t - prev > best.ms {
            best = Gap {
                ms: t - prev,
                from_ms: prev,
                to_ms: t,
            };
        }
        prev = t;
    }
    best
}

/// The longest gap each client saw (indexed by client), and the longest span in which no
/// client at all got a successful response. A client's clock starts at its first answer:
/// opening a connection is not an outage, but a first answer that is a failure starts a gap.
pub fn gaps(samples: &[Sample], clients: usize, window: (u64, u64)) -> (Vec<Gap>, Gap) {
    let mut per_client: Vec<(Option<u64>, Vec<u64>)> = vec![(None, vec![]); clients];
    let mut all = vec![];
    let mut first_any: Option<u64> = None;
    for s in samples {
        let first = |f: Option<u64>| Some(f.map_or(s.done_ms, |f| f.min(s.done_ms)));
        first_any = first(first_any);
        if let Some((f, times)) = per_client.get_mut(s.client) {
            *f = first(*f);
            if s.ok() {
                times.push(s.done_ms);
            }
        }
        if s.ok() {
            all.push(s.done_ms);
        }
    }
    let from = |f: Option<u64>| f.unwrap_or(window.0).max(window.0);
    let each = per_client
        .iter()
        .map(|(f, t)| longest_gap(t, (from(*f), window.1)))
        .collect();
    (each, longest_gap(&all, (from(first_any), window.1)))
}

/// Nearest-rank percentile (`p` in 0..=100) of `sorted` values; 0 for no values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    crate::traffic::percentile(sorted, p).unwrap_or(0)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub p50_ms: u64,
    pub p90_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

/// Latency of every request, failed ones included: a request that failed after 10 s cost its
/// user 10 s.
pub fn latency(samples: &[Sample]) -> Latency {
    let mut v: Vec<u64> = samples.iter().map(Sample::latency_ms).collect();
    v.sort_unstable();
    Latency {
        p50_ms: percentile(&v, 50.0),
        p90_ms: percentile(&v, 90.0),
        p99_ms: percentile(&v, 99.0),
        max_ms: v.last().copied().unwrap_or(0),
    }
}

/// One failed request, kept as evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureExample {
    pub client: usize,
    pub path: String,
    pub at_ms: u64,
    pub failure: Failure,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Failures {
    pub total: u64,
    /// Count per kind (`HTTP 502`, `transport: …`).
    pub by_kind: BTreeMap<String, u64>,
    /// The first few, in the order they happened.
    pub examples: Vec<FailureExample>,
}

pub const MAX_EXAMPLES: usize = 5;

pub fn failures(samples: &[Sample]) -> Failures {
    let mut failed: Vec<(&Sample, &Failure)> = samples
        .iter()
        .filter_map(|s| s.result.as_ref().err().map(|f| (s, f)))
        .collect();
    failed.sort_by_key(|(s, _)| (s.done_ms, s.client));
    let mut f = Failures {
        total: failed.len() as u64,
        ..Default::default()
    };
    for (s, failure) in &failed {
        *f.by_kind.entry(failure.kind()).or_insert(0) += 1;
        if f.examples.len() < MAX_EXAMPLES {
            f.examples.push(FailureExample {
                client: s.client,
                path: s.path.clone(),
                at_ms: s.done_ms,
                failure: (*failure).clone(),
            });
        }
    }
    f
}

/// One successful `/api/session` answer as the session check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionObservation {
    pub at_ms: u64,
    pub session_id: String,
    pub views: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SessionIntegrity {
    pub answers: u64,
    pub first_views: i64,
    pub last_views: i64,
    /// Times the counter rose by more than one: a request that reached Redis but whose answer
    /// was lost (harmless, reported for completeness).
    pub skipped: u64,
    pub intact: bool,
    /// The first violation: the counter went back or restarted, or the session changed.
    pub problem: Option<String>,
}

/// A session is intact when one cookie jar keeps one session id and its counter never goes
/// back (a reset to 1 is going back). Gaps forward are allowed: a failed request may have
/// counted in Redis before its answer was lost.
pub fn session_integrity(obs: &[SessionObservation]) -> SessionIntegrity {
    let mut r = SessionIntegrity {
        answers: obs.len() as u64,
        intact: true,
        ..Default::default()
    };
    let Some(first) = obs.first() else {
        r.intact = false;
        r.problem = Some("no successful /api/session answer at all".into());
        return r;
    };
    r.first_views = first.views;
    r.last_views = first.views;
    for pair in obs.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        r.last_views = b.views;
        if r.problem.is_some() {
            continue;
        }
        if b.session_id != a.session_id {
            r.problem = Some(format!(
                "at +{}: the session changed ({} → {}, counter {} → {}): the session was lost",
                secs(b.at_ms),
                short_id(&a.session_id),
                short_id(&b.session_id),
                a.views,
                b.views
            ));
        } else if b.views <= a.views {
            r.problem = Some(format!(
                "at +{}: the counter went back from {} to {}{}",
                secs(b.at_ms),
                a.views,
                b.views,
                if b.views == 1 {
                    " (reset: the session's data was lost)"
                } else {
                    " (writes were lost)"
                }
            ));
        } else if b.views > a.views + 1 {
            r.skipped += 1;
        }
    }
    r.intact = r.problem.is_none();
    r
}

fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

/// Milliseconds as seconds with two decimals (`2.05 s`).
pub fn secs(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

/// One budget held against its measured figure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub name: String,
    /// The figure, as shown to a person.
    pub measured: String,
    /// The limit, as shown to a person.
    pub budget: String,
    pub passed: bool,
}

/// At most `max` failed requests.
pub fn judge_failed(failed: u64, max: u64) -> Verdict {
    Verdict {
        name: "failed requests".into(),
        measured: failed.to_string(),
        budget: format!("≤ {max}"),
        passed: failed <= max,
    }
}

/// At most `max_ms` without a successful answer (`what` names whose answers).
pub fn judge_outage(what: &str, gap: Gap, max_ms: u64) -> Verdict {
    Verdict {
        name: what.into(),
        measured: secs(gap.ms),
        budget: format!("≤ {}", secs(max_ms)),
        passed: gap.ms <= max_ms,
    }
}

/// Full health came back, and when (None: not before the deadline).
pub fn judge_recovery(what: &str, after_ms: Option<u64>, deadline_ms: u64) -> Verdict {
    Verdict {
        name: what.into(),
        measured: after_ms.map_or_else(|| "not reached".into(), secs),
        budget: format!("≤ {} (--timeout)", secs(deadline_ms)),
        passed: after_ms.is_some_and(|t| t <= deadline_ms),
    }
}

pub fn judge_session(s: &SessionIntegrity) -> Verdict {
    Verdict {
        name: "session counter intact".into(),
        measured: match &s.problem {
            None => format!(
                "{} → {} over {} answers, never back",
                s.first_views, s.last_views, s.answers
            ),
            Some(p) => p.clone(),
        },
        budget: "never back, never reset".into(),
        passed: s.intact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(client: usize, sent: u64, done: u64, ok: bool) -> Sample {
        Sample {
            client,
            path: "/health/backend".into(),
            sent_ms: sent,
            done_ms: done,
            result: if ok {
                Ok(Some("app-1".into()))
            } else {
                Err(Failure::Status {
                    status: 502,
                    body: "bad gateway".into(),
                })
            },
        }
    }

    #[test]
    fn longest_gap_is_between_successes_and_counts_the_window_edges() {
        assert_eq!(
            longest_gap(&[100, 200, 900, 1000], (0, 1000)),
            Gap {
                ms: 700,
                from_ms: 200,
                to_ms: 900
            }
        );
        // Nothing yet at the start, or nothing any more at the end, is a gap too.
        assert_eq!(longest_gap(&[800], (0, 1000)).ms, 800);
        assert_eq!(
            longest_gap(&[50], (0, 1000)),
            Gap {
                ms: 950,
                from_ms: 50,
                to_ms: 1000
            }
        );
        // No success at all: the whole window.
        assert_eq!(longest_gap(&[], (100, 600)).ms, 500);
        // Order does not matter; successes outside the window do not count.
        assert_eq!(longest_gap(&[900, 100, 5000], (0, 1000)).ms, 800);
    }

    #[test]
    fn gaps_per_client_and_overall() {
        let samples = vec![
            sample(0, 0, 100, true),
            sample(0, 100, 600, false),
            sample(0, 600, 700, true),
            sample(1, 0, 300, true),
            sample(1, 300, 1000, true),
        ];
        let (each, overall) = gaps(&samples, 3, (0, 1000));
        assert_eq!(each[0].ms, 600); // 100 → 700
        assert_eq!(each[1].ms, 700); // 300 → 1000
        assert_eq!(each[2].ms, 1000); // never even answered
        assert_eq!(
            overall,
            Gap {
                ms: 400,
                from_ms: 300,
                to_ms: 700
            }
        );
    }

    #[test]
    fn a_clients_clock_starts_at_its_first_answer() {
        // A slow first connection is not an outage...
        let slow_start = vec![sample(0, 0, 800, true), sample(0, 800, 900, true)];
        assert_eq!(gaps(&slow_start, 1, (0, 1000)).0[0].ms, 100);
        // ...but failing from the first answer on is.
        let failing = vec![sample(0, 0, 10, false), sample(0, 10, 900, true)];
        assert_eq!(
            gaps(&failing, 1, (0, 1000)).0[0],
            Gap {
                ms: 890,
                from_ms: 10,
                to_ms: 900
            }
        );
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 90.0), 90);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
        let l = latency(&[sample(0, 0, 10, true), sample(0, 10, 2010, false)]);
        assert_eq!((l.p50_ms, l.max_ms), (10, 2000));
    }

    #[test]
    fn failures_are_counted_by_kind_with_the_first_examples() {
        let mut samples = vec![sample(0, 0, 10, true)];
        for i in 0..7 {
            samples.push(sample(1, 20 + i, 30 + i, false));
        }
        samples.push(Sample {
            result: Err(Failure::Transport {
                reason: "cannot connect (Connection refused)".into(),
            }),
            ..sample(2, 0, 5, false)
        });
        let f = failures(&samples);
        assert_eq!(f.total, 8);
        assert_eq!(f.by_kind["HTTP 502"], 7);
        assert_eq!(
            f.by_kind["transport: cannot connect (Connection refused)"],
            1
        );
        assert_eq!(f.examples.len(), MAX_EXAMPLES);
        // In the order they happened: the transport error came first.
        assert_eq!(f.examples[0].client, 2);
        assert_eq!(f.examples[1].at_ms, 30);
        assert_eq!(failures(&[sample(0, 0, 1, true)]), Failures::default());
    }

    fn obs(at: u64, id: &str, views: i64) -> SessionObservation {
        SessionObservation {
            at_ms: at,
            session_id: id.into(),
            views,
        }
    }

    #[test]
    fn a_session_counter_that_rises_or_skips_is_intact() {
        let s = session_integrity(&[obs(0, "a", 1), obs(1, "a", 2), obs(2, "a", 5)]);
        assert!(s.intact, "{s:?}");
        assert_eq!((s.first_views, s.last_views, s.skipped), (1, 5, 1));
        assert!(judge_session(&s).passed);
    }

    #[test]
    fn a_counter_that_goes_back_resets_or_changes_session_is_not_intact() {
        let back = session_integrity(&[obs(0, "a", 4), obs(1500, "a", 3)]);
        assert!(!back.intact);
        assert!(back.problem.unwrap().contains("went back from 4 to 3"));
        let reset = session_integrity(&[obs(0, "a", 4), obs(1, "a", 1)]);
        assert!(reset.problem.unwrap().contains("reset"));
        let same = session_integrity(&[obs(0, "a", 4), obs(1, "a", 4)]);
        assert!(!same.intact);
        let changed = session_integrity(&[obs(0, "abcdefghij", 4), obs(1, "zzz", 1)]);
        assert!(changed.problem.unwrap().contains("abcdefgh → zzz"));
        let none = session_integrity(&[]);
        assert!(!none.intact);
        assert!(!judge_session(&none).passed);
    }

    #[test]
    fn budgets_pass_at_the_limit_and_fail_beyond_it() {
        assert!(judge_failed(0, 0).passed);
        assert!(!judge_failed(1, 0).passed);
        assert_eq!(judge_failed(3, 5).budget, "≤ 5");
        let gap = |ms| Gap {
            ms,
            from_ms: 0,
            to_ms: ms,
        };
        assert!(judge_outage("session outage", gap(7000), 7000).passed);
        let v = judge_outage("session outage", gap(7001), 7000);
        assert!(!v.passed);
        assert_eq!(
            (v.measured.as_str(), v.budget.as_str()),
            ("7.00 s", "≤ 7.00 s")
        );
        assert!(judge_recovery("full health", Some(1200), 60_000).passed);
        let never = judge_recovery("full health", None, 60_000);
        assert!(!never.passed);
        assert_eq!(never.measured, "not reached");
    }
}
