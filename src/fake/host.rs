//! A fake single-host Docker engine for unit tests of the executors (`apply`, `engine`,
//! `scale`): containers, networks and volumes kept in memory, the verbs of
//! [`HostEngine`] acted out on them, every call recorded. A test can make a verb fail for one
//! object, keep a container from ever becoming ready, delay its readiness or make it exit.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::apply::HostEngine;
use crate::desired::{Container, Deployment, RELOAD_MARKER};
use crate::docker::{self, ContainerFacts, DockerError};
use crate::labels::{LABEL_RELOAD_HASH, LABEL_ROLE};
use crate::observed::{
    ContainerState, Health, Observed, ObservedContainer, ObservedNetwork, ObservedVolume,
};
use crate::probes;
use crate::readiness::{Probe, Readiness};

/// The daemon the fake claims to be: the project lock is keyed by it.
const FAKE_HOST: &str = "fake-engine";

/// One container as the fake holds it.
#[derive(Debug, Clone)]
pub struct FakeContainer {
    pub id: String,
    pub name: String,
    pub project: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub state: ContainerState,
    pub has_healthcheck: bool,
    /// Its healthcheck's test as a wait runs it: the fake answers it by the container's
    /// readiness instead of running it.
    test_argv: Option<Vec<String>>,
    pub published: Vec<u16>,
    /// Files delivered by upload, by absolute path.
    pub files: BTreeMap<String, Vec<u8>>,
    started_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, FakeContainer>,
    networks: BTreeMap<String, String>,
    volumes: BTreeMap<String, String>,
    calls: Vec<String>,
    /// (verb, object) pairs that fail.
    failing: BTreeSet<(String, String)>,
    never_ready: BTreeSet<String>,
    ready_after: HashMap<String, Duration>,
    exits: HashMap<String, i64>,
    missing_images: BTreeSet<String>,
    /// Answers to exec by its argv joined with spaces; the default is (0, "").
    exec_answers: HashMap<String, (i64, String)>,
    /// Containers a probe has seen healthy (recorded once, as the call `ready name`).
    seen_ready: BTreeSet<String>,
    next_id: u64,
}

/// The fake engine; see the module doc.
#[derive(Default)]
pub struct FakeHost {
    state: Mutex<State>,
    /// Whether it claims to run on this machine (then `up` checks its published ports).
    local: bool,
}

impl FakeHost {
    pub fn new() -> FakeHost {
        FakeHost::default()
    }

    /// A fake that claims to run on this machine.
    pub fn local() -> FakeHost {
        FakeHost {
            local: true,
            ..FakeHost::default()
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("fake engine state"))
    }

    /// Makes `verb` (`create`, `start`, `upload`, `exec`, `pull`, `stop_and_remove`, …) fail
    /// for `object` (a container, image, network or volume name).
    pub fn fail(&self, verb: &str, object: &str) {
        self.with(|s| s.failing.insert((verb.into(), object.into())));
    }

    /// The container of that name (created now or later) never passes its healthcheck.
    pub fn never_ready(&self, name: &str) {
        self.with(|s| s.never_ready.insert(name.into()));
    }

    /// The container of that name passes its healthcheck only `delay` after its start.
    pub fn ready_after(&self, name: &str, delay: Duration) {
        self.with(|s| s.ready_after.insert(name.into(), delay));
    }

    /// The container of that name exits with `code` as soon as it starts.
    pub fn exits(&self, name: &str, code: i64) {
        self.with(|s| s.exits.insert(name.into(), code));
    }

    /// The image is not on the daemon (a pull brings it, unless told to fail).
    pub fn missing_image(&self, image: &str) {
        self.with(|s| s.missing_images.insert(image.into()));
    }

    /// What an exec of `argv` answers, in every container.
    pub fn answer_exec(&self, argv: &[String], code: i64, out: &str) {
        self.with(|s| s.exec_answers.insert(argv.join(" "), (code, out.into())));
    }

    /// Every call so far, as `verb object`, in order.
    pub fn calls(&self) -> Vec<String> {
        self.with(|s| s.calls.clone())
    }

