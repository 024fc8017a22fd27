//! verify's HTTPS probes (`http::tls_probe`, `http::redirect_probe`) against a real TLS listener:
//! Python's `http.server` wrapped in `ssl`, serving a certificate of the test PKI on loopback,
//! with a plain-HTTP twin that redirects to it. No Docker; needs `python3` on the PATH.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use radar_deploy::http::{self, TlsFailureKind, REDIRECT_PROBE_PATH};
use radar_deploy::tls;

use crate::common::pki::TestCa;

/// HTTPS with the given certificate (GET anything → 200 "ok"), and plain HTTP answering 301 to
/// `https://<Host without port>:<https port><path>`, both on 127.0.0.1. Prints both ports.
const SERVER: &str = r#"
import http.server, ssl, sys, threading
cert, key = sys.argv[1], sys.argv[2]
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.server.tls:
            self.send_response(200)
            body = b"ok"
        else:
            host = self.headers.get("Host", "").split(":")[0]
            self.send_response(301)
            self.send_header("Location", "https://%s:%d%s" % (host, HTTPS_PORT, self.path))
            body = b""
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
secure = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
secure.tls = True
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
secure.socket = context.wrap_socket(secure.socket, server_side=True)
HTTPS_PORT = secure.server_address[1]
plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
plain.tls = False
print(HTTPS_PORT, plain.server_address[1], flush=True)
threading.Thread(target=plain.serve_forever, daemon=True).start()
secure.serve_forever()
"#;

/// The Python server, killed (by its own PID) when dropped.
struct Server {
    child: Child,
    https_port: u16,
    http_port: u16,
}

