//! What `drill daemon` asks of the daemon around its restart: is it there, does it keep its
//! containers through a restart (live-restore), did a container start again and how often its
//! restart policy restarted it, and the moment its connection goes away.

use std::collections::HashMap;

use bollard::query_parameters::{EventsOptionsBuilder, InspectContainerOptions};
use futures_util::StreamExt;

use super::{DockerClient, DockerError, Result};

/// A container's life as the daemon tells it: when it last started and what brings it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLife {
    pub running: bool,
    /// Docker's `StartedAt`: changes whenever the container starts again.
    pub started_at: String,
    /// `no`, `always`, `unless-stopped`, `on-failure` (empty counts as `no`).
    pub restart_policy: String,
    /// Restarts by its restart policy since the daemon started (Docker resets it with the
    /// daemon).
    pub restart_count: i64,
    /// Its healthcheck's test as Docker holds it (`["CMD", …]`, `["CMD-SHELL", "…"]`), so the
    /// drill can run it itself when Docker's own verdict is stale.
    pub healthcheck: Option<Vec<String>>,
}

impl ContainerLife {
    /// Whether the daemon starts it again after its own restart: `always`, and
    /// `unless-stopped` (a stop by the daemon's shutdown is not a manual stop).
    pub fn policy_restarts_after_daemon_restart(&self) -> bool {
        matches!(self.restart_policy.as_str(), "always" | "unless-stopped")
    }
}

impl DockerClient {
    /// Whether the daemon answers at all (`GET /_ping`).
    pub async fn ping(&self) -> Result<()> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| DockerError::Unreachable {
                endpoint: self.endpoint.describe(),
                detail: e.to_string(),
                fix: "wait for the daemon, or start it".into(),
            })
    }

    /// `docker info`'s LiveRestoreEnabled: the daemon keeps containers running while it
    /// restarts.
    pub async fn live_restore(&self) -> Result<bool> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| DockerError::Unreachable {
                endpoint: self.endpoint.describe(),
                detail: e.to_string(),
                fix: "check that the daemon answers (`docker info`)".into(),
            })?;
        Ok(info.live_restore_enabled.unwrap_or(false))
    }

    pub async fn container_life(&self, container: &str) -> Result<ContainerLife> {
        let info = self
            .docker
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
            .map_err(|e| DockerError::from_bollard("container", container, e))?;
        let state = info.state.unwrap_or_default();
        let policy = info
            .host_config
            .and_then(|h| h.restart_policy)
            .and_then(|p| p.name)
            .map(|n| n.to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "no".into());
        Ok(ContainerLife {
            running: state.running.unwrap_or(false),
            started_at: state.started_at.unwrap_or_default(),
            restart_policy: policy,
            restart_count: info.restart_count.unwrap_or(0),
            healthcheck: info
                .config
                .and_then(|c| c.healthcheck)
                .and_then(|h| h.test)
                .filter(|t| !t.is_empty()),
        })
    }

    /// Resolves when the daemon's event stream ends: the daemon went away (or the connection
    /// to it broke). Only daemon events are asked for, so the stream is silent until then;
    /// even a restart too quick for a poll to see closes it.
    pub async fn until_disconnected(&self) {
        let filters = HashMap::from([("type", vec!["daemon"])]);
        let opts = EventsOptionsBuilder::default().filters(&filters).build();
        let mut events = self.docker.events(Some(opts));
        while let Some(e) = events.next().await {
            if e.is_err() {
                return;
            }
        }
    }
}