    /// The position of the first call equal to `call`; panics naming it when there is none.
    pub fn position(&self, call: &str) -> usize {
        let calls = self.calls();
        calls
            .iter()
            .position(|c| c == call)
            .unwrap_or_else(|| panic!("no call {call:?} in {calls:#?}"))
    }

    pub fn container(&self, name: &str) -> Option<FakeContainer> {
        self.with(|s| s.containers.get(name).cloned())
    }

    /// The names of the containers, in name order.
    pub fn container_names(&self) -> Vec<String> {
        self.with(|s| s.containers.keys().cloned().collect())
    }

    pub fn network_names(&self) -> Vec<String> {
        self.with(|s| s.networks.keys().cloned().collect())
    }

    pub fn volume_names(&self) -> Vec<String> {
        self.with(|s| s.volumes.keys().cloned().collect())
    }

    /// Records the call, then fails it when the test said so.
    fn call(&self, verb: &str, object: &str) -> docker::Result<()> {
        self.with(|s| {
            s.calls.push(format!("{verb} {object}"));
            if s.failing.contains(&(verb.to_string(), object.to_string())) {
                Err(DockerError::Api {
                    kind: "object",
                    name: object.into(),
                    status: 500,
                    message: format!("the fake engine fails {verb} here"),
                })
            } else {
                Ok(())
            }
        })
    }

    /// Records the call, then removes the object from the collection `pick` chooses; an
    /// absent one is fine, as with Docker's removals.
    fn remove<T>(
        &self,
        verb: &str,
        name: &str,
        pick: impl FnOnce(&mut State) -> &mut BTreeMap<String, T>,
    ) -> docker::Result<()> {
        self.call(verb, name)?;
        self.with(|s| pick(s).remove(name));
        Ok(())
    }

    fn not_found(kind: &'static str, name: &str) -> DockerError {
        DockerError::NotFound {
            kind,
            name: name.into(),
        }
    }

    /// Docker's verdict on a running container now: healthy unless held back.
    fn docker_health(s: &State, c: &FakeContainer) -> Health {
        if c.state != ContainerState::Running || !c.has_healthcheck {
            return Health::None;
        }
        if s.never_ready.contains(&c.name) {
            return Health::Starting;
        }
        match (s.ready_after.get(&c.name), c.started_at) {
            (Some(delay), Some(t)) if t.elapsed() < *delay => Health::Starting,
            _ => Health::Healthy,
        }
    }

    fn observed(s: &State, c: &FakeContainer) -> ObservedContainer {
        let applied_reload_hash = (c.state == ContainerState::Running
            && c.labels.contains_key(LABEL_RELOAD_HASH))
        .then(|| c.files.get(RELOAD_MARKER))
        .flatten()
        .map(|b| String::from_utf8_lossy(b).trim().to_string());
        ObservedContainer {
            id: c.id.clone(),
            name: c.name.clone(),
            image: c.image.clone(),
            state: c.state,
            health: Self::docker_health(s, c),
            status: format!("{:?}", c.state),
            ports: match c.state {
                ContainerState::Running => c.published.iter().map(|p| (*p, 80)).collect(),
                _ => vec![],
            },
            labels: c.labels.clone(),
            applied_reload_hash,
            ips: vec![],
        }
    }
}

fn container_in<'a>(s: &'a State, name: &str) -> docker::Result<&'a FakeContainer> {
    s.containers
        .get(name)
        .ok_or_else(|| FakeHost::not_found("container", name))
}

fn container_in_mut<'a>(s: &'a mut State, name: &str) -> docker::Result<&'a mut FakeContainer> {
    s.containers
        .get_mut(name)
        .ok_or_else(|| FakeHost::not_found("container", name))
}

/// The regular files in a tar archive, by absolute path.
fn tar_files(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar);
    let mut files = vec![];
    for entry in archive.entries().expect("a tar archive").flatten() {
        let mut entry = entry;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = format!("/{}", entry.path().expect("a path").display());
        let mut data = vec![];
        entry.read_to_end(&mut data).expect("file data");
        files.push((path.replace("//", "/"), data));
    }
    files
}

impl HostEngine for FakeHost {
    fn daemon_host(&self) -> &str {
        FAKE_HOST
    }

    fn is_local(&self) -> bool {
        self.local
    }

