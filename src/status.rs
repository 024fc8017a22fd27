//! What `status` reports: one model per target (a single host's containers, a swarm's services
//! and their tasks), each with one text rendering and one JSON shape. The operations fill them
//! in (`engine::status`, `swarm_engine::status`); the command prints a [`Report`] without
//! knowing which target it came from.
//!
//! The JSON shapes are a contract (scripts read `status --format json`): the single-host one is
//! `{project, containers, networks, volumes}`, the swarm one `{project, target: "swarm",
//! services}`, as they always were.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::desired::Role;
use crate::observed::{ContainerState, Health};
use crate::swarm::ObservedTask;
use crate::traffic::Traffic;
use crate::ui::Ui;

/// The status of a project on either target.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Report {
    Single(HostStatus),
    Swarm(SwarmStatus),
}

impl Report {
    /// The table `status` prints.
    pub fn to_text(&self, ui: &Ui) -> String {
        match self {
            Report::Single(r) => r.to_text(ui),
            Report::Swarm(r) => r.to_text(ui),
        }
    }

    /// What `status --format json` prints.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    /// Adds the last minute's traffic from nginx's log, or why there is none.
    pub fn set_traffic(&mut self, traffic: Result<Traffic, String>) {
        let last = match self {
            Report::Single(r) => &mut r.last_minute,
            Report::Swarm(r) => &mut r.last_minute,
        };
        *last = LastMinute::from(traffic);
    }
}

/// The last minute's traffic as `status` shows it: the figures, or why they could not be read.
#[derive(Debug, Default, Serialize)]
pub struct LastMinute {
    #[serde(rename = "traffic", skip_serializing_if = "Option::is_none")]
    pub figures: Option<Traffic>,
    #[serde(
        rename = "traffic_unavailable",
        skip_serializing_if = "Option::is_none"
    )]
    pub unavailable: Option<String>,
}

impl From<Result<Traffic, String>> for LastMinute {
    fn from(r: Result<Traffic, String>) -> LastMinute {
        match r {
            Ok(t) => LastMinute {
                figures: Some(t),
                unavailable: None,
            },
            Err(why) => LastMinute {
                figures: None,
                unavailable: Some(why),
            },
        }
    }
}

impl LastMinute {
    fn to_text(&self) -> String {
        match (&self.figures, &self.unavailable) {
            (Some(t), _) => crate::traffic::view::last_minute_text(t),
            (None, Some(why)) => format!("Last minute: no figures ({why})\n"),
            (None, None) => String::new(),
        }
    }
}

/// A project's containers, networks and volumes on one Docker host.
#[derive(Debug, Serialize)]
pub struct HostStatus {
    pub project: String,
    pub containers: Vec<ContainerStatus>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
    /// nginx's maintenance flag is set (`radar-deploy maintenance on`); in the JSON only
    /// while it is.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub maintenance: bool,
    /// The certificate nginx serves over HTTPS (`TLS_MODE` on), as read from its container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateStatus>,
    /// `traffic`: requests per instance in the last minute, from nginx's log.
    #[serde(flatten)]
    pub last_minute: LastMinute,
}

/// What `status` says of the served certificate.
#[derive(Debug, Serialize)]
pub struct CertificateStatus {
    pub names: Vec<String>,
    pub issuer: String,
    /// UTC, `2027-01-15 08:00:00 UTC`.
    pub expires: String,
    pub days_left: i64,
}

#[derive(Debug, Serialize)]
pub struct ContainerStatus {
    pub service: String,
    pub instance: String,
    pub name: String,
    pub id: String,
    pub image: String,
    pub state: ContainerState,
    pub health: Health,
    pub status: String,
    pub ports: Vec<PortStatus>,
}

#[derive(Debug, Serialize)]
pub struct PortStatus {
    pub host: u16,
    pub container: u16,
}

impl HostStatus {
    fn to_text(&self, ui: &Ui) -> String {
        if self.containers.is_empty() {
            return format!("project {}: no containers\n", self.project);
        }
        let mut out = format!(
            "{:<16} {:<28} {:<10} {:<10} {:<13} {}\n",
            "INSTANCE", "NAME", "STATE", "HEALTH", "CONTAINER", "PORTS"
        );
        for c in &self.containers {
            let health = format!("{:?}", c.health).to_lowercase();
            let health_col = format!("{health:<10}");
            let health_col = match c.health {
                Health::Healthy => ui.green(&health_col),
                Health::Unhealthy => ui.red(&health_col),
                Health::Starting => ui.yellow(&health_col),
                Health::None => health_col,
            };
            let ports: Vec<String> = c
                .ports
                .iter()
                .map(|p| format!("{}->{}/tcp", p.host, p.container))
                .collect();
            out.push_str(&format!(
                "{:<16} {:<28} {:<10} {} {:<13} {}\n",
                c.instance,
                c.name,
                format!("{:?}", c.state).to_lowercase(),
                health_col,
                c.id,
                ports.join(", ")
            ));
        }
        if let Some(c) = &self.certificate {
            out.push_str(&c.to_text(ui));
        }
        if self.maintenance {
            out.push_str(&ui.yellow(&format!("{}\n", crate::templates::MAINTENANCE_ON_NOTE)));
        }
        out.push_str(&self.last_minute.to_text());
        out
    }
}

