//! The one seam to the Docker Engine: the only module that imports bollard (docs/design.md §8).
//!
//! [`DockerClient`] speaks in the project's terms: its errors name the container, image,
//! network or volume involved ([`DockerError`]: 404 → not found, 409 → conflict), its results
//! are plain structs ([`crate::observed`], a [`Probe`] of one container). Verbs only: it runs
//! the commands it is given ([`crate::probes`] holds the scripts) and returns what Docker
//! reports; what that means is decided elsewhere ([`crate::readiness::assess`], the plan).

mod build;
mod faults;
mod restart;
mod spec;
mod ssh;
mod stream;
mod swarm;
mod usage;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::{
    ContainerSummaryStateEnum, HealthStatusEnum, NetworkCreateRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, DownloadFromContainerOptionsBuilder,
    InspectContainerOptions, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder, StartContainerOptions, StopContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bollard::{body_full, Docker};
use futures_util::{Stream, StreamExt};

use crate::desired::{Container, Deployment, RELOAD_MARKER};
use crate::endpoint::{DaemonFacts, Endpoint, Os, Transport};
use crate::labels::{
    LABEL_MANAGED_BY, LABEL_NETWORK, LABEL_PROJECT, LABEL_RELOAD_HASH, LABEL_STACK, LABEL_VOLUME,
    MANAGED_BY,
};
use crate::observed::{
    ContainerState, Health, Observed, ObservedContainer, ObservedNetwork, ObservedVolume,
};
use crate::readiness::{Probe, Readiness};

pub use build::BuildRequest;
pub use faults::ContainerFacts;
/// The labels a container is created with, for the fake engine to create it alike.
#[cfg(test)]
pub(crate) use spec::labels as container_labels;
pub use spec::{
    certificate_tar, executable_tar, file_tar, plain_file_tar, reload_marker_tar, secrets_tar,
};
pub use stream::ExecEnd;

/// Docker failures in the project's terms, each naming the object involved.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot reach the Docker daemon at {endpoint}: {detail}\n  fix: {fix}")]
    Unreachable {
        endpoint: String,
        detail: String,
        fix: String,
    },
    #[error("permission denied on the Docker endpoint {endpoint}\n  fix: {fix}")]
    PermissionDenied { endpoint: String, fix: String },
    #[error("the Docker endpoint {endpoint} is not usable: {detail}\n  fix: {fix}")]
    BadEndpoint {
        endpoint: String,
        detail: String,
        fix: String,
    },
    #[error("{message}\n  fix: {fix}")]
    WrongDaemon { message: String, fix: String },
    #[error("{kind} {name} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} {name}: conflict: {message}")]
    Conflict {
        kind: &'static str,
        name: String,
        message: String,
    },
    #[error("{kind} {name}: Docker answered {status}: {message}")]
    Api {
        kind: &'static str,
        name: String,
        status: u16,
        message: String,
    },
    #[error("{kind} {name}: {message}")]
    Other {
        kind: &'static str,
        name: String,
        message: String,
    },
}

impl DockerError {
    fn from_bollard(kind: &'static str, name: &str, e: bollard::errors::Error) -> DockerError {
        use bollard::errors::Error as B;
        let name = name.to_string();
        match e {
            B::DockerResponseServerError {
                status_code: 404, ..
            } => DockerError::NotFound { kind, name },
            B::DockerResponseServerError {
                status_code: 409,
                message,
            } => DockerError::Conflict {
                kind,
                name,
                message,
            },
            B::DockerResponseServerError {
                status_code,
                message,
            } => DockerError::Api {
                kind,
                name,
                status: status_code,
                message,
            },
            other => DockerError::Other {
                kind,
                name,
                message: other.to_string(),
            },
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, DockerError::NotFound { .. })
    }
}

pub type Result<T> = std::result::Result<T, DockerError>;

/// Docker's own health verdict, as its inspection reports it.
fn docker_health(state: &bollard::models::ContainerState) -> Health {
    match state.health.as_ref().and_then(|h| h.status) {
        Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
        Some(HealthStatusEnum::STARTING) => Health::Starting,
        _ => Health::None,
    }
}

/// A file read from inside a container.
pub type FileBytes = Vec<u8>;

