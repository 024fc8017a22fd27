//! Planning: a pure function of (desired, observed) that lists what `up` must do, each step
//! with its reason. `up --dry-run` prints it; `apply` executes it without deciding anything.
//!
//! Idempotency rests on two hashes carried by each container: the config hash (label, set at
//! creation) decides recreation; the reload hash (nginx.conf) decides a reload in place, so
//! scaling changes nginx's upstream list without recreating nginx, and a second `up` with
//! nothing changed plans nothing.
//!
//! A plan has two parts, and the order that keeps every client request answered lives here:
//!
//! 1. **Converge** (at once): network, volumes, and one step per container, each started only
//!    when the containers in its `after` list are ready. nginx's reload is `after` every app
//!    instance, so a new instance is healthy before it joins the upstream (scale up).
//! 2. **Then, one at a time**: what must not overlap. An instance leaves the upstream (the
//!    reload above), nginx's old workers finish the requests they sent it (`Drain`), and only
//!    then is it stopped (`Remove`; the app also drains on SIGTERM). A running instance whose
//!    configuration changed is replaced in a rolling way, one instance at a time, with the
//!    capacity never below the instance count:
//!    - `StartNext`: its replacement starts as `{name}-next`, with the instance's alias plus an
//!      alias of its own (`app-2-<hash>`), and must become healthy. nginx resolves names only
//!      when it loads its config, so the shared alias sends it nothing yet. Not healthy in
//!      time: the replacement is removed, the old instance never noticed, the run stops.
//!    - `Reload` with the replacement's own alias in place of the old one's, `Drain`, then
//!      `Remove` the old one: requests move over before anything stops.
//!    - `Rename` the replacement to the instance's name, and `Reload` the desired nginx.conf:
//!      the shared alias now resolves to the replacement alone, so nothing moves.
//!
//!    Replacing in place (out of the upstream, recreate, back in) would be simpler but runs
//!    one instance short, and a single instance would leave nothing to serve.
//!
//! **The release command** (`APP_RELEASE_COMMAND`) is a converge step of its own
//! ([`Action::Release`]), planned when the plan brings a new app configuration: it creates or
//! replaces app instances and no app container carries the desired config hash yet (a first
//! deploy, a new image or a changed configuration; not `scale`, which adds instances of a
//! config that runs already, and not a re-run after an interrupted rollout, whose replaced
//! instances prove the release ran). It runs after what the app depends on (Postgres, Redis) is
//! ready, and every app container the plan creates or recreates is `after` it, so none is even
//! created before it succeeded; the rolling replacements come after the whole converge part.
//! A failed release therefore leaves every running instance as it was.
//!
//! An interrupted run is finished by the next one from what it finds: a leftover `-next`
//! container is removed like any container not wanted (after the reload and the drain), and
//! a transitional nginx.conf differs from the desired one, so it is reloaded.

use std::fmt;

use crate::desired::{Container, Deployment, Role};
use crate::observed::{ContainerState, Health, Observed};

