//! The Swarm stack from the desired state: golden snapshots of the stack file, and the rules
//! the stack must keep whatever the config.

use super::*;
use crate::config::testing::config;
use crate::desired;

fn stack(extra: &str, ha: bool) -> Stack {
    build(&desired::build(&config(extra, ha)))
}

#[test]
fn stack_file_defaults() {
    for (path, content) in files(&stack("", false), ".env.multi-instance") {
        insta::assert_snapshot!(format!("defaults__{}", path.replace('/', "__")), content);
    }
}

#[test]
fn stack_file_ha() {
    let st = stack("APP_INSTANCES=5\n", true);
    insta::assert_snapshot!("ha__stack", render(&st, ".env.multi-instance"));
}

#[test]
fn the_app_is_one_replicated_service_identified_by_its_task_slot() {
    let st = stack("APP_INSTANCES=5\n", false);
    let apps: Vec<&Service> = st
        .services
        .iter()
        .filter(|s| s.spec.role == Role::App)
        .collect();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].replicas, 5);
    assert_eq!(apps[0].spec.env["INSTANCE_ID"], "app-{{.Task.Slot}}");
    assert!(
        apps[0].dnsrr,
        "nginx must reach the tasks, not a virtual IP"
    );
    assert_eq!(apps[0].update_order, UpdateOrder::StartFirst);
}

#[test]
fn nginx_balances_over_every_task_with_its_strategy() {
    let st = stack("", false);
    let conf = &st.config("nginx_conf").expect("nginx config").content;
    assert!(conf.contains("server tasks.app:3000 max_fails=3 fail_timeout=30s;"));
    assert!(conf.contains("least_conn;"));
    // Every server may be tried when several tasks stop at once (see `build`).
    assert!(conf.contains("proxy_next_upstream_tries 0;"));
    assert!(!conf
        .lines()
        .any(|l| l.trim_start().starts_with("resolver ")));
}

#[test]
fn scaling_changes_no_config_or_secret_name() {
    let a = stack("APP_INSTANCES=2\n", true);
    let b = stack("APP_INSTANCES=7\n", true);
    let names = |s: &Stack| {
        let mut v: Vec<String> = s.configs.iter().map(|c| c.name.clone()).collect();
        v.extend(s.secrets.iter().map(|c| c.name.clone()));
        v
    };
    assert_eq!(names(&a), names(&b));
}

#[test]
fn a_changed_secret_gets_a_new_name() {
    let a = stack("", false);
    let b = stack("REDIS_PASSWORD=Zq9wX2cV7bN4mL1kJ8hG5fD3\n", false);
    assert_ne!(
        a.secret("redis_password").unwrap().name,
        b.secret("redis_password").unwrap().name
    );
    assert_eq!(
        a.secret("postgres_password").unwrap().name,
        b.secret("postgres_password").unwrap().name
    );
}

#[test]
fn stateful_services_are_pinned_and_stop_first() {
    let st = stack("", true);
    for name in ["postgres", "redis", "redis-replica"] {
        let s = st.services.iter().find(|s| s.name == name).unwrap();
        assert_eq!(
            s.constraints,
            vec![format!("node.labels.radar-deploy.reporadar.{name} == true")]
        );
        assert_eq!(s.update_order, UpdateOrder::StopFirst);
    }
}

#[test]
fn the_stack_file_holds_no_secret() {
    let d = desired::build(&config("GITHUB_TOKEN=ghp_SomeTokenValue123\n", true));
    for (path, content) in files(&build(&d), ".env.multi-instance") {
        for s in &d.secrets {
            assert!(
                !content.contains(s.value.expose()),
                "{path} contains the value of {}",
                s.env_var
            );
        }
    }
}

#[test]
fn nginx_watches_the_app_tasks_and_then_runs_nginx_itself() {
    let st = stack("HTTP_PORT=8088\n", false);
    let nginx = st.services.iter().find(|s| s.name == "nginx").unwrap();
    let cmd = nginx.spec.command.as_ref().expect("a command");
    assert_eq!(cmd[..2], ["bash".to_string(), "-c".to_string()]);
    let script = &cmd[2];
    assert!(script.contains("getent ahostsv4 \"$host\""), "{script}");
    assert!(
        script.contains("nginx -t -q && nginx -s reload"),
        "{script}"
    );
    assert!(script.trim_end().ends_with("exec \"$@\""), "{script}");
    assert!(
        script.contains("exec /docker-entrypoint.sh \"$@\""),
        "{script}"
    );
    // The name, the interval and nginx's own command line are arguments, never script text.
    assert!(!script.contains(APP_TASKS_HOST) && !script.contains("8088"));
    assert_eq!(
        cmd[3..],
        [
            "radar-nginx-watch",
            "tasks.app",
            "2",
            "nginx",
            "-g",
            "daemon off;"
        ]
        .map(String::from)
    );
    // The other services keep their commands.
    let app = st.services.iter().find(|s| s.name == "app").unwrap();
    assert_eq!(
        app.spec.command,
        desired::build(&config("", false))
            .containers_of(Role::App)
            .next()
            .unwrap()
            .command
    );
}

