//! What `drill daemon` asks of the daemon around its restart: is it there, does it keep its
//! containers through a restart (live-restore), the moment its connection goes away.

use std::collections::HashMap;

use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;

use super::{DockerClient, DockerError, Result};

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
