//! The Swarm executor against the fake swarm (`fake::swarm`): it applies a plan in its order,
//! reports a rolled-back update as today, names what did not converge at the deadline, and
//! scales and removes a stack.

use std::time::{Duration, Instant};

use super::*;
use crate::config::testing::config;
use crate::desired;
use crate::fake::swarm::{FakeSwarm, MANAGER};
use crate::swarm::observed::ObservedNode;

fn stack(extra: &str, ha: bool) -> Stack {
    swarm::build(&desired::build(&config(extra, ha)))
}

fn ui() -> Ui {
    Ui::new(true, true, 0)
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// What the executor asks when only the app service changes: its update, then nginx's reload.
const APP_UPDATE_THEN_RELOAD: [&str; 3] = [
    "update service reporadar_app",
    "exec nginx -t",
    "exec nginx -s reload",
];

/// Plans `st` against what the fake holds and applies it.
async fn up(fake: &FakeSwarm, st: &Stack, deadline: Instant) -> Result<UpReport> {
    let observed = fake.observed();
    let plan = swarm::plan(st, &observed, &spec_hashes(fake, st, &observed))?;
    apply(fake, st, &plan, &observed, deadline, &ui()).await
}

/// The calls without the nginx execs' container names.
fn verbs(fake: &FakeSwarm) -> Vec<String> {
    fake.take_calls()
        .into_iter()
        .map(|c| match c.split_once(": nginx") {
            Some((_, cmd)) if c.starts_with("exec ") => format!("exec nginx{cmd}"),
            _ => c,
        })
        .collect()
}

#[tokio::test]
async fn a_first_deploy_applies_the_plan_in_its_order() {
    let fake = FakeSwarm::new();
    let st = stack("", false);
    let r = up(&fake, &st, soon()).await.unwrap();
    assert_eq!(
        verbs(&fake).join("\n"),
        "\
label node m: radar-deploy.reporadar.postgres radar-deploy.reporadar.redis radar-deploy.reporadar.nginx
create network reporadar_default
create config nginx_conf
create secret postgres_password
create secret redis_password
create secret session_secret
create secret encryption_key
create service reporadar_postgres
create service reporadar_redis
create service reporadar_app
create service reporadar_nginx"
    );
    assert_eq!((r.created, r.updated, r.unchanged), (4, 0, 0));
    assert_eq!(r.labelled.len(), 3);
    assert!(!r.nginx_reloaded);
}

#[tokio::test]
async fn a_re_run_with_nothing_changed_touches_nothing() {
    let fake = FakeSwarm::new();
    let st = stack("", true);
    up(&fake, &st, soon()).await.unwrap();
    fake.take_calls();
    let r = up(&fake, &st, soon()).await.unwrap();
    assert_eq!(fake.take_calls(), Vec::<String>::new());
    assert_eq!((r.created, r.updated, r.unchanged), (0, 0, 8));
}

#[tokio::test]
async fn a_new_app_image_updates_the_app_alone_then_reloads_nginx() {
    let fake = FakeSwarm::new();
    up(&fake, &stack("", false), soon()).await.unwrap();
    fake.take_calls();
    let st = stack("APP_IMAGE=radar-deploy/radar-app:2.0\n", false);
    let r = up(&fake, &st, soon()).await.unwrap();
    assert_eq!(verbs(&fake), APP_UPDATE_THEN_RELOAD);
    assert_eq!((r.created, r.updated, r.unchanged), (0, 1, 3));
    assert!(r.nginx_reloaded);
}

#[tokio::test]
async fn a_rolled_back_update_is_reported_nginx_follows_and_nothing_after_it_runs() {
    let fake = FakeSwarm::new();
    up(&fake, &stack("", false), soon()).await.unwrap();
    fake.take_calls();
    fake.rolls_back("reporadar_app");
    let st = stack(
        "APP_IMAGE=radar-deploy/radar-app:2.0\nLB_STRATEGY=round_robin\n",
        false,
    );
    let err = up(&fake, &st, soon()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "service reporadar_app: Swarm's rolling update ended in rollback_completed: update \
         rolled back due to failure or early termination of task"
    );
    // nginx reloads for the task set the rollback left; its own update (the next tier) and
    // the pruning of the old config never happen.
    assert_eq!(
        verbs(&fake),
        vec![
            "create config nginx_conf",
            "update service reporadar_app",
            "exec nginx -t",
            "exec nginx -s reload"
        ]
    );
}

#[tokio::test]
async fn the_wait_ends_at_the_deadline_naming_the_service_and_its_tasks() {
    let fake = FakeSwarm::new();
    fake.never_starts("reporadar_redis");
    let st = stack("", false);
    let err = up(&fake, &st, Instant::now()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "service reporadar_redis: 0/1 tasks running and healthy by the deadline (tasks: slot \
         1: starting preparing)\n  fix: `docker service ps --no-trunc reporadar_redis` shows why; raise \
         --timeout if the node is slow"
    );
    // nginx (the last tier) was never created.
    assert!(!verbs(&fake).contains(&"create service reporadar_nginx".to_string()));
}

#[tokio::test]
async fn a_changed_config_is_created_nginx_updated_and_the_old_one_pruned() {
    let fake = FakeSwarm::new();
    up(&fake, &stack("", false), soon()).await.unwrap();
    let old: Vec<String> = fake
        .observed()
        .objects
        .iter()
        .map(|o| o.id.clone())
        .collect();
    fake.take_calls();
    let st = stack("LB_STRATEGY=round_robin\n", false);
    up(&fake, &st, soon()).await.unwrap();
    let old_conf = old.iter().find(|id| id.starts_with("config-")).unwrap();
    assert_eq!(
        verbs(&fake),
        vec![
            "create config nginx_conf".to_string(),
            "update service reporadar_nginx".to_string(),
            format!("remove config {old_conf}"),
        ]
    );
}

#[tokio::test]
async fn scale_changes_the_app_replicas_then_reloads_nginx() {
    let fake = FakeSwarm::new();
    up(&fake, &stack("APP_INSTANCES=3\n", false), soon())
        .await
        .unwrap();
    fake.take_calls();
    let st = stack("APP_INSTANCES=5\n", false);
    let r = scale_observed(&fake, &st, &fake.observed(), soon(), &ui())
        .await
        .unwrap();
    assert_eq!(r.from, 3);
    assert!(r.nginx_reloaded);
    assert_eq!(verbs(&fake), APP_UPDATE_THEN_RELOAD);
    let app = fake
        .observed()
        .services
        .into_iter()
        .find(|s| s.name == "reporadar_app");
    assert_eq!(app.unwrap().replicas, 5);
}

#[tokio::test]
async fn scale_before_a_deploy_says_to_deploy_first() {
    let fake = FakeSwarm::new();
    let err = scale_observed(&fake, &stack("", false), &fake.observed(), soon(), &ui())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("deploy first"), "{err}");
    assert_eq!(fake.take_calls(), Vec::<String>::new());
}

