use std::io::Write;

use super::*;

const STRONG_PG: &str = "Vx8rT2qLm9ZpK4wN7bYc3HdQ";
const STRONG_REDIS: &str = "aJ5kP0sW8eR3tY6uI1oL4zXc";
const STRONG_SESSION: &str = "q7W2e9R4t1Y6u3I8o5P0aS7dF2gH9jK4lZ";
const STRONG_KEY: &str = "M3n8B1v6C9x4Z7l2K5j0H3g8F1d6S9a4Qw";

fn valid_file() -> String {
    format!(
        "POSTGRES_USER=reporadar\nPOSTGRES_DB=reporadar\nPOSTGRES_PASSWORD={STRONG_PG}\n\
         REDIS_PASSWORD={STRONG_REDIS}\nSESSION_SECRET={STRONG_SESSION}\nENCRYPTION_KEY={STRONG_KEY}\n"
    )
}

struct Case {
    _dir: tempfile::TempDir,
    inputs: Inputs,
}

fn case(file: &str) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.multi-instance");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(file.as_bytes())
        .unwrap();
    Case {
        _dir: dir,
        inputs: Inputs {
            env_file: path,
            project: "reporadar".into(),
            process_env: vec![],
            overrides: Overrides::default(),
        },
    }
}

fn problems(c: &Case) -> Vec<Problem> {
    resolve(&c.inputs).expect_err("should be refused").problems
}

fn problem_for<'a>(ps: &'a [Problem], var: &str) -> &'a Problem {
    ps.iter()
        .find(|p| p.variable == var)
        .unwrap_or_else(|| panic!("no problem names {var}: {ps:#?}"))
}

#[test]
fn valid_file_resolves_with_defaults() {
    let cfg = resolve(&case(&valid_file()).inputs).unwrap();
    assert_eq!(cfg.http_port.get(), 80);
    assert_eq!(cfg.app.instances.get(), 3);
    assert_eq!(cfg.lb_strategy, LbStrategy::LeastConn);
    assert_eq!(cfg.app.image.as_str(), vars::REFERENCE_APP_IMAGE);
    assert!(!cfg.ha_enabled);
    assert_eq!(cfg.sentinel.quorum, 2);
    assert_eq!(cfg.sentinel.down_after_ms, 5000);
    assert_eq!(cfg.sentinel.failover_timeout_ms, 10000);
}

#[test]
fn debug_output_holds_no_secret() {
    let cfg = resolve(&case(&valid_file()).inputs).unwrap();
    let debug = format!("{cfg:?}");
    for s in [STRONG_PG, STRONG_REDIS, STRONG_SESSION, STRONG_KEY] {
        assert!(!debug.contains(s), "secret leaked in Debug");
    }
}

#[test]
fn missing_secrets_are_all_reported_together() {
    let c = case("POSTGRES_USER=reporadar\nPOSTGRES_DB=reporadar\n");
    let ps = problems(&c);
    for var in [
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "SESSION_SECRET",
        "ENCRYPTION_KEY",
    ] {
        assert!(problem_for(&ps, var).message.contains("not set"));
    }
}

#[test]
fn missing_env_file_hints_at_init() {
    let mut c = case("");
    c.inputs.env_file = c.inputs.env_file.with_file_name("nope");
    let e = resolve(&c.inputs).unwrap_err();
    assert!(e.env_file_missing);
    assert!(e.to_string().contains("radar-deploy init"));
}

#[test]
fn short_secret_is_refused_with_its_length() {
    let c = case(&valid_file().replace(STRONG_PG, "short1"));
    let p = problem_for(&problems(&c), "POSTGRES_PASSWORD").clone();
    assert!(p.message.contains("6 characters"), "{p}");
    assert_eq!(
        p.origin,
        Some(Origin::File {
            path: c.inputs.env_file.clone(),
            line: 3
        })
    );
}

#[test]
fn low_entropy_secret_is_refused() {
    let c = case(&valid_file().replace(STRONG_SESSION, &"ab".repeat(20)));
    assert!(problem_for(&problems(&c), "SESSION_SECRET")
        .message
        .contains("entropy"));
}

