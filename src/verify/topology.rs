//! Who `verify` asks, and from where: the app instances, Sentinels and Redis nodes of a
//! deployment, with the address each answers on inside the project network and a running
//! container on that network to ask from. Built from the project's containers on one host
//! ([`single_host`]) or from the stack's tasks on a swarm ([`swarm`]); the checks in
//! `inside.rs` are the same for both.
//!
//! On a swarm the app tasks are found the way nginx finds them, through `tasks.app` in the
//! swarm's DNS, asked from a task container of the stack on this node; each answers
//! `/health/backend` with the id of its slot. Asking DNS rather than listing addresses from the
//! API also proves that Swarm publishes every running task to the network.

use std::collections::BTreeMap;

use crate::desired::Role;
use crate::docker::DockerClient;
use crate::observed::{ContainerState, ObservedContainer};
use crate::swarm::ObservedTask;
use crate::swarm::APP_TASKS_HOST;

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
    /// Its IP addresses on the project network, as nginx's upstream header names it (on a
    /// swarm the task's address is its `address`).
    pub ips: Vec<String>,
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
        ips: c.ips.clone(),
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

/// The stack's services by short name (`app`, `sentinel-2`), each with the tasks Swarm wants
/// running.
pub type Tasks = BTreeMap<String, Vec<ObservedTask>>;

/// The tasks of every service of the project's stack.
pub async fn swarm_tasks(docker: &DockerClient, project: &str) -> Result<Tasks, String> {
    let services = docker
        .list_services(project)
        .await
        .map_err(|e| format!("cannot list the services of stack {project}: {e}"))?;
    let prefix = format!("{project}_");
    let mut out = Tasks::new();
    for s in services {
        let tasks = docker
            .service_tasks(&s.name)
            .await
            .map_err(|e| format!("cannot list the tasks of {}: {e}", s.name))?;
        let short = s.name.strip_prefix(&prefix).unwrap_or(&s.name).to_string();
        out.insert(short, tasks);
    }
    Ok(out)
}

/// Why a task of `service` does not run, as Swarm says.
pub fn task_problem(service: &str, t: &ObservedTask) -> String {
    format!(
        "{service} (task slot {}) is {}{}{}",
        t.slot.unwrap_or(0),
        t.state,
        if t.message.is_empty() { "" } else { ": " },
        t.message
    )
}

/// One member per single-task service (`redis`, `sentinel-1`): its running task, or why
/// there is none.
fn service_member(service: &str, tasks: &[ObservedTask], node: &str) -> Member {
    let running = tasks.iter().find(|t| t.running);
    Member {
        name: Some(service.to_string()),
        address: service.to_string(),
        container: running
            .filter(|t| t.node_id == node)
            .and_then(|t| t.container_id.clone()),
        down: match (running, tasks.first()) {
            (Some(_), _) => None,
            (None, Some(t)) => Some(task_problem(service, t)),
            (None, None) => Some(format!("{service} has no task")),
        },
        ips: vec![],
    }
}

/// The addresses in a `getent ahostsv4` answer, each once, in order.
fn addresses(getent: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for addr in getent.lines().filter_map(|l| l.split_whitespace().next()) {
        if addr.parse::<std::net::Ipv4Addr>().is_ok() && !out.iter().any(|a| a == addr) {
            out.push(addr.to_string());
        }
    }
    out
}

/// No task of the stack runs on this node (a drained manager): ask from a short-lived
/// container on the stack's attachable network instead, made from nginx's image.
async fn probe(docker: &DockerClient, project: &str) -> Result<String, String> {
    let services = docker
        .list_services(project)
        .await
        .map_err(|e| e.to_string())?;
    let nginx = format!("{project}_{}", Role::Nginx.service());
    let Some(image) = services.iter().find(|s| s.name == nginx).map(|s| &s.image) else {
        return Err(format!(
            "no service {nginx} on the swarm (is the stack up? is --project right?)"
        ));
    };
    let network = format!("{project}_default");
    docker
        .start_probe(project, &network, image)
        .await
        .map_err(|e| {
            format!("no task of stack {project} runs on this node, and a probe container on {network} could not start: {e}")
        })
}

/// The topology of a project's stack on the swarm this daemon manages, from its tasks.
pub async fn swarm(docker: &DockerClient, project: &str) -> Result<Topology, String> {
    let node = docker.swarm_manager().await.map_err(|e| e.to_string())?;
    let all = swarm_tasks(docker, project).await?;
    let of_role = |r: Role| {
        all.iter()
            .filter(move |(name, _)| {
                *name == r.service() || name.starts_with(&format!("{}-", r.service()))
            })
            .flat_map(|(_, t)| t)
    };
    let local = HELPER_ROLES
        .into_iter()
        .flat_map(of_role)
        .find(|t| t.running && t.node_id == node)
        .and_then(|t| t.container_id.clone());
    let helper = match local {
        Some(id) => Ok(id),
        // Swarm attaches no container to an overlay network on a drained node.
        None if !docker.node_active(&node).await.map_err(|e| e.to_string())? => Err(format!(
            "no task of stack {project} runs on this node ({node}), which is drained, so nothing \
             here can join the stack's network to ask from\n  fix: point DOCKER_HOST at an \
             active manager (or at the one nginx runs on)"
        )),
        None => probe(docker, project).await,
    };
    let app_tasks = all.get("app").map(Vec::as_slice).unwrap_or_default();
    let mut apps = vec![];
    match &helper {
        Ok(helper) => {
            let cmd = ["getent", "ahostsv4", APP_TASKS_HOST].map(String::from);
            let answer = docker
                .exec(helper, &cmd)
                .await
                .map_err(|e| format!("cannot resolve {APP_TASKS_HOST} in {helper}: {e}"))?;
            apps.extend(addresses(&answer.1).into_iter().map(|a| Member {
                name: None,
                ips: vec![a.clone()],
                address: a,
                container: None,
                down: None,
            }));
        }
        // Nothing to ask from: the running tasks are listed by slot, and each of their
        // checks fails with the reason.
        Err(_) => {
            let mut running: Vec<&ObservedTask> = app_tasks.iter().filter(|t| t.running).collect();
            running.sort_by_key(|t| t.slot);
            apps.extend(running.into_iter().map(|t| Member {
                name: Some(format!("app-{}", t.slot.unwrap_or(0))),
                address: String::new(),
                container: None,
                down: None,
                ips: vec![],
            }));
        }
    }
    let mut waiting: Vec<&ObservedTask> = app_tasks.iter().filter(|t| !t.running).collect();
    waiting.sort_by_key(|t| t.slot);
    apps.extend(waiting.into_iter().map(|t| Member {
        name: Some(format!("app-{}", t.slot.unwrap_or(0))),
        address: String::new(),
        container: None,
        down: Some(task_problem("app", t)),
        ips: vec![],
    }));
    let members = |prefix: &str| -> Vec<Member> {
        all.iter()
            .filter(|(name, _)| name.as_str() == prefix || name.starts_with(&format!("{prefix}-")))
            .map(|(name, t)| service_member(name, t, &node))
            .collect()
    };
    Ok(Topology {
        helper,
        apps,
        sentinels: members("sentinel"),
        redis_nodes: members("redis"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getent_answers_become_addresses_once_each() {
        let out = "10.0.1.5        STREAM tasks.app\n10.0.1.5        DGRAM\n10.0.1.7        RAW\n";
        assert_eq!(addresses(out), ["10.0.1.5", "10.0.1.7"]);
        assert!(addresses("").is_empty());
        assert!(addresses("getent: something odd\n").is_empty());
    }
}
