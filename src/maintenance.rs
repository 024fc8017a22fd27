//! Maintenance mode (one host): while the flag file [`MAINTENANCE_FLAG`] exists in nginx's
//! container, nginx answers every request but its own `/health` with 503, `Retry-After` and a
//! small page, and no request reaches an instance (templates/nginx.conf.j2). The flag lives
//! on nginx's named volume, so it survives nginx being recreated by a later `up`.
//!
//! Switched through the Engine API: on = an upload of the file, off = `rm -f` inside nginx
//! (the Engine API has no call that deletes a file); asked by downloading it.

use anyhow::{bail, Context, Result};

use crate::config::Target;
use crate::desired::Role;
use crate::docker::{plain_file_tar, DockerClient};
use crate::observed::ContainerState;
use crate::templates::MAINTENANCE_FLAG;

/// Backup, restore and maintenance are one-host operations; on Swarm they refuse (exit 2).
pub fn refuse_swarm(target: Target, command: &str) -> Result<()> {
    match target {
        Target::Single => Ok(()),
        Target::Swarm => bail!(
            "`radar-deploy {command}` is not available on Swarm (--target swarm): it works on \
             one Docker host only. Nothing was changed.\n  fix: on a swarm, back up with \
             `pg_dump` in the postgres task's container (`docker exec` on its node) and keep \
             clients out at your own balancer"
        ),
    }
}

/// The project's running nginx container.
pub async fn nginx(docker: &DockerClient, project: &str) -> Result<String> {
    let containers = docker.list_containers(project).await?;
    let Some(c) = containers
        .iter()
        .find(|c| c.role_kind() == Some(Role::Nginx))
    else {
        bail!(
            "project {project} has no nginx container on {}\n  fix: `radar-deploy up` first \
             (or name the project with --project)",
            docker.endpoint.host
        );
    };
    if c.state != ContainerState::Running {
        bail!(
            "nginx of project {project} ({}) is not running\n  fix: `radar-deploy up`",
            c.name
        );
    }
    Ok(c.name.clone())
}

/// Whether nginx's maintenance flag is set.
pub async fn is_on(docker: &DockerClient, nginx: &str) -> Result<bool> {
    Ok(docker
        .read_file(nginx, MAINTENANCE_FLAG)
        .await
        .with_context(|| format!("cannot read the maintenance flag of {nginx}"))?
        .is_some())
}

/// Sets or clears the flag; returns whether it was set before. Takes effect with the next
/// request: nginx checks the file on each one, no reload.
pub async fn set(docker: &DockerClient, nginx: &str, on: bool) -> Result<bool> {
    let was = is_on(docker, nginx).await?;
    if on {
        let note = b"set by radar-deploy: `radar-deploy maintenance off` clears it\n";
        docker
            .upload(nginx, plain_file_tar(MAINTENANCE_FLAG, note))
            .await
            .with_context(|| format!("cannot set the maintenance flag in {nginx}"))?;
    } else {
        let cmd = ["rm", "-f", MAINTENANCE_FLAG].map(String::from);
        let (code, out) = docker
            .exec(nginx, &cmd)
            .await
            .with_context(|| format!("cannot clear the maintenance flag in {nginx}"))?;
        if code != 0 {
            bail!(
                "cannot clear the maintenance flag in {nginx}: `rm -f {MAINTENANCE_FLAG}` exited \
                 {code}: {}",
                out.trim()
            );
        }
    }
    if is_on(docker, nginx).await? != on {
        bail!(
            "the maintenance flag of {nginx} did not change (still {})",
            if on { "off" } else { "on" }
        );
    }
    Ok(was)
}
