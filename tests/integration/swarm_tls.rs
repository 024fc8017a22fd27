//! HTTPS on the Swarm target against a real single-node swarm, with a test CA (`common::pki`):
//! `TLS_MODE=files` → `up --target swarm` → nginx serves the certificate over HTTPS (the CA
//! trusted, SNI `app.radar.test`, the connection to 127.0.0.1) and its HTTP port answers 308
//! to https; the key is a secret (mode 0400, in no service spec) → the certificate files
//! replaced by a new leaf → `up --target swarm` under HTTPS load: two new secrets, nginx alone
//! updated (stop-first: its host ports), the old secrets removed, the new certificate served;
//! the requests that failed meanwhile are counted and reported → `down` leaves nothing.
//!
//! A test of its own (not a phase of `swarm::`'s scenario): it needs only nginx, the app and
//! the data stores once, with two instances. The first `up` ends with `verify`, over HTTPS
//! with the test CA trusted (ACME_CA_FILE), its HTTPS group included.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use radar_deploy::http::{self, HttpClient, HttpsRoute};

use crate::common::{self, block_on, docker, pki::TestCa, text};
use crate::swarm::SwarmProject;

const HOST: &str = "app.radar.test";

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The DER of the first certificate of a PEM chain (the leaf).
fn leaf_der(chain_pem: &str) -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem.as_bytes()).expect("a PEM leaf");
    pem.contents
}

/// The leaf nginx presents on `https_port`, the CA trusted; fails the test unless the
/// handshake and `/health` succeed.
fn served_leaf(https_port: u16, ca: &TestCa) -> Vec<u8> {
    let probe = block_on(http::tls_probe(
        loopback(https_port),
        HOST,
        https_port,
        Some(ca.cert_pem()),
    ));
    let answer = probe
        .result
        .unwrap_or_else(|e| panic!("HTTPS {}: {:?} {}", probe.url, e.kind, e.reason));
    assert_eq!(answer.status, 200, "{}", probe.url);
    answer.peer_certificate.expect("the server's certificate")
}

/// Runs radar-deploy with `args` while four clients GET `/health/backend` over HTTPS (a
/// connection pool each, as browsers); returns (failed, sent, the longest run of failures in
/// ms, the command's output).
fn under_https_load(
    p: &SwarmProject,
    https_port: u16,
    ca: &TestCa,
    args: &[&str],
) -> (usize, usize, u128, String) {
    let route = HttpsRoute {
        host: HOST.into(),
        addr: Some(loopback(https_port).ip()),
        extra_roots_pem: Some(ca.cert_pem().to_string()),
        https_port,
    };
    let url = format!("{}/health/backend", route.base_url());
    let cmd = p.command(args);
    block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        // (ms since start, ok, why not)
        let samples: Arc<Mutex<Vec<(u128, bool, String)>>> = Arc::default();
        let t0 = Instant::now();
        let mut clients = vec![];
        for _ in 0..4 {
            let client = HttpClient::with_route(Duration::from_secs(5), false, Some(&route))
                .expect("an HTTPS client");
            let (stop, samples, url) = (stop.clone(), samples.clone(), url.clone());
            clients.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let at = t0.elapsed().as_millis();
                    let (ok, why) = match client.get(&url).await {
                        Ok(r) if r.status == 200 => (true, String::new()),
                        Ok(r) => (false, format!("status {}", r.status)),
                        Err(e) => (false, e.reason),
                    };
                    samples.lock().unwrap().push((at, ok, why));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let out = tokio::task::spawn_blocking(move || {
            let mut cmd = cmd;
            cmd.output().expect("run radar-deploy")
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{args:?} exited {:?}:\n{}",
            out.status.code(),
            text(&out)
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            let _ = c.await;
        }
        let mut samples = std::mem::take(&mut *samples.lock().unwrap());
        samples.sort_by_key(|s| s.0);
        let failed: Vec<&(u128, bool, String)> = samples.iter().filter(|s| !s.1).collect();
        // The outage: from the first failed request to the first success after the last one.
        let gap = match (failed.first(), failed.last()) {
            (Some(first), Some(last)) => {
                let back = samples
                    .iter()
                    .find(|s| s.1 && s.0 > last.0)
                    .map_or(last.0, |s| s.0);
                back - first.0
            }
            _ => 0,
        };
        let mut reasons: Vec<&str> = failed.iter().map(|s| s.2.as_str()).collect();
        reasons.dedup();
        (
            failed.len(),
            samples.len(),
            gap,
            format!("{}\nfailures: {reasons:#?}", text(&out)),
        )
    })
}

