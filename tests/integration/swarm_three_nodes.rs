//! The HA profile on THREE nodes, and the loss of the Redis master's node: `scripts/local-swarm.sh
//! up` with `RD2N_NODES=3` builds three Docker daemons in network namespaces of this machine
//! (10.231.0.11 the manager, .12 and .13 workers) → `up --target swarm --ha` places everything by
//! itself: its node labels must put the Redis master and its replica on different nodes and one
//! Sentinel on each node, so that losing any one node leaves two Sentinels, a quorum → `verify
//! --ha` through nginx on node 1 is green → the master's node is lost as in a power cut, under
//! client load → the two remaining Sentinels promote the replica, the app follows, sessions go on
//! with their counts → `verify --ha` then tells the truth: the Sentinels agree on the promoted
//! master and every app task serves, while the lost node's services (pinned to it by their data)
//! fail → `down --target swarm --volumes` → `scripts/local-swarm.sh down`, also on failure.
//!
//! ONE test function. Needs root and the offline images; it FAILS, never skips, when it cannot
//! build the nodes. Shares the machine-wide lock of `tests/swarm_two_nodes.rs`.

use std::time::{Duration, Instant};

use radar_deploy::drill::load::{Load, LoadOptions};
use radar_deploy::drill::stats;

use crate::common;
use common::block_on;
use common::nodes::{docker, hostname, Nodes, Project};

const INSTANCES: usize = 3;
const SERVICES: [&str; 7] = [
    "postgres",
    "redis",
    "redis-replica",
    "sentinel-1",
    "sentinel-2",
    "sentinel-3",
    "nginx",
];
/// From the loss of the master's node to the promoted master serving sessions again, with the
/// default Sentinel timings: down-after (5 s), then, as the two remaining Sentinels notice at
/// the same moment and may split their first leader vote, a second election after twice the
/// failover-timeout (2 x 10 s), then the promotion and the app's reconnect.
const SESSION_OUTAGE_BUDGET: Duration = Duration::from_secs(40);
const RECOVERY_DEADLINE: Duration = Duration::from_secs(180);

