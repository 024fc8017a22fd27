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

fn app_users(extra: &str, image: &ImageUser) -> Vec<Option<String>> {
    build_with(&config(extra, false), image, None)
        .containers_of(Role::App)
        .map(|c| c.user.clone())
        .collect()
}

#[test]
fn the_app_runs_as_its_images_own_user_and_a_root_image_unprivileged() {
    let own = ImageUser::Is("1000".into());
    let image = "APP_IMAGE=example/web:1\n";
    assert_eq!(app_users(image, &own), vec![Some("1000".to_string()); 3]);
    let why = app_user(None, &own).why;
    assert_eq!(why, "image's own user 1000");
    for root in ["", "root", "0", "0:0", "root:root"] {
        let choice = app_user(None, &ImageUser::Is(root.into()));
        assert_eq!(choice.user.as_deref(), Some(APP_USER), "{root:?}");
        assert!(
            choice.why.contains("(set APP_USER=root to keep root)"),
            "{}",
            choice.why
        );
    }
    assert_eq!(
        app_user(None, &ImageUser::Is("root".into())).why,
        "image user is root → 65532:65532 (set APP_USER=root to keep root)"
    );
}

#[test]
fn app_user_overrides_the_image_and_may_keep_root_explicitly() {
    let root_image = ImageUser::Is(String::new());
    let with = |v: &str| {
        app_users(
            &format!("APP_IMAGE=example/web:1\nAPP_USER={v}\n"),
            &root_image,
        )
    };
    assert_eq!(with("root")[0].as_deref(), Some("root"));
    assert_eq!(with("web:web")[0].as_deref(), Some("web:web"));
    assert_eq!(
        with("")[0].as_deref(),
        Some(APP_USER),
        "empty: the rule, not a user"
    );
    let why = app_user(Some(&"root".parse().unwrap()), &ImageUser::Unknown).why;
    assert_eq!(why, "APP_USER=root: root, as asked");
}

#[test]
fn without_a_daemon_the_reference_image_user_is_known_and_another_images_is_its_own() {
    // `render`: the reference app's Dockerfile says USER 65532:65532; of any other image
    // nothing is known, so the Compose file leaves its user to the image (APP_USER when set).
    assert_eq!(
        app_users("", &ImageUser::without_daemon(&config("", false)))[0].as_deref(),
        Some(APP_USER)
    );
    let other = config("APP_IMAGE=example/web:1\n", false);
    assert_eq!(ImageUser::without_daemon(&other), ImageUser::Unknown);
    assert_eq!(
        build(&other).containers_of(Role::App).next().unwrap().user,
        None
    );
    let set = config("APP_IMAGE=example/web:1\nAPP_USER=1000:1000\n", false);
    assert_eq!(
        build(&set)
            .containers_of(Role::App)
            .next()
            .unwrap()
            .user
            .as_deref(),
        Some("1000:1000")
    );
}
