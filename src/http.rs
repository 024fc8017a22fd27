//! The one module that speaks HTTP (reqwest): GETs with a deadline, with or without a cookie
//! jar, returning plain data so verification stays testable without a network; and the
//! transport of the ACME client ([`AcmeHttp`]). The `hyper::http` names in it are only the
//! `http` crate's request and response types, which instant-acme's transport trait speaks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What came back from one request: enough evidence to explain a failure.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
    pub elapsed: Duration,
    /// The instance address nginx says served it (its `X-Radar-Upstream` header, which every
    /// request of this client asks for): the last of the addresses tried.
    pub upstream: Option<String>,
}

/// Why a request got no HTTP response at all.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct HttpError {
    pub url: String,
    pub reason: String,
}

/// Bodies are evidence in reports, not data: keep them short.
const MAX_BODY: usize = 64 * 1024;

/// GETs sent again because the server closed their keep-alive connection as they went out.
static CLOSED_CONNECTION_RETRIES: AtomicU64 = AtomicU64::new(0);

/// How many GETs this process has sent again on a new connection because the server closed
/// the kept-alive one as they went out (see [`HttpClient::new`]); reports show it.
pub fn closed_connection_retries() -> u64 {
    CLOSED_CONNECTION_RETRIES.load(Ordering::Relaxed)
}

/// The retry policy's scope: every host this client talks to.
struct AnyHost;
impl PartialEq<&str> for AnyHost {
    fn eq(&self, _: &&str) -> bool {
        true
    }
}

/// hyper's wording when a connection closes before any response came back.
fn closed_before_response(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.to_string() == "connection closed before message completed" {
            return true;
        }
        cur = e.source();
    }
    false
}

#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    /// A client with its own connection pool. With `cookies`, it keeps one cookie jar for
    /// every request it makes, like a browser tab.
    pub fn new(timeout: Duration, cookies: bool) -> Result<HttpClient, HttpError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .cookie_store(cookies)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("radar-deploy/", env!("CARGO_PKG_VERSION")))
            // Asks nginx which instance answered (nginx.conf's map; templates::UPSTREAM_HEADER).
            .default_headers(reqwest::header::HeaderMap::from_iter([(
                reqwest::header::HeaderName::from_static(UPSTREAM_HEADER_LC),
                reqwest::header::HeaderValue::from_static("1"),
            )]))
            // A server may close an idle keep-alive connection at any time; nginx does on
            // every reload (its old workers close their idle client connections). A GET that
            // went out on such a connection at that moment got no answer and is sent once
            // more on a new connection, as browsers, curl and Go's net/http do (RFC 9110
            // 9.2.2 allows it for idempotent methods). Counted: `closed_connection_retries`.
            .retry(
                reqwest::retry::for_host(AnyHost)
                    .max_retries_per_request(1)
                    .classify_fn(|rr| {
                        let idempotent =
                            matches!(*rr.method(), reqwest::Method::GET | reqwest::Method::HEAD);
                        if idempotent && rr.error().is_some_and(closed_before_response) {
                            CLOSED_CONNECTION_RETRIES.fetch_add(1, Ordering::Relaxed);
                            rr.retryable()
                        } else {
                            rr.success()
                        }
                    }),
            )
            .build()
            .map_err(|e| HttpError {
                url: String::new(),
                reason: format!("cannot create an HTTP client: {e}"),
            })?;
        Ok(HttpClient { client })
    }

    pub async fn get(&self, url: &str) -> Result<HttpResponse, HttpError> {
        let started = Instant::now();
        let fail = |e: reqwest::Error| HttpError {
            url: url.to_string(),
            reason: describe(&e),
        };
        let response = self.client.get(url).send().await.map_err(fail)?;
        let status = response.status().as_u16();
        let upstream = response
            .headers()
            .get(UPSTREAM_HEADER_LC)
            .and_then(|v| v.to_str().ok())
            .and_then(last_upstream);
        let bytes = response.bytes().await.map_err(fail)?;
        let end = bytes.len().min(MAX_BODY);
        Ok(HttpResponse {
            status,
            body: String::from_utf8_lossy(&bytes[..end]).into_owned(),
            elapsed: started.elapsed(),
            upstream,
        })
    }
}

/// `X-Radar-Upstream` as HTTP/2 and reqwest's header names want it (lower case).
const UPSTREAM_HEADER_LC: &str = "x-radar-upstream";

/// The address that answered, from nginx's `$upstream_addr`: after retries it lists every
/// server tried (`a:3000, b:3000`, groups separated by ` : ` after an internal redirect); the
/// last one answered.
pub fn last_upstream(value: &str) -> Option<String> {
    value
        .rsplit([',', ' '])
        .map(str::trim)
        .find(|a| !a.is_empty() && *a != ":")
        .map(str::to_string)
}

