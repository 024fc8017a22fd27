//! The Swarm plan: a pure function of (stack, what the swarm holds) that lists what `up
//! --target swarm` must do, each step with its reason. `up --target swarm --dry-run` prints it;
//! the executor (`swarm_engine`) applies it without deciding anything.
//!
//! What it decides, in the order the executor applies it:
//! 1. the node labels that pin services (nginx's on the manager this run talks to, whose
//!    address is where clients connect; the data stores and Sentinels spread, each to the node
//!    with the fewest of the project's labels, so the Redis master, its replica and the three
//!    Sentinels land on different nodes when there are enough);
//! 2. the overlay network, and the configs and secrets not on the swarm yet (their names carry
//!    a digest of their content, so a change is a new object);
//! 3. each service created, updated or kept, tier by tier ([`tiers`]), by the spec hashes the
//!    facade computes from the spec it would send ([`SpecHash`]);
//!    The release command's one-off job ([`ReleaseStep`]) runs just before the tier of the app
//!    service, when the app service is created or its tasks replaced (a new image or
//!    configuration; not a replica count change, not an unchanged run);
//! 4. whether nginx must reload (a new app task set, nginx itself unchanged);
//! 5. the configs and secrets of earlier versions, removed once no service uses them.

use std::collections::BTreeMap;
use std::fmt;

use super::observed::{
    ObjectKind, ObservedNode, ObservedService, SpecHash, StackObject, SwarmObserved,
};
use super::{Service, Stack, UpdateOrder};
use crate::compose::config_key;
use crate::desired::Role;

/// Why there is no plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "swarm nodes: no ready, active node to pin the data services and Sentinels to\n  \
         fix: `docker node update --availability active <node>`"
    )]
    NoNodeForLabels,
    #[error("service {0} not found: deploy first with `up --target swarm` (is --project right?)")]
    NotDeployed(String),
}

/// A placement label to put on a node (`label=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLabel {
    pub node_id: String,
    pub host: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAction {
    Create,
    /// Its spec changed; `reasons` name what (empty: something the plan has no words for).
    /// `rolling`: the task template changed, so Swarm replaces the tasks one by one; without
    /// it only the replica count changed, and Swarm starts or stops tasks.
    Update {
        reasons: Vec<String>,
        rolling: bool,
    },
    Keep,
}

/// One service of the stack and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStep {
    /// The stack's short name (`app`), to find the [`Service`] in the stack.
    pub service: String,
    /// The name on the swarm (`{project}_app`).
    pub name: String,
    pub action: ServiceAction,
    pub replicas: u32,
    pub update_order: UpdateOrder,
    /// The hashes of the desired spec; the wait looks for tasks carrying `hash.tasks`.
    pub hash: SpecHash,
    /// While this update rolls, reload nginx each time the task set changes, so nginx always
    /// knows live tasks as old ones stop (the app's rolling update during `up`).
    pub follow_nginx: bool,
}

/// The release command's job and where it runs: before the tier `before_tier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseStep {
    /// The job service's name on the swarm (`{project}_release`).
    pub name: String,
    pub command: Vec<String>,
    pub reason: String,
    pub before_tier: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmPlan {
    pub project: String,
    /// The line of the app image's own decision (`app_image`), printed first; the plan leaves
    /// it empty, the operation that checks the image fills it.
    pub preflight: Option<String>,
    pub labels: Vec<NodeLabel>,
    /// The overlay network to create.
    pub network: Option<String>,
    /// Configs and secrets to create, configs first.
    pub create: Vec<(ObjectKind, String)>,
    /// The services, tier by tier: a tier starts once the one before it has converged.
    pub tiers: Vec<Vec<ServiceStep>>,
    /// The release command's job, run to completion before the app's tier.
    pub release: Option<ReleaseStep>,
    /// After the services: reload nginx, which resolved `tasks.app` when it loaded its config.
    pub reload_nginx: bool,
    /// Configs and secrets no service of the stack uses any more; the executor removes each
    /// it can (one still in use by a task being stopped is left for the next run).
    pub prune: Vec<StackObject>,
}

impl SwarmPlan {
    pub fn steps(&self) -> impl Iterator<Item = &ServiceStep> {
        self.tiers.iter().flatten()
    }

    fn count(&self, f: impl Fn(&ServiceAction) -> bool) -> usize {
        self.steps().filter(|s| f(&s.action)).count()
    }

    pub fn created(&self) -> usize {
        self.count(|a| *a == ServiceAction::Create)
    }

    pub fn updated(&self) -> usize {
        self.count(|a| matches!(a, ServiceAction::Update { .. }))
    }

    pub fn unchanged(&self) -> usize {
        self.count(|a| *a == ServiceAction::Keep)
    }

