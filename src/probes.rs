//! The probes the tool runs inside containers (by exec) and the parsers of their output, in
//! one place and pure: each probe is an argv the Docker facade runs as it is given, each parser
//! turns the text that came back into data, unit-tested here as text. Arguments reach the
//! scripts positionally, never spliced into them.

// ---- nginx's workers (the executor's reload and drain waits) ----

/// nginx's worker processes inside its container, listed from /proc with bash alone, which the
/// official (Debian) nginx image has; no ps needed. A graceful reload starts new workers and
/// tells the old ones to finish their requests and exit, which they show in their process
/// title.
const NGINX_WORKERS_SCRIPT: &str = r#"for d in /proc/[0-9]*; do c=; read -r -d '' c 2>/dev/null < "$d/cmdline"; case "$c" in "nginx: worker process"*) echo "${d#/proc/} $c";; esac; done; true"#;

/// The argv that lists nginx's workers ([`parse_nginx_workers`] reads its output).
pub fn nginx_workers_argv() -> Vec<String> {
    vec!["bash".into(), "-c".into(), NGINX_WORKERS_SCRIPT.into()]
}

/// nginx's workers as (pid, shutting down), from [`nginx_workers_argv`]'s output.
pub fn parse_nginx_workers(out: &str) -> Vec<(u32, bool)> {
    out.lines()
        .filter_map(|l| {
            let (pid, title) = l.split_once(' ')?;
            Some((pid.parse().ok()?, title.contains("shutting down")))
        })
        .collect()
}

/// `nginx -t` of a staged configuration file: checked before it replaces the one in use.
pub fn nginx_check_argv(conf: &str) -> Vec<String> {
    vec!["nginx".into(), "-t".into(), "-c".into(), conf.into()]
}

/// `nginx -s reload`: signals the master to load its configuration again.
pub fn nginx_reload_argv() -> Vec<String> {
    vec!["nginx".into(), "-s".into(), "reload".into()]
}

/// The certificate file an nginx.conf serves (its first `ssl_certificate`), if any.
pub fn ssl_certificate_path(conf: &str) -> Option<String> {
    conf.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix("ssl_certificate "))
        .map(|rest| rest.trim_end_matches(';').trim().to_string())
        .filter(|p| !p.is_empty())
}