/// The suffix of a replacement's temporary container name.
pub const NEXT_SUFFIX: &str = "-next";
/// The name the release step goes by in the steps' `after` lists.
pub const RELEASE: &str = "release";

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
    /// Stop and remove the old container, then as [`Action::Create`]. Only for containers that
    /// serve no client directly, or app instances that are not running.
    Recreate {
        name: String,
        alias: String,
    },
    /// Upload the reloadable files, check them (`nginx -t`), then reload in place; done when
    /// every worker of the previous config has been told to finish, so no new request is
    /// routed by the old config afterwards. `upstream`: `None` for the desired nginx.conf,
    /// else the hosts of a transitional upstream.
    Reload {
        name: String,
        alias: String,
        upstream: Option<Vec<String>>,
    },
    /// Wait (bounded by nginx's `worker_shutdown_timeout`) until nginx's workers of the
    /// previous config have finished their requests, to `instances` among others.
    Drain {
        name: String,
        alias: String,
        instances: Vec<String>,
    },
    /// Stop (SIGTERM, the app drains) and remove. Runs after nginx stopped routing to it.
    Remove {
        name: String,
        alias: String,
    },
    /// Create the replacement `name` of the running `replaces` with the desired config of
    /// instance `alias`, with the extra network alias `next_alias`, start it and wait until
    /// it is healthy; when it is not in time, remove it and stop the run.
    StartNext {
        name: String,
        alias: String,
        next_alias: String,
        replaces: String,
    },
    /// The replacement takes the instance's name.
    Rename {
        from: String,
        to: String,
    },
    /// Run the release command to completion in the one-off container `name` (created from
    /// [`Deployment::release`], removed after); a non-zero exit or the deadline stops the run.
    Release {
        name: String,
        command: Vec<String>,
        /// `BACKUP_BEFORE_RELEASE`: take a backup first (the executor asks its caller to).
        backup_first: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub reason: String,
    /// Converge steps only: aliases of the containers that must be ready first.
    pub after: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub project: String,
    /// Every step, in order: the first `sequential_from` converge at once (each after the
    /// containers it names), the rest run one at a time, in order.
    pub steps: Vec<Step>,
    pub sequential_from: usize,
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

    /// The steps that converge at once.
    pub fn converge(&self) -> &[Step] {
        &self.steps[..self.sequential_from]
    }

    /// The steps that run one at a time, after the converge steps.
    pub fn sequence(&self) -> &[Step] {
        &self.steps[self.sequential_from..]
    }

    /// The converge step for a container, by its name on the daemon.
    pub fn step_for(&self, container: &str) -> Option<&Step> {
        self.converge().iter().find(|s| match &s.action {
            Action::Create { name, .. }
            | Action::Start { name, .. }
            | Action::Recreate { name, .. }
            | Action::Reload { name, .. } => name == container,
            _ => false,
        })
    }
}

/// How the plan changes one desired container.
enum Change {
    Step(Step),
    /// A running app instance whose configuration changed: replaced in the rolling sequence.
    Roll {
        reason: String,
    },
}

/// `renew`: the part of the plan that gives nginx its new certificate — its reload — and
/// nothing else; whatever else differs from the env file is for `up` to change, and named.
/// `Err` when nginx itself would be recreated (its container differs beyond the certificate):
/// a renewal must not do that.
pub fn certificate_only(
    desired: &Deployment,
    observed: &Observed,
) -> Result<(Plan, Vec<String>), String> {
    let mut full = plan(desired, observed);
    let nginx: Vec<String> = desired
        .containers_of(Role::Nginx)
        .map(|c| desired.container_name(c))
        .collect();
    let mut left = Vec::new();
    let mut steps = Vec::new();
    for s in full.steps.drain(..) {
        match &s.action {
            Action::Reload {
                name,
                upstream: None,
                ..
            } if nginx.contains(name) => steps.push(Step {
                after: Vec::new(),
                ..s
            }),
            Action::Create { name, .. }
            | Action::Start { name, .. }
            | Action::Recreate { name, .. }
            | Action::Remove { name, .. }
                if nginx.contains(name) =>
            {
                return Err(format!(
                    "nginx would be replaced ({}), not reloaded",
                    s.reason
                ));
            }
            _ => left.push(s.reason.clone()),
        }
    }
    full.sequential_from = steps.len();
    full.steps = steps;
    Ok((full, left))
}