#[test]
fn swarm_ha_on_three_nodes_keeps_a_sentinel_quorum_when_the_master_node_is_lost() {
    let _slot = common::alone();
    let mut nodes = Nodes::up(3);
    let p = Project::new("rd3n", INSTANCES);

    let t0 = Instant::now();
    let out = p.up(INSTANCES, &["--ha", "--timeout", "300"]);
    assert!(out.contains("8 created"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(180);
    for service in SERVICES {
        p.wait_tasks(service, deadline, |on| on.len() == 1);
    }
    p.wait_tasks("app", deadline, |on| on.len() == INSTANCES);
    let (green, out) = p.verify(&["--ha"]);
    assert!(green, "verify --ha on three nodes is not green:\n{out}");
    let to_verified = t0.elapsed();

    // Where `up`'s labels put everything.
    let on = |service: &str| p.running_on(service).remove(0);
    let placed: Vec<(&str, String)> = SERVICES.iter().map(|s| (*s, on(s))).collect();
    eprintln!(
        "three nodes: up --target swarm --ha to a verified stack in {:.1}s; placed {placed:?}, \
         app tasks on {:?}",
        to_verified.as_secs_f64(),
        p.running_on("app")
    );
    let node_of = |service: &str| {
        placed
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, n)| n.clone())
            .unwrap()
    };
    let master = node_of("redis");
    assert_ne!(master, node_of("redis-replica"), "{placed:?}");
    let mut sentinels: Vec<String> = (1..=3).map(|k| node_of(&format!("sentinel-{k}"))).collect();
    sentinels.sort();
    sentinels.dedup();
    assert_eq!(sentinels.len(), 3, "one Sentinel per node: {placed:?}");
    assert_eq!(node_of("nginx"), hostname(1), "{placed:?}");
    // Node 1 is the only manager and holds nginx: the master must be on a worker, which is
    // what the spread does when the manager already carries Postgres and nginx.
    let lost: usize = master
        .strip_prefix("rd2n-")
        .and_then(|n| n.parse().ok())
        .filter(|&n| n != 1)
        .unwrap_or_else(|| panic!("the Redis master is on {master}, not on a worker: {placed:?}"));

    // The master's node is lost under load.
    let opts = LoadOptions::reference(p.url(), 4);
    let (result, lost_at_ms, recovered_after) = block_on(async {
        let load = Load::start(&opts).expect("load clients");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let lost_at_ms = load.now_ms();
        let lost_at = Instant::now();
        tokio::task::block_in_place(|| nodes.lose(lost));
        // Recovered: the remaining Sentinels agree on a promoted master and every app task
        // (rescheduled off the lost node) serves.
        let recovered_after = loop {
            let (_, out) = tokio::task::block_in_place(|| p.verify(&["--ha"]));
            let passed = |name: &str| out.lines().any(|l| l.starts_with('✓') && l.contains(name));
            if passed("Sentinels agree on the master")
                && out.contains("2 Sentinels name redis-replica:")
                && out.contains(&format!("{INSTANCES} instances served"))
            {
                eprintln!("{out}");
                break lost_at.elapsed();
            }
            assert!(
                lost_at.elapsed() < RECOVERY_DEADLINE,
                "{}s after losing node {lost}: no promoted master with every app task serving:\n\
                 {out}",
                RECOVERY_DEADLINE.as_secs()
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        // Keep the load on a little after the recovery.
        tokio::time::sleep(Duration::from_secs(3)).await;
        (load.stop().await, lost_at_ms, recovered_after)
    });

    // Sessions: the session client's outage after the loss, and its session kept.
    let session_client = opts.concurrency;
    let outage = radar_deploy::drill::session_gap(&result, session_client, lost_at_ms);
    let integrity = stats::session_integrity(&result.sessions);
    let failed = result.samples.iter().filter(|s| !s.ok()).count();
    eprintln!(
        "three nodes: failures under load: {:#?}\nSentinel on node 1:\n{}",
        stats::failures(&result.samples),
        sentinel_events(&p.name)
    );
    eprintln!(
        "three nodes: node {lost} (Redis master, a Sentinel, an app task) lost → promoted master \
         agreed by 2 Sentinels and {INSTANCES} app tasks serving after {:.1}s; session outage \
         {} ms; session counter {} → {} over {} answers ({}); under load {failed} failed of {} \
         requests",
        recovered_after.as_secs_f64(),
        outage.ms,
        integrity.first_views,
        integrity.last_views,
        integrity.answers,
        integrity.problem.as_deref().unwrap_or("intact"),
        result.samples.len()
    );
    assert!(
        outage.ms < SESSION_OUTAGE_BUDGET.as_millis() as u64,
        "sessions were out for {} ms after the master's node was lost (budget {:?})",
        outage.ms,
        SESSION_OUTAGE_BUDGET
    );
    // The session lived through the failover on the replica: one id, and its count went on
    // (asynchronous replication may lose the last write before the power cut, never the
    // session).
    let ids: std::collections::BTreeSet<&str> = result
        .sessions
        .iter()
        .map(|s| s.session_id.as_str())
        .collect();
    assert_eq!(ids.len(), 1, "the session changed: {ids:?}");
    let before = result
        .sessions
        .iter()
        .filter(|s| s.at_ms <= lost_at_ms)
        .map(|s| s.views)
        .next_back()
        .expect("session answers before the loss");
    let after = result
        .sessions
        .iter()
        .find(|s| s.at_ms > lost_at_ms + outage.ms)
        .map(|s| s.views);
    assert!(
        after.is_some_and(|v| v >= before),
        "the session's count went from {before} to {after:?} over the failover: more than \
         the last write before the loss was lost"
    );

    // verify tells the truth about what is gone: the lost node's Redis and Sentinel cannot run
    // elsewhere (their data and placement are on it), so verify fails naming them.
    let (green, out) = p.verify(&["--ha"]);
    assert!(!green, "verify --ha is green with a node lost:\n{out}");
    let failed_line = |name: &str| out.lines().any(|l| l.starts_with('✗') && l.contains(name));
    assert!(failed_line("redis tasks running and healthy"), "{out}");
    assert!(failed_line("Three Sentinels running"), "{out}");

    let out = p.ok(&["down", "--target", "swarm", "--volumes"]);
    assert!(out.contains("removed 8 services"), "{out}");
    drop(p);
    nodes.down();
}

/// The failover as the Sentinel on node 1 (never the lost node) logged it.
fn sentinel_events(project: &str) -> String {
    let filter = format!("label=com.docker.stack.namespace={project}");
    let names = docker(&["ps", "--filter", &filter, "--format", "{{.Names}}"]);
    let Some(sentinel) = names.lines().find(|n| n.contains("_sentinel-")) else {
        return format!("no Sentinel container on node 1 among {names:?}");
    };
    let out = std::process::Command::new("docker")
        .args(["-H", common::nodes::MANAGER, "logs", sentinel])
        .output()
        .expect("docker logs");
    common::text(&out)
        .lines()
        .filter(|l| {
            [
                "+sdown",
                "+odown",
                "+vote",
                "+elected",
                "+promoted",
                "+switch-master",
                "+try-failover",
            ]
            .iter()
            .any(|e| l.contains(e))
        })
        .collect::<Vec<_>>()
        .join("\n")
}