/// The project's objects of `kind` (`secret`, `service`) on the swarm, by name.
fn names(p: &SwarmProject, kind: &str) -> Vec<String> {
    let out = docker(&[
        kind,
        "ls",
        "--filter",
        &format!("label=com.docker.stack.namespace={}", p.name),
        "--format",
        "{{.Name}}",
    ]);
    let mut v: Vec<String> = text(&out).lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn swarm_serves_https_redirects_http_and_rolls_a_new_certificate() {
    let _slot = common::alone();
    let p = SwarmProject::new();
    let ca = TestCa::new();
    let (cert_file, key_file) = ca.write("leaf", &[HOST], 90);
    let first = leaf_der(&std::fs::read_to_string(&cert_file).unwrap());
    let https_port = common::free_port();
    p.set_env("APP_INSTANCES", "2");
    p.set_env("TLS_MODE", "files");
    p.set_env("PUBLIC_HOSTS", HOST);
    p.set_env("HTTPS_PORT", &https_port.to_string());
    p.set_env("TLS_CERT_FILE", &cert_file.display().to_string());
    p.set_env("TLS_KEY_FILE", &key_file.display().to_string());
    p.set_env("ACME_CA_FILE", &ca.write_root().display().to_string());

    let t0 = Instant::now();
    let out = p.ok(&["up", "--target", "swarm", "--timeout", "120"]);
    for seen in [
        format!("TLS handshake and certificate for {HOST}"),
        "HTTP redirects to HTTPS".to_string(),
    ] {
        assert!(
            out.contains(&seen),
            "verify on the swarm lacks {seen:?}:\n{out}"
        );
    }
    eprintln!(
        "swarm_tls: up --target swarm with TLS in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let nginx = format!("{}_nginx", p.name);
    assert!(out.contains(&format!("service {nginx}")), "{out}");

    // HTTPS with the certificate of the files; HTTP hands over with a 308.
    assert_eq!(
        served_leaf(https_port, &ca),
        first,
        "the first leaf is served"
    );
    let redirect = block_on(http::redirect_probe(loopback(p.port), HOST, p.port));
    let (status, location) = redirect
        .result
        .unwrap_or_else(|e| panic!("{}: {}", redirect.url, e.reason));
    assert_eq!(status, 308, "{}", redirect.url);
    let location = location.unwrap_or_default();
    assert!(
        location.starts_with(&format!("https://{HOST}:{https_port}/")),
        "{location}"
    );

    // The key is a secret: in no service spec, a 0400 file of root's in nginx's task.
    let key = std::fs::read_to_string(&key_file).unwrap();
    let key_body = key.lines().nth(1).expect("a PEM body").to_string();
    let spec = text(&docker(&["service", "inspect", &nginx]));
    assert!(!spec.contains(&key_body) && !spec.contains("PRIVATE KEY"));
    assert!(spec.contains("tls_privkey"), "{spec}");
    let container = text(&docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={nginx}"),
    ]));
    let container = container.lines().next().expect("nginx's container");
    let mode = text(&docker(&[
        "exec",
        container,
        "stat",
        "-c",
        "%a %U",
        "/run/secrets/tls_privkey",
    ]));
    assert_eq!(mode.trim(), "400 root");
    let secrets_before = names(&p, "secret");
    assert_eq!(
        secrets_before
            .iter()
            .filter(|s| s.contains("_tls_"))
            .count(),
        2,
        "{secrets_before:?}"
    );

    // A new certificate in the same files: nginx alone is updated, with new secrets.
    let (chain, key) = ca.issue(&[HOST], 60);
    std::fs::write(&cert_file, &chain).unwrap();
    std::fs::write(&key_file, &key).unwrap();
    let plan = p.ok(&["up", "--target", "swarm", "--dry-run"]);
    assert_eq!(plan.matches("create  secret").count(), 2, "{plan}");
    assert_eq!(plan.matches("update  service").count(), 1, "{plan}");
    assert!(
        plan.contains(&format!("update  service {nginx} ")),
        "{plan}"
    );
    let t0 = Instant::now();
    let (failed, sent, gap, out) = under_https_load(
        &p,
        https_port,
        &ca,
        &["up", "--target", "swarm", "--no-verify"],
    );
    eprintln!(
        "swarm_tls: a new certificate under HTTPS load: {failed} failed of {sent} requests, outage {gap} ms, up in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    eprintln!("{out}");
    assert!(out.contains("1 updated"), "{out}");
    assert_eq!(
        served_leaf(https_port, &ca),
        leaf_der(&chain),
        "the new leaf is served"
    );
    // `status` names it, as read from the nginx task (the certificate is a secret there).
    let status = p.ok(&["status", "--target", "swarm"]);
    assert!(
        status.contains(&format!("HTTPS certificate: {HOST} issued by"))
            && (status.contains("(59 days left)") || status.contains("(60 days left)")),
        "{status}"
    );
    // nginx's stop-first update restarts its one task: the port is closed meanwhile. The test
    // reports the gap and bounds it; it is not zero (see swarm.rs's module comment).
    assert!(gap < 30_000, "outage {gap} ms:\n{out}");
    // The old certificate's secrets are gone; the others are the same objects.
    let secrets_after = names(&p, "secret");
    let tls: Vec<&String> = secrets_after
        .iter()
        .filter(|s| s.contains("_tls_"))
        .collect();
    assert_eq!(tls.len(), 2, "{secrets_after:?}");
    assert!(
        tls.iter().all(|s| !secrets_before.contains(s)),
        "{secrets_after:?}"
    );
    let others = |v: &[String]| -> Vec<String> {
        v.iter().filter(|s| !s.contains("_tls_")).cloned().collect()
    };
    assert_eq!(others(&secrets_before), others(&secrets_after));

    let out = p.ok(&["down", "--target", "swarm", "--volumes"]);
    assert!(out.contains("removed 4 services"), "{out}");
    assert_eq!(names(&p, "secret"), Vec::<String>::new());
    assert_eq!(names(&p, "service"), Vec::<String>::new());
}

/// `TLS_MODE=acme` on the swarm: the store on the manager (the daemon radar-deploy talks to),
/// the challenge answered by the nginx task (its thumbprint is in nginx.swarm.conf), the
/// certificate issued by pebble and rolled in as new secrets; `verify` passes over HTTPS.
#[test]
fn swarm_gets_its_certificate_from_an_acme_ca() {
    use crate::common::pebble::{ChallengeForwarder, Pebble, PebbleOptions};

    let _slot = common::alone();
    let p = SwarmProject::new();
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let forwarder = rt.block_on(ChallengeForwarder::start(p.port));
    let pebble = Pebble::start(PebbleOptions {
        http_port: forwarder.port,
        nonce_reject_percent: 0,
    });
    let issuing = rt.block_on(pebble.issuing_roots_pem());
    let ca_file = p.dir.path().join("acme-ca.pem");
    std::fs::write(&ca_file, format!("{}{issuing}", pebble.tls_ca_pem())).unwrap();
    let https_port = common::free_port();
    p.set_env("APP_INSTANCES", "2");
    p.set_env("TLS_MODE", "acme");
    p.set_env("PUBLIC_HOSTS", HOST);
    p.set_env("HTTPS_PORT", &https_port.to_string());
    p.set_env("ACME_DIRECTORY_URL", &pebble.directory_url());
    p.set_env("ACME_CA_FILE", &ca_file.display().to_string());

    let t0 = Instant::now();
    let up = p.run(&["up", "--target", "swarm", "--timeout", "120"]);
    let out = text(&up);
    assert!(up.status.success(), "up failed:\n{out}\n{}", pebble.logs());
    eprintln!(
        "swarm_tls: up --target swarm with an ACME certificate and verify in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    assert!(out.contains("certificate issued"), "{out}");
    assert!(
        out.contains(&format!("TLS handshake and certificate for {HOST}")),
        "{out}"
    );
    let (_, issuer) = crate::acme::served_certificate(https_port);
    assert!(
        issuer.contains("Pebble"),
        "not pebble's certificate: {issuer}"
    );
    let not_due = p.ok(&["renew", "--target", "swarm"]);
    assert!(not_due.contains("not due"), "{not_due}");
    p.ok(&["down", "--target", "swarm", "--volumes"]);
    let volumes = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("name={}_acme", p.name),
    ]);
    assert_eq!(
        text(&volumes).trim(),
        "",
        "the acme volume outlived down --volumes"
    );
}
