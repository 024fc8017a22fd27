//! Planning: a pure function of (desired, observed) that lists what `up` must do, each step
//! with its reason. `up --dry-run` prints it; `apply` executes it without deciding anything.
//!
//! Idempotency rests on two hashes carried by each container: the config hash (label, set at
//! creation) decides recreation; the reload hash (nginx.conf) decides a reload in place, so
//! scaling changes nginx's upstream list without recreating nginx, and a second `up` with
//! nothing changed plans nothing.

use std::fmt;

use crate::desired::{Container, Deployment, Role};
use crate::observed::{ContainerState, Health, Observed};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CreateNetwork {
        name: String,
    },
    CreateVolume {
        /// The model's name (`postgres-data`).
        volume: String,
        /// The daemon's name (`{project}_postgres-data`).
        name: String,
    },
    /// Create, upload secrets and files, start.
    Create {
        name: String,
        alias: String,
    },
    /// Exists with the right config but is not running: upload files again, then start. An
    /// interrupted `up` can leave a container created before its files were uploaded; the
    /// upload is idempotent, so doing it again makes such a container whole.
    Start {
        name: String,
        alias: String,
    },
    /// Stop and remove the old container, then as [`Action::Create`].
    Recreate {
        name: String,
        alias: String,
    },
    /// Upload the reloadable files, check them (`nginx -t`), then reload in place.
    Reload {
        name: String,
        alias: String,
    },
    /// Stop and remove. Runs after nginx has been reloaded, so no request is sent to an
    /// instance that is going away.
    Remove {
        name: String,
        alias: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub project: String,
    pub steps: Vec<Step>,
    /// Containers already as desired.
    pub unchanged: Vec<String>,
    /// Of those, the ones Docker already reports ready (running and healthy): nothing to wait
    /// for, which keeps a no-op `up` to a handful of API calls.
    pub already_ready: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The step for a container, by its name on the daemon.
    pub fn step_for(&self, container: &str) -> Option<&Step> {
        self.steps.iter().find(|s| match &s.action {
            Action::Create { name, .. }
            | Action::Start { name, .. }
            | Action::Recreate { name, .. }
            | Action::Reload { name, .. } => name == container,
            _ => false,
        })
    }

    pub fn removals(&self) -> impl Iterator<Item = (&str, &str)> {
        self.steps.iter().filter_map(|s| match &s.action {
            Action::Remove { name, alias } => Some((name.as_str(), alias.as_str())),
            _ => None,
        })
    }
}

/// Compares the desired state with one snapshot of Docker and lists the steps between them.
pub fn plan(desired: &Deployment, observed: &Observed) -> Plan {
    let mut steps = Vec::new();
    let mut unchanged = Vec::new();
    let mut already_ready = Vec::new();
    let network_missing = !observed.has_network(&desired.network);
    if network_missing {
        steps.push(Step {
            action: Action::CreateNetwork {
                name: desired.network.clone(),
            },
            reason: "does not exist".into(),
        });
    }
    for volume in &desired.volumes {
        let name = desired.volume_name(volume);
        if !observed.has_volume(&name) {
            steps.push(Step {
                action: Action::CreateVolume {
                    volume: volume.clone(),
                    name,
                },
                reason: "does not exist".into(),
            });
        }
    }
    for c in &desired.containers {
        match container_step(desired, observed, c, network_missing) {
            Some(step) => steps.push(step),
            None => {
                let name = desired.container_name(c);
                let ready = observed.container(&name).is_some_and(|o| {
                    o.state == ContainerState::Running
                        && (o.health == Health::Healthy
                            || (o.health == Health::None && c.healthcheck.is_none()))
                });
                if ready {
                    already_ready.push(name.clone());
                }
                unchanged.push(name);
            }
        }
    }
    let app_count = desired.containers_of(Role::App).count();
    let ha = desired.containers_of(Role::Sentinel).next().is_some();
    for o in &observed.containers {
        if desired
            .containers
            .iter()
            .any(|c| desired.container_name(c) == o.name)
        {
            continue;
        }
        let reason = match o.role() {
            Some("app") => format!("beyond the {app_count} app instances wanted"),
            Some("sentinel" | "redis-replica") if !ha => "HA is off".to_string(),
            _ => "not part of the desired state".to_string(),
        };
        steps.push(Step {
            action: Action::Remove {
                name: o.name.clone(),
                alias: o.alias(),
            },
            reason,
        });
    }
    Plan {
        project: desired.project.clone(),
        steps,
        unchanged,
        already_ready,
    }
}

