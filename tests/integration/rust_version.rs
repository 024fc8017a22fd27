//! `rust-version` in Cargo.toml is a promise: the workspace builds with that Rust. A locked
//! dependency that needs a newer one breaks it silently (cargo only warns at `cargo update`),
//! so this reads the lock file through `cargo metadata --locked` and fails naming every
//! dependency whose own `rust-version` is newer than that of the workspace member using it.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// "1.89" or "1.89.0" as comparable numbers; a missing patch is 0.
fn version(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.trim().split('.').map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

#[test]
fn rust_version_is_at_least_what_every_locked_dependency_needs() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo} metadata: {e}"));
    assert!(
        out.status.success(),
        "cargo metadata --locked failed (is Cargo.lock out of date? run `cargo update --workspace`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");

    let packages: BTreeMap<&str, &Value> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().expect("package id"), p))
        .collect();
    // Every dependency edge of the resolve, all platforms and kinds (Windows-only crates
    // included: the workspace promises Windows too).
    let deps: BTreeMap<&str, Vec<&str>> = meta["resolve"]["nodes"]
        .as_array()
        .expect("resolve nodes")
        .iter()
        .map(|n| {
            let ids = n["deps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["pkg"].as_str())
                .collect();
            (n["id"].as_str().expect("node id"), ids)
        })
        .collect();

    let mut problems = vec![];
    for member in meta["workspace_members"].as_array().expect("members") {
        let member = member.as_str().expect("member id");
        let m = packages[member];
        let name = m["name"].as_str().unwrap_or(member);
        let Some(ours) = m["rust_version"].as_str() else {
            problems.push(format!(
                "{name} has no rust-version in its Cargo.toml: set one"
            ));
            continue;
        };
        let ours_v = version(ours).expect("our rust-version parses");
        // The member's whole dependency closure.
        let mut seen = BTreeSet::new();
        let mut todo = vec![member];
        while let Some(id) = todo.pop() {
            for &d in deps.get(id).into_iter().flatten() {
                if seen.insert(d) {
                    todo.push(d);
                }
            }
        }
        let mut floor = ((0, 0, 0), String::new(), "none".to_string());
        for id in seen {
            let p = packages[id];
            let Some(needs) = p["rust_version"].as_str() else {
                continue;
            };
            let Some(needs_v) = version(needs) else {
                continue;
            };
            let dep = format!(
                "{} {}",
                p["name"].as_str().unwrap_or(id),
                p["version"].as_str().unwrap_or("?")
            );
            if needs_v > ours_v {
                problems.push(format!(
                    "{dep} (locked) needs Rust {needs}, but {name}'s rust-version is {ours}"
                ));
            }
            if needs_v > floor.0 {
                floor = (needs_v, needs.to_string(), dep);
            }
        }
        eprintln!(
            "{name}: rust-version {ours}; the newest a locked dependency needs is {} ({})",
            floor.1, floor.2
        );
    }
    assert!(
        problems.is_empty(),
        "rust-version is not true to Cargo.lock:\n  {}\nfix: raise rust-version in Cargo.toml to \
         the highest version named, or pin the dependency lower (`cargo update -p NAME --precise \
         VERSION`)",
        problems.join("\n  ")
    );
}

#[test]
fn versions_compare_as_numbers() {
    assert!(version("1.89") > version("1.85.1"));
    assert!(version("1.100") > version("1.99.9"));
    assert_eq!(version("1.89"), version("1.89.0"));
    assert_eq!(version("x"), None);
}
