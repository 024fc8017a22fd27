//! A swarm of several Docker daemons on this machine (`scripts/local-swarm.sh`), for the tests
//! that need more than one node: node 1 (10.231.0.11) is the only manager, the others workers.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use radar_deploy::lock::ProjectLock;

use super::{block_on, text};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/local-swarm.sh");
/// `DOCKER_HOST` of node 1, the manager.
pub const MANAGER: &str = "unix:///run/rd2n/node1.sock";
pub const MANAGER_IP: &str = "10.231.0.11";

/// `DOCKER_HOST` of node `n`.
pub fn socket(n: usize) -> String {
    format!("unix:///run/rd2n/node{n}.sock")
}

/// Node `n`'s host name, as `docker node ls` and `docker service ps` show it.
pub fn hostname(n: usize) -> String {
    format!("rd2n-{n}")
}

fn script(count: usize, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .env("RD2N_NODES", count.to_string())
        .output()
        .unwrap_or_else(|e| panic!("running {SCRIPT} {args:?}: {e}"))
}

/// `docker -H <node 1>` (the manager); panics naming the command when it fails.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .arg("-H")
        .arg(MANAGER)
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?} failed:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The nodes, for as long as the guard lives: `up` on creation, `down` on drop (also when the
/// test fails). A machine-wide lock keeps two runs (two checkouts, two test binaries) from
/// sharing them.
pub struct Nodes {
    count: usize,
    down: bool,
    _lock: ProjectLock,
}

impl Nodes {
    pub fn up(count: usize) -> Nodes {
        let lock = block_on(ProjectLock::acquire(
            "rd2n",
            "local-swarm",
            Duration::from_secs(1200),
            |pid| eprintln!("waiting for the multi-node swarm test of pid {pid}"),
        ))
        .expect("the machine-wide multi-node swarm lock");
        // Taken by no one now: left over from a run that was killed, rebuild from scratch.
        let _ = script(count, &["down"]);
        let nodes = Nodes {
            count,
            down: false,
            _lock: lock,
        };
        let t0 = Instant::now();
        let out = script(count, &["up"]);
        eprintln!("{}", text(&out));
        assert!(
            out.status.success(),
            "scripts/local-swarm.sh up could not build {count} nodes (this test never skips; it \
             needs root, iproute2 and the offline images):\n{}",
            text(&out)
        );
        eprintln!(
            "{count} nodes: scripts/local-swarm.sh up in {:.1}s",
            t0.elapsed().as_secs_f64()
        );
        nodes
    }

    /// Node `n` (a worker) vanishes as in a power cut.
    pub fn lose(&self, n: usize) {
        let out = script(self.count, &["lose-node", &n.to_string()]);
        assert!(out.status.success(), "lose-node {n}:\n{}", text(&out));
        eprintln!("{}", text(&out));
    }

    pub fn down(&mut self) {
        self.down = true;
        let out = script(self.count, &["down"]);
        eprintln!("{}", text(&out));
        assert!(
            out.status.success(),
            "scripts/local-swarm.sh down:\n{}",
            text(&out)
        );
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        if self.down {
            return;
        }
        if std::thread::panicking() {
            // What the nodes looked like, before down deletes their logs.
            eprintln!("{}", text(&script(self.count, &["status"])));
            for n in 1..=self.count {
                let log =
                    std::fs::read_to_string(format!("/run/rd2n/node{n}.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                eprintln!("--- node {n} dockerd log (last lines, newest first) ---");
                for l in tail {
                    eprintln!("{l}");
                }
            }
        }
        eprintln!("{}", text(&script(self.count, &["down"])));
    }
}

/// A project deployed through node 1; `down --target swarm --volumes` on drop.
pub struct Project(super::Project);

impl std::ops::Deref for Project {
    type Target = super::Project;
    fn deref(&self) -> &super::Project {
        &self.0
    }
}

impl Project {
    pub fn new(prefix: &str, instances: usize) -> Project {
        Project(super::Project::new(prefix, instances, Some(MANAGER)))
    }

    /// `up --target swarm --instances N --no-verify` and `extra`, through node 1; its output.
    /// verify is run by the tests themselves, through nginx on node 1.
    pub fn up(&self, instances: usize, extra: &[&str]) -> String {
        let n = instances.to_string();
        let up = ["up", "--target", "swarm", "--instances", &n, "--no-verify"];
        self.ok(&[&up[..], extra].concat())
    }

    /// nginx on node 1, where `up` pins it (the manager it talks to).
    pub fn url(&self) -> String {
        format!("http://{MANAGER_IP}:{}", self.port)
    }

    /// `verify --target swarm` (and `extra`) through nginx on node 1: (green, output).
    pub fn verify(&self, extra: &[&str]) -> (bool, String) {
        let url = self.url();
        let out = self.run(&[&["verify", "--target", "swarm", "--url", &url], extra].concat());
        let t = text(&out);
        (
            out.status.success() && t.contains("All verification checks passed"),
            t,
        )
    }

    /// The nodes (hostnames) the running tasks of a service are on.
    pub fn running_on(&self, service: &str) -> Vec<String> {
        docker(&[
            "service",
            "ps",
            &format!("{}_{service}", self.name),
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.CurrentState}}",
        ])
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("Running"))
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
    }

    /// Waits until `ok(nodes of the service's running tasks)`, up to `deadline`.
    pub fn wait_tasks(&self, service: &str, deadline: Instant, ok: impl Fn(&[String]) -> bool) {
        loop {
            let on = self.running_on(service);
            if ok(&on) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "service {}_{service}: running tasks on {on:?} by the deadline:\n{}",
                self.name,
                docker(&[
                    "service",
                    "ps",
                    "--no-trunc",
                    &format!("{}_{service}", self.name)
                ])
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--target", "swarm", "--volumes"]);
    }
}