/// Compares the desired state with one snapshot of Docker and lists the steps between them.
pub fn plan(desired: &Deployment, observed: &Observed) -> Plan {
    let mut steps = Vec::new();
    let mut unchanged = Vec::new();
    let mut already_ready = Vec::new();
    let mut rolls = Vec::new();
    let step = |action: Action, reason: &str| Step {
        action,
        reason: reason.into(),
        after: vec![],
    };
    let network_missing = !observed.has_network(&desired.network);
    if network_missing {
        steps.push(step(
            Action::CreateNetwork {
                name: desired.network.clone(),
            },
            "does not exist",
        ));
    }
    for volume in &desired.volumes {
        let name = desired.volume_name(volume);
        if !observed.has_volume(&name) {
            steps.push(step(
                Action::CreateVolume {
                    volume: volume.clone(),
                    name,
                },
                "does not exist",
            ));
        }
    }
    for c in &desired.containers {
        match container_change(desired, observed, c, network_missing) {
            Some(Change::Step(s)) => steps.push(s),
            Some(Change::Roll { reason }) => rolls.push((c, reason)),
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
    if let Some(release) = release_step(desired, observed, &steps, !rolls.is_empty()) {
        // Every app container created or recreated here waits for the release; the steps are
        // listed in start order, so the release goes just before the first of them.
        let mut at = steps.len();
        for (i, s) in steps.iter_mut().enumerate() {
            if let Action::Create { alias, .. } | Action::Recreate { alias, .. } = &s.action {
                if is_app(desired, alias) {
                    at = at.min(i);
                    s.after.push(RELEASE.into());
                }
            }
        }
        steps.insert(at, release);
    }
    // nginx's reload waits for the instances that are starting in this plan: the reason says
    // which, as the order is the point.
    let starting: Vec<String> = steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Create { alias, .. }
            | Action::Start { alias, .. }
            | Action::Recreate { alias, .. } => Some(alias.clone()),
            _ => None,
        })
        .collect();
    for s in &mut steps {
        if let Action::Reload { .. } = s.action {
            let waits: Vec<&str> = s
                .after
                .iter()
                .filter(|a| starting.contains(a))
                .map(String::as_str)
                .collect();
            if !waits.is_empty() {
                s.reason += &format!(
                    ", once {} {} ready",
                    waits.join(", "),
                    if waits.len() == 1 { "is" } else { "are" }
                );
            }
        }
    }
    let sequential_from = steps.len();

    let app_count = desired.containers_of(Role::App).count();
    let ha = desired.containers_of(Role::Sentinel).next().is_some();
    let nginx = desired.containers_of(Role::Nginx).next();
    let nginx_running = nginx.is_some_and(|n| {
        observed
            .container(&desired.container_name(n))
            .is_some_and(|o| o.state == ContainerState::Running)
    });
    let mut removals = Vec::new();
    for o in &observed.containers {
        if desired
            .containers
            .iter()
            .any(|c| desired.container_name(c) == o.name)
        {
            continue;
        }
        let reason = match o.role() {
            Some("app") if o.name.ends_with(NEXT_SUFFIX) => {
                "a replacement left by an interrupted run".to_string()
            }
            Some("app") => format!("beyond the {app_count} app instances wanted"),
            Some("sentinel" | "redis-replica") if !ha => "HA is off".to_string(),
            _ => "not part of the desired state".to_string(),
        };
        removals.push((o, reason));
    }
    // Instances leaving: the reload above took them out of the upstream; the old workers
    // finish what they sent them before they are stopped.
    let leaving: Vec<String> = removals
        .iter()
        .filter(|(o, _)| o.role() == Some(Role::App.service()))
        .map(|(o, _)| o.alias())
        .collect();
    if let (Some(n), true, false) = (nginx, nginx_running, leaving.is_empty()) {
        steps.push(step(
            Action::Drain {
                name: desired.container_name(n),
                alias: n.alias.clone(),
                instances: leaving,
            },
            "they leave the upstream",
        ));
    }
    for (o, reason) in removals {
        steps.push(step(
            Action::Remove {
                name: o.name.clone(),
                alias: o.alias(),
            },
            &reason,
        ));
    }
    if let Some(n) = nginx {
        for (c, reason) in rolls {
            rolling_steps(desired, n, c, &reason, &mut steps);
        }
    }
    Plan {
        project: desired.project.clone(),
        steps,
        sequential_from,
        unchanged,
        already_ready,
    }
}

fn is_app(d: &Deployment, alias: &str) -> bool {
    d.containers_of(Role::App).any(|c| c.alias == alias)
}

