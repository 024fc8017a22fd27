//! What `top` shows: one [`Screen`] per refresh (the balancer's totals, the data stores' state,
//! one row per instance with its traffic, health, CPU and memory), as a terminal table or as
//! JSON (`top --format json`). Pure: `top` fills it in, this renders it.

use serde::Serialize;

use super::{InstanceTraffic, Percentiles, Totals, Traffic};
use crate::probes::StubStatus;
use crate::ui::Ui;

/// One refresh of `top`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Screen {
    pub project: String,
    /// `single` or `swarm`.
    pub target: String,
    /// When the window ends (UTC, the daemon's clock).
    pub at: String,
    pub window_secs: f64,
    pub balancer: Balancer,
    /// The data stores and the balancer itself: `redis`, `postgres`, Sentinels, `nginx`.
    pub services: Vec<ServiceState>,
    pub instances: Vec<InstanceRow>,
    /// What could not be read, and why (a node not reached, a log driver that cannot be read
    /// back).
    pub notes: Vec<String>,
    /// How long gathering this screen took (ms).
    pub refresh_ms: Option<f64>,
    /// How late nginx's log lines reach `top` (p95, ms): how far behind the live view is.
    pub log_lag_ms: Option<f64>,
}

/// The balancer as a whole.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Balancer {
    /// From its access log, over the window.
    #[serde(flatten)]
    pub totals: Totals,
    /// Its `stub_status` counters now; `None` when they could not be read.
    pub connections: Option<StubStatus>,
}

/// A service's state in a word or two: `running (healthy)`, `2/3 tasks running`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceState {
    pub name: String,
    pub state: String,
    pub ok: bool,
}

/// One instance.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InstanceRow {
    #[serde(flatten)]
    pub traffic: InstanceTraffic,
    /// `healthy`, `unhealthy`, `starting`, `running` (no healthcheck), `exited`, …;
    /// `unknown` for an address no instance has.
    pub health: String,
    /// CPUs in use (1.0 = one core busy); `None` when not measured (another node's task).
    pub cpus: Option<f64>,
    /// Its CPU limit in CPUs, when it has one.
    pub cpu_limit: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}

/// `3.2ms`, `41ms`, `1.25s`; `-` when there is no figure.
fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v < 10.0 => format!("{v:.1}ms"),
        Some(v) if v < 1000.0 => format!("{v:.0}ms"),
        Some(v) => format!("{:.2}s", v / 1000.0),
    }
}

/// `48MiB`, `1.2GiB`.
fn bytes(v: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = v as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.1}GiB", mib / 1024.0)
    } else {
        format!("{mib:.0}MiB")
    }
}

fn latency(p: &Percentiles) -> String {
    format!("p50 {} p95 {} p99 {}", ms(p.p50), ms(p.p95), ms(p.p99))
}

/// `23% of 0.5` (of the limit, which is in CPUs); `0.12 cpu` without a limit.
fn cpu_text(row: &InstanceRow) -> String {
    match (row.cpus, row.cpu_limit) {
        (None, _) => "-".into(),
        (Some(c), Some(limit)) if limit > 0.0 => format!("{:.0}% of {limit}", c / limit * 100.0),
        (Some(c), _) => format!("{c:.2} cpu"),
    }
}

fn memory_text(row: &InstanceRow) -> String {
    match (row.memory_bytes, row.memory_limit_bytes) {
        (None, _) => "-".into(),
        (Some(m), Some(limit)) if limit > 0 => format!(
            "{} of {} ({:.0}%)",
            bytes(m),
            bytes(limit),
            m as f64 / limit as f64 * 100.0
        ),
        (Some(m), _) => bytes(m),
    }
}

