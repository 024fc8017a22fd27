//! The ACME client against a real test CA (pebble, see `common::pebble`), and its store on a
//! Docker volume against the real daemon.
//!
//! The HTTP-01 answer in the client-level tests comes from the test's own responder
//! (`TOKEN.THUMBPRINT`, exactly what nginx's challenge location returns). The full-stack test
//! ([`up_issues_through_nginx_renew_reloads_under_load_and_a_refused_renewal_keeps_the_certificate`])
//! has pebble validate through nginx itself, by way of a [`ChallengeForwarder`] it can switch off.

use std::time::Instant;

use radar_deploy::acme::{self, AcmeSettings};
use radar_deploy::ui::Ui;

use crate::common::pebble::{ChallengeForwarder, Http01Responder, Pebble, PebbleOptions};

fn ui() -> Ui {
    Ui::new(true, false, 1)
}

fn settings(pebble: &Pebble, hosts: &[&str]) -> AcmeSettings {
    AcmeSettings {
        directory_url: pebble.directory_url(),
        email: Some("ops@radar.test".into()),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        extra_roots_pem: Some(pebble.tls_ca_pem().to_string()),
    }
}

/// The certificates of a PEM chain, DER, leaf first.
fn chain_der(chain_pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(chain_pem.as_bytes())
        .map(|p| p.expect("a PEM block").contents)
        .collect()
}

