//! The Swarm target on TWO nodes, and the loss of one: `scripts/local-swarm.sh up` builds
//! two Docker daemons in network namespaces of this machine (10.231.0.11 the manager,
//! 10.231.0.12 a worker; the machine's own daemon is not touched) → `up --target swarm
//! --instances 4` puts app tasks on both nodes → `verify` through nginx on node 1 is green →
//! node 2 is lost as in a power cut (`lose-node 2`: its processes frozen, its link down, then
//! all killed), under client load and with slow requests in flight on every task (each must
//! still be answered: nginx finds the dead peer by TCP keepalive and passes the request to
//! node 1) → Swarm marks it down and starts its app tasks on node 1,
//! nginx's watcher follows, `verify` is green again → `down --target swarm --volumes` →
//! `scripts/local-swarm.sh down`, also on failure (the guards' Drop).
//!
//! Postgres and Redis are pinned to node 1 as test setup: node labels
//! `radar-deploy.{project}.{service}=true` on node 1 before `up` (which keeps labels it finds);
//! nginx is pinned by `up` itself to the manager it talks to, node 1. So losing node 2 loses
//! no data and the URL stays.
//!
//! ONE test function. Needs root (namespaces, a bridge, dockerd) and the offline images on the
//! main daemon (`scripts/offline-images.sh`); it FAILS, never skips, when it cannot build the
//! nodes. A machine-wide lock keeps two runs (two checkouts) from sharing the nodes.

use std::time::{Duration, Instant};

use radar_deploy::drill::load::{Load, LoadOptions};

const NODE1: &str = "rd2n-1";
const NODE2: &str = "rd2n-2";
const INSTANCES: usize = 4;
/// From the loss of node 2 to a green verify on node 1 alone.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(180);

use crate::common;
use common::nodes::{docker, Nodes, Project};
use common::{block_on, text};

