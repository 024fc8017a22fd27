//! Test support shared by the integration tests that need a swarm (`tests/swarm.rs`,
//! `tests/docs.rs`). Each test binary includes it with `mod common;`.

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use radar_deploy::docker::{DockerClient, SwarmMembership};
use radar_deploy::lock::ProjectLock;

pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().expect("runtime").block_on(f)
}

/// The daemon as a swarm manager for as long as the guard lives. When the daemon is not in a
/// swarm, a single-node swarm is initialised on loopback and left again on drop (also when
/// the test fails); a swarm that was there before is used and left as it was.
///
/// Holds a machine-wide lock meanwhile: swarm tests of other processes on this machine (the
/// other test binaries, another checkout's CI) wait, so none leaves a swarm another still uses.
/// Like every Docker test here it FAILS when the daemon is unreachable.
pub struct SwarmGuard {
    joined: bool,
    _machine_lock: ProjectLock,
}

impl SwarmGuard {
    pub fn acquire() -> SwarmGuard {
        block_on(async {
            let d = DockerClient::connect()
                .await
                .expect("the Docker daemon must be reachable for this test");
            let lock = ProjectLock::acquire(
                &d.address.host,
                "swarm-tests",
                std::time::Duration::from_secs(900),
                |pid| eprintln!("waiting for the swarm test of pid {pid}"),
            )
            .await
            .expect("the machine-wide swarm test lock");
            let joined = match d.swarm_membership().await.expect("docker info") {
                SwarmMembership::Manager { .. } => false,
                SwarmMembership::Worker => {
                    panic!("this daemon is a swarm worker; the test needs a manager or no swarm")
                }
                SwarmMembership::NotInSwarm => match d.init_swarm_loopback().await {
                    Ok(()) => true,
                    // Another process initialised one meanwhile: use it, and leave it alone.
                    Err(e) => {
                        let now = d.swarm_membership().await.expect("docker info");
                        assert!(
                            matches!(now, SwarmMembership::Manager { .. }),
                            "swarm init failed: {e}"
                        );
                        false
                    }
                },
            };
            SwarmGuard {
                joined,
                _machine_lock: lock,
            }
        })
    }
}

impl Drop for SwarmGuard {
    fn drop(&mut self) {
        if self.joined {
            let _ = block_on(async { DockerClient::connect().await?.leave_swarm().await });
        }
    }
}
