//! What `top` and `status` read of a running deployment: nginx's access log from a point in
//! time (a container's or a Swarm task's stdout), a container's resource samples (the stats
//! API, one or as a stream), and the daemon's clock, which the log's times are on.

use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::{LogsOptions, LogsOptionsBuilder, StatsOptionsBuilder};
use futures_util::{Stream, StreamExt};

use super::{DockerClient, DockerError, LogLine, Result};
use crate::observed::UsageSample;

/// stdout from `since_unix` on; `None`: only the lines written from now on (`tail=0`, which the
/// daemon serves without scanning the log file from its start, as `since` makes it do).
fn stdout_since(since_unix: Option<i64>, follow: bool) -> LogsOptions {
    let b = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(false)
        .follow(follow);
    match since_unix {
        Some(since) => b.since(i32::try_from(since.max(0)).unwrap_or(i32::MAX)),
        None => b.tail("0"),
    }
    .build()
}

impl DockerClient {
    /// A container's stdout from `since_unix` (seconds, the daemon's clock; `None`: from now)
    /// on, as lines; with `follow`, then every new line until the container stops.
    pub fn stdout_since(
        &self,
        container: &str,
        since_unix: Option<i64>,
        follow: bool,
    ) -> impl Stream<Item = Result<LogLine>> + Send + 'static {
        self.container_log_lines(container, stdout_since(since_unix, follow))
    }

    /// A Swarm task's stdout from `since_unix` on, wherever the task runs (asked of a manager).
    pub fn task_stdout_since(
        &self,
        task_id: &str,
        since_unix: Option<i64>,
        follow: bool,
    ) -> impl Stream<Item = Result<LogLine>> + Send + 'static {
        self.task_log_lines(task_id, stdout_since(since_unix, follow))
    }

    /// One sample of a container's CPU and memory counters, without waiting for a second one
    /// (`one-shot`): the CPU share is the difference of two samples.
    pub async fn usage(&self, container: &str) -> Result<UsageSample> {
        let opts = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let mut stats = Box::pin(self.docker.stats(container, Some(opts)));
        match stats.next().await {
            Some(Ok(s)) => Ok(sample_of(s)),
            Some(Err(e)) => Err(DockerError::from_bollard("container", container, e)),
            None => Err(DockerError::Other {
                kind: "container",
                name: container.to_string(),
                message: "the daemon sent no stats sample".into(),
            }),
        }
    }

    /// A container's samples as the daemon sends them (one a second) until it stops, as
    /// `docker stats` reads them: a live view takes the latest at once, where a one-shot ask
    /// can wait up to a second for the daemon's collector once a container is watched.
    pub fn usage_stream(
        &self,
        container: &str,
    ) -> impl Stream<Item = Result<UsageSample>> + Send + 'static {
        let opts = StatsOptionsBuilder::default().stream(true).build();
        let name = container.to_string();
        self.docker.stats(container, Some(opts)).map(move |s| {
            s.map(sample_of)
                .map_err(|e| DockerError::from_bollard("container", &name, e))
        })
    }

    /// The daemon's clock, in milliseconds since the Unix epoch (`docker info`'s SystemTime):
    /// nginx's log times are on it, and a remote daemon's may differ from this machine's.
    pub async fn daemon_clock_ms(&self) -> Result<Option<i64>> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| DockerError::from_bollard("daemon", &self.endpoint.host, e))?;
        Ok(info.system_time.as_deref().and_then(parse_rfc3339_ms))
    }
}

/// The counters `top` shows, from one stats answer.
fn sample_of(s: ContainerStatsResponse) -> UsageSample {
    let cpu = s.cpu_stats.unwrap_or_default();
    let memory = s.memory_stats.unwrap_or_default();
    // As `docker stats` does: cgroup v2 reports the reclaimable cache as inactive_file,
    // v1 as total_inactive_file.
    let cache = memory
        .stats
        .as_ref()
        .and_then(|m| {
            m.get("inactive_file")
                .or_else(|| m.get("total_inactive_file"))
        })
        .copied()
        .unwrap_or(0);
    UsageSample {
        cpu_total_ns: cpu.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0),
        system_ns: cpu.system_cpu_usage.unwrap_or(0),
        online_cpus: cpu.online_cpus.unwrap_or(0),
        memory_bytes: memory.usage.unwrap_or(0).saturating_sub(cache),
        memory_limit_bytes: memory.limit.unwrap_or(0),
    }
}

/// `2026-12-03T00:55:12.123456789Z` (or with an offset) → milliseconds since the epoch.
fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemons_clock_is_read_with_nanoseconds_and_offsets() {
        assert_eq!(
            parse_rfc3339_ms("2026-12-03T00:55:12.123456789Z"),
            Some(1_796_259_312_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-12-03T01:55:12.5+01:00"),
            Some(1_796_259_312_500)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }
}