#[tokio::test]
async fn down_with_volumes_removes_everything_and_names_what_other_nodes_keep() {
    let fake = FakeSwarm::new();
    fake.add_node(ObservedNode {
        id: "w".into(),
        host: "worker".into(),
        ready: true,
        active: true,
        labels: [(
            "radar-deploy.reporadar.redis".to_string(),
            "true".to_string(),
        )]
        .into(),
    });
    up(&fake, &stack("", false), soon()).await.unwrap();
    fake.add_volume("reporadar_postgres-data");
    let r = remove_stack(&fake, "reporadar", MANAGER, true, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.services, 4);
    assert_eq!(r.volumes, 1);
    assert_eq!(r.node_labels, 2, "postgres and nginx were on the manager");
    assert_eq!(r.elsewhere.len(), 1);
    assert!(
        r.elsewhere[0].starts_with("node worker keeps the volumes of redis"),
        "{:?}",
        r.elsewhere
    );
    let left = fake.observed();
    assert!(left.services.is_empty() && left.objects.is_empty() && left.networks.is_empty());
}

#[tokio::test]
async fn down_without_volumes_keeps_them_and_the_labels() {
    let fake = FakeSwarm::new();
    up(&fake, &stack("", false), soon()).await.unwrap();
    fake.add_volume("reporadar_postgres-data");
    let r = remove_stack(&fake, "reporadar", MANAGER, false, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        (r.services, r.volumes, r.kept_volumes, r.node_labels),
        (4, 0, 1, 0)
    );
    assert!(fake.observed().nodes[0].labels.len() == 3);
}

