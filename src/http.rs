//! The one module that speaks HTTP (reqwest): GETs with a deadline, with or without a cookie
//! jar (over HTTPS by an [`HttpsRoute`] when the balancer serves TLS); the HTTPS front door's
//! probes (a TLS handshake with the peer's certificate, the plain-HTTP redirect), returning
//! plain data so verification stays testable without a network; and the transport of the ACME
//! client ([`AcmeHttp`]). The `hyper::http` names in it are only the `http` crate's request and
//! response types, which instant-acme's transport trait speaks.

use std::net::SocketAddr;
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

/// Requests sent again because the server closed their keep-alive connection as they went
/// out, or (HTTP/2) refused them unprocessed.
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
    any_cause(e, |text| {
        text == "connection closed before message completed"
    })
}

/// h2's wording when an HTTP/2 server refused a request it never processed: a graceful
/// GOAWAY (NO_ERROR; nginx's old workers send it on every reload) naming a last stream below
/// this one, or the stream reset with REFUSED_STREAM (RFC 9113 §8.7: safe to send again).
/// reqwest's default policy retries exactly these; a custom policy replaces it, so ours must.
fn refused_unprocessed(e: &(dyn std::error::Error + 'static)) -> bool {
    any_cause(e, |text| {
        text.starts_with("connection error received: not a result of an error")
            || text
                == "stream error received: refused stream before processing any application logic"
    })
}

/// Whether `e` or any of its causes displays as `matches` wants.
fn any_cause(e: &(dyn std::error::Error + 'static), matches: impl Fn(&str) -> bool) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if matches(&e.to_string()) {
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

/// How radar-deploy's own requests reach a balancer that serves HTTPS (`TLS_MODE` on): the
/// URL names the public host, so SNI, Host and the certificate check are the clients'; the
/// connection goes to `addr` (where the balancer is, whatever DNS says of the host), and
/// `extra_roots_pem` (ACME_CA_FILE) is trusted beside the platform's roots.
#[derive(Debug, Clone)]
pub struct HttpsRoute {
    pub host: String,
    /// `None`: wherever DNS says the host is (a `--url` given by hand).
    pub addr: Option<std::net::IpAddr>,
    pub extra_roots_pem: Option<String>,
    pub https_port: u16,
}

impl HttpsRoute {
    /// `https://host[:port]`, the base URL its requests use.
    pub fn base_url(&self) -> String {
        match self.https_port {
            443 => format!("https://{}", self.host),
            port => format!("https://{}:{port}", self.host),
        }
    }
}

impl HttpClient {
    /// A client with its own connection pool. With `cookies`, it keeps one cookie jar for
    /// every request it makes, like a browser tab.
    pub fn new(timeout: Duration, cookies: bool) -> Result<HttpClient, HttpError> {
        HttpClient::with_route(timeout, cookies, None)
    }

    /// [`HttpClient::new`], over HTTPS by `route` when it is given.
    pub fn with_route(
        timeout: Duration,
        cookies: bool,
        route: Option<&HttpsRoute>,
    ) -> Result<HttpClient, HttpError> {
        let mut builder = reqwest::Client::builder();
        if let Some(route) = route {
            if let Some(addr) = route.addr {
                // DNS has no ports: the URL's port is used with this address.
                builder = builder.resolve(&route.host, SocketAddr::new(addr, 0));
            }
            if let Some(pem) = &route.extra_roots_pem {
                let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
                    HttpError {
                        url: String::new(),
                        reason: format!(
                            "ACME_CA_FILE holds no usable PEM certificate: {}",
                            cause_chain(&e)
                        ),
                    }
                })?;
                builder = builder.tls_certs_merge(roots);
            }
        }
        let client = builder
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
            // 9.2.2 allows it for idempotent methods). Over HTTP/2 the reload is a GOAWAY: a
            // request it refused unprocessed is sent again too (`refused_unprocessed`).
            // Counted: `closed_connection_retries`.
            .retry(
                reqwest::retry::for_host(AnyHost)
                    .max_retries_per_request(1)
                    .classify_fn(|rr| {
                        let idempotent =
                            matches!(*rr.method(), reqwest::Method::GET | reqwest::Method::HEAD);
                        let resend = rr.error().is_some_and(|e| {
                            (idempotent && closed_before_response(e)) || refused_unprocessed(e)
                        });
                        if resend {
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
        get_on(&self.client, url).await
    }
}

/// One GET on `client`: the status, the body (up to [`MAX_BODY`]), the time it took and the
/// instance nginx names (`X-Radar-Upstream`, when the answer has it).
async fn get_on(client: &reqwest::Client, url: &str) -> Result<HttpResponse, HttpError> {
    let started = Instant::now();
    let fail = |e: reqwest::Error| HttpError {
        url: url.to_string(),
        reason: describe(&e),
    };
    let response = client.get(url).send().await.map_err(fail)?;
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

/// How long each TLS or redirect probe may take, handshake included.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What one HTTPS request to nginx's own `/health` showed: the handshake's outcome and, when it
/// succeeded, what was negotiated and the certificate presented.
#[derive(Debug, Clone)]
pub struct TlsProbe {
    /// `https://host[:port]/health`, as asked (the connection goes to `addr`).
    pub url: String,
    /// Where the connection went.
    pub addr: SocketAddr,
    pub result: Result<TlsAnswer, TlsFailure>,
}

#[derive(Debug, Clone)]
pub struct TlsAnswer {
    pub status: u16,
    /// `HTTP/2` when ALPN chose h2, else `HTTP/1.1`.
    pub http_version: String,
    /// `TLSv1.3`, `TLSv1.2`; `None` when the TLS library did not say.
    pub tls_version: Option<String>,
    /// The leaf certificate the server presented (DER).
    pub peer_certificate: Option<Vec<u8>>,
    pub elapsed: Duration,
}

/// Why the HTTPS request failed, classified so a report can give the fix.
#[derive(Debug, Clone)]
pub struct TlsFailure {
    pub kind: TlsFailureKind,
    /// The whole cause chain, outermost first.
    pub reason: String,
    /// The certificate the server presented, from a second handshake that trusts anything,
    /// when the first one failed on the certificate: evidence for the report, never trust.
    pub peer_certificate: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailureKind {
    /// No trusted root issued the chain (a private CA, a self-signed certificate).
    UnknownIssuer,
    /// The certificate names other hosts.
    NameMismatch,
    Expired,
    NotYetValid,
    /// Any other reason the certificate was refused.
    BadCertificate,
    /// No TCP connection (nothing listens, a firewall).
    Connect,
    Timeout,
    /// The extra trusted certificates given are not PEM certificates.
    BadExtraRoots,
    Other,
}

/// The TLS probe: connects to `addr`'s IP at `https_port`, sends `host` as SNI and Host, and
/// trusts the platform's roots plus `extra_roots_pem` (any number of PEM certificates, e.g. a
/// private ACME CA's root). GETs nginx's own `/health` (HTTP/2 offered by ALPN), keeping the
/// peer's leaf certificate.
pub async fn tls_probe(
    addr: SocketAddr,
    host: &str,
    https_port: u16,
    extra_roots_pem: Option<&str>,
) -> TlsProbe {
    let url = https_url(host, https_port, "/health");
    let target = SocketAddr::new(addr.ip(), https_port);
    let roots = match extra_roots_pem
        .map(|pem| reqwest::Certificate::from_pem_bundle(pem.as_bytes()))
    {
        None => Vec::new(),
        Some(Ok(roots)) if !roots.is_empty() => roots,
        Some(Ok(_)) => {
            return TlsProbe {
                url,
                addr: target,
                result: Err(TlsFailure {
                    kind: TlsFailureKind::BadExtraRoots,
                    reason: "the extra trusted certificates hold no PEM certificate".to_string(),
                    peer_certificate: None,
                }),
            }
        }
        Some(Err(e)) => {
            return TlsProbe {
                url,
                addr: target,
                result: Err(TlsFailure {
                    kind: TlsFailureKind::BadExtraRoots,
                    reason: format!(
                        "the extra trusted certificates are not PEM certificates ({})",
                        cause_chain(&e)
                    ),
                    peer_certificate: None,
                }),
            }
        }
    };
    let strict = probe_client(host, target).tls_certs_merge(roots);
    let result = match tls_get(strict, &url).await {
        Ok(answer) => Ok(answer),
        Err(e) => {
            let reason = cause_chain(&e);
            let kind = tls_failure_kind(&e, &reason);
            let certificate_refused = matches!(
                kind,
                TlsFailureKind::UnknownIssuer
                    | TlsFailureKind::NameMismatch
                    | TlsFailureKind::Expired
                    | TlsFailureKind::NotYetValid
                    | TlsFailureKind::BadCertificate
            );
            // The certificate that was refused, to show which one it was (the placeholder,
            // another host's, an old one): a second handshake that checks nothing.
            let peer_certificate = if certificate_refused {
                let lenient = probe_client(host, target).danger_accept_invalid_certs(true);
                tls_get(lenient, &url)
                    .await
                    .ok()
                    .and_then(|a| a.peer_certificate)
            } else {
                None
            };
            Err(TlsFailure {
                kind,
                reason,
                peer_certificate,
            })
        }
    };
    TlsProbe {
        url,
        addr: target,
        result,
    }
}

/// The path the redirect probe asks for over plain HTTP (with a query, which must survive).
pub const REDIRECT_PROBE_PATH: &str = "/radar-deploy/redirect-probe?from=verify";

/// What a plain-HTTP request for [`REDIRECT_PROBE_PATH`] got, redirects not followed.
#[derive(Debug, Clone)]
pub struct RedirectProbe {
    pub url: String,
    /// Where the connection went.
    pub addr: SocketAddr,
    /// The status and the `Location` header.
    pub result: Result<(u16, Option<String>), HttpError>,
}

/// GETs `http://host:http_port` + [`REDIRECT_PROBE_PATH`] from `addr`'s IP without following
/// redirects: a front door that serves HTTPS answers 301 or 308 to `https://host...`.
pub async fn redirect_probe(addr: SocketAddr, host: &str, http_port: u16) -> RedirectProbe {
    let url = format!(
        "http://{}{REDIRECT_PROBE_PATH}",
        authority(host, http_port, 80)
    );
    let target = SocketAddr::new(addr.ip(), http_port);
    let fail = |e: reqwest::Error| HttpError {
        url: url.clone(),
        reason: describe(&e),
    };
    let result = async {
        let client = probe_client(host, target).build().map_err(fail)?;
        let response = client.get(&url).send().await.map_err(fail)?;
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        Ok((response.status().as_u16(), location))
    }
    .await;
    RedirectProbe {
        url,
        addr: target,
        result,
    }
}

/// The address a base URL's host and port resolve to (an IPv4 one when there is one: Docker
/// publishes ports on both, and IPv6 loopback is off on some hosts).
pub async fn resolve_base(base_url: &str) -> Result<SocketAddr, HttpError> {
    let fail = |reason: String| HttpError {
        url: base_url.to_string(),
        reason,
    };
    let url = reqwest::Url::parse(base_url).map_err(|e| fail(format!("not a URL ({e})")))?;
    let host = url
        .host_str()
        .ok_or_else(|| fail("the URL has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| fail(format!("cannot resolve {host} ({e})")))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| fail(format!("{host} resolves to no address")))
}

/// A one-request client that sends `host`'s requests to `target`, follows no redirect and
/// keeps the TLS details.
fn probe_client(host: &str, target: SocketAddr) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .connect_timeout(PROBE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("radar-deploy/", env!("CARGO_PKG_VERSION")))
        .resolve(host, target)
        .tls_info(true)
}

async fn tls_get(builder: reqwest::ClientBuilder, url: &str) -> Result<TlsAnswer, reqwest::Error> {
    let started = Instant::now();
    let client = builder.build()?;
    let response = client.get(url).send().await?;
    let tls = response.extensions().get::<reqwest::tls::TlsInfo>();
    let answer = TlsAnswer {
        status: response.status().as_u16(),
        http_version: match response.version() {
            reqwest::Version::HTTP_2 => "HTTP/2".to_string(),
            reqwest::Version::HTTP_3 => "HTTP/3".to_string(),
            reqwest::Version::HTTP_10 => "HTTP/1.0".to_string(),
            _ => "HTTP/1.1".to_string(),
        },
        tls_version: tls.and_then(|t| t.version()).map(|v| {
            match v {
                v if v == reqwest::tls::Version::TLS_1_3 => "TLSv1.3",
                v if v == reqwest::tls::Version::TLS_1_2 => "TLSv1.2",
                v if v == reqwest::tls::Version::TLS_1_1 => "TLSv1.1",
                _ => "TLSv1.0",
            }
            .to_string()
        }),
        peer_certificate: tls.and_then(|t| t.peer_certificate()).map(<[u8]>::to_vec),
        elapsed: started.elapsed(),
    };
    // The body is not evidence here; reading it finishes the exchange cleanly.
    let _ = response.bytes().await;
    Ok(answer)
}

/// `host[:port]`, the port left out when it is the scheme's default.
fn authority(host: &str, port: u16, default: u16) -> String {
    if port == default {
        host.to_string()
    } else {
        format!("{host}:{port}")
    }
}

fn https_url(host: &str, port: u16, path: &str) -> String {
    format!("https://{}{path}", authority(host, port, 443))
}

/// Every message of an error's source chain, outermost first, repeats dropped (reqwest and
/// hyper often wrap an error in one that quotes it).
fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// The kind of a failed HTTPS request, from reqwest's flags and rustls's wording (rustls is not
/// a dependency of this crate, so its error type cannot be matched).
fn tls_failure_kind(e: &reqwest::Error, chain: &str) -> TlsFailureKind {
    classify_tls_reason(chain).unwrap_or(if e.is_timeout() {
        TlsFailureKind::Timeout
    } else if e.is_connect() && !chain.contains("invalid peer certificate") {
        TlsFailureKind::Connect
    } else {
        TlsFailureKind::Other
    })
}

fn classify_tls_reason(chain: &str) -> Option<TlsFailureKind> {
    if !chain.contains("invalid peer certificate") {
        return None;
    }
    Some(if chain.contains("UnknownIssuer") {
        TlsFailureKind::UnknownIssuer
    } else if chain.contains("not valid for name") || chain.contains("NotValidForName") {
        TlsFailureKind::NameMismatch
    } else if chain.contains("certificate expired") || chain.contains("Expired") {
        TlsFailureKind::Expired
    } else if chain.contains("not valid yet") || chain.contains("NotValidYet") {
        TlsFailureKind::NotYetValid
    } else {
        TlsFailureKind::BadCertificate
    })
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
        get_on(&self.client, url).await
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

    /// An error with a cause, worded as hyper wraps h2's.
    #[derive(Debug)]
    struct Wrapped(&'static str, Option<Box<Wrapped>>);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn http2_requests_refused_unprocessed_are_recognised_in_the_cause_chain() {
        let chain = |inner: &'static str| {
            Wrapped(
                "error sending request",
                Some(Box::new(Wrapped(
                    "client error (SendRequest)",
                    Some(Box::new(Wrapped(inner, None))),
                ))),
            )
        };
        assert!(refused_unprocessed(&chain(
            "connection error received: not a result of an error"
        )));
        assert!(refused_unprocessed(&chain(
            "stream error received: refused stream before processing any application logic"
        )));
        // Processed, or not known not to be: not sent again.
        assert!(!refused_unprocessed(&chain(
            "connection error received: unspecific protocol error detected"
        )));
        assert!(!refused_unprocessed(&chain(
            "stream error received: unexpected internal error encountered"
        )));
        assert!(closed_before_response(&chain(
            "connection closed before message completed"
        )));
    }

    #[test]
    fn rustls_refusals_are_classified_by_their_wording() {
        let c = |s: &str| classify_tls_reason(s);
        assert_eq!(
            c("error sending request: client error (Connect): invalid peer certificate: UnknownIssuer"),
            Some(TlsFailureKind::UnknownIssuer)
        );
        assert_eq!(
            c("invalid peer certificate: certificate not valid for name \"a.test\"; certificate is only valid for b.test"),
            Some(TlsFailureKind::NameMismatch)
        );
        assert_eq!(
            c("invalid peer certificate: certificate expired: verification time 2 (UNIX), but certificate is not valid after 1 (1 seconds ago)"),
            Some(TlsFailureKind::Expired)
        );
        assert_eq!(
            c("invalid peer certificate: certificate not valid yet: verification time 1 (UNIX)"),
            Some(TlsFailureKind::NotYetValid)
        );
        assert_eq!(
            c("invalid peer certificate: BadSignature"),
            Some(TlsFailureKind::BadCertificate)
        );
        assert_eq!(c("tcp connect error: Connection refused"), None);
    }

    #[test]
    fn probe_urls_leave_out_default_ports() {
        assert_eq!(https_url("a.test", 443, "/health"), "https://a.test/health");
        assert_eq!(
            https_url("a.test", 8443, "/health"),
            "https://a.test:8443/health"
        );
        assert_eq!(authority("a.test", 80, 80), "a.test");
        assert_eq!(authority("a.test", 8080, 80), "a.test:8080");
    }

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
