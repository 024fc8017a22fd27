//! Every refusal of [`check_bundle`] against certificates made here with rcgen: a root, an
//! intermediate and leaves, valid or broken in one way each.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use super::*;

/// 2027-01-15 08:00:00 UTC: the tests' "now", far from the real one on purpose.
const NOW: i64 = 1_800_000_000;

/// Test-only keys in the two legacy formats rcgen cannot write (made with `openssl ecparam
/// -genkey -noout` and `openssl genrsa -traditional`); they protect nothing.
const EC_SEC1_KEY: &str = include_str!("testdata/ec-sec1.key.pem");
const RSA_PKCS1_KEY: &str = include_str!("testdata/rsa-pkcs1.key.pem");

fn at(unix: i64) -> ASN1Time {
    ASN1Time::from_timestamp(unix).unwrap()
}

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = at(NOW - 400 * DAY).to_datetime();
    p.not_after = at(NOW + 4000 * DAY).to_datetime();
    p
}

fn root(cn: &str) -> Ca {
    let params = ca_params(cn);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        issuer: Issuer::new(params, key),
        pem,
    }
}

fn intermediate(parent: &Ca, cn: &str) -> Ca {
    let params = ca_params(cn);
    let key = KeyPair::generate().unwrap();
    let pem = params.signed_by(&key, &parent.issuer).unwrap().pem();
    Ca {
        issuer: Issuer::new(params, key),
        pem,
    }
}

fn leaf_with_key(
    ca: &Ca,
    key: &KeyPair,
    hosts: &[&str],
    not_before: i64,
    not_after: i64,
) -> String {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, hosts.first().copied().unwrap_or("leaf"));
    p.subject_alt_names = hosts
        .iter()
        .map(|h| SanType::DnsName((*h).try_into().unwrap()))
        .collect();
    p.not_before = at(not_before).to_datetime();
    p.not_after = at(not_after).to_datetime();
    p.signed_by(key, &ca.issuer).unwrap().pem()
}

/// A leaf for `hosts` valid from a day ago for `days` more, and its key.
fn leaf(ca: &Ca, hosts: &[&str], days: i64) -> (String, Secret) {
    let key = KeyPair::generate().unwrap();
    let pem = leaf_with_key(ca, &key, hosts, NOW - DAY, NOW + days * DAY);
    (pem, Secret::new(key.serialize_pem()))
}

