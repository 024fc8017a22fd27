//! The HTTP contract (docs/design.md §5): health endpoints and the Redis-backed session.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, Request as HttpRequest, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::log::DependencyLog;
use crate::pg::PgPool;
use crate::session::{self, SessionSigner};
use crate::store::{error_chain, RedisStore, Request};

/// Each readiness probe gets this long; both run concurrently, so `/health/ready` answers
/// within about a second even when a dependency hangs.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// The session request may include a reconnect (to a re-resolved master) and one retry.
const SESSION_TIMEOUT: Duration = Duration::from_secs(3);
const SLOW_MAX_MS: u64 = 30_000;

pub struct AppState {
    pub instance_id: String,
    pub started: Instant,
    pub pg: Arc<PgPool>,
    pub redis: RedisStore,
    pub signer: SessionSigner,
    pub session_ttl: Duration,
    pub deps: DependencyLog,
    pub diagnostics: bool,
    /// This instance's injected fault (diagnostics only): see [`set_fault`].
    pub fault: Fault,
}

/// A fault set on one instance by `POST /api/fault`: every answer but the probes' is delayed
/// by `delay_ms` and, when `status` is not 0, replaced by that status. Atomics, because the
/// middleware reads them on every request.
#[derive(Debug, Default)]
pub struct Fault {
    delay_ms: AtomicU64,
    status: AtomicU16,
}

pub fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/backend", get(backend))
        .route("/health/ready", get(ready))
        .route("/api/session", get(session_view));
    if state.diagnostics {
        router = router
            .route("/api/slow", get(slow))
            .route("/api/fault", post(set_fault))
            .layer(middleware::from_fn_with_state(state.clone(), apply_fault));
    }
    router.fallback(not_found).with_state(state)
}

/// The paths a fault spares: Docker's healthcheck and the readiness probe, so an instance made
/// slow or failing stays in service, as a real one whose handlers break while its probes pass.
/// `/api/fault` itself, so the fault can be cleared.
const FAULT_SPARES: [&str; 4] = ["/health", "/health/live", "/health/ready", "/api/fault"];

#[derive(serde::Deserialize)]
struct FaultParams {
    delay_ms: Option<u64>,
    status: Option<u16>,
}

