use std::collections::BTreeMap;

use super::*;

/// A docker CLI configuration directory held in memory.
#[derive(Default)]
struct Files(BTreeMap<PathBuf, String>);

impl Files {
    fn with(mut self, path: &str, text: &str) -> Files {
        self.0.insert(PathBuf::from(path), text.to_string());
        self
    }

    fn with_context(self, name: &str, host: &str) -> Files {
        let id = context_dir_name(name);
        let meta = format!(
            r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
        );
        self.with(
            &format!("/home/u/.docker/contexts/meta/{id}/meta.json"),
            &meta,
        )
    }

    fn resolve(&self, inputs: &Inputs, os: Os) -> Result<Endpoint, ResolveError> {
        resolve(inputs, os, &|p: &Path| Ok(self.0.get(p).cloned()))
    }
}

/// The address and TLS material of an endpoint that must be TLS over tcp.
fn tls_of(e: Endpoint) -> (String, Tls) {
    match e.transport {
        Transport::Tcp {
            addr,
            tls: Some(tls),
        } => (addr, tls),
        other => panic!("expected TLS over tcp: {other:?}"),
    }
}

fn home() -> Inputs {
    Inputs {
        home: Some(PathBuf::from("/home/u")),
        ..Default::default()
    }
}

#[test]
fn nothing_configured_is_the_platform_default() {
    let e = Files::default().resolve(&home(), Os::Linux).unwrap();
    assert_eq!(e.transport, Transport::Unix("/var/run/docker.sock".into()));
    assert_eq!(e.source, Source::Default);
    assert!(e.is_local());
    let w = Files::default().resolve(&home(), Os::Windows).unwrap();
    assert_eq!(
        w.transport,
        Transport::NamedPipe(r"\\.\pipe\docker_engine".into())
    );
    assert_eq!(w.host, "npipe:////./pipe/docker_engine");
}

#[test]
fn the_current_context_of_config_json_is_followed() {
    let files = Files::default()
        .with(
            "/home/u/.docker/config.json",
            r#"{"auths":{},"currentContext":"colima"}"#,
        )
        .with_context("colima", "unix:///home/u/.colima/default/docker.sock");
    let e = files.resolve(&home(), Os::Mac).unwrap();
    assert_eq!(
        e.transport,
        Transport::Unix("/home/u/.colima/default/docker.sock".into())
    );
    assert_eq!(
        e.describe(),
        "unix:///home/u/.colima/default/docker.sock (from docker context \"colima\" \
         (currentContext in /home/u/.docker/config.json))"
    );
}

