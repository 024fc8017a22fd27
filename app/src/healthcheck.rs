//! `radar-app healthcheck`: the image's HEALTHCHECK. A `FROM scratch` image has no curl, so the
//! binary probes its own `/health/live` with a plain HTTP/1.0 request over TCP. Exit 0 on a 200
//! within the deadline, 1 otherwise; the whole probe ends within 3 s.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_millis(2500);

pub fn run() -> ExitCode {
    let port = match std::env::var("PORT") {
        Ok(p) if !p.is_empty() => match p.trim().parse::<u16>() {
            Ok(port) => port,
            Err(_) => {
                eprintln!("healthcheck: PORT={p:?} is not a valid port");
                return ExitCode::from(1);
            }
        },
        _ => 3000,
    };
    match probe(port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("healthcheck: 127.0.0.1:{port}/health/live: {e}");
            ExitCode::from(1)
        }
    }
}

fn probe(port: u16) -> Result<(), String> {
    let start = Instant::now();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream =
        TcpStream::connect_timeout(&addr, DEADLINE).map_err(|e| format!("connect: {e}"))?;
    let remaining = || {
        DEADLINE
            .checked_sub(start.elapsed())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| "timed out".to_string())
    };
    stream
        .set_write_timeout(Some(remaining()?))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /health/live HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: radar-app-healthcheck\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    // Only the status line matters; read until it is complete.
    let mut response = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !response.contains(&b'\n') {
        stream
            .set_read_timeout(Some(remaining()?))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let status_line = String::from_utf8_lossy(&response);
    let status_line = status_line.lines().next().unwrap_or("").trim();
    let code = status_line.split_whitespace().nth(1);
    if status_line.starts_with("HTTP/") && code == Some("200") {
        Ok(())
    } else {
        Err(format!("unexpected response {status_line:?}"))
    }
}