impl CertificateStatus {
    /// One line; yellow under 14 days left (verify warns then), red once expired.
    fn to_text(&self, ui: &Ui) -> String {
        let line = format!(
            "HTTPS certificate: {} issued by {}, expires {} ({} days left)\n",
            self.names.join(", "),
            self.issuer,
            self.expires,
            self.days_left
        );
        match self.days_left {
            d if d < 0 => ui.red(&line),
            d if d < 14 => ui.yellow(&line),
            _ => line,
        }
    }
}

/// A project's services on the swarm, with their tasks.
#[derive(Debug, Serialize)]
pub struct SwarmStatus {
    pub project: String,
    /// Always `"swarm"`: tells a script reading the JSON which shape it has.
    pub target: &'static str,
    pub services: Vec<ServiceStatus>,
    /// The certificate an nginx task on the node reached serves (`TLS_MODE` on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateStatus>,
    #[serde(flatten)]
    pub last_minute: LastMinute,
}

#[derive(Debug, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    pub image: String,
    pub running: usize,
    pub replicas: u64,
    pub published: Vec<u16>,
    pub update_state: Option<String>,
    /// Where its running tasks are: node host name → how many.
    pub nodes: BTreeMap<String, usize>,
    pub tasks: Vec<ObservedTask>,
}

impl SwarmStatus {
    pub fn new(project: &str, services: Vec<ServiceStatus>) -> SwarmStatus {
        SwarmStatus {
            project: project.to_string(),
            target: "swarm",
            services,
            certificate: None,
            last_minute: LastMinute::default(),
        }
    }

    fn to_text(&self, ui: &Ui) -> String {
        if self.services.is_empty() {
            return format!("{}: no services on the swarm\n", self.project);
        }
        let mut out = format!("{} (swarm)\n", ui.bold(&self.project));
        for s in &self.services {
            let ok = s.running as u64 == s.replicas;
            let count = format!("{}/{}", s.running, s.replicas);
            let ports = s
                .published
                .iter()
                .map(|p| format!(" :{p}"))
                .collect::<String>();
            let update = s
                .update_state
                .as_deref()
                .map(|u| format!(" update {u}"))
                .unwrap_or_default();
            let on = s
                .nodes
                .iter()
                .map(|(host, n)| match n {
                    1 => host.clone(),
                    n => format!("{host} ×{n}"),
                })
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&format!(
                "  {:<32} {:>7}  {}{ports}{update}{}\n",
                s.name,
                if ok { ui.green(&count) } else { ui.red(&count) },
                s.image,
                if on.is_empty() {
                    String::new()
                } else {
                    format!("  on {on}")
                }
            ));
        }
        if let Some(c) = &self.certificate {
            out.push_str(&c.to_text(ui));
        }
        out.push_str(&self.last_minute.to_text());
        out
    }
}

