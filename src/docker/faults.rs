//! One inspection of a container as the operations beyond a deploy need it: its restart
//! count, start time, OOM flag and addresses (the drills tell a crash, an OOM kill and a
//! reconnect apart with them), its restart policy and healthcheck (`drill daemon`), the host
//! ports it is configured to publish (`up`'s port check); and cutting it off its network and
//! back.

use bollard::models::{EndpointSettings, NetworkConnectRequest, NetworkDisconnectRequest};

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
    /// Its CPU limit in billionths of a CPU (0: none).
    pub nano_cpus: i64,
    /// Its address on each network it is attached to, by network name.
    pub addresses: Vec<(String, String)>,
    /// `no`, `always`, `unless-stopped`, `on-failure` (empty counts as `no`).
    pub restart_policy: String,
    /// Its healthcheck's test as Docker holds it (`["CMD", …]`, `["CMD-SHELL", "…"]`).
    pub healthcheck: Option<Vec<String>>,
    /// The host ports it is configured to publish (its HostConfig: also while it is created,
    /// restarting or stopping, when the list call shows none).
    pub published_host_ports: Vec<u16>,
}

impl ContainerFacts {
    /// Whether the daemon starts it again after its own restart: `always`, and
    /// `unless-stopped` (a stop by the daemon's shutdown is not a manual stop).
    pub fn policy_restarts_after_daemon_restart(&self) -> bool {
        matches!(self.restart_policy.as_str(), "always" | "unless-stopped")
    }

    pub fn address_on(&self, network: &str) -> Option<&str> {
        self.addresses
            .iter()
            .find(|(n, _)| n == network)
            .map(|(_, a)| a.as_str())
    }
}

impl DockerClient {
    pub async fn container_facts(&self, container: &str) -> Result<ContainerFacts> {
        let info = self.inspect(container).await?;
        let state = info.state.unwrap_or_default();
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
        let host = info.host_config.unwrap_or_default();
        Ok(ContainerFacts {
            memory_limit: host.memory.unwrap_or(0),
            nano_cpus: host.nano_cpus.unwrap_or(0),
            running: state.running.unwrap_or(false),
            status: state.status.map(|s| s.to_string()).unwrap_or_default(),
            restart_count: info.restart_count.unwrap_or(0),
            started_at: state.started_at.clone().unwrap_or_default(),
            oom_killed: state.oom_killed.unwrap_or(false),
            exit_code: state.exit_code,
            health: super::docker_health(&state),
            addresses,
            restart_policy: host
                .restart_policy
                .and_then(|p| p.name)
                .map(|n| n.to_string())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "no".into()),
            healthcheck: info
                .config
                .and_then(|c| c.healthcheck)
                .and_then(|h| h.test)
                .filter(|t| !t.is_empty()),
            published_host_ports: host
                .port_bindings
                .unwrap_or_default()
                .into_values()
                .flatten()
                .flatten()
                .filter_map(|b| b.host_port?.parse::<u16>().ok())
                .collect(),
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
