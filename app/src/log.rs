//! Logging to stderr: startup, shutdown and dependency trouble. No per-request lines.
//!
//! When `LOG_DIR` names a writable directory (radar-deploy mounts each instance's own log volume
//! there), every line also goes to `LOG_DIR/radar-app.log`. The volume is optional: a directory
//! that cannot be written is reported once and otherwise ignored.
//!
//! Dependency errors are rate-limited per dependency: a Redis outage hit by every request (and by
//! the monitor) would otherwise flood the log. A state change (up → down, down → up) is always
//! logged at once; a repeated failure at most once per [`REPEAT_EVERY`].

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const REPEAT_EVERY: Duration = Duration::from_secs(30);

static LOG_FILE: OnceLock<Mutex<File>> = OnceLock::new();

/// Also appends to `dir/radar-app.log` from now on; returns why not when that fails.
pub fn to_dir(dir: &Path) -> Result<(), String> {
    let path = dir.join("radar-app.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let _ = LOG_FILE.set(Mutex::new(file));
    Ok(())
}

pub fn info(msg: impl std::fmt::Display) {
    let line = format!("{} radar-app: {msg}", timestamp());
    eprintln!("{line}");
    if let Some(file) = LOG_FILE.get() {
        let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(file, "{line}");
    }
}

/// Seconds since the epoch with milliseconds: no date crate needed, and `docker logs -t` adds a
/// readable time anyway.
fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", now.as_secs(), now.subsec_millis())
}

#[derive(Default)]
pub struct DependencyLog {
    state: Mutex<HashMap<&'static str, DepState>>,
}

struct DepState {
    healthy: bool,
    last_logged: Instant,
    suppressed: u64,
}

impl DependencyLog {
    pub fn failure(&self, dependency: &'static str, error: &str) {
        let mut map = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match map.get_mut(dependency) {
            Some(s) if !s.healthy && now.duration_since(s.last_logged) < REPEAT_EVERY => {
                s.suppressed += 1;
            }
            Some(s) => {
                let extra = if s.suppressed > 0 {
                    format!(" ({} similar errors suppressed)", s.suppressed)
                } else {
                    String::new()
                };
                info(format_args!("{dependency} unavailable: {error}{extra}"));
                *s = DepState {
                    healthy: false,
                    last_logged: now,
                    suppressed: 0,
                };
            }
            None => {
                info(format_args!("{dependency} unavailable: {error}"));
                map.insert(
                    dependency,
                    DepState {
                        healthy: false,
                        last_logged: now,
                        suppressed: 0,
                    },
                );
            }
        }
    }

    pub fn success(&self, dependency: &'static str) {
        let mut map = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match map.get_mut(dependency) {
            Some(s) if s.healthy => {}
            Some(s) => {
                info(format_args!("{dependency} available again"));
                *s = DepState {
                    healthy: true,
                    last_logged: now,
                    suppressed: 0,
                };
            }
            None => {
                info(format_args!("{dependency} available"));
                map.insert(
                    dependency,
                    DepState {
                        healthy: true,
                        last_logged: now,
                        suppressed: 0,
                    },
                );
            }
        }
    }
}
