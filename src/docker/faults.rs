//! What the fault drills need of Docker beyond the deployment's own calls: a container's
//! restart count, start time, OOM flag and address (to tell a crash, an OOM kill and a
//! reconnect from each other), and cutting a container off its network and back.

use bollard::models::{EndpointSettings, NetworkConnectRequest, NetworkDisconnectRequest};
use bollard::query_parameters::InspectContainerOptions;

use super::{DockerClient, DockerError, Result};
use crate::observed::Health;

/// One look at a container's state, as `docker inspect` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFacts {
    pub running: bool,
    /// Docker's status word: running, restarting, exited, …
    pub status: String,
    pub restart_count: i64,
    /// When the current (or last) process started, as Docker reports it (RFC 3339).
    pub started_at: String,
    /// The kernel's OOM killer ended the last process (reset by Docker when it starts again).
    pub oom_killed: bool,
    pub exit_code: Option<i64>,
    pub health: Health,
    /// Its memory limit in bytes (0: none).
    pub memory_limit: i64,
    /// Its address on each network it is attached to, by network name.
    pub addresses: Vec<(String, String)>,
}

impl ContainerFacts {
    pub fn address_on(&self, network: &str) -> Option<&str> {
        self.addresses
            .iter()
            .find(|(n, _)| n == network)
            .map(|(_, a)| a.as_str())
    }
}

impl DockerClient {
    pub async fn container_facts(&self, container: &str) -> Result<ContainerFacts> {
        let info = self
            .docker
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
            .map_err(|e| DockerError::from_bollard("container", container, e))?;
        let state = info.state.unwrap_or_default();
        let health = match state.health.and_then(|h| h.status) {
            Some(bollard::models::HealthStatusEnum::HEALTHY) => Health::Healthy,
            Some(bollard::models::HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
            Some(bollard::models::HealthStatusEnum::STARTING) => Health::Starting,
            _ => Health::None,
        };
        let addresses = info
            .network_settings
            .and_then(|n| n.networks)
            .map(|nets| {
                let mut v: Vec<(String, String)> = nets
                    .into_iter()
                    .map(|(name, ep)| (name, ep.ip_address.unwrap_or_default()))
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default();
        let memory_limit = info.host_config.and_then(|h| h.memory).unwrap_or(0);
        Ok(ContainerFacts {
            memory_limit,
            running: state.running.unwrap_or(false),
            status: state.status.map(|s| s.to_string()).unwrap_or_default(),
            restart_count: info.restart_count.unwrap_or(0),
            started_at: state.started_at.unwrap_or_default(),
            oom_killed: state.oom_killed.unwrap_or(false),
            exit_code: state.exit_code,
            health,
            addresses,
        })
    }

    /// Detaches a container from a network (`docker network disconnect --force`): it loses
    /// its address there and reaches nothing on it.
    pub async fn disconnect_network(&self, network: &str, container: &str) -> Result<()> {
        self.docker
            .disconnect_network(
                network,
                NetworkDisconnectRequest {
                    container: container.into(),
                    force: Some(true),
                },
            )
            .await
            .map_err(|e| DockerError::from_bollard("network", network, e))
    }

    /// Attaches a container to a network again under its aliases (`docker network connect
    /// --alias …`).
    pub async fn connect_network(
        &self,
        network: &str,
        container: &str,
        aliases: &[String],
    ) -> Result<()> {
        self.docker
            .connect_network(
                network,
                NetworkConnectRequest {
                    container: container.into(),
                    endpoint_config: Some(EndpointSettings {
                        aliases: Some(aliases.to_vec()),
                        ..Default::default()
                    }),
                },
            )
            .await
            .map_err(|e| DockerError::from_bollard("network", network, e))
    }
}
