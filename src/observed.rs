//! What Docker reports for one project: its labelled containers, networks and volumes, as
//! plain structs (types only; `DockerClient::observe` takes the snapshot), so planning stays a
//! pure function testable without a daemon.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::labels::{LABEL_CONFIG_HASH, LABEL_INSTANCE, LABEL_RELOAD_HASH, LABEL_ROLE};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Created and never started: an interrupted `up` may have left its files incomplete.
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Dead,
    Removing,
    Other,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No healthcheck.
    #[default]
    None,
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    /// Docker's list call reports health only inside the status text ("Up 3s (healthy)").
    pub fn from_status_text(status: &str) -> Health {
        if status.contains("(healthy)") {
            Health::Healthy
        } else if status.contains("(unhealthy)") {
            Health::Unhealthy
        } else if status.contains("(health: starting)") {
            Health::Starting
        } else {
            Health::None
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    pub health: Health,
    /// Docker's own status text ("Up 5 minutes (healthy)").
    pub status: String,
    /// Published ports as (host, container).
    pub ports: Vec<(u16, u16)>,
    pub labels: BTreeMap<String, String>,
    /// The reload hash last applied by a reload, when one was; else the creation label holds.
    pub applied_reload_hash: Option<String>,
    /// Its IP addresses on its networks (nginx's `$upstream_addr` names an instance by one).
    pub ips: Vec<String>,
}

impl ObservedContainer {
    pub fn config_hash(&self) -> Option<&str> {
        self.labels.get(LABEL_CONFIG_HASH).map(String::as_str)
    }

    pub fn reload_hash(&self) -> Option<&str> {
        self.applied_reload_hash
            .as_deref()
            .or_else(|| self.labels.get(LABEL_RELOAD_HASH).map(String::as_str))
    }

    pub fn role(&self) -> Option<&str> {
        self.labels.get(LABEL_ROLE).map(String::as_str)
    }

    /// Its role in the deployment, from its role label.
    pub fn role_kind(&self) -> Option<crate::desired::Role> {
        use crate::desired::Role;
        [
            Role::Postgres,
            Role::Redis,
            Role::RedisReplica,
            Role::Sentinel,
            Role::App,
            Role::Nginx,
        ]
        .into_iter()
        .find(|r| self.role() == Some(r.service()))
    }

    /// Its instance number (`app-2` is 2); 0 for an unnumbered service.
    pub fn instance_number(&self) -> u32 {
        self.labels
            .get(LABEL_INSTANCE)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// The alias it is known by on the network (`app-2`, `postgres`), as the model names it.
    pub fn alias(&self) -> String {
        let role = self.role().unwrap_or("?");
        match self.labels.get(LABEL_INSTANCE) {
            Some(n) => format!("{role}-{n}"),
            None => role.to_string(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ObservedNetwork {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Default)]
pub struct ObservedVolume {
    pub name: String,
}

#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub containers: Vec<ObservedContainer>,
    pub networks: Vec<ObservedNetwork>,
    pub volumes: Vec<ObservedVolume>,
}

impl Observed {
    pub fn container(&self, name: &str) -> Option<&ObservedContainer> {
        self.containers.iter().find(|c| c.name == name)
    }

    pub fn has_network(&self, name: &str) -> bool {
        self.networks.iter().any(|n| n.name == name)
    }

    pub fn has_volume(&self, name: &str) -> bool {
        self.volumes.iter().any(|v| v.name == name)
    }
}

/// One reading of a container's CPU and memory counters (Docker's stats API, one-shot).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageSample {
    /// CPU time the container used since it started, in nanoseconds.
    pub cpu_total_ns: u64,
    /// CPU time of the whole host since boot, in nanoseconds (all CPUs).
    pub system_ns: u64,
    pub online_cpus: u32,
    /// Memory in use, the page cache Docker's CLI leaves out already left out.
    pub memory_bytes: u64,
    /// The container's memory limit (the host's memory when it has none).
    pub memory_limit_bytes: u64,
}

impl UsageSample {
    /// The CPU used between `earlier` and this sample, in CPUs (1.0 = one core busy), as
    /// `docker stats` computes it; `None` without a difference to divide by.
    pub fn cpus_since(&self, earlier: &UsageSample) -> Option<f64> {
        let used = self.cpu_total_ns.checked_sub(earlier.cpu_total_ns)?;
        let system = self.system_ns.checked_sub(earlier.system_ns)?;
        (system > 0 && self.online_cpus > 0)
            .then(|| used as f64 / system as f64 * f64::from(self.online_cpus))
    }
}