#[test]
fn example_file_placeholders_are_refused() {
    let c = case(&vars::example_file());
    let ps = problems(&c);
    for var in [
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "SESSION_SECRET",
        "ENCRYPTION_KEY",
    ] {
        assert!(
            problem_for(&ps, var).message.contains("placeholder"),
            "{var}"
        );
    }
}

#[test]
fn same_password_twice_is_refused() {
    let c = case(&valid_file().replace(STRONG_REDIS, STRONG_PG));
    assert!(problem_for(&problems(&c), "REDIS_PASSWORD")
        .message
        .contains("same as POSTGRES_PASSWORD"));
}

#[test]
fn instance_count_outside_range_is_refused() {
    for bad in ["0", "65", "-1", "many"] {
        let c = case(&format!("{}APP_INSTANCES={bad}\n", valid_file()));
        assert!(
            problem_for(&problems(&c), "APP_INSTANCES")
                .message
                .contains("between 1 and 64"),
            "{bad}"
        );
    }
}

#[test]
fn ports_outside_range_are_refused() {
    for (var, bad) in [
        ("HTTP_PORT", "0"),
        ("HTTP_PORT", "70000"),
        ("APP_PORT", "x"),
    ] {
        let c = case(&format!("{}{var}={bad}\n", valid_file()));
        assert!(problem_for(&problems(&c), var)
            .message
            .contains("between 1 and 65535"));
    }
}

#[test]
fn unknown_lb_strategy_is_refused() {
    let c = case(&format!("{}LB_STRATEGY=random\n", valid_file()));
    assert!(problem_for(&problems(&c), "LB_STRATEGY")
        .message
        .contains("least_conn, round_robin, ip_hash"));
}

#[test]
fn quorum_larger_than_three_sentinels_is_refused() {
    let c = case(&format!("{}SENTINEL_QUORUM=4\n", valid_file()));
    assert!(problem_for(&problems(&c), "SENTINEL_QUORUM")
        .message
        .contains("between 1 and 3"));
}

#[test]
fn malformed_image_references_are_refused() {
    for var in [
        "APP_IMAGE",
        "APP_BUILDER_IMAGE",
        "NGINX_IMAGE",
        "POSTGRES_IMAGE",
        "REDIS_IMAGE",
    ] {
        let c = case(&format!("{}{var}=Bad Image:\n", valid_file()));
        let c2 = case(&format!("{}{var}='Bad Image:'\n", valid_file()));
        let ps = [problems(&c), problems(&c2)].concat();
        assert!(ps.iter().any(|p| p.variable == var), "{var}: {ps:#?}");
    }
}

#[test]
fn project_names_docker_would_refuse_are_refused() {
    let mut c = case(&valid_file());
    c.inputs.project = "My Project".into();
    let p = problem_for(&problems(&c), "RADAR_PROJECT").clone();
    assert!(p.message.contains("not a valid project name"));
}

#[test]
fn syntax_error_names_the_line() {
    let c = case(&format!("{}BROKEN='unterminated\n", valid_file()));
    let ps = problems(&c);
    let p = problem_for(&ps, "BROKEN");
    assert!(p.message.contains("dotenv syntax"));
    assert!(
        matches!(p.origin, Some(Origin::File { line: 7, .. })),
        "{p}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let c = case(&format!(
        "{}APP_INSTANCES=0\nHTTP_PORT=0\nLB_STRATEGY=x\nSENTINEL_QUORUM=9\n",
        valid_file().replace(STRONG_KEY, "weak")
    ));
    let vars: Vec<String> = problems(&c).into_iter().map(|p| p.variable).collect();
    for v in [
        "APP_INSTANCES",
        "HTTP_PORT",
        "LB_STRATEGY",
        "SENTINEL_QUORUM",
        "ENCRYPTION_KEY",
    ] {
        assert!(vars.contains(&v.to_string()), "{v} missing from {vars:?}");
    }
}

