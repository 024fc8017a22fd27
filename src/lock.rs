//! A per-project lock, so two runs of `up`/`scale`/`down` on one project never interleave.
//!
//! An OS file lock (`flock` on unix, `LockFileEx` on Windows, through std's `File::try_lock`) on
//! a file in the user's runtime (or temp) directory, keyed by daemon and project. The OS drops
//! the lock when its process ends, however it ends, so a killed run's lock is free at once on
//! every platform: no pid liveness check, which Windows could not do. A live holder is waited
//! for up to a bound, then named in the error.
//!
//! The holder's pid is written to a sibling `.pid` file, for the messages only: Windows locks
//! are mandatory, so a waiter could not read the locked file itself.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::ui::Ui;

/// How long a run waits for another run on the same project before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Held for as long as the value lives; the OS releases it when the file is closed (on drop,
/// or when the process dies).
#[derive(Debug)]
pub struct ProjectLock {
    _file: File,
}

impl ProjectLock {
    pub fn path_for(daemon: &str, project: &str) -> PathBuf {
        let key = hex::encode(&Sha256::digest(format!("{daemon}\0{project}"))[..8]);
        lock_dir().join(format!("radar-deploy-{project}-{key}.lock"))
    }

    /// The lock every operation that changes a project takes (`up`, `scale`, `down`, on either
    /// target): waits up to [`LOCK_WAIT`] for another run on the project, saying so once.
    pub async fn for_project(daemon: &str, project: &str, ui: &Ui) -> Result<ProjectLock> {
        Self::acquire(daemon, project, LOCK_WAIT, |pid| {
            ui.info(&format!(
                "waiting for another radar-deploy run on project {project} (pid {pid}) to finish…"
            ))
        })
        .await
    }

    /// Takes the lock, waiting up to `wait` for a live holder; `on_wait` is told once, with the
    /// holder's pid (as soon as the holder has written it).
    pub async fn acquire(
        daemon: &str,
        project: &str,
        wait: Duration,
        on_wait: impl Fn(u32),
    ) -> Result<ProjectLock> {
        let path = Self::path_for(daemon, project);
        Self::acquire_at(path, &format!("project {project}"), wait, on_wait).await
    }

    /// The same kind of lock for something else that runs on a daemon one at a time (the build
    /// of an image): `key` picks the lock, `subject` names it in messages.
    pub async fn acquire_for(
        daemon: &str,
        key: &str,
        subject: &str,
        wait: Duration,
        on_wait: impl Fn(u32),
    ) -> Result<ProjectLock> {
        let digest = hex::encode(&Sha256::digest(format!("{daemon}\0{key}"))[..8]);
        let path = lock_dir().join(format!("radar-deploy-{digest}.lock"));
        Self::acquire_at(path, subject, wait, on_wait).await
    }

    async fn acquire_at(
        path: PathBuf,
        subject: &str,
        wait: Duration,
        on_wait: impl Fn(u32),
    ) -> Result<ProjectLock> {
        // Never truncated nor removed: a waiter may hold it open, and removing it would let a
        // third run lock a new file of the same name while the waiter locks the old one.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| {
                format!(
                    "cannot open the lock file {} (check that its directory is writable)",
                    path.display()
                )
            })?;
        let deadline = Instant::now() + wait;
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => {
                    write_pid(&pid_path(&path));
                    return Ok(ProjectLock { _file: file });
                }
                Err(TryLockError::WouldBlock) => {
                    let holder = read_pid(&pid_path(&path));
                    if Instant::now() >= deadline {
                        let who = holder.map_or("pid unknown".to_string(), |p| format!("pid {p}"));
                        bail!(
                            "{subject} is locked by another radar-deploy run ({who}); \
                             wait for it to finish, or stop it: the lock is released when that \
                             process ends (lock file {})",
                            path.display()
                        );
                    }
                    if let (false, Some(pid)) = (told, holder) {
                        on_wait(pid);
                        told = true;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| {
                        format!(
                            "cannot lock {} (a file system without locks, such as some network \
                             shares? set TMPDIR{} to a local directory)",
                            path.display(),
                            if cfg!(unix) {
                                " or XDG_RUNTIME_DIR"
                            } else {
                                "/TEMP"
                            }
                        )
                    })
                }
            }
        }
    }
}