/// A reason a person can act on, without reqwest's nested wording.
fn describe(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut innermost = e.to_string();
    while let Some(s) = source {
        innermost = s.to_string();
        source = s.source();
    }
    if e.is_timeout() {
        "no response before the deadline (timeout)".to_string()
    } else if e.is_connect() {
        format!("cannot connect ({innermost})")
    } else {
        innermost
    }
}

/// Validates a base URL given on the command line.
pub fn parse_base_url(url: &str) -> Result<String, String> {
    match reqwest::Url::parse(url) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {
            Ok(url.trim_end_matches('/').to_string())
        }
        Ok(_) => Err(format!(
            "--url {url:?} must be an http:// or https:// URL with a host, e.g. http://localhost:8080"
        )),
        Err(e) => Err(format!(
            "--url {url:?} is not a valid URL ({e}), e.g. http://localhost:8080"
        )),
    }
}

/// instant-acme's transport (the ACME client's): every ACME request goes through reqwest here,
/// so the CA's certificate is checked by the same TLS stack (rustls on aws-lc-rs) as the rest.
/// It trusts the platform's roots plus `extra_roots_pem` (ACME_CA_FILE: a private CA, or a
/// test CA such as pebble, whose directory is served with its own certificate).
#[derive(Clone)]
pub struct AcmeHttp {
    client: reqwest::Client,
}

/// One ACME request's deadline: the CA answers each at once (validation is polled, not waited on).
const ACME_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl AcmeHttp {
    pub fn new(extra_roots_pem: Option<&str>) -> Result<AcmeHttp, HttpError> {
        let fail = |reason: String| HttpError {
            url: String::new(),
            reason,
        };
        let mut builder = reqwest::Client::builder()
            .timeout(ACME_REQUEST_TIMEOUT)
            .connect_timeout(ACME_REQUEST_TIMEOUT)
            // The protocol never redirects; a 3xx would be the CA's answer to read, not follow.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("radar-deploy/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = extra_roots_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| fail(format!("the extra CA certificates are not PEM: {e}")))?;
            if certs.is_empty() {
                return Err(fail(
                    "the extra CA file holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                        .into(),
                ));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder.build().map_err(|e| {
            fail(format!(
                "cannot create the ACME HTTP client: {}",
                describe(&e)
            ))
        })?;
        Ok(AcmeHttp { client })
    }

    /// A plain GET with this client's trust (a test CA's management API, a directory check).
    pub async fn get(&self, url: &str) -> Result<HttpResponse, HttpError> {
        let started = Instant::now();
        let fail = |e: reqwest::Error| HttpError {
            url: url.to_string(),
            reason: describe(&e),
        };
        let response = self.client.get(url).send().await.map_err(fail)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(fail)?;
        Ok(HttpResponse {
            status,
            body: String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_BODY)]).into_owned(),
            elapsed: started.elapsed(),
            upstream: None,
        })
    }
}

impl instant_acme::HttpClient for AcmeHttp {
    fn request(
        &self,
        req: hyper::http::Request<instant_acme::BodyWrapper<bytes::Bytes>>,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<instant_acme::BytesResponse, instant_acme::Error>,
                > + Send,
        >,
    > {
        let client = self.client.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let url = parts.uri.to_string();
            // The JWS body in one piece, so it goes out with a Content-Length: instant-acme
            // collects bodies only through its response wrapper, which takes any body.
            let body = instant_acme::BytesResponse::from(hyper::http::Response::new(body))
                .body
                .into_bytes()
                .await
                .map_err(instant_acme::Error::Other)?;
            let response = client
                .request(parts.method, &url)
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| {
                    instant_acme::Error::Other(Box::new(HttpError {
                        reason: describe(&e),
                        url,
                    }))
                })?;
            let response: hyper::http::Response<reqwest::Body> = response.into();
            Ok(instant_acme::BytesResponse::from(response))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_upstream_address_is_the_one_that_answered() {
        assert_eq!(
            last_upstream("172.18.0.5:8000").as_deref(),
            Some("172.18.0.5:8000")
        );
        assert_eq!(
            last_upstream("172.18.0.5:8000, 172.18.0.6:8000").as_deref(),
            Some("172.18.0.6:8000")
        );
        assert_eq!(
            last_upstream("10.0.0.1:80 : 10.0.0.2:80").as_deref(),
            Some("10.0.0.2:80")
        );
        assert_eq!(last_upstream(""), None);
        assert_eq!(
            UPSTREAM_HEADER_LC,
            crate::templates::UPSTREAM_HEADER.to_ascii_lowercase()
        );
    }
}