#[test]
fn environment_overrides_file_and_flags_override_environment() {
    let mut c = case(&format!(
        "{}APP_INSTANCES=2\nHTTP_PORT=8080\n",
        valid_file()
    ));
    c.inputs.process_env = vec![
        ("APP_INSTANCES".into(), "4".into()),
        ("HTTP_PORT".into(), "9090".into()),
        ("UNRELATED".into(), "ignored".into()),
    ];
    let cfg = resolve(&c.inputs).unwrap();
    assert_eq!(cfg.app.instances.get(), 4);
    assert_eq!(cfg.http_port.get(), 9090);
    c.inputs.overrides = Overrides {
        ha: true,
        instances: Some(5),
        ..Overrides::default()
    };
    let cfg = resolve(&c.inputs).unwrap();
    assert_eq!(cfg.app.instances.get(), 5);
    assert!(cfg.ha_enabled);
}

#[test]
fn flag_out_of_range_names_the_flag() {
    let mut c = case(&valid_file());
    c.inputs.overrides.instances = Some(65);
    let p = problem_for(&problems(&c), "APP_INSTANCES").clone();
    assert_eq!(p.origin, Some(Origin::Flag("--instances")));
}

#[test]
fn pool_size_times_instances_must_fit_postgres() {
    let c = case(&format!(
        "{}APP_INSTANCES=40\nDB_POOL_SIZE=10\nPOSTGRES_MAX_CONNECTIONS=300\n",
        valid_file()
    ));
    let p = problem_for(&problems(&c), "APP_INSTANCES").clone();
    assert!(p.message.contains("40 x 10 = 400"), "{p}");
    assert!(p.fix.contains("at least 410"), "{p}");
}

#[test]
fn postgres_identifiers_are_checked() {
    let c = case(&valid_file().replace("POSTGRES_DB=reporadar", "POSTGRES_DB=Drop-Tables"));
    assert!(problem_for(&problems(&c), "POSTGRES_DB")
        .message
        .contains("identifier"));
}

#[test]
fn app_env_passthrough_strips_the_prefix() {
    let cfg = resolve(&case(&format!("{}APP_ENV_FEATURE_X=on\n", valid_file())).inputs).unwrap();
    assert_eq!(
        cfg.app.passthrough.get("FEATURE_X").map(String::as_str),
        Some("on")
    );
}

#[test]
fn healthcheck_none_uses_the_image_default() {
    let cfg = resolve(&case(&format!("{}APP_HEALTHCHECK=none\n", valid_file())).inputs).unwrap();
    assert_eq!(cfg.app.healthcheck, None);
}

#[test]
fn an_app_image_of_ones_own_keeps_its_healthcheck_unless_one_is_named() {
    let with = |extra: &str| {
        resolve(&case(&format!("{}{extra}", valid_file())).inputs)
            .unwrap()
            .app
            .healthcheck
    };
    let reference = Some(vec!["/radar-app".to_string(), "healthcheck".into()]);
    assert_eq!(with(""), reference, "the reference image: its own command");
    assert_eq!(with("APP_IMAGE=radar-deploy/radar-app:0.2\n"), reference);
    assert_eq!(
        with("APP_IMAGE=team/web:1.4\n"),
        None,
        "another image: its own HEALTHCHECK"
    );
    assert_eq!(with("APP_IMAGE=team/web:1.4\nAPP_HEALTHCHECK=auto\n"), None);
    assert_eq!(with("APP_HEALTHCHECK=auto\n"), reference);
    assert_eq!(with("APP_HEALTHCHECK=none\n"), None);
    assert_eq!(
        with("APP_IMAGE=team/web:1.4\nAPP_HEALTHCHECK='/bin/check --fast'\n"),
        Some(vec!["/bin/check".to_string(), "--fast".into()])
    );
}

#[test]
fn release_command_is_split_like_a_shell_and_empty_means_none() {
    let cfg = resolve(&case(&valid_file()).inputs).unwrap();
    assert_eq!(cfg.app.release_command, None);
    assert_eq!(cfg.app.release_timeout_secs, 600);
    let file = format!(
        "{}APP_RELEASE_COMMAND=\"migrate --to 'v 2'\"\nAPP_RELEASE_TIMEOUT=30\n",
        valid_file()
    );
    let cfg = resolve(&case(&file).inputs).unwrap();
    let argv: Vec<String> = ["migrate", "--to", "v 2"].map(String::from).to_vec();
    assert_eq!(cfg.app.release_command, Some(argv));
    assert_eq!(cfg.app.release_timeout_secs, 30);
    let unclosed = format!("{}APP_RELEASE_COMMAND=\"migrate 'open\"\n", valid_file());
    let e = resolve(&case(&unclosed).inputs).unwrap_err().to_string();
    assert!(e.contains("APP_RELEASE_COMMAND"), "{e}");
}