fn container_step(
    d: &Deployment,
    observed: &Observed,
    c: &Container,
    network_missing: bool,
) -> Option<Step> {
    let name = d.container_name(c);
    let alias = c.alias.clone();
    let step = |action: Action, reason: String| Some(Step { action, reason });
    let Some(o) = observed.container(&name) else {
        return step(Action::Create { name, alias }, "does not exist".into());
    };
    let want = d.config_hash(c);
    let recreate = |reason: String| {
        step(
            Action::Recreate {
                name: name.clone(),
                alias: alias.clone(),
            },
            reason,
        )
    };
    match o.config_hash() {
        None => return recreate("has no config-hash label (not created by radar-deploy)".into()),
        Some(have) if have != want => {
            let why = if o.image != c.image {
                format!("image {} → {}", o.image, c.image)
            } else {
                format!("configuration changed (config hash {have} → {want})")
            };
            return recreate(why);
        }
        Some(_) => {}
    }
    if network_missing {
        return recreate(format!("its network {} is missing", d.network));
    }
    match o.state {
        ContainerState::Running | ContainerState::Restarting => {}
        ContainerState::Created => return step(
            Action::Start { name, alias },
            "created but never started (an interrupted run): files uploaded again, then started"
                .into(),
        ),
        ContainerState::Exited => {
            return step(Action::Start { name, alias }, "stopped".into());
        }
        state => return recreate(format!("is in state {state:?}")),
    }
    if let Some(want_reload) = d.reload_hash(c) {
        if o.reload_hash() != Some(want_reload.as_str()) {
            let files: Vec<&str> = c
                .files
                .iter()
                .filter(|m| m.reload)
                .map(|m| m.file.as_str())
                .collect();
            return step(
                Action::Reload { name, alias },
                format!("{} changed", files.join(", ")),
            );
        }
    }
    None
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            return writeln!(
                f,
                "plan for {}: nothing to do ({} containers up to date)",
                self.project,
                self.unchanged.len()
            );
        }
        writeln!(
            f,
            "plan for {}: {} step{} ({} containers unchanged)",
            self.project,
            self.steps.len(),
            if self.steps.len() == 1 { "" } else { "s" },
            self.unchanged.len()
        )?;
        for s in &self.steps {
            let (sign, what) = match &s.action {
                Action::CreateNetwork { name } => ("+", format!("create network {name}")),
                Action::CreateVolume { name, .. } => ("+", format!("create volume {name}")),
                Action::Create { name, alias } => {
                    ("+", format!("create and start {name} ({alias})"))
                }
                Action::Start { name, alias } => (">", format!("start {name} ({alias})")),
                Action::Recreate { name, alias } => ("~", format!("recreate {name} ({alias})")),
                Action::Reload { name, alias } => (
                    "↻",
                    format!("reload {name} ({alias}): upload, check, reload in place"),
                ),
                Action::Remove { name, alias } => ("-", format!("remove {name} ({alias})")),
            };
            writeln!(f, "  {sign} {what}: {}", s.reason)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::config;
    use crate::desired::{self, LABEL_CONFIG_HASH, LABEL_INSTANCE, LABEL_RELOAD_HASH, LABEL_ROLE};
    use crate::observed::{ObservedContainer, ObservedNetwork, ObservedVolume};

    /// What Docker would report after a successful `up` of `d`.
    fn running(d: &Deployment) -> Observed {
        Observed {
            containers: d
                .containers
                .iter()
                .map(|c| {
                    let mut labels = std::collections::BTreeMap::from([
                        (LABEL_ROLE.to_string(), c.role.service().to_string()),
                        (LABEL_CONFIG_HASH.to_string(), d.config_hash(c)),
                    ]);
                    if c.role.is_numbered() {
                        labels.insert(LABEL_INSTANCE.into(), c.number.to_string());
                    }
                    if let Some(h) = d.reload_hash(c) {
                        labels.insert(LABEL_RELOAD_HASH.into(), h);
                    }
                    ObservedContainer {
                        id: format!("id-{}", c.alias),
                        name: d.container_name(c),
                        image: c.image.clone(),
                        state: ContainerState::Running,
                        health: Health::Healthy,
                        labels,
                        ..Default::default()
                    }
                })
                .collect(),
            networks: vec![ObservedNetwork {
                id: "net".into(),
                name: d.network.clone(),
            }],
            volumes: d
                .volumes
                .iter()
                .map(|v| ObservedVolume {
                    name: d.volume_name(v),
                })
                .collect(),
        }
    }

    fn lines(p: &Plan) -> Vec<String> {
        p.to_string()
            .lines()
            .skip(1)
            .map(|l| l.trim().to_string())
            .collect()
    }

    #[test]
    fn fresh_stack_creates_network_volumes_and_every_container_in_start_order() {
        let d = desired::build(&config("", false));
        let p = plan(&d, &Observed::default());
        assert_eq!(
            lines(&p),
            [
                "+ create network reporadar_default: does not exist",
                "+ create volume reporadar_postgres-data: does not exist",
                "+ create volume reporadar_redis-data: does not exist",
                "+ create volume reporadar_app-1-logs: does not exist",
                "+ create volume reporadar_app-2-logs: does not exist",
                "+ create volume reporadar_app-3-logs: does not exist",
                "+ create and start reporadar-postgres-1 (postgres): does not exist",
                "+ create and start reporadar-redis-1 (redis): does not exist",
                "+ create and start reporadar-app-1 (app-1): does not exist",
                "+ create and start reporadar-app-2 (app-2): does not exist",
                "+ create and start reporadar-app-3 (app-3): does not exist",
                "+ create and start reporadar-nginx-1 (nginx): does not exist",
            ]
        );
    }

    #[test]
    fn nothing_changed_plans_nothing() {
        let d = desired::build(&config("", true));
        let p = plan(&d, &running(&d));
        assert!(p.is_empty(), "{p}");
        assert_eq!(p.unchanged.len(), d.containers.len());
        assert_eq!(
            p.already_ready, p.unchanged,
            "healthy containers need no wait"
        );
        assert!(p.to_string().contains("nothing to do"));
    }

    #[test]
    fn app_image_change_recreates_only_the_app_instances() {
        let before = desired::build(&config("", false));
        let after = desired::build(&config("APP_IMAGE=example/app:2\n", false));
        let p = plan(&after, &running(&before));
        assert_eq!(
            lines(&p),
            [
                "~ recreate reporadar-app-1 (app-1): image radar-deploy/radar-app:0.1.0 → example/app:2",
                "~ recreate reporadar-app-2 (app-2): image radar-deploy/radar-app:0.1.0 → example/app:2",
                "~ recreate reporadar-app-3 (app-3): image radar-deploy/radar-app:0.1.0 → example/app:2",
            ]
        );
    }

    #[test]
    fn nginx_config_change_reloads_without_recreating() {
        let before = desired::build(&config("", false));
        let after = desired::build(&config("LB_STRATEGY=round_robin\n", false));
        let p = plan(&after, &running(&before));
        assert_eq!(
            lines(&p),
            ["↻ reload reporadar-nginx-1 (nginx): upload, check, reload in place: nginx.conf changed"]
        );
    }

    #[test]
    fn a_reload_already_applied_is_not_planned_again() {
        let before = desired::build(&config("", false));
        let after = desired::build(&config("LB_STRATEGY=round_robin\n", false));
        let mut observed = running(&before);
        let nginx = after.containers_of(Role::Nginx).next().unwrap();
        for o in &mut observed.containers {
            if o.role() == Some("nginx") {
                o.applied_reload_hash = after.reload_hash(nginx);
            }
        }
        assert!(plan(&after, &observed).is_empty());
    }

    #[test]
    fn scaling_up_keeps_running_instances_and_reloads_nginx() {
        let before = desired::build(&config("", false));
        let after = desired::build(&config("APP_INSTANCES=5\n", false));
        let p = plan(&after, &running(&before));
        assert_eq!(
            lines(&p),
            [
                "+ create volume reporadar_app-4-logs: does not exist",
                "+ create volume reporadar_app-5-logs: does not exist",
                "+ create and start reporadar-app-4 (app-4): does not exist",
                "+ create and start reporadar-app-5 (app-5): does not exist",
                "↻ reload reporadar-nginx-1 (nginx): upload, check, reload in place: nginx.conf changed",
            ]
        );
    }

    #[test]
    fn scaling_down_reloads_nginx_and_removes_the_extra_instances() {
        let before = desired::build(&config("", false));
        let after = desired::build(&config("APP_INSTANCES=2\n", false));
        let p = plan(&after, &running(&before));
        assert_eq!(
            lines(&p),
            [
                "↻ reload reporadar-nginx-1 (nginx): upload, check, reload in place: nginx.conf changed",
                "- remove reporadar-app-3 (app-3): beyond the 2 app instances wanted",
            ]
        );
    }

    #[test]
    fn adding_ha_adds_replica_and_sentinels_and_points_the_apps_at_them() {
        let before = desired::build(&config("", false));
        let after = desired::build(&config("", true));
        let p = plan(&after, &running(&before));
        let l = lines(&p);
        assert!(
            l.contains(&"+ create volume reporadar_redis-replica-data: does not exist".to_string())
        );
        for alias in ["redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"] {
            assert!(
                l.iter()
                    .any(|s| s.starts_with("+ create and start")
                        && s.contains(&format!("({alias})"))),
                "{alias} in {l:#?}"
            );
        }
        // The apps' environment gains the Sentinels: they are recreated; postgres, redis and
        // nginx are untouched.
        for n in 1..=3 {
            assert!(l
                .iter()
                .any(|s| s.starts_with(&format!("~ recreate reporadar-app-{n} "))));
        }
        assert!(!l
            .iter()
            .any(|s| s.contains("postgres-1") || s.contains("redis-1") || s.contains("nginx")));
    }

    #[test]
    fn interrupted_run_starts_created_containers_and_creates_the_rest() {
        let d = desired::build(&config("", false));
        let mut observed = running(&d);
        observed
            .containers
            .retain(|c| !c.name.ends_with("nginx-1") && !c.name.ends_with("app-3"));
        for c in &mut observed.containers {
            if c.name.ends_with("app-2") {
                c.state = ContainerState::Created;
            }
        }
        let l = lines(&plan(&d, &observed));
        assert_eq!(
            l,
            [
                "> start reporadar-app-2 (app-2): created but never started (an interrupted run): files uploaded again, then started",
                "+ create and start reporadar-app-3 (app-3): does not exist",
                "+ create and start reporadar-nginx-1 (nginx): does not exist",
            ]
        );
    }

    #[test]
    fn a_missing_network_recreates_the_containers_attached_to_it() {
        let d = desired::build(&config("", false));
        let mut observed = running(&d);
        observed.networks.clear();
        let p = plan(&d, &observed);
        assert_eq!(p.steps.len(), 1 + d.containers.len());
        assert!(p.steps[1..]
            .iter()
            .all(|s| matches!(s.action, Action::Recreate { .. })));
    }
}