#[tokio::test]
async fn the_release_job_runs_before_the_app_service_and_is_removed() {
    let fake = FakeSwarm::new();
    let st = stack("APP_RELEASE_COMMAND=migrate\n", false);
    up(&fake, &st, soon()).await.unwrap();
    let calls = verbs(&fake);
    let at = |c: &str| {
        calls
            .iter()
            .position(|x| x == c)
            .unwrap_or_else(|| panic!("no {c} in {calls:#?}"))
    };
    assert!(at("create service reporadar_redis") < at("create job reporadar_release"));
    assert!(at("create service reporadar_postgres") < at("create job reporadar_release"));
    assert!(at("logs task reporadar_release.1") < at("create service reporadar_app"));
    assert_eq!(
        calls
            .iter()
            .filter(|c| *c == "remove service reporadar_release")
            .count(),
        2,
        "a leftover removed before, the job after: {calls:#?}"
    );
    assert!(at("create job reporadar_release") < at("create service reporadar_app"));
    // Unchanged: no job.
    up(&fake, &st, soon()).await.unwrap();
    assert!(!verbs(&fake).iter().any(|c| c.contains("release")));
}

#[tokio::test]
async fn a_failed_release_job_leaves_the_app_service_untouched() {
    let fake = FakeSwarm::new();
    up(
        &fake,
        &stack("APP_RELEASE_COMMAND=migrate\n", false),
        soon(),
    )
    .await
    .unwrap();
    fake.take_calls();
    fake.fails_job("reporadar_release");
    let changed = stack("APP_RELEASE_COMMAND=migrate\nAPP_ENV_X=1\n", false);
    let err = format!("{:#}", up(&fake, &changed, soon()).await.unwrap_err());
    assert!(
        err.starts_with("release command `migrate` failed on the swarm (task failed: task: non-zero exit (2)); the app service was not created or updated"),
        "{err}"
    );
    assert!(
        err.contains("reporadar_release.1: the fake job's log line"),
        "{err}"
    );
    let calls = verbs(&fake);
    assert!(
        !calls.iter().any(|c| c.contains("service reporadar_app")),
        "{calls:#?}"
    );
    assert_eq!(
        calls.last().map(String::as_str),
        Some("remove service reporadar_release")
    );
}

fn tls_stack(chain: &str) -> Stack {
    let cfg = config(
        "TLS_MODE=files\nPUBLIC_HOSTS=app.example.com\nTLS_CERT_FILE=c.pem\nTLS_KEY_FILE=k.pem\n",
        false,
    );
    let m = desired::TlsMaterial {
        chain_pem: chain.into(),
        key_pem: crate::config::Secret::new(format!("key of {chain}")),
        acme_thumbprint: None,
    };
    swarm::build(&desired::build_with(
        &cfg,
        &desired::ImageUser::without_daemon(&cfg),
        Some(&m),
    ))
}

#[tokio::test]
async fn a_new_certificate_creates_its_secrets_updates_nginx_alone_then_removes_the_old_ones() {
    let fake = FakeSwarm::new();
    up(&fake, &tls_stack("chain 1"), soon()).await.unwrap();
    fake.take_calls();
    let r = up(&fake, &tls_stack("chain 2"), soon()).await.unwrap();
    let calls = verbs(&fake);
    let at = |prefix: &str| {
        calls
            .iter()
            .position(|c| c.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}: {calls:?}"))
    };
    assert!(at("create secret tls_fullchain") < at("update service reporadar_nginx"));
    assert!(at("create secret tls_privkey") < at("update service reporadar_nginx"));
    assert!(at("update service reporadar_nginx") < at("remove secret"));
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("remove secret"))
            .count(),
        2,
        "{calls:?}"
    );
    assert_eq!((r.created, r.updated, r.unchanged), (0, 1, 3));
    assert!(!r.nginx_reloaded, "nginx's new task loads the certificate");
}
