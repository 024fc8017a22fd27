//! A test ACME CA on this machine: Debian's `pebble` (the RFC 8555 server Let's Encrypt
//! publishes for client tests) and `pebble-challtestsrv` (its mock DNS, answering every name
//! with 127.0.0.1, so any host name validates against a port on this machine). Both run as
//! child processes of the test, on free ports, and are killed (by their handles) when the
//! [`Pebble`] is dropped, also when the test fails.
//!
//! Debian's package ships no certificate for pebble's own HTTPS listener (upstream's
//! `test/certs` are left out), so the harness makes a CA and a `127.0.0.1` certificate with
//! rcgen: [`Pebble::tls_ca_pem`] is what ACME_CA_FILE holds to trust the directory. The CA that
//! signs the issued certificates is another, made by pebble at each start:
//! [`Pebble::issuing_roots_pem`].

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use radar_deploy::http::AcmeHttp;

pub struct Pebble {
    pebble: Child,
    challtestsrv: Child,
    dir: tempfile::TempDir,
    port: u16,
    management_port: u16,
    challtestsrv_management_port: u16,
    tls_ca_pem: String,
}

/// How the CA's validation reaches the host: where HTTP-01 requests go (the port on
/// 127.0.0.1 the mock DNS's answer leads to).
pub struct PebbleOptions {
    pub http_port: u16,
    /// PEBBLE_WFE_NONCEREJECT: the share of good nonces pebble rejects (badNonce) to test
    /// that clients retry; pebble's own default is 5.
    pub nonce_reject_percent: u8,
}

impl Pebble {
    pub fn start(options: PebbleOptions) -> Pebble {
        for bin in ["pebble", "pebble-challtestsrv"] {
            let found = Command::new(bin)
                .arg("-h")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok();
            assert!(
                found,
                "{bin} is missing: `apt-get install pebble` (Debian's package carries both; .ci/run installs it)"
            );
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let (tls_ca_pem, cert_pem, key_pem) = listener_certificate();
        std::fs::write(dir.path().join("cert.pem"), cert_pem).expect("write cert");
        std::fs::write(dir.path().join("key.pem"), key_pem).expect("write key");

        let port = super::free_port();
        let management_port = super::free_port();
        let tls_port = super::free_port();
        let dns_port = free_udp_port();
        let challtestsrv_management_port = super::free_port();
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": dir.path().join("cert.pem"),
                "privateKey": dir.path().join("key.pem"),
                "httpPort": options.http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        let config_path = dir.path().join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).expect("write pebble config");

        // DNS only (the challenge servers it could run are answered by the test itself);
        // no AAAA answers, so validation goes to 127.0.0.1 where the test listens.
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args([
                "-management",
                &format!("127.0.0.1:{challtestsrv_management_port}"),
            ])
            .stdout(log_file(&dir, "challtestsrv.log"))
            .stderr(log_file(&dir, "challtestsrv.log"))
            .spawn()
            .expect("start pebble-challtestsrv");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            // Validate at once instead of after pebble's random pause of up to 15 s.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env(
                "PEBBLE_WFE_NONCEREJECT",
                options.nonce_reject_percent.to_string(),
            )
            // Fresh authorizations every order: each test proves its own validation.
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log_file(&dir, "pebble.log"))
            .stderr(log_file(&dir, "pebble.log"))
            .spawn()
            .expect("start pebble");
        let p = Pebble {
            pebble,
            challtestsrv,
            dir,
            port,
            management_port,
            challtestsrv_management_port,
            tls_ca_pem,
        };
        p.wait_until_up();
        p
    }

    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// The CA of the directory's HTTPS certificate (what ACME_CA_FILE would hold).
    pub fn tls_ca_pem(&self) -> &str {
        &self.tls_ca_pem
    }

    /// The file holding [`Pebble::tls_ca_pem`], for an env file's ACME_CA_FILE.
    #[allow(dead_code)] // for the full-stack tests (`up` with TLS_MODE=acme)
    pub fn tls_ca_file(&self) -> PathBuf {
        let path = self.dir.path().join("tls-ca.pem");
        std::fs::write(&path, &self.tls_ca_pem).expect("write the TLS CA");
        path
    }

    /// Pebble's issuing root and intermediate (regenerated at each start), PEM: what a client
    /// must trust to verify the certificates it issues.
    pub async fn issuing_roots_pem(&self) -> String {
        let http = AcmeHttp::new(Some(&self.tls_ca_pem)).expect("ACME HTTP client");
        let mut pem = String::new();
        for path in ["roots/0", "intermediates/0"] {
            let url = format!("https://127.0.0.1:{}/{path}", self.management_port);
            let r = http
                .get(&url)
                .await
                .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()));
            assert_eq!(r.status, 200, "{url}: {}", r.body);
            pem.push_str(&r.body);
        }
        pem
    }

    /// The mock DNS's management API (plain HTTP), for tests that change its answers
    /// (`/set-default-ipv4` and the like; see pebble-challtestsrv(1)).
    #[allow(dead_code)] // for the full-stack tests (a refused renewal keeps the old certificate)
    pub fn challtestsrv_management_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.challtestsrv_management_port)
    }

    /// Both servers' output so far, for a failing test's message.
    pub fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!(
            "--- pebble ---\n{}\n--- pebble-challtestsrv ---\n{}",
            read("pebble.log"),
            read("challtestsrv.log")
        )
    }

    fn wait_until_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let addrs = [
            self.port,
            self.management_port,
            self.challtestsrv_management_port,
        ];
        for port in addrs {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "pebble did not listen on 127.0.0.1:{port} within 20 s\n{}",
                    self.logs()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.challtestsrv] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn log_file(dir: &tempfile::TempDir, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join(name))
        .expect("log file")
}