    /// The plan as lines, one per step, in the order the executor applies them.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.preflight.iter().cloned().collect();
        lines.extend(self.labels.iter().map(|l| {
            format!(
                "label   node {}: {}=true (pins a service there)",
                l.host, l.label
            )
        }));
        if let Some(network) = &self.network {
            lines.push(format!("create  network {network} (overlay, attachable)"));
        }
        lines.extend(
            self.create
                .iter()
                .map(|(kind, name)| format!("create  {} {name}", kind.as_str())),
        );
        for (i, s) in self
            .tiers
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.iter().map(move |s| (i, s)))
        {
            if let Some(r) = self.release.as_ref().filter(|r| r.before_tier == i) {
                if s.service == Role::App.service() {
                    lines.push(format!(
                        "run     job {} once: `{}` ({}; a failure stops here, the app service untouched)",
                        r.name,
                        shell_words::join(&r.command),
                        r.reason
                    ));
                }
            }
            lines.push(match &s.action {
                ServiceAction::Create => format!(
                    "create  service {} ({} task{})",
                    s.name,
                    s.replicas,
                    if s.replicas == 1 { "" } else { "s" }
                ),
                ServiceAction::Update { reasons, rolling } => {
                    let why = if reasons.is_empty() {
                        "its spec changed".to_string()
                    } else {
                        reasons.join(", ")
                    };
                    if *rolling {
                        format!(
                            "update  service {} ({why}: Swarm's rolling update, {})",
                            s.name,
                            match s.update_order {
                                UpdateOrder::StartFirst => "start-first",
                                UpdateOrder::StopFirst => "stop-first",
                            }
                        )
                    } else {
                        format!(
                            "update  service {} ({why}: Swarm starts or stops tasks, none is \
                             replaced)",
                            s.name
                        )
                    }
                }
                ServiceAction::Keep => format!("keep    service {} (unchanged)", s.name),
            });
        }
        if self.reload_nginx {
            lines.push(
                "reload  nginx (`nginx -t`, then a reload: it resolves tasks.app again for the \
                 new app tasks)"
                    .to_string(),
            );
        }
        lines.extend(self.prune.iter().map(|o| {
            format!(
                "remove  {} {} (an earlier version no service uses)",
                o.kind.as_str(),
                o.name
            )
        }));
        lines
    }
}

