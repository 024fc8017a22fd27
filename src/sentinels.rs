//! Asking the Redis Sentinels, through an exec in their containers, which Redis is the master:
//! `backup`/`restore` need the current master (after a failover it is the former replica), and
//! the Redis drill watches it change.

use std::time::Duration;

use anyhow::{anyhow, Result};

use crate::docker::DockerClient;
use crate::probes;

/// One question to one container gets this long.
const EXEC_DEADLINE: Duration = Duration::from_secs(5);

/// Runs `cmd` in `container`: its output when it exits 0, else what went wrong, container named.
pub async fn exec(docker: &DockerClient, container: &str, cmd: &[&str]) -> Result<String, String> {
    exec_within(docker, container, cmd, EXEC_DEADLINE).await
}

/// [`exec`] with a deadline of the caller's (the drills' slower questions).
pub async fn exec_within(
    docker: &DockerClient,
    container: &str,
    cmd: &[&str],
    deadline: Duration,
) -> Result<String, String> {
    let cmd: Vec<String> = cmd.iter().map(|a| a.to_string()).collect();
    match tokio::time::timeout(deadline, docker.exec(container, &cmd)).await {
        Ok(Ok((0, out))) => Ok(out),
        Ok(Ok((code, out))) => Err(format!("{container}: exit {code}: {}", out.trim())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("{container}: no answer within {deadline:?}")),
    }
}

/// The master's host as the first Sentinel that answers names it (its alias on the network,
/// as the HA stack announces hostnames).
pub async fn ask_master(docker: &DockerClient, sentinels: &[String], name: &str) -> Result<String> {
    let mut last = "no Sentinel is running".to_string();
    for s in sentinels {
        let cmd = [
            "bash",
            "-c",
            probes::SENTINEL_MASTER_SCRIPT,
            "sentinel-ask",
            name,
        ];
        match exec(docker, s, &cmd).await {
            Ok(out) => match parse_master_addr(&out) {
                Some(host) => return Ok(host),
                None => last = format!("{s}: unexpected answer {:?}", out.trim()),
            },
            Err(e) => last = e,
        }
    }
    Err(anyhow!(last))
}

/// The master's host from `SENTINEL get-master-addr-by-name` (host line, port line).
fn parse_master_addr(out: &str) -> Option<String> {
    let mut lines = out.lines().map(str::trim).filter(|l| !l.is_empty());
    let host = lines.next()?;
    let port = lines.next()?;
    (port.parse::<u16>().is_ok() && host != "(nil)").then(|| host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_address_is_the_host_line() {
        assert_eq!(
            parse_master_addr("redis-replica\n6379\n").as_deref(),
            Some("redis-replica")
        );
        assert_eq!(parse_master_addr("(nil)\n"), None);
        assert_eq!(parse_master_addr("ERR no such master\n"), None);
    }
}
