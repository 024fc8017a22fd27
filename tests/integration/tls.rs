//! HTTPS at the front door with the operator's certificate files (`TLS_MODE=files`), on one
//! Docker host, with a CA made by the test (`common::pki`) trusted through ACME_CA_FILE:
//! - a key of another certificate, an expired certificate and one for another host are each
//!   refused by `up` (exit 2) naming the file and what is wrong, with nothing created;
//! - a good one: `up` (which verifies over HTTPS) passes, HTTP answers 308 to HTTPS, HTTP/2
//!   is offered, /health still answers over HTTP;
//! - the file replaced under load: `up` reloads nginx (same container) with the new
//!   certificate, and no request fails.
//!
//! Needs the Docker daemon, the offline images and openssl; fails, never skips, without them.

use crate::common::{self, docker, pki::TestCa, text};
use crate::scale::figures;

use std::process::Command;
use std::time::{Duration, Instant};

use radar_deploy::drill::load::{Load, LoadOptions};
use radar_deploy::http::HttpsRoute;

const HOST: &str = "app.radar.test";

/// The serial number of the certificate served at 127.0.0.1:`port` for HOST.
pub(crate) fn served_serial(port: u16) -> String {
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{port} -servername {HOST} </dev/null 2>/dev/null | openssl x509 -noout -serial"
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("openssl");
    let serial = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        serial.starts_with("serial="),
        "no certificate served on {port}: {}",
        text(&out)
    );
    serial
}

/// `curl` through the balancer's HTTPS port, HOST resolved to 127.0.0.1, the test CA trusted:
/// (status, HTTP version).
fn curl_https(port: u16, ca: &std::path::Path, path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
            "--cacert",
            &ca.display().to_string(),
            "--resolve",
            &format!("{HOST}:{port}:127.0.0.1"),
            &format!("https://{HOST}:{port}{path}"),
        ])
        .output()
        .expect("curl");
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    let (code, version) = s.split_once(' ').unwrap_or((&s, ""));
    (code.to_string(), version.to_string())
}

/// Status and Location of a plain-HTTP GET for `path` with Host: HOST.
fn http_head(port: u16, path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "-H",
            &format!("Host: {HOST}"),
            &format!("http://127.0.0.1:{port}{path}"),
        ])
        .output()
        .expect("curl");
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    let (code, location) = s.split_once(' ').unwrap_or((&s, ""));
    (code.to_string(), location.to_string())
}

