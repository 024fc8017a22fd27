//! The commands `backup` and `restore` run inside the stack's containers (bash, and the
//! service's own client: pg_dump, pg_restore, psql, redis-cli — in the official images and
//! the offline ones alike), and the parsers of what they print. Passwords are read from the
//! secret files inside the container, never passed in an argument or the exec's environment;
//! names are the script's positional arguments, never spliced into it.

use crate::probes;

const PG_AUTH: &str = "PGPASSWORD=\"$(cat /run/secrets/postgres_password)\"";
const REDIS_AUTH: &str = "REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\"";

fn bash(script: String, args: &[&str]) -> Vec<String> {
    let mut v = vec![
        "bash".to_string(),
        "-c".to_string(),
        script,
        "radar-deploy".to_string(),
    ];
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

/// `pg_dump` of database `db` as `user`, custom format (compressed; restorable selectively
/// and in one transaction), to stdout. One snapshot: consistent while the app writes.
pub fn pg_dump_argv(user: &str, db: &str) -> Vec<String> {
    bash(
        format!(
            "{PG_AUTH} exec pg_dump -h 127.0.0.1 -U \"$1\" -d \"$2\" --no-password --format=custom"
        ),
        &[user, db],
    )
}

/// The server's version (`show server_version`).
pub fn pg_version_argv(user: &str, db: &str) -> Vec<String> {
    bash(
        format!(
            "{PG_AUTH} exec psql -h 127.0.0.1 -U \"$1\" -d \"$2\" --no-password -XtAc 'show server_version'"
        ),
        &[user, db],
    )
}

/// `pg_restore` from stdin: drops what the dump holds (if it exists) and creates it again, all
/// in one transaction, so a failure leaves the database as it was. Owners and grants are not
/// restored: the objects belong to the restoring user, who may differ in another project.
pub fn pg_restore_argv(user: &str, db: &str) -> Vec<String> {
    bash(
        format!(
            "{PG_AUTH} exec pg_restore -h 127.0.0.1 -U \"$1\" -d \"$2\" --no-password --clean \
             --if-exists --single-transaction --exit-on-error --no-owner --no-privileges"
        ),
        &[user, db],
    )
}

/// Every key matching `ARGV[1]`, read in one script (so in one instant: Redis runs a script
/// atomically): a line per key, `hex(name) pttl hex(DUMP payload)`.
const REDIS_DUMP_LUA: &str = r#"local function hex(s)
  return (string.gsub(s, ".", function(c) return string.format("%02x", string.byte(c)) end))
end
local out = {}
local cursor = "0"
repeat
  local r = redis.call("SCAN", cursor, "MATCH", ARGV[1], "COUNT", 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do
    local d = redis.call("DUMP", k)
    if d then
      out[#out + 1] = hex(k) .. " " .. redis.call("PTTL", k) .. " " .. hex(d)
    end
  end
until cursor == "0"
return table.concat(out, "\n")"#;

/// Every key of Redis on `port` (the app's sessions, cache and queue), as [`REDIS_DUMP_LUA`]
/// prints them.
pub fn redis_dump_argv(port: u16) -> Vec<String> {
    bash(
        format!("{REDIS_AUTH} exec redis-cli --raw -p \"$1\" EVAL \"$2\" 0 \"$3\""),
        &[&port.to_string(), REDIS_DUMP_LUA, "*"],
    )
}

/// `INFO server` of Redis on `port`; [`redis_version`] reads it.
pub fn redis_info_argv(port: u16) -> Vec<String> {
    bash(
        format!("{REDIS_AUTH} exec redis-cli -p \"$1\" info server"),
        &[&port.to_string()],
    )
}

pub fn redis_version(info: &str) -> Option<String> {
    probes::info_field(info, "redis_version")
}

/// `redis-cli --pipe`: the RESP commands on stdin ([`restore_commands`]) sent to Redis on
/// `port`; it ends with `errors: N, replies: M`.
pub fn redis_pipe_argv(port: u16) -> Vec<String> {
    bash(
        format!("{REDIS_AUTH} exec redis-cli -p \"$1\" --pipe"),
        &[&port.to_string()],
    )
}

/// One key as the dump script printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisKey {
    pub name: Vec<u8>,
    /// Milliseconds to live; -1 none.
    pub pttl: i64,
    pub payload: Vec<u8>,
}

/// Reads the dump script's output; any line that is not a key is an error, quoted.
pub fn parse_redis_keys(text: &str) -> Result<Vec<RedisKey>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let parsed = match f.as_slice() {
                [name, pttl, payload] => Some((
                    hex::decode(name).ok(),
                    pttl.parse::<i64>().ok(),
                    hex::decode(payload).ok(),
                )),
                _ => None,
            };
            match parsed {
                Some((Some(name), Some(pttl), Some(payload))) => Ok(RedisKey {
                    name,
                    pttl,
                    payload,
                }),
                _ => {
                    let shown: String = line.chars().take(200).collect();
                    Err(format!("unexpected answer from Redis: {shown:?}"))
                }
            }
        })
        .collect()
}

