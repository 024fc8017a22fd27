//! `backup`, `restore` and `maintenance` on one host: rows and session counters survive
//! backup → `down --volumes` → `up` → `restore`; damaged files are refused before anything
//! changes; maintenance mode answers 503 + Retry-After and keeps every request from the
//! instances, also after nginx is recreated; a backup restores into a new project.

use std::io::{Read, Write};
use std::time::Duration;

use crate::common::{self, docker, text, HostProject};

/// One HTTP/1.1 GET through nginx on a connection of its own: (status, head, body).
fn get(port: u16, path: &str, cookie: Option<&str>) -> (u16, String, String) {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{cookie}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).expect("an answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// The session counter after one more request of the session `cookie` names (or a new one).
fn session(port: u16, cookie: &mut Option<String>) -> u64 {
    let (status, head, body) = get(port, "/api/session", cookie.as_deref());
    assert_eq!(status, 200, "GET /api/session: {head}\n{body}");
    if let Some(set) = head.lines().find_map(|l| {
        l.strip_prefix("set-cookie: ")
            .or(l.strip_prefix("Set-Cookie: "))
    }) {
        *cookie = Some(set.split(';').next().unwrap().to_string());
    }
    let v: serde_json::Value = serde_json::from_str(&body).expect("session JSON");
    v["views"].as_u64().expect("views")
}

fn psql(p: &HostProject, sql: &str) -> String {
    let out = docker(&[
        "exec",
        &format!("{}-postgres-1", p.name),
        "bash",
        "-c",
        "psql -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -XtAc \"$1\"",
        "psql",
        sql,
    ]);
    text(&out).trim().to_string()
}

fn refused(p: &HostProject, args: &[&str]) -> String {
    let out = p.run(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    text(&out)
}

#[test]
fn rows_and_sessions_survive_backup_down_up_restore_behind_maintenance_mode() {
    let _slot = common::shared();
    let keep = tempfile::tempdir().unwrap();
    let file = keep.path().join("snapshot.radar-backup");
    {
        let p = HostProject::new("backup", 2);
        p.ok(&["up", "--no-verify"]);
        psql(
            &p,
            "create table notes(id int primary key, body text); \
             insert into notes select g, md5(g::text) from generate_series(1, 5000) g",
        );
        let mut cookie = None;
        for n in 1..=3 {
            assert_eq!(session(p.port, &mut cookie), n);
        }

        let out = p.ok(&["backup", "--out", file.to_str().unwrap()]);
        assert!(
            out.contains("snapshot.radar-backup") && out.contains("bytes"),
            "{out}"
        );

        // Damaged copies are refused before anything changes: no maintenance, same rows.
        let bytes = std::fs::read(&file).unwrap();
        let corrupt = p.dir.path().join("corrupt.radar-backup");
        let mut c = bytes.clone();
        let at = c.len() / 2;
        c[at] ^= 0xff;
        std::fs::write(&corrupt, &c).unwrap();
        let truncated = p.dir.path().join("truncated.radar-backup");
        std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
        psql(&p, "delete from notes where id > 100");
        for (f, what) in [(&corrupt, "corrupted"), (&truncated, "truncated")] {
            let e = refused(&p, &["restore", f.to_str().unwrap(), "--yes"]);
            assert!(
                e.contains(&f.display().to_string()) && e.contains(what),
                "{what}: {e}"
            );
            assert!(e.contains("nothing was changed"), "{e}");
        }
        assert_eq!(psql(&p, "select count(*) from notes"), "100");
        assert_eq!(session(p.port, &mut cookie), 4, "no maintenance meanwhile");
        let e = refused(&p, &["restore", file.to_str().unwrap()]);
        assert!(e.contains("--yes") && e.contains("would replace"), "{e}");

        // Everything gone, then back.
        p.ok(&["down", "--volumes"]);
        p.ok(&["up", "--no-verify"]);
        assert!(psql(&p, "select count(*) from notes").contains("does not exist"));
        let out = p.ok(&["restore", file.to_str().unwrap(), "--yes"]);
        assert!(out.contains("maintenance mode off"), "{out}");
        assert_eq!(psql(&p, "select count(*) from notes"), "5000");
        assert_eq!(
            session(p.port, &mut cookie),
            4,
            "the counter continues from its value at the backup"
        );

        // A restore that fails (a checked file whose dump Postgres cannot read) leaves
        // maintenance mode on, says so and how to get out, and leaves the rows as they were.
        let bad = keep.path().join("bad-dump.radar-backup");
        unreadable_dump_copy(&file, &bad);
        let e = refused(&p, &["restore", bad.to_str().unwrap(), "--yes"]);
        assert!(
            e.contains("pg_restore")
                && e.contains("maintenance mode stays ON")
                && e.contains("radar-deploy maintenance off"),
            "{e}"
        );
        assert_eq!(get(p.port, "/api/session", None).0, 503);
        assert_eq!(psql(&p, "select count(*) from notes"), "5000");

        // Maintenance mode: 503 + Retry-After for everything but nginx's /health, no request
        // reaches an instance (the session counter does not move; nginx logs no upstream) —
        // also after nginx is recreated by `up`.
        p.ok(&["maintenance", "on"]);
        let nginx = format!("{}-nginx-1", p.name);
        assert_eq!(docker(&["rm", "-f", &nginx]).status.code(), Some(0));
        p.ok(&["up", "--no-verify"]);
        for n in 0..10 {
            let (status, head, body) = get(
                p.port,
                &format!("/api/session?probe=m{n}"),
                cookie.as_deref(),
            );
            assert_eq!(status, 503, "{head}");
            assert!(head.to_lowercase().contains("retry-after: 30"), "{head}");
            assert!(body.contains("maintenance"), "{body}");
        }
        assert_eq!(get(p.port, "/health", None).0, 200);
        let log = text(&docker(&["logs", &nginx]));
        let probes: Vec<&str> = log.lines().filter(|l| l.contains("probe=m")).collect();
        assert_eq!(probes.len(), 10, "{log}");
        assert!(
            probes.iter().all(|l| l.contains(r#""upstream":"""#)),
            "{probes:#?}"
        );
        assert!(p.ok(&["status"]).contains("maintenance mode is on"));
        let v = p.run(&["verify"]);
        assert_eq!(v.status.code(), Some(1), "{}", text(&v));
        assert!(
            text(&v).contains("maintenance mode is on")
                && text(&v).contains("radar-deploy maintenance off"),
            "{}",
            text(&v)
        );
        p.ok(&["maintenance", "off"]);
        assert_eq!(session(p.port, &mut cookie), 5, "none of the 10 reached it");
    }

    // Disaster recovery: the same file into a project created afresh.
    let q = HostProject::new("restored", 1);
    q.ok(&["up", "--no-verify"]);
    q.ok(&["restore", file.to_str().unwrap(), "--yes"]);
    assert_eq!(psql(&q, "select count(*) from notes"), "5000");
    assert_eq!(psql(&q, "select body from notes where id = 7"), {
        // md5('7')
        "8f14e45fceea167a5a36dedd4bea2543"
    });
}

/// A copy of the backup `from` whose Postgres entry is not a dump, with a manifest that
/// matches it: it passes the file check and fails in pg_restore.
fn unreadable_dump_copy(from: &std::path::Path, to: &std::path::Path) {
    use radar_deploy::backup::archive::{self, StagedEntry};
    use tokio::io::AsyncWriteExt;
    let v = archive::verify(from).expect("the backup is usable");
    common::block_on(async {
        let mut pg = StagedEntry::new(to, archive::POSTGRES_ENTRY).unwrap();
        pg.write_all(b"PGDMP but not really").await.unwrap();
        pg.flush().await.unwrap();
        let mut rk = StagedEntry::new(to, archive::REDIS_ENTRY).unwrap();
        rk.write_all(&archive::read_entry(&v, archive::REDIS_ENTRY).unwrap())
            .await
            .unwrap();
        rk.flush().await.unwrap();
        archive::write(to, v.manifest.clone(), vec![pg, rk]).unwrap();
    });
}

#[test]
fn backup_restore_and_maintenance_refuse_swarm_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["backup", "--target", "swarm"],
        vec!["restore", "x.radar-backup", "--yes", "--target", "swarm"],
        vec!["maintenance", "on", "--target", "swarm"],
    ] {
        let out = std::process::Command::new(common::BIN)
            .args(&args)
            .current_dir(dir.path())
            .env_remove("RADAR_TARGET")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("not available on Swarm"),
            "{args:?}: {}",
            text(&out)
        );
    }
}
