//! The daemon reached as the docker CLI reaches it (src/endpoint.rs): through a context whose
//! socket is not the default one, over mutual TLS (DOCKER_TLS_VERIFY/DOCKER_CERT_PATH and a
//! context's TLS store), and over ssh (`DOCKER_HOST=ssh://…` to a local sshd). Each endpoint is a
//! forwarder or server this test starts in front of this machine's daemon, stopped by its pid
//! when the test ends; the stacks are removed by their unique project names.
//!
//! Needs the docker CLI (to create contexts, as a user would), socat, stunnel4, openssl, and for
//! the ssh test openssh-server (`.ci/run` installs them). Like every Docker test here, these FAIL when
//! something is missing: a green run means each path was exercised.

#![cfg(unix)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, text, HostProject};

/// The daemon's own socket, which the forwarders sit in front of.
const DAEMON_SOCKET: &str = "/var/run/docker.sock";

/// A process this test started, killed by its pid when dropped (also when the test fails).
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn need(tool: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{tool}` is not installed; this test needs it (.ci/run installs it; it never skips)"
        )
    })
}

fn start(what: &'static str, cmd: &mut Command) -> Started {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    Started(child)
}

fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} did not come up within 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A socket at a non-default path that forwards to the daemon.
fn socket_forwarder(dir: &Path) -> (Started, PathBuf) {
    let sock = dir.join("docker.sock");
    let fwd = start(
        "socat unix forwarder",
        Command::new(need("socat")).args([
            &format!("UNIX-LISTEN:{},fork,mode=600", sock.display()),
            &format!("UNIX-CONNECT:{DAEMON_SOCKET}"),
        ]),
    );
    wait_for("the socket forwarder", || sock.exists());
    (fwd, sock)
}

/// radar-deploy for `p` with exactly these Docker variables: the caller's DOCKER_* are removed
/// so only what the test sets decides the endpoint.
fn radar(p: &HostProject, docker_env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = p.command(args);
    for v in [
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_CONFIG",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
    ] {
        c.env_remove(v);
    }
    for (k, v) in docker_env {
        c.env(k, v);
    }
    c.output().expect("run radar-deploy")
}

fn ok(p: &HostProject, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = radar(p, env, args);
    assert!(
        out.status.success(),
        "radar-deploy {args:?} with {env:?} failed ({:?}):\n{}",
        out.status.code(),
        text(&out)
    );
    text(&out)
}

fn fails(p: &HostProject, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = radar(p, env, args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "radar-deploy {args:?} with {env:?} must exit 2:\n{}",
        text(&out)
    );
    text(&out)
}

/// The docker CLI with its configuration in `config` (contexts are made as a user makes them).
fn docker_cli(config: &Path, args: &[&str]) {
    let out = Command::new("docker")
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .args(args)
        .output()
        .expect("run docker");
    assert!(out.status.success(), "docker {args:?}:\n{}", text(&out));
}

#[test]
fn a_context_at_a_non_default_socket_carries_up_status_verify_and_down() {
    let _slot = common::shared();
    let p = HostProject::new("ctx", 2);
    let dir = tempfile::tempdir().unwrap();
    let (_fwd, sock) = socket_forwarder(dir.path());
    let config = dir.path().join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let host = format!("host=unix://{}", sock.display());
    docker_cli(
        &config,
        &["context", "create", "elsewhere", "--docker", &host],
    );
    docker_cli(
        &config,
        &[
            "context",
            "create",
            "dead",
            "--docker",
            &format!("host=unix://{}", dir.path().join("nobody.sock").display()),
        ],
    );
    // As `docker context use` leaves it: currentContext in config.json.
    docker_cli(&config, &["context", "use", "elsewhere"]);
    let cfg = config.to_string_lossy().into_owned();
    let env = [("DOCKER_CONFIG", cfg.as_str())];

    let up = ok(&p, &env, &["-v", "up"]);
    assert!(
        up.contains(&format!("unix://{}", sock.display()))
            && up.contains("docker context \"elsewhere\""),
        "-v names the endpoint and the context it came from:\n{up}"
    );
    assert!(
        up.contains("Verification passed") || up.contains("passed"),
        "{up}"
    );
    let status = ok(&p, &env, &["status", "--format", "json"]);
    assert!(status.contains("app-2"), "{status}");
    ok(&p, &env, &["verify"]);

    // A context naming a dead endpoint: the error names the context and the socket.
    let dead = fails(&p, &env, &["--context", "dead", "status"]);
    assert!(
        dead.contains("docker context \"dead\" (--context)") && dead.contains("nobody.sock"),
        "{dead}"
    );
    assert!(
        dead.contains("docker context inspect dead"),
        "the fix is about the context:\n{dead}"
    );
    assert!(!dead.contains("systemctl"), "{dead}");
    // One that does not exist at all.
    let missing = fails(
        &p,
        &[("DOCKER_CONFIG", cfg.as_str()), ("DOCKER_CONTEXT", "nope")],
        &["status"],
    );
    assert!(
        missing.contains("\"nope\"") && missing.contains("DOCKER_CONTEXT"),
        "{missing}"
    );

    let down = ok(&p, &env, &["down", "--volumes"]);
    assert!(down.contains("removed"), "{down}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as `dockerd --tlsverify`
/// setups use them (docs.docker.com "Protect the Docker daemon socket").
fn make_pki(dir: &Path, name: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let openssl = need("openssl");
    let run = |args: &[&str]| {
        let out = Command::new(&openssl)
            .args(args)
            .current_dir(&d)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}:\n{}", text(&out));
    };
    std::fs::write(
        d.join("ext.cnf"),
        "[server]\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n\
         [client]\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN=test CA {name}"),
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    for (who, cn) in [("server", "127.0.0.1"), ("client", "radar-deploy test")] {
        let key = if who == "client" {
            "key.pem".to_string()
        } else {
            format!("{who}-key.pem")
        };
        let cert = if who == "client" {
            "cert.pem".to_string()
        } else {
            format!("{who}.pem")
        };
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &key,
            "-out",
            &format!("{who}.csr"),
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{who}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-extensions",
            who,
            "-out",
            &cert,
        ]);
    }
    d
}

#[test]
fn mutual_tls_by_environment_and_by_context_and_a_wrong_ca_is_refused() {
    let _slot = common::shared();
    let p = HostProject::new("tls", 2);
    let dir = tempfile::tempdir().unwrap();
    let good = make_pki(dir.path(), "good");
    let other = make_pki(dir.path(), "other");
    let port = free_port();
    // Mutual TLS in front of the daemon: only a client certificate of the good CA gets through.
    // stunnel rather than socat: socat 1.7 sets no TLS session id context, so OpenSSL fails
    // every resumed session when client certificates are verified (rustls resumes).
    let conf = dir.path().join("stunnel.conf");
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\n[docker]\naccept = 127.0.0.1:{port}\nconnect = {DAEMON_SOCKET}\n\
             cert = {}\nkey = {}\nCAfile = {}\nverifyChain = yes\nrequireCert = yes\n",
            good.join("server.pem").display(),
            good.join("server-key.pem").display(),
            good.join("ca.pem").display()
        ),
    )
    .unwrap();
    let _tls = start("stunnel", Command::new(need("stunnel4")).arg(&conf));
    wait_for("the TLS forwarder", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let host = format!("tcp://127.0.0.1:{port}");
    let certs = good.to_string_lossy().into_owned();
    let env = [
        ("DOCKER_HOST", host.as_str()),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", certs.as_str()),
    ];
    ok(&p, &env, &["up"]);

    // The same daemon through a context holding the TLS material in its store.
    let config = dir.path().join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    docker_cli(
        &config,
        &[
            "context",
            "create",
            "secure",
            "--docker",
            &format!(
                "host={host},ca={},cert={},key={}",
                good.join("ca.pem").display(),
                good.join("cert.pem").display(),
                good.join("key.pem").display()
            ),
        ],
    );
    let cfg = config.to_string_lossy().into_owned();
    let ctx = [("DOCKER_CONFIG", cfg.as_str())];
    ok(&p, &ctx, &["--context", "secure", "verify"]);
    let status = ok(&p, &ctx, &["--context", "secure", "status"]);
    assert!(status.contains("app-1"), "{status}");

    // A CA that did not sign the daemon's certificate.
    let wrong = other.to_string_lossy().into_owned();
    let refused = fails(
        &p,
        &[
            ("DOCKER_HOST", host.as_str()),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", wrong.as_str()),
        ],
        &["status"],
    );
    assert!(
        refused.contains("not signed by the CA") && refused.contains(&wrong),
        "a wrong CA is named:\n{refused}"
    );
    // Plain HTTP to the TLS port: said, with the fix.
    let plain = fails(&p, &[("DOCKER_HOST", host.as_str())], &["status"]);
    assert!(plain.contains("DOCKER_TLS_VERIFY"), "{plain}");

    ok(&p, &env, &["down", "--volumes"]);
}

#[test]
fn ssh_to_a_local_sshd_carries_up_verify_and_down() {
    let _slot = common::shared();
    let p = HostProject::new("ssh", 2);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keygen = need("ssh-keygen");
    let sshd = need("sshd");
    need("ssh");
    for (file, kind) in [("host_key", "ed25519"), ("client_key", "ed25519")] {
        let out = Command::new(&keygen)
            .args(["-q", "-t", kind, "-N", "", "-f"])
            .arg(d.join(file))
            .output()
            .expect("ssh-keygen");
        assert!(out.status.success(), "ssh-keygen:\n{}", text(&out));
    }
    std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
    let user = String::from_utf8(
        Command::new("id")
            .arg("-un")
            .output()
            .expect("id -un")
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let port = free_port();
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             StrictModes no\nUsePAM no\nPidFile {pid}\nAllowUsers {user}\n",
            hk = d.join("host_key").display(),
            ak = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display(),
        ),
    )
    .unwrap();
    // sshd's privilege separation directory (Debian's package makes it at boot).
    std::fs::create_dir_all("/run/sshd").ok();
    let _sshd = start(
        "sshd",
        Command::new(&sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config")),
    );
    wait_for("sshd", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // The user's ssh, configured as a user would in ~/.ssh/config, without touching this
    // machine's: a `ssh` first on PATH that adds -F.
    std::fs::write(
        d.join("ssh_config"),
        format!(
            "Host 127.0.0.1\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
             StrictHostKeyChecking accept-new\n  LogLevel ERROR\n",
            d.join("client_key").display(),
            d.join("known_hosts").display()
        ),
    )
    .unwrap();
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {} -F {} \"$@\"\n",
            need("ssh").display(),
            d.join("ssh_config").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let host = format!("ssh://{user}@127.0.0.1:{port}");
    let env = [("DOCKER_HOST", host.as_str()), ("PATH", path.as_str())];

    let t0 = Instant::now();
    let up = ok(&p, &env, &["-v", "up"]);
    assert!(up.contains(&host), "-v names the ssh endpoint:\n{up}");
    eprintln!("up over ssh: {:.1}s", t0.elapsed().as_secs_f64());
    ok(&p, &env, &["verify"]);

    // A port where no sshd listens: ssh's own words, and the fix for ssh.
    let nobody = format!("ssh://{user}@127.0.0.1:{}", free_port());
    let refused = fails(
        &p,
        &[("DOCKER_HOST", nobody.as_str()), ("PATH", path.as_str())],
        &["status"],
    );
    assert!(
        refused.contains("ssh: ") && refused.contains("Connection refused"),
        "ssh's reason is shown:\n{refused}"
    );
    assert!(refused.contains("docker version"), "{refused}");

    ok(&p, &env, &["down", "--volumes"]);
}
