//! The Swarm plan as text: what `up --target swarm --dry-run` shows for each situation, and
//! the decisions behind it (placement, tiers, reload, pruning).

use sha2::{Digest, Sha256};

use super::*;
use crate::config::testing::config;
use crate::desired;
use crate::swarm::observed::ObservedNode;

fn stack(extra: &str, ha: bool) -> Stack {
    crate::swarm::build(&desired::build(&config(extra, ha)))
}

fn sha(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..6])
}

/// Stand-ins for the facade's spec hashes: any change of the service's spec, or of the names
/// of the configs and secrets it mounts, changes `tasks`; the replica count only `service`.
fn hashes(st: &Stack) -> BTreeMap<String, SpecHash> {
    st.services
        .iter()
        .map(|s| {
            let objects: Vec<&str> = s
                .spec
                .files
                .iter()
                .filter_map(|m| st.config(&config_key(&m.file)))
                .map(|c| c.name.as_str())
                .chain(
                    s.spec
                        .secrets
                        .iter()
                        .filter_map(|k| st.secret(k))
                        .map(|s| s.name.as_str()),
                )
                .collect();
            let tasks = sha(&format!("{:?} {:?} {objects:?}", s.spec, s.constraints));
            let service = sha(&format!("{tasks} {}", s.replicas));
            (st.service_name(s), SpecHash { service, tasks })
        })
        .collect()
}

fn node(id: &str, labels: &[String]) -> ObservedNode {
    ObservedNode {
        id: id.into(),
        host: format!("host-{id}"),
        ready: true,
        active: true,
        labels: labels.iter().map(|l| (l.clone(), "true".into())).collect(),
    }
}

/// An empty swarm of one manager node `m`.
fn empty() -> SwarmObserved {
    SwarmObserved {
        node_id: "m".into(),
        nodes: vec![node("m", &[])],
        ..Default::default()
    }
}

/// What the swarm holds after a successful `up` of `st` on one manager node.
fn deployed(st: &Stack) -> SwarmObserved {
    let hashes = hashes(st);
    let labels: Vec<String> = st
        .services
        .iter()
        .filter(|s| !s.constraints.is_empty())
        .map(|s| st.placement_label(&s.name))
        .collect();
    SwarmObserved {
        node_id: "m".into(),
        nodes: vec![node("m", &labels)],
        networks: vec![st.network.clone()],
        services: st
            .services
            .iter()
            .map(|s| ObservedService {
                id: format!("id-{}", s.name),
                name: st.service_name(s),
                image: s.spec.image.clone(),
                replicas: u64::from(s.replicas),
                update_state: Some("completed".into()),
                hash: hashes.get(&st.service_name(s)).cloned(),
                configs: s
                    .spec
                    .files
                    .iter()
                    .filter_map(|m| st.config(&config_key(&m.file)))
                    .map(|c| c.name.clone())
                    .collect(),
                secrets: s
                    .spec
                    .secrets
                    .iter()
                    .filter_map(|k| st.secret(k))
                    .map(|s| s.name.clone())
                    .collect(),
                ..Default::default()
            })
            .collect(),
        objects: st
            .configs
            .iter()
            .map(|c| (ObjectKind::Config, &c.name))
            .chain(st.secrets.iter().map(|s| (ObjectKind::Secret, &s.name)))
            .map(|(kind, name)| StackObject {
                kind,
                name: name.clone(),
                id: format!("id-{name}"),
            })
            .collect(),
    }
}

