//! The Redis connection: one shared multiplexed connection, re-established on demand.
//!
//! Why not `redis::aio::ConnectionManager`: it reconnects to the address it was built with, but
//! after a Sentinel failover the master lives elsewhere. Here every (re)connect in Sentinel mode
//! first asks the Sentinels where the master is (all of them at once, the first answer wins) and
//! then checks with `ROLE` that the node really is a master. The current connection is dropped:
//! - when a command fails with a connection error or `READONLY` (the old master came back as a
//!   replica) — and the command is retried once, immediately, against the re-resolved master;
//! - when any Sentinel announces `+switch-master` for our master (one watcher task per Sentinel),
//!   so the app follows a failover as soon as it is decided, even with no traffic. Until the
//!   other Sentinels catch up, the announced master is preferred to what they still name.
//!
//! Connection attempts are single-flight (one at a time, others wait for its result) and, after a
//! failure, not repeated for [`RETRY_FLOOR`]: during an outage each request fails fast instead
//! of queueing behind connect timeouts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ErrorKind, FromRedisValue, IntoConnectionInfo,
    RedisConnectionInfo, RedisError, ServerErrorKind,
};

use crate::config::{HostPort, RedisConfig, RedisTarget};
use crate::log;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);
const SENTINEL_TIMEOUT: Duration = Duration::from_millis(500);
const RETRY_FLOOR: Duration = Duration::from_millis(200);
const WATCH_PING_EVERY: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    target: RedisTarget,
    redis_settings: RedisConnectionInfo,
    sentinel_settings: RedisConnectionInfo,
    current: RwLock<Option<Current>>,
    /// Held while connecting; holds the last failed attempt.
    connecting: tokio::sync::Mutex<Option<Failure>>,
    next_generation: AtomicU64,
    /// The master last announced by `+switch-master` (every Sentinel sends it; log it once).
    announced: std::sync::Mutex<Option<HostPort>>,
    /// When the fallback to `REDIS_HOST` was last logged (at most every 30 s).
    fallback_logged: std::sync::Mutex<Option<Instant>>,
}

#[derive(Clone)]
struct Current {
    generation: u64,
    addr: HostPort,
    conn: MultiplexedConnection,
}

struct Failure {
    at: Instant,
    error: String,
}

/// A request: one command or a pipeline (`MULTI`/`EXEC` when atomic).
pub enum Request<'a> {
    Cmd(&'a redis::Cmd),
    Pipe(&'a redis::Pipeline),
}

impl RedisStore {
    /// Creates the store without connecting; in Sentinel mode also starts the `+switch-master`
    /// watchers. Must be called inside the Tokio runtime.
    pub fn new(cfg: &RedisConfig) -> RedisStore {
        let mut redis_settings = RedisConnectionInfo::default();
        if let Some(pw) = &cfg.password {
            redis_settings = redis_settings.set_password(pw.expose());
        }
        // Sentinels answer few commands; do not send them `CLIENT SETINFO`.
        let mut sentinel_settings = RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(pw) = &cfg.sentinel_password {
            sentinel_settings = sentinel_settings.set_password(pw.expose());
        }
        let store = RedisStore {
            inner: Arc::new(Inner {
                target: cfg.target.clone(),
                redis_settings,
                sentinel_settings,
                current: RwLock::new(None),
                connecting: tokio::sync::Mutex::new(None),
                next_generation: AtomicU64::new(1),
                announced: std::sync::Mutex::new(None),
                fallback_logged: std::sync::Mutex::new(None),
            }),
        };
        if let RedisTarget::Sentinel { sentinels, .. } = &cfg.target {
            for sentinel in sentinels {
                tokio::spawn(watch_sentinel(store.inner.clone(), sentinel.clone()));
            }
        }
        store
    }

    pub fn describe(&self) -> String {
        match &self.inner.target {
            RedisTarget::Direct(hp) => format!("redis at {hp}"),
            RedisTarget::Sentinel {
                sentinels,
                master_name,
                ..
            } => {
                let list: Vec<String> = sentinels.iter().map(ToString::to_string).collect();
                format!(
                    "redis master {master_name:?} via sentinels {}",
                    list.join(",")
                )
            }
        }
    }

    pub async fn query<T: FromRedisValue>(&self, request: Request<'_>) -> anyhow::Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self.inner.connection().await?;
            let mut conn = current.conn.clone();
            let result = match request {
                Request::Cmd(cmd) => cmd.query_async(&mut conn).await,
                Request::Pipe(pipe) => pipe.query_async(&mut conn).await,
            };
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let dropped = err.is_connection_dropped() || err.is_io_error();
            let readonly = is_readonly(&err);
            if dropped || readonly || err.is_timeout() || err.is_unrecoverable_error() {
                self.inner.invalidate(current.generation);
            }
            // Retry once, at once, what was almost certainly not applied: a command refused by a
            // demoted master, or one on a connection found gone (Redis answers what it executed
            // before it closes a connection, so only a crash between executing and answering
            // could count twice: accepted, to follow a failover without failing the request).
            // A timeout may well have been applied: never retried.
            if attempt == 1 && (readonly || (dropped && !err.is_timeout())) {
                continue;
            }
            return Err(anyhow!(err)).with_context(|| format!("redis at {}", current.addr));
        }
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        let pong: String = self.query(Request::Cmd(&redis::cmd("PING"))).await?;
        if pong != "PONG" {
            bail!("unexpected PING reply {pong:?}");
        }
        Ok(())
    }
}