#[test]
fn problem_messages_never_contain_secret_values() {
    let weak = "weakpass";
    let c = case(&valid_file().replace(STRONG_PG, weak));
    let e = resolve(&c.inputs).unwrap_err().to_string();
    assert!(!e.contains(weak), "{e}");
}

/// The example file is generated from the variable table; `RADAR_UPDATE_EXAMPLE=1 cargo test`
/// rewrites it after a variable is added or changed.
#[test]
fn committed_example_file_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".env.multi-instance.example");
    let generated = vars::example_file();
    if std::env::var_os("RADAR_UPDATE_EXAMPLE").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        ".env.multi-instance.example is out of date: run `RADAR_UPDATE_EXAMPLE=1 cargo test --lib config`"
    );
}

/// `docs/configuration.md` is generated from the variable table; `RADAR_UPDATE_DOCS=1 cargo
/// test` rewrites it.
#[test]
fn configuration_reference_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let generated = vars::reference_markdown();
    if std::env::var_os("RADAR_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/configuration.md is out of date: run `RADAR_UPDATE_DOCS=1 cargo test --lib config`"
    );
}

fn env_file_problem(bytes: &[u8]) -> Problem {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.multi-instance");
    std::fs::write(&path, bytes).unwrap();
    let inputs = Inputs {
        env_file: path.clone(),
        project: "reporadar".into(),
        process_env: vec![],
        overrides: Overrides::default(),
    };
    let ps = resolve(&inputs).expect_err("should be refused").problems;
    assert_eq!(
        ps.len(),
        1,
        "only the encoding, not its consequences: {ps:#?}"
    );
    let p = ps[0].clone();
    assert_eq!(p.variable, "(env file)");
    assert!(
        p.to_string().contains(&path.display().to_string()),
        "the file is named: {p}"
    );
    p
}

#[test]
fn a_utf8_file_with_a_byte_order_mark_resolves() {
    let c = case(&format!("\u{feff}{}", valid_file()));
    let config = resolve(&c.inputs).expect("a BOM is not part of the first name");
    assert_eq!(config.postgres.user, "reporadar");
}

#[test]
fn crlf_line_ends_resolve_and_no_value_keeps_a_carriage_return() {
    let file = format!(
        "\u{feff}# saved by Notepad\n{}NGINX_IMAGE=\"nginx:1.27\"\nAPP_ENV_NOTE='two\nlines'\n",
        valid_file()
    )
    .replace('\n', "\r\n");
    let c = case(&file);
    let config = resolve(&c.inputs).expect("CRLF env file resolves");
    assert_eq!(config.postgres.user, "reporadar");
    assert_eq!(config.postgres.password.expose(), STRONG_PG);
    assert_eq!(config.encryption_key.expose(), STRONG_KEY);
    assert_eq!(config.nginx_image.to_string(), "nginx:1.27");
    assert_eq!(config.app.passthrough["NOTE"], "two\nlines");
}

#[test]
fn crlf_syntax_error_still_names_the_line() {
    let c = case(&format!("{}BROKEN='unterminated\n", valid_file()).replace('\n', "\r\n"));
    let p = problem_for(&problems(&c), "BROKEN").clone();
    assert!(
        matches!(p.origin, Some(Origin::File { line: 7, .. })),
        "{p}"
    );
}

#[test]
fn utf16_files_are_refused_naming_the_encoding_and_the_fix() {
    let text = valid_file().replace('\n', "\r\n");
    let le: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let be: Vec<u8> = [0xFE, 0xFF]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    for (bytes, name) in [(le, "UTF-16 LE"), (be, "UTF-16 BE")] {
        let p = env_file_problem(&bytes);
        assert!(p.message.contains(name), "{p}");
        assert!(p.fix.contains("save it as UTF-8"), "{p}");
    }
    // Without a byte-order mark: NUL bytes give it away.
    let bare: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let p = env_file_problem(&bare);
    assert!(p.message.contains("UTF-16"), "{p}");
}

