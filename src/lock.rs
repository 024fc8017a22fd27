//! A per-project lock, so two runs of `up`/`scale`/`down` on one project never interleave.
//!
//! A file in the user's runtime (or temp) directory, keyed by daemon and project, created
//! exclusively and holding the owner's pid. A lock whose pid is no longer alive (a killed run)
//! is taken over; a live holder is waited for up to a bound, then named in the error.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

#[derive(Debug)]
pub struct ProjectLock {
    path: PathBuf,
}

impl ProjectLock {
    pub fn path_for(daemon: &str, project: &str) -> PathBuf {
        let dir = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let key = hex::encode(&Sha256::digest(format!("{daemon}\0{project}"))[..8]);
        dir.join(format!("radar-deploy-{project}-{key}.lock"))
    }

    /// Takes the lock, waiting up to `wait` for a live holder; `on_wait` is told once.
    pub async fn acquire(
        daemon: &str,
        project: &str,
        wait: Duration,
        on_wait: impl Fn(u32),
    ) -> Result<ProjectLock> {
        let path = Self::path_for(daemon, project);
        let deadline = Instant::now() + wait;
        let mut told = false;
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(std::process::id().to_string().as_bytes())
                        .with_context(|| format!("writing the lock file {}", path.display()))?;
                    return Ok(ProjectLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = read_pid(&path);
                    match holder {
                        Some(pid) if pid_alive(pid) && pid != std::process::id() => {
                            if Instant::now() >= deadline {
                                bail!(
                                    "project {project} is locked by another radar-deploy run (pid {pid}); \
                                     wait for it to finish, or stop it (lock file {})",
                                    path.display()
                                );
                            }
                            if !told {
                                on_wait(pid);
                                told = true;
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        // Left by a run that no longer exists (killed), or half-written by one
                        // that is starting right now: a half-written file is retried shortly.
                        None if file_is_fresh(&path) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("creating the lock file {}", path.display()))
                }
            }
        }
    }
}

impl Drop for ProjectLock {
    fn drop(&mut self) {
        if read_pid(&self.path) == Some(std::process::id()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn file_is_fresh(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < Duration::from_secs(2))
}

#[cfg(target_os = "linux")]
fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(all(unix, not(target_os = "linux")))]
fn pid_alive(pid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(not(unix))]
fn pid_alive(_pid: u32) -> bool {
    // Without a cheap liveness check, a lock is trusted until it is old.
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lock_left_by_a_dead_pid_is_taken_over_and_a_live_one_refused() {
        let project = format!("locktest-{}", std::process::id());
        let path = ProjectLock::path_for("test", &project);
        // A pid that cannot be alive.
        std::fs::write(&path, "4000000000").unwrap();
        let lock = ProjectLock::acquire("test", &project, Duration::from_millis(100), |_| {})
            .await
            .unwrap();
        assert_eq!(read_pid(&path), Some(std::process::id()));
        drop(lock);
        assert!(!path.exists());

        // pid 1 is always alive.
        std::fs::write(&path, "1").unwrap();
        let err = ProjectLock::acquire("test", &project, Duration::from_millis(300), |_| {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains("pid 1"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }
}
