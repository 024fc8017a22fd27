//! Who `verify` asks, and from where: the app instances, Sentinels and Redis nodes of a
//! deployment, with the address each answers on inside the project network and a running
//! container on that network to ask from. Built from the project's containers on one host
//! ([`single_host`]) or from the stack's tasks on a swarm (`crate::swarm::verify`); the checks
//! in `inside.rs` are the same for both.

use crate::desired::Role;
use crate::docker::DockerClient;
use crate::observed::{ContainerState, ObservedContainer};

/// One app instance, Sentinel or Redis node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// How the checks name it (`app-2`, `sentinel-1`, `redis-replica`). `None` for a Swarm
    /// task known only by its address: it is then named by the id it reports.
    pub name: Option<String>,
    /// The host name or address it answers on inside the project network.
    pub address: String,
    /// Its container, when it runs on the daemon we talk to (Docker exec works only there).
    pub container: Option<String>,
    /// Why it is not running; `None` when it is.
    pub down: Option<String>,
}

impl Member {
    /// Its name, or its address when it has none yet.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.address)
    }
}

#[derive(Debug, Clone)]
pub struct Topology {
    /// A running container on the project network that has bash, to make requests from; or
    /// why there is none.
    pub helper: Result<String, String>,
    /// The app instances Docker (or Swarm) has, running or not.
    pub apps: Vec<Member>,
    pub sentinels: Vec<Member>,
    /// The Redis master and replica, by service (`redis`, `redis-replica`).
    pub redis_nodes: Vec<Member>,
}

/// The roles whose images have bash, in the order a helper is chosen: nginx first, as it is
/// the one that really forwards to the instances.
pub const HELPER_ROLES: [Role; 5] = [
    Role::Nginx,
    Role::Redis,
    Role::Postgres,
    Role::RedisReplica,
    Role::Sentinel,
];

fn not_running(c: &ObservedContainer) -> Option<String> {
    (c.state != ContainerState::Running || c.status.contains("Paused")).then(|| {
        format!(
            "{} ({}) is not running: {}",
            c.alias(),
            c.name,
            if c.status.is_empty() {
                "no status"
            } else {
                &c.status
            }
        )
    })
}

fn member(c: &ObservedContainer) -> Member {
    Member {
        name: Some(c.alias()),
        address: c.alias(),
        container: Some(c.name.clone()),
        down: not_running(c),
    }
}

/// The topology of a project on one Docker host, from its labelled containers.
pub async fn single_host(docker: &DockerClient, project: &str) -> Result<Topology, String> {
    let mut containers = docker
        .list_containers(project)
        .await
        .map_err(|e| format!("cannot list the containers of project {project}: {e}"))?;
    containers.sort_by_key(ObservedContainer::instance_number);
    let of = |roles: &[Role]| -> Vec<Member> {
        containers
            .iter()
            .filter(|c| c.role_kind().is_some_and(|r| roles.contains(&r)))
            .map(member)
            .collect()
    };
    let helper = HELPER_ROLES
        .into_iter()
        .find_map(|r| {
            containers
                .iter()
                .find(|c| c.role_kind() == Some(r) && not_running(c).is_none())
        })
        .map(|c| c.name.clone())
        .ok_or_else(|| {
            "no running container of the project to ask from (nginx, redis and postgres are \
             all down)"
                .to_string()
        });
    Ok(Topology {
        helper,
        apps: of(&[Role::App]),
        sentinels: of(&[Role::Sentinel]),
        redis_nodes: of(&[Role::Redis, Role::RedisReplica]),
    })
}
