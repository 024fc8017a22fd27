//! `radar-app`: the reference implementation of the app contract (docs/design.md §5), the default
//! `APP_IMAGE` of radar-deploy, built static and shipped `FROM scratch`.
//!
//! - `config`      environment → validated `Config` (`*_FILE` secrets, defaults)
//! - `routes`      the HTTP endpoints (`/health*`, `/api/session`, diagnostics)
//! - `session`     session ids and the HMAC-signed `radar.sid` cookie
//! - `store`       the Redis connection (direct or through Sentinels, follows failovers)
//! - `pg`          a bounded, self-healing tokio-postgres pool
//! - `healthcheck` the `radar-app healthcheck` subcommand (the image's HEALTHCHECK)
//! - `migrate`     the `radar-app migrate` subcommand: the versioned schema, applied once
//! - `log`         stderr logging with rate-limited dependency errors
//!
//! Usage: `radar-app [serve]` runs the server; `radar-app healthcheck` probes a running one;
//! `radar-app migrate` applies the schema migrations not yet applied (needs only the `POSTGRES_*`
//! settings; radar-deploy runs it once per release with `APP_RELEASE_COMMAND=migrate`).
//!
//! Environment (secrets marked * are read from `NAME_FILE` when set, one trailing newline
//! trimmed, else from `NAME`; they are never logged):
//! - `PORT` (3000), `INSTANCE_ID` (default: the hostname)
//! - `POSTGRES_HOST` (postgres), `POSTGRES_PORT` (5432), `POSTGRES_USER` (postgres),
//!   `POSTGRES_DB` (= user), `POSTGRES_PASSWORD`*, `DB_POOL_SIZE` (5, 1..=100)
//! - `REDIS_HOST` (redis), `REDIS_PORT` (6379), `REDIS_PASSWORD`*; or `REDIS_SENTINELS`
//!   (`host:port,...`) with `REDIS_MASTER_NAME` (mymaster) and, if the Sentinels themselves
//!   require one, `REDIS_SENTINEL_PASSWORD`*
//! - `SESSION_SECRET`* and `ENCRYPTION_KEY`* (required, at least 16 characters),
//!   `SESSION_TTL_SECONDS` (86400, refreshed on every request)
//! - `LOG_DIR`: also append the log to `LOG_DIR/radar-app.log` (if writable)
//! - `RADAR_APP_DIAGNOSTICS=1` enables `GET /api/slow?ms=N` and `POST /api/fault?delay_ms=N&status=S`
//!   (this instance slow and/or failing; without parameters: cleared) (off by default)
//! - ignored: `GITHUB_TOKEN`, `LOG_LEVEL` (the app logs only startup, dependency changes and
//!   shutdown)
//!
//! Exit status: 0 after a clean shutdown, 2 for a configuration error or a port in use;
//! `migrate`: 0 migrated or up to date, 1 failed, 2 a configuration error.

mod config;
mod healthcheck;
mod log;
mod migrate;
mod pg;
mod routes;
mod session;
mod store;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use config::Config;
use routes::AppState;

/// After SIGTERM, in-flight requests get this long; Docker's default stop timeout is 10 s.
const DRAIN_DEADLINE: Duration = Duration::from_secs(9);
/// How often the background monitor probes the dependencies (only to log changes).
const MONITOR_EVERY: Duration = Duration::from_secs(5);