fn hosts(h: &[&str]) -> Vec<String> {
    h.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_leaf_and_its_intermediate_in_order_are_accepted() {
    let root = root("Test Root");
    let inter = intermediate(&root, "Test Intermediate");
    let (leaf, key) = leaf(&inter, &["example.test", "www.example.test"], 60);
    let chain = format!("{leaf}{}", inter.pem);
    let info = check_bundle(&chain, &key, &hosts(&["www.example.test"]), NOW).unwrap();
    assert_eq!(info.subject, "CN=example.test");
    assert_eq!(info.issuer, "CN=Test Intermediate");
    assert_eq!(info.names, ["example.test", "www.example.test"]);
    assert_eq!(info.days_left(NOW), 60);
    assert_eq!(info.fingerprint.len(), 64);
    assert!(!info.serial.is_empty());
    // The root may be included too.
    let with_root = format!("{chain}{}", root.pem);
    assert!(check_bundle(&with_root, &key, &hosts(&["example.test"]), NOW).is_ok());
    assert_eq!(leaf_info(&with_root).unwrap(), info);
}

#[test]
fn an_expired_certificate_is_refused_with_its_date() {
    let ca = root("Test Root");
    let key = KeyPair::generate().unwrap();
    let pem = leaf_with_key(&ca, &key, &["a.test"], NOW - 100 * DAY, NOW - 10 * DAY);
    let err = check_bundle(
        &pem,
        &Secret::new(key.serialize_pem()),
        &hosts(&["a.test"]),
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, TlsError::Expired { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("expired on 2027-01-05 08:00:00 UTC"), "{msg}");
    assert!(msg.contains("now 2027-01-15 08:00:00 UTC"), "{msg}");
}

#[test]
fn a_certificate_not_yet_valid_is_refused() {
    let ca = root("Test Root");
    let key = KeyPair::generate().unwrap();
    let pem = leaf_with_key(&ca, &key, &["a.test"], NOW + DAY, NOW + 90 * DAY);
    let err = check_bundle(&pem, &Secret::new(key.serialize_pem()), &[], NOW).unwrap_err();
    assert!(matches!(err, TlsError::NotYetValid { .. }), "{err}");
    assert!(err.to_string().contains("clock"));
}

#[test]
fn an_expired_intermediate_is_named_by_position() {
    let root = root("Test Root");
    let mut params = ca_params("Old Intermediate");
    params.not_after = at(NOW - DAY).to_datetime();
    let key = KeyPair::generate().unwrap();
    let inter = Ca {
        pem: params.signed_by(&key, &root.issuer).unwrap().pem(),
        issuer: Issuer::new(params, key),
    };
    let (leaf, leaf_key) = leaf(&inter, &["a.test"], 30);
    let err = check_bundle(&format!("{leaf}{}", inter.pem), &leaf_key, &[], NOW).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("certificate 2 of the chain (CN=Old Intermediate) expired"),
        "{msg}"
    );
}

#[test]
fn a_host_the_certificate_does_not_name_is_refused_with_the_names_it_has() {
    let ca = root("Test Root");
    let (pem, key) = leaf(&ca, &["a.test", "*.b.test"], 60);
    let err = check_bundle(&pem, &key, &hosts(&["x.b.test", "c.test"]), NOW).unwrap_err();
    assert_eq!(
        err,
        TlsError::HostNotCovered {
            host: "c.test".into(),
            names: "a.test, *.b.test".into()
        }
    );
    assert!(err.to_string().contains("PUBLIC_HOSTS"));
}

#[test]
fn a_key_of_another_certificate_is_refused_without_showing_it() {
    let ca = root("Test Root");
    let (pem, _) = leaf(&ca, &["a.test"], 60);
    let (_, other_key) = leaf(&ca, &["a.test"], 60);
    let err = check_bundle(&pem, &other_key, &[], NOW).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("CN=a.test"), "{shown}");
    assert!(!shown.contains("PRIVATE"), "{shown}");
    let body: String = other_key.expose().lines().nth(1).unwrap().into();
    assert!(!shown.contains(&body));
}

#[test]
fn an_intermediate_before_its_leaf_is_refused_with_the_expected_order() {
    let root = root("Test Root");
    let inter = intermediate(&root, "Test Intermediate");
    let (leaf, key) = leaf(&inter, &["a.test"], 60);
    // The key check comes first: with the intermediate first, the key is not the leaf's.
    let swapped = format!("{}{leaf}", inter.pem);
    let err = check_bundle(&swapped, &key, &[], NOW).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    // Leaf, root, intermediate: certificate 2 is not the leaf's issuer.
    let mixed = format!("{leaf}{}{}", root.pem, inter.pem);
    let err = check_bundle(&mixed, &key, &[], NOW).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("out of order at certificate 1 (CN=a.test)")
            && msg.contains("issued by CN=Test Intermediate")
            && msg.contains("certificate 2 is CN=Test Root")
            && msg.contains("the leaf first"),
        "{msg}"
    );
}

#[test]
fn an_intermediate_with_the_right_name_but_another_key_is_refused() {
    let root = root("Test Root");
    let real = intermediate(&root, "Test Intermediate");
    let impostor = intermediate(&root, "Test Intermediate");
    let (leaf, key) = leaf(&real, &["a.test"], 60);
    let err = check_bundle(&format!("{leaf}{}", impostor.pem), &key, &[], NOW).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::ChainSignature {
                position: 1,
                next: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn garbage_is_refused_as_no_certificate_or_undecodable() {
    let key = Secret::new(KeyPair::generate().unwrap().serialize_pem());
    assert_eq!(
        check_bundle("hello\n", &key, &[], NOW),
        Err(TlsError::NoCertificate)
    );
    assert_eq!(leaf_info(""), Err(TlsError::NoCertificate));
    let broken = "-----BEGIN CERTIFICATE-----\n%%%not base64%%%\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        leaf_info(broken),
        Err(TlsError::BadPem { index: 1, .. })
    ));
    let unterminated = "-----BEGIN CERTIFICATE-----\nAAAA\n";
    assert!(matches!(
        leaf_info(unterminated),
        Err(TlsError::BadPem { index: 1, .. })
    ));
    let not_x509 = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        leaf_info(not_x509),
        Err(TlsError::BadCertificate { index: 1, .. })
    ));
    assert!(leaf_info_der(b"\x30\x03\x02\x01").is_err());
    assert!(leaf_info_der(&[]).is_err());
}