fn dns_names(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("an X.509 certificate");
    let san = cert
        .subject_alternative_name()
        .expect("one SAN extension")
        .expect("a SAN extension");
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_gets_a_certificate_for_every_host_from_pebble() {
    let account_key = acme::new_account_key().unwrap();
    let thumbprint = acme::thumbprint(&account_key).unwrap();
    let responder = Http01Responder::start(&thumbprint, true).await;
    // Pebble's default share of rejected nonces stays on: instant-acme must retry badNonce.
    let pebble = Pebble::start(PebbleOptions {
        http_port: responder.port,
        nonce_reject_percent: 5,
    });
    let hosts = ["app.radar.test", "www.radar.test"];
    let s = settings(&pebble, &hosts);

    let started = Instant::now();
    let issued = acme::issue(&s, &account_key, &ui())
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", pebble.logs()));
    let first = started.elapsed();
    println!(
        "time to first certificate against pebble (issue start to chain in hand, account created): {:.2}s",
        first.as_secs_f64()
    );

    let chain = chain_der(&issued.chain_pem);
    assert!(
        chain.len() >= 2,
        "leaf and intermediate: {}",
        issued.chain_pem
    );
    let mut names = dns_names(&chain[0]);
    names.sort();
    assert_eq!(names, hosts);
    assert!(
        responder.answered.load(std::sync::atomic::Ordering::SeqCst) >= hosts.len(),
        "each host was validated through the responder"
    );
    // The key is the leaf's: its public key is the one in the certificate.
    let key = rcgen::KeyPair::from_pem(issued.key_pem.expose()).expect("the key is PEM");
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    assert_eq!(
        leaf.public_key().subject_public_key.data.as_ref(),
        key.public_key_raw()
    );
    assert!(
        !format!("{issued:?}").contains("PRIVATE KEY"),
        "no key in Debug"
    );
    // The chain ends at pebble's issuing CA: its intermediate signed the leaf.
    let roots = pebble.issuing_roots_pem().await;
    let roots = chain_der(&roots);
    let (_, intermediate) = x509_parser::parse_x509_certificate(&roots[1]).unwrap();
    leaf.verify_signature(Some(intermediate.public_key()))
        .expect("the leaf is signed by pebble's intermediate");

    // The same key again: the account is found (not created), a second certificate issued.
    let started = Instant::now();
    let again = acme::issue(&s, &account_key, &ui())
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", pebble.logs()));
    println!(
        "time to a renewed certificate (existing account): {:.2}s",
        started.elapsed().as_secs_f64()
    );
    assert_ne!(again.chain_pem, issued.chain_pem);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_challenge_answer_is_refused_naming_the_host_the_problem_and_what_to_check() {
    let account_key = acme::new_account_key().unwrap();
    let thumbprint = acme::thumbprint(&account_key).unwrap();
    // Answers 404: a host whose nginx does not serve the challenge location.
    let responder = Http01Responder::start(&thumbprint, false).await;
    let pebble = Pebble::start(PebbleOptions {
        http_port: responder.port,
        nonce_reject_percent: 0,
    });
    let err = acme::issue(
        &settings(&pebble, &["shop.radar.test"]),
        &account_key,
        &ui(),
    )
    .await
    .expect_err("a 404 challenge answer must be refused");
    let text = format!("{err:#}");
    println!("{text}");
    for expected in [
        "shop.radar.test",
        "urn:ietf:params:acme:error:unauthorized",
        "404",
        "DNS of shop.radar.test points at this deployment",
        "port 80",
        "/.well-known/acme-challenge/TOKEN",
        &thumbprint,
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    assert!(!text.contains("PRIVATE KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_host_is_refused_as_a_connection_problem() {
    let account_key = acme::new_account_key().unwrap();
    // Nothing listens where the CA connects: port 80 closed, or DNS pointing elsewhere.
    let closed = crate::common::free_port();
    let pebble = Pebble::start(PebbleOptions {
        http_port: closed,
        nonce_reject_percent: 0,
    });
    let started = Instant::now();
    let err = acme::issue(&settings(&pebble, &["api.radar.test"]), &account_key, &ui())
        .await
        .expect_err("an unreachable host must be refused");
    let text = format!("{err:#}");
    println!("{text}");
    assert!(text.contains("api.radar.test"), "{text}");
    assert!(
        text.contains("urn:ietf:params:acme:error:connection"),
        "{text}"
    );
    assert!(
        started.elapsed() < acme::ISSUE_DEADLINE,
        "a refusal is reported when the CA gives it, not at the deadline"
    );
}

/// The forwarder full-stack tests put between pebble and nginx: through it the host
/// validates, switched to refusing it does not, and switched back it does again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_challenge_forwarder_passes_validation_through_and_can_refuse_it() {
    let account_key = acme::new_account_key().unwrap();
    let thumbprint = acme::thumbprint(&account_key).unwrap();
    let responder = Http01Responder::start(&thumbprint, true).await;
    let forwarder = ChallengeForwarder::start(responder.port).await;
    let pebble = Pebble::start(PebbleOptions {
        http_port: forwarder.port,
        nonce_reject_percent: 0,
    });
    let s = settings(&pebble, &["app.radar.test"]);
    acme::issue(&s, &account_key, &ui())
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", pebble.logs()));
    forwarder.refuse(true);
    let err = acme::issue(&s, &account_key, &ui())
        .await
        .expect_err("refused while the forwarder refuses");
    assert!(
        format!("{err:#}").contains("urn:ietf:params:acme:error:connection"),
        "{err:#}"
    );
    forwarder.refuse(false);
    acme::issue(&s, &account_key, &ui())
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", pebble.logs()));
}

#[test]
fn a_directory_with_an_untrusted_certificate_names_the_fix() {
    // No ACME_CA_FILE: pebble's test certificate is not trusted by the platform.
    let pebble = Pebble::start(PebbleOptions {
        http_port: crate::common::free_port(),
        nonce_reject_percent: 0,
    });
    let mut s = settings(&pebble, &["app.radar.test"]);
    s.extra_roots_pem = None;
    let key = acme::new_account_key().unwrap();
    let err = crate::common::block_on(acme::issue(&s, &key, &ui())).expect_err("untrusted");
    let text = format!("{err:#}");
    assert!(text.contains("ACME_CA_FILE"), "{text}");
    assert!(text.contains(&pebble.directory_url()), "{text}");
}

/// Removes the project's volume and any container left with its label, also when the test
/// fails.
struct VolumeCleanup(String);

impl Drop for VolumeCleanup {
    fn drop(&mut self) {
        let label = format!("label=com.docker.compose.project={}", self.0);
        let out = crate::common::docker(&["ps", "-aq", "--filter", &label]);
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = crate::common::docker(&["rm", "-f", "-v", id]);
        }
        let _ = crate::common::docker(&["volume", "rm", "-f", &acme::volume_name(&self.0)]);
    }
}

#[test]
fn the_acme_store_round_trips_through_the_projects_volume() {
    crate::common::require_docker();
    let _slot = crate::common::shared();
    let project = format!("acme-store-{}", std::process::id());
    let _cleanup = VolumeCleanup(project.clone());
    let image = crate::common::image("NGINX_IMAGE", "radar-offline/nginx:bookworm");
    crate::common::block_on(async {
        let d = crate::common::connect_local().await.expect("daemon");
        let volume = acme::volume_name(&project);

        // Nothing yet: an empty store, and reading it creates no volume.
        let empty = acme::load_store(&d, &project, &image).await.unwrap();
        assert!(empty.account_key.is_none() && empty.chain_pem.is_none());
        assert!(!d.volume_exists(&volume).await.unwrap());

        let account_key = acme::new_account_key().unwrap();
        acme::save_account(
            &d,
            &project,
            &image,
            &account_key,
            "https://ca.example/dir",
            Some("ops@radar.test"),
        )
        .await
        .unwrap();
        let issued = acme::Issued {
            chain_pem: "-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n".into(),
            key_pem: acme::new_account_key().unwrap(),
        };
        acme::save_certificate(&d, &project, &image, &issued)
            .await
            .unwrap();

        let store = acme::load_store(&d, &project, &image).await.unwrap();
        assert_eq!(
            store.account_key.as_ref().map(|k| k.expose()),
            Some(account_key.expose())
        );
        assert_eq!(store.chain_pem.as_deref(), Some(issued.chain_pem.as_str()));
        assert_eq!(
            store.key_pem.as_ref().map(|k| k.expose()),
            Some(issued.key_pem.expose())
        );
        assert_eq!(
            store.directory_url.as_deref(),
            Some("https://ca.example/dir")
        );
        assert_eq!(store.email.as_deref(), Some("ops@radar.test"));
        assert!(store.account_key_for("https://ca.example/dir").is_some());

        // A new certificate replaces the old one whole; the account stays.
        let renewed = acme::Issued {
            chain_pem: "renewed chain".into(),
            key_pem: acme::new_account_key().unwrap(),
        };
        acme::save_certificate(&d, &project, &image, &renewed)
            .await
            .unwrap();
        let store = acme::load_store(&d, &project, &image).await.unwrap();
        assert_eq!(store.chain_pem.as_deref(), Some("renewed chain"));
        assert_eq!(
            store.account_key.as_ref().map(|k| k.expose()),
            Some(account_key.expose())
        );

        // The helper's image must be on the daemon; its absence is named as such.
        let err = acme::load_store(&d, &project, "radar-deploy/no-such-image:0")
            .await
            .expect_err("no such image");
        assert!(
            format!("{err:#}").contains("image radar-deploy/no-such-image:0 not found"),
            "{err:#}"
        );

        // The volume carries the project's labels (so `down --volumes` finds it), and no
        // helper container is left behind.
        let volumes = d.list_volumes(&project).await.unwrap();
        assert_eq!(
            volumes.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            [volume.as_str()]
        );
        assert!(d.list_containers(&project).await.unwrap().is_empty());
    });

    // The keys are readable by their owner only.
    let volume = acme::volume_name(&project);
    let out = crate::common::docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/v"),
        "--entrypoint",
        "stat",
        &image,
        "-c",
        "%a %n",
        "/v/account.key",
        "/v/privkey.pem",
        "/v/fullchain.pem",
        "/v/meta.json",
    ]);
    let modes = crate::common::text(&out);
    assert!(out.status.success(), "{modes}");
    assert_eq!(
        modes.lines().collect::<Vec<_>>(),
        [
            "600 /v/account.key",
            "600 /v/privkey.pem",
            "644 /v/fullchain.pem",
            "644 /v/meta.json"
        ]
    );
}

/// The subject's serial and issuer of the certificate served at 127.0.0.1:`port` for
/// app.radar.test: (`serial=…`, `issuer=…`).
pub(crate) fn served_certificate(port: u16) -> (String, String) {
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{port} -servername {FULL_STACK_HOST} </dev/null 2>/dev/null | openssl x509 -noout -serial -issuer"
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("openssl");
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let line = |prefix: &str| {
        printed
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| {
                panic!(
                    "no certificate served on {port}: {}",
                    crate::common::text(&out)
                )
            })
            .to_string()
    };
    (line("serial="), line("issuer="))
}

