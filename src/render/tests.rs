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
