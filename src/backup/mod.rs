//! `backup` and `restore` (one host): the Postgres database and the Redis keys of a running
//! stack into one file ([`archive`]), and back into a running stack — the same project or a
//! newly created one (disaster recovery).
//!
//! Everything goes through the Engine API: `pg_dump`'s stdout streams from an exec in the
//! postgres container into the file, the file streams into `pg_restore`'s stdin, the Redis
//! keys are read with DUMP (one Lua script, so one instant) and put back with RESTORE …
//! REPLACE through `redis-cli --pipe` on the current master (with Sentinels: the one they
//! name). No bind mount, no host path: the daemon may be remote.
//!
//! A restore checks the whole file first and changes nothing when it is unusable; then it
//! turns maintenance mode on (nginx answers 503, no request meets a half-restored database),
//! restores, and turns it off again only when everything succeeded.

pub mod archive;
mod inside;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::AsyncWriteExt;

use crate::config::Config;
use crate::desired::{Role, REDIS_PORT};
use crate::docker::DockerClient;
use crate::maintenance;
use crate::observed::{ContainerState, ObservedContainer};
use archive::{Manifest, PostgresSource, RedisSource, StagedEntry, Verified};

pub use archive::{utc, Unusable};

/// The extension of backup files.
pub const EXTENSION: &str = "radar-backup";

/// Short questions (versions, the Redis keys) get this long; the dump and the restore none:
/// their length is the database's.
const QUESTION_DEADLINE: Duration = Duration::from_secs(60);

/// The containers a backup reads and a restore writes.
struct Stack {
    postgres: String,
    /// The Redis master's container (with Sentinels: the one they name).
    redis: String,
}

fn running(c: &ObservedContainer) -> bool {
    c.state == ContainerState::Running
}

async fn stack(docker: &DockerClient, cfg: &Config) -> Result<Stack> {
    let project = cfg.project.to_string();
    let containers = docker.list_containers(&project).await?;
    let find = |role: Role| containers.iter().find(|c| c.role_kind() == Some(role));
    let Some(postgres) = find(Role::Postgres).filter(|c| running(c)) else {
        bail!(
            "project {project} has no running postgres container on {}\n  fix: `radar-deploy \
             up` first (a restore into a new project needs its stack up), or name the project \
             with --project",
            docker.endpoint.host
        );
    };
    let sentinels: Vec<String> = containers
        .iter()
        .filter(|c| c.role_kind() == Some(Role::Sentinel) && running(c))
        .map(|c| c.name.clone())
        .collect();
    let redis = if sentinels.is_empty() {
        find(Role::Redis)
    } else {
        let alias = crate::sentinels::ask_master(docker, &sentinels, &cfg.sentinel.master_name)
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot ask the Sentinels which Redis is master {}: {e}",
                    cfg.sentinel.master_name
                )
            })?;
        containers.iter().find(|c| {
            matches!(c.role_kind(), Some(Role::Redis | Role::RedisReplica)) && c.alias() == alias
        })
    };
    let Some(redis) = redis.filter(|c| running(c)) else {
        bail!("project {project} has no running Redis master\n  fix: `radar-deploy up`");
    };
    Ok(Stack {
        postgres: postgres.name.clone(),
        redis: redis.name.clone(),
    })
}

/// Runs a short command; its output when it exits 0, else an error naming the container.
async fn ask(
    docker: &DockerClient,
    container: &str,
    argv: &[String],
    what: &str,
) -> Result<String> {
    match tokio::time::timeout(QUESTION_DEADLINE, docker.exec(container, argv)).await {
        Ok(Ok((0, out))) => Ok(out),
        Ok(Ok((code, out))) => bail!("{what} in {container} exited {code}: {}", out.trim()),
        Ok(Err(e)) => Err(anyhow!(e).context(format!("{what} in {container}"))),
        Err(_) => bail!("{what} in {container}: no answer within {QUESTION_DEADLINE:?}"),
    }
}