fn containers_of(project: &str) -> String {
    let label = format!("label=com.docker.compose.project={project}");
    let out = docker(&["ps", "-a", "-q", "--filter", &label]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn nginx_id(project: &str) -> String {
    let out = docker(&["inspect", "-f", "{{.Id}}", &format!("{project}-nginx-1")]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn certificate_files_are_checked_first_served_over_https_and_replaced_by_a_reload_under_load() {
    let _slot = common::shared();
    let p = common::HostProject::new("rdtls", 2);
    let ca = TestCa::new();
    let root = ca.write_root();
    let https_port = common::free_port();
    p.set_env("TLS_MODE", "files");
    p.set_env("PUBLIC_HOSTS", HOST);
    p.set_env("HTTPS_PORT", &https_port.to_string());
    p.set_env("ACME_CA_FILE", &root.display().to_string());

    // Refused before anything is created, each naming its culprit.
    let (good_cert, good_key) = ca.write("good", &[HOST], 60);
    let (_, other_key) = ca.write("other-key", &[HOST], 60);
    let (expired_cert, expired_key) = ca.write("expired", &[HOST], -1);
    let (wrong_cert, wrong_key) = ca.write("wrong-host", &["elsewhere.radar.test"], 60);
    for (case, cert, key, says) in [
        (
            "a key of another certificate",
            &good_cert,
            &other_key,
            "does not belong",
        ),
        (
            "an expired certificate",
            &expired_cert,
            &expired_key,
            "expired on",
        ),
        (
            "another host's certificate",
            &wrong_cert,
            &wrong_key,
            "does not cover app.radar.test",
        ),
    ] {
        p.set_env("TLS_CERT_FILE", &cert.display().to_string());
        p.set_env("TLS_KEY_FILE", &key.display().to_string());
        let out = p.run(&["up"]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{case}: up must exit 2:\n{all}");
        for s in [says, &cert.display().to_string(), "nothing was created"] {
            assert!(all.contains(s), "{case}: the error lacks {s:?}:\n{all}");
        }
        assert_eq!(containers_of(&p.name), "", "{case}: something was created");
    }

    // A good certificate: `up` verifies over HTTPS with the test CA trusted.
    p.set_env("TLS_CERT_FILE", &good_cert.display().to_string());
    p.set_env("TLS_KEY_FILE", &good_key.display().to_string());
    let up = p.ok(&["up"]);
    assert!(
        up.contains(&format!("https://{HOST}:{https_port}")),
        "verify went over HTTPS:\n{up}"
    );
    assert_eq!(
        curl_https(https_port, &root, "/api/session"),
        ("200".into(), "2".into())
    );
    let (code, location) = http_head(p.port, "/api/session?x=1");
    assert_eq!(code, "308");
    assert_eq!(
        location,
        format!("https://{HOST}:{https_port}/api/session?x=1")
    );
    assert_eq!(
        http_head(p.port, "/health").0,
        "200",
        "nginx's /health stays on HTTP"
    );
    let status = p.ok(&["status"]);
    assert!(
        status.contains(&format!("HTTPS certificate: {HOST} issued by")),
        "status names the served certificate:\n{status}"
    );
    // The key is in nginx's container, 0600, and in nothing `docker inspect` shows.
    let inspect = docker(&["inspect", &format!("{}-nginx-1", p.name)]);
    let key_text = std::fs::read_to_string(&good_key).unwrap();
    let key_body = key_text.lines().nth(1).unwrap();
    assert!(!String::from_utf8_lossy(&inspect.stdout).contains(key_body));

    // The certificate file replaced (renewed by the operator's own means), under load.
    let before_serial = served_serial(https_port);
    let before_id = nginx_id(&p.name);
    let (renewed_cert, renewed_key) = ca.write("renewed", &[HOST], 90);
    std::fs::copy(&renewed_cert, &good_cert).unwrap();
    std::fs::copy(&renewed_key, &good_key).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let route = HttpsRoute {
        host: HOST.into(),
        addr: Some("127.0.0.1".parse().unwrap()),
        extra_roots_pem: Some(ca.cert_pem().to_string()),
        https_port,
    };
    let mut opts = LoadOptions::reference(route.base_url(), 8);
    opts.https = Some(route);
    let load = rt
        .block_on(async { Load::start(&opts) })
        .expect("start the load");
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    let reloaded = p.run(&["up", "--no-verify"]);
    let took = t.elapsed();
    std::thread::sleep(Duration::from_millis(1500));
    let r = rt.block_on(load.stop());
    let f = figures(&(r, 0));
    eprintln!(
        "certificate file replaced under load: {} requests, {} failed, up {:.1} s",
        f.requests,
        f.failed,
        took.as_secs_f64()
    );
    assert!(reloaded.status.success(), "{}", text(&reloaded));
    assert!(f.requests > 50, "the load ran: {} requests", f.requests);
    assert_eq!(f.failed, 0, "failed requests: {}", f.failures);
    assert_eq!(
        nginx_id(&p.name),
        before_id,
        "nginx was recreated, not reloaded"
    );
    assert_ne!(
        served_serial(https_port),
        before_serial,
        "the new certificate is not served"
    );

    // verify's own TLS checks pass on the result.
    let verify = p.ok(&["verify"]);
    assert!(verify.contains(HOST), "{verify}");
    p.ok(&["down", "--volumes"]);
}
