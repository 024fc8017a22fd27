//! The one module that speaks HTTP (reqwest): GETs with a deadline, with or without a cookie
//! jar, returning plain data so verification stays testable without a network.

use std::time::{Duration, Instant};

/// What came back from one request: enough evidence to explain a failure.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
    pub elapsed: Duration,
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
        let bytes = response.bytes().await.map_err(fail)?;
        let end = bytes.len().min(MAX_BODY);
        Ok(HttpResponse {
            status,
            body: String::from_utf8_lossy(&bytes[..end]).into_owned(),
            elapsed: started.elapsed(),
        })
    }
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