/// A backup written.
#[derive(Debug, Clone)]
pub struct Taken {
    pub path: PathBuf,
    /// The file's size in bytes.
    pub size: u64,
    pub manifest: Manifest,
    pub elapsed: Duration,
}

/// Where a backup goes when no `--out` is given: `{project}-{UTC time}.radar-backup` in the
/// current directory.
pub fn default_path(project: &str, stamp: &str) -> PathBuf {
    PathBuf::from(format!("{project}-{stamp}.{EXTENSION}"))
}

/// Takes a backup of the running stack of `cfg`'s project into `out` (default:
/// [`default_path`]), atomically.
pub async fn take(docker: &DockerClient, cfg: &Config, out: Option<&Path>) -> Result<Taken> {
    let started = Instant::now();
    let project = cfg.project.to_string();
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (created_at, stamp) = utc(secs);
    let path = out.map_or_else(|| default_path(&project, &stamp), Path::to_path_buf);
    let s = stack(docker, cfg).await?;
    let (user, db) = (cfg.postgres.user.as_str(), cfg.postgres.db.as_str());

    let pg_version = ask(
        docker,
        &s.postgres,
        &inside::pg_version_argv(user, db),
        "asking Postgres its version",
    )
    .await?;
    let redis_info = ask(
        docker,
        &s.redis,
        &inside::redis_info_argv(REDIS_PORT),
        "asking Redis its version",
    )
    .await?;

    let mut pg = StagedEntry::new(&path, archive::POSTGRES_ENTRY)?;
    let (_, end) = docker
        .exec_output(&s.postgres, &inside::pg_dump_argv(user, db), &[], &mut pg)
        .await
        .with_context(|| format!("pg_dump in {}", s.postgres))?;
    if end.code != 0 {
        bail!(
            "pg_dump in {} exited {}: {}\n  nothing was written to {}",
            s.postgres,
            end.code,
            end.said.trim(),
            path.display()
        );
    }

    // The keys are read after the dump: each part is consistent in itself; a request between
    // the two may change a session, not a row.
    let keys_text = ask(
        docker,
        &s.redis,
        &inside::redis_dump_argv(REDIS_PORT),
        "reading the Redis keys",
    )
    .await?;
    let keys = inside::parse_redis_keys(&keys_text)
        .map_err(|e| anyhow!("reading the Redis keys in {}: {e}", s.redis))?;
    let mut rk = StagedEntry::new(&path, archive::REDIS_ENTRY)?;
    let lines: Vec<&str> = keys_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    rk.write_all(lines.join("\n").as_bytes()).await?;
    rk.flush().await?;

    let manifest = Manifest {
        kind: archive::KIND.into(),
        format: archive::FORMAT,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        project,
        created_at,
        postgres: PostgresSource {
            database: db.into(),
            user: user.into(),
            server_version: pg_version.trim().to_string(),
            image: cfg.postgres.image.as_str().into(),
        },
        redis: RedisSource {
            server_version: inside::redis_version(&redis_info).unwrap_or_default(),
            taken_from: s.redis.clone(),
            keys: keys.len() as u64,
        },
        entries: vec![],
    };
    let dest = path.clone();
    let (size, manifest) =
        tokio::task::spawn_blocking(move || archive::write(&dest, manifest, vec![pg, rk]))
            .await
            .context("the backup writer stopped")??;
    Ok(Taken {
        path,
        size,
        manifest,
        elapsed: started.elapsed(),
    })
}

/// `BACKUP_BEFORE_RELEASE`: a backup to the default place before a release command runs;
/// returns its path for `up` to name. An error stops `up` before anything changes.
pub async fn before_release(docker: &DockerClient, cfg: &Config) -> Result<PathBuf> {
    take(docker, cfg, None)
        .await
        .map(|t| t.path)
        .context("BACKUP_BEFORE_RELEASE: the backup before the release command failed")
}

