//! What a swarm holds of one project, as plain data: the snapshot [`super::plan`] compares the
//! stack with, and the services and tasks the waits, `status` and `verify` read. The Docker
//! facade fills these (`DockerClient::observe_swarm`, `list_services`, `service_tasks`); nothing
//! here talks to Docker.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// The daemon's place in a swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwarmMembership {
    NotInSwarm,
    Worker,
    Manager { node_id: String },
}

/// One task of a service, as `status` and the waits need it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ObservedTask {
    pub id: String,
    pub slot: Option<i64>,
    pub node_id: String,
    pub state: String,
    pub desired: String,
    pub running: bool,
    pub message: String,
    pub container_id: Option<String>,
    /// The hash of the task template the task runs ([`SpecHash::tasks`]).
    pub config_hash: Option<String>,
    /// Its CPU limit in CPUs (0: none).
    #[serde(skip)]
    pub cpu_limit: f64,
}

/// One service of the project's stack.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ObservedService {
    pub id: String,
    pub name: String,
    pub image: String,
    pub replicas: u64,
    pub published: Vec<u16>,
    /// Swarm's rolling-update state (`updating`, `completed`, `rollback_completed`, ...).
    pub update_state: Option<String>,
    pub update_message: Option<String>,
    /// The hashes its spec was labelled with when radar-deploy created or updated it (none on
    /// a service made by something else, which therefore is always updated).
    #[serde(skip)]
    pub hash: Option<SpecHash>,
    /// The names of the configs and secrets its tasks mount.
    #[serde(skip)]
    pub configs: Vec<String>,
    #[serde(skip)]
    pub secrets: Vec<String>,
}

/// The two hashes of a service's spec, computed by the facade from the spec it sends Docker.
/// `tasks` covers the task template and goes on every task, so a wait knows which tasks run
/// the current spec (it leaves out the replica count, or every `scale` would replace every
/// task); `service` covers the whole spec and goes on the service, so a re-run with nothing
/// changed touches nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecHash {
    pub service: String,
    pub tasks: String,
}

/// One node of the swarm.
#[derive(Debug, Clone, Default)]
pub struct ObservedNode {
    pub id: String,
    pub host: String,
    /// Swarm sees it (state `ready`).
    pub ready: bool,
    /// It takes tasks: availability neither `drain` nor `pause`.
    pub active: bool,
    pub labels: BTreeMap<String, String>,
}

impl ObservedNode {
    /// Whether a task (and so a placement label) can go on it.
    pub fn usable(&self) -> bool {
        self.ready && self.active
    }

    /// The labels set to `true`: the placement labels this node carries.
    pub fn true_labels(&self) -> impl Iterator<Item = &String> {
        self.labels
            .iter()
            .filter(|(_, v)| v.as_str() == "true")
            .map(|(k, _)| k)
    }
}

/// A config or a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectKind {
    Config,
    Secret,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Config => "config",
            ObjectKind::Secret => "secret",
        }
    }
}

/// One config or secret of the stack on the swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackObject {
    pub kind: ObjectKind,
    pub name: String,
    pub id: String,
}

/// The project on the swarm, as [`super::plan`] needs it.
#[derive(Debug, Clone, Default)]
pub struct SwarmObserved {
    /// The manager this run talks to.
    pub node_id: String,
    pub nodes: Vec<ObservedNode>,
    /// Names of the networks whose name starts with the project's.
    pub networks: Vec<String>,
    /// The project's services (by the stack label), sorted by name.
    pub services: Vec<ObservedService>,
    /// The project's configs and secrets (by the stack label).
    pub objects: Vec<StackObject>,
}

impl SwarmObserved {
    pub fn service(&self, name: &str) -> Option<&ObservedService> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Config and secret name → id, for the specs that mount them.
    pub fn object_ids(&self) -> HashMap<String, String> {
        self.objects
            .iter()
            .map(|o| (o.name.clone(), o.id.clone()))
            .collect()
    }

    /// The host name of a node, its id when it is not known.
    pub fn host(&self, node_id: &str) -> String {
        self.nodes
            .iter()
            .find(|n| n.id == node_id)
            .map_or_else(|| node_id.to_string(), |n| n.host.clone())
    }
}