impl fmt::Display for SwarmPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "plan for stack {} on the swarm (nothing is changed; `render --target swarm` \
             writes the whole stack file):",
            self.project
        )?;
        for line in self.lines() {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// Start order by readiness, as on one host: data stores, Sentinels, the app, then nginx
/// (which resolves `tasks.app` when it loads its config). On a first deploy (`cold`) the app
/// starts with the data stores: nothing serves yet, and its healthcheck's start period covers
/// the seconds until Postgres and Redis answer (it reconnects by itself), which saves a whole
/// tier of Swarm scheduling and health polling. Changes to a running stack keep the strict
/// order, so an app update never meets a data store that is restarting.
pub fn tiers(st: &Stack, cold: bool) -> Vec<Vec<&Service>> {
    let tier_of = |r: Role| match r {
        Role::Postgres | Role::Redis | Role::RedisReplica => 0,
        Role::Sentinel => 1,
        Role::App if cold => 0,
        Role::App | Role::Release => 2,
        Role::Nginx => 3,
    };
    (0..4)
        .map(|t| {
            st.services
                .iter()
                .filter(|s| tier_of(s.spec.role) == t)
                .collect()
        })
        .filter(|v: &Vec<&Service>| !v.is_empty())
        .collect()
}

/// `up --target swarm`: everything that makes the swarm hold `st`. `hashes`: the facade's
/// [`SpecHash`] of each service's desired spec, by name on the swarm, computed with the ids of
/// the configs and secrets already there.
pub fn plan(
    st: &Stack,
    observed: &SwarmObserved,
    hashes: &BTreeMap<String, SpecHash>,
) -> Result<SwarmPlan, PlanError> {
    let cold = observed.services.is_empty();
    // With a release command, the app waits for it even on a first deploy.
    let tiers: Vec<Vec<ServiceStep>> = tiers(st, cold && st.release.is_none())
        .into_iter()
        .map(|tier| {
            tier.into_iter()
                .map(|s| {
                    let mut step = service_step(st, s, observed, hashes);
                    step.follow_nginx = s.spec.role == Role::App
                        && matches!(step.action, ServiceAction::Update { .. });
                    step
                })
                .collect()
        })
        .collect();
    let keep: Vec<&str> = st
        .configs
        .iter()
        .map(|c| c.name.as_str())
        .chain(st.secrets.iter().map(|s| s.name.as_str()))
        .collect();
    let mut plan = SwarmPlan {
        project: st.project.clone(),
        preflight: None,
        labels: node_labels(st, observed)?,
        network: (!observed.networks.contains(&st.network)).then(|| st.network.clone()),
        create: missing_objects(st, observed),
        reload_nginx: false,
        release: None,
        tiers,
        prune: observed
            .objects
            .iter()
            .filter(|o| !keep.contains(&o.name.as_str()))
            .cloned()
            .collect(),
    };
    plan.reload_nginx = nginx_must_reload(&plan);
    plan.release = release_step(st, &plan);
    Ok(plan)
}

/// The release job, when the app service is created or its tasks are replaced.
fn release_step(st: &Stack, plan: &SwarmPlan) -> Option<ReleaseStep> {
    let job = st.release.as_ref()?;
    let (tier, app) = plan.tiers.iter().enumerate().find_map(|(i, t)| {
        t.iter()
            .find(|s| s.service == Role::App.service())
            .map(|s| (i, s))
    })?;
    let reason = match &app.action {
        ServiceAction::Create => "first deploy of the app service, before any task starts",
        ServiceAction::Update { rolling: true, .. } => {
            "a new app image or configuration, before any task is replaced"
        }
        ServiceAction::Update { rolling: false, .. } | ServiceAction::Keep => return None,
    };
    Some(ReleaseStep {
        name: st.service_name(&job.service),
        command: job.service.spec.command.clone().unwrap_or_default(),
        reason: reason.into(),
        before_tier: tier,
    })
}

/// `scale` on the swarm: only the app service changes (its replica count; Swarm starts or
/// stops tasks, no running task is replaced), plus any config or secret it needs that is
/// missing. Fails when the app service is not on the swarm.
pub fn plan_scale(
    st: &Stack,
    observed: &SwarmObserved,
    hashes: &BTreeMap<String, SpecHash>,
) -> Result<SwarmPlan, PlanError> {
    let app = st
        .services
        .iter()
        .find(|s| s.spec.role == Role::App)
        .expect("every stack has the app service");
    let name = st.service_name(app);
    if observed.service(&name).is_none() {
        return Err(PlanError::NotDeployed(name));
    }
    let mut plan = SwarmPlan {
        project: st.project.clone(),
        preflight: None,
        labels: vec![],
        network: None,
        create: missing_objects(st, observed),
        tiers: vec![vec![service_step(st, app, observed, hashes)]],
        reload_nginx: false,
        release: None,
        prune: vec![],
    };
    plan.reload_nginx = nginx_must_reload(&plan);
    Ok(plan)
}

/// nginx resolved `tasks.app` when it loaded its config: a changed app service (new tasks)
/// needs a reload, unless nginx itself is created or updated (it then loads the new set).
fn nginx_must_reload(plan: &SwarmPlan) -> bool {
    let changed = |role: &str| {
        plan.steps()
            .any(|s| s.service == role && s.action != ServiceAction::Keep)
    };
    changed(Role::App.service()) && !changed(Role::Nginx.service())
}

fn missing_objects(st: &Stack, observed: &SwarmObserved) -> Vec<(ObjectKind, String)> {
    let have = |kind: ObjectKind, name: &str| {
        observed
            .objects
            .iter()
            .any(|o| o.kind == kind && o.name == name)
    };
    st.configs
        .iter()
        .map(|c| (ObjectKind::Config, c.name.clone()))
        .chain(
            st.secrets
                .iter()
                .map(|s| (ObjectKind::Secret, s.name.clone())),
        )
        .filter(|(kind, name)| !have(*kind, name))
        .collect()
}

fn service_step(
    st: &Stack,
    s: &Service,
    observed: &SwarmObserved,
    hashes: &BTreeMap<String, SpecHash>,
) -> ServiceStep {
    let name = st.service_name(s);
    let hash = hashes
        .get(&name)
        .cloned()
        .expect("a spec hash for every service of the stack");
    let action = match observed.service(&name) {
        None => ServiceAction::Create,
        Some(o) if o.hash.as_ref() == Some(&hash) => ServiceAction::Keep,
        Some(o) => ServiceAction::Update {
            reasons: update_reasons(st, s, o),
            rolling: o.hash.as_ref().is_none_or(|h| h.tasks != hash.tasks),
        },
    };
    ServiceStep {
        service: s.name.clone(),
        name,
        action,
        replicas: s.replicas,
        update_order: s.update_order,
        hash,
        follow_nginx: false,
    }
}

/// What differs between the service on the swarm and the desired one, in the operator's
/// words: the image, the task count, configs and secrets of a new content.
fn update_reasons(st: &Stack, s: &Service, o: &ObservedService) -> Vec<String> {
    let mut reasons = vec![];
    // Swarm may pin the image it resolved by digest (`image:tag@sha256:…`).
    let image = o.image.split('@').next().unwrap_or_default();
    if image != s.spec.image {
        reasons.push(format!("image {image} → {}", s.spec.image));
    }
    if o.replicas != u64::from(s.replicas) {
        reasons.push(format!("{} → {} tasks", o.replicas, s.replicas));
    }
    let configs = s
        .spec
        .files
        .iter()
        .filter_map(|m| st.config(&config_key(&m.file)))
        .map(|c| (ObjectKind::Config, &c.name));
    let secrets = s
        .spec
        .secrets
        .iter()
        .filter_map(|k| st.secret(k))
        .map(|sec| (ObjectKind::Secret, &sec.name));
    for (kind, name) in configs.chain(secrets) {
        let had = match kind {
            ObjectKind::Config => &o.configs,
            ObjectKind::Secret => &o.secrets,
        };
        if !had.contains(name) {
            reasons.push(format!("new {} {name}", kind.as_str()));
        }
    }
    reasons
}

/// The placement labels no node carries yet, and the node each goes on: nginx's on the manager
/// this run talks to (`observed.node_id`), unless it takes no tasks (a drained manager, as
/// many run in production: then it spreads like the rest); each other on the ready, active
/// node with the fewest of the project's labels, the manager first on a tie. On one node all
/// go there; on three, the Redis master, its replica and each Sentinel land on different
/// nodes. A label some node already carries stays where it is: the data is there.
fn node_labels(st: &Stack, observed: &SwarmObserved) -> Result<Vec<NodeLabel>, PlanError> {
    let (edge, spread): (Vec<&Service>, Vec<&Service>) = st
        .services
        .iter()
        .filter(|s| !s.constraints.is_empty())
        .partition(|s| s.spec.role == Role::Nginx);
    let absent = |k: &String| {
        !observed
            .nodes
            .iter()
            .any(|n| n.true_labels().any(|l| l == k))
    };
    let label = |s: &&Service| st.placement_label(&s.name);
    let mut missing: Vec<String> = spread.iter().map(label).filter(absent).collect();
    let mut missing_here: Vec<String> = edge.iter().map(label).filter(absent).collect();
    if missing.is_empty() && missing_here.is_empty() {
        return Ok(vec![]);
    }
    let prefer = observed.node_id.as_str();
    let usable = observed.nodes.iter().filter(|n| n.usable());
    if !usable.clone().any(|n| n.id == prefer) {
        missing.append(&mut missing_here);
    }
    let prefix = st.placement_label("");
    let candidates: Vec<(String, String, usize)> = usable
        .map(|n| {
            let count = n.true_labels().filter(|k| k.starts_with(&prefix)).count();
            (n.id.clone(), n.host.clone(), count)
        })
        .collect();
    let mut labels = spread_labels(&missing, candidates, prefer);
    if labels.len() < missing.len() {
        return Err(PlanError::NoNodeForLabels);
    }
    let host = observed.host(prefer);
    labels.extend(missing_here.into_iter().map(|label| NodeLabel {
        node_id: prefer.to_string(),
        host: host.clone(),
        label,
    }));
    Ok(labels)
}

/// Which node gets each label: the one with the fewest of the project's labels so far
/// (`candidates`: id, host name, count), `prefer` first on a tie, then the listed order. No
/// candidate: nothing placed.
fn spread_labels(
    missing: &[String],
    mut candidates: Vec<(String, String, usize)>,
    prefer: &str,
) -> Vec<NodeLabel> {
    candidates.sort_by_key(|(id, _, _)| id != prefer);
    let mut out = vec![];
    for label in missing {
        // min_by_key keeps the first of equals: the preferred node, then the listed order.
        let Some(node) = candidates.iter_mut().min_by_key(|(_, _, count)| *count) else {
            break;
        };
        node.2 += 1;
        out.push(NodeLabel {
            node_id: node.0.clone(),
            host: node.1.clone(),
            label: label.clone(),
        });
    }
    out
}

/// The project's placement labels (`prefix`) where `down --volumes` finds them: on this node
/// (`node_id`, removed with its data) and on the others, whose volumes this daemon cannot
/// reach (their labels stay, so a later `up` puts the services back on their data).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacedLabels {
    pub here: Vec<String>,
    /// Host name, labels.
    pub elsewhere: Vec<(String, Vec<String>)>,
}

pub fn placed_labels(nodes: &[ObservedNode], node_id: &str, prefix: &str) -> PlacedLabels {
    let mut out = PlacedLabels::default();
    for n in nodes {
        let ours: Vec<String> = n
            .labels
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        if ours.is_empty() {
            continue;
        }
        if n.id == node_id {
            out.here = ours;
        } else {
            out.elsewhere.push((n.host.clone(), ours));
        }
    }
    out
}

#[cfg(test)]
mod tests;