#[test]
fn precedence_is_flag_then_docker_host_then_docker_context_then_config() {
    let files = Files::default()
        .with("/home/u/.docker/config.json", r#"{"currentContext":"cfg"}"#)
        .with_context("cfg", "unix:///cfg.sock")
        .with_context("env", "unix:///env.sock")
        .with_context("flag", "unix:///flag.sock");
    let mut i = home();
    i.docker_context = Some("env".into());
    assert_eq!(
        files.resolve(&i, Os::Linux).unwrap().host,
        "unix:///env.sock"
    );
    i.docker_host = Some("tcp://10.0.0.5:2375".into());
    let e = files.resolve(&i, Os::Linux).unwrap();
    assert_eq!(e.source, Source::DockerHost);
    assert_eq!(
        e.transport,
        Transport::Tcp {
            addr: "10.0.0.5:2375".into(),
            tls: None
        }
    );
    assert!(!e.is_local());
    i.context_flag = Some("flag".into());
    let e = files.resolve(&i, Os::Linux).unwrap();
    assert_eq!(e.host, "unix:///flag.sock");
    assert!(e.describe().contains("(--context)"), "{}", e.describe());
    // `default` means "no context": DOCKER_HOST, else the platform's socket.
    i.context_flag = Some("default".into());
    assert_eq!(
        files.resolve(&i, Os::Linux).unwrap().source,
        Source::DockerHost
    );
}

#[test]
fn docker_config_moves_the_store() {
    let files = Files::default()
        .with("/etc/dc/config.json", r#"{"currentContext":"remote"}"#)
        .with(
            &format!(
                "/etc/dc/contexts/meta/{}/meta.json",
                context_dir_name("remote")
            ),
            r#"{"Name":"remote","Endpoints":{"docker":{"Host":"ssh://deploy@build.example:2222"}}}"#,
        );
    let mut i = home();
    i.docker_config = Some("/etc/dc".into());
    let e = files.resolve(&i, Os::Linux).unwrap();
    assert_eq!(
        e.transport,
        Transport::Ssh {
            user: Some("deploy".into()),
            host: "build.example".into(),
            port: Some(2222)
        }
    );
}

#[test]
fn a_missing_context_is_named_with_what_chose_it() {
    let mut i = home();
    i.docker_context = Some("gone".into());
    let err = Files::default().resolve(&i, Os::Linux).unwrap_err();
    assert!(err.message.contains("\"gone\""), "{err}");
    assert!(err.message.contains("DOCKER_CONTEXT"), "{err}");
    assert!(err.fix.contains("docker context ls"), "{err}");
}

#[test]
fn context_tls_material_comes_from_its_tls_store() {
    let id = context_dir_name("secure");
    let files = Files::default()
        .with_context("secure", "tcp://203.0.113.7:2376")
        .with(
            &format!("/home/u/.docker/contexts/tls/{id}/docker/ca.pem"),
            "x",
        )
        .with(
            &format!("/home/u/.docker/contexts/tls/{id}/docker/cert.pem"),
            "x",
        );
    let mut i = home();
    i.context_flag = Some("secure".into());
    let (addr, tls) = tls_of(files.resolve(&i, Os::Linux).unwrap());
    assert_eq!(addr, "203.0.113.7:2376");
    assert_eq!(
        tls.ca,
        PathBuf::from(format!("/home/u/.docker/contexts/tls/{id}/docker/ca.pem"))
    );
}

#[test]
fn docker_tls_verify_takes_the_files_of_docker_cert_path() {
    let files = Files::default()
        .with("/certs/ca.pem", "x")
        .with("/certs/cert.pem", "x")
        .with("/certs/key.pem", "x");
    let mut i = home();
    i.docker_host = Some("tcp://192.0.2.1".into());
    i.tls_verify = Some("1".into());
    i.cert_path = Some("/certs".into());
    let (addr, tls) = tls_of(files.resolve(&i, Os::Linux).unwrap());
    assert_eq!(addr, "192.0.2.1:2376", "TLS's default port");
    assert_eq!(tls.key, PathBuf::from("/certs/key.pem"));

    // A missing file is named before any connection is tried.
    i.cert_path = Some("/nowhere".into());
    let err = files.resolve(&i, Os::Linux).unwrap_err();
    assert!(
        err.message.contains("ca.pem, cert.pem, key.pem") && err.message.contains("/nowhere"),
        "{err}"
    );
}

#[test]
fn malformed_hosts_are_refused_with_the_accepted_forms() {
    for host in [
        "localhost:2375",
        "ftp://x",
        "tcp://",
        "ssh://user@:22",
        "ssh://h:port",
    ] {
        let mut i = home();
        i.docker_host = Some(host.into());
        let err = Files::default().resolve(&i, Os::Linux).unwrap_err();
        assert!(err.message.contains(host), "{host}: {err}");
        assert!(err.fix.contains("ssh://"), "{host}: {err}");
    }
}

#[test]
fn broken_config_json_is_named() {
    let files = Files::default().with("/home/u/.docker/config.json", "{not json");
    let err = files.resolve(&home(), Os::Linux).unwrap_err();
    assert!(err.message.contains("/home/u/.docker/config.json"), "{err}");
}

#[test]
fn skip_tls_verify_contexts_are_refused_rather_than_trusted_blindly() {
    let id = context_dir_name("lax");
    let files = Files::default()
        .with(
            &format!("/home/u/.docker/contexts/meta/{id}/meta.json"),
            r#"{"Name":"lax","Endpoints":{"docker":{"Host":"tcp://h:2376","SkipTLSVerify":true}}}"#,
        )
        .with(
            &format!("/home/u/.docker/contexts/tls/{id}/docker/cert.pem"),
            "x",
        );
    let mut i = home();
    i.context_flag = Some("lax".into());
    let err = files.resolve(&i, Os::Linux).unwrap_err();
    assert!(err.message.contains("skip-tls-verify"), "{err}");
}

#[test]
fn advice_fits_the_platform_and_the_source() {
    let default = Files::default().resolve(&home(), Os::Mac).unwrap();
    let mac = default.fix(Os::Mac);
    assert!(
        mac.contains("Docker Desktop") && !mac.contains("systemctl"),
        "{mac}"
    );
    assert!(default.fix(Os::Linux).contains("systemctl"));
    let win = default.fix(Os::Windows);
    assert!(
        !win.contains("systemctl") && win.contains("Docker Desktop"),
        "{win}"
    );
    let mut i = home();
    i.docker_context = Some("c".into());
    let e = Files::default()
        .with_context("c", "unix:///x.sock")
        .resolve(&i, Os::Linux)
        .unwrap();
    assert!(e.fix(Os::Linux).contains("docker context inspect c"));
    assert!(!e.fix(Os::Linux).contains("systemctl"));
}

/// `docker info` of Docker Desktop in Windows-containers mode (recorded, trimmed).
const WINDOWS_INFO: &str = r#"{"ID":"Q2ZB:…","Containers":0,"Driver":"windowsfilter",
 "OSType":"windows","Architecture":"x86_64","OperatingSystem":"Windows 10 Pro Version 2009 (OS Build 19045.3570)",
 "ServerVersion":"24.0.6","Name":"DESKTOP-7H2K"}"#;

/// `docker info` of this machine's daemon (recorded, trimmed).
const LINUX_INFO: &str = r#"{"OSType":"linux","Architecture":"aarch64",
 "OperatingSystem":"Docker Desktop","ServerVersion":"27.2.0","Name":"docker-desktop"}"#;

fn facts(json: &str) -> DaemonFacts {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    DaemonFacts {
        os_type: s("OSType"),
        architecture: s("Architecture"),
        operating_system: s("OperatingSystem"),
        server_version: s("ServerVersion"),
        name: s("Name"),
    }
}

#[test]
fn a_daemon_running_windows_containers_is_refused_with_the_switch() {
    let e = Files::default().resolve(&home(), Os::Windows).unwrap();
    let err = check_daemon(&e, &facts(WINDOWS_INFO)).unwrap_err();
    assert!(err.message.contains("windows containers"), "{err}");
    assert!(
        err.message.contains("npipe:////./pipe/docker_engine"),
        "{err}"
    );
    assert!(err.fix.contains("Switch to Linux containers"), "{err}");
    assert_eq!(check_daemon(&e, &facts(LINUX_INFO)), Ok(()));
}
