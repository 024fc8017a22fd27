//! The Swarm half of the facade: services, tasks, configs, secrets, overlay networks and node
//! labels, in the project's terms. Specs come from the pure [`crate::swarm::Stack`]; this file
//! only maps them to bollard's types and Docker's answers back to plain structs.

use std::collections::HashMap;

use base64::Engine as _;
use bollard::models::{
    ConfigSpec, EndpointPortConfig, EndpointPortConfigProtocolEnum,
    EndpointPortConfigPublishModeEnum, EndpointSpec, EndpointSpecModeEnum, HealthConfig, Limit,
    LocalNodeState, Mount, MountType, MountVolumeOptions, NetworkAttachmentConfig,
    NetworkCreateRequest, SecretSpec, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecModeReplicatedJob, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum,
    ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, SwarmInitRequest, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecConfigs, TaskSpecContainerSpecFile, TaskSpecContainerSpecFile1,
    TaskSpecContainerSpecSecrets, TaskSpecPlacement, TaskSpecPlacementPreferences,
    TaskSpecPlacementSpread, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    InspectNetworkOptions, LeaveSwarmOptions, ListConfigsOptions, ListContainersOptions,
    ListNetworksOptions, ListNodesOptions, ListSecretsOptions, ListServicesOptions,
    ListTasksOptions, ListVolumesOptions, UpdateNodeOptionsBuilder, UpdateServiceOptions,
};
use sha2::{Digest, Sha256};

use super::{DockerClient, DockerError, Result};
use crate::labels::{LABEL_CONFIG_HASH, LABEL_MANAGED_BY, LABEL_STACK, MANAGED_BY};
use crate::swarm::observed::{
    ObjectKind, ObservedNode, ObservedService, ObservedTask, SpecHash, StackObject,
    SwarmMembership, SwarmObserved,
};
use crate::swarm::{self, Stack, SwarmConfig, SwarmSecret, UpdateOrder};

const NS: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;

fn stack_filter(project: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".into(), vec![format!("{LABEL_STACK}={project}")])])
}