/// Formats an error with its causes, skipping a cause that only repeats the text before it
/// (redis-rs errors print their I/O source themselves and also return it as `source()`).
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn is_readonly(err: &RedisError) -> bool {
    // Inside MULTI/EXEC a replica's refusal is an aborted transaction that carries each queued
    // command's READONLY; ask for those errors rather than match text (redis-rs prints the kind
    // as "ReadOnly", not as the server's code).
    err.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
        || err.clone().into_server_errors().is_some_and(|errors| {
            errors
                .iter()
                .any(|(_, e)| e.kind() == Some(ServerErrorKind::ReadOnly))
        })
}

impl Inner {
    async fn connection(&self) -> anyhow::Result<Current> {
        if let Some(c) = self.read_current() {
            return Ok(c);
        }
        let mut last_failure = self.connecting.lock().await;
        if let Some(c) = self.read_current() {
            return Ok(c);
        }
        if let Some(f) = last_failure.as_ref() {
            if f.at.elapsed() < RETRY_FLOOR {
                bail!("{}", f.error);
            }
        }
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT * 2, self.connect()).await;
        match attempt.unwrap_or_else(|_| Err(anyhow!("connecting timed out"))) {
            Ok(c) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
                *last_failure = None;
                Ok(c)
            }
            Err(e) => {
                let error = error_chain(&e);
                *last_failure = Some(Failure {
                    at: Instant::now(),
                    error: error.clone(),
                });
                Err(anyhow!(error))
            }
        }
    }

    fn read_current(&self) -> Option<Current> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Drops the connection of `generation`, unless it was already replaced by a newer one.
    fn invalidate(&self, generation: u64) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|c| c.generation == generation) {
            *current = None;
        }
    }

    async fn connect(&self) -> anyhow::Result<Current> {
        let named = match &self.target {
            RedisTarget::Direct(hp) => hp.clone(),
            RedisTarget::Sentinel {
                sentinels,
                master_name,
                fallback,
            } => match (self.ask_sentinels(sentinels, master_name).await, fallback) {
                (Ok(addr), _) => addr,
                (Err(e), Some(fallback)) => {
                    let mut logged = self
                        .fallback_logged
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    if logged.is_none_or(|at| at.elapsed() > Duration::from_secs(30)) {
                        log::info(format_args!(
                            "{}; trying REDIS_HOST {fallback}",
                            error_chain(&e)
                        ));
                        *logged = Some(Instant::now());
                    }
                    fallback.clone()
                }
                (Err(e), None) => return Err(e),
            },
        };
        // Right after a failover the Sentinels disagree for a moment: the one that led it has
        // announced the new master, the others still name the old one, which goes on accepting
        // (and later losing) writes until it is reconfigured as a replica. So the announced master
        // wins while it answers as a master; when it does not (a later switch was missed), the
        // announcement is forgotten and the Sentinels' answer holds.
        if let Some(announced) = self.announced().filter(|a| *a != named) {
            match tokio::time::timeout(SENTINEL_TIMEOUT, self.open_master(&announced)).await {
                Ok(Ok(current)) => {
                    log::info(format_args!(
                        "a sentinel still names {named}; using the announced master {announced}"
                    ));
                    return Ok(current);
                }
                _ => self.forget_announcement(&announced),
            }
        }
        self.open_master(&named).await
    }

    /// Opens `addr` and, in Sentinel mode, checks that it really is a master.
    async fn open_master(&self, addr: &HostPort) -> anyhow::Result<Current> {
        let mut conn = open(addr, &self.redis_settings, CONNECT_TIMEOUT)
            .await
            .with_context(|| format!("connect to redis at {addr}"))?;
        if matches!(self.target, RedisTarget::Sentinel { .. }) {
            // A Sentinel may still name the old master for a moment after a failover, and the
            // fallback address may be a demoted master.
            let role: Vec<redis::Value> = redis::cmd("ROLE")
                .query_async(&mut conn)
                .await
                .with_context(|| format!("ROLE on {addr}"))?;
            let is_master = matches!(role.first(),
                Some(redis::Value::BulkString(b)) if b == b"master")
                || matches!(role.first(), Some(redis::Value::SimpleString(s)) if s == "master");
            if !is_master {
                bail!("{addr} was named master by a sentinel but is not a master (yet)");
            }
        }
        Ok(Current {
            generation: self.next_generation.fetch_add(1, Ordering::Relaxed),
            addr: addr.clone(),
            conn,
        })
    }

    fn announced(&self) -> Option<HostPort> {
        self.announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn forget_announcement(&self, stale: &HostPort) {
        let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        if announced.as_ref() == Some(stale) {
            *announced = None;
        }
    }

    /// Drops the current connection unless it leads to `master`.
    fn drop_unless(&self, master: &HostPort) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|c| c.addr != *master) {
            *current = None;
        }
    }

    async fn ask_sentinels(
        &self,
        sentinels: &[HostPort],
        master_name: &str,
    ) -> anyhow::Result<HostPort> {
        let asks = sentinels.iter().map(|s| {
            Box::pin(async move {
                let ask = async {
                    let mut conn = open(s, &self.sentinel_settings, SENTINEL_TIMEOUT).await?;
                    let reply: Option<(String, u16)> = redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(master_name)
                        .query_async(&mut conn)
                        .await?;
                    reply.ok_or_else(|| anyhow!("does not know master {master_name:?}"))
                };
                match tokio::time::timeout(SENTINEL_TIMEOUT, ask).await {
                    Ok(Ok((host, port))) => Ok(HostPort { host, port }),
                    Ok(Err(e)) => Err(format!("sentinel {s}: {}", error_chain(&e))),
                    Err(_) => Err(format!("sentinel {s}: timed out")),
                }
            })
        });
        match futures_util::future::select_ok(asks).await {
            Ok((addr, _)) => Ok(addr),
            // select_ok reports the last error; the others are alike in practice.
            Err(e) => Err(anyhow!("no sentinel answered: {e}")),
        }
    }

    async fn on_switch_master(&self, from: &HostPort, payload: &str) {
        let RedisTarget::Sentinel { master_name, .. } = &self.target else {
            return;
        };
        // "<master-name> <old-ip> <old-port> <new-ip> <new-port>"
        let parts: Vec<&str> = payload.split_whitespace().collect();
        let [name, _, _, host, port] = parts[..] else {
            return;
        };
        if name != master_name {
            return;
        }
        let Ok(port) = port.parse() else { return };
        let new_master = HostPort {
            host: host.to_string(),
            port,
        };
        // Announce first, so that any connect from now on prefers the new master.
        {
            let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
            if announced.as_ref() != Some(&new_master) {
                log::info(format_args!(
                    "sentinel {from}: master {name} switched to {new_master}"
                ));
                *announced = Some(new_master.clone());
            }
        }
        self.drop_unless(&new_master);
        // A connect in flight may have resolved the old master just before the switch: wait for
        // it, drop what it stored, and forget a recent failure so the next request tries at once.
        let mut last_failure = self.connecting.lock().await;
        *last_failure = None;
        self.drop_unless(&new_master);
    }
}

