//! The built-in load generator: `concurrency` clients, each a browser-like user with its own
//! keep-alive connection and cookie jar, cycling through GET paths at a steady pace, plus one
//! session client that only asks `/api/session` (its counter must never go back). Every
//! request becomes a [`Sample`]; a few live figures let the drill see recovery as it happens.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::stats::{Failure, Sample, SessionObservation};
use crate::http::{HttpClient, HttpError, HttpsRoute};
use crate::verify::evaluate::{self, ServedBy};

/// What every client of one load shares: the session path and how to name an instance nginx
/// reports by address.
struct Shared {
    session_path: Option<String>,
    addresses: BTreeMap<String, String>,
}

/// A pause between one client's requests: steady load, not a flood that would starve the
/// containers under test of CPU (and measure the load generator instead of the deployment).
const PACE: Duration = Duration::from_millis(20);
/// Longer than nginx's own retry budget (`proxy_next_upstream_timeout`): a retried request
/// still counts as an answer, just a slow one, which the latency figures show.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(12);
const TICK_MS: u64 = 5000;

/// The reference app's session path (`APP_SESSION_PATH`'s default).
pub const SESSION_PATH: &str = "/api/session";

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub base_url: String,
    pub concurrency: usize,
    pub paths: Vec<String>,
    /// The session client's path (`APP_SESSION_PATH`); `None`: no session client's session
    /// to follow, it asks `paths` like the others.
    pub session_path: Option<String>,
    /// Instance addresses → names: an answer without `instanceId` is named by the upstream
    /// address nginx reports (`X-Radar-Upstream`).
    pub addresses: BTreeMap<String, String>,
    /// TLS on: HTTPS by this route (`base_url` is its base).
    pub https: Option<HttpsRoute>,
}

impl LoadOptions {
    /// The load on the reference app: `/health/backend` (which names the instance) and
    /// `/api/session`, the session client on the latter.
    pub fn reference(base_url: String, concurrency: usize) -> LoadOptions {
        LoadOptions {
            base_url,
            concurrency,
            paths: vec!["/health/backend".into(), SESSION_PATH.into()],
            session_path: Some(SESSION_PATH.into()),
            addresses: BTreeMap::new(),
            https: None,
        }
    }
}

/// What the drill can read while the load runs.
#[derive(Debug, Default)]
pub struct Live {
    /// Per instance id: when the latest request it answered successfully was sent (ms since
    /// the load started). Send times, because an answer sent before a crash may still arrive
    /// after it.
    last_success: Mutex<HashMap<String, u64>>,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    /// The session client's last success and last failure (ms; 0 = none yet).
    pub session_last_ok: AtomicU64,
    pub session_last_failure: AtomicU64,
    /// Any client's last success and last failure (ms of the answer; 0 = none yet).
    pub last_ok: AtomicU64,
    pub last_failure: AtomicU64,
    last_tick: AtomicU64,
}

impl Live {
    pub fn last_success_of(&self, instance: &str) -> Option<u64> {
        self.last_success
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(instance)
            .copied()
    }

    fn record_success(&self, instance: Option<&str>, at: u64) {
        if let Some(id) = instance {
            let mut m = self.last_success.lock().unwrap_or_else(|e| e.into_inner());
            let e = m.entry(id.to_string()).or_insert(at);
            *e = (*e).max(at);
        }
    }
}

/// Everything the load saw, once stopped.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// The load clients' and the session client's requests (the session client is the last
    /// client index, `concurrency`).
    pub samples: Vec<Sample>,
    /// The session client's successful answers, in order.
    pub sessions: Vec<SessionObservation>,
    /// Each load client's own session, in order: also checked for integrity.
    pub client_sessions: Vec<Vec<SessionObservation>>,
    pub duration_ms: u64,
}

pub struct Load {
    started: Instant,
    stop: Arc<AtomicBool>,
    pub live: Arc<Live>,
    clients: Vec<JoinHandle<(Vec<Sample>, Vec<SessionObservation>)>>,
}

