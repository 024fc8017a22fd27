//! `verify --target swarm`: the same checks as on one host (`crate::verify`), asked of the
//! stack's tasks instead of containers, plus what Swarm itself knows of every task.
//!
//! The app tasks are found the way nginx finds them, through `tasks.app` in the swarm's DNS,
//! asked from a task container of the stack on this node; each answers `/health/backend` with
//! the id of its slot. Asking DNS rather than listing addresses from the API also proves that
//! Swarm publishes every running task to the network.

use std::collections::BTreeMap;

use anyhow::Result;

use super::ObservedTask;
use crate::docker::DockerClient;
use crate::verify::topology::{Member, Topology, HELPER_ROLES};
use crate::verify::{self, Check, Status, GROUP_HEALTH};

/// The stack's services by short name (`app`, `sentinel-2`), each with the tasks Swarm wants
/// running.
type Tasks = BTreeMap<String, Vec<ObservedTask>>;

async fn tasks(docker: &DockerClient, project: &str) -> Result<Tasks, String> {
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

fn task_problem(service: &str, t: &ObservedTask) -> String {
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
    let nginx = format!("{project}_{}", crate::desired::Role::Nginx.service());
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

/// Who `verify` asks on the swarm, and from which container on this node.
pub async fn topology(docker: &DockerClient, opts: &verify::Options) -> Result<Topology, String> {
    let node = docker.swarm_manager().await.map_err(|e| e.to_string())?;
    let all = tasks(docker, &opts.project).await?;
    let of_role = |r: crate::desired::Role| {
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
            "no task of stack {} runs on this node ({node}), which is drained, so nothing here \
             can join the stack's network to ask from\n  fix: point DOCKER_HOST at an active \
             manager (or at the one nginx runs on)",
            opts.project
        )),
        None => probe(docker, &opts.project).await,
    };
    let app_tasks = all.get("app").map(Vec::as_slice).unwrap_or_default();
    let mut apps = vec![];
    match &helper {
        Ok(helper) => {
            let cmd = ["getent", "ahostsv4", super::APP_TASKS_HOST].map(String::from);
            let answer = docker.exec(helper, &cmd).await.map_err(|e| {
                format!("cannot resolve {} in {helper}: {e}", super::APP_TASKS_HOST)
            })?;
            apps.extend(addresses(&answer.1).into_iter().map(|a| Member {
                name: None,
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

/// `verify --target swarm`: the common checks, and each service's tasks as Swarm sees them.
/// Swarm counts a task with a healthcheck as running only once it is healthy, so "running"
/// is Docker's health verdict for each task.
pub async fn verify(docker: &DockerClient, opts: &verify::Options) -> Result<verify::Report> {
    docker.swarm_manager().await?;
    let mut report = verify::run(&verify::Options {
        docker: Some(docker.clone()),
        swarm: true,
        ..opts.clone()
    })
    .await?;
    // The probe container, if verify needed one.
    let _ = docker
        .remove_container(&DockerClient::probe_name(&opts.project))
        .await;
    let all = tasks(docker, &opts.project)
        .await
        .map_err(anyhow::Error::msg)?;
    let checks = all.iter().map(|(service, tasks)| {
        let running = tasks.iter().filter(|t| t.running).count();
        let problems: Vec<String> = tasks
            .iter()
            .filter(|t| !t.running)
            .map(|t| task_problem(service, t))
            .collect();
        Check {
            group: GROUP_HEALTH,
            name: format!("{service} tasks running and healthy"),
            status: if problems.is_empty() && running > 0 {
                Status::Pass
            } else {
                Status::Fail
            },
            detail: if tasks.is_empty() {
                format!(
                    "no task: the service is scaled to 0 (`docker service scale {}_{service}=1`, \
                     or `radar-deploy up --target swarm`)",
                    opts.project
                )
            } else if problems.is_empty() {
                format!("{running}/{}", tasks.len())
            } else {
                format!("{running}/{}; {}", tasks.len(), problems.join("; "))
            },
            duration_ms: 0,
        }
    });
    let at = report
        .checks
        .iter()
        .position(|c| c.group == GROUP_HEALTH)
        .unwrap_or(report.checks.len());
    report.checks.splice(at..at, checks);
    report.passed = report.checks.iter().all(|c| c.status != Status::Fail);
    Ok(report)
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