impl Screen {
    /// The screen as text: a header of three lines, then the instance table, then the notes.
    pub fn to_text(&self, ui: &Ui) -> String {
        let t = &self.balancer.totals;
        let mut out = format!(
            "{} · {} · {} · last {:.0} s\n",
            ui.bold(&format!("radar-deploy top: {}", self.project)),
            self.target,
            self.at,
            self.window_secs
        );
        let mut balancer = format!(
            "nginx      {:.1} req/s · 4xx {} · 5xx {} · retried {} · {}",
            t.per_sec,
            t.status_4xx,
            t.status_5xx,
            t.retried,
            latency(&t.request_ms)
        );
        if let Some(c) = &self.balancer.connections {
            balancer.push_str(&format!(
                " · connections {} (reading {}, writing {}, idle {})",
                c.active, c.reading, c.writing, c.waiting
            ));
        }
        out.push_str(&balancer);
        out.push('\n');
        let services: Vec<String> = self
            .services
            .iter()
            .map(|s| {
                let text = format!("{} {}", s.name, s.state);
                if s.ok {
                    text
                } else {
                    ui.red(&text)
                }
            })
            .collect();
        out.push_str(&format!("services   {}\n", services.join(" · ")));
        if let Some(r) = self.refresh_ms {
            let lag = self.log_lag_ms.map_or(String::new(), |l| {
                format!(" · log lines {} late (p95)", ms(Some(l)))
            });
            out.push_str(&format!("top        refreshed in {}{lag}\n", ms(Some(r))));
        }
        out.push('\n');
        out.push_str(&ui.bold(&format!(
            "{:<16} {:<10} {:>8} {:>6} {:>7} {:>7} {:>7} {:>5} {:>5} {:>5} {:>5} {:>6}  {:<12} {}",
            "INSTANCE",
            "HEALTH",
            "REQ/S",
            "SHARE",
            "P50",
            "P95",
            "P99",
            "4XX",
            "5XX",
            "FAIL",
            "RETRY",
            "INFLT",
            "CPU",
            "MEMORY"
        )));
        out.push('\n');
        for row in &self.instances {
            let r = &row.traffic;
            let health = format!("{:<10}", row.health);
            let health = match row.health.as_str() {
                "healthy" | "running" => ui.green(&health),
                "starting" => ui.yellow(&health),
                _ => ui.red(&health),
            };
            let line = format!(
                "{:<16} {} {:>8.1} {:>5.0}% {:>7} {:>7} {:>7} {:>5} {:>5} {:>5} {:>5} {:>6.1}  {:<12} {}",
                r.name,
                health,
                r.per_sec,
                r.share * 100.0,
                ms(r.upstream_ms.p50),
                ms(r.upstream_ms.p95),
                ms(r.upstream_ms.p99),
                r.status_4xx,
                r.status_5xx,
                r.failures,
                r.retried,
                r.in_flight,
                cpu_text(row),
                memory_text(row)
            );
            out.push_str(&line);
            out.push('\n');
        }
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

/// `status`'s last minute: the balancer's line, then one line per instance.
pub fn last_minute_text(t: &Traffic) -> String {
    let totals = &t.totals;
    let mut out = format!(
        "Last minute (nginx's log): {:.1} req/s · 4xx {} · 5xx {} · retried {} · {}\n",
        totals.per_sec,
        totals.status_4xx,
        totals.status_5xx,
        totals.retried,
        latency(&totals.request_ms)
    );
    for i in &t.instances {
        out.push_str(&format!(
            "  {:<16} {:>8.1} req/s {:>4.0}%  {}  5xx {}  failed {}\n",
            i.name,
            i.per_sec,
            i.share * 100.0,
            latency(&i.upstream_ms),
            i.status_5xx,
            i.failures
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen() -> Screen {
        let row = |name: &str, per_sec: f64, p95: f64, s5: u64| InstanceRow {
            traffic: InstanceTraffic {
                name: name.into(),
                requests: (per_sec * 10.0) as u64,
                per_sec,
                share: per_sec / 300.0,
                upstream_ms: Percentiles {
                    p50: Some(p95 / 2.0),
                    p95: Some(p95),
                    p99: Some(p95 * 1.5),
                },
                status_4xx: 0,
                status_5xx: s5,
                failures: 0,
                retried: 0,
                in_flight: per_sec * p95 / 2000.0,
            },
            health: "healthy".into(),
            cpus: Some(0.12),
            cpu_limit: Some(0.5),
            memory_bytes: Some(12 * 1024 * 1024),
            memory_limit_bytes: Some(256 * 1024 * 1024),
        };
        Screen {
            project: "demo".into(),
            target: "single".into(),
            at: "2026-12-03 01:00:00 UTC".into(),
            window_secs: 10.0,
            balancer: Balancer {
                totals: Totals {
                    requests: 3000,
                    per_sec: 300.0,
                    status_4xx: 0,
                    status_5xx: 1000,
                    without_upstream: 0,
                    retried: 2,
                    request_ms: Percentiles {
                        p50: Some(3.0),
                        p95: Some(310.0),
                        p99: Some(1250.0),
                    },
                },
                connections: Some(StubStatus {
                    active: 9,
                    accepts: 100,
                    handled: 100,
                    requests: 5000,
                    reading: 0,
                    writing: 3,
                    waiting: 6,
                }),
            },
            services: vec![
                ServiceState {
                    name: "postgres".into(),
                    state: "running (healthy)".into(),
                    ok: true,
                },
                ServiceState {
                    name: "redis".into(),
                    state: "running (healthy)".into(),
                    ok: true,
                },
            ],
            instances: vec![
                row("app-1", 100.0, 4.2, 0),
                row("app-2", 100.0, 300.0, 0),
                row("app-3", 100.0, 3.0, 1000),
            ],
            notes: vec!["app-4 runs on node n2, not the daemon reached: no CPU or memory".into()],
            refresh_ms: Some(38.2),
            log_lag_ms: Some(4.1),
        }
    }

    #[test]
    fn the_screen_as_text() {
        insta::assert_snapshot!(screen().to_text(&Ui::new(true, true, 0)));
    }

    #[test]
    fn the_screen_as_json() {
        insta::assert_snapshot!(screen().to_json().unwrap());
    }
}