impl Load {
    /// Starts every client at once.
    pub fn start(opts: &LoadOptions) -> Result<Load, HttpError> {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Live::default());
        let mut clients = vec![];
        let shared = Arc::new(Shared {
            session_path: opts.session_path.clone(),
            addresses: opts.addresses.clone(),
        });
        for client in 0..=opts.concurrency {
            // The last client is the session client: the session path only (when the app has
            // none, it asks what the others ask).
            let paths = match &opts.session_path {
                Some(session) if client == opts.concurrency => vec![session.clone()],
                _ => opts.paths.clone(),
            };
            let http = HttpClient::with_route(REQUEST_TIMEOUT, true, opts.https.as_ref())?;
            clients.push(tokio::spawn(client_loop(
                client,
                http,
                opts.base_url.clone(),
                paths,
                // Spread the clients over the pace so they do not move in lockstep.
                PACE.mul_f64(client as f64 / (opts.concurrency + 1) as f64),
                started,
                stop.clone(),
                live.clone(),
                client == opts.concurrency,
                shared.clone(),
            )));
        }
        Ok(Load {
            started,
            stop,
            live,
            clients,
        })
    }

    /// Milliseconds since the load started: the drill's clock.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A running count for the progress lines, at most every few seconds.
    pub fn tick(&self, progress: &dyn Fn(&str)) {
        let now = self.now_ms();
        let last = self.live.last_tick.load(Ordering::Relaxed);
        if now >= last + TICK_MS
            && self
                .live
                .last_tick
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            progress(&format!(
                "{} requests so far, {} failed",
                self.live.sent.load(Ordering::Relaxed),
                self.live.failed.load(Ordering::Relaxed)
            ));
        }
    }

    /// Stops every client after its request in flight and collects what they saw.
    pub async fn stop(self) -> LoadResult {
        self.stop.store(true, Ordering::SeqCst);
        let n = self.clients.len();
        let mut r = LoadResult::default();
        for (i, c) in self.clients.into_iter().enumerate() {
            // A client task cannot fail; a panic would be a bug, and its samples are lost.
            if let Ok((samples, sessions)) = c.await {
                r.samples.extend(samples);
                if i + 1 == n {
                    r.sessions = sessions;
                } else {
                    r.client_sessions.push(sessions);
                }
            }
        }
        r.duration_ms = self.started.elapsed().as_millis() as u64;
        r
    }
}

#[allow(clippy::too_many_arguments)]
async fn client_loop(
    client: usize,
    http: HttpClient,
    base: String,
    paths: Vec<String>,
    offset: Duration,
    started: Instant,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
    is_session_client: bool,
    shared: Arc<Shared>,
) -> (Vec<Sample>, Vec<SessionObservation>) {
    let ms = || started.elapsed().as_millis() as u64;
    let mut samples = vec![];
    let mut sessions = vec![];
    tokio::time::sleep(offset).await;
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let path = &paths[i % paths.len()];
        i += 1;
        let url = format!("{base}{path}");
        let sent_ms = ms();
        let answer = http.get(&url).await;
        let done_ms = ms();
        let result = match answer {
            Ok(r) if (200..300).contains(&r.status) => {
                if Some(path) == shared.session_path.as_ref() {
                    if let Ok(s) = evaluate::parse_session(&r.body, r.upstream.as_deref()) {
                        sessions.push(SessionObservation {
                            at_ms: done_ms,
                            session_id: s.session_id,
                            views: s.views,
                        });
                    }
                }
                Ok(ServedBy::of(&r.body, r.upstream.as_deref()).map(|s| s.name(&shared.addresses)))
            }
            Ok(r) => Err(Failure::Status {
                status: r.status,
                body: evaluate::excerpt(&r.body),
            }),
            Err(e) => Err(Failure::Transport { reason: e.reason }),
        };
        live.sent.fetch_add(1, Ordering::Relaxed);
        match &result {
            Ok(instance) => {
                live.record_success(instance.as_deref(), sent_ms);
                live.last_ok.fetch_max(done_ms, Ordering::SeqCst);
                if is_session_client {
                    live.session_last_ok.fetch_max(done_ms, Ordering::SeqCst);
                }
            }
            Err(_) => {
                live.failed.fetch_add(1, Ordering::Relaxed);
                live.last_failure.fetch_max(done_ms, Ordering::SeqCst);
                if is_session_client {
                    live.session_last_failure
                        .fetch_max(done_ms, Ordering::SeqCst);
                }
            }
        }
        samples.push(Sample {
            client,
            path: path.clone(),
            sent_ms,
            done_ms,
            result,
        });
        tokio::time::sleep(PACE).await;
    }
    (samples, sessions)
}