#[test]
fn a_certificate_file_with_a_second_certificate_garbled_names_it() {
    let ca = root("Test Root");
    let (leaf, key) = leaf(&ca, &["a.test"], 60);
    let chain = format!("{leaf}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    assert!(matches!(
        check_bundle(&chain, &key, &[], NOW),
        Err(TlsError::BadCertificate { index: 2, .. })
    ));
}

#[test]
fn a_private_key_inside_the_certificate_file_is_refused() {
    let ca = root("Test Root");
    let (leaf, key) = leaf(&ca, &["a.test"], 60);
    let err = check_bundle(&format!("{leaf}{}", key.expose()), &key, &[], NOW).unwrap_err();
    assert!(
        err.to_string()
            .contains("the private key belongs in TLS_KEY_FILE only"),
        "{err}"
    );
}

#[test]
fn key_files_that_hold_no_single_plain_key_are_refused() {
    let ca = root("Test Root");
    let (leaf, key) = leaf(&ca, &["a.test"], 60);
    let check = |k: &str| check_bundle(&leaf, &Secret::new(k), &[], NOW).unwrap_err();
    assert_eq!(check(""), TlsError::NoKey);
    assert!(matches!(check(&leaf), TlsError::NotAKey { index: 1, .. }));
    assert_eq!(
        check(&format!("{}{}", key.expose(), key.expose())),
        TlsError::SeveralKeys { count: 2 }
    );
    let encrypted =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
    assert_eq!(check(encrypted), TlsError::EncryptedKey);
    let junk = "-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----\n";
    let err = check(junk);
    assert!(matches!(err, TlsError::UnreadableKey { .. }));
    assert!(err.to_string().contains("openssl pkcs8 -topk8 -nocrypt"));
}

#[test]
fn sec1_ec_and_pkcs1_rsa_keys_are_read() {
    let ca = root("Test Root");
    for key_pem in [EC_SEC1_KEY, RSA_PKCS1_KEY] {
        let key = KeyPair::from_pem(key_pem).unwrap();
        let pem = leaf_with_key(&ca, &key, &["a.test"], NOW - DAY, NOW + DAY);
        let secret = Secret::new(key_pem);
        check_bundle(&pem, &secret, &hosts(&["a.test"]), NOW).unwrap();
        // `openssl ecparam -genkey` writes the curve's parameters before the key.
        let with_params = format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{key_pem}"
        );
        check_bundle(&pem, &Secret::new(with_params), &[], NOW).unwrap();
        // And the other key does not pass for this one.
        let other = if key_pem == EC_SEC1_KEY {
            RSA_PKCS1_KEY
        } else {
            EC_SEC1_KEY
        };
        assert!(matches!(
            check_bundle(&pem, &Secret::new(other), &[], NOW),
            Err(TlsError::KeyMismatch { .. })
        ));
    }
}

fn named(names: &[&str]) -> CertInfo {
    CertInfo {
        subject: "CN=x".into(),
        issuer: "CN=ca".into(),
        names: hosts(names),
        not_before: NOW - DAY,
        not_after: NOW + 60 * DAY,
        serial: "01".into(),
        fingerprint: String::new(),
    }
}