/// Diagnostics only: `POST /api/fault?delay_ms=300&status=500` makes this instance slow and/or
/// failing (what `top` and the drills are tested against); `POST /api/fault` clears it.
async fn set_fault(State(st): State<Arc<AppState>>, Query(p): Query<FaultParams>) -> Response {
    let delay_ms = p.delay_ms.unwrap_or(0).min(SLOW_MAX_MS);
    let status = p.status.unwrap_or(0);
    if status != 0 && StatusCode::from_u16(status).is_err() {
        let body = json!({ "error": format!("status {status} is not an HTTP status (100..=999)") });
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    st.fault.delay_ms.store(delay_ms, Ordering::Relaxed);
    st.fault.status.store(status, Ordering::Relaxed);
    Json(json!({ "instanceId": st.instance_id, "delayMs": delay_ms, "status": status }))
        .into_response()
}

async fn apply_fault(State(st): State<Arc<AppState>>, req: HttpRequest, next: Next) -> Response {
    if FAULT_SPARES.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let delay_ms = st.fault.delay_ms.load(Ordering::Relaxed);
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    match StatusCode::from_u16(st.fault.status.load(Ordering::Relaxed)) {
        Ok(status) => {
            let body = json!({ "error": "fault injected (POST /api/fault)", "instanceId": st.instance_id });
            (status, no_store(), Json(body)).into_response()
        }
        Err(_) => next.run(req).await,
    }
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

async fn backend(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "instanceId": st.instance_id,
        "uptimeSeconds": st.started.elapsed().as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn ready(State(st): State<Arc<AppState>>) -> Response {
    let (pg, redis) = check_dependencies(&st).await;
    let mut failing = Vec::new();
    let mut checks = serde_json::Map::new();
    for (name, result) in [("postgres", pg), ("redis", redis)] {
        let entry = match result {
            Ok(ms) => json!({ "ok": true, "latencyMs": ms }),
            Err(error) => {
                failing.push(name);
                json!({ "ok": false, "error": error })
            }
        };
        checks.insert(name.to_string(), entry);
    }
    let ok = failing.is_empty();
    let body = json!({
        "status": if ok { "ready" } else { "unavailable" },
        "instanceId": st.instance_id,
        "failing": failing,
        "checks": checks,
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, no_store(), Json(body)).into_response()
}

/// Runs both checks concurrently and records the outcome in the (rate-limited) dependency log.
/// Ok holds the latency in milliseconds.
pub async fn check_dependencies(st: &AppState) -> (Result<u64, String>, Result<u64, String>) {
    let (pg, redis) = tokio::join!(
        timed(check_postgres(&st.pg)),
        timed(async { st.redis.ping().await.map_err(|e| error_chain(&e)) })
    );
    for (name, result) in [("postgres", &pg), ("redis", &redis)] {
        match result {
            Ok(_) => st.deps.success(name),
            Err(e) => st.deps.failure(name, e),
        }
    }
    (pg, redis)
}

async fn timed(
    check: impl std::future::Future<Output = Result<(), String>>,
) -> Result<u64, String> {
    let start = Instant::now();
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(start.elapsed().as_millis() as u64),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {} ms", CHECK_TIMEOUT.as_millis())),
    }
}

async fn check_postgres(pool: &Arc<PgPool>) -> Result<(), String> {
    // A pooled connection may have died with a Postgres restart a moment ago, before its socket
    // reported the close: one retry then gets a fresh connection.
    let mut last_error = String::new();
    for _ in 0..2 {
        let conn = pool.get().await.map_err(|e| chain(&e))?;
        match conn.client().query_one("SELECT 1", &[]).await {
            Ok(_) => {
                conn.release();
                return Ok(());
            }
            Err(e) => {
                last_error = chain(&e);
                if !conn.client().is_closed() {
                    break;
                }
            }
        }
    }
    Err(last_error)
}

/// tokio-postgres puts the useful part ("connection refused", the server's message) in the
/// source chain, so print the whole chain.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

async fn session_view(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let cookies = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let existing = session::find_cookie(cookies)
        .and_then(|v| st.signer.verify(v))
        .map(str::to_owned);
    let (id, is_new) = match existing {
        Some(id) => (id, false),
        None => match session::new_session_id() {
            Ok(id) => (id, true),
            Err(e) => return error_response(&st, "random", &e.to_string()),
        },
    };

    // HINCRBY is atomic in Redis, so concurrent requests of one session on different instances
    // each add exactly one; EXPIRE in the same MULTI keeps an active session alive.
    let key = format!("radar:session:{id}");
    let ttl = st.session_ttl.as_secs() as i64;
    let mut pipe = redis::pipe();
    pipe.atomic()
        .hincr(&key, "views", 1)
        .expire(&key, ttl)
        .ignore();
    let result = tokio::time::timeout(
        SESSION_TIMEOUT,
        st.redis.query::<(i64,)>(Request::Pipe(&pipe)),
    )
    .await
    .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {SESSION_TIMEOUT:?}")));
    let views = match result {
        Ok((views,)) => {
            st.deps.success("redis");
            views
        }
        Err(e) => {
            let msg = error_chain(&e);
            st.deps.failure("redis", &msg);
            return error_response(&st, "redis", &msg);
        }
    };

    let mut headers = no_store();
    if is_new {
        let cookie = session::set_cookie_header(&st.signer.sign(&id));
        headers.insert(
            SET_COOKIE,
            HeaderValue::from_str(&cookie).expect("cookie is ASCII"),
        );
    }
    let body = json!({
        "sessionId": id,
        "views": views,
        "instanceId": st.instance_id,
        "isNew": is_new,
    });
    (StatusCode::OK, headers, Json(body)).into_response()
}

fn error_response(st: &AppState, dependency: &str, error: &str) -> Response {
    let body = json!({
        "error": "session store unavailable",
        "dependency": dependency,
        "detail": error,
        "instanceId": st.instance_id,
    });
    (StatusCode::SERVICE_UNAVAILABLE, no_store(), Json(body)).into_response()
}

fn no_store() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h
}

#[derive(serde::Deserialize)]
struct SlowParams {
    ms: Option<u64>,
}

/// Diagnostics only (enabled by `RADAR_APP_DIAGNOSTICS=1`): answers after `ms` milliseconds
/// (at most 30 s), to hold a request in flight, e.g. to observe draining on SIGTERM.
async fn slow(State(st): State<Arc<AppState>>, Query(p): Query<SlowParams>) -> Json<Value> {
    let ms = p.ms.unwrap_or(1000).min(SLOW_MAX_MS);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({ "sleptMs": ms, "instanceId": st.instance_id }))
}

async fn not_found() -> (StatusCode, Json<Value>) {
    (StatusCode::NOT_FOUND, Json(json!({ "error": "not found" })))
}