#[test]
fn swarm_on_two_nodes_places_instances_on_both_and_survives_losing_one() {
    let _slot = common::alone();
    let mut nodes = Nodes::up(2);
    let p = Project::new("rd2n", INSTANCES);
    // The app's /api/slow holds requests in flight across the loss of node 2.
    p.set_env("APP_ENV_RADAR_APP_DIAGNOSTICS", "1");

    // Against a worker, every Swarm command stops at once (exit 2) and says what to do.
    let out = p
        .command(&["status", "--target", "swarm"])
        .env("DOCKER_HOST", common::nodes::socket(2))
        .output()
        .expect("run radar-deploy");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    for want in ["is a swarm worker", "docker node promote"] {
        assert!(text(&out).contains(want), "{want}: {}", text(&out));
    }

    // Test setup: the data services on node 1, the node that stays (an operator pins data to
    // the node that holds it). nginx needs none: `up` pins it to the manager it talks to.
    let node1 = docker(&["node", "inspect", "--format", "{{.ID}}", NODE1])
        .trim()
        .to_string();
    for service in ["postgres", "redis"] {
        docker(&[
            "node",
            "update",
            "--label-add",
            &format!("radar-deploy.{}.{service}=true", p.name),
            &node1,
        ]);
    }

    let t0 = Instant::now();
    let out = p.up(INSTANCES, &["--timeout", "240"]);
    assert!(out.contains("4 created"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(120);
    p.wait_tasks("nginx", deadline, |on| on == [NODE1.to_string()]);
    p.wait_tasks("app", deadline, |on| on.len() == INSTANCES);
    let on = p.running_on("app");
    for node in [NODE1, NODE2] {
        assert!(
            on.iter().any(|n| n == node),
            "no app task on {node}: {on:?}"
        );
    }
    let (green, out) = p.verify(&[]);
    assert!(green, "verify on two nodes is not green:\n{out}");
    assert!(out.contains("4 instances served"), "{out}");
    let to_verified = t0.elapsed();
    eprintln!(
        "two nodes: app tasks on {on:?}; up --target swarm --instances 4 to a verified stack \
         (nginx pinned to node 1 by up) in {:.1}s",
        to_verified.as_secs_f64()
    );

    // Node 2 is lost under client load; Swarm moves its tasks to node 1.
    let opts = LoadOptions::reference(p.url(), 4);
    let (rescheduled, green_after, failed, sent, why) = block_on(async {
        let load = Load::start(&opts).expect("load clients");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let slow = start_slow_requests(&p.url());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let lost = Instant::now();
        tokio::task::block_in_place(|| nodes.lose(2));
        let deadline = lost + RECOVERY_DEADLINE;
        let mut rescheduled = None;
        let mut last = String::new();
        let green_after = loop {
            let on = {
                let p = &p;
                tokio::task::block_in_place(|| p.running_on("app"))
            };
            if rescheduled.is_none() && on.len() == INSTANCES && on.iter().all(|n| n == NODE1) {
                rescheduled = Some(lost.elapsed());
            }
            if rescheduled.is_some() {
                let (green, out) = tokio::task::block_in_place(|| p.verify(&[]));
                if green {
                    break lost.elapsed();
                }
                last = out;
            }
            assert!(
                Instant::now() < deadline,
                "{}s after losing node 2: app tasks on {on:?}, verify not green:\n{last}",
                RECOVERY_DEADLINE.as_secs()
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        // Keep the load on a little after the recovery.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let r = load.stop().await;
        report_slow_requests(slow).await;
        let failed = r.samples.iter().filter(|s| !s.ok()).count();
        let why = radar_deploy::drill::stats::failures(&r.samples);
        (
            rescheduled.expect("rescheduled before green"),
            green_after,
            failed,
            r.samples.len(),
            format!("{why:#?}"),
        )
    });
    eprintln!(
        "two nodes: node 2 lost → all {INSTANCES} app tasks running on node 1 after {:.1}s, \
         verify green after {:.1}s; under load: {failed} failed of {sent} requests ({why})",
        rescheduled.as_secs_f64(),
        green_after.as_secs_f64()
    );
    let (green, out) = p.verify(&[]);
    assert!(green, "verify after losing node 2:\n{out}");
    assert!(out.contains("4 instances served"), "{out}");

    let out = p.ok(&["down", "--target", "swarm", "--volumes"]);
    assert!(out.contains("removed 4 services"), "{out}");
    drop(p);
    nodes.down();
}

/// How long each slow request is held by the app, and how many there are: two per app task
/// when nginx spreads them evenly (least_conn), so some are in flight on node 2 when it is lost.
const SLOW_MS: u64 = 5000;
const SLOW_REQUESTS: usize = 2 * INSTANCES;

type SlowRequest = tokio::task::JoinHandle<(Duration, Result<(u16, String), String>)>;

/// Starts the slow requests through nginx; each yields (duration, status and body or error).
fn start_slow_requests(url: &str) -> Vec<SlowRequest> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .expect("http client");
    (0..SLOW_REQUESTS)
        .map(|_| {
            let (client, url) = (client.clone(), format!("{url}/api/slow?ms={SLOW_MS}"));
            tokio::spawn(async move {
                let t0 = Instant::now();
                let result = async {
                    let r = client.get(&url).send().await?;
                    let status = r.status().as_u16();
                    Ok::<_, reqwest::Error>((status, r.text().await?))
                }
                .await
                .map_err(|e| e.to_string());
                (t0.elapsed(), result)
            })
        })
        .collect()
}

/// Every request in flight when node 2 was lost must still be answered, in seconds: nginx's
/// TCP keepalive probes find the dead peer (about 6 s of silence) and nginx passes the request
/// to a task on node 1, instead of waiting proxy_read_timeout (60 s) and answering 504. Those
/// retried take longer than SLOW_MS by the detection time; at least one must have been.
async fn report_slow_requests(slow: Vec<SlowRequest>) {
    let mut durations = vec![];
    for request in slow {
        let (took, result) = request.await.expect("slow request task");
        match result {
            Ok((200, _)) => durations.push(took),
            other => {
                panic!("a request in flight when node 2 was lost failed after {took:?}: {other:?}")
            }
        }
    }
    let retried: Vec<String> = durations
        .iter()
        .filter(|d| d.as_millis() as u64 > SLOW_MS + 1500)
        .map(|d| format!("{:.1}s", d.as_secs_f64()))
        .collect();
    eprintln!(
        "two nodes: {SLOW_REQUESTS} requests of {SLOW_MS} ms in flight when node 2 was lost: all \
         answered 200; {} passed to node 1 after the dead peer was found, in {retried:?}",
        retried.len()
    );
    assert!(
        !retried.is_empty(),
        "no slow request was on node 2: the loss was not exercised ({durations:?})"
    );
    let slowest = durations.iter().max().expect("slow requests");
    assert!(
        *slowest < Duration::from_millis(SLOW_MS) + Duration::from_secs(15),
        "a request took {slowest:?}: nginx waited for the lost node instead of retrying"
    );
}