/// The RESP commands that put `keys` back: `RESTORE name ttl payload REPLACE` each (a key
/// that had expired by the time its TTL was read is left out). Returns the bytes and the
/// number of commands.
pub fn restore_commands(keys: &[RedisKey]) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut n = 0;
    for k in keys {
        let ttl = match k.pttl {
            -2 => continue,
            t if t < 0 => 0,
            t => t,
        };
        let ttl = ttl.to_string();
        let args: [&[u8]; 5] = [b"RESTORE", &k.name, ttl.as_bytes(), &k.payload, b"REPLACE"];
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        n += 1;
    }
    (out, n)
}

/// `redis-cli --pipe`'s verdict: the number of errors it reports, if it reports one.
pub fn pipe_errors(out: &str) -> Option<u64> {
    out.lines().find_map(|l| {
        l.trim()
            .strip_prefix("errors: ")?
            .split(',')
            .next()?
            .trim()
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_keys_round_trip_to_restore_commands() {
        let text = "7261646172 -1 0005\n\n6b -2 00\n6b32 1500 ff0a\n";
        let keys = parse_redis_keys(text).unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[0].name, b"radar");
        assert_eq!(keys[2].payload, vec![0xff, 0x0a]);
        let (resp, n) = restore_commands(&keys);
        assert_eq!(n, 2, "the expired key is left out");
        let expected: &[u8] =
            b"*5\r\n$7\r\nRESTORE\r\n$5\r\nradar\r\n$1\r\n0\r\n$2\r\n\x00\x05\r\n$7\r\nREPLACE\r\n\
              *5\r\n$7\r\nRESTORE\r\n$2\r\nk2\r\n$4\r\n1500\r\n$2\r\n\xff\n\r\n$7\r\nREPLACE\r\n";
        assert_eq!(resp, expected);
    }

    #[test]
    fn an_error_answer_is_not_read_as_keys() {
        let e = parse_redis_keys("ERR unknown command 'EVAL'").unwrap_err();
        assert!(e.contains("ERR unknown command"), "{e}");
        assert!(parse_redis_keys("").unwrap().is_empty());
    }

    #[test]
    fn the_pipe_verdict_is_read() {
        let out = "All data transferred. Waiting for the last reply...\nLast reply received from server.\nerrors: 0, replies: 12\n";
        assert_eq!(pipe_errors(out), Some(0));
        assert_eq!(pipe_errors("errors: 3, replies: 3"), Some(3));
        assert_eq!(pipe_errors("Could not connect"), None);
    }

    #[test]
    fn names_are_arguments_never_part_of_a_script() {
        let argv = pg_dump_argv("app'; rm -rf /", "db");
        assert_eq!(argv[4], "app'; rm -rf /");
        assert!(!argv[2].contains("rm -rf"));
    }
}