#[test]
fn a_legacy_code_page_file_is_refused_naming_the_line() {
    let mut bytes = valid_file().into_bytes();
    bytes.extend_from_slice(b"APP_ENV_CITY=Z\xfcrich\n");
    let p = env_file_problem(&bytes);
    assert!(p.message.contains("not valid UTF-8 at line 7"), "{p}");
    assert!(p.fix.contains("save it as UTF-8"), "{p}");
}

#[test]
fn a_misspelt_variable_is_a_warning_naming_the_nearest_known_one() {
    let c = case(&format!("{}HTTP_PROT=8080\n", valid_file()));
    let cfg = resolve(&c.inputs).expect("a warning, not an error");
    assert_eq!(cfg.http_port.get(), 80, "the misspelt value is not used");
    assert_eq!(cfg.warnings.len(), 1, "{:#?}", cfg.warnings);
    let w = &cfg.warnings[0];
    assert_eq!(w.variable, "HTTP_PROT");
    assert!(
        matches!(w.origin, Some(Origin::File { line: 7, .. })),
        "{w:?}"
    );
    let text = w.to_string();
    assert!(text.contains("is not a radar-deploy variable"), "{text}");
    assert!(text.contains("did you mean HTTP_PORT?"), "{text}");
}

#[test]
fn strict_makes_an_unknown_variable_an_error() {
    let mut c = case(&format!(
        "{}HTTP_PROT=8080\nLB_STRATEGY=ip_hash\n",
        valid_file()
    ));
    c.inputs.overrides.strict = true;
    let ps = problems(&c);
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert!(problem_for(&ps, "HTTP_PROT")
        .fix
        .contains("did you mean HTTP_PORT?"));
}

#[test]
fn nearest_names_are_offered_only_when_close() {
    for (typed, meant) in [
        ("HTTP_PROT", Some("HTTP_PORT")),
        ("http_port", Some("HTTP_PORT")),
        ("APP_INSTANCE", Some("APP_INSTANCES")),
        ("REDIS_PASWORD", Some("REDIS_PASSWORD")),
        ("SENTINEL_QUORUMS", Some("SENTINEL_QUORUM")),
        ("MAIL_FROM", None),
        ("FOO", None),
        ("PORT", None),
    ] {
        assert_eq!(vars::nearest(typed), meant, "{typed}");
    }
}

#[test]
fn app_variables_known_ones_and_the_process_environment_raise_no_warning() {
    let mut c = case(&format!(
        "{}APP_ENV_FEATURE_X=1\nLB_STRATEGY=round_robin\n",
        valid_file()
    ));
    c.inputs.process_env = vec![
        ("PATH".into(), "/usr/bin".into()),
        ("HTTP_PROT".into(), "1".into()),
    ];
    c.inputs.overrides.strict = true;
    let cfg = resolve(&c.inputs).expect("nothing unknown in the file");
    assert!(cfg.warnings.is_empty(), "{:#?}", cfg.warnings);
}

#[test]
fn a_command_line_variable_in_the_env_file_says_where_it_is_read() {
    let c = case(&format!("{}RADAR_TARGET=swarm\n", valid_file()));
    let cfg = resolve(&c.inputs).unwrap();
    let text = cfg.warnings[0].to_string();
    assert!(text.contains("read from the process environment"), "{text}");
}

#[test]
fn an_unknown_variable_warning_never_shows_its_value() {
    let c = case(&format!(
        "{}REDIS_PASWORD=Zq8vN3xL0pW5tR7yU2iO\n",
        valid_file()
    ));
    let cfg = resolve(&c.inputs).unwrap();
    let text = cfg.warnings[0].to_string();
    assert!(!text.contains("Zq8vN3xL0pW5tR7yU2iO"), "{text}");
}

