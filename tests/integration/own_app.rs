//! Your own app: an app no one here wrote — Python's `http.server` from Debian's packages
//! (`radar-offline/thirdparty-web:bookworm`, made by scripts/offline-images.sh) — deployed and
//! verified with its own paths (`/`), port (8000) and user (1000, owning its files with mode
//! 0700, so uid 65532 could not serve them). It reports no instanceId and has no sessions:
//! verify names the instances by nginx's `X-Radar-Upstream` header and reports the session
//! check as skipped, with the reason. The distribution is measured through that header.
//!
//! Needs the Docker daemon and the offline images; fails, never skips, without them.

use crate::common;

use std::io::{Read, Write};

use common::{docker, text};

const IMAGE: &str = "radar-offline/thirdparty-web:bookworm";

/// The response head of `GET /` sent straight to the balancer, with `extra` header lines.
fn head(port: u16, extra: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
    write!(
        s,
        "GET / HTTP/1.0\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out.split("\r\n\r\n").next().unwrap_or("").to_string()
}

#[test]
fn an_app_that_knows_nothing_of_radar_deploy_runs_as_its_own_user_and_verifies_on_its_own_paths() {
    let _slot = common::shared();
    let p = common::HostProject::new("rdo", 3);
    let image = common::image("THIRDPARTY_WEB_IMAGE", IMAGE);
    let present = docker(&["image", "inspect", "-f", "{{.Config.User}}", &image]);
    assert!(
        present.status.success(),
        "{image} is missing: run scripts/offline-images.sh\n{}",
        text(&present)
    );
    let image_user = String::from_utf8_lossy(&present.stdout).trim().to_string();
    assert_eq!(image_user, "1000:1000", "the image's own user");
    p.set_env("APP_IMAGE", &image);
    p.set_env("APP_PORT", "8000");
    // No APP_HEALTHCHECK: an image of one's own keeps its HEALTHCHECK (Python asks its own
    // server) by default; the reference app's probe is not in it.
    p.set_env("APP_HEALTH_PATH", "/");
    p.set_env("APP_READY_PATH", "/");
    p.set_env("APP_LIVE_PATH", "/");
    p.set_env("APP_SESSION_PATH", "");

    let dry = p.ok(&["up", "--dry-run"]);
    assert!(
        dry.contains("app user: 1000:1000 (image's own user 1000:1000)"),
        "up --dry-run must say which user and why:\n{dry}"
    );

    // `up` ends with verify: exit 0 means every check that ran passed.
    let up = p.ok(&["up"]);
    for seen in [
        "Session persistence across instances (skipped) — APP_SESSION_PATH is empty",
        "Load distribution across 30 requests (GET /, instances named by X-Radar-Upstream):",
        "GET / through the balancer (APP_READY_PATH)",
    ] {
        assert!(up.contains(seen), "up's verify lacks {seen:?}:\n{up}");
    }

    // The container runs as the image's user, and serves its 0700 files as it.
    let app1 = format!("{}-app-1", p.name);
    let user = docker(&["inspect", "-f", "{{.Config.User}}", &app1]);
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "1000:1000");
    let id = docker(&["exec", &app1, "id", "-u"]);
    assert_eq!(
        String::from_utf8_lossy(&id.stdout).trim(),
        "1000",
        "{}",
        text(&id)
    );

    // Ordinary clients never see nginx's upstream addresses; radar-deploy's requests do.
    let plain = head(p.port, "");
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    assert!(
        !plain.to_ascii_lowercase().contains("x-radar-upstream"),
        "{plain}"
    );
    let asked = head(p.port, "X-Radar-Upstream: 1\r\n");
    let upstream = asked
        .lines()
        .find_map(|l| l.strip_prefix("X-Radar-Upstream: "))
        .unwrap_or_else(|| panic!("no X-Radar-Upstream when asked:\n{asked}"));
    let ips: Vec<String> = (1..=3)
        .map(|n| {
            let c = format!("{}-app-{n}", p.name);
            let f = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}";
            let o = docker(&["inspect", "-f", f, &c]);
            format!("{}:8000", String::from_utf8_lossy(&o.stdout).trim())
        })
        .collect();
    assert!(
        ips.iter().any(|ip| ip == upstream),
        "{upstream} is none of {ips:?}"
    );

    // The distribution, measured through nginx's header over 300 requests.
    let out = p.run(&["verify", "--requests", "300", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "verify failed:\n{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("verify --format json");
    let checks = report["checks"].as_array().expect("checks");
    let session = checks
        .iter()
        .find(|c| c["group"] == "Session persistence")
        .expect("a session check");
    assert_eq!(session["status"], "skip", "{session}");
    assert!(
        session["detail"]
            .as_str()
            .unwrap_or("")
            .contains("APP_SESSION_PATH is empty"),
        "{session}"
    );
    for c in checks {
        assert_ne!(c["status"], "fail", "{c}");
    }
    let d = &report["distribution"];
    assert_eq!(d["path"], "/");
    assert_eq!(
        d["named_by"],
        serde_json::json!(["X-Radar-Upstream"]),
        "{d}"
    );
    assert_eq!(d["failed"], 0, "{d}");
    let counts = d["counts"].as_object().expect("counts");
    let names: Vec<&str> = counts.keys().map(String::as_str).collect();
    assert_eq!(names, ["app-1", "app-2", "app-3"], "instances by name: {d}");
    println!("distribution of 300 requests to GET / through nginx, named by X-Radar-Upstream:");
    for (name, n) in counts {
        let n = n.as_u64().unwrap_or(0);
        println!("  {name}: {n} ({:.1}%)", n as f64 / 3.0);
        assert!(n > 0, "{name} served nothing: {d}");
    }
}
