//! A swarm in memory, for unit tests of the Swarm executor (`swarm_engine`): it implements
//! [`SwarmVerbs`], records every verb it is asked (`calls`), and behaves as Swarm does in the
//! plain case — a created or updated service runs its replicas of the new spec at once —
//! unless told otherwise: an update Swarm rolls back ([`FakeSwarm::rolls_back`]), a service
//! whose tasks never start ([`FakeSwarm::never_starts`]).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use anyhow::Result;

use crate::compose::config_key;
use crate::swarm::observed::{
    ObjectKind, ObservedNode, ObservedService, ObservedTask, SpecHash, StackObject, SwarmObserved,
};
use crate::swarm::{Service, Stack, SwarmConfig, SwarmSecret};
use crate::swarm_engine::{ObjectIds, SwarmVerbs};

/// The manager node every fake swarm starts with.
pub const MANAGER: &str = "m";

struct FakeService {
    observed: ObservedService,
    /// The task template hash its tasks carry.
    tasks_hash: String,
    /// Bumped by every update that goes through: the tasks (containers) are new ones.
    generation: u32,
}

#[derive(Default)]
struct State {
    services: BTreeMap<String, FakeService>,
    objects: Vec<StackObject>,
    networks: Vec<String>,
    volumes: Vec<String>,
    nodes: Vec<ObservedNode>,
    calls: Vec<String>,
    rolls_back: BTreeSet<String>,
    never_starts: BTreeSet<String>,
    /// Release jobs by name, with the state their one task ends in.
    jobs: BTreeMap<String, String>,
    failing_jobs: BTreeSet<String>,
    next_id: u32,
}

pub struct FakeSwarm {
    state: Mutex<State>,
}

impl Default for FakeSwarm {
    fn default() -> FakeSwarm {
        FakeSwarm::new()
    }
}

impl FakeSwarm {
    /// An empty swarm of one ready, active manager node.
    pub fn new() -> FakeSwarm {
        let manager = ObservedNode {
            id: MANAGER.into(),
            host: "manager".into(),
            ready: true,
            active: true,
            labels: BTreeMap::new(),
        };
        FakeSwarm {
            state: Mutex::new(State {
                nodes: vec![manager],
                ..State::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("the fake's state")
    }

    /// Updates of `service` end as Swarm's rollback does: the old spec's tasks keep running.
    pub fn rolls_back(&self, service: &str) {
        self.state().rolls_back.insert(service.into());
    }

    /// The tasks of `service` stay `starting` forever.
    pub fn never_starts(&self, service: &str) {
        self.state().never_starts.insert(service.into());
    }

    /// The task of the job `service` ends `failed` (a non-zero exit) instead of `complete`.
    pub fn fails_job(&self, service: &str) {
        self.state().failing_jobs.insert(service.into());
    }

    /// Another node of the swarm.
    pub fn add_node(&self, node: ObservedNode) {
        self.state().nodes.push(node);
    }

    /// A volume a service's task made (Swarm creates them on first use).
    pub fn add_volume(&self, name: &str) {
        self.state().volumes.push(name.into());
    }

    /// Every verb asked so far, one line each (`create service p_app`), and forgets them.
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut self.state().calls)
    }

    /// What `DockerClient::observe_swarm` would answer.
    pub fn observed(&self) -> SwarmObserved {
        let s = self.state();
        SwarmObserved {
            node_id: MANAGER.into(),
            nodes: s.nodes.clone(),
            networks: s.networks.clone(),
            services: s.services.values().map(|f| f.observed.clone()).collect(),
            objects: s.objects.clone(),
        }
    }

    fn call(&self, what: String) {
        self.state().calls.push(what);
    }

    fn mounts(st: &Stack, s: &Service) -> (Vec<String>, Vec<String>) {
        let configs = s
            .spec
            .files
            .iter()
            .filter_map(|m| st.config(&config_key(&m.file)))
            .map(|c| c.name.clone())
            .collect();
        let secrets = s
            .spec
            .secrets
            .iter()
            .filter_map(|k| st.secret(k))
            .map(|s| s.name.clone())
            .collect();
        (configs, secrets)
    }

    fn tasks(&self, service: &str) -> Vec<ObservedTask> {
        let s = self.state();
        if let Some(end) = s.jobs.get(service) {
            return vec![ObservedTask {
                id: format!("{service}.1"),
                slot: Some(1),
                node_id: MANAGER.into(),
                state: end.clone(),
                desired: "complete".into(),
                running: false,
                message: if end == "complete" {
                    "finished"
                } else {
                    "task: non-zero exit (2)"
                }
                .into(),
                container_id: Some(format!("{service}.1.0")),
                config_hash: None,
                ..ObservedTask::default()
            }];
        }
        let Some(f) = s.services.get(service) else {
            return vec![];
        };
        let starts = !s.never_starts.contains(service);
        (1..=f.observed.replicas as i64)
            .map(|slot| ObservedTask {
                id: format!("{service}.{slot}"),
                slot: Some(slot),
                node_id: MANAGER.into(),
                state: if starts { "running" } else { "starting" }.into(),
                desired: "running".into(),
                running: starts,
                message: if starts { "started" } else { "preparing" }.into(),
                container_id: Some(format!("{service}.{slot}.{}", f.generation)),
                config_hash: Some(f.tasks_hash.clone()),
                ..ObservedTask::default()
            })
            .collect()
    }
}

fn short_hash(text: &str) -> String {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    format!("{:016x}", h.finish())
}

impl SwarmVerbs for FakeSwarm {
    fn spec_hash(&self, st: &Stack, s: &Service, _ids: &ObjectIds) -> SpecHash {
        let tasks = short_hash(&format!("{:?} {:?}", s.spec, Self::mounts(st, s)));
        let service = short_hash(&format!("{tasks} {}", s.replicas));
        SpecHash { service, tasks }
    }