/// Removes every certificate directory under `parent` but `keep`, after nginx reloaded onto
/// `keep`: an old certificate's private key is not left lying in the container. `find`, not a
/// shell, so no path is ever spliced into a script.
pub fn prune_certificates_argv(parent: &str, keep: &str) -> Vec<String> {
    [
        "find",
        parent,
        "-mindepth",
        "1",
        "-maxdepth",
        "1",
        "!",
        "-path",
        keep,
        "-exec",
        "rm",
        "-rf",
        "{}",
        "+",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

// ---- a healthcheck's test, run by a wait between Docker's own probes ----

/// The healthcheck test as an argv for exec: `CMD` runs as is, `CMD-SHELL` through `/bin/sh`.
pub fn healthcheck_argv(test: &[String]) -> Option<Vec<String>> {
    match test.split_first() {
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
        Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
            Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
        }
        _ => None,
    }
}

// ---- healthcheck tests that are scripts (the desired state's, run by Docker and by waits) ----

/// nginx answers `GET /health` with 200 on `port`. Neither curl nor wget is promised in the
/// official image; bash is.
pub fn nginx_health_test(port: u16) -> Vec<String> {
    vec![
        "CMD".into(),
        "bash".into(),
        "-c".into(),
        format!("exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"),
    ]
}

/// A Sentinel (or Redis) on `port` answers PONG to the password in the file `secret`: it
/// requires the password, and redis-cli exits 0 on a NOAUTH answer too, so the answer itself
/// is what counts.
pub fn redis_pong_test(port: u16, secret: &str) -> Vec<String> {
    vec![
        "CMD-SHELL".into(),
        format!("REDISCLI_AUTH=\"$(cat {secret})\" redis-cli -p {port} ping | grep -qx PONG"),
    ]
}

/// Redis on `port` reports one of the `INFO replication` lines `lines` (an extended regular
/// expression of alternatives, such as `role:master|master_link_status:up`).
pub fn redis_replication_test(port: u16, secret: &str, lines: &str) -> Vec<String> {
    vec![
        "CMD-SHELL".into(),
        format!(
            "REDISCLI_AUTH=\"$(cat {secret})\" redis-cli -p {port} info replication \
             | grep -Eq '^({lines})'"
        ),
    ]
}

// ---- HTTP from inside the network (verify's instance checks) ----

/// An HTTP/1.0 GET of each path, in plain bash (`/dev/tcp`): bash is in the nginx, redis and
/// postgres images, curl and wget are not promised. Arguments are passed positionally, never
/// spliced into the script.
const HTTP_SCRIPT: &str = r#"host=$1; port=$2; shift 2
for path in "$@"; do
  printf '@@radar-deploy %s\n' "$path"
  if exec 3<>"/dev/tcp/$host/$port"; then
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
    while IFS= read -r -t 3 line || [ -n "$line" ]; do printf '%s\n' "$line"; line=; done <&3
    exec 3<&-
  fi
done"#;

/// The argv that GETs each of `paths` from `host:port`; [`split_sections`] splits its output
/// per path and [`parse_raw_http`] reads each answer.
pub fn http_get_argv(host: &str, port: u16, paths: &[&str]) -> Vec<String> {
    let mut cmd = vec![
        "bash".to_string(),
        "-c".to_string(),
        HTTP_SCRIPT.to_string(),
        "radar-deploy-verify".to_string(),
        host.to_string(),
        port.to_string(),
    ];
    cmd.extend(paths.iter().map(|p| p.to_string()));
    cmd
}

/// Splits the script's output into (path, raw response or error text).
pub fn split_sections(text: &str) -> Vec<(String, String)> {
    text.split("@@radar-deploy ")
        .filter(|s| !s.trim().is_empty())
        .filter_map(|s| {
            let (path, rest) = s.split_once('\n')?;
            Some((path.trim().to_string(), rest.to_string()))
        })
        .collect()
}

/// A raw HTTP response as read through `bash /dev/tcp` inside a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    pub status: u16,
    pub body: String,
}

/// Parses `HTTP/1.1 200 OK\r\nHeader: v\r\n\r\nbody`.
pub fn parse_raw_http(text: &str) -> Option<RawResponse> {
    let start = text.find("HTTP/")?;
    let text = &text[start..];
    let status: u16 = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some(RawResponse { status, body })
}

// ---- a Sentinel's answers (verify's HA checks) ----

/// Three questions to a Sentinel in its own protocol, then a PING whose echo marks the end of
/// the answers: a Sentinel knows no QUIT, so without the marker the read would wait for its
/// timeout. The Sentinels require Redis's password: the first command is AUTH with the secret
/// file of the container asked from, when it has one (sent as a RESP array, so any byte of the
/// password is safe; it never leaves that container), else a PING, so that the answers of the
/// three questions are always the 2nd to 4th. The master name is an argument, never spliced in.
const SENTINEL_SCRIPT: &str = r#"LC_ALL=C; host=$1; port=$2; name=$3; pw=
[ -r /run/secrets/redis_password ] && pw=$(cat /run/secrets/redis_password)
exec 3<>"/dev/tcp/$host/$port" || exit 1
if [ -n "$pw" ]; then
  printf '*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n' "${#pw}" "$pw" >&3
else
  printf 'PING radar-deploy-no-password\r\n' >&3
fi
printf 'SENTINEL get-master-addr-by-name %s\r\nSENTINEL ckquorum %s\r\nSENTINEL replicas %s\r\nPING radar-deploy-end\r\n' "$name" "$name" "$name" >&3
while IFS= read -r -t 3 line || [ -n "$line" ]; do
  printf '%s\n' "$line"
  [ "$line" = $'radar-deploy-end\r' ] && break
  line=
done <&3"#;

/// The argv that asks the Sentinel at `host:port` about `master` ([`parse_resp`] reads the
/// answers: AUTH's or PING's, then the master's address, ckquorum, the replicas).
pub fn sentinel_argv(host: &str, port: u16, master: &str) -> Vec<String> {
    vec![
        "bash".to_string(),
        "-c".to_string(),
        SENTINEL_SCRIPT.to_string(),
        "radar-deploy-verify".to_string(),
        host.to_string(),
        port.to_string(),
        master.to_string(),
    ]
}