async fn open(
    addr: &HostPort,
    settings: &RedisConnectionInfo,
    timeout: Duration,
) -> anyhow::Result<MultiplexedConnection> {
    let info = ConnectionAddr::Tcp(addr.host.clone(), addr.port)
        .into_connection_info()?
        .set_redis_settings(settings.clone());
    let client = Client::open(info)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

/// Follows one Sentinel's `+switch-master` channel for the life of the process, reconnecting
/// after a second when the Sentinel goes away. A PING every [`WATCH_PING_EVERY`] finds a link
/// that died silently (no FIN, e.g. a vanished host), which would otherwise wait forever.
async fn watch_sentinel(inner: Arc<Inner>, sentinel: HostPort) {
    loop {
        let subscribed = async {
            let info = ConnectionAddr::Tcp(sentinel.host.clone(), sentinel.port)
                .into_connection_info()?
                .set_redis_settings(inner.sentinel_settings.clone());
            let (mut sink, stream) = Client::open(info)?.get_async_pubsub().await?.split();
            sink.subscribe("+switch-master").await?;
            anyhow::Ok((sink, stream))
        };
        if let Ok(Ok((mut sink, mut messages))) =
            tokio::time::timeout(SENTINEL_TIMEOUT * 2, subscribed).await
        {
            let mut ping = tokio::time::interval(WATCH_PING_EVERY);
            ping.tick().await;
            loop {
                tokio::select! {
                    msg = messages.next() => {
                        let Some(msg) = msg else { break };
                        if let Ok(payload) = msg.get_payload::<String>() {
                            inner.on_switch_master(&sentinel, &payload).await;
                        }
                    }
                    _ = ping.tick() => {
                        let pong = tokio::time::timeout(
                            SENTINEL_TIMEOUT * 4,
                            sink.ping::<redis::Value>(),
                        );
                        if !matches!(pong.await, Ok(Ok(_))) {
                            break;
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