impl Server {
    fn start(ca: &TestCa, name: &str, hosts: &[&str], days: i64) -> Server {
        let (cert, key) = ca.write(name, hosts, days);
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SERVER)
            .arg(&cert)
            .arg(&key)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server prints its ports");
        let ports: Vec<u16> = line
            .split_whitespace()
            .map(|p| p.parse::<u16>().expect("a port"))
            .collect();
        assert_eq!(ports.len(), 2, "the server printed {line:?}");
        Server {
            child,
            https_port: ports[0],
            http_port: ports[1],
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test]
async fn a_trusted_certificate_is_read_from_the_handshake() {
    let ca = TestCa::new();
    let server = Server::start(&ca, "good", &["front.test", "www.front.test"], 60);
    let probe = http::tls_probe(
        loopback(),
        "www.front.test",
        server.https_port,
        Some(ca.cert_pem()),
    )
    .await;
    assert_eq!(
        probe.url,
        format!("https://www.front.test:{}/health", server.https_port)
    );
    let answer = probe.result.expect("the handshake succeeds");
    assert_eq!(answer.status, 200);
    // Python's server offers no ALPN: HTTP/1.1 (nginx with `http2 on` negotiates h2).
    assert_eq!(answer.http_version, "HTTP/1.1");
    assert!(answer
        .tls_version
        .as_deref()
        .is_some_and(|v| v.starts_with("TLSv1.")));
    let info = tls::leaf_info_der(&answer.peer_certificate.expect("the peer's leaf")).unwrap();
    assert_eq!(info.names, ["front.test", "www.front.test"]);
    assert_eq!(info.issuer, "CN=radar-deploy test intermediate");
    assert!((59..=60).contains(&info.days_left(crate::common::pki::now_unix())));
}

#[tokio::test]
async fn an_untrusted_issuer_is_named_and_its_certificate_still_shown() {
    let ca = TestCa::new();
    let server = Server::start(&ca, "untrusted", &["front.test"], 60);
    let failure = http::tls_probe(loopback(), "front.test", server.https_port, None)
        .await
        .result
        .expect_err("no trust in the test root");
    assert_eq!(
        failure.kind,
        TlsFailureKind::UnknownIssuer,
        "{}",
        failure.reason
    );
    assert!(
        failure.reason.contains("UnknownIssuer"),
        "{}",
        failure.reason
    );
    let shown = tls::leaf_info_der(&failure.peer_certificate.expect("evidence")).unwrap();
    assert_eq!(shown.subject, "CN=front.test");
    // Another CA's root does not help either.
    let other = TestCa::named("another test CA");
    let failure = http::tls_probe(
        loopback(),
        "front.test",
        server.https_port,
        Some(other.cert_pem()),
    )
    .await
    .result
    .expect_err("trust in another root");
    assert_eq!(
        failure.kind,
        TlsFailureKind::UnknownIssuer,
        "{}",
        failure.reason
    );
}

#[tokio::test]
async fn a_host_the_certificate_does_not_name_is_a_name_mismatch() {
    let ca = TestCa::new();
    let server = Server::start(&ca, "other-host", &["front.test"], 60);
    let failure = http::tls_probe(
        loopback(),
        "elsewhere.test",
        server.https_port,
        Some(ca.cert_pem()),
    )
    .await
    .result
    .expect_err("the certificate names front.test only");
    assert_eq!(
        failure.kind,
        TlsFailureKind::NameMismatch,
        "{}",
        failure.reason
    );
    assert!(failure.reason.contains("front.test"), "{}", failure.reason);
}

#[tokio::test]
async fn an_expired_certificate_is_refused_as_expired() {
    let ca = TestCa::new();
    let server = Server::start(&ca, "expired", &["front.test"], -2);
    let failure = http::tls_probe(
        loopback(),
        "front.test",
        server.https_port,
        Some(ca.cert_pem()),
    )
    .await
    .result
    .expect_err("expired two days ago");
    assert_eq!(failure.kind, TlsFailureKind::Expired, "{}", failure.reason);
    let shown = tls::leaf_info_der(&failure.peer_certificate.expect("evidence")).unwrap();
    assert!(shown.days_left(crate::common::pki::now_unix()) < 0);
}

#[tokio::test]
async fn extra_roots_that_are_not_certificates_are_refused_before_connecting() {
    let failure = http::tls_probe(loopback(), "front.test", 1, Some("not a certificate"))
        .await
        .result
        .expect_err("no certificate to trust");
    assert_eq!(
        failure.kind,
        TlsFailureKind::BadExtraRoots,
        "{}",
        failure.reason
    );
}

#[tokio::test]
async fn nothing_listening_is_a_connect_failure() {
    // A port just freed: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let failure = http::tls_probe(loopback(), "front.test", port, None)
        .await
        .result
        .expect_err("nothing listens");
    assert_eq!(failure.kind, TlsFailureKind::Connect, "{}", failure.reason);
    assert!(failure.peer_certificate.is_none());
}

#[tokio::test]
async fn the_plain_http_redirect_is_reported_with_its_location() {
    let ca = TestCa::new();
    let server = Server::start(&ca, "redirect", &["front.test"], 60);
    let probe = http::redirect_probe(loopback(), "front.test", server.http_port).await;
    assert_eq!(
        probe.url,
        format!(
            "http://front.test:{}{REDIRECT_PROBE_PATH}",
            server.http_port
        )
    );
    let (status, location) = probe.result.expect("an answer");
    assert_eq!(status, 301);
    assert_eq!(
        location.as_deref(),
        Some(
            format!(
                "https://front.test:{}{REDIRECT_PROBE_PATH}",
                server.https_port
            )
            .as_str()
        )
    );
}

/// verify's HTTPS group end to end: the Python pair stands in for nginx (its HTTP/1.1 only is a
/// warning, its 301 a pass); the app's checks fail against it and are not looked at.
#[tokio::test]
async fn verify_reports_the_https_group_with_a_warning_that_keeps_it_passing() {
    use radar_deploy::verify::{self, Status, TlsExpectations, GROUP_HTTPS};

    let ca = TestCa::new();
    let server = Server::start(&ca, "verify", &["front.test"], 60);
    let route = radar_deploy::http::HttpsRoute {
        host: "front.test".into(),
        addr: Some("127.0.0.1".parse().unwrap()),
        extra_roots_pem: Some(ca.cert_pem().to_string()),
        https_port: server.https_port,
    };
    let opts = verify::Options {
        project: "tls-probe-test".into(),
        url: route.base_url(),
        https: Some(route),
        requests: 1,
        ha: false,
        app_port: 3000,
        expected_instances: None,
        lb_strategy: None,
        master_name: "mymaster".into(),
        paths: radar_deploy::config::AppPaths::reference(),
        docker: None,
        target: radar_deploy::config::Target::Single,
        tls: Some(TlsExpectations {
            hosts: vec!["front.test".into()],
            https_port: server.https_port,
            http_port: server.http_port,
            extra_roots_pem: Some(ca.cert_pem().to_string()),
        }),
    };
    let report = verify::run(&opts).await.expect("verify runs");
    // The balancer's own checks go to the front door by name too, over HTTPS (the Python
    // server answers 200 "ok" to every path, so its health check passes).
    assert_eq!(
        report.url,
        format!("https://front.test:{}", server.https_port)
    );
    let lb = report
        .checks
        .iter()
        .find(|c| c.name == "Load balancer is healthy")
        .expect("the balancer's check");
    assert_eq!(lb.status, Status::Pass, "{}", lb.detail);
    let https: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.group == GROUP_HTTPS)
        .collect();
    assert_eq!(https.len(), 2, "{https:#?}");
    assert_eq!(
        https[0].name,
        "TLS handshake and certificate for front.test"
    );
    assert_eq!(https[0].status, Status::Warn, "{}", https[0].detail);
    assert!(
        https[0]
            .detail
            .contains("issued by CN=radar-deploy test intermediate"),
        "{}",
        https[0].detail
    );
    assert!(https[0].detail.contains("did not offer HTTP/2"));
    assert_eq!(https[1].name, "HTTP redirects to HTTPS");
    assert_eq!(https[1].status, Status::Pass, "{}", https[1].detail);
    let text = verify::report::text(&report, &radar_deploy::ui::Ui::new(true, false, 0));
    assert!(text.contains("=== HTTPS ==="), "{text}");
}