/// Checks a backup file completely (structure, manifest, size and sha256 of every entry).
pub async fn verify_file(path: &Path) -> Result<Verified> {
    let p = path.to_path_buf();
    Ok(tokio::task::spawn_blocking(move || archive::verify(&p))
        .await
        .context("the backup checker stopped")??)
}

/// A restore done.
#[derive(Debug, Clone)]
pub struct Restored {
    pub keys: usize,
    pub elapsed: Duration,
    /// Maintenance mode was on before the restore, so it was left on.
    pub maintenance_was_on: bool,
}

/// Restores a verified backup into the running stack of `cfg`'s project, behind maintenance
/// mode. On failure maintenance mode stays on and the error says how to get out.
pub async fn restore(
    docker: &DockerClient,
    cfg: &Config,
    v: &Verified,
    progress: &dyn Fn(&str),
) -> Result<Restored> {
    let started = Instant::now();
    let project = cfg.project.to_string();
    let s = stack(docker, cfg).await?;
    let nginx = maintenance::nginx(docker, &project).await?;
    let was_on = maintenance::set(docker, &nginx, true).await?;
    progress("maintenance mode on: nginx answers 503, no request reaches an instance");
    match restore_data(docker, cfg, &s, v, progress).await {
        Ok(keys) => {
            if !was_on {
                maintenance::set(docker, &nginx, false).await.context(
                    "the data is restored, but maintenance mode could not be turned off\n  \
                     fix: `radar-deploy maintenance off`",
                )?;
                progress("maintenance mode off");
            }
            Ok(Restored {
                keys,
                elapsed: started.elapsed(),
                maintenance_was_on: was_on,
            })
        }
        Err(e) => Err(anyhow!(
            "restore from {file} failed: {e:#}\n  maintenance mode stays ON (nginx answers 503 to \
             every request but /health)\n  fix: correct the cause and run `radar-deploy restore {file} --yes` \
             again, or `radar-deploy maintenance off` to serve the data as it is now",
            file = v.path.display(),
        )),
    }
}

async fn restore_data(
    docker: &DockerClient,
    cfg: &Config,
    s: &Stack,
    v: &Verified,
    progress: &dyn Fn(&str),
) -> Result<usize> {
    let (user, db) = (cfg.postgres.user.as_str(), cfg.postgres.db.as_str());
    let mut dump = archive::open_entry(v, archive::POSTGRES_ENTRY).await?;
    let end = docker
        .exec_input(
            &s.postgres,
            &inside::pg_restore_argv(user, db),
            &[],
            &mut dump,
        )
        .await
        .with_context(|| format!("pg_restore in {}", s.postgres))?;
    if end.code != 0 {
        bail!(
            "pg_restore in {} exited {} (the database is unchanged: it runs in one \
             transaction): {}",
            s.postgres,
            end.code,
            end.said.trim()
        );
    }
    progress(&format!("Postgres database {db} restored"));

    let text = archive::read_entry(v, archive::REDIS_ENTRY)?;
    let keys = inside::parse_redis_keys(&String::from_utf8_lossy(&text))
        .map_err(|e| anyhow!("{}: entry {}: {e}", v.path.display(), archive::REDIS_ENTRY))?;
    let (commands, n) = inside::restore_commands(&keys);
    if n > 0 {
        let end = docker
            .exec_input(
                &s.redis,
                &inside::redis_pipe_argv(REDIS_PORT),
                &[],
                &mut commands.as_slice(),
            )
            .await
            .with_context(|| format!("redis-cli --pipe in {}", s.redis))?;
        match inside::pipe_errors(&end.said) {
            Some(0) if end.code == 0 => {}
            _ => bail!(
                "restoring the Redis keys in {} failed (exit {}; the database is restored \
                 already, the keys may be in part): {}",
                s.redis,
                end.code,
                end.said.trim()
            ),
        }
    }
    progress(&format!("{n} Redis keys restored in {}", s.redis));
    Ok(n)
}