/// A Redis protocol (RESP2) value, as a Sentinel answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// The value as one line of text, for a report.
    pub fn text(&self) -> String {
        match self {
            Resp::Simple(s) | Resp::Error(s) | Resp::Bulk(Some(s)) => s.clone(),
            Resp::Int(n) => n.to_string(),
            Resp::Bulk(None) | Resp::Array(None) => "(nil)".into(),
            Resp::Array(Some(items)) => items.iter().map(Resp::text).collect::<Vec<_>>().join(" "),
        }
    }
}

/// The values in a Sentinel's answer, in order. Line-based: a bulk string is taken to be one
/// line, which holds for everything a Sentinel says about masters and replicas. Stops at the
/// first line that is not RESP (a truncated or foreign answer).
pub fn parse_resp(text: &str) -> Vec<Resp> {
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    std::iter::from_fn(|| resp_value(&mut lines, 0)).collect()
}

fn resp_value<'a>(lines: &mut impl Iterator<Item = &'a str>, depth: usize) -> Option<Resp> {
    let line = lines.next()?;
    let (kind, rest) = line.split_at_checked(1)?;
    Some(match kind {
        "+" => Resp::Simple(rest.to_string()),
        "-" => Resp::Error(rest.to_string()),
        ":" => Resp::Int(rest.parse().ok()?),
        "$" => match rest.parse::<i64>().ok()? {
            n if n < 0 => Resp::Bulk(None),
            _ => Resp::Bulk(Some(lines.next()?.to_string())),
        },
        // Depth-bounded: a hostile or broken answer cannot recurse without end.
        "*" if depth < 4 => match rest.parse::<i64>().ok()? {
            n if n < 0 => Resp::Array(None),
            n => Resp::Array(Some(
                (0..n)
                    .map(|_| resp_value(lines, depth + 1))
                    .collect::<Option<Vec<_>>>()?,
            )),
        },
        _ => return None,
    })
}

/// `SENTINEL get-master-addr-by-name`'s answer as `host:port`.
pub fn master_addr(r: &Resp) -> Option<String> {
    match r {
        Resp::Array(Some(v)) => match v.as_slice() {
            [Resp::Bulk(Some(host)), Resp::Bulk(Some(port))] => Some(format!("{host}:{port}")),
            _ => None,
        },
        _ => None,
    }
}

/// One replica as a Sentinel sees it (`SENTINEL replicas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelReplica {
    pub host: String,
    pub flags: String,
    /// `ok` or `err`: the replica's own `master_link_status`, as last read by the Sentinel.
    pub link: String,
    pub master_host: String,
}

/// The replicas in `SENTINEL replicas`' answer (an array of field-value arrays).
pub fn sentinel_replicas(r: &Resp) -> Vec<SentinelReplica> {
    let Resp::Array(Some(replicas)) = r else {
        return vec![];
    };
    replicas
        .iter()
        .filter_map(|fields| {
            let Resp::Array(Some(kv)) = fields else {
                return None;
            };
            let get = |key: &str| {
                kv.chunks(2)
                    .find(|p| p.first().map(Resp::text).as_deref() == Some(key))
                    .and_then(|p| p.get(1))
                    .map(Resp::text)
                    .unwrap_or_default()
            };
            Some(SentinelReplica {
                host: get("ip"),
                flags: get("flags"),
                link: get("master-link-status"),
                master_host: get("master-host"),
            })
        })
        .collect()
}

// ---- Redis's own view of its replication (verify's replica check) ----

/// `INFO replication` of the Redis in the container, with its password from its secret file.
pub fn redis_replication_argv() -> Vec<String> {
    let script = "REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" redis-cli info replication";
    vec!["bash".into(), "-c".into(), script.into()]
}

/// One field of an `INFO` answer (`role`, `master_link_status`, …).
pub fn info_field(text: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}:");
    text.lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()).map(str::to_string))
}

// ---- the drills' Redis questions (drill redis: who is master, who is linked) ----