    async fn add_node_labels(&self, node_id: &str, labels: &[String]) -> Result<()> {
        self.call(format!("label node {node_id}: {}", labels.join(" ")));
        let mut s = self.state();
        let node = s.nodes.iter_mut().find(|n| n.id == node_id);
        let node = node.ok_or_else(|| anyhow::anyhow!("node {node_id} not found"))?;
        node.labels
            .extend(labels.iter().map(|l| (l.clone(), "true".to_string())));
        Ok(())
    }

    async fn create_overlay_network(&self, _project: &str, name: &str) -> Result<()> {
        self.call(format!("create network {name}"));
        self.state().networks.push(name.into());
        Ok(())
    }

    async fn create_config(&self, _project: &str, c: &SwarmConfig) -> Result<String> {
        self.call(format!("create config {}", c.key));
        Ok(self.add_object(ObjectKind::Config, &c.name))
    }

    async fn create_secret(&self, _project: &str, s: &SwarmSecret) -> Result<String> {
        self.call(format!("create secret {}", s.key));
        Ok(self.add_object(ObjectKind::Secret, &s.name))
    }

    async fn create_service(&self, st: &Stack, s: &Service, ids: &ObjectIds) -> Result<String> {
        let new = self.applied("create", st, s, ids);
        let hash = new.tasks_hash.clone();
        self.state().services.insert(new.observed.name.clone(), new);
        Ok(hash)
    }

    async fn update_service(&self, st: &Stack, s: &Service, ids: &ObjectIds) -> Result<String> {
        let new = self.applied("update", st, s, ids);
        let hash = new.tasks_hash.clone();
        let name = new.observed.name.clone();
        let mut state = self.state();
        let rolls_back = state.rolls_back.contains(&name);
        let f = state
            .services
            .get_mut(&name)
            .ok_or_else(|| anyhow::anyhow!("service {name} not found"))?;
        f.generation += 1;
        if rolls_back {
            f.observed.update_state = Some("rollback_completed".into());
            f.observed.update_message =
                Some("update rolled back due to failure or early termination of task".into());
        } else {
            f.observed = new.observed;
            f.tasks_hash = new.tasks_hash;
        }
        Ok(hash)
    }

    async fn remove_config_or_secret(&self, kind: &str, name: &str) -> Result<()> {
        self.call(format!("remove {kind} {name}"));
        self.state()
            .objects
            .retain(|o| !(o.kind.as_str() == kind && (o.name == name || o.id == name)));
        Ok(())
    }

