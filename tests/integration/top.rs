//! `top` against a real stack under the built-in load (the drills' load generator), with one
//! instance made slow and one failing through the reference app's diagnostics (`POST
//! /api/fault`, asked from inside the network): the JSON snapshot must name those two, and its
//! request counts must agree with what the load generator sent. The same stack then shows the
//! live view off a terminal (plain blocks) and `status`'s last minute.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use radar_deploy::drill::load::{Load, LoadOptions};
use serde_json::Value;

use crate::common::{self, docker, text, HostProject};

/// Makes `instance` slow or failing: a request from the nginx container straight to it.
fn fault(p: &HostProject, instance: &str, query: &str) {
    let nginx = format!("{}-nginx-1", p.name);
    let url = format!("http://{instance}:3000/api/fault?{query}");
    let out = docker(&["exec", &nginx, "curl", "-sSf", "-X", "POST", &url]);
    assert!(out.status.success(), "POST {url}: {}", text(&out));
}

fn instance<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    snapshot["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == name))
        .unwrap_or_else(|| panic!("no row {name} in {snapshot:#}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn top_names_the_slow_and_the_failing_instance_and_counts_what_the_load_sent() {
    let _slot = common::shared();
    let p = HostProject::new("top", 3);
    p.set_env("APP_ENV_RADAR_APP_DIAGNOSTICS", "1");
    p.ok(&["up", "--no-verify"]);
    fault(&p, "app-2", "delay_ms=300");
    fault(&p, "app-3", "status=500");

    let load = LoadOptions::reference(format!("http://127.0.0.1:{}", p.port), 8);
    let started = Instant::now();
    let result = common::block_on(async {
        let running = Load::start(&load).expect("load starts");
        tokio::time::sleep(Duration::from_secs(8)).await;
        running.stop().await
    });
    let sent = result.samples.len() as u64;
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for s in &result.samples {
        let kind = match &s.result {
            Ok(Some(instance)) => instance.clone(),
            Ok(None) => "unnamed".into(),
            Err(f) => f.kind(),
        };
        *by_kind.entry(kind).or_default() += 1;
    }
    // The window covers the load and nothing else reached nginx (up ran without verify;
    // nginx does not log /health).
    let window = (started.elapsed().as_secs() + 3).to_string();
    let json = p.stdout(&["top", "--format", "json", "--window", &window]);
    let snap: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let context = format!("load sent {sent}: {by_kind:?}\n{snap:#}");

    let total = u(&snap["balancer"]["requests"]);
    let off = total.abs_diff(sent) as f64 / sent as f64;
    assert!(sent > 500, "{context}");
    assert!(
        off < 0.03,
        "top counted {total}, the load sent {sent} ({off:.3})\n{context}"
    );
    let rows: u64 = ["app-1", "app-2", "app-3"]
        .iter()
        .map(|n| u(&instance(&snap, n)["requests"]))
        .sum();
    assert_eq!(
        rows, total,
        "every request answered by a named instance\n{context}"
    );

    // The slow one: every answer 300 ms late; the balancer (least_conn) sends it the least.
    let slow = instance(&snap, "app-2");
    let p50 = slow["upstream_ms"]["p50"].as_f64().unwrap_or(0.0);
    assert!(p50 >= 290.0, "app-2's p50 {p50}\n{context}");
    for other in ["app-1", "app-3"] {
        let p95 = instance(&snap, other)["upstream_ms"]["p95"]
            .as_f64()
            .unwrap_or(f64::MAX);
        assert!(p95 < 290.0, "{other}'s p95 {p95}\n{context}");
    }
    // The failing one: all its answers 500, nobody else's; as many as the load saw.
    let failing = instance(&snap, "app-3");
    let errors = u(&failing["status_5xx"]);
    assert_eq!(errors, u(&failing["requests"]), "{context}");
    assert!(errors > 0, "{context}");
    let load_500 = by_kind.get("HTTP 500").copied().unwrap_or(0);
    assert!(
        errors.abs_diff(load_500) as f64 / (load_500.max(1) as f64) < 0.03,
        "top: {errors} 5xx from app-3, the load saw {load_500}\n{context}"
    );
    for healthy in ["app-1", "app-2"] {
        assert_eq!(u(&instance(&snap, healthy)["status_5xx"]), 0, "{context}");
    }
    // Docker's view beside it: health, CPU against the limit, memory against the limit.
    for n in ["app-1", "app-2", "app-3"] {
        let row = instance(&snap, n);
        assert_eq!(row["health"], "healthy", "{context}");
        assert_eq!(
            row["cpu_limit"].as_f64(),
            Some(0.5),
            "APP_CPUS' default\n{context}"
        );
        assert!(row["cpus"].as_f64().is_some(), "{context}");
        assert_eq!(
            row["memory_limit_bytes"],
            256 << 20,
            "APP_MEMORY's default\n{context}"
        );
    }
    assert!(
        u(&snap["balancer"]["connections"]["requests"]) >= total,
        "{context}"
    );

    // Off a terminal the live view prints plain blocks, one per refresh.
    let mut live = p
        .command(&["top", "--window", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("top starts");
    std::thread::sleep(Duration::from_secs(7));
    let _ = live.kill();
    let _ = live.wait();
    let mut shown = String::new();
    live.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut shown)
        .expect("top's output");
    assert!(
        !shown.contains('\x1b'),
        "no escape codes off a terminal:\n{shown}"
    );
    let blocks = shown.matches("INSTANCE").count();
    assert!(blocks >= 2, "a block per refresh:\n{shown}");
    for n in ["app-1", "app-2", "app-3", "nginx", "postgres", "redis"] {
        assert!(shown.contains(n), "{n} missing:\n{shown}");
    }
    // CPU and memory against the limits, from the samples the daemon streams.
    assert!(
        shown.contains("% of 0.5") && shown.contains("of 256MiB"),
        "{shown}"
    );

    // `status` adds the last minute's figures.
    let status = p.ok(&["status"]);
    assert!(status.contains("Last minute"), "{status}");
    let s: Value = serde_json::from_str(&p.stdout(&["status", "--format", "json"])).expect("json");
    let minute = u(&s["traffic"]["totals"]["requests"]);
    assert!(
        minute.abs_diff(total) as f64 / (total as f64) < 0.03,
        "{minute} vs {total}\n{s:#}"
    );
}