/// The release step, when this plan brings a new app configuration (see the module comment).
fn release_step(d: &Deployment, observed: &Observed, steps: &[Step], rolls: bool) -> Option<Step> {
    let release = d.release.as_ref()?;
    let brings_instances = rolls
        || steps.iter().any(|s| match &s.action {
            Action::Create { alias, .. } | Action::Recreate { alias, .. } => is_app(d, alias),
            _ => false,
        });
    if !brings_instances {
        return None;
    }
    let hashes: Vec<String> = d
        .containers_of(Role::App)
        .map(|c| d.config_hash(c))
        .collect();
    let app_image = &release.container.image;
    let apps: Vec<_> = observed
        .containers
        .iter()
        .filter(|o| o.role() == Some(Role::App.service()))
        .collect();
    // An app container with a desired hash was created after this config's release succeeded,
    // unless its image tag has since moved to a rebuilt image (Docker then names it by id).
    let released = apps.iter().any(|o| {
        o.config_hash()
            .is_some_and(|h| hashes.iter().any(|w| w == h))
            && !(o.image != *app_image && o.image.starts_with("sha256:"))
    });
    if released {
        return None;
    }
    let c = &release.container;
    let hash = d.config_hash(c);
    let reason = if apps.is_empty() {
        "first deploy of this app configuration, before any instance starts"
    } else {
        "a new app image or configuration, before any instance is replaced"
    };
    Some(Step {
        action: Action::Release {
            name: format!(
                "{}-{RELEASE}-run-{}",
                d.project,
                &hash[..12.min(hash.len())]
            ),
            command: c.command.clone().unwrap_or_default(),
            backup_first: release.backup_first,
        },
        reason: format!(
            "{reason} (once {} {} ready)",
            c.depends_on.join(", "),
            if c.depends_on.len() == 1 { "is" } else { "are" }
        ),
        after: c.depends_on.clone(),
    })
}

/// The replacement of one running instance, in order (see the module comment).
fn rolling_steps(
    d: &Deployment,
    nginx: &Container,
    c: &Container,
    reason: &str,
    steps: &mut Vec<Step>,
) {
    let name = d.container_name(c);
    let next = format!("{name}{NEXT_SUFFIX}");
    let hash = d.config_hash(c);
    let next_alias = format!("{}-{}", c.alias, &hash[..8.min(hash.len())]);
    let nginx_name = d.container_name(nginx);
    let step = |action: Action, reason: String| Step {
        action,
        reason,
        after: vec![],
    };
    let transitional: Vec<String> = d
        .upstream_hosts()
        .into_iter()
        .map(|h| if h == c.alias { next_alias.clone() } else { h })
        .collect();
    steps.push(step(
        Action::StartNext {
            name: next.clone(),
            alias: c.alias.clone(),
            next_alias: next_alias.clone(),
            replaces: name.clone(),
        },
        format!("replaces {} ({reason})", c.alias),
    ));
    steps.push(step(
        Action::Reload {
            name: nginx_name.clone(),
            alias: nginx.alias.clone(),
            upstream: Some(transitional),
        },
        format!("{next_alias} in, {} out", c.alias),
    ));
    steps.push(step(
        Action::Drain {
            name: nginx_name.clone(),
            alias: nginx.alias.clone(),
            instances: vec![c.alias.clone()],
        },
        format!("the old {} leaves the upstream", c.alias),
    ));
    steps.push(step(
        Action::Remove {
            name: name.clone(),
            alias: c.alias.clone(),
        },
        format!("replaced by {next}"),
    ));
    steps.push(step(
        Action::Rename {
            from: next,
            to: name,
        },
        "the replacement takes the instance's name".into(),
    ));
    steps.push(step(
        Action::Reload {
            name: nginx_name,
            alias: nginx.alias.clone(),
            upstream: None,
        },
        format!(
            "the desired nginx.conf again; {} now resolves to the replacement alone",
            c.alias
        ),
    ));
}