/// A free UDP port on 127.0.0.1 that is also free for TCP (the mock DNS listens on both).
fn free_udp_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("a free UDP port");
        let port = udp.local_addr().expect("its address").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A CA and, signed by it, the certificate of pebble's HTTPS listener for 127.0.0.1 and
/// localhost: (CA PEM, certificate PEM, key PEM).
fn listener_certificate() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "radar-deploy test ACME directory CA",
    );
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let key = rcgen::KeyPair::generate().expect("listener key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
        .expect("listener params");
    let cert = params.signed_by(&key, &ca).expect("listener certificate");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// The HTTP-01 answer nginx gives, as the test's own tiny server: `GET
/// /.well-known/acme-challenge/TOKEN` → `TOKEN.THUMBPRINT` (or, with `answer` false, 404 for
/// everything, a host that does not answer the challenge). It counts what it answered.
pub struct Http01Responder {
    pub port: u16,
    pub answered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Http01Responder {
    pub async fn start(thumbprint: &str, answer: bool) -> Http01Responder {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the HTTP-01 responder");
        let port = listener.local_addr().expect("its address").port();
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = answered.clone();
        let thumbprint = thumbprint.to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let thumbprint = thumbprint.clone();
                let count = count.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let request = String::from_utf8_lossy(&request);
                    let path = request.split_whitespace().nth(1).unwrap_or("");
                    let token = path.strip_prefix("/.well-known/acme-challenge/");
                    let (status, body) = match token {
                        Some(t) if answer && !t.is_empty() => {
                            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            ("200 OK", format!("{t}.{thumbprint}"))
                        }
                        _ => ("404 Not Found", "not found".to_string()),
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(response.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Http01Responder {
            port,
            answered,
            task,
        }
    }
}

impl Drop for Http01Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where the CA's HTTP-01 requests go in a full-stack test: a TCP forwarder on its own port
/// (pebble's `httpPort`) to the deployment's HTTP port (nginx), which a test can switch to
/// refusing connections: a host the CA cannot reach, for the "a refused renewal keeps the old
/// certificate" case, with nothing else about the deployment changed.
pub struct ChallengeForwarder {
    pub port: u16,
    refusing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl ChallengeForwarder {
    pub async fn start(to_port: u16) -> ChallengeForwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the challenge forwarder");
        let port = listener.local_addr().expect("its address").port();
        let refusing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refuse = refusing.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if refuse.load(std::sync::atomic::Ordering::SeqCst) {
                    // Dropped unanswered: the CA sees the connection reset.
                    continue;
                }
                tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", to_port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        ChallengeForwarder {
            port,
            refusing,
            task,
        }
    }

    /// From now on, every connection is closed at once (`false`: forwarded again).
    pub fn refuse(&self, refusing: bool) {
        self.refusing
            .store(refusing, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for ChallengeForwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