    async fn list_services(&self, _project: &str) -> Result<Vec<ObservedService>> {
        Ok(self
            .state()
            .services
            .values()
            .map(|f| f.observed.clone())
            .collect())
    }

    async fn service_tasks(&self, service: &str) -> Result<Vec<ObservedTask>> {
        Ok(self.tasks(service))
    }

    async fn all_service_tasks(&self, service: &str) -> Result<Vec<ObservedTask>> {
        Ok(self.tasks(service))
    }

    async fn exec(&self, container: &str, cmd: &[String]) -> Result<(i64, String)> {
        self.call(format!("exec {container}: {}", cmd.join(" ")));
        Ok((0, String::new()))
    }

    async fn remove_service(&self, name: &str) -> Result<()> {
        self.call(format!("remove service {name}"));
        let mut s = self.state();
        s.services.remove(name);
        s.jobs.remove(name);
        Ok(())
    }

    async fn create_job(&self, st: &Stack, job: &Service, _ids: &ObjectIds) -> Result<()> {
        let name = st.service_name(job);
        self.call(format!("create job {name}"));
        let mut s = self.state();
        let end = if s.failing_jobs.contains(&name) {
            "failed"
        } else {
            "complete"
        };
        s.jobs.insert(name, end.into());
        Ok(())
    }

    async fn task_log_lines(&self, task_id: &str) -> Result<Vec<String>> {
        self.call(format!("logs task {task_id}"));
        Ok(vec![format!("{task_id}: the fake job's log line")])
    }

    async fn stack_leftovers(&self, _project: &str) -> Result<Vec<String>> {
        let s = self.state();
        let services = s.services.keys().map(|n| format!("service {n}"));
        let objects = s
            .objects
            .iter()
            .map(|o| format!("{} {}", o.kind.as_str(), o.name));
        let networks = s.networks.iter().map(|n| format!("network {n}"));
        Ok(services.chain(objects).chain(networks).collect())
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        self.call(format!("remove network {name}"));
        self.state().networks.retain(|n| n != name);
        Ok(())
    }

    async fn stack_containers(&self, _project: &str) -> Result<usize> {
        Ok(0)
    }

    async fn stack_volumes(&self, _project: &str) -> Result<Vec<String>> {
        Ok(self.state().volumes.clone())
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        self.call(format!("remove volume {name}"));
        self.state().volumes.retain(|v| v != name);
        Ok(())
    }

    async fn swarm_nodes(&self) -> Result<Vec<ObservedNode>> {
        Ok(self.state().nodes.clone())
    }

    async fn remove_node_labels(&self, node_id: &str, labels: &[String]) -> Result<()> {
        self.call(format!("unlabel node {node_id}: {}", labels.join(" ")));
        let mut s = self.state();
        let node = s.nodes.iter_mut().find(|n| n.id == node_id);
        let node = node.ok_or_else(|| anyhow::anyhow!("node {node_id} not found"))?;
        node.labels.retain(|k, _| !labels.contains(k));
        Ok(())
    }
}

impl FakeSwarm {
    /// Records `verb` on the service and returns it as it runs once its spec is applied.
    fn applied(&self, verb: &str, st: &Stack, s: &Service, ids: &ObjectIds) -> FakeService {
        let name = st.service_name(s);
        self.call(format!("{verb} service {name}"));
        let hash = self.spec_hash(st, s, ids);
        let (configs, secrets) = Self::mounts(st, s);
        FakeService {
            tasks_hash: hash.tasks.clone(),
            generation: 0,
            observed: ObservedService {
                id: format!("id-{name}"),
                name,
                image: s.spec.image.clone(),
                replicas: u64::from(s.replicas),
                update_state: Some("completed".into()),
                hash: Some(hash),
                configs,
                secrets,
                ..ObservedService::default()
            },
        }
    }

    fn add_object(&self, kind: ObjectKind, name: &str) -> String {
        let mut s = self.state();
        s.next_id += 1;
        let id = format!("{}-{}", kind.as_str(), s.next_id);
        s.objects.push(StackObject {
            kind,
            name: name.into(),
            id: id.clone(),
        });
        id
    }
}