    async fn observe(&self, project: &str) -> docker::Result<Observed> {
        self.call("observe", project)?;
        Ok(self.with(|s| Observed {
            containers: s
                .containers
                .values()
                .filter(|c| c.project == project)
                .map(|c| Self::observed(s, c))
                .collect(),
            networks: s
                .networks
                .iter()
                .filter(|(_, p)| *p == project)
                .map(|(n, _)| ObservedNetwork {
                    id: format!("id-{n}"),
                    name: n.clone(),
                })
                .collect(),
            volumes: s
                .volumes
                .iter()
                .filter(|(_, p)| *p == project)
                .map(|(n, _)| ObservedVolume { name: n.clone() })
                .collect(),
        }))
    }

    async fn list_containers(&self, project: &str) -> docker::Result<Vec<ObservedContainer>> {
        Ok(HostEngine::observe(self, project).await?.containers)
    }

    async fn container_facts(&self, container: &str) -> docker::Result<ContainerFacts> {
        self.call("inspect", container)?;
        self.with(|s| {
            let c = container_in(s, container)?;
            Ok(ContainerFacts {
                running: c.state == ContainerState::Running,
                health: Self::docker_health(s, c),
                published_host_ports: c.published.clone(),
                ..ContainerFacts::default()
            })
        })
    }

    async fn image_exists(&self, image: &str) -> docker::Result<bool> {
        Ok(self.with(|s| !s.missing_images.contains(image)))
    }

    /// Every image the fake has sets no user (root), as most images do.
    async fn image_user(&self, image: &str) -> docker::Result<Option<String>> {
        Ok(self.with(|s| (!s.missing_images.contains(image)).then(String::new)))
    }

    async fn pull(
        &self,
        image: &str,
        mut progress: impl FnMut(&str, &str, Option<i64>, Option<i64>) + Send,
    ) -> docker::Result<()> {
        self.call("pull", image)?;
        progress("layer", "Pull complete", None, None);
        self.with(|s| s.missing_images.remove(image));
        Ok(())
    }

    async fn create_network(&self, project: &str, name: &str) -> docker::Result<()> {
        self.call("create_network", name)?;
        self.with(|s| s.networks.insert(name.into(), project.into()));
        Ok(())
    }

    async fn create_volume(&self, project: &str, _volume: &str, name: &str) -> docker::Result<()> {
        self.call("create_volume", name)?;
        self.with(|s| s.volumes.insert(name.into(), project.into()));
        Ok(())
    }

    async fn create_container(
        &self,
        d: &Deployment,
        c: &Container,
        name: &str,
        _extra_aliases: &[String],
    ) -> docker::Result<String> {
        self.call("create", name)?;
        self.with(|s| {
            if s.containers.contains_key(name) {
                return Err(DockerError::Conflict {
                    kind: "container",
                    name: name.into(),
                    message: "the name is in use".into(),
                });
            }
            s.next_id += 1;
            let id = format!("{:064x}", s.next_id);
            s.containers.insert(
                name.into(),
                FakeContainer {
                    id: id.clone(),
                    name: name.into(),
                    project: d.project.clone(),
                    image: c.image.clone(),
                    labels: docker::container_labels(d, c).into_iter().collect(),
                    state: ContainerState::Created,
                    has_healthcheck: c.healthcheck.is_some(),
                    test_argv: c
                        .healthcheck
                        .as_ref()
                        .and_then(|h| probes::healthcheck_argv(&h.test)),
                    published: c.published.iter().map(|p| p.host).collect(),
                    files: BTreeMap::new(),
                    started_at: None,
                },
            );
            Ok(id)
        })
    }

    async fn upload(&self, container: &str, tar: Vec<u8>) -> docker::Result<()> {
        self.call("upload", container)?;
        self.with(|s| {
            let c = container_in_mut(s, container)?;
            c.files.extend(tar_files(&tar));
            Ok(())
        })
    }

