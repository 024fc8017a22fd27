//! A drill report made up for tests: `drill nginx` on a 12 s load, nginx refusing connections
//! for 3.5 s after the fault, then slow for a second. Deterministic: the snapshots of the
//! pictures are drawn from it.

use super::stats::{self, Failure, Gap, Sample};
use super::{series, Event, Kind, LoadSummary, Recovery, Report, SessionSummary};

pub const FAULT_AT_MS: u64 = 2000;
const DURATION_MS: u64 = 12_000;
const CLIENTS: usize = 4;

pub fn samples() -> Vec<Sample> {
    let mut v = vec![];
    for client in 0..CLIENTS {
        let mut t = 5 * client as u64;
        let mut i = 0u64;
        while t < DURATION_MS - 30 {
            let since_fault = t as i64 - FAULT_AT_MS as i64;
            let (latency, result) = match since_fault {
                0..=2999 => (
                    1,
                    Err(Failure::Transport {
                        reason: "cannot connect (Connection refused)".into(),
                    }),
                ),
                3000..=3499 => (
                    4,
                    Err(Failure::Status {
                        status: 502,
                        body: "bad gateway".into(),
                    }),
                ),
                3500..=4499 => (40 + i % 20, Ok(Some(format!("app-{}", 1 + i % 3)))),
                _ => (2 + i % 5, Ok(Some(format!("app-{}", 1 + i % 3)))),
            };
            // One request caught by the restart: answered 2 s later.
            let latency = if client == 0 && since_fault == 3500 {
                2000
            } else {
                latency
            };
            v.push(Sample {
                client,
                path: "/health/backend".into(),
                sent_ms: t,
                done_ms: t + latency,
                result,
            });
            t += latency + 25;
            i += 1;
        }
    }
    v
}

pub fn report() -> Report {
    let samples = samples();
    let window = (0, DURATION_MS);
    let (client_gaps, longest_gap) = stats::gaps(&samples, CLIENTS, window);
    let failures = stats::failures(&samples);
    let succeeded = samples.iter().filter(|s| s.ok()).count() as u64;
    let at = |ms: u64, what: &str| Event {
        at_ms: FAULT_AT_MS + ms,
        what: what.into(),
    };
    Report {
        drill: Kind::Nginx,
        project: "reporadar".into(),
        url: "http://localhost:8080".into(),
        passed: false,
        fault: "nginx (reporadar-nginx-1) killed with SIGKILL".into(),
        fault_at_ms: FAULT_AT_MS,
        load: LoadSummary {
            clients: CLIENTS,
            paths: vec!["/health/backend".into()],
            duration_ms: DURATION_MS,
            requests: samples.len() as u64,
            succeeded,
            requests_per_second: 150.5,
            resent_on_new_connection: 0,
        },
        latency: stats::latency(&samples),
        failures,
        longest_gap,
        client_gaps,
        session: SessionSummary {
            requests: 0,
            longest_gap: Gap::default(),
            integrity: stats::session_integrity(&[]),
            client_sessions_checked: 0,
            client_sessions_intact: 0,
        },
        recovery: Recovery {
            target: "nginx".into(),
            first_error_after_ms: Some(1),
            down_after_ms: Some(150),
            healthy_after_ms: Some(4100),
            serving_after_ms: Some(3501),
            recovered_after_ms: Some(4200),
            verified_after_ms: Some(4300),
            time_to_full_health_ms: Some(4200),
            ..Default::default()
        },
        timeline: vec![
            Event {
                at_ms: 0,
                what: "load started: 4 clients + 1 session client".into(),
            },
            at(0, "nginx killed (SIGKILL)"),
            at(1, "first failed request"),
            at(3501, "serving again"),
            at(4300, "verified: all healthy"),
            Event {
                at_ms: DURATION_MS,
                what: "load stopped".into(),
            },
        ],
        budgets: vec![stats::judge_outage(
            "longest gap (any client)",
            longest_gap,
            3000,
        )],
        series: series::per_second(&samples, FAULT_AT_MS, DURATION_MS),
        notes: vec!["a note with <markup> & \"quotes\"".into()],
        interrupted: false,
    }
}