const TLS_FILES: &str = "TLS_MODE=files\nPUBLIC_HOSTS=app.example.com,www.example.com\nTLS_CERT_FILE=tls/fullchain.pem\nTLS_KEY_FILE=tls/privkey.pem\nHTTPS_PORT=8443\nHSTS=true\n";

fn material(chain: &str, key: &str) -> desired::TlsMaterial {
    desired::TlsMaterial {
        chain_pem: chain.into(),
        key_pem: crate::config::Secret::new(key),
        acme_thumbprint: None,
    }
}

/// The stack as `up` builds it: the certificate at hand.
fn tls_stack(m: &desired::TlsMaterial) -> Stack {
    let cfg = config(TLS_FILES, false);
    build(&desired::build_with(
        &cfg,
        &desired::ImageUser::without_daemon(&cfg),
        Some(m),
    ))
}

/// `render --target swarm` with TLS_MODE=files: no certificate at hand, so the stack file
/// reads it from the files the env file names; nginx publishes HTTPS_PORT beside HTTP_PORT.
#[test]
fn stack_file_tls_files() {
    for (path, content) in files(&stack(TLS_FILES, false), ".env.multi-instance") {
        insta::assert_snapshot!(format!("tls_files__{}", path.replace('/', "__")), content);
    }
}

#[test]
fn nginx_reads_the_certificate_from_its_secrets_and_publishes_https_in_host_mode() {
    let m = material("CHAIN", "KEY");
    for st in [stack(TLS_FILES, false), tls_stack(&m)] {
        let conf = &st.config("nginx_conf").unwrap().content;
        assert!(
            conf.contains("ssl_certificate /run/secrets/tls_fullchain;"),
            "{conf}"
        );
        assert!(
            conf.contains("ssl_certificate_key /run/secrets/tls_privkey;"),
            "{conf}"
        );
        assert!(!conf.contains(desired::TLS_DIR), "{conf}");
        let nginx = st.services.iter().find(|s| s.name == "nginx").unwrap();
        assert!(nginx.spec.secrets.iter().any(|k| k == "tls_fullchain"));
        assert!(nginx.spec.secrets.iter().any(|k| k == "tls_privkey"));
        let ports: Vec<(u16, u16)> = nginx
            .spec
            .published
            .iter()
            .map(|p| (p.host, p.container))
            .collect();
        assert!(
            ports.contains(&(8443, desired::NGINX_TLS_PORT)),
            "{ports:?}"
        );
        // No other service sees the key.
        for s in st.services.iter().filter(|s| s.name != "nginx") {
            assert!(
                !s.spec.secrets.iter().any(|k| k.starts_with("tls_")),
                "{}",
                s.name
            );
        }
    }
    let st = tls_stack(&m);
    let key = st.secret("tls_privkey").unwrap();
    assert_eq!(key.value.expose(), "KEY");
    assert_eq!(key.mode(), 0o400);
    assert_eq!(st.secret("tls_fullchain").unwrap().value.expose(), "CHAIN");
    assert_eq!(st.secret("redis_password").unwrap().mode(), 0o444);
}

#[test]
fn without_tls_nothing_of_it_is_in_the_stack() {
    let st = stack("", false);
    assert!(st.secrets.iter().all(|s| !s.key.starts_with("tls_")));
    let text = render(&st, ".env.multi-instance");
    assert!(!text.contains("tls_") && !text.contains("TLS_"), "{text}");
}

#[test]
fn a_new_certificate_changes_the_tls_secret_names_and_nothing_else() {
    let a = tls_stack(&material("CHAIN 1", "KEY 1"));
    let b = tls_stack(&material("CHAIN 2", "KEY 2"));
    for key in ["tls_fullchain", "tls_privkey"] {
        assert_ne!(a.secret(key).unwrap().name, b.secret(key).unwrap().name);
    }
    // A new key alone (a re-keyed certificate) renames both: they travel together.
    let c = tls_stack(&material("CHAIN 1", "KEY 3"));
    assert_ne!(
        a.secret("tls_fullchain").unwrap().name,
        c.secret("tls_fullchain").unwrap().name
    );
    let others = |s: &Stack| {
        let mut v: Vec<String> = s
            .configs
            .iter()
            .map(|c| format!("{} {}", c.name, c.content))
            .collect();
        v.extend(
            s.secrets
                .iter()
                .filter(|s| !s.key.starts_with("tls_"))
                .map(|s| s.name.clone()),
        );
        v.extend(s.services.iter().map(|s| format!("{:?}", s.spec)));
        v
    };
    assert_eq!(others(&a), others(&b));
}

#[test]
fn the_stack_file_with_a_certificate_at_hand_holds_neither_chain_nor_key() {
    let st = tls_stack(&material(
        "-----BEGIN CERTIFICATE-----XYZ",
        "-----BEGIN PRIVATE KEY-----ABC",
    ));
    let text = render(&st, ".env.multi-instance");
    assert!(!text.contains("XYZ") && !text.contains("ABC"));
    // The same names `up` creates, read from the files.
    let name = &st.secret("tls_privkey").unwrap().name;
    assert!(
        text.contains(&format!("name: {name}\n    file: ${{TLS_KEY_FILE:?")),
        "{text}"
    );
}