#[derive(Clone)]
pub struct DockerClient {
    docker: Docker,
    /// Where the daemon is and what chose it: every message about reaching it says so.
    pub endpoint: Endpoint,
    /// What the daemon said about itself (OS, architecture, version).
    pub daemon: DaemonFacts,
}

/// One line of a container's log.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub text: String,
}

/// Bollard's per-request timeout: long, because image builds and pulls are single requests.
const REQUEST_TIMEOUT_SECS: u64 = 600;

impl DockerClient {
    /// Connects to `endpoint` and negotiates the API version (the daemon may be older than
    /// bollard's default); that first request doubles as the ping, so every later failure is
    /// about an object, not about reaching Docker. Then asks the daemon what it is and refuses
    /// one that does not run Linux containers.
    pub async fn connect(endpoint: &Endpoint) -> Result<DockerClient> {
        let docker = open(endpoint).map_err(|e| connect_error(endpoint, e))?;
        let docker = match docker.negotiate_version().await {
            Ok(d) => d,
            Err(e) => return Err(connect_error(endpoint, e)),
        };
        let info = docker
            .info()
            .await
            .map_err(|e| connect_error(endpoint, e))?;
        let daemon = DaemonFacts {
            os_type: info.os_type.unwrap_or_default(),
            architecture: info.architecture.unwrap_or_default(),
            operating_system: info.operating_system.unwrap_or_default(),
            server_version: info.server_version.unwrap_or_default(),
            name: info.name.unwrap_or_default(),
        };
        crate::endpoint::check_daemon(endpoint, &daemon).map_err(|e| DockerError::WrongDaemon {
            message: e.message,
            fix: e.fix,
        })?;
        Ok(DockerClient {
            docker,
            endpoint: endpoint.clone(),
            daemon,
        })
    }

    /// "Docker 20.10.24, linux/x86_64 (Debian GNU/Linux 12) at unix:///var/run/docker.sock (…)":
    /// which daemon this is and where it came from.
    pub fn describe(&self) -> String {
        let d = &self.daemon;
        format!(
            "Docker {}, {}/{} ({}) at {}",
            d.server_version,
            d.os_type,
            d.architecture,
            d.operating_system,
            self.endpoint.describe()
        )
    }