fn container_change(
    d: &Deployment,
    observed: &Observed,
    c: &Container,
    network_missing: bool,
) -> Option<Change> {
    let name = d.container_name(c);
    let alias = c.alias.clone();
    let step = |action: Action, reason: String| {
        Some(Change::Step(Step {
            action,
            reason,
            after: c.depends_on.clone(),
        }))
    };
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
            // A running instance serves clients: it is replaced, not recreated.
            if c.role == Role::App && o.state == ContainerState::Running && !network_missing {
                return Some(Change::Roll { reason: why });
            }
            return recreate(why);
        }
        Some(_) => {}
    }
    // Same image name and settings, but the tag now names another image (rebuilt, as `up` does
    // with the reference app when its source changed, or pulled again): Docker then lists the
    // container by the id of the image it runs. Replaced like any image change.
    if o.image != c.image && o.image.starts_with("sha256:") {
        let why = format!(
            "image {} now names another image (the container runs {})",
            c.image,
            o.image.get(..19).unwrap_or(&o.image)
        );
        if c.role == Role::App && o.state == ContainerState::Running && !network_missing {
            return Some(Change::Roll { reason: why });
        }
        return recreate(why);
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
                Action::Reload {
                    name,
                    alias,
                    upstream: None,
                },
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
        for (i, s) in self.steps.iter().enumerate() {
            if i == self.sequential_from {
                writeln!(f, "  then, one at a time:")?;
            }
            let (sign, what) = match &s.action {
                Action::CreateNetwork { name } => ("+", format!("create network {name}")),
                Action::CreateVolume { name, .. } => ("+", format!("create volume {name}")),
                Action::Create { name, alias } => {
                    ("+", format!("create and start {name} ({alias})"))
                }
                Action::Start { name, alias } => (">", format!("start {name} ({alias})")),
                Action::Recreate { name, alias } => ("~", format!("recreate {name} ({alias})")),
                Action::Reload { name, alias, .. } => (
                    "↻",
                    format!("reload {name} ({alias}): upload, check, reload in place"),
                ),
                Action::Drain {
                    name,
                    alias,
                    instances,
                } => (
                    "⧗",
                    format!(
                        "drain {name} ({alias}): its previous workers finish their requests to {}",
                        instances.join(", ")
                    ),
                ),
                Action::Remove { name, alias } => ("-", format!("remove {name} ({alias})")),
                Action::StartNext {
                    name,
                    alias,
                    next_alias,
                    ..
                } => (
                    "+",
                    format!("start {name} ({alias}, {next_alias}) and wait until healthy"),
                ),
                Action::Rename { from, to } => ("=", format!("rename {from} → {to}")),
                Action::Release {
                    name,
                    command,
                    backup_first,
                } => (
                    "▶",
                    format!(
                        "run the release command `{}` in {name}, once{}",
                        shell_words::join(command),
                        if *backup_first {
                            ", after a backup (BACKUP_BEFORE_RELEASE)"
                        } else {
                            ""
                        }
                    ),
                ),
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
    use crate::desired;
    use crate::labels::{LABEL_CONFIG_HASH, LABEL_INSTANCE, LABEL_RELOAD_HASH, LABEL_ROLE};
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

    /// The instances a rolling update replaces, in order.
    fn replaced(p: &Plan) -> Vec<&str> {
        p.sequence()
            .iter()
            .filter_map(|s| match &s.action {
                Action::StartNext { alias, .. } => Some(alias.as_str()),
                _ => None,
            })
            .collect()
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
                "+ create volume reporadar_nginx-maintenance: does not exist",
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
    fn app_image_change_replaces_running_instances_one_at_a_time() {
        let before = desired::build(&config("", false));
        let after = desired::build(&config("APP_IMAGE=example/app:2\n", false));
        let p = plan(&after, &running(&before));
        let mut want = vec!["then, one at a time:".to_string()];
        for (n, app) in (1..=3).zip(after.containers_of(Role::App)) {
            // Each instance's own alias comes from its config hash (INSTANCE_ID differs).
            let h = &after.config_hash(app)[..8];
            let hosts: Vec<String> = (1..=3)
                .map(|i| {
                    if i == n {
                        format!("app-{i}-{h}")
                    } else {
                        format!("app-{i}")
                    }
                })
                .collect();
            assert!(p.steps.iter().any(|s| s.action
                == Action::Reload {
                    name: "reporadar-nginx-1".into(),
                    alias: "nginx".into(),
                    upstream: Some(hosts.clone()),
                }));
            want.extend([
                format!("+ start reporadar-app-{n}-next (app-{n}, app-{n}-{h}) and wait until healthy: replaces app-{n} (image radar-deploy/radar-app:0.1.0 → example/app:2)"),
                format!("↻ reload reporadar-nginx-1 (nginx): upload, check, reload in place: app-{n}-{h} in, app-{n} out"),
                format!("⧗ drain reporadar-nginx-1 (nginx): its previous workers finish their requests to app-{n}: the old app-{n} leaves the upstream"),
                format!("- remove reporadar-app-{n} (app-{n}): replaced by reporadar-app-{n}-next"),
                format!("= rename reporadar-app-{n}-next → reporadar-app-{n}: the replacement takes the instance's name"),
                format!("↻ reload reporadar-nginx-1 (nginx): upload, check, reload in place: the desired nginx.conf again; app-{n} now resolves to the replacement alone"),
            ]);
        }
        assert_eq!(lines(&p), want);
        assert_eq!(p.sequential_from, 0, "nothing converges at once");
    }

    #[test]
    fn an_update_with_more_instances_adds_them_first_then_rolls_the_running_ones() {
        let before = desired::build(&config("", false));
        let after = desired::build(&config("APP_IMAGE=example/app:2\nAPP_INSTANCES=4\n", false));
        let p = plan(&after, &running(&before));
        let l = lines(&p);
        assert_eq!(
            l[..3],
            [
                "+ create volume reporadar_app-4-logs: does not exist",
                "+ create and start reporadar-app-4 (app-4): does not exist",
                "↻ reload reporadar-nginx-1 (nginx): upload, check, reload in place: nginx.conf changed, once app-4 is ready",
            ]
        );
        let replaced = replaced(&p);
        assert_eq!(replaced, ["app-1", "app-2", "app-3"]);
    }

    #[test]
    fn an_image_tag_that_moved_to_a_rebuilt_image_replaces_the_instances_running_the_old_one() {
        let d = desired::build(&config("", false));
        let mut observed = running(&d);
        // Docker lists a container by its image's id once the tag names another image.
        for c in &mut observed.containers {
            if c.name.ends_with("app-2") {
                c.image = "sha256:0123456789abcdef0123456789".into();
            }
        }
        let p = plan(&d, &observed);
        let text = p.to_string();
        assert!(
            text.contains(
                "replaces app-2 (image radar-deploy/radar-app:0.1.0 now names another image \
                 (the container runs sha256:0123456789ab))"
            ),
            "{text}"
        );
        let replaced = replaced(&p);
        assert_eq!(replaced, ["app-2"]);
        // An image named by its id is the same image: nothing to do.
        let by_id = desired::build(&config("APP_IMAGE=sha256:0123456789abcdef\n", false));
        let mut observed = running(&by_id);
        for c in &mut observed.containers {
            if c.name.contains("-app-") {
                c.image = "sha256:0123456789abcdef".into();
            }
        }
        assert!(plan(&by_id, &observed).is_empty());
    }

    #[test]
    fn a_stopped_instance_with_a_changed_image_is_simply_recreated() {
        let before = desired::build(&config("", false));
        let after = desired::build(&config("APP_IMAGE=example/app:2\n", false));
        let mut observed = running(&before);
        for c in &mut observed.containers {
            if c.name.ends_with("app-2") {
                c.state = ContainerState::Exited;
            }
        }
        let p = plan(&after, &observed);
        assert_eq!(
            lines(&p)[0],
            "~ recreate reporadar-app-2 (app-2): image radar-deploy/radar-app:0.1.0 → example/app:2"
        );
        let replaced = replaced(&p);
        assert_eq!(replaced, ["app-1", "app-3"]);
    }

    #[test]
    fn a_replacement_is_healthy_and_in_the_upstream_before_the_old_instance_stops() {
        let before = desired::build(&config("APP_INSTANCES=1\n", false));
        let after = desired::build(&config("APP_INSTANCES=1\nAPP_ENV_X=1\n", false));
        let p = plan(&after, &running(&before));
        let kinds: Vec<&str> = p
            .sequence()
            .iter()
            .map(|s| match &s.action {
                Action::StartNext { .. } => "start next (waits healthy)",
                Action::Reload {
                    upstream: Some(_), ..
                } => "reload: next in, old out",
                Action::Drain { .. } => "drain",
                Action::Remove { .. } => "stop old",
                Action::Rename { .. } => "rename",
                Action::Reload { upstream: None, .. } => "reload: desired",
                _ => "other",
            })
            .collect();
        // A single instance too: its replacement serves before it stops.
        assert_eq!(
            kinds,
            [
                "start next (waits healthy)",
                "reload: next in, old out",
                "drain",
                "stop old",
                "rename",
                "reload: desired"
            ]
        );
    }

    #[test]
    fn a_leftover_replacement_of_an_interrupted_run_is_removed_after_the_reload_and_drain() {
        let d = desired::build(&config("", false));
        let mut observed = running(&d);
        let mut next = observed.containers[2].clone();
        next.name = format!("{}-next", next.name);
        observed.containers.push(next);
        for o in &mut observed.containers {
            if o.role() == Some("nginx") {
                o.applied_reload_hash = Some("transitional".into());
            }
        }
        assert_eq!(
            lines(&plan(&d, &observed)),
            [
                "↻ reload reporadar-nginx-1 (nginx): upload, check, reload in place: nginx.conf changed",
                "then, one at a time:",
                "⧗ drain reporadar-nginx-1 (nginx): its previous workers finish their requests to app-1: they leave the upstream",
                "- remove reporadar-app-1-next (app-1): a replacement left by an interrupted run",
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
                "↻ reload reporadar-nginx-1 (nginx): upload, check, reload in place: nginx.conf changed, once app-4, app-5 are ready",
            ]
        );
        // The order is data: the reload waits for the new instances to be healthy.
        let reload = p.step_for("reporadar-nginx-1").unwrap();
        assert!(reload.after.contains(&"app-4".to_string()));
        assert!(reload.after.contains(&"app-5".to_string()));
        assert!(p.sequence().is_empty());
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
                "then, one at a time:",
                "⧗ drain reporadar-nginx-1 (nginx): its previous workers finish their requests to app-3: they leave the upstream",
                "- remove reporadar-app-3 (app-3): beyond the 2 app instances wanted",
            ]
        );
        // Reload (converge) before the drain, the drain before the stop.
        assert!(matches!(
            p.converge()[0].action,
            Action::Reload { upstream: None, .. }
        ));
        assert!(matches!(p.sequence()[0].action, Action::Drain { .. }));
        assert!(matches!(p.sequence()[1].action, Action::Remove { .. }));
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
        // The apps' environment gains the Sentinels: they are replaced one at a time, after
        // the Sentinels are up; postgres, redis and nginx's own container are untouched.
        for n in 1..=3 {
            assert!(l
                .iter()
                .any(|s| s.starts_with(&format!("+ start reporadar-app-{n}-next "))));
        }
        assert!(!l.iter().any(|s| s.contains("postgres-1")
            || s.contains("redis-1")
            || s.starts_with("~ recreate reporadar-nginx")));
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

    const MIGRATE: &str = "APP_RELEASE_COMMAND='migrate --verbose'\n";

    /// The release step's line, or None; and whether every app container created or
    /// recreated at once waits for it.
    fn release_of(p: &Plan) -> Option<String> {
        let step = p
            .converge()
            .iter()
            .find(|s| matches!(s.action, Action::Release { .. }))?;
        for s in p.converge() {
            if let Action::Create { alias, .. } | Action::Recreate { alias, .. } = &s.action {
                if alias.starts_with("app-") {
                    assert!(
                        s.after.contains(&RELEASE.to_string()),
                        "{alias} not gated: {p}"
                    );
                }
            }
        }
        assert_eq!(step.after, ["postgres", "redis"]);
        let text = p.to_string();
        text.lines()
            .find(|l| l.contains("▶"))
            .map(|l| l.trim().to_string())
    }

    #[test]
    fn release_runs_on_a_first_deploy_before_any_instance_is_created() {
        let d = desired::build(&config(MIGRATE, false));
        let p = plan(&d, &Observed::default());
        let hash = d.config_hash(&d.release.as_ref().unwrap().container);
        let l = lines(&p);
        assert_eq!(
            l[7..11],
            [
                "+ create and start reporadar-postgres-1 (postgres): does not exist".to_string(),
                "+ create and start reporadar-redis-1 (redis): does not exist".into(),
                format!("▶ run the release command `migrate --verbose` in reporadar-release-run-{}, once: first deploy of this app configuration, before any instance starts (once postgres, redis are ready)", &hash[..12]),
                "+ create and start reporadar-app-1 (app-1): does not exist".into(),
            ]
        );
        assert!(release_of(&p).is_some());
    }

    #[test]
    fn backup_before_release_is_planned_on_the_release_step() {
        let d = desired::build(&config(
            &format!("{MIGRATE}BACKUP_BEFORE_RELEASE=true\n"),
            false,
        ));
        let line = release_of(&plan(&d, &Observed::default())).unwrap();
        assert!(
            line.contains("`migrate --verbose` in reporadar-release-run-")
                && line.contains(", once, after a backup (BACKUP_BEFORE_RELEASE): first deploy"),
            "{line}"
        );
        let without = desired::build(&config(MIGRATE, false));
        let line = release_of(&plan(&without, &Observed::default())).unwrap();
        assert!(!line.contains("backup"), "{line}");
    }

    #[test]
    fn release_runs_once_for_a_new_configuration_before_the_rolling_replacements() {
        let before = desired::build(&config(MIGRATE, false));
        let after = desired::build(&config(&format!("{MIGRATE}APP_ENV_X=2\n"), false));
        let p = plan(&after, &running(&before));
        let line = release_of(&p).expect("a release step");
        assert!(
            line.ends_with("once: a new app image or configuration, before any instance is replaced (once postgres, redis are ready)"),
            "{line}"
        );
        // It is the one converge step; the three replacements follow it, one at a time.
        assert_eq!(p.sequential_from, 1, "{p}");
        assert_eq!(replaced(&p), ["app-1", "app-2", "app-3"]);
        assert_eq!(p.to_string().matches("▶").count(), 1);
    }

    #[test]
    fn release_runs_for_an_image_tag_that_moved_to_a_rebuilt_image() {
        let d = desired::build(&config(MIGRATE, false));
        let mut observed = running(&d);
        for c in &mut observed.containers {
            if c.role() == Some("app") {
                c.image = "sha256:0123456789abcdef0123456789".into();
            }
        }
        assert!(release_of(&plan(&d, &observed)).is_some());
    }

    #[test]
    fn no_release_for_an_unchanged_rerun_a_scale_or_an_interrupted_rollout() {
        let d = desired::build(&config(MIGRATE, false));
        // Unchanged: nothing at all.
        assert!(plan(&d, &running(&d)).is_empty());
        // Scale up: new instances of the configuration that runs.
        let more = desired::build(&config(&format!("{MIGRATE}APP_INSTANCES=5\n"), false));
        let p = plan(&more, &running(&d));
        assert!(release_of(&p).is_none(), "{p}");
        assert!(p.to_string().contains("create and start reporadar-app-5"));
        // Scale down.
        let fewer = desired::build(&config(&format!("{MIGRATE}APP_INSTANCES=2\n"), false));
        assert!(release_of(&plan(&fewer, &running(&d))).is_none());
        // A rollout interrupted after app-1 was replaced: the release ran before it.
        let next = desired::build(&config(&format!("{MIGRATE}APP_ENV_X=2\n"), false));
        let mut observed = running(&d);
        let new_app1 = next.containers_of(Role::App).next().unwrap();
        for o in &mut observed.containers {
            if o.name == "reporadar-app-1" {
                o.labels
                    .insert(LABEL_CONFIG_HASH.into(), next.config_hash(new_app1));
            }
        }
        let p = plan(&next, &observed);
        assert_eq!(replaced(&p), ["app-2", "app-3"]);
        assert!(release_of(&p).is_none(), "{p}");
        // No release command: never.
        let plain = desired::build(&config("APP_ENV_X=2\n", false));
        assert!(release_of(&plan(&plain, &running(&d))).is_none());
    }
}