/// The drills' questions to Redis, as bash scripts run in the stack's own containers (they
/// hold the password as a secret file). Redis's replication INFO of the container's own Redis:
pub const REPLICATION_SCRIPT: &str =
    "REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" redis-cli info replication";
/// The same, of another Redis, asked from a container that has the password (a Sentinel's):
/// the host is the script's `$1`, never part of the script.
pub const REMOTE_REPLICATION_SCRIPT: &str =
    "REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" redis-cli -h \"$1\" info replication";

/// A Sentinel's answer to "who is master `$1`?", asked in its own container with the password
/// the Sentinels require (the master name is the script's `$1`, never part of the script).
pub const SENTINEL_MASTER_SCRIPT: &str = "REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" \
     redis-cli -p 26379 sentinel get-master-addr-by-name \"$1\"";

/// The replicas a Sentinel knows of master `$1`, one field a line (`ip` is the replica's name,
/// as the HA stack announces hostnames).
pub const SENTINEL_REPLICAS_SCRIPT: &str = "REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" \
     redis-cli -p 26379 sentinel replicas \"$1\"";

// ---- nginx's own counters (`top`) ----

/// What nginx's `stub_status` page says: connections now and requests since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StubStatus {
    pub active: u64,
    pub accepts: u64,
    pub handled: u64,
    pub requests: u64,
    pub reading: u64,
    pub writing: u64,
    pub waiting: u64,
}

/// The argv that asks nginx's `stub_status` from inside its own container (the location
/// allows only the loopback address).
pub fn stub_status_argv(port: u16) -> Vec<String> {
    http_get_argv("127.0.0.1", port, &["/nginx_status"])
}

