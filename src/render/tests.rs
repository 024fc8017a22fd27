//! Golden snapshots of every rendered file, for the configurations operators use most.

use crate::config::testing::config;
use crate::desired;

fn snapshot_all(case: &str, extra: &str, ha: bool) {
    let d = desired::build(&config(extra, ha));
    for (path, content) in super::files(&d, ".env.multi-instance") {
        let name = format!("{case}__{}", path.replace('/', "__"));
        insta::assert_snapshot!(name, content);
    }
}

#[test]
fn defaults() {
    snapshot_all("defaults", "", false);
}

#[test]
fn ha() {
    snapshot_all("ha", "", true);
}

#[test]
fn five_instances() {
    snapshot_all("five_instances", "APP_INSTANCES=5\n", false);
}

#[test]
fn ip_hash() {
    snapshot_all("ip_hash", "LB_STRATEGY=ip_hash\n", false);
}

#[test]
fn tls_files() {
    snapshot_all(
        "tls_files",
        "TLS_MODE=files\nPUBLIC_HOSTS=app.example.com,www.example.com\nTLS_CERT_FILE=tls/fullchain.pem\nTLS_KEY_FILE=tls/privkey.pem\nHTTPS_PORT=8443\nHSTS=true\n",
        false,
    );
}

/// The engine's nginx.conf: the certificate in its own directory and, with ACME, the
/// stateless challenge answer.
#[test]
fn tls_acme_nginx_conf_of_the_engine() {
    let cfg = config("TLS_MODE=acme\nPUBLIC_HOSTS=app.example.com\n", false);
    let material = desired::TlsMaterial {
        chain_pem: "CHAIN".into(),
        key_pem: crate::config::Secret::new("KEY"),
        acme_thumbprint: Some("Thumb-print_0123456789abcdefghijklmnopqrstu".into()),
    };
    let d = desired::build_with(
        &cfg,
        &desired::ImageUser::without_daemon(&cfg),
        Some(&material),
    );
    let conf = &d.file("nginx.conf").unwrap().content;
    assert!(conf.contains(&format!(
        "ssl_certificate {}/fullchain.pem;",
        material.dir()
    )));
    insta::assert_snapshot!("tls_acme__nginx.conf", conf);
}

#[test]
fn rendered_files_contain_no_secret() {
    let d = desired::build(&config("GITHUB_TOKEN=ghp_SomeTokenValue123\n", true));
    for (path, content) in super::files(&d, ".env.multi-instance") {
        for s in &d.secrets {
            assert!(
                !content.contains(s.value.expose()),
                "{path} contains the value of {}",
                s.env_var
            );
        }
    }
}