/// The value with every object's keys in sorted order, whatever map type serde_json uses.
fn canonical(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let sorted: std::collections::BTreeMap<String, Value> =
                m.into_iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(canonical).collect()),
        other => other,
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// The service spec for one service of the stack; `ids` maps config and secret names to ids.
fn service_spec(st: &Stack, s: &swarm::Service, ids: &HashMap<String, String>) -> ServiceSpec {
    let c = &s.spec;
    let file = |name: &str, mode: u32| TaskSpecContainerSpecFile {
        name: Some(name.into()),
        uid: Some("0".into()),
        gid: Some("0".into()),
        mode: Some(mode),
    };
    let secrets = c
        .secrets
        .iter()
        .filter_map(|k| st.secret(k))
        .map(|sec| TaskSpecContainerSpecSecrets {
            file: Some(file(&sec.key, sec.mode())),
            secret_id: ids.get(&sec.name).cloned(),
            secret_name: Some(sec.name.clone()),
        })
        .collect();
    let configs = c
        .files
        .iter()
        .filter_map(|m| {
            let key = m.file.replace(['.', '-'], "_");
            st.config(&key).map(|cfg| TaskSpecContainerSpecConfigs {
                file: Some(TaskSpecContainerSpecFile1 {
                    name: Some(m.target.clone()),
                    uid: Some("0".into()),
                    gid: Some("0".into()),
                    // Writable by its owner in a copy: the Sentinel copies its config (`cp`
                    // keeps the mode) and appends to the copy.
                    mode: Some(0o644),
                }),
                config_id: ids.get(&cfg.name).cloned(),
                config_name: Some(cfg.name.clone()),
                ..Default::default()
            })
        })
        .collect();
    let labels: HashMap<String, String> = swarm::labels(st, s).into_iter().collect();
    let mounts = c
        .volumes
        .iter()
        .map(|v| Mount {
            target: Some(v.target.clone()),
            source: Some(st.volume_name(&v.volume)),
            typ: Some(MountType::VOLUME),
            volume_options: Some(MountVolumeOptions {
                labels: Some(HashMap::from([(LABEL_STACK.into(), st.project.clone())])),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let (update_order, rollback_order) = match s.update_order {
        UpdateOrder::StartFirst => (
            ServiceSpecUpdateConfigOrderEnum::START_FIRST,
            ServiceSpecRollbackConfigOrderEnum::START_FIRST,
        ),
        UpdateOrder::StopFirst => (
            ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
            ServiceSpecRollbackConfigOrderEnum::STOP_FIRST,
        ),
    };
    ServiceSpec {
        name: Some(st.service_name(s)),
        labels: Some(labels.clone()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(c.image.clone()),
                labels: Some(labels),
                // Compose's `command` is the image's CMD, i.e. Swarm's `Args`.
                args: c.command.clone(),
                hostname: s.hostname.clone(),
                env: Some(c.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                user: c.user.clone(),
                mounts: Some(mounts),
                stop_grace_period: Some(i64::from(c.stop_grace_secs) * NS),
                health_check: c.healthcheck.as_ref().map(|h| HealthConfig {
                    test: Some(h.test.clone()),
                    interval: Some(h.interval_ms as i64 * MS),
                    timeout: Some(h.timeout_ms as i64 * MS),
                    retries: Some(i64::from(h.retries)),
                    start_period: Some(h.start_period_ms as i64 * MS),
                    ..Default::default()
                }),
                secrets: Some(secrets),
                configs: Some(configs),
                sysctls: (!c.sysctls.is_empty()).then(|| c.sysctls.clone().into_iter().collect()),
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: Some(c.nano_cpus),
                    memory_bytes: Some(c.memory_bytes),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                delay: Some(2 * NS),
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(s.constraints.clone()),
                preferences: Some(
                    s.spread
                        .iter()
                        .map(|d| TaskSpecPlacementPreferences {
                            spread: Some(TaskSpecPlacementSpread {
                                spread_descriptor: Some(d.clone()),
                            }),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(st.network.clone()),
                aliases: Some(vec![s.name.clone()]),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::from(s.replicas)),
            }),
            ..Default::default()
        }),
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism: Some(1),
            delay: Some(0),
            failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
            monitor: Some(swarm::UPDATE_MONITOR_SECS as i64 * NS),
            order: Some(update_order),
            ..Default::default()
        }),
        rollback_config: Some(ServiceSpecRollbackConfig {
            parallelism: Some(1),
            delay: Some(0),
            failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
            monitor: Some(swarm::UPDATE_MONITOR_SECS as i64 * NS),
            order: Some(rollback_order),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(if s.dnsrr {
                EndpointSpecModeEnum::DNSRR
            } else {
                EndpointSpecModeEnum::VIP
            }),
            ports: Some(
                c.published
                    .iter()
                    .map(|p| EndpointPortConfig {
                        protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                        target_port: Some(i64::from(p.container)),
                        published_port: Some(i64::from(p.host)),
                        publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }),
        ..Default::default()
    }
}

/// The stack label and the managed-by label, on configs and secrets.
fn object_labels(project: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_STACK.to_string(), project.to_string()),
        (LABEL_MANAGED_BY.into(), MANAGED_BY.into()),
    ])
}

/// The service spec with its two hash labels: the task template's on the tasks' containers,
/// the whole spec's on the service.
fn labelled_spec(
    st: &Stack,
    s: &swarm::Service,
    ids: &HashMap<String, String>,
) -> (ServiceSpec, SpecHash) {
    let mut spec = service_spec(st, s, ids);
    // bollard's specs hold HashMaps, whose order changes between runs: hash a canonical
    // form (keys sorted), or every run would update every service.
    let digest = |v: serde_json::Value| {
        hex::encode(&Sha256::digest(canonical(v).to_string().as_bytes())[..16])
    };
    let tasks = digest(serde_json::to_value(&spec.task_template).expect("task specs serialize"));
    if let Some(l) = spec
        .task_template
        .as_mut()
        .and_then(|t| t.container_spec.as_mut())
        .and_then(|c| c.labels.as_mut())
    {
        l.insert(LABEL_CONFIG_HASH.into(), tasks.clone());
    }
    let service = digest(serde_json::to_value(&spec).expect("service specs serialize"));
    if let Some(l) = spec.labels.as_mut() {
        l.insert(LABEL_CONFIG_HASH.into(), service.clone());
    }
    (spec, SpecHash { service, tasks })
}

impl DockerClient {
    /// The hashes of the spec [`DockerClient::create_service`] and
    /// [`DockerClient::update_service`] would send for `s` (see [`SpecHash`]), which the plan
    /// compares with the ones on the swarm. Talks to no daemon.
    pub fn spec_hash(
        &self,
        st: &Stack,
        s: &swarm::Service,
        ids: &HashMap<String, String>,
    ) -> SpecHash {
        labelled_spec(st, s, ids).1
    }

    /// Whether the daemon is a swarm manager (the only kind that can create services).
    pub async fn swarm_membership(&self) -> Result<SwarmMembership> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| DockerError::from_bollard("daemon", &self.endpoint.host, e))?;
        let Some(sw) = info.swarm else {
            return Ok(SwarmMembership::NotInSwarm);
        };
        if sw.local_node_state != Some(LocalNodeState::ACTIVE) {
            return Ok(SwarmMembership::NotInSwarm);
        }
        Ok(if sw.control_available == Some(true) {
            SwarmMembership::Manager {
                node_id: sw.node_id.unwrap_or_default(),
            }
        } else {
            SwarmMembership::Worker
        })
    }

    /// The id of this daemon's node, once it is known to be a swarm manager (the only kind
    /// that can create services); otherwise what to do about it.
    pub async fn swarm_manager(&self) -> Result<String> {
        match self.swarm_membership().await? {
            SwarmMembership::Manager { node_id } => Ok(node_id),
            SwarmMembership::Worker => Err(DockerError::WrongDaemon {
                message: format!(
                    "this Docker daemon ({}) is a swarm worker; --target swarm needs a manager",
                    self.endpoint.describe()
                ),
                fix: "point DOCKER_HOST at a manager node, or promote this one (`docker node \
                      promote`)"
                    .into(),
            }),
            SwarmMembership::NotInSwarm => Err(DockerError::WrongDaemon {
                message: format!(
                    "this Docker daemon ({}) is not part of a swarm",
                    self.endpoint.describe()
                ),
                fix: "run `docker swarm init` (or `docker swarm join` an existing swarm as a \
                      manager), or use --target single"
                    .into(),
            }),
        }
    }

    /// `docker swarm init` on loopback: a single-node swarm reachable from this machine only.
    pub async fn init_swarm_loopback(&self) -> Result<()> {
        self.docker
            .init_swarm(SwarmInitRequest {
                listen_addr: Some("127.0.0.1:2377".into()),
                advertise_addr: Some("127.0.0.1".into()),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|e| DockerError::from_bollard("swarm", "init", e))
    }

    /// `docker swarm leave --force`.
    pub async fn leave_swarm(&self) -> Result<()> {
        self.docker
            .leave_swarm(Some(LeaveSwarmOptions { force: true }))
            .await
            .map_err(|e| DockerError::from_bollard("swarm", "leave", e))
    }

    /// Puts the labels (`label=true`) on the node, keeping the ones it has.
    pub async fn add_node_labels(&self, node_id: &str, labels: &[String]) -> Result<()> {
        self.edit_node_labels(node_id, |have| {
            have.extend(labels.iter().map(|k| (k.clone(), "true".to_string())))
        })
        .await
    }

    /// Creates the stack's attachable overlay network.
    pub async fn create_overlay_network(&self, project: &str, name: &str) -> Result<()> {
        let req = NetworkCreateRequest {
            name: name.into(),
            driver: Some("overlay".into()),
            attachable: Some(true),
            labels: Some(HashMap::from([
                (LABEL_STACK.into(), project.into()),
                (LABEL_MANAGED_BY.into(), MANAGED_BY.into()),
            ])),
            ..Default::default()
        };
        self.docker
            .create_network(req)
            .await
            .map(|_| ())
            .map_err(|e| DockerError::from_bollard("network", name, e))
    }

    /// The stack's configs and secrets, by the stack label.
    pub async fn stack_objects(&self, project: &str) -> Result<Vec<StackObject>> {
        let filters = || Some(stack_filter(project));
        let configs = self
            .docker
            .list_configs(Some(ListConfigsOptions { filters: filters() }))
            .await
            .map_err(|e| DockerError::from_bollard("config", project, e))?
            .into_iter()
            .map(|c| StackObject {
                kind: ObjectKind::Config,
                name: c.spec.and_then(|s| s.name).unwrap_or_default(),
                id: c.id.unwrap_or_default(),
            });
        let secrets = self
            .docker
            .list_secrets(Some(ListSecretsOptions { filters: filters() }))
            .await
            .map_err(|e| DockerError::from_bollard("secret", project, e))?
            .into_iter()
            .map(|c| StackObject {
                kind: ObjectKind::Secret,
                name: c.spec.and_then(|s| s.name).unwrap_or_default(),
                id: c.id.unwrap_or_default(),
            });
        Ok(configs.chain(secrets).collect())
    }

    /// Creates a config of the project; returns its id.
    pub async fn create_config(&self, project: &str, c: &SwarmConfig) -> Result<String> {
        self.docker
            .create_config(ConfigSpec {
                name: Some(c.name.clone()),
                labels: Some(object_labels(project)),
                data: Some(b64(&c.content)),
                ..Default::default()
            })
            .await
            .map(|r| r.id)
            .map_err(|e| DockerError::from_bollard("config", &c.name, e))
    }

    /// Creates a secret of the project; returns its id.
    pub async fn create_secret(&self, project: &str, s: &SwarmSecret) -> Result<String> {
        self.docker
            .create_secret(SecretSpec {
                name: Some(s.name.clone()),
                labels: Some(object_labels(project)),
                data: Some(b64(s.value.expose())),
                ..Default::default()
            })
            .await
            .map(|r| r.id)
            .map_err(|e| DockerError::from_bollard("secret", &s.name, e))
    }

    /// Creates the service from the stack; `ids` maps config and secret names to ids. Returns
    /// the hash its tasks carry. No registry credentials: a local image is used as it is; the
    /// daemon's "could not be accessed on a registry" warning is expected offline.
    pub async fn create_service(
        &self,
        st: &Stack,
        s: &swarm::Service,
        ids: &HashMap<String, String>,
    ) -> Result<String> {
        let (spec, hash) = labelled_spec(st, s, ids);
        let name = st.service_name(s);
        self.docker
            .create_service(spec, None)
            .await
            .map_err(|e| DockerError::from_bollard("service", &name, e))?;
        Ok(hash.tasks)
    }

    /// Creates the release command's job: the service spec of `job` in Swarm's
    /// `replicated-job` mode, one task run to completion and never restarted (a failed release
    /// must not run again by itself), with no update or rollback policy (a job has none).
    pub async fn create_job(
        &self,
        st: &Stack,
        job: &swarm::Service,
        ids: &HashMap<String, String>,
    ) -> Result<()> {
        let (mut spec, _) = labelled_spec(st, job, ids);
        spec.mode = Some(ServiceSpecMode {
            replicated_job: Some(ServiceSpecModeReplicatedJob {
                max_concurrent: Some(1),
                total_completions: Some(1),
            }),
            ..Default::default()
        });
        spec.update_config = None;
        spec.rollback_config = None;
        if let Some(t) = spec.task_template.as_mut() {
            t.restart_policy = Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            });
        }
        let name = st.service_name(job);
        self.docker
            .create_service(spec, None)
            .await
            .map_err(|e| DockerError::from_bollard("service", &name, e))?;
        Ok(())
    }

    /// Replaces the service's spec with the stack's (Swarm's rolling update, with the stack's
    /// policy). Returns the hash the tasks of the new spec carry.
    pub async fn update_service(
        &self,
        st: &Stack,
        s: &swarm::Service,
        ids: &HashMap<String, String>,
    ) -> Result<String> {
        let (spec, hash) = labelled_spec(st, s, ids);
        let name = st.service_name(s);
        let current = self
            .docker
            .inspect_service(&name, None)
            .await
            .map_err(|e| DockerError::from_bollard("service", &name, e))?;
        let version = current.version.and_then(|v| v.index).unwrap_or_default() as i32;
        self.update_service_at(&name, spec, version).await?;
        Ok(hash.tasks)
    }

    /// What the project holds on the swarm, for [`crate::swarm::plan`]: the nodes with their
    /// labels, the networks named after the project, its services, configs and secrets.
    pub async fn observe_swarm(&self, project: &str) -> Result<SwarmObserved> {
        let node_id = match self.swarm_membership().await? {
            SwarmMembership::Manager { node_id } => node_id,
            SwarmMembership::Worker | SwarmMembership::NotInSwarm => String::new(),
        };
        let nodes = self.swarm_nodes().await?;
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(HashMap::from([(
                    "name".into(),
                    vec![format!("{project}_")],
                )])),
            }))
            .await
            .map_err(|e| DockerError::from_bollard("network", project, e))?
            .into_iter()
            .filter_map(|n| n.name)
            .collect();
        Ok(SwarmObserved {
            node_id,
            nodes,
            networks,
            services: self.list_services(project).await?,
            objects: self.stack_objects(project).await?,
        })
    }

    /// The project's services (by the stack label), sorted by name.
    pub async fn list_services(&self, project: &str) -> Result<Vec<ObservedService>> {
        let services = self
            .docker
            .list_services(Some(ListServicesOptions {
                filters: Some(stack_filter(project)),
                ..Default::default()
            }))
            .await
            .map_err(|e| DockerError::from_bollard("service", project, e))?;
        let mut out: Vec<ObservedService> = services
            .into_iter()
            .map(|s| {
                let spec = s.spec.unwrap_or_default();
                let hash_on = |labels: Option<&HashMap<String, String>>| {
                    labels.and_then(|l| l.get(LABEL_CONFIG_HASH)).cloned()
                };
                let container = spec
                    .task_template
                    .as_ref()
                    .and_then(|t| t.container_spec.as_ref());
                let hash = hash_on(spec.labels.as_ref())
                    .zip(hash_on(container.and_then(|c| c.labels.as_ref())))
                    .map(|(service, tasks)| SpecHash { service, tasks });
                let configs = container
                    .and_then(|c| c.configs.as_ref())
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.config_name.clone())
                    .collect();
                let secrets = container
                    .and_then(|c| c.secrets.as_ref())
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.secret_name.clone())
                    .collect();
                ObservedService {
                    id: s.id.unwrap_or_default(),
                    image: container.and_then(|c| c.image.clone()).unwrap_or_default(),
                    name: spec.name.unwrap_or_default(),
                    replicas: spec
                        .mode
                        .and_then(|m| m.replicated)
                        .and_then(|r| r.replicas)
                        .unwrap_or(0) as u64,
                    published: spec
                        .endpoint_spec
                        .and_then(|e| e.ports)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|p| p.published_port.map(|n| n as u16))
                        .collect(),
                    update_state: s
                        .update_status
                        .as_ref()
                        .and_then(|u| u.state.as_ref())
                        .map(|st| st.to_string()),
                    update_message: s.update_status.and_then(|u| u.message),
                    hash,
                    configs,
                    secrets,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The tasks of one service that Swarm wants running.
    pub async fn service_tasks(&self, service: &str) -> Result<Vec<ObservedTask>> {
        self.tasks_of(service, true).await
    }

    /// The tasks attached to a swarm network, as (task name, IP address): `demo_app.2.x1y2z3`,
    /// `10.0.1.5`. From the network's verbose inspect, which a node knows once one of its
    /// containers is attached (nginx's `$upstream_addr` names a task by this address).
    pub async fn network_task_addresses(&self, network: &str) -> Result<Vec<(String, String)>> {
        let opts = InspectNetworkOptions {
            verbose: true,
            scope: Some("swarm".into()),
        };
        let info = self
            .docker
            .inspect_network(network, Some(opts))
            .await
            .map_err(|e| DockerError::from_bollard("network", network, e))?;
        let mut out: Vec<(String, String)> = info
            .services
            .unwrap_or_default()
            .into_values()
            .flat_map(|service| {
                let tasks = service.get("Tasks").and_then(|t| t.as_array()).cloned();
                tasks.unwrap_or_default()
            })
            .filter_map(|t| {
                let name = t.get("Name")?.as_str()?.to_string();
                let ip = t.get("EndpointIP")?.as_str()?.to_string();
                Some((name, ip))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Every task of the service Swarm still knows, also those it is stopping.
    pub async fn all_service_tasks(&self, service: &str) -> Result<Vec<ObservedTask>> {
        self.tasks_of(service, false).await
    }

    async fn tasks_of(&self, service: &str, desired_running: bool) -> Result<Vec<ObservedTask>> {
        let mut filters = HashMap::from([("service".to_string(), vec![service.to_string()])]);
        if desired_running {
            filters.insert("desired-state".into(), vec!["running".into()]);
        }
        let tasks = self
            .docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| DockerError::from_bollard("service", service, e))?;
        Ok(tasks
            .into_iter()
            .map(|t| {
                let status = t.status.unwrap_or_default();
                let cpu_limit = t
                    .spec
                    .as_ref()
                    .and_then(|s| s.resources.as_ref())
                    .and_then(|r| r.limits.as_ref())
                    .and_then(|l| l.nano_cpus)
                    .map_or(0.0, |n| n as f64 / 1e9);
                let config_hash = t
                    .spec
                    .and_then(|s| s.container_spec)
                    .and_then(|c| c.labels)
                    .and_then(|mut l| l.remove(LABEL_CONFIG_HASH));
                ObservedTask {
                    id: t.id.unwrap_or_default(),
                    slot: t.slot,
                    node_id: t.node_id.unwrap_or_default(),
                    running: status.state == Some(TaskState::RUNNING),
                    state: status.state.map(|s| s.to_string()).unwrap_or_default(),
                    desired: t.desired_state.map(|s| s.to_string()).unwrap_or_default(),
                    message: status.err.or(status.message).unwrap_or_default(),
                    container_id: status.container_status.and_then(|c| c.container_id),
                    config_hash,
                    cpu_limit,
                }
            })
            .collect())
    }

    pub async fn remove_service(&self, name: &str) -> Result<()> {
        match self.docker.delete_service(name).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = DockerError::from_bollard("service", name, e);
                if err.is_not_found() {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Names of the project's configs, secrets, networks and (when `volumes`) volumes, by
    /// the stack label: what `down` must leave none of.
    pub async fn stack_leftovers(&self, project: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for s in self.list_services(project).await? {
            out.push(format!("service {}", s.name));
        }
        out.extend(
            self.stack_objects(project)
                .await?
                .into_iter()
                .map(|o| format!("{} {}", o.kind.as_str(), o.name)),
        );
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(stack_filter(project)),
            }))
            .await
            .map_err(|e| DockerError::from_bollard("network", project, e))?;
        out.extend(
            networks
                .into_iter()
                .map(|n| format!("network {}", n.name.unwrap_or_default())),
        );
        Ok(out)
    }

    /// How many containers of the project's tasks are left on this node. Those that have
    /// ended are removed here first: a finished job's task container (the release command's)
    /// outlives its removed service, and would otherwise be waited for forever.
    pub async fn stack_containers(&self, project: &str) -> Result<usize> {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(stack_filter(project)),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| DockerError::from_bollard("container", project, e))?;
        let mut left = 0;
        for c in containers {
            let ended = matches!(
                c.state.as_ref().map(|s| s.to_string()).as_deref(),
                Some("exited" | "dead" | "created")
            );
            let removed = match (ended, c.id.as_deref()) {
                (true, Some(id)) => self.remove_container(id).await.is_ok(),
                _ => false,
            };
            if !removed {
                left += 1;
            }
        }
        Ok(left)
    }

    /// The project's volumes (created by Swarm for the services' mounts, labelled by them).
    pub async fn stack_volumes(&self, project: &str) -> Result<Vec<String>> {
        let resp = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(stack_filter(project)),
            }))
            .await
            .map_err(|e| DockerError::from_bollard("volume", project, e))?;
        Ok(resp
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    /// Removes a config or secret of the project by name (for `down`); missing is fine.
    pub async fn remove_config_or_secret(&self, kind: &str, name: &str) -> Result<()> {
        let r = if kind == "config" {
            self.docker.delete_config(name).await
        } else {
            self.docker.delete_secret(name).await
        };
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                let what = if kind == "config" { "config" } else { "secret" };
                let err = DockerError::from_bollard(what, name, e);
                if err.is_not_found() {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Sets only the replica count of an existing service (the rest of its spec, labels
    /// included, stays as it is: putting the old count back restores the spec exactly).
    pub async fn set_service_replicas(&self, service: &str, replicas: u64) -> Result<()> {
        let map = |e| DockerError::from_bollard("service", service, e);
        let current = self
            .docker
            .inspect_service(service, None)
            .await
            .map_err(map)?;
        let version = current.version.and_then(|v| v.index).unwrap_or_default() as i32;
        let mut spec = current.spec.unwrap_or_default();
        spec.mode = Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(replicas as i64),
            }),
            ..Default::default()
        });
        self.update_service_at(service, spec, version).await
    }

    /// Replaces a service's spec; `version` is the one it was read at, so a concurrent change
    /// makes Docker refuse rather than one of the two being lost.
    async fn update_service_at(&self, name: &str, spec: ServiceSpec, version: i32) -> Result<()> {
        self.docker
            .update_service(
                name,
                spec,
                UpdateServiceOptions {
                    version,
                    ..Default::default()
                },
                None,
            )
            .await
            .map(|_| ())
            .map_err(|e| DockerError::from_bollard("service", name, e))
    }

    /// Removes the labels from the node, keeping the others.
    pub async fn remove_node_labels(&self, node_id: &str, labels: &[String]) -> Result<()> {
        self.edit_node_labels(node_id, |have| have.retain(|k, _| !labels.contains(k)))
            .await
    }

    /// Changes a node's labels, at the version they were read at.
    async fn edit_node_labels(
        &self,
        node_id: &str,
        edit: impl FnOnce(&mut HashMap<String, String>),
    ) -> Result<()> {
        let map = |e| DockerError::from_bollard("node", node_id, e);
        let node = self.docker.inspect_node(node_id).await.map_err(map)?;
        let version = node.version.and_then(|v| v.index).unwrap_or_default() as i64;
        let mut spec = node.spec.unwrap_or_default();
        edit(spec.labels.get_or_insert_with(HashMap::new));
        self.docker
            .update_node(
                node_id,
                spec,
                UpdateNodeOptionsBuilder::default().version(version).build(),
            )
            .await
            .map_err(map)
    }

    /// The name of the short-lived container `verify` asks from when no task of the stack runs
    /// on this node (see [`DockerClient::start_probe`]).
    pub fn probe_name(project: &str) -> String {
        format!("{project}-verify-probe-{}", std::process::id())
    }

    /// Starts a short-lived container from `image` (one with bash and getent) on the stack's
    /// attachable overlay network, to make requests from when no task of the stack runs on
    /// this node (a drained manager runs none). It removes itself after two minutes at most;
    /// the caller removes it sooner. Returns its id.
    pub async fn start_probe(&self, project: &str, network: &str, image: &str) -> Result<String> {
        use bollard::models::{ContainerCreateBody, HostConfig};
        let name = Self::probe_name(project);
        let body = ContainerCreateBody {
            image: Some(image.into()),
            entrypoint: Some(vec!["sleep".into()]),
            cmd: Some(vec!["120".into()]),
            labels: Some(HashMap::from([(
                LABEL_MANAGED_BY.into(),
                MANAGED_BY.into(),
            )])),
            host_config: Some(HostConfig {
                network_mode: Some(network.into()),
                auto_remove: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = bollard::query_parameters::CreateContainerOptionsBuilder::default()
            .name(&name)
            .build();
        let id = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| DockerError::from_bollard("container", &name, e))?
            .id;
        self.start(&id).await?;
        Ok(id)
    }

    /// Whether the node takes tasks (availability `active`, neither drained nor paused).
    pub async fn node_active(&self, node_id: &str) -> Result<bool> {
        use bollard::models::NodeSpecAvailabilityEnum;
        let node = self
            .docker
            .inspect_node(node_id)
            .await
            .map_err(|e| DockerError::from_bollard("node", node_id, e))?;
        Ok(node.spec.and_then(|s| s.availability) == Some(NodeSpecAvailabilityEnum::ACTIVE))
    }

    /// Every node of the swarm: id → (host name, whether it is ready).
    pub async fn node_states(&self) -> Result<HashMap<String, (String, bool)>> {
        Ok(self
            .swarm_nodes()
            .await?
            .into_iter()
            .map(|n| (n.id, (n.host, n.ready)))
            .collect())
    }

    /// Every node of the swarm with its state, availability and labels.
    pub async fn swarm_nodes(&self) -> Result<Vec<ObservedNode>> {
        use bollard::models::{NodeSpecAvailabilityEnum, NodeState};
        Ok(self
            .docker
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(|e| DockerError::from_bollard("swarm", "nodes", e))?
            .into_iter()
            .filter_map(|n| {
                let id = n.id?;
                let spec = n.spec.unwrap_or_default();
                let availability = spec.availability;
                Some(ObservedNode {
                    host: n
                        .description
                        .and_then(|d| d.hostname)
                        .unwrap_or_else(|| id.clone()),
                    id,
                    ready: n.status.and_then(|s| s.state) == Some(NodeState::READY),
                    active: availability != Some(NodeSpecAvailabilityEnum::DRAIN)
                        && availability != Some(NodeSpecAvailabilityEnum::PAUSE),
                    labels: spec.labels.unwrap_or_default().into_iter().collect(),
                })
            })
            .collect())
    }

    /// A node's hostname, for messages (its id when it has none).
    pub async fn node_hostname(&self, node_id: &str) -> Result<String> {
        let node = self
            .docker
            .inspect_node(node_id)
            .await
            .map_err(|e| DockerError::from_bollard("node", node_id, e))?;
        Ok(node
            .description
            .and_then(|d| d.hostname)
            .unwrap_or_else(|| node_id.to_string()))
    }
}