/// The digests in object names (`_` and ten hex digits) as `_#`, so the text reads the same
/// whatever the test config's content hashes to.
fn without_digests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('_') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let hex = after
            .bytes()
            .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            .count();
        let ends = after
            .as_bytes()
            .get(hex)
            .is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'_');
        if hex == 10 && ends {
            out.push_str("_#");
            rest = &after[hex..];
        } else {
            out.push('_');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn text(st: &Stack, observed: &SwarmObserved) -> String {
    let p = plan(st, observed, &hashes(st)).expect("a plan");
    without_digests(&p.lines().join("\n"))
}

fn labels_of(st: &Stack, services: &[&str]) -> Vec<String> {
    services.iter().map(|s| st.placement_label(s)).collect()
}

#[test]
fn first_deploy_creates_everything_app_with_the_data_stores() {
    let st = stack("", false);
    let p = plan(&st, &empty(), &hashes(&st)).unwrap();
    assert_eq!(
        without_digests(&p.to_string()),
        "\
plan for stack reporadar on the swarm (nothing is changed; `render --target swarm` writes the whole stack file):
  label   node host-m: radar-deploy.reporadar.postgres=true (pins a service there)
  label   node host-m: radar-deploy.reporadar.redis=true (pins a service there)
  label   node host-m: radar-deploy.reporadar.nginx=true (pins a service there)
  create  network reporadar_default (overlay, attachable)
  create  config reporadar_nginx_conf_#
  create  secret reporadar_postgres_password_#
  create  secret reporadar_redis_password_#
  create  secret reporadar_session_secret_#
  create  secret reporadar_encryption_key_#
  create  service reporadar_postgres (1 task)
  create  service reporadar_redis (1 task)
  create  service reporadar_app (3 tasks)
  create  service reporadar_nginx (1 task)
"
    );
    assert_eq!((p.created(), p.updated(), p.unchanged()), (4, 0, 0));
    assert!(
        !p.reload_nginx,
        "nginx is created with the app: it resolves the tasks itself"
    );
}

#[test]
fn nothing_changed_keeps_every_service_and_touches_nothing() {
    let st = stack("", false);
    let p = plan(&st, &deployed(&st), &hashes(&st)).unwrap();
    assert_eq!(
        without_digests(&p.lines().join("\n")),
        "\
keep    service reporadar_postgres (unchanged)
keep    service reporadar_redis (unchanged)
keep    service reporadar_app (unchanged)
keep    service reporadar_nginx (unchanged)"
    );
    assert!(p.labels.is_empty() && p.network.is_none() && p.create.is_empty());
    assert!(!p.reload_nginx && p.prune.is_empty());
}

#[test]
fn a_new_app_image_rolls_the_app_start_first_and_reloads_nginx() {
    let st = stack("", false);
    let on_swarm = deployed(&st);
    let st = stack("APP_IMAGE=radar-deploy/radar-app:2.0\n", false);
    let p = plan(&st, &on_swarm, &hashes(&st)).unwrap();
    assert_eq!(
        text(&st, &on_swarm),
        "\
keep    service reporadar_postgres (unchanged)
keep    service reporadar_redis (unchanged)
update  service reporadar_app (image radar-deploy/radar-app:0.1.0 → radar-deploy/radar-app:2.0: Swarm's rolling update, start-first)
keep    service reporadar_nginx (unchanged)
reload  nginx (`nginx -t`, then a reload: it resolves tasks.app again for the new app tasks)"
    );
    let app = p.steps().find(|s| s.service == "app").unwrap();
    assert!(app.follow_nginx, "nginx follows the app's rolling update");
    assert!(p.reload_nginx);
}

#[test]
fn a_changed_nginx_conf_is_a_new_config_nginx_updates_and_the_old_one_goes() {
    let st = stack("", false);
    let on_swarm = deployed(&st);
    let st = stack("LB_STRATEGY=round_robin\n", false);
    assert_eq!(
        text(&st, &on_swarm),
        "\
create  config reporadar_nginx_conf_#
keep    service reporadar_postgres (unchanged)
keep    service reporadar_redis (unchanged)
keep    service reporadar_app (unchanged)
update  service reporadar_nginx (new config reporadar_nginx_conf_#: Swarm's rolling update, stop-first)
remove  config reporadar_nginx_conf_# (an earlier version no service uses)"
    );
    let p = plan(&st, &on_swarm, &hashes(&st)).unwrap();
    assert!(
        !p.reload_nginx,
        "nginx restarts with the new config: no reload"
    );
    assert_eq!(p.prune.len(), 1);
    assert_eq!(p.prune[0].kind, ObjectKind::Config);
}

#[test]
fn a_changed_secret_is_a_new_secret_and_every_service_using_it_updates() {
    let st = stack("", false);
    let on_swarm = deployed(&st);
    let st = stack("REDIS_PASSWORD=Zz9rT2qLm9ZpK4wN7bYc3HdQ\n", false);
    assert_eq!(
        text(&st, &on_swarm),
        "\
create  secret reporadar_redis_password_#
keep    service reporadar_postgres (unchanged)
update  service reporadar_redis (new secret reporadar_redis_password_#: Swarm's rolling update, stop-first)
update  service reporadar_app (new secret reporadar_redis_password_#: Swarm's rolling update, start-first)
keep    service reporadar_nginx (unchanged)
reload  nginx (`nginx -t`, then a reload: it resolves tasks.app again for the new app tasks)
remove  secret reporadar_redis_password_# (an earlier version no service uses)"
    );
}

#[test]
fn ha_added_creates_the_sentinels_and_the_replica_and_labels_them() {
    let st = stack("", false);
    let on_swarm = deployed(&st);
    let st = stack("", true);
    assert_eq!(
        text(&st, &on_swarm),
        "\
label   node host-m: radar-deploy.reporadar.redis-replica=true (pins a service there)
label   node host-m: radar-deploy.reporadar.sentinel-1=true (pins a service there)
label   node host-m: radar-deploy.reporadar.sentinel-2=true (pins a service there)
label   node host-m: radar-deploy.reporadar.sentinel-3=true (pins a service there)
create  config reporadar_sentinel_conf_#
keep    service reporadar_postgres (unchanged)
keep    service reporadar_redis (unchanged)
create  service reporadar_redis-replica (1 task)
create  service reporadar_sentinel-1 (1 task)
create  service reporadar_sentinel-2 (1 task)
create  service reporadar_sentinel-3 (1 task)
update  service reporadar_app (its spec changed: Swarm's rolling update, start-first)
keep    service reporadar_nginx (unchanged)
reload  nginx (`nginx -t`, then a reload: it resolves tasks.app again for the new app tasks)"
    );
}

#[test]
fn scale_changes_only_the_app_replica_count_and_reloads_nginx() {
    let st = stack("APP_INSTANCES=3\n", false);
    let on_swarm = deployed(&st);
    let st = stack("APP_INSTANCES=5\n", false);
    let p = plan_scale(&st, &on_swarm, &hashes(&st)).unwrap();
    assert_eq!(
        without_digests(&p.lines().join("\n")),
        "\
update  service reporadar_app (3 → 5 tasks: Swarm starts or stops tasks, none is replaced)
reload  nginx (`nginx -t`, then a reload: it resolves tasks.app again for the new app tasks)"
    );
    assert!(!p.steps().next().unwrap().follow_nginx);
}

#[test]
fn scale_to_the_running_count_changes_nothing() {
    let st = stack("APP_INSTANCES=3\n", false);
    let p = plan_scale(&st, &deployed(&st), &hashes(&st)).unwrap();
    assert_eq!(p.lines(), vec!["keep    service reporadar_app (unchanged)"]);
    assert!(!p.reload_nginx);
}

#[test]
fn scale_before_any_deploy_says_to_deploy_first() {
    let st = stack("", false);
    let err = plan_scale(&st, &empty(), &hashes(&st)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "service reporadar_app not found: deploy first with `up --target swarm` (is --project right?)"
    );
}

#[test]
fn an_up_that_scales_updates_the_app_without_replacing_tasks() {
    let st = stack("APP_INSTANCES=2\n", false);
    let on_swarm = deployed(&st);
    let st = stack("APP_INSTANCES=4\n", false);
    let p = plan(&st, &on_swarm, &hashes(&st)).unwrap();
    let app = p.steps().find(|s| s.service == "app").unwrap();
    assert_eq!(
        app.action,
        ServiceAction::Update {
            reasons: vec!["2 → 4 tasks".into()],
            rolling: false
        }
    );
    assert!(p.reload_nginx);
}

#[test]
fn node_labels_already_present_are_left_where_they_are() {
    let st = stack("", false);
    let mut on_swarm = empty();
    // The data is on node `b`: its labels stay there.
    on_swarm
        .nodes
        .push(node("b", &labels_of(&st, &["postgres", "redis", "nginx"])));
    assert!(plan(&st, &on_swarm, &hashes(&st))
        .unwrap()
        .labels
        .is_empty());
}

#[test]
fn node_labels_partly_present_only_the_missing_ones_are_placed() {
    let st = stack("", true);
    let mut on_swarm = empty();
    on_swarm.nodes = vec![
        node("m", &labels_of(&st, &["nginx", "postgres"])),
        node("b", &labels_of(&st, &["redis"])),
        node("c", &[]),
    ];
    let p = plan(&st, &on_swarm, &hashes(&st)).unwrap();
    let placed: Vec<String> = p
        .labels
        .iter()
        .map(|l| format!("{} on {}", l.label, l.host))
        .collect();
    // The fewest labels first: c (0), then b and c (1 each; b listed first), the manager
    // (2) once the others caught up.
    assert_eq!(
        placed,
        vec![
            "radar-deploy.reporadar.redis-replica on host-c",
            "radar-deploy.reporadar.sentinel-1 on host-b",
            "radar-deploy.reporadar.sentinel-2 on host-c",
            "radar-deploy.reporadar.sentinel-3 on host-m",
        ]
    );
}

#[test]
fn on_three_nodes_redis_its_replica_and_the_sentinels_spread() {
    let st = stack("", true);
    let mut on_swarm = empty();
    on_swarm.nodes = vec![node("a", &[]), node("m", &[]), node("b", &[])];
    let p = plan(&st, &on_swarm, &hashes(&st)).unwrap();
    let on = |service: &str| {
        let label = st.placement_label(service);
        p.labels
            .iter()
            .find(|l| l.label == label)
            .map(|l| l.node_id.clone())
            .unwrap()
    };
    assert_eq!(on("postgres"), "m", "the manager first on a tie");
    assert_eq!(on("nginx"), "m", "clients connect to the manager's address");
    assert_ne!(on("redis"), on("redis-replica"));
    let mut sentinels = vec![on("sentinel-1"), on("sentinel-2"), on("sentinel-3")];
    sentinels.sort();
    sentinels.dedup();
    assert_eq!(sentinels.len(), 3, "{:?}", p.labels);
}

#[test]
fn a_drained_manager_gets_no_label_not_even_nginx() {
    let st = stack("", false);
    let mut on_swarm = empty();
    on_swarm.nodes[0].active = false;
    on_swarm.nodes.push(node("w", &[]));
    let p = plan(&st, &on_swarm, &hashes(&st)).unwrap();
    assert!(p.labels.iter().all(|l| l.node_id == "w"), "{:?}", p.labels);
    assert_eq!(p.labels.len(), 3);
}

#[test]
fn a_node_that_is_down_gets_no_label() {
    let st = stack("", false);
    let mut on_swarm = empty();
    let mut down = node("d", &[]);
    down.ready = false;
    on_swarm.nodes.insert(0, down);
    let p = plan(&st, &on_swarm, &hashes(&st)).unwrap();
    assert!(p.labels.iter().all(|l| l.node_id == "m"), "{:?}", p.labels);
}

#[test]
fn no_usable_node_is_an_error_naming_the_fix() {
    let st = stack("", false);
    let mut on_swarm = empty();
    on_swarm.nodes[0].active = false;
    let err = plan(&st, &on_swarm, &hashes(&st)).unwrap_err();
    assert_eq!(err, PlanError::NoNodeForLabels);
    assert!(err
        .to_string()
        .contains("fix: `docker node update --availability active <node>`"));
}

#[test]
fn spread_labels_puts_each_on_the_least_labelled_node_the_preferred_first() {
    let labels: Vec<String> = ["postgres", "redis", "redis-replica"]
        .iter()
        .map(|s| format!("radar-deploy.p.{s}"))
        .collect();
    let nodes = |n: &[(&str, usize)]| -> Vec<(String, String, usize)> {
        n.iter()
            .map(|(id, c)| (id.to_string(), format!("host-{id}"), *c))
            .collect()
    };
    let on =
        |placed: Vec<NodeLabel>| -> Vec<String> { placed.into_iter().map(|l| l.node_id).collect() };
    assert_eq!(
        on(spread_labels(&labels, nodes(&[("a", 0), ("m", 0)]), "m")),
        vec!["m", "a", "m"]
    );
    // A node that already carries labels gets the new ones last.
    assert_eq!(
        on(spread_labels(
            &labels[..1],
            nodes(&[("m", 2), ("b", 0)]),
            "m"
        )),
        vec!["b"]
    );
    // No candidate: nothing placed (the plan then fails, naming the fix).
    assert!(spread_labels(&labels, vec![], "m").is_empty());
}

#[test]
fn leftovers_of_earlier_versions_are_pruned_and_the_stacks_own_kept() {
    let st = stack("", false);
    let mut on_swarm = deployed(&st);
    on_swarm.objects.push(StackObject {
        kind: ObjectKind::Config,
        name: "reporadar_nginx_conf_0123456789".into(),
        id: "old-conf".into(),
    });
    on_swarm.objects.push(StackObject {
        kind: ObjectKind::Secret,
        name: "reporadar_redis_password_0123456789".into(),
        id: "old-secret".into(),
    });
    let p = plan(&st, &on_swarm, &hashes(&st)).unwrap();
    let pruned: Vec<&str> = p.prune.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(pruned, vec!["old-conf", "old-secret"]);
    assert_eq!(
        p.lines()[4..].join("\n"),
        "\
remove  config reporadar_nginx_conf_0123456789 (an earlier version no service uses)
remove  secret reporadar_redis_password_0123456789 (an earlier version no service uses)"
    );
}

#[test]
fn a_missing_network_is_created_even_when_the_services_run() {
    let st = stack("", false);
    let mut on_swarm = deployed(&st);
    on_swarm.networks = vec!["reporadar_defaultish".into()];
    let p = plan(&st, &on_swarm, &hashes(&st)).unwrap();
    assert_eq!(p.network.as_deref(), Some("reporadar_default"));
    assert_eq!(
        p.lines()[0],
        "create  network reporadar_default (overlay, attachable)"
    );
}

#[test]
fn a_running_stack_updates_tier_by_tier_app_after_the_data_stores() {
    let st = stack("", true);
    let on_swarm = deployed(&st);
    let p = plan(&st, &on_swarm, &hashes(&st)).unwrap();
    let tiers: Vec<Vec<&str>> = p
        .tiers
        .iter()
        .map(|t| t.iter().map(|s| s.service.as_str()).collect())
        .collect();
    assert_eq!(
        tiers,
        vec![
            vec!["postgres", "redis", "redis-replica"],
            vec!["sentinel-1", "sentinel-2", "sentinel-3"],
            vec!["app"],
            vec!["nginx"],
        ]
    );
    // Cold: the app starts with the data stores.
    let p = plan(&st, &empty(), &hashes(&st)).unwrap();
    assert_eq!(p.tiers[0].iter().filter(|s| s.service == "app").count(), 1);
    assert_eq!(p.tiers.len(), 3);
}

#[test]
fn a_service_made_by_something_else_is_updated() {
    let st = stack("", false);
    let mut on_swarm = deployed(&st);
    for s in &mut on_swarm.services {
        s.hash = None;
    }
    let p = plan(&st, &on_swarm, &hashes(&st)).unwrap();
    assert_eq!(p.updated(), 4);
    assert_eq!(
        p.lines()[0],
        "update  service reporadar_postgres (its spec changed: Swarm's rolling update, stop-first)"
    );
}

#[test]
fn an_image_pinned_by_digest_is_the_same_image() {
    let st = stack("", false);
    let mut on_swarm = deployed(&st);
    for s in &mut on_swarm.services {
        s.image.push_str("@sha256:0123");
        s.hash = None;
    }
    let p = plan(&st, &on_swarm, &hashes(&st)).unwrap();
    assert!(p.lines().iter().all(|l| !l.contains("image ")), "{p}");
}

#[test]
fn app_and_nginx_changed_together_need_no_reload() {
    let st = stack("", false);
    let on_swarm = deployed(&st);
    let st = stack(
        "APP_IMAGE=radar-deploy/radar-app:2.0\nLB_STRATEGY=round_robin\n",
        false,
    );
    let p = plan(&st, &on_swarm, &hashes(&st)).unwrap();
    assert_eq!(p.updated(), 2, "{p}");
    assert!(!p.reload_nginx);
}

#[test]
fn down_removes_the_labels_of_this_node_and_names_the_other_nodes_that_keep_theirs() {
    let prefix = "radar-deploy.reporadar.";
    let mut other = node("b", &["radar-deploy.reporadar.redis".to_string()]);
    other
        .labels
        .insert("radar-deploy.other.redis".into(), "true".into());
    let nodes = vec![
        node(
            "m",
            &[
                "radar-deploy.reporadar.nginx".to_string(),
                "radar-deploy.reporadar.postgres".to_string(),
                "zone".to_string(),
            ],
        ),
        other,
        node("c", &["radar-deploy.other.postgres".to_string()]),
    ];
    assert_eq!(
        placed_labels(&nodes, "m", prefix),
        PlacedLabels {
            here: vec![
                "radar-deploy.reporadar.nginx".into(),
                "radar-deploy.reporadar.postgres".into()
            ],
            elsewhere: vec![("host-b".into(), vec!["radar-deploy.reporadar.redis".into()])],
        }
    );
    assert_eq!(
        placed_labels(&nodes, "m", "radar-deploy.none."),
        PlacedLabels::default()
    );
}

const MIGRATE: &str = "APP_RELEASE_COMMAND=migrate\n";

#[test]
fn release_job_runs_on_a_first_deploy_after_the_data_stores_before_the_app() {
    let st = stack(MIGRATE, false);
    let lines = text(&st, &empty());
    let services: Vec<&str> = lines
        .lines()
        .filter(|l| l.starts_with("create  service") || l.starts_with("run "))
        .collect();
    assert_eq!(
        services,
        [
            "create  service reporadar_postgres (1 task)",
            "create  service reporadar_redis (1 task)",
            "run     job reporadar_release once: `migrate` (first deploy of the app service, before any task starts; a failure stops here, the app service untouched)",
            "create  service reporadar_app (3 tasks)",
            "create  service reporadar_nginx (1 task)",
        ]
    );
    // The app is no longer in the data stores' tier: the release runs between them.
    let p = plan(&st, &empty(), &hashes(&st)).unwrap();
    let r = p.release.as_ref().unwrap();
    assert!(p.tiers[r.before_tier].iter().any(|s| s.service == "app"));
    assert!(p.tiers[..r.before_tier]
        .iter()
        .flatten()
        .any(|s| s.service == "postgres"));
}

#[test]
fn release_job_runs_for_a_new_app_configuration_not_for_a_scale_or_an_unchanged_run() {
    let st = stack(MIGRATE, false);
    let on_swarm = deployed(&st);
    assert!(plan(&st, &on_swarm, &hashes(&st))
        .unwrap()
        .release
        .is_none());
    let scaled = stack(&format!("{MIGRATE}APP_INSTANCES=5\n"), false);
    assert!(plan(&scaled, &on_swarm, &hashes(&scaled))
        .unwrap()
        .release
        .is_none());
    assert!(plan_scale(&scaled, &on_swarm, &hashes(&scaled))
        .unwrap()
        .release
        .is_none());
    let changed = stack(&format!("{MIGRATE}APP_ENV_X=1\n"), false);
    let t = text(&changed, &on_swarm);
    assert!(
        t.contains("run     job reporadar_release once: `migrate` (a new app image or configuration, before any task is replaced; a failure stops here, the app service untouched)\nupdate  service reporadar_app"),
        "{t}"
    );
    // Without a release command: never.
    let plain = stack("APP_ENV_X=1\n", false);
    assert!(plan(&plain, &deployed(&st), &hashes(&plain))
        .unwrap()
        .release
        .is_none());
}

/// A stack with TLS on and a certificate at hand (`up`), which is `chain`.
fn tls_stack(chain: &str) -> Stack {
    let cfg = config(
        "TLS_MODE=files\nPUBLIC_HOSTS=app.example.com\nTLS_CERT_FILE=tls/fullchain.pem\nTLS_KEY_FILE=tls/privkey.pem\nHTTPS_PORT=8443\n",
        false,
    );
    let material = desired::TlsMaterial {
        chain_pem: chain.into(),
        key_pem: crate::config::Secret::new(format!("KEY OF {chain}")),
        acme_thumbprint: None,
    };
    crate::swarm::build(&desired::build_with(
        &cfg,
        &desired::ImageUser::without_daemon(&cfg),
        Some(&material),
    ))
}

#[test]
fn a_new_certificate_is_two_new_secrets_and_a_stop_first_update_of_nginx_only() {
    let st = tls_stack("CHAIN 1");
    let on_swarm = deployed(&st);
    let st = tls_stack("CHAIN 2");
    let p = plan(&st, &on_swarm, &hashes(&st)).unwrap();
    assert_eq!(
        text(&st, &on_swarm),
        "\
create  secret reporadar_tls_fullchain_#
create  secret reporadar_tls_privkey_#
keep    service reporadar_postgres (unchanged)
keep    service reporadar_redis (unchanged)
keep    service reporadar_app (unchanged)
update  service reporadar_nginx (new secret reporadar_tls_fullchain_#, new secret reporadar_tls_privkey_#: Swarm's rolling update, stop-first)
remove  secret reporadar_tls_fullchain_# (an earlier version no service uses)
remove  secret reporadar_tls_privkey_# (an earlier version no service uses)"
    );
    assert!(!p.reload_nginx, "nginx restarts with the new secrets");
    let pruned: Vec<&str> = p.prune.iter().map(|o| o.name.as_str()).collect();
    assert!(pruned.iter().all(|n| n.contains("_tls_")), "{pruned:?}");
}