    async fn start(&self, container: &str) -> docker::Result<()> {
        self.call("start", container)?;
        self.with(|s| {
            let one_off = s
                .containers
                .get(container)
                .is_some_and(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some("release"));
            // A one-off (the release command) runs to completion at once: exit 0 unless told.
            let exit = s.exits.get(container).copied().or(one_off.then_some(0));
            if let Some(code) = exit {
                s.exits.insert(container.into(), code);
            }
            let c = container_in_mut(s, container)?;
            c.state = match exit {
                Some(_) => ContainerState::Exited,
                None => ContainerState::Running,
            };
            c.started_at = Some(Instant::now());
            Ok(())
        })
    }

    async fn stop_and_remove(&self, container: &str, _grace_secs: u32) -> docker::Result<()> {
        self.remove("stop_and_remove", container, |s| &mut s.containers)
    }

    async fn remove_container(&self, container: &str) -> docker::Result<()> {
        self.remove("remove", container, |s| &mut s.containers)
    }

    async fn rename(&self, container: &str, new_name: &str) -> docker::Result<()> {
        self.call("rename", &format!("{container} {new_name}"))?;
        self.with(|s| {
            let mut c = s
                .containers
                .remove(container)
                .ok_or_else(|| Self::not_found("container", container))?;
            c.name = new_name.into();
            s.containers.insert(new_name.into(), c);
            Ok(())
        })
    }

    async fn exec(&self, container: &str, cmd: &[String]) -> docker::Result<(i64, String)> {
        // Scripts are long: the call names the program and, for bash, only that it is one.
        let shown = match cmd {
            [bash, flag, ..] if bash == "bash" && flag == "-c" => "bash -c …".to_string(),
            _ => cmd.join(" "),
        };
        self.call("exec", &format!("{container} {shown}"))?;
        self.with(|s| {
            let c = container_in(s, container)?;
            if c.state != ContainerState::Running {
                return Err(DockerError::Conflict {
                    kind: "container",
                    name: container.into(),
                    message: "is not running".into(),
                });
            }
            if c.test_argv.as_deref() == Some(cmd) {
                return Ok(match Self::docker_health(s, c) {
                    Health::Healthy => (0, "ok".into()),
                    _ => (1, "connection refused".into()),
                });
            }
            Ok(s.exec_answers
                .get(&cmd.join(" "))
                .cloned()
                .unwrap_or((0, String::new())))
        })
    }

    async fn probe(&self, container: &str, readiness: &Readiness) -> docker::Result<Probe> {
        self.call("probe", container)?;
        let mut probe = self.with(|s| {
            let c = container_in(s, container)?;
            let health = Self::docker_health(s, c);
            Ok::<_, DockerError>(Probe {
                state: c.state,
                exit_code: s.exits.get(container).copied(),
                docker_health: health,
                docker_probe_output: (health == Health::Starting)
                    .then(|| "exit 1: connection refused".to_string()),
                exec: None,
            })
        })?;
        if let Some(argv) = readiness.exec_argv() {
            if probe.state == ContainerState::Running && probe.docker_health != Health::Healthy {
                probe.exec = HostEngine::exec(self, container, &argv).await.ok();
            }
        }
        let ready = probe.docker_health != Health::Starting || matches!(probe.exec, Some((0, _)));
        if probe.state == ContainerState::Running && ready {
            self.with(|s| {
                if s.seen_ready.insert(container.into()) {
                    s.calls.push(format!("ready {container}"));
                }
            });
        }
        Ok(probe)
    }

    async fn tail_logs(&self, container: &str, _tail: u32) -> docker::Result<Vec<String>> {
        self.call("logs", container)?;
        Ok(vec![format!("{container}: the fake engine's log line")])
    }

    async fn remove_network(&self, name: &str) -> docker::Result<()> {
        self.remove("remove_network", name, |s| &mut s.networks)
    }

    async fn remove_volume(&self, name: &str) -> docker::Result<()> {
        self.remove("remove_volume", name, |s| &mut s.volumes)
    }

    async fn follow_logs(
        &self,
        container: &str,
        mut on_line: impl FnMut(&str) + Send,
    ) -> docker::Result<()> {
        self.call("follow_logs", container)?;
        let code = self.with(|s| {
            container_in(s, container)?;
            Ok::<_, DockerError>(s.exits.get(container).copied())
        })?;
        on_line(&format!("{container}: the fake engine's log line"));
        if let Some(code) = code {
            on_line(&format!("exiting with {code}"));
        }
        Ok(())
    }
}