#[test]
fn app_paths_default_to_the_reference_contract_and_an_empty_one_is_off() {
    let cfg = resolve(&case(&valid_file()).inputs).unwrap();
    assert_eq!(cfg.app.paths, AppPaths::reference());
    assert_eq!(cfg.app.user, None);
    let own = format!(
        "{}APP_HEALTH_PATH=/healthz\nAPP_READY_PATH=/\nAPP_LIVE_PATH=\nAPP_SESSION_PATH=\nAPP_USER=1000:1000\n",
        valid_file()
    );
    let cfg = resolve(&case(&own).inputs).unwrap();
    let p = &cfg.app.paths;
    assert_eq!(p.health.as_ref().map(AppPath::as_str), Some("/healthz"));
    assert_eq!(p.ready.as_ref().map(AppPath::as_str), Some("/"));
    assert_eq!((&p.live, &p.session), (&None, &None));
    assert_eq!(
        cfg.app.user.as_ref().map(UserSpec::as_str),
        Some("1000:1000")
    );
    // Through the balancer: nginx answers /health itself, so the reference contract's health
    // is asked at /health/backend; any other path as is; the load falls back to liveness.
    assert_eq!(p.health_through_balancer().as_deref(), Some("/healthz"));
    assert_eq!(
        AppPaths::reference().health_through_balancer().as_deref(),
        Some("/health/backend")
    );
    let no_health = AppPaths {
        health: None,
        ..AppPaths::reference()
    };
    assert_eq!(no_health.load_path().as_deref(), Some("/health/live"));
}

#[test]
fn bad_app_paths_and_users_are_refused_naming_the_variable() {
    let c = case(&format!(
        "{}APP_HEALTH_PATH=healthz\nAPP_LIVE_PATH='/a b'\nAPP_USER=bad/user\n",
        valid_file()
    ));
    let ps = problems(&c);
    assert!(problem_for(&ps, "APP_HEALTH_PATH")
        .message
        .contains("starting with /"));
    assert!(problem_for(&ps, "APP_LIVE_PATH")
        .message
        .contains("without spaces"));
    assert!(problem_for(&ps, "APP_USER").message.contains("uid:gid"));
}

#[test]
fn tls_is_off_by_default_and_files_resolve_beside_the_env_file() {
    assert_eq!(resolve(&case(&valid_file()).inputs).unwrap().tls, None);
    let c = case(&format!(
        "{}TLS_MODE=files\nPUBLIC_HOSTS=app.example.com\nTLS_CERT_FILE=tls/cert.pem\nTLS_KEY_FILE=/etc/keys/key.pem\nHSTS=true\n",
        valid_file()
    ));
    let tls = resolve(&c.inputs).unwrap().tls.unwrap();
    let dir = c.inputs.env_file.parent().unwrap();
    assert_eq!(
        tls.source,
        CertSource::Files {
            cert_file: dir.join("tls/cert.pem"),
            key_file: PathBuf::from("/etc/keys/key.pem"),
        }
    );
    assert_eq!(tls.https_port.get(), 443);
    assert!(tls.hsts);
    assert_eq!(tls.host_names(), vec!["app.example.com".to_string()]);
}

#[test]
fn tls_modes_name_what_they_miss() {
    let ps = problems(&case(&format!("{}TLS_MODE=files\n", valid_file())));
    assert!(problem_for(&ps, "PUBLIC_HOSTS").message.contains("not set"));
    assert!(problem_for(&ps, "TLS_CERT_FILE")
        .fix
        .contains("TLS_MODE=acme"));
    problem_for(&ps, "TLS_KEY_FILE");
    let ps = problems(&case(&format!(
        "{}TLS_MODE=acme\nPUBLIC_HOSTS=a.example.com\nHTTP_PORT=8080\nHTTPS_PORT=8080\nACME_DIRECTORY_URL=http://ca.test/dir\nACME_EMAIL=nobody\n",
        valid_file()
    )));
    problem_for(&ps, "HTTPS_PORT");
    problem_for(&ps, "ACME_DIRECTORY_URL");
    problem_for(&ps, "ACME_EMAIL");
    let ps = problems(&case(&format!(
        "{}TLS_MODE=acme\nPUBLIC_HOSTS=*.example.com\n",
        valid_file()
    )));
    assert!(problem_for(&ps, "PUBLIC_HOSTS").message.contains("DNS-01"));
    let cfg = resolve(
        &case(&format!(
            "{}TLS_MODE=acme\nPUBLIC_HOSTS=a.example.com\n",
            valid_file()
        ))
        .inputs,
    )
    .unwrap();
    assert_eq!(
        cfg.tls.unwrap().source,
        CertSource::Acme {
            directory_url: tls::LETS_ENCRYPT_DIRECTORY.into(),
            email: None
        }
    );
}