#[test]
fn names_match_exactly_or_by_one_label_wildcard_ignoring_case() {
    let c = named(&["Example.TEST", "*.apps.test"]);
    assert!(c.covers("example.test"));
    assert!(c.covers("EXAMPLE.test."));
    assert!(c.covers("a.apps.test"));
    assert!(c.covers("A.Apps.Test"));
    assert!(
        !c.covers("apps.test"),
        "a wildcard does not cover its parent"
    );
    assert!(!c.covers("a.b.apps.test"), "a wildcard is one label");
    assert!(!c.covers(".apps.test"));
    assert!(!c.covers("www.example.test"));
    assert!(!c.covers(""));
    assert!(!named(&["a*.test"]).covers("ab.test"));
    assert!(!named(&["*"]).covers("localhost"));
    assert!(!named(&["*."]).covers("a."));
    assert!(!named(&[]).covers("a.test"));
}

#[test]
fn days_left_round_down_and_go_negative_once_expired() {
    let mut c = named(&[]);
    c.not_after = NOW + 14 * DAY - 1;
    assert_eq!(c.days_left(NOW), 13);
    c.not_after = NOW + 14 * DAY;
    assert_eq!(c.days_left(NOW), 14);
    c.not_after = NOW - 1;
    assert_eq!(c.days_left(NOW), -1);
}

#[test]
fn the_placeholder_is_servable_for_its_hosts_and_known_as_such() {
    let hs = hosts(&["example.test", "www.example.test"]);
    let (chain, key) = placeholder(&hs, NOW);
    assert!(!format!("{key:?}").contains("PRIVATE"));
    let info = check_bundle(&chain, &key, &hs, NOW).unwrap();
    assert!(is_placeholder(&info));
    assert_eq!(info.subject, format!("CN={PLACEHOLDER_CN}"));
    assert_eq!(info.days_left(NOW), 90);
    assert!(info.not_before < NOW);
    // A host that is not a DNS name is left out rather than failing.
    let (chain, _) = placeholder(&hosts(&["ok.test", "bad host ü"]), NOW);
    assert_eq!(leaf_info(&chain).unwrap().names, ["ok.test"]);
    // A real certificate is not taken for one.
    let ca = root("Test Root");
    assert!(!is_placeholder(
        &leaf_info(&leaf(&ca, &["a.test"], 9).0).unwrap()
    ));
}

#[test]
fn renewal_is_due_without_a_real_certificate_for_every_host_with_30_days_left() {
    let hs = hosts(&["a.test"]);
    let good = named(&["a.test"]);
    assert_eq!(renewal_due(Some(&good), &hs, NOW, false), None);
    assert_eq!(
        renewal_due(Some(&good), &hs, NOW, true).as_deref(),
        Some("renewal forced (--force)")
    );
    assert_eq!(
        renewal_due(None, &hs, NOW, false).as_deref(),
        Some("no certificate yet")
    );
    let placeholder = leaf_info(&placeholder(&hs, NOW).0).unwrap();
    assert!(renewal_due(Some(&placeholder), &hs, NOW, false)
        .unwrap()
        .contains("placeholder"));
    let more = hosts(&["a.test", "b.test"]);
    assert_eq!(
        renewal_due(Some(&good), &more, NOW, false).as_deref(),
        Some("the certificate does not cover b.test (it names a.test)")
    );
    let mut soon = good.clone();
    soon.not_after = NOW + 30 * DAY;
    assert_eq!(renewal_due(Some(&soon), &hs, NOW, false), None);
    soon.not_after = NOW + 30 * DAY - 1;
    assert!(renewal_due(Some(&soon), &hs, NOW, false)
        .unwrap()
        .starts_with("the certificate expires in 29 days (on 2027-02-14"));
    soon.not_after = NOW - DAY;
    assert_eq!(
        renewal_due(Some(&soon), &hs, NOW, false).as_deref(),
        Some("the certificate expired on 2027-01-14 08:00:00 UTC")
    );
}

#[test]
fn utc_dates_are_plain_and_never_fail() {
    assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(utc(NOW), "2027-01-15 08:00:00 UTC");
    assert_eq!(utc(i64::MAX), format!("{} (Unix time)", i64::MAX));
}
