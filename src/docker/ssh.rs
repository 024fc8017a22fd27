//! Docker over ssh, the way the docker CLI does it (cli/connhelper): every HTTP connection is an
//! `ssh` process running `docker system dial-stdio` on the remote host, and the process's
//! stdin/stdout are the connection. It uses the user's own `ssh` (OpenSSH on Linux, macOS and
//! Windows 10+), so `~/.ssh/config`, agents and known hosts work as they do for `docker -H ssh://`.
//!
//! bollard's own `ssh` feature drives OpenSSH's control master through the `openssh` crate, which
//! exists only on unix; this transport works on every platform.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bollard::{BollardRequest, Docker};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::oneshot;

/// The ssh arguments before the remote command, as the docker CLI passes them.
pub fn ssh_args(user: Option<&str>, host: &str, port: Option<u16>, batch: bool) -> Vec<String> {
    let mut args = vec![
        "-o".to_string(),
        "ConnectTimeout=30".to_string(),
        "-T".into(),
    ];
    if batch {
        // Off a terminal nobody can answer a password prompt: fail at once instead of hanging.
        args.extend(["-o".to_string(), "BatchMode=yes".to_string()]);
    }
    if let Some(u) = user {
        args.extend(["-l".to_string(), u.to_string()]);
    }
    if let Some(p) = port {
        args.extend(["-p".to_string(), p.to_string()]);
    }
    args.extend([
        "--".to_string(),
        host.to_string(),
        "docker".into(),
        "system".into(),
        "dial-stdio".into(),
    ]);
    args
}

/// A client whose connections are ssh processes.
pub fn connect(
    user: Option<&str>,
    host: &str,
    port: Option<u16>,
    timeout_secs: u64,
) -> Result<Docker, bollard::errors::Error> {
    use std::io::IsTerminal;
    let connector = SshConnector {
        args: Arc::new(ssh_args(user, host, port, !std::io::stdin().is_terminal())),
    };
    let client = Arc::new(Client::builder(TokioExecutor::new()).build(connector));
    Docker::connect_with_custom_transport(
        move |req: BollardRequest| {
            let client = Arc::clone(&client);
            async move {
                client.request(req).await.map_err(|e| {
                    // Keep the cause (ssh's own stderr) readable in the error chain.
                    bollard::errors::Error::IOError {
                        err: io::Error::other(super::error_chain(&e)),
                    }
                })
            }
        },
        // The scheme hyper needs; the host part only fills the Host header.
        Some("http://docker"),
        timeout_secs,
        bollard::API_DEFAULT_VERSION,
    )
}

#[derive(Clone)]
struct SshConnector {
    args: Arc<Vec<String>>,
}

impl tower_service::Service<hyper::Uri> for SshConnector {
    type Response = TokioIo<SshStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        let args = Arc::clone(&self.args);
        Box::pin(async move { SshStream::spawn(&args).map(TokioIo::new) })
    }
}

/// One `ssh … docker system dial-stdio` process as a byte stream.
struct SshStream {
    // Held so the process lives as long as the connection; killed when it is dropped.
    _child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    /// Whether any byte came back: an end of stream before that is ssh failing to connect.
    answered: bool,
    /// ssh's stderr, complete once the sender fires (the process closed it).
    stderr: Arc<Mutex<String>>,
    stderr_done: oneshot::Receiver<()>,
}

impl SshStream {
    fn spawn(args: &[String]) -> io::Result<SshStream> {
        let mut child = tokio::process::Command::new("ssh")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot run `ssh` ({e}); an ssh:// endpoint needs an OpenSSH client on PATH"
                    ),
                )
            })?;
        let (Some(stdin), Some(stdout), Some(mut err)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(io::Error::other("ssh started without its pipes"));
        };
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = oneshot::channel();
        let sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf).await;
            if let Ok(mut s) = sink.lock() {
                *s = String::from_utf8_lossy(&buf).trim().to_string();
            }
            let _ = tx.send(());
        });
        Ok(SshStream {
            _child: child,
            stdin: Some(stdin),
            stdout,
            answered: false,
            stderr,
            stderr_done: rx,
        })
    }
}

impl Connection for SshStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stdout).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.answered = true;
            return Poll::Ready(Ok(()));
        }
        if self.answered {
            return Poll::Ready(Ok(()));
        }
        // The stream ended before the daemon said anything: ssh (or the remote docker) failed,
        // and the reason is on its stderr.
        let _ = ready!(Pin::new(&mut self.stderr_done).poll(cx));
        let said = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            if said.is_empty() {
                "ssh ended without a word (does `docker system dial-stdio` work on the remote host?)"
                    .to_string()
            } else {
                format!("ssh: {said}")
            },
        )))
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.stdin.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_write(cx, data),
            None => Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe))),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stdin.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stdin.as_mut() {
            Some(stdin) => {
                ready!(Pin::new(stdin).poll_shutdown(cx))?;
                // Closing stdin is how dial-stdio learns the client is done writing.
                self.stdin = None;
                Poll::Ready(Ok(()))
            }
            None => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_the_docker_clis() {
        assert_eq!(
            ssh_args(Some("deploy"), "10.0.0.9", Some(2222), true).join(" "),
            "-o ConnectTimeout=30 -T -o BatchMode=yes -l deploy -p 2222 -- 10.0.0.9 docker system dial-stdio"
        );
        assert_eq!(
            ssh_args(None, "host", None, false).join(" "),
            "-o ConnectTimeout=30 -T -- host docker system dial-stdio"
        );
    }
}