/// Parses the `stub_status` page:
/// `Active connections: 2 \nserver accepts handled requests\n 10 10 12 \nReading: 0 Writing: 1 Waiting: 1 `.
pub fn parse_stub_status(body: &str) -> Option<StubStatus> {
    let words: Vec<&str> = body.split_whitespace().collect();
    let after = |label: &str| -> Option<u64> {
        let at = words.iter().position(|w| *w == label)?;
        words.get(at + 1)?.parse().ok()
    };
    let counters = words.iter().position(|w| *w == "requests")?;
    let number = |i: usize| -> Option<u64> { words.get(counters + i)?.parse().ok() };
    Some(StubStatus {
        active: after("connections:")?,
        accepts: number(1)?,
        handled: number(2)?,
        requests: number(3)?,
        reading: after("Reading:")?,
        writing: after("Writing:")?,
        waiting: after("Waiting:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_certificate_is_the_first_ssl_certificate_line() {
        let conf = "# ssl_certificate /commented;\n  ssl_certificate /etc/nginx/tls/ab/fullchain.pem;\n  ssl_certificate_key /k;\n";
        assert_eq!(
            ssl_certificate_path(conf).as_deref(),
            Some("/etc/nginx/tls/ab/fullchain.pem")
        );
        assert_eq!(ssl_certificate_path("listen 80;\n"), None);
    }

    #[test]
    fn script_output_splits_per_path() {
        let out = "@@radar-deploy /health\nHTTP/1.1 200 OK\r\n\r\nok\n@@radar-deploy /health/ready\nbash: connect: Connection refused\n";
        let s = split_sections(out);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, "/health");
        assert_eq!(parse_raw_http(&s[0].1).unwrap().status, 200);
        assert!(s[1].1.contains("Connection refused"));
    }

    #[test]
    fn raw_http_is_parsed() {
        let r = parse_raw_http("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\r\n{\"redis\":\"down\"}").unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.body, "{\"redis\":\"down\"}");
        assert_eq!(parse_raw_http("bash: connect: Connection refused"), None);
    }
    /// What a Sentinel answers to the three questions `verify` asks, then to the end marker.
    const SENTINEL_ANSWER: &str = "*2\r\n$13\r\nredis-replica\r\n$4\r\n6379\r\n\
+OK 3 usable Sentinels. Quorum and failover authorization can be reached\r\n\
*1\r\n*6\r\n$2\r\nip\r\n$5\r\nredis\r\n$5\r\nflags\r\n$5\r\nslave\r\n\
$18\r\nmaster-link-status\r\n$2\r\nok\r\n$16\r\nradar-deploy-end\r\n";

    #[test]
    fn sentinel_answers_parse_in_order() {
        let v = parse_resp(SENTINEL_ANSWER);
        assert_eq!(v.len(), 4);
        assert_eq!(master_addr(&v[0]).as_deref(), Some("redis-replica:6379"));
        assert!(matches!(&v[1], Resp::Simple(t) if t.starts_with("OK 3 usable")));
        let r = sentinel_replicas(&v[2]);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].host.as_str(), r[0].link.as_str()), ("redis", "ok"));
        assert_eq!(r[0].flags, "slave");
    }

    #[test]
    fn resp_errors_nils_and_garbage() {
        let v = parse_resp("-NOQUORUM 1 usable Sentinels\r\n*-1\r\n$-1\r\n");
        assert_eq!(v[0], Resp::Error("NOQUORUM 1 usable Sentinels".into()));
        assert_eq!(master_addr(&v[1]), None);
        assert_eq!(v[2], Resp::Bulk(None));
        // Not RESP at all (bash could not connect): nothing, and no panic.
        assert!(parse_resp("bash: connect: Connection refused\n").is_empty());
        assert!(parse_resp("*3\r\n$1\r\n").is_empty());
        assert!(parse_resp("*99999999999999999999\r\n").is_empty());
        let deep = "*1\r\n".repeat(10);
        assert!(parse_resp(&deep).is_empty());
        assert!(parse_resp("").is_empty());
    }

    #[test]
    fn nginx_workers_are_read_with_their_state() {
        let out = "7 nginx: worker process\n8 nginx: worker process is shutting down\nnot a line\n";
        assert_eq!(parse_nginx_workers(out), vec![(7, false), (8, true)]);
        assert!(parse_nginx_workers("").is_empty());
    }

    #[test]
    fn shell_tests_run_through_sh() {
        assert_eq!(
            healthcheck_argv(&["CMD-SHELL".into(), "pg_isready".into()]),
            Some(vec!["/bin/sh".into(), "-c".into(), "pg_isready".into()])
        );
        assert_eq!(
            healthcheck_argv(&["CMD".into(), "true".into()]),
            Some(vec!["true".into()])
        );
        assert_eq!(healthcheck_argv(&["NONE".into()]), None);
        assert_eq!(healthcheck_argv(&["CMD".into()]), None);
    }

    #[test]
    fn probes_pass_their_arguments_positionally() {
        let cmd = http_get_argv("10.0.0.5", 8000, &["/health", "/health/ready"]);
        assert_eq!(cmd[..2], ["bash".to_string(), "-c".to_string()]);
        assert_eq!(
            cmd[3..],
            [
                "radar-deploy-verify",
                "10.0.0.5",
                "8000",
                "/health",
                "/health/ready"
            ]
        );
        let cmd = sentinel_argv("sentinel-1", 26379, "mymaster");
        assert_eq!(
            cmd[3..],
            ["radar-deploy-verify", "sentinel-1", "26379", "mymaster"]
        );
    }

    #[test]
    fn info_fields_are_found_by_key() {
        let info = "# Replication\r\nrole:slave\r\nmaster_host:redis\r\nmaster_link_status:up\r\n";
        assert_eq!(info_field(info, "role").as_deref(), Some("slave"));
        assert_eq!(
            info_field(info, "master_link_status").as_deref(),
            Some("up")
        );
        assert_eq!(info_field(info, "master_host").as_deref(), Some("redis"));
        assert_eq!(info_field(info, "master_port"), None);
    }

    #[test]
    fn nginx_stub_status_is_read() {
        let page = "Active connections: 2 \nserver accepts handled requests\n 10 11 12 \nReading: 0 Writing: 1 Waiting: 1 \n";
        let s = parse_stub_status(page).unwrap();
        assert_eq!(
            (s.active, s.accepts, s.handled, s.requests),
            (2, 10, 11, 12)
        );
        assert_eq!((s.reading, s.writing, s.waiting), (0, 1, 1));
        assert_eq!(parse_stub_status("<html>403 Forbidden</html>"), None);
        assert_eq!(parse_stub_status(""), None);
    }
}
