use super::*;
use crate::config::testing::config;

#[test]
fn one_container_per_service_and_instance() {
    let d = build(&config("", false));
    let aliases: Vec<&str> = d.containers.iter().map(|c| c.alias.as_str()).collect();
    assert_eq!(
        aliases,
        ["postgres", "redis", "app-1", "app-2", "app-3", "nginx"]
    );
    assert_eq!(d.network, "reporadar_default");
    assert_eq!(d.container_name(&d.containers[3]), "reporadar-app-2");
}

#[test]
fn ha_adds_a_replica_and_three_sentinels_in_the_ha_profile() {
    let d = build(&config("", true));
    let ha: Vec<&str> = d
        .containers
        .iter()
        .filter(|c| c.profile == Some(HA_PROFILE))
        .map(|c| c.alias.as_str())
        .collect();
    assert_eq!(
        ha,
        ["redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"]
    );
    let app = d.containers_of(Role::App).next().unwrap();
    assert_eq!(
        app.env["REDIS_SENTINELS"],
        "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379"
    );
}

#[test]
fn only_nginx_publishes_a_port() {
    let d = build(&config("HTTP_PORT=8080\n", true));
    for c in &d.containers {
        assert_eq!(
            !c.published.is_empty(),
            c.role == Role::Nginx,
            "{}",
            c.alias
        );
    }
    assert_eq!(
        d.containers_of(Role::Nginx).next().unwrap().published[0].host,
        8080
    );
}

#[test]
fn every_container_has_a_healthcheck_and_limits() {
    let d = build(&config("", true));
    for c in &d.containers {
        assert!(c.healthcheck.is_some(), "{}", c.alias);
        assert!(c.nano_cpus > 0 && c.memory_bytes > 0, "{}", c.alias);
    }
}

#[test]
fn app_instances_run_unprivileged_with_their_own_id_and_log_volume() {
    let d = build(&config("", false));
    for (i, c) in d.containers_of(Role::App).enumerate() {
        let n = i + 1;
        assert_eq!(c.env["INSTANCE_ID"], format!("app-{n}"));
        assert_eq!(c.volumes[0].volume, format!("app-{n}-logs"));
        assert_eq!(c.user.as_deref(), Some(APP_USER));
        assert!(c.no_new_privileges);
    }
}

#[test]
fn no_secret_value_in_any_container_spec() {
    let d = build(&config("", true));
    let specs = serde_json::to_string(&d.containers).unwrap();
    for s in &d.secrets {
        assert!(!specs.contains(s.value.expose()), "{} leaked", s.env_var);
    }
}

#[test]
fn start_order_follows_readiness() {
    let d = build(&config("", true));
    let nginx = d.containers_of(Role::Nginx).next().unwrap();
    assert_eq!(nginx.depends_on, ["app-1", "app-2", "app-3"]);
    let app = d.containers_of(Role::App).next().unwrap();
    assert_eq!(app.depends_on, ["postgres", "redis"]);
    let sentinel = d.containers_of(Role::Sentinel).next().unwrap();
    assert_eq!(sentinel.depends_on, ["redis", "redis-replica"]);
}

#[test]
fn config_hash_is_stable_and_ignores_the_instance_count() {
    let three = build(&config("", false));
    let five = build(&config("APP_INSTANCES=5\n", false));
    let again = build(&config("", false));
    for (a, b) in three.containers.iter().zip(&again.containers) {
        assert_eq!(three.config_hash(a), again.config_hash(b));
    }
    let app1_three = three.containers_of(Role::App).next().unwrap();
    let app1_five = five.containers_of(Role::App).next().unwrap();
    assert_eq!(three.config_hash(app1_three), five.config_hash(app1_five));
    // nginx is reloaded, not recreated, when only its upstream list changes.
    let n3 = three.containers_of(Role::Nginx).next().unwrap();
    let n5 = five.containers_of(Role::Nginx).next().unwrap();
    assert_ne!(five.config_hash(n5), "");
    assert_eq!(three.config_hash(n3), five.config_hash(n5));
    assert_ne!(three.reload_hash(n3), five.reload_hash(n5));
}

#[test]
fn config_hash_changes_with_what_the_container_runs() {
    let a = build(&config("", false));
    let b = build(&config("APP_IMAGE=radar-deploy/radar-app:0.2.0\n", false));
    let hash = |d: &Deployment| d.config_hash(d.containers_of(Role::App).next().unwrap());
    assert_ne!(hash(&a), hash(&b));
    // Postgres does not run the app image: untouched.
    let pg = |d: &Deployment| d.config_hash(d.containers_of(Role::Postgres).next().unwrap());
    assert_eq!(pg(&a), pg(&b));
}

#[test]
fn nginx_conf_lists_every_instance_explicitly() {
    let d = build(&config("APP_INSTANCES=5\n", false));
    let conf = &d.file("nginx.conf").unwrap().content;
    for n in 1..=5 {
        assert!(conf.contains(&format!("server app-{n}:3000 max_fails=1 fail_timeout=3s;")));
    }
    assert!(conf.contains("least_conn;"));
    assert!(!conf.lines().any(|l| l.trim_start().starts_with("resolver")));
}