const USAGE: &str = "usage: radar-app [serve | healthcheck | migrate | --version]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] | ["serve"] => serve(),
        ["healthcheck"] => healthcheck::run(),
        ["migrate"] => migrate::run(),
        ["--version" | "-V"] => {
            println!("radar-app {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        ["--help" | "-h" | "help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn serve() -> ExitCode {
    let started = Instant::now();
    let cfg = match Config::from_lookup(&|name| std::env::var(name).ok()) {
        Ok(cfg) => cfg,
        Err(problems) => {
            for p in problems {
                log::info(format_args!("configuration error: {p}"));
            }
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = &cfg.log_dir {
        if let Err(e) = log::to_dir(dir) {
            log::info(format_args!(
                "LOG_DIR: cannot write the log file ({e}); stderr only"
            ));
        }
    }
    // Few workers: the app is I/O-bound and runs many instances per host.
    let workers = std::thread::available_parallelism()
        .map(|n| n.get().min(4))
        .unwrap_or(2);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::info(format_args!("cannot start the runtime: {e}"));
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(run(cfg, started));
    // A blocking DNS lookup of a vanished host must not delay the exit.
    runtime.shutdown_timeout(Duration::from_millis(500));
    code
}

async fn run(cfg: Config, started: Instant) -> ExitCode {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, cfg.port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            log::info(format_args!("cannot listen on {addr}: {e}"));
            return ExitCode::from(2);
        }
    };
    let pg = pg::PgPool::new(&cfg.postgres, &format!("radar-app {}", cfg.instance_id));
    let redis = store::RedisStore::new(&cfg.redis);
    log::info(format_args!(
        "instance {} listening on {addr}; postgres {}@{}:{}/{} (pool {}); {}{}",
        cfg.instance_id,
        cfg.postgres.user,
        cfg.postgres.host,
        cfg.postgres.port,
        cfg.postgres.db,
        cfg.postgres.pool_size,
        redis.describe(),
        if cfg.diagnostics {
            "; diagnostics endpoints on"
        } else {
            ""
        },
    ));
    let state = Arc::new(AppState {
        instance_id: cfg.instance_id.clone(),
        started,
        pg,
        redis,
        signer: session::SessionSigner::new(cfg.session_secret.expose()),
        session_ttl: cfg.session_ttl,
        deps: log::DependencyLog::default(),
        diagnostics: cfg.diagnostics,
        fault: routes::Fault::default(),
    });

    // Probe the dependencies in the background, only so that outages and recoveries are logged
    // even when nobody asks /health/ready. Readiness itself is always checked live.
    let monitor_state = state.clone();
    tokio::spawn(async move {
        loop {
            let _ = routes::check_dependencies(&monitor_state).await;
            tokio::time::sleep(MONITOR_EVERY).await;
        }
    });

    let (signal_tx, signal_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let name = wait_for_signal().await;
        log::info(format_args!(
            "{name} received: no new connections, draining in-flight requests (at most {} s)",
            DRAIN_DEADLINE.as_secs()
        ));
        let _ = signal_tx.send(true);
    });
    let mut graceful_rx = signal_rx.clone();
    let graceful = async move {
        let _ = graceful_rx.wait_for(|stop| *stop).await;
    };
    let server = axum::serve(listener, routes::router(state)).with_graceful_shutdown(graceful);
    let mut deadline_rx = signal_rx;
    let deadline = async move {
        let _ = deadline_rx.wait_for(|stop| *stop).await;
        tokio::time::sleep(DRAIN_DEADLINE).await;
    };

    tokio::select! {
        result = server => match result {
            Ok(()) => {
                log::info("stopped: all requests finished");
                ExitCode::SUCCESS
            }
            Err(e) => {
                log::info(format_args!("server error: {e}"));
                ExitCode::from(1)
            }
        },
        () = deadline => {
            log::info("stopped: drain deadline passed with requests still in flight");
            ExitCode::SUCCESS
        }
    }
}

/// Waits for the request to stop: SIGTERM (`docker stop`) or SIGINT on Unix; on Windows
/// (where the app runs only for development) Ctrl-C, Ctrl-Break or the console closing.
/// A handler that cannot be installed is logged and that signal is not waited for.
#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = listening(signal(SignalKind::terminate()), "SIGTERM");
    let mut int = listening(signal(SignalKind::interrupt()), "SIGINT");
    tokio::select! {
        Some(()) = async { term.as_mut()?.recv().await } => "SIGTERM",
        Some(()) = async { int.as_mut()?.recv().await } => "SIGINT",
        else => std::future::pending().await,
    }
}

#[cfg(windows)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::windows::{ctrl_break, ctrl_close, ctrl_shutdown};
    let mut brk = listening(ctrl_break(), "Ctrl-Break");
    let mut close = listening(ctrl_close(), "console close");
    let mut shutdown = listening(ctrl_shutdown(), "shutdown");
    tokio::select! {
        Ok(()) = tokio::signal::ctrl_c() => "Ctrl-C",
        Some(()) = async { brk.as_mut()?.recv().await } => "Ctrl-Break",
        Some(()) = async { close.as_mut()?.recv().await } => "console close",
        Some(()) = async { shutdown.as_mut()?.recv().await } => "shutdown",
        else => std::future::pending().await,
    }
}

/// A signal listener, or `None` (logged) when it cannot be installed.
fn listening<S>(r: std::io::Result<S>, name: &str) -> Option<S> {
    r.map_err(|e| log::info(format_args!("cannot listen for {name}: {e}")))
        .ok()
}