/// nginx as the front door will be (the offline image's 1.22: `listen … ssl http2`; its default
/// `ssl_protocols` stop at TLSv1.2 before 1.23.4), serving a test-PKI certificate: the probe
/// negotiates TLSv1.3 and HTTP/2 (ALPN), and plain HTTP redirects.
#[tokio::test]
async fn nginx_negotiates_http2_and_redirects_plain_http() {
    let _slot = crate::common::shared();
    crate::common::require_docker();
    let ca = TestCa::new();
    let (cert, key) = ca.write("nginx", &["front.test"], 60);
    let (https_port, http_port) = (crate::common::free_port(), crate::common::free_port());
    let conf = ca.dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "events {{}}\n\
             http {{\n\
               server {{\n\
                 listen 443 ssl http2;\n\
                 ssl_protocols TLSv1.2 TLSv1.3;\n\
                 ssl_certificate /etc/nginx/tls/cert.pem;\n\
                 ssl_certificate_key /etc/nginx/tls/key.pem;\n\
                 location = /health {{ return 200 \"ok\\n\"; }}\n\
               }}\n\
               server {{\n\
                 listen 80;\n\
                 location / {{ return 301 https://$host:{https_port}$request_uri; }}\n\
               }}\n\
             }}\n"
        ),
    )
    .unwrap();
    let name = format!("radar-tls-probe-{}-{https_port}", std::process::id());
    let container = Container(name.clone());
    let created = crate::common::docker(&[
        "create",
        "--name",
        &name,
        "-p",
        &format!("127.0.0.1:{https_port}:443"),
        "-p",
        &format!("127.0.0.1:{http_port}:80"),
        "radar-offline/nginx:bookworm",
    ]);
    assert!(
        created.status.success(),
        "{}",
        crate::common::text(&created)
    );
    for (from, to) in [
        (&conf, "/etc/nginx/nginx.conf"),
        (&cert, "/etc/nginx/tls/cert.pem"),
        (&key, "/etc/nginx/tls/key.pem"),
    ] {
        if to.starts_with("/etc/nginx/tls/") {
            // `docker cp` creates no parent directory.
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("tls")).unwrap();
            let out = crate::common::docker(&[
                "cp",
                dir.path().join("tls").to_str().unwrap(),
                &format!("{name}:/etc/nginx/"),
            ]);
            assert!(out.status.success(), "{}", crate::common::text(&out));
        }
        let out = crate::common::docker(&["cp", from.to_str().unwrap(), &format!("{name}:{to}")]);
        assert!(out.status.success(), "{}", crate::common::text(&out));
    }
    let started = crate::common::docker(&["start", &name]);
    assert!(
        started.status.success(),
        "{}",
        crate::common::text(&started)
    );

    let mut probe =
        http::tls_probe(loopback(), "front.test", https_port, Some(ca.cert_pem())).await;
    for _ in 0..50 {
        if probe.result.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        probe = http::tls_probe(loopback(), "front.test", https_port, Some(ca.cert_pem())).await;
    }
    let answer = probe.result.unwrap_or_else(|e| {
        let logs = crate::common::docker(&["logs", &name]);
        panic!("{e:?}\n{}", crate::common::text(&logs))
    });
    assert_eq!(answer.status, 200);
    assert_eq!(answer.http_version, "HTTP/2");
    assert_eq!(answer.tls_version.as_deref(), Some("TLSv1.3"));

    let (status, location) = http::redirect_probe(loopback(), "front.test", http_port)
        .await
        .result
        .expect("an answer");
    assert_eq!(status, 301);
    assert_eq!(
        location,
        Some(format!(
            "https://front.test:{https_port}{REDIRECT_PROBE_PATH}"
        ))
    );
    drop(container);
}

/// A container removed (by name) when dropped, also when the test fails.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = crate::common::docker(&["rm", "-f", &self.0]);
    }
}
