//! Readiness as data: what "ready" means for a container ([`Readiness`]), one look at it
//! ([`Probe`], the facts the Docker facade returns), and the pure predicate that judges the look
//! ([`assess`]). The waits that poll with it live with their executors.

use std::time::Duration;

use crate::desired::Container;
use crate::observed::{ContainerState, Health};
use crate::probes;

/// How often a wait looks again: well under Docker's own probe interval, so `up` moves on as
/// soon as a service answers rather than at the next scheduled healthcheck.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What "ready" means for a container (docs/design.md §4: startup is ordered by readiness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Running and its healthcheck passes. `test` is the healthcheck command, which the wait
    /// also runs itself (exec) between Docker's probes, so a service that is ready is seen at
    /// once instead of at Docker's next interval. Without a test, Docker's status decides, and
    /// a container with no healthcheck at all counts as ready when running.
    Healthy { test: Option<Vec<String>> },
    /// Docker's own verdict, and only it: healthy by its healthcheck (or running, without
    /// one) — what `docker ps` shows and `docker compose up --wait` waits for. Slower than
    /// [`Readiness::Healthy`] by up to one healthcheck interval, as Docker probes on its own
    /// schedule.
    DockerHealthy,
    /// Running is enough.
    Running,
}

impl Readiness {
    pub fn of(c: &Container) -> Readiness {
        Readiness::Healthy {
            test: c.healthcheck.as_ref().map(|h| h.test.clone()),
        }
    }

    /// The command a look runs itself inside the container, when this readiness has a
    /// healthcheck test to run (see [`Readiness::Healthy`]).
    pub fn exec_argv(&self) -> Option<Vec<String>> {
        match self {
            Readiness::Healthy { test: Some(test) } => probes::healthcheck_argv(test),
            _ => None,
        }
    }
}

/// One look at a container, as the readiness predicate needs it.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub state: ContainerState,
    pub exit_code: Option<i64>,
    pub docker_health: Health,
    /// Output of Docker's last health probe.
    pub docker_probe_output: Option<String>,
    /// Exit code and output of our own run of the healthcheck test, when one was run.
    pub exec: Option<(i64, String)>,
}

impl Probe {
    /// The most recent health-probe output, for error reports.
    pub fn last_output(&self) -> Option<String> {
        self.exec
            .as_ref()
            .map(|(code, out)| format!("exit {code}: {}", out.trim()))
            .or_else(|| self.docker_probe_output.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    NotYet,
    /// Will not become ready by waiting longer.
    Failed(String),
}

/// The readiness predicate: pure, so its cases are unit-tested.
pub fn assess(readiness: &Readiness, p: &Probe) -> Verdict {
    match p.state {
        ContainerState::Running => {}
        ContainerState::Exited | ContainerState::Dead => {
            return Verdict::Failed(format!(
                "the container exited (code {})",
                p.exit_code.unwrap_or(-1)
            ))
        }
        _ => return Verdict::NotYet,
    }
    match readiness {
        Readiness::Running => Verdict::Ready,
        Readiness::DockerHealthy => match p.docker_health {
            Health::Healthy | Health::None => Verdict::Ready,
            Health::Unhealthy => Verdict::Failed("Docker reports it unhealthy".into()),
            Health::Starting => Verdict::NotYet,
        },
        Readiness::Healthy { test } => {
            if p.docker_health == Health::Healthy || matches!(p.exec, Some((0, _))) {
                Verdict::Ready
            } else if p.docker_health == Health::Unhealthy {
                Verdict::Failed("Docker reports it unhealthy".into())
            } else if test.is_none() && p.docker_health == Health::None {
                Verdict::Ready
            } else {
                Verdict::NotYet
            }
        }
    }
}

/// Why a wait failed, with the last probe for the report.
#[derive(Debug)]
pub struct WaitFailure {
    pub why: String,
    pub probe: Probe,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(health: Health) -> Probe {
        Probe {
            state: ContainerState::Running,
            docker_health: health,
            ..Default::default()
        }
    }

    fn healthy_with_test() -> Readiness {
        Readiness::Healthy {
            test: Some(vec!["CMD".into(), "true".into()]),
        }
    }

    #[test]
    fn healthy_by_docker_or_by_our_own_probe() {
        assert_eq!(
            assess(&healthy_with_test(), &running(Health::Healthy)),
            Verdict::Ready
        );
        let mut p = running(Health::Starting);
        assert_eq!(assess(&healthy_with_test(), &p), Verdict::NotYet);
        p.exec = Some((1, "no".into()));
        assert_eq!(assess(&healthy_with_test(), &p), Verdict::NotYet);
        p.exec = Some((0, "ok".into()));
        assert_eq!(assess(&healthy_with_test(), &p), Verdict::Ready);
    }

    #[test]
    fn exited_or_unhealthy_fails_at_once() {
        let p = Probe {
            state: ContainerState::Exited,
            exit_code: Some(3),
            ..Default::default()
        };
        assert!(matches!(
            assess(&healthy_with_test(), &p),
            Verdict::Failed(_)
        ));
        assert!(matches!(
            assess(&healthy_with_test(), &running(Health::Unhealthy)),
            Verdict::Failed(_)
        ));
    }

    #[test]
    fn no_healthcheck_means_running_is_ready() {
        let r = Readiness::Healthy { test: None };
        assert_eq!(assess(&r, &running(Health::None)), Verdict::Ready);
        assert_eq!(assess(&r, &running(Health::Starting)), Verdict::NotYet);
        let created = Probe::default();
        assert_eq!(assess(&Readiness::Running, &created), Verdict::NotYet);
    }

    #[test]
    fn docker_s_verdict_is_docker_s_alone() {
        let r = Readiness::DockerHealthy;
        let mut p = running(Health::Starting);
        // Our own run of the test passing is not Docker's verdict.
        p.exec = Some((0, "ok".into()));
        assert_eq!(assess(&r, &p), Verdict::NotYet);
        assert_eq!(assess(&r, &running(Health::Healthy)), Verdict::Ready);
        assert_eq!(assess(&r, &running(Health::None)), Verdict::Ready);
        assert!(matches!(
            assess(&r, &running(Health::Unhealthy)),
            Verdict::Failed(_)
        ));
        assert_eq!(assess(&r, &Probe::default()), Verdict::NotYet);
    }

    #[test]
    fn only_a_healthcheck_test_is_run_by_a_look() {
        let shell = Readiness::Healthy {
            test: Some(vec!["CMD-SHELL".into(), "pg_isready".into()]),
        };
        assert_eq!(
            shell.exec_argv(),
            Some(vec!["/bin/sh".into(), "-c".into(), "pg_isready".into()])
        );
        assert_eq!(Readiness::Healthy { test: None }.exec_argv(), None);
        assert_eq!(Readiness::DockerHealthy.exec_argv(), None);
        assert_eq!(Readiness::Running.exec_argv(), None);
    }
}
