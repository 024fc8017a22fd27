//! `radar-app migrate`: the app's schema, versioned and applied once (radar-deploy runs it as the
//! release command, `APP_RELEASE_COMMAND=migrate`, before any instance of a new version starts).
//!
//! - The migrations are embedded in the binary ([`MIGRATIONS`]), ordered by version; an applied
//!   version is a row of `schema_migrations`, so re-running is a no-op that says so.
//! - Each migration and its row commit in one transaction: a failure leaves neither.
//! - The whole run holds a Postgres advisory lock ([`LOCK_KEY`], session level, released when the
//!   connection closes, also if the process dies), so two runs started together (two deploys, or
//!   an operator's manual run) apply each migration once: the second waits, then finds nothing
//!   left to do.
//! - A database that has versions this binary does not know (a newer release ran, then this
//!   older one is deployed again) is left alone and reported, not an error: rolling an image
//!   back must not fail on its schema.
//!
//! Exit status: 0 migrated or up to date, 1 a migration or the connection failed, 2 a
//! configuration error.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

use crate::config::{self, PostgresConfig};

/// One schema change: `version` is its order and identity, `sql` may hold several statements.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The app's schema history. Append only: an applied migration is never edited, a change is a
/// new version.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "create notes",
        sql: "CREATE TABLE notes (
                  id         bigserial   PRIMARY KEY,
                  body       text        NOT NULL,
                  created_at timestamptz NOT NULL DEFAULT now()
              )",
    },
    Migration {
        version: 2,
        name: "index notes by creation time",
        sql: "CREATE INDEX notes_created_at ON notes (created_at)",
    },
];

/// The advisory lock's key: any fixed number the app uses for nothing else ("radarmig").
const LOCK_KEY: i64 = 0x7261_6461_726d_6967;

/// Postgres is ready before a release runs, but a restart or a slow network gets a few tries.
const CONNECT_ATTEMPTS: u32 = 10;
const CONNECT_PAUSE: Duration = Duration::from_secs(1);

pub fn run() -> ExitCode {
    let cfg = match config::postgres_from_lookup(&|name| std::env::var(name).ok()) {
        Ok(cfg) => cfg,
        Err(problems) => {
            for p in problems {
                eprintln!("migrate: configuration error: {p}");
            }
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("migrate: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let started = Instant::now();
    match runtime.block_on(migrate(&cfg, MIGRATIONS)) {
        Ok(report) => {
            println!("migrate: {report} ({} ms)", started.elapsed().as_millis());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migrate: failed: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Applies every migration of `migrations` not yet recorded, in order, and says what it did.
pub async fn migrate(cfg: &PostgresConfig, migrations: &[Migration]) -> anyhow::Result<String> {
    use anyhow::Context;
    let mut client = connect(cfg).await?;
    println!(
        "migrate: connected to {}:{}/{}; waiting for the migration lock",
        cfg.host, cfg.port, cfg.db
    );
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .context("taking the migration lock")?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    bigint      PRIMARY KEY,
                 name       text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .context("creating schema_migrations")?;
    let applied: Vec<i64> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .context("reading schema_migrations")?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut done = Vec::new();
    for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        let tx = client.transaction().await?;
        tx.batch_execute(m.sql)
            .await
            .with_context(|| format!("migration {} ({})", m.version, m.name))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await?;
        tx.commit()
            .await
            .with_context(|| format!("committing migration {} ({})", m.version, m.name))?;
        println!("migrate: applied {} ({})", m.version, m.name);
        done.push(m.version);
    }
    // The lock also goes with the connection; unlocking keeps a pooled caller's session clean.
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await
        .context("releasing the migration lock")?;
    Ok(summary(migrations, &applied, &done))
}

/// What a run did, in one line: the versions applied, or that there was nothing to do.
fn summary(migrations: &[Migration], applied_before: &[i64], done: &[i64]) -> String {
    let latest_known = migrations.iter().map(|m| m.version).max().unwrap_or(0);
    let latest_db = applied_before
        .iter()
        .chain(done)
        .copied()
        .max()
        .unwrap_or(0);
    let unknown: Vec<String> = applied_before
        .iter()
        .filter(|v| !migrations.iter().any(|m| m.version == **v))
        .map(ToString::to_string)
        .collect();
    let mut line = if done.is_empty() {
        format!("nothing to do: the schema is at version {latest_db}, every migration is applied")
    } else {
        let list: Vec<String> = done.iter().map(ToString::to_string).collect();
        format!(
            "applied {} migration(s) ({}); the schema is at version {latest_db}",
            done.len(),
            list.join(", ")
        )
    };
    if !unknown.is_empty() {
        line.push_str(&format!(
            "; note: the database also has version(s) {} that this binary (latest {latest_known}) does not know, left as they are",
            unknown.join(", ")
        ));
    }
    line
}

async fn connect(cfg: &PostgresConfig) -> anyhow::Result<Client> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&cfg.host)
        .port(cfg.port)
        .user(&cfg.user)
        .dbname(&cfg.db)
        .application_name("radar-app migrate")
        .connect_timeout(Duration::from_secs(3));
    if let Some(pw) = &cfg.password {
        config.password(pw.expose());
    }
    let mut attempt = 1;
    loop {
        match config.connect(NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                return Ok(client);
            }
            Err(e) if attempt < CONNECT_ATTEMPTS => {
                eprintln!(
                    "migrate: cannot connect to {}:{} yet ({e}); retrying",
                    cfg.host, cfg.port
                );
                attempt += 1;
                tokio::time::sleep(CONNECT_PAUSE).await;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "connecting to Postgres at {}:{}/{} as {} ({CONNECT_ATTEMPTS} attempts)",
                    cfg.host, cfg.port, cfg.db, cfg.user
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_strictly_ordered_and_named() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert!(versions[0] >= 1);
        assert!(MIGRATIONS.iter().all(|m| !m.name.is_empty()));
    }

    #[test]
    fn summary_says_what_was_applied_or_that_nothing_was() {
        assert_eq!(
            summary(MIGRATIONS, &[], &[1, 2]),
            "applied 2 migration(s) (1, 2); the schema is at version 2"
        );
        assert_eq!(
            summary(MIGRATIONS, &[1, 2], &[]),
            "nothing to do: the schema is at version 2, every migration is applied"
        );
        assert_eq!(
            summary(MIGRATIONS, &[1], &[2]),
            "applied 1 migration(s) (2); the schema is at version 2"
        );
    }

    #[test]
    fn summary_names_versions_from_a_newer_release() {
        let s = summary(MIGRATIONS, &[1, 2, 3], &[]);
        assert!(
            s.starts_with("nothing to do: the schema is at version 3"),
            "{s}"
        );
        assert!(
            s.contains("version(s) 3 that this binary (latest 2) does not know"),
            "{s}"
        );
    }
}