const FULL_STACK_HOST: &str = "app.radar.test";

fn nginx_id(project: &str) -> String {
    let out = crate::common::docker(&["inspect", "-f", "{{.Id}}", &format!("{project}-nginx-1")]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `TLS_MODE=acme` end to end on one host, against pebble validating through the stack's own
/// nginx (pebble's HTTP-01 port is a forwarder to HTTP_PORT; its mock DNS answers 127.0.0.1):
/// - `up` starts nginx on a self-signed placeholder, gets a real certificate and verifies over
///   HTTPS with it;
/// - `renew` says it is not due; `renew --force` under HTTPS load reloads nginx (same
///   container) with a new certificate and no request fails;
/// - with the CA unable to reach the host, `renew --force` fails naming the host and the CA's
///   problem, and the certificate served stays the same;
/// - `down --volumes` removes the ACME volume (account key, certificate) too.
#[test]
fn up_issues_through_nginx_renew_reloads_under_load_and_a_refused_renewal_keeps_the_certificate() {
    use radar_deploy::drill::load::{Load, LoadOptions};
    use radar_deploy::http::HttpsRoute;
    use std::time::Duration;

    let _slot = crate::common::shared();
    let p = crate::common::HostProject::new("rdacme", 2);
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let forwarder = rt.block_on(ChallengeForwarder::start(p.port));
    let pebble = Pebble::start(PebbleOptions {
        http_port: forwarder.port,
        nonce_reject_percent: 0,
    });
    // One file trusted by the ACME client (pebble's directory) and by verify and the load
    // (pebble's issuing CA).
    let issuing = rt.block_on(pebble.issuing_roots_pem());
    let trusted = format!("{}{issuing}", pebble.tls_ca_pem());
    let ca_file = p.dir.path().join("acme-ca.pem");
    std::fs::write(&ca_file, &trusted).expect("write ACME_CA_FILE");
    let https_port = crate::common::free_port();
    p.set_env("TLS_MODE", "acme");
    p.set_env("PUBLIC_HOSTS", FULL_STACK_HOST);
    p.set_env("HTTPS_PORT", &https_port.to_string());
    p.set_env("ACME_DIRECTORY_URL", &pebble.directory_url());
    p.set_env("ACME_CA_FILE", &ca_file.display().to_string());
    p.set_env("ACME_EMAIL", "ops@radar.test");

    // `up`: placeholder, nginx, the challenge answered by nginx, the certificate reloaded in,
    // then verify over HTTPS.
    let started = Instant::now();
    let up = p.run(&["up"]);
    let up_took = started.elapsed();
    let up_text = crate::common::text(&up);
    assert!(
        up.status.success(),
        "up failed:\n{up_text}\n{}",
        pebble.logs()
    );
    assert!(up_text.contains("certificate issued"), "{up_text}");
    assert!(
        up_text.contains(&format!("https://{FULL_STACK_HOST}:{https_port}")),
        "verify went over HTTPS:\n{up_text}"
    );
    let (first_serial, issuer) = served_certificate(https_port);
    assert!(
        issuer.contains("Pebble"),
        "the served certificate is pebble's, not the placeholder: {issuer}"
    );

    // Not due: a certificate of pebble's lasts far longer than the 30-day renewal window.
    let not_due = p.ok(&["renew"]);
    assert!(not_due.contains("not due"), "{not_due}");
    assert_eq!(served_certificate(https_port).0, first_serial);

    // Forced, under load over HTTPS: a reload, not a recreate, and no failed request.
    let before_id = nginx_id(&p.name);
    let route = HttpsRoute {
        host: FULL_STACK_HOST.into(),
        addr: Some("127.0.0.1".parse().expect("an address")),
        extra_roots_pem: Some(issuing.clone()),
        https_port,
    };
    let mut opts = LoadOptions::reference(route.base_url(), 8);
    opts.https = Some(route);
    let retries_before = radar_deploy::http::closed_connection_retries();
    let load = rt
        .block_on(async { Load::start(&opts) })
        .expect("start the load");
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let renewed = p.run(&["renew", "--force"]);
    let renew_took = started.elapsed();
    std::thread::sleep(Duration::from_millis(1500));
    let r = rt.block_on(load.stop());
    let retried = radar_deploy::http::closed_connection_retries() - retries_before;
    // `up`'s own account of the order (account, challenge, finalize), and its stack's.
    let said = |marker: &str| {
        up_text
            .lines()
            .find(|l| l.contains(marker))
            .unwrap_or("?")
            .trim()
            .to_string()
    };
    eprintln!(
        "up said: {:?}; {:?}",
        said(" is up: "),
        said("ACME: certificate for")
    );
    let f = crate::scale::figures(&(r, retried));
    let renewed_text = crate::common::text(&renewed);
    eprintln!(
        "ACME full stack: up (with first certificate and verify) {:.1} s; renew --force under HTTPS load {:.1} s: {} requests, {} failed, {} sent again (refused unprocessed by the reload)",
        up_took.as_secs_f64(),
        renew_took.as_secs_f64(),
        f.requests,
        f.failed,
        retried
    );
    assert!(
        renewed.status.success(),
        "renew --force failed:\n{renewed_text}\n{}",
        pebble.logs()
    );
    assert!(f.requests > 50, "the load ran: {} requests", f.requests);
    assert_eq!(f.failed, 0, "failed requests: {}", f.failures);
    assert_eq!(
        nginx_id(&p.name),
        before_id,
        "nginx was recreated, not reloaded"
    );
    let (second_serial, _) = served_certificate(https_port);
    assert_ne!(
        second_serial, first_serial,
        "the new certificate is not served"
    );

    // The CA cannot reach the host: refused, named, and the certificate served stays.
    forwarder.refuse(true);
    let started = Instant::now();
    let refused = p.run(&["renew", "--force"]);
    let refused_took = started.elapsed();
    let refused_text = crate::common::text(&refused);
    eprintln!(
        "refused renewal, reported after {:.1} s (exit {:?}):\n{refused_text}",
        refused_took.as_secs_f64(),
        refused.status.code()
    );
    assert!(
        !refused.status.success(),
        "renew --force must fail while the CA cannot reach the host:\n{refused_text}"
    );
    for expected in [
        FULL_STACK_HOST,
        "urn:ietf:params:acme:error:connection",
        "keeps serving the current certificate",
    ] {
        assert!(
            refused_text.contains(expected),
            "{expected:?} missing from:\n{refused_text}"
        );
    }
    assert_eq!(served_certificate(https_port).0, second_serial);
    forwarder.refuse(false);

    // With the stack stopped nothing can answer the CA: `renew` says so, and orders nothing.
    p.ok(&["down"]);
    let stopped = p.run(&["renew", "--force"]);
    let stopped_text = crate::common::text(&stopped);
    assert_eq!(stopped.status.code(), Some(2), "{stopped_text}");
    assert!(
        stopped_text.contains("nginx is not running") && stopped_text.contains("radar-deploy up"),
        "{stopped_text}"
    );
    assert!(!stopped_text.contains("ACME: requesting"), "{stopped_text}");

    // `down --volumes`: the account key and certificate go with the project's other volumes.
    p.ok(&["down", "--volumes"]);
    let volume = acme::volume_name(&p.name);
    let out = crate::common::docker(&["volume", "ls", "-q", "--filter", &format!("name={volume}")]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "",
        "the ACME volume {volume} outlived down --volumes"
    );
}

/// The first `up` of a deployment the CA cannot reach (port 80 closed to it, DNS elsewhere):
/// the stack comes up on the self-signed placeholder, but `up` fails naming the host and the
/// CA's problem; once the CA gets through, the next `up` issues the certificate (nothing
/// recreated) and verifies over HTTPS. Then: `down` and `up` reuse the stored certificate; a
/// host added to PUBLIC_HOSTS gets a new certificate covering both, by a reload; another
/// ACME_DIRECTORY_URL gets one from that CA at once.
#[test]
fn a_first_up_the_ca_cannot_validate_fails_on_the_placeholder_the_next_up_issues_and_a_new_host_reissues(
) {
    let _slot = crate::common::shared();
    let p = crate::common::HostProject::new("rdacmefirst", 1);
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let forwarder = rt.block_on(ChallengeForwarder::start(p.port));
    forwarder.refuse(true);
    let pebble = Pebble::start(PebbleOptions {
        http_port: forwarder.port,
        nonce_reject_percent: 0,
    });
    let issuing = rt.block_on(pebble.issuing_roots_pem());
    let ca_file = p.dir.path().join("acme-ca.pem");
    std::fs::write(&ca_file, format!("{}{issuing}", pebble.tls_ca_pem())).expect("write");
    let https_port = crate::common::free_port();
    p.set_env("TLS_MODE", "acme");
    p.set_env("PUBLIC_HOSTS", FULL_STACK_HOST);
    p.set_env("HTTPS_PORT", &https_port.to_string());
    p.set_env("ACME_DIRECTORY_URL", &pebble.directory_url());
    p.set_env("ACME_CA_FILE", &ca_file.display().to_string());

    let refused = p.run(&["up"]);
    let refused_text = crate::common::text(&refused);
    eprintln!(
        "first up, the CA refused (exit {:?}):\n{refused_text}",
        refused.status.code()
    );
    assert!(
        !refused.status.success(),
        "up must fail while the CA cannot validate:\n{refused_text}"
    );
    for expected in [
        FULL_STACK_HOST,
        "urn:ietf:params:acme:error:connection",
        "placeholder",
        "`radar-deploy renew`",
    ] {
        assert!(
            refused_text.contains(expected),
            "{expected:?} missing from:\n{refused_text}"
        );
    }
    // The stack is up and serving HTTPS on the placeholder meanwhile.
    let (_, issuer) = served_certificate(https_port);
    assert!(!issuer.contains("Pebble"), "{issuer}");
    let nginx = nginx_id(&p.name);

    forwarder.refuse(false);
    let up = p.run(&["up"]);
    let up_text = crate::common::text(&up);
    assert!(
        up.status.success(),
        "up failed:\n{up_text}\n{}",
        pebble.logs()
    );
    assert!(up_text.contains("certificate issued"), "{up_text}");
    let (issued_serial, issuer) = served_certificate(https_port);
    assert!(issuer.contains("Pebble"), "{issuer}");
    assert_eq!(nginx_id(&p.name), nginx, "nginx was recreated:\n{up_text}");

    // `down` keeps the ACME volume: the next `up` serves the stored certificate and asks the
    // CA for nothing (a real CA's rate limits count every certificate).
    p.ok(&["down"]);
    let up = p.ok(&["up", "--no-verify"]);
    assert!(!up.contains("ACME: requesting"), "{up}");
    assert_eq!(served_certificate(https_port).0, issued_serial, "{up}");

    // Another public host: the certificate no longer covers PUBLIC_HOSTS, so `up` gets one
    // that does, by a reload.
    let nginx = nginx_id(&p.name);
    p.set_env("PUBLIC_HOSTS", &format!("{FULL_STACK_HOST},www.radar.test"));
    let up = p.ok(&["up"]);
    assert!(up.contains("certificate issued"), "{up}");
    assert_eq!(nginx_id(&p.name), nginx, "nginx was recreated:\n{up}");
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{https_port} -servername www.radar.test </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName"
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("openssl");
    let san = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        san.contains("DNS:app.radar.test") && san.contains("DNS:www.radar.test"),
        "{san}"
    );

    // Another CA (staging to production): ACME_DIRECTORY_URL changed, `up` gets a certificate
    // from the new one at once, though the old one has years left.
    let (_, old_issuer) = served_certificate(https_port);
    let other = Pebble::start(PebbleOptions {
        http_port: forwarder.port,
        nonce_reject_percent: 0,
    });
    let other_issuing = rt.block_on(other.issuing_roots_pem());
    std::fs::write(
        &ca_file,
        format!(
            "{}{issuing}{}{other_issuing}",
            pebble.tls_ca_pem(),
            other.tls_ca_pem()
        ),
    )
    .expect("write");
    p.set_env("ACME_DIRECTORY_URL", &other.directory_url());
    let up = p.ok(&["up"]);
    assert!(up.contains("certificate issued"), "{up}");
    let (_, new_issuer) = served_certificate(https_port);
    assert_ne!(
        new_issuer, old_issuer,
        "still the old CA's certificate:\n{up}"
    );
    assert_eq!(nginx_id(&p.name), nginx, "nginx was recreated:\n{up}");
}