    fn project_filter(project: &str) -> HashMap<&'static str, Vec<String>> {
        HashMap::from([("label", vec![format!("{LABEL_PROJECT}={project}")])])
    }

    /// Every container labelled with the project, running or not.
    pub async fn list_containers(&self, project: &str) -> Result<Vec<ObservedContainer>> {
        let filters = Self::project_filter(project);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| DockerError::from_bollard("containers of project", project, e))?;
        Ok(list
            .into_iter()
            .map(|c| {
                let labels: BTreeMap<String, String> =
                    c.labels.unwrap_or_default().into_iter().collect();
                let status = c.status.unwrap_or_default();
                ObservedContainer {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .unwrap_or_default()
                        .first()
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    image: c.image.unwrap_or_default(),
                    state: match c.state {
                        Some(ContainerSummaryStateEnum::CREATED) => ContainerState::Created,
                        Some(ContainerSummaryStateEnum::RUNNING) => ContainerState::Running,
                        Some(ContainerSummaryStateEnum::PAUSED) => ContainerState::Paused,
                        Some(ContainerSummaryStateEnum::RESTARTING) => ContainerState::Restarting,
                        Some(ContainerSummaryStateEnum::EXITED) => ContainerState::Exited,
                        Some(ContainerSummaryStateEnum::DEAD) => ContainerState::Dead,
                        Some(ContainerSummaryStateEnum::REMOVING) => ContainerState::Removing,
                        _ => ContainerState::Other,
                    },
                    health: Health::from_status_text(&status),
                    status,
                    // Docker lists a published port once per address family.
                    ports: c
                        .ports
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|p| p.public_port.map(|host| (host, p.private_port)))
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                    applied_reload_hash: None,
                    ips: c
                        .network_settings
                        .and_then(|n| n.networks)
                        .into_iter()
                        .flatten()
                        .filter_map(|(_, e)| e.ip_address.filter(|ip| !ip.is_empty()))
                        .collect(),
                    labels,
                }
            })
            .collect())
    }

    pub async fn list_networks(&self, project: &str) -> Result<Vec<ObservedNetwork>> {
        let filters = Self::project_filter(project);
        let opts = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_networks(Some(opts))
            .await
            .map_err(|e| DockerError::from_bollard("networks of project", project, e))?;
        Ok(list
            .into_iter()
            .map(|n| ObservedNetwork {
                id: n.id.unwrap_or_default(),
                name: n.name.unwrap_or_default(),
            })
            .collect())
    }

    pub async fn list_volumes(&self, project: &str) -> Result<Vec<ObservedVolume>> {
        let filters = Self::project_filter(project);
        let opts = ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_volumes(Some(opts))
            .await
            .map_err(|e| DockerError::from_bollard("volumes of project", project, e))?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| ObservedVolume { name: v.name })
            .collect())
    }

    /// One snapshot of the project's objects, found by the project label only, containers in
    /// name order.
    pub async fn observe(&self, project: &str) -> Result<Observed> {
        let (mut containers, networks, volumes) = tokio::try_join!(
            self.list_containers(project),
            self.list_networks(project),
            self.list_volumes(project),
        )?;
        // A reload cannot relabel a container, so the applied hash is read back from the
        // marker the reload wrote (only for running containers that have reloadable files).
        for c in containers.iter_mut().filter(|c| {
            c.state == ContainerState::Running && c.labels.contains_key(LABEL_RELOAD_HASH)
        }) {
            if let Some(bytes) = self.read_file(&c.id, RELOAD_MARKER).await? {
                c.applied_reload_hash = Some(String::from_utf8_lossy(&bytes).trim().to_string());
            }
        }
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Observed {
            containers,
            networks,
            volumes,
        })
    }

    /// A file's content from inside a container (`None` when it does not exist).
    pub async fn read_file(&self, container: &str, path: &str) -> Result<Option<FileBytes>> {
        let opts = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let mut stream = self.docker.download_from_container(container, Some(opts));
        let mut tar_bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(b) => tar_bytes.extend_from_slice(&b),
                Err(e) => {
                    let err = DockerError::from_bollard("container", container, e);
                    return if err.is_not_found() {
                        Ok(None)
                    } else {
                        Err(err)
                    };
                }
            }
        }
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let entries = archive.entries().map_err(|e| DockerError::Other {
            kind: "container",
            name: container.into(),
            message: format!("reading {path}: {e}"),
        })?;
        for entry in entries.flatten() {
            let mut entry = entry;
            if entry.header().entry_type().is_file() {
                let mut out = Vec::new();
                if entry.read_to_end(&mut out).is_ok() {
                    return Ok(Some(out));
                }
            }
        }
        Ok(None)
    }

    /// Whether the image is on the daemon (one inspection, as [`DockerClient::image_labels`]).
    pub async fn image_exists(&self, image: &str) -> Result<bool> {
        Ok(self.image_labels(image).await?.is_some())
    }

    /// Pulls an image, reporting progress as (layer id, status, current, total).
    pub async fn pull(
        &self,
        image: &str,
        mut progress: impl FnMut(&str, &str, Option<i64>, Option<i64>),
    ) -> Result<()> {
        let (name, tag) = split_image(image);
        let opts = CreateImageOptionsBuilder::default()
            .from_image(name)
            .tag(tag)
            .build();
        let mut s = self.docker.create_image(Some(opts), None, None);
        while let Some(info) = s.next().await {
            let info = info.map_err(|e| DockerError::from_bollard("image", image, e))?;
            let (cur, total) = info
                .progress_detail
                .as_ref()
                .map_or((None, None), |p| (p.current, p.total));
            progress(
                info.id.as_deref().unwrap_or(""),
                info.status.as_deref().unwrap_or(""),
                cur,
                total,
            );
        }
        Ok(())
    }

    pub async fn create_network(&self, project: &str, name: &str) -> Result<()> {
        let labels = HashMap::from([
            (LABEL_PROJECT.to_string(), project.to_string()),
            (LABEL_NETWORK.to_string(), "default".to_string()),
            (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        ]);
        self.docker
            .create_network(NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
            .map_err(|e| DockerError::from_bollard("network", name, e))?;
        Ok(())
    }

    pub async fn create_volume(&self, project: &str, volume: &str, name: &str) -> Result<()> {
        self.create_volume_labelled(project, volume, name, &[])
            .await
    }

    async fn create_volume_labelled(
        &self,
        project: &str,
        volume: &str,
        name: &str,
        extra: &[(&str, &str)],
    ) -> Result<()> {
        let mut labels = HashMap::from([
            (LABEL_PROJECT.to_string(), project.to_string()),
            (LABEL_VOLUME.to_string(), volume.to_string()),
            (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        ]);
        labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.to_string()),
                driver: Some("local".into()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
            .map_err(|e| DockerError::from_bollard("volume", name, e))?;
        Ok(())
    }

    /// Creates the container for `c` under another name and with more network aliases: the
    /// replacement of a running instance, which cannot have its name yet.
    pub async fn create_container_as(
        &self,
        d: &Deployment,
        c: &Container,
        name: &str,
        extra_aliases: &[String],
    ) -> Result<String> {
        let body = spec::container_body(d, c, extra_aliases);
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        let created = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| DockerError::from_bollard("container", name, e))?;
        Ok(created.id)
    }

    /// Renames a container (running or not); its network aliases stay as they are.
    pub async fn rename(&self, container: &str, new_name: &str) -> Result<()> {
        let opts = bollard::query_parameters::RenameContainerOptionsBuilder::default()
            .name(new_name)
            .build();
        self.docker
            .rename_container(container, opts)
            .await
            .map_err(|e| DockerError::from_bollard("container", container, e))
    }

    /// Extracts a tar archive at `/` inside the container (works while it is only created).
    pub async fn upload(&self, container: &str, tar: Vec<u8>) -> Result<()> {
        let opts = UploadToContainerOptionsBuilder::default().path("/").build();
        self.docker
            .upload_to_container(container, Some(opts), body_full(tar.into()))
            .await
            .map_err(|e| DockerError::from_bollard("container", container, e))
    }

    pub async fn start(&self, container: &str) -> Result<()> {
        match self
            .docker
            .start_container(container, None::<StartContainerOptions>)
            .await
        {
            Ok(()) => Ok(()),
            // 304: already started.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(DockerError::from_bollard("container", container, e)),
        }
    }

    /// Stops (with the grace period) and removes a container; absent is fine.
    pub async fn stop_and_remove(&self, container: &str, grace_secs: u32) -> Result<()> {
        let stop = self
            .docker
            .stop_container(
                container,
                Some(
                    StopContainerOptionsBuilder::default()
                        .t(grace_secs as i32)
                        .build(),
                ),
            )
            .await;
        match stop {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => {}
            Err(e) => return Err(DockerError::from_bollard("container", container, e)),
        }
        self.remove_container(container).await
    }

    /// Removes a container and its anonymous volumes (`docker rm -fv`): the ones an image's
    /// `VOLUME` made, such as a Sentinel's /data, which nothing can attach again and which
    /// would otherwise pile up with every recreate. Named volumes (the data) are never
    /// touched by this.
    pub async fn remove_container(&self, container: &str) -> Result<()> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(container, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = DockerError::from_bollard("container", container, e);
                if err.is_not_found() {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    pub async fn remove_network(&self, name: &str) -> Result<()> {
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = DockerError::from_bollard("network", name, e);
                if err.is_not_found() {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        let opts = RemoveVolumeOptionsBuilder::default().force(false).build();
        match self.docker.remove_volume(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = DockerError::from_bollard("volume", name, e);
                if err.is_not_found() {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Runs a command inside a running container; returns its exit code and combined output.
    pub async fn exec(&self, container: &str, cmd: &[String]) -> Result<(i64, String)> {
        let (id, started) = self.start_attached(container, cmd, &[], false).await?;
        let mut out = String::new();
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(c) => out.push_str(&c.to_string()),
                    Err(e) => return Err(DockerError::from_bollard("container", container, e)),
                }
            }
        }
        Ok((self.exit_code(container, &id).await?, out))
    }

    /// `docker inspect` of one container, its errors named after it.
    async fn inspect(&self, container: &str) -> Result<bollard::models::ContainerInspectResponse> {
        self.docker
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
            .map_err(|e| DockerError::from_bollard("container", container, e))
    }

    /// One look at a container for a wait: its state and Docker's health; when it is running
    /// but not yet reported healthy, also one run of the healthcheck test.
    pub async fn probe(&self, container: &str, readiness: &Readiness) -> Result<Probe> {
        let info = self.inspect(container).await?;
        let state = info.state.unwrap_or_default();
        let docker_health = docker_health(&state);
        let health = state.health.clone().unwrap_or_default();
        let mut probe = Probe {
            state: match state.status {
                Some(bollard::models::ContainerStateStatusEnum::CREATED) => ContainerState::Created,
                Some(bollard::models::ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
                Some(bollard::models::ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
                Some(bollard::models::ContainerStateStatusEnum::RESTARTING) => {
                    ContainerState::Restarting
                }
                Some(bollard::models::ContainerStateStatusEnum::EXITED) => ContainerState::Exited,
                Some(bollard::models::ContainerStateStatusEnum::DEAD) => ContainerState::Dead,
                Some(bollard::models::ContainerStateStatusEnum::REMOVING) => {
                    ContainerState::Removing
                }
                _ => ContainerState::Other,
            },
            exit_code: state.exit_code,
            docker_health,
            docker_probe_output: health.log.unwrap_or_default().last().map(|r| {
                format!(
                    "exit {}: {}",
                    r.exit_code.unwrap_or(-1),
                    r.output.clone().unwrap_or_default().trim()
                )
            }),
            exec: None,
        };
        if let Some(argv) = readiness.exec_argv() {
            if probe.state == ContainerState::Running && probe.docker_health != Health::Healthy {
                // A failed exec (the process is restarting) is "not yet", not an error.
                probe.exec = self.exec(container, &argv).await.ok();
            }
        }
        Ok(probe)
    }

    /// The last `tail` lines of a container's log.
    pub async fn tail_logs(&self, container: &str, tail: u32) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        let mut s = Box::pin(self.logs(container, Some(tail), false));
        while let Some(line) = s.next().await {
            lines.push(line?.text);
        }
        Ok(lines)
    }

    /// A container's log as lines (stdout and stderr interleaved as Docker stores them).
    pub fn logs(
        &self,
        container: &str,
        tail: Option<u32>,
        follow: bool,
    ) -> impl Stream<Item = Result<LogLine>> + Send + 'static {
        self.container_log_lines(container, log_options(tail, follow))
    }

    fn container_log_lines(
        &self,
        container: &str,
        opts: bollard::query_parameters::LogsOptions,
    ) -> impl Stream<Item = Result<LogLine>> + Send + 'static {
        log_lines(
            self.docker.logs(container, Some(opts)),
            "container",
            container,
        )
    }

    fn task_log_lines(
        &self,
        task_id: &str,
        opts: bollard::query_parameters::LogsOptions,
    ) -> impl Stream<Item = Result<LogLine>> + Send + 'static {
        log_lines(self.docker.task_logs(task_id, Some(opts)), "task", task_id)
    }

    /// A Swarm task's log as lines, wherever in the swarm the task runs (asked of a manager).
    pub fn task_logs(
        &self,
        task_id: &str,
        tail: Option<u32>,
        follow: bool,
    ) -> impl Stream<Item = Result<LogLine>> + Send + 'static {
        self.task_log_lines(task_id, log_options(tail, follow))
    }

    /// Whether a named volume exists on the daemon.
    pub async fn volume_exists(&self, name: &str) -> Result<bool> {
        match self.docker.inspect_volume(name).await {
            Ok(_) => Ok(true),
            Err(e) => {
                let err = DockerError::from_bollard("volume", name, e);
                if err.is_not_found() {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// The regular files at the top of the named volume `name` (file name → content). A
    /// volume that does not exist reads as empty and is not created (mounting it would create
    /// it without the project's labels). Read through a helper container (see
    /// [`DockerClient::with_volume_helper`]), so it works on any daemon, local or remote.
    pub async fn read_volume(
        &self,
        project: &str,
        name: &str,
        image: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>> {
        if !self.volume_exists(name).await? {
            return Ok(BTreeMap::new());
        }
        self.with_volume_helper(project, name, image, |id| async move {
            let opts = DownloadFromContainerOptionsBuilder::default()
                .path(VOLUME_HELPER_MOUNT)
                .build();
            let mut stream = self.docker.download_from_container(&id, Some(opts));
            let mut tar_bytes = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| DockerError::from_bollard("volume", name, e))?;
                tar_bytes.extend_from_slice(&chunk);
            }
            top_level_files(&tar_bytes).map_err(|e| DockerError::Other {
                kind: "volume",
                name: name.to_string(),
                message: format!("reading its files: {e}"),
            })
        })
        .await
    }

    /// Writes `files` (name, content, mode) at the top of the named volume `name`, creating the
    /// volume with the project's labels (`volume`: its Compose key) when it is missing. One
    /// archive carries them all, so they land together.
    pub async fn write_volume(
        &self,
        project: &str,
        volume: &str,
        name: &str,
        image: &str,
        files: &[VolumeFile],
    ) -> Result<()> {
        if !self.volume_exists(name).await? {
            // Written on whichever target the project runs (on a swarm, the manager this CLI
            // talks to): labelled for both, so `down --volumes` of either removes it.
            self.create_volume_labelled(project, volume, name, &[(LABEL_STACK, project)])
                .await?;
        }
        let mut tar = tar::Builder::new(Vec::new());
        for f in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(f.content.len() as u64);
            h.set_mode(f.mode);
            h.set_mtime(0);
            h.set_cksum();
            tar.append_data(&mut h, &f.name, f.content.as_slice())
                .map_err(|e| DockerError::Other {
                    kind: "volume",
                    name: name.to_string(),
                    message: format!("cannot pack {}: {e}", f.name),
                })?;
        }
        let tar = tar.into_inner().unwrap_or_default();
        self.with_volume_helper(project, name, image, |id| async move {
            let opts = UploadToContainerOptionsBuilder::default()
                .path(VOLUME_HELPER_MOUNT)
                .build();
            self.docker
                .upload_to_container(&id, Some(opts), body_full(tar.into()))
                .await
                .map_err(|e| DockerError::from_bollard("volume", name, e))
        })
        .await
    }

    /// Runs `op` with the id of a created, never started container of `image` that mounts the
    /// volume `name` at [`VOLUME_HELPER_MOUNT`], and removes the container afterwards, also when
    /// `op` failed. The Engine's archive endpoints reach a created container's mounted volumes,
    /// so nothing runs and no shell is needed in the image; any image on the daemon will do.
    /// The container carries the project's label: one left behind (the process killed) is
    /// removed by the project's next `up` or `down`.
    async fn with_volume_helper<T, F, Fut>(
        &self,
        project: &str,
        name: &str,
        image: &str,
        op: F,
    ) -> Result<T>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let helper = format!("{project}-volume-io-{}-{nanos}", std::process::id());
        let body = bollard::models::ContainerCreateBody {
            image: Some(image.to_string()),
            labels: Some(HashMap::from([
                (LABEL_PROJECT.to_string(), project.to_string()),
                (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
            ])),
            network_disabled: Some(true),
            host_config: Some(bollard::models::HostConfig {
                mounts: Some(vec![bollard::models::Mount {
                    typ: Some(bollard::models::MountType::VOLUME),
                    source: Some(name.to_string()),
                    target: Some(VOLUME_HELPER_MOUNT.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default()
            .name(&helper)
            .build();
        let created = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(
                |e| match DockerError::from_bollard("container", &helper, e) {
                    // The container is new: what is missing is its image.
                    DockerError::NotFound { .. } => DockerError::NotFound {
                        kind: "image",
                        name: image.to_string(),
                    },
                    other => other,
                },
            )?;
        let result = op(created.id.clone()).await;
        let removed = self.remove_container(&created.id).await;
        let value = result?;
        removed?;
        Ok(value)
    }

    /// Sends SIGKILL to a container's main process: a crash, not a graceful stop, so its
    /// restart policy brings it back (used by `drill instance`).
    pub async fn kill(&self, container: &str) -> Result<()> {
        let opts = bollard::query_parameters::KillContainerOptions {
            signal: "SIGKILL".to_string(),
        };
        self.docker
            .kill_container(container, Some(opts))
            .await
            .map_err(|e| DockerError::from_bollard("container", container, e))
    }

    /// Stops a container (SIGTERM, then SIGKILL after the grace period) and keeps it, so it
    /// can be started again; a manual stop also keeps its restart policy from reviving it.
    pub async fn stop(&self, container: &str, grace_secs: u32) -> Result<()> {
        let opts = StopContainerOptionsBuilder::default()
            .t(grace_secs as i32)
            .build();
        match self.docker.stop_container(container, Some(opts)).await {
            // 304: already stopped.
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(DockerError::from_bollard("container", container, e)),
        }
    }
}

/// One file to write into a volume: its name at the volume's top, content and mode.
#[derive(Clone)]
pub struct VolumeFile {
    pub name: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

impl std::fmt::Debug for VolumeFile {
    // The content may be a private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeFile")
            .field("name", &self.name)
            .field("bytes", &self.content.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// Where the volume helper container mounts the volume it reads or writes.
const VOLUME_HELPER_MOUNT: &str = "/volume";

/// The regular files directly under the archived directory (entries `volume/name`), by name;
/// subdirectories and their files are skipped.
fn top_level_files(tar_bytes: &[u8]) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.into_owned();
        let parts: Vec<String> = path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        // The archive's root is the directory asked for (`volume/`).
        let [_, name] = parts.as_slice() else {
            continue;
        };
        let name = name.clone();
        let mut content = Vec::new();
        entry.read_to_end(&mut content)?;
        files.insert(name, content);
    }
    Ok(files)
}

fn split_image(image: &str) -> (&str, &str) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name, digest);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

/// Opens a client for the endpoint's transport (no request is made yet).
fn open(endpoint: &Endpoint) -> std::result::Result<Docker, bollard::errors::Error> {
    let version = bollard::API_DEFAULT_VERSION;
    match &endpoint.transport {
        #[cfg(unix)]
        Transport::Unix(path) => {
            Docker::connect_with_unix(&path.to_string_lossy(), REQUEST_TIMEOUT_SECS, version)
        }
        #[cfg(not(unix))]
        Transport::Unix(_) => Err(bollard::errors::Error::UnsupportedURISchemeError {
            uri: endpoint.host.clone(),
        }),
        #[cfg(windows)]
        Transport::NamedPipe(pipe) => {
            Docker::connect_with_named_pipe(pipe, REQUEST_TIMEOUT_SECS, version)
        }
        #[cfg(not(windows))]
        Transport::NamedPipe(_) => Err(bollard::errors::Error::UnsupportedURISchemeError {
            uri: endpoint.host.clone(),
        }),
        Transport::Tcp { addr, tls: None } => {
            Docker::connect_with_http(&format!("tcp://{addr}"), REQUEST_TIMEOUT_SECS, version)
        }
        Transport::Tcp {
            addr,
            tls: Some(tls),
        } => Docker::connect_with_ssl(
            &format!("tcp://{addr}"),
            &tls.key,
            &tls.cert,
            &tls.ca,
            REQUEST_TIMEOUT_SECS,
            version,
        ),
        Transport::Ssh { user, host, port } => {
            ssh::connect(user.as_deref(), host, *port, REQUEST_TIMEOUT_SECS)
        }
    }
}

/// Turns a failed connect/ping into the message a person can act on: the endpoint, where it
/// came from, and the fix for this platform and this kind of endpoint.
fn connect_error(endpoint: &Endpoint, e: bollard::errors::Error) -> DockerError {
    use bollard::errors::Error as B;
    let os = Os::current();
    let detail = error_chain(&e);
    let lower = detail.to_lowercase();
    let described = endpoint.describe();
    let tls = match &endpoint.transport {
        Transport::Tcp { tls: Some(t), .. } => Some(t),
        _ => None,
    };
    let unreachable = |detail: String, fix: String| DockerError::Unreachable {
        endpoint: described.clone(),
        detail,
        fix,
    };
    match (&e, tls) {
        (B::SocketNotFoundError(path), _) => unreachable(
            format!("no socket at {path} (is Docker installed and running?)"),
            endpoint.fix(os),
        ),
        (B::CertPathError { path } | B::CertParseError { path }, Some(t)) => unreachable(
            format!("cannot use the TLS file {} ({})", path.display(), t.origin),
            "make sure ca.pem, cert.pem and key.pem there are readable PEM files".into(),
        ),
        (B::UnsupportedURISchemeError { .. }, _) => DockerError::BadEndpoint {
            endpoint: described.clone(),
            detail: format!("this build of radar-deploy cannot use {} here", endpoint.host),
            fix: if cfg!(windows) {
                "on Windows use npipe://, tcp://, https:// or ssh://".into()
            } else {
                "on this platform use unix://, tcp://, https:// or ssh://".into()
            },
        },
        (_, Some(t)) if lower.contains("unknownissuer") || lower.contains("unknown issuer") => {
            unreachable(
                format!(
                    "the daemon's certificate is not signed by the CA {} ({}): {detail}",
                    t.ca.display(),
                    t.origin
                ),
                "use the CA that signed the daemon's certificate (ca.pem), or check that this is the \
                 daemon you meant"
                    .into(),
            )
        }
        (_, Some(t)) if lower.contains("notvalidforname") || lower.contains("not valid for name") => {
            unreachable(
                format!("the daemon's certificate does not name the host in {}: {detail}", endpoint.host),
                format!(
                    "connect by a name or address the certificate covers, or reissue it (CA {}, {})",
                    t.ca.display(),
                    t.origin
                ),
            )
        }
        (_, Some(t)) if lower.contains("alert") || lower.contains("certificate required") => {
            unreachable(
                format!("the daemon refused the TLS handshake: {detail}"),
                format!(
                    "the daemon must trust your client certificate {} (signed by its CA; {})",
                    t.cert.display(),
                    t.origin
                ),
            )
        }
        _ if lower.contains("permission denied") => DockerError::PermissionDenied {
            endpoint: described.clone(),
            fix: endpoint.permission_fix(os),
        },
        _ if matches!(endpoint.transport, Transport::Tcp { tls: None, .. })
            && (lower.contains("invalid http version")
                || lower.contains("http/0.9")
                || lower.contains("connection reset")
                || lower.contains("connection closed before message completed")) =>
        {
            unreachable(
                format!("the endpoint hung up on plain HTTP (a TLS port?): {detail}"),
                "if it speaks TLS (port 2376 usually does), set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH \
                 (or use a context with TLS material); otherwise start the daemon there"
                    .into(),
            )
        }
        _ => unreachable(detail, endpoint.fix(os)),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn log_options(tail: Option<u32>, follow: bool) -> bollard::query_parameters::LogsOptions {
    let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
    LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .follow(follow)
        .tail(&tail)
        .build()
}

/// Docker's log frames as lines: frames are writes, not lines, so split them and carry partial
/// lines over.
fn log_lines(
    raw: impl Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>> + Send + 'static,
    kind: &'static str,
    name: &str,
) -> impl Stream<Item = Result<LogLine>> + Send + 'static {
    let name = name.to_string();
    futures_util::stream::unfold(
        (
            Box::pin(raw),
            String::new(),
            std::collections::VecDeque::new(),
            false,
        ),
        move |(mut raw, mut partial, mut ready, mut done)| {
            let name = name.clone();
            async move {
                loop {
                    if let Some(line) = ready.pop_front() {
                        return Some((Ok(LogLine { text: line }), (raw, partial, ready, done)));
                    }
                    if done {
                        return None;
                    }
                    match raw.next().await {
                        Some(Ok(chunk)) => {
                            let text = match chunk {
                                LogOutput::StdOut { message }
                                | LogOutput::StdErr { message }
                                | LogOutput::Console { message }
                                | LogOutput::StdIn { message } => {
                                    String::from_utf8_lossy(&message).into_owned()
                                }
                            };
                            partial.push_str(&text);
                            while let Some(i) = partial.find('\n') {
                                let line: String = partial.drain(..=i).collect();
                                ready.push_back(line.trim_end_matches(['\n', '\r']).to_string());
                            }
                        }
                        Some(Err(e)) => {
                            done = true;
                            return Some((
                                Err(DockerError::from_bollard(kind, &name, e)),
                                (raw, partial, ready, done),
                            ));
                        }
                        None => {
                            done = true;
                            if !partial.is_empty() {
                                ready.push_back(std::mem::take(&mut partial));
                            }
                        }
                    }
                }
            }
        },
    )
}
