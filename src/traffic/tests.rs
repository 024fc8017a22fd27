use super::*;

fn line(msec: &str, status: u16, upstream: &str, ustatus: &str, utime: &str) -> String {
    format!(
        r#"{{"msec":{msec},"remote":"172.18.0.1","host":"localhost","request":"GET /health/backend HTTP/1.1","status":{status},"bytes":57,"request_time":0.012,"referer":"","agent":"radar","upstream":"{upstream}","upstream_status":"{ustatus}","upstream_time":"{utime}"}}"#
    )
}

fn apps() -> Vec<(String, Vec<String>)> {
    vec![
        ("app-1".into(), vec!["10.0.0.11".into()]),
        ("app-2".into(), vec!["10.0.0.12".into()]),
        ("app-3".into(), vec!["10.0.0.13".into()]),
    ]
}

#[test]
fn a_line_of_the_radar_format_is_parsed_with_every_try() {
    let e = parse(&line(
        "1764720000.250",
        200,
        "10.0.0.12:8080, 10.0.0.13:8080",
        "502, 200",
        "0.001, 0.004",
    ))
    .unwrap();
    assert_eq!(e.at_ms, 1_764_720_000_250);
    assert_eq!(e.status, 200);
    assert_eq!(e.request_ms, 12.0);
    assert_eq!(e.attempts.len(), 2);
    assert_eq!(e.attempts[0].addr, "10.0.0.12:8080");
    assert_eq!(e.attempts[0].status, Some(502));
    assert_eq!(e.attempts[1].status, Some(200));
    assert_eq!(e.attempts[1].ms, Some(4.0));
}

#[test]
fn an_internal_redirect_and_missing_figures_are_read_as_nginx_writes_them() {
    let e = parse(&line(
        "1.5",
        504,
        "10.0.0.11:8080 : 10.0.0.12:8080",
        "-, 504",
        "-, 10.001",
    ))
    .unwrap();
    assert_eq!(e.attempts.len(), 2);
    assert_eq!(e.attempts[0].status, None);
    assert_eq!(e.attempts[0].ms, None);
    assert_eq!(e.attempts[1].addr, "10.0.0.12:8080");
    assert_eq!(e.attempts[1].ms, Some(10001.0));
    // nginx answered itself: no upstream at all.
    let own = parse(&line("1.5", 308, "", "", "")).unwrap();
    assert!(own.attempts.is_empty());
}

#[test]
fn anything_but_a_radar_line_is_skipped() {
    for junk in [
        "",
        "2026/12/03 00:10:00 [notice] 1#1: signal process started",
        r#"172.18.0.1 - - [03/Dec/2026:00:10:00 +0000] "GET / HTTP/1.1" 200 5"#,
        r#"{"msec":"x","status":200}"#,
        r#"{"msec":-1,"status":200,"request_time":0}"#,
        "{",
    ] {
        assert_eq!(parse(junk), None, "{junk:?}");
    }
}

#[test]
fn percentiles_are_by_nearest_rank() {
    let values: Vec<f64> = (1..=100).map(f64::from).collect();
    let p = Percentiles::of(values);
    assert_eq!((p.p50, p.p95, p.p99), (Some(50.0), Some(95.0), Some(99.0)));
    assert_eq!(Percentiles::of(vec![]), Percentiles::default());
    assert_eq!(Percentiles::of(vec![7.0]).p99, Some(7.0));
}

#[test]
fn a_window_names_the_slow_and_the_failing_instance() {
    let mut entries = vec![];
    // 10 s window ending at 20,000 ms: app-1 fast, app-2 slow, app-3 answers 500 to everything.
    for i in 0..100u64 {
        let at = 10_001 + i * 90;
        entries.push(
            parse(&line(
                &format!("{}.{:03}", at / 1000, at % 1000),
                200,
                "10.0.0.11:8080",
                "200",
                "0.004",
            ))
            .unwrap(),
        );
        entries.push(
            parse(&line(
                &format!("{}.{:03}", at / 1000, at % 1000),
                200,
                "10.0.0.12:8080",
                "200",
                "0.300",
            ))
            .unwrap(),
        );
        entries.push(
            parse(&line(
                &format!("{}.{:03}", at / 1000, at % 1000),
                500,
                "10.0.0.13:8080",
                "500",
                "0.002",
            ))
            .unwrap(),
        );
    }
    // Outside the window: ignored.
    entries.push(parse(&line("10.000", 200, "10.0.0.11:8080", "200", "0.004")).unwrap());
    entries.push(parse(&line("20.001", 200, "10.0.0.11:8080", "200", "0.004")).unwrap());
    let t = summarize(&entries, 20_000, 10_000, &apps());
    assert_eq!(t.totals.requests, 300);
    assert_eq!(t.totals.status_5xx, 100);
    assert_eq!(t.totals.per_sec, 30.0);
    let [a1, a2, a3] = [&t.instances[0], &t.instances[1], &t.instances[2]];
    assert_eq!(
        (a1.name.as_str(), a1.requests, a1.per_sec),
        ("app-1", 100, 10.0)
    );
    assert!((a1.share - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(a2.upstream_ms.p95, Some(300.0));
    assert!(
        (a2.in_flight - 3.0).abs() < 1e-9,
        "100 × 0.3 s in 10 s: {}",
        a2.in_flight
    );
    assert_eq!((a3.status_5xx, a3.failures), (100, 0));
}

#[test]
fn a_failed_try_passed_on_is_the_first_instances_failure_and_the_seconds_answer() {
    let entries = vec![
        parse(&line(
            "5.0",
            200,
            "10.0.0.12:8080, 10.0.0.13:8080",
            "502, 200",
            "0.001, 0.004",
        ))
        .unwrap(),
        // Every try failed: nginx answered 502 itself; nobody answered.
        parse(&line(
            "5.1",
            502,
            "10.0.0.12:8080, 10.0.0.11:8080",
            "502, 502",
            "0.001, 0.001",
        ))
        .unwrap(),
    ];
    let t = summarize(&entries, 6_000, 10_000, &apps());
    let by = |n: &str| t.instances.iter().find(|i| i.name == n).unwrap().clone();
    assert_eq!(
        (
            by("app-2").failures,
            by("app-2").retried,
            by("app-2").requests
        ),
        (2, 2, 0)
    );
    assert_eq!((by("app-3").requests, by("app-3").failures), (1, 0));
    assert_eq!(
        (
            by("app-1").failures,
            by("app-1").retried,
            by("app-1").requests
        ),
        (1, 0, 0)
    );
    assert_eq!(by("app-3").share, 1.0);
    assert_eq!((t.totals.retried, t.totals.status_5xx), (2, 1));
}

#[test]
fn an_unknown_address_gets_its_own_row_and_an_idle_instance_keeps_its_row() {
    let entries = vec![parse(&line("5.0", 200, "10.0.9.9:8080", "200", "0.004")).unwrap()];
    let t = summarize(&entries, 6_000, 10_000, &apps());
    assert_eq!(t.instances.len(), 4);
    assert_eq!(t.instances[3].name, "10.0.9.9:8080");
    assert_eq!(t.instances[0].requests, 0);
    assert_eq!(t.instances[0].upstream_ms, Percentiles::default());
}

#[test]
fn a_zero_window_does_not_divide_by_zero() {
    let t = summarize(&[], 0, 0, &[]);
    assert_eq!(t.totals.per_sec, 0.0);
    assert!(t.instances.is_empty());
}