/// Whether a running deployment has the HA profile (a Redis replica and Sentinels), from the
/// names its parts are known by: a container's role (`sentinel`) on one host, a service's name
/// within its stack (`sentinel-2`) on a swarm. `scale` keeps the mode it finds, whether it came
/// from the env file or `up --ha`, so the app's Sentinel settings do not change with the count.
pub fn runs_ha<'a>(names: impl IntoIterator<Item = &'a str>) -> bool {
    let sentinel = Role::Sentinel.service();
    names.into_iter().any(|n| {
        n.strip_prefix(sentinel)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> Ui {
        Ui::new(true, false, 0)
    }

    fn container(instance: &str, state: ContainerState, health: Health) -> ContainerStatus {
        let service = instance.split('-').next().unwrap_or(instance);
        ContainerStatus {
            service: service.into(),
            instance: instance.into(),
            name: format!("demo-{instance}"),
            id: "0123456789ab".into(),
            image: "img".into(),
            state,
            health,
            status: String::new(),
            ports: vec![],
        }
    }

    #[test]
    fn a_single_host_report_is_a_table_of_containers() {
        let mut nginx = container("nginx", ContainerState::Running, Health::Healthy);
        nginx.ports = vec![PortStatus {
            host: 8080,
            container: 80,
        }];
        let report = Report::Single(HostStatus {
            last_minute: Default::default(),
            project: "demo".into(),
            containers: vec![
                container("app-1", ContainerState::Running, Health::Starting),
                container("app-2", ContainerState::Exited, Health::None),
                nginx,
            ],
            networks: vec!["demo_default".into()],
            volumes: vec![],
            maintenance: false,
            certificate: None,
        });
        insta::assert_snapshot!(report.to_text(&plain()));
    }

    #[test]
    fn maintenance_mode_is_said_under_the_table_and_in_the_json() {
        let host = HostStatus {
            last_minute: Default::default(),
            project: "demo".into(),
            containers: vec![container("nginx", ContainerState::Running, Health::Healthy)],
            networks: vec![],
            volumes: vec![],
            maintenance: true,
            certificate: None,
        };
        let text = host.to_text(&plain());
        assert!(
            text.ends_with("maintenance mode is on: nginx answers 503 to every request but /health and no request reaches an instance; `radar-deploy maintenance off` ends it\n"),
            "{text}"
        );
        let v: serde_json::Value =
            serde_json::from_str(&Report::Single(host).to_json().unwrap()).unwrap();
        assert_eq!(v["maintenance"], serde_json::json!(true));
    }

    #[test]
    fn a_swarm_report_lists_services_with_their_tasks_and_nodes() {
        let service = |name: &str, running, replicas, nodes: &[(&str, usize)]| ServiceStatus {
            name: name.into(),
            image: "img:1".into(),
            running,
            replicas,
            published: vec![],
            update_state: None,
            nodes: nodes.iter().map(|(h, n)| (h.to_string(), *n)).collect(),
            tasks: vec![],
        };
        let mut nginx = service("demo_nginx", 1, 1, &[("node-a", 1)]);
        nginx.published = vec![8080];
        let mut app = service("demo_app", 3, 4, &[("node-a", 2), ("node-b", 1)]);
        app.update_state = Some("updating".into());
        let report = Report::Swarm(SwarmStatus {
            certificate: Some(CertificateStatus {
                names: vec!["app.example.com".into()],
                issuer: "CN=Test CA".into(),
                expires: "2027-03-01 08:00:00 UTC".into(),
                days_left: 88,
            }),
            ..SwarmStatus::new(
                "demo",
                vec![app, nginx, service("demo_redis", 1, 1, &[("node-b", 1)])],
            )
        });
        insta::assert_snapshot!(report.to_text(&plain()));
    }

    #[test]
    fn an_empty_project_says_so_on_either_target() {
        let host = Report::Single(HostStatus {
            last_minute: Default::default(),
            project: "demo".into(),
            containers: vec![],
            networks: vec![],
            volumes: vec![],
            maintenance: false,
            certificate: None,
        });
        assert_eq!(host.to_text(&plain()), "project demo: no containers\n");
        let swarm = Report::Swarm(SwarmStatus::new("demo", vec![]));
        assert_eq!(swarm.to_text(&plain()), "demo: no services on the swarm\n");
    }

    #[test]
    fn the_json_keeps_each_targets_shape() {
        let host = Report::Single(HostStatus {
            last_minute: Default::default(),
            project: "demo".into(),
            containers: vec![],
            networks: vec!["demo_default".into()],
            volumes: vec![],
            maintenance: false,
            certificate: None,
        });
        let v: serde_json::Value = serde_json::from_str(&host.to_json().unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "project": "demo", "containers": [], "networks": ["demo_default"], "volumes": []
            })
        );
        let swarm = Report::Swarm(SwarmStatus::new("demo", vec![]));
        let v: serde_json::Value = serde_json::from_str(&swarm.to_json().unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"project": "demo", "target": "swarm", "services": []})
        );
    }

    #[test]
    fn ha_is_found_by_sentinels_on_either_target() {
        // One host: container roles.
        assert!(runs_ha(["postgres", "redis", "sentinel", "app"]));
        assert!(!runs_ha(["postgres", "redis", "app", "nginx"]));
        // A swarm: service names within the stack.
        assert!(runs_ha(["app", "redis-replica", "sentinel-1"]));
        assert!(!runs_ha(["app", "redis", "nginx"]));
        assert!(!runs_ha(["sentinels-demo", "sentinelx"]));
        assert!(!runs_ha([]));
    }
}
