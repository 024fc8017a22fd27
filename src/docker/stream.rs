//! Commands inside containers whose input or output is a byte stream too large to hold in
//! memory: `backup` streams `pg_dump`'s stdout to a host file, `restore` streams a file into
//! `pg_restore`'s and `redis-cli --pipe`'s stdin. Both go through the exec's attached
//! connection, so they work against a remote daemon (no bind mount, no host path).

use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{DockerClient, DockerError, Result};

/// Standard error kept for the message of a failed command: its last bytes are what explain it.
const STDERR_KEPT: usize = 16 * 1024;

/// What a streamed command left behind: its exit code and (the end of) what it said on stderr
/// (with [`DockerClient::exec_input`], stdout too).
#[derive(Debug, Clone)]
pub struct ExecEnd {
    pub code: i64,
    pub said: String,
}

fn push_tail(said: &mut Vec<u8>, bytes: &[u8]) {
    said.extend_from_slice(bytes);
    if said.len() > STDERR_KEPT {
        said.drain(..said.len() - STDERR_KEPT);
    }
}

impl DockerClient {
    fn io_error(container: &str, what: &str, e: std::io::Error) -> DockerError {
        DockerError::Other {
            kind: "container",
            name: container.to_string(),
            message: format!("{what}: {e}"),
        }
    }

    pub(super) async fn start_attached(
        &self,
        container: &str,
        cmd: &[String],
        env: &[String],
        stdin: bool,
    ) -> Result<(String, StartExecResults)> {
        let map = |e| DockerError::from_bollard("container", container, e);
        let exec = self
            .docker
            .create_exec(
                container,
                ExecConfig {
                    cmd: Some(cmd.to_vec()),
                    env: Some(env.to_vec()),
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(map)?;
        let started = self.docker.start_exec(&exec.id, None).await.map_err(map)?;
        Ok((exec.id, started))
    }

    /// The exit code of a finished exec. Its output can end a moment before the daemon
    /// records the exit: asked again (briefly) while it still says running.
    pub(super) async fn exit_code(&self, container: &str, exec_id: &str) -> Result<i64> {
        for _ in 0..40 {
            let info = self
                .docker
                .inspect_exec(exec_id)
                .await
                .map_err(|e| DockerError::from_bollard("container", container, e))?;
            if info.running != Some(true) {
                return Ok(info.exit_code.unwrap_or(-1));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(-1)
    }

    /// Runs `cmd` (with the extra environment `env`, `NAME=value`) and writes its stdout to
    /// `out` as it arrives; stderr is kept for the caller's message. Returns the byte count
    /// written along with how the command ended.
    pub async fn exec_output<W: AsyncWrite + Unpin>(
        &self,
        container: &str,
        cmd: &[String],
        env: &[String],
        out: &mut W,
    ) -> Result<(u64, ExecEnd)> {
        let (id, started) = self.start_attached(container, cmd, env, false).await?;
        let mut said = Vec::new();
        let mut written = 0u64;
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(chunk) = output.next().await {
                match chunk.map_err(|e| DockerError::from_bollard("container", container, e))? {
                    LogOutput::StdOut { message } => {
                        out.write_all(&message)
                            .await
                            .map_err(|e| Self::io_error(container, "writing its output", e))?;
                        written += message.len() as u64;
                    }
                    LogOutput::StdErr { message } | LogOutput::Console { message } => {
                        push_tail(&mut said, &message)
                    }
                    LogOutput::StdIn { .. } => {}
                }
            }
        }
        out.flush()
            .await
            .map_err(|e| Self::io_error(container, "writing its output", e))?;
        let code = self.exit_code(container, &id).await?;
        Ok((
            written,
            ExecEnd {
                code,
                said: String::from_utf8_lossy(&said).into_owned(),
            },
        ))
    }

    /// Runs `cmd` with `input` streamed to its stdin, then closes its stdin (end of file) and
    /// waits for it to end. Its stdout and stderr (their last bytes) are returned.
    pub async fn exec_input<R: AsyncRead + Unpin>(
        &self,
        container: &str,
        cmd: &[String],
        env: &[String],
        input: &mut R,
    ) -> Result<ExecEnd> {
        let (id, started) = self.start_attached(container, cmd, env, true).await?;
        let mut said = Vec::new();
        if let StartExecResults::Attached {
            mut output,
            input: mut stdin,
        } = started
        {
            // Output is read while input is written: a command that answers as it reads
            // (redis-cli --pipe) would otherwise fill its pipe and stall both sides.
            let feed = async {
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = input
                        .read(&mut buf)
                        .await
                        .map_err(|e| Self::io_error(container, "reading the input", e))?;
                    if n == 0 {
                        break;
                    }
                    if stdin.write_all(&buf[..n]).await.is_err() {
                        // The command stopped reading (it failed): its exit code and output
                        // say why.
                        return Ok::<(), DockerError>(());
                    }
                }
                // Half-closes the connection: the daemon closes the command's stdin.
                let _ = stdin.shutdown().await;
                Ok(())
            };
            let drain = async {
                while let Some(chunk) = output.next().await {
                    match chunk {
                        Ok(LogOutput::StdOut { message })
                        | Ok(LogOutput::StdErr { message })
                        | Ok(LogOutput::Console { message }) => push_tail(&mut said, &message),
                        Ok(LogOutput::StdIn { .. }) => {}
                        Err(e) => return Err(DockerError::from_bollard("container", container, e)),
                    }
                }
                Ok(())
            };
            let (fed, drained) = tokio::join!(feed, drain);
            fed?;
            drained?;
        }
        let code = self.exit_code(container, &id).await?;
        Ok(ExecEnd {
            code,
            said: String::from_utf8_lossy(&said).into_owned(),
        })
    }
}