/// The user's runtime directory where there is one (per user, cleared at logout), else the
/// temp directory (`%TEMP%` on Windows, also per user).
fn lock_dir() -> PathBuf {
    // XDG_RUNTIME_DIR is a unix convention; a Windows process (e.g. under Wine) may inherit it
    // holding a unix path that means nothing there.
    #[cfg(unix)]
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
    {
        return dir;
    }
    std::env::temp_dir()
}

fn pid_path(lock: &Path) -> PathBuf {
    let mut p = lock.as_os_str().to_owned();
    p.push(".pid");
    PathBuf::from(p)
}

/// Best effort: the pid only serves messages, so failing to write it never fails the run.
fn write_pid(path: &Path) {
    let _ = File::create(path).and_then(|mut f| write!(f, "{}", std::process::id()));
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    const HELPER_VAR: &str = "RADAR_LOCK_TEST_HOLD";

    /// Not a test of its own: run by the tests below in a child process (this test binary again),
    /// it takes the lock named by the variable, says so, and holds it until killed.
    #[tokio::test]
    async fn lock_holder_helper() {
        let Ok(project) = std::env::var(HELPER_VAR) else {
            return;
        };
        let _lock = ProjectLock::acquire("test", &project, Duration::ZERO, |_| {})
            .await
            .expect("the helper takes the free lock");
        println!("locked");
        std::thread::sleep(Duration::from_secs(120));
    }

    /// A child process that holds the lock of `project`, once this returns.
    fn spawn_holder(project: &str) -> Child {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "lock::tests::lock_holder_helper", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(HELPER_VAR, project)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the lock holder");
        let out = BufReader::new(child.stdout.take().unwrap());
        if out
            .lines()
            .any(|line| line.is_ok_and(|l| l.contains("locked")))
        {
            return child;
        }
        let _ = child.kill();
        let status = child.wait();
        panic!("the lock holder ended without taking the lock: {status:?}");
    }

    fn unique(name: &str) -> String {
        format!("locktest-{name}-{}", std::process::id())
    }

    #[tokio::test]
    async fn a_lock_held_by_another_handle_is_refused_naming_the_holder() {
        let project = unique("handle");
        let first = ProjectLock::acquire("test", &project, Duration::ZERO, |_| {})
            .await
            .unwrap();
        let told = std::cell::Cell::new(None);
        let err = ProjectLock::acquire("test", &project, Duration::from_millis(300), |pid| {
            told.set(Some(pid))
        })
        .await
        .unwrap_err();
        let me = std::process::id();
        assert!(err.to_string().contains(&format!("pid {me}")), "{err}");
        assert_eq!(told.get(), Some(me), "the waiter is told who holds it");
        drop(first);
        ProjectLock::acquire("test", &project, Duration::ZERO, |_| {})
            .await
            .expect("free again once the holder is dropped");
        remove_files(&project);
    }

    #[tokio::test]
    async fn a_lock_whose_holder_process_was_killed_is_taken_over() {
        let project = unique("killed");
        let mut holder = spawn_holder(&project);
        let err = ProjectLock::acquire("test", &project, Duration::from_millis(300), |_| {})
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains(&format!("pid {}", holder.id())),
            "{err}"
        );
        holder.kill().unwrap();
        holder.wait().unwrap();
        // The file and the pid it names are still there; only the OS lock is gone.
        assert!(ProjectLock::path_for("test", &project).exists());
        let t0 = Instant::now();
        ProjectLock::acquire("test", &project, Duration::from_secs(5), |_| {})
            .await
            .expect("a dead holder's lock is taken over");
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        let path = ProjectLock::path_for("test", &project);
        assert_eq!(read_pid(&pid_path(&path)), Some(std::process::id()));
        remove_files(&project);
    }

    fn remove_files(project: &str) {
        let path = ProjectLock::path_for("test", project);
        let _ = std::fs::remove_file(pid_path(&path));
        let _ = std::fs::remove_file(path);
    }
}
