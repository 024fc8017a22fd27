//! The operations on either target, chosen here once: one Docker host (`engine`, `scale`,
//! `render`) or the Docker Swarm the daemon manages (`swarm_engine`, the stack file). The
//! commands turn their arguments into inputs, call one function of this module and print what
//! it returns; nothing above this module asks which target it runs on.
//!
//! `verify` and `drill` take the [`Target`] in their own options and choose their topology
//! themselves (`verify::run` is the single entry point for both targets), so they are not
//! wrapped here: that would make this module and theirs import each other.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::config::{Config, Target};
use crate::desired::{self, Deployment};
use crate::docker::DockerClient;
use crate::endpoint::Endpoint;
use crate::engine::{self, UpOptions};
use crate::lock::ProjectLock;
use crate::scale::{self, ScaleOptions};
use crate::status::Report;
use crate::ui::{self, Ui};
use crate::{certificates, envfile, fsutil, render, swarm, swarm_engine};

/// The desired state of a deployment on the daemon: the configuration, and what the daemon
/// says of the app image's own user (pulled first unless `dry_run`), on either target. Says
/// which user the app runs as and why: as a result line of `--dry-run`, else as progress.
pub async fn deployment(
    docker: &DockerClient,
    cfg: &Config,
    dry_run: bool,
    ui: &Ui,
) -> Result<Deployment> {
    let image_user = engine::app_image_user(docker, cfg, !dry_run, ui).await?;
    let line = desired::app_user(cfg.app.user.as_ref(), &image_user).line();
    if dry_run {
        ui.result(&line);
    } else {
        ui.info(&line);
    }
    let tls = certificates::material(docker, cfg, !dry_run, ui).await?;
    Ok(desired::build_with(cfg, &image_user, tls.as_ref()))
}

/// `render`: writes the deployment's files (the Compose file or the stack file, and the
/// configuration files they mount) into `out`, all or none; returns the paths written.
pub fn render(target: Target, d: &Deployment, out: &Path, env_file: &str) -> Result<Vec<PathBuf>> {
    match target {
        Target::Single => render::write(d, out, env_file),
        Target::Swarm => {
            let files: Vec<_> = swarm::files(&swarm::build(d), env_file)
                .into_iter()
                .map(|(rel, content)| (out.join(rel), content))
                .collect();
            // Like the Compose render: no secret in these files, readable by all.
            fsutil::write_all_atomically(&files, 0o644)?;
            Ok(files.into_iter().map(|(p, _)| p).collect())
        }
    }
}

/// `renew`, and the end of `up` with `TLS_MODE=acme`: a certificate from the CA when one is
/// due (or `force`), then nginx given it — reloaded on one host (nothing else changes), the
/// nginx service updated on a swarm. A failure leaves nginx serving the certificate it has.
pub async fn renew(
    target: Target,
    docker: &DockerClient,
    cfg: &Config,
    force: bool,
    timeout: std::time::Duration,
    ui: &Ui,
) -> Result<certificates::Renewal> {
    if target == Target::Single {
        // The CA's HTTP-01 request is answered by nginx: with it stopped, an order could only
        // fail, and the CA's "connection refused" would send the operator to DNS and firewalls.
        let observed = docker.observe(cfg.project.as_str()).await?;
        let serving = observed.containers.iter().any(|c| {
            c.role_kind() == Some(desired::Role::Nginx)
                && c.state == crate::observed::ContainerState::Running
        });
        if !serving {
            bail!(
                "project {}'s nginx is not running: it answers the CA's HTTP-01 challenge and serves the certificate\n  fix: run `radar-deploy up` (it also renews the certificate when due)",
                cfg.project
            );
        }
    }
    // One order at a time per project (a timer's `renew` beside an operator's `up`): the lock
    // is held from the store's first look to nginx's reload (one host; Swarm's `up` takes it
    // itself, after the order).
    let lock = ProjectLock::for_project(&docker.endpoint.host, cfg.project.as_str(), ui).await?;
    let renewal = certificates::renew(docker, cfg, force, ui).await?;
    if target == Target::Swarm {
        drop(lock);
    }
    if let certificates::Renewal::Renewed { .. } = &renewal {
        let d = deployment(docker, cfg, false, ui).await?;
        match target {
            Target::Single => {
                let left = engine::install_certificate(docker, &d, timeout, ui).await?;
                if !left.is_empty() {
                    ui.warn(&format!(
                        "the env file differs from the running stack in more than the certificate ({}); `renew` changed only nginx's certificate: run `radar-deploy up` for the rest",
                        left.join("; ")
                    ));
                }
            }
            Target::Swarm => {
                let stack = swarm::build(&d);
                swarm_engine::up(
                    docker,
                    &stack,
                    timeout,
                    &cfg.app.builder_image.to_string(),
                    ui,
                )
                .await?;
            }
        }
    }
    Ok(renewal)
}

/// What `up` did.
pub enum Up {
    Single {
        project: String,
        containers: usize,
        report: engine::UpReport,
    },
    Swarm {
        project: String,
        services: usize,
        report: swarm_engine::UpReport,
    },
}

impl Up {
    /// The line `up` ends with.
    pub fn summary(&self) -> String {
        match self {
            Up::Single {
                project,
                containers,
                report,
            } => format!(
                "{project} is up: {containers} containers ready, {} step{} applied in {:.1}s",
                report.steps,
                if report.steps == 1 { "" } else { "s" },
                report.elapsed.as_secs_f64()
            ),
            Up::Swarm {
                project,
                services,
                report: r,
            } => format!(
                "{project} is up on the swarm: {services} services ({} created, {} updated, {} \
                 unchanged) ready in {:.1}s{}",
                r.created,
                r.updated,
                r.unchanged,
                r.elapsed.as_secs_f64(),
                if r.nginx_reloaded {
                    "; nginx reloaded for the new tasks"
                } else {
                    ""
                }
            ),
        }
    }
}

/// `up`: converges the stack to `d`. With `opts.dry_run` it prints the plan, changes nothing
/// and returns `None`.
pub async fn up(
    target: Target,
    docker: &DockerClient,
    d: &Deployment,
    opts: &UpOptions<'_>,
    ui: &Ui,
) -> Result<Option<Up>> {
    match target {
        Target::Single => {
            let report = engine::up(docker, d, opts, ui).await?;
            Ok((!opts.dry_run).then(|| Up::Single {
                project: d.project.clone(),
                containers: d.containers.len(),
                report,
            }))
        }
        Target::Swarm => {
            if d.release.as_ref().is_some_and(|r| r.backup_first) {
                bail!(
                    "BACKUP_BEFORE_RELEASE=true: backups are taken on one Docker host only; on a \
                     swarm `up` would run the release command without the backup you asked for\n  \
                     fix: take one by other means and set BACKUP_BEFORE_RELEASE=false, or deploy \
                     with --target single"
                );
            }
            let stack = swarm::build(d);
            if opts.dry_run {
                // What would change on the swarm; the plan prints its own header.
                ui::out(
                    &swarm_engine::plan(docker, &stack, &opts.app_builder_image)
                        .await?
                        .to_string(),
                )?;
                return Ok(None);
            }
            let report =
                swarm_engine::up(docker, &stack, opts.timeout, &opts.app_builder_image, ui).await?;
            Ok(Some(Up::Swarm {
                services: stack.services.len(),
                project: stack.project,
                report,
            }))
        }
    }
}

/// What `scale` did; the new count is saved in the env file on either target.
pub enum Scaled {
    Single(scale::ScaleReport),
    Swarm {
        project: String,
        to: u32,
        env_file: PathBuf,
        report: swarm_engine::ScaleReport,
    },
}

impl Scaled {
    /// The line `scale` ends with.
    pub fn summary(&self) -> String {
        match self {
            Scaled::Single(r) => {
                let change = match (r.added.is_empty(), r.removed.is_empty()) {
                    (true, true) => "nothing to change".to_string(),
                    (false, _) => format!("added {}", r.added.join(", ")),
                    (true, false) => format!("removed {} (log volumes kept)", r.removed.join(", ")),
                };
                format!(
                    "{}: {} → {} app instance{} ({change}) in {:.1}s, no running instance recreated",
                    r.project,
                    r.from,
                    r.to,
                    if r.to == 1 { "" } else { "s" },
                    r.elapsed.as_secs_f64()
                )
            }
            Scaled::Swarm {
                project,
                to,
                report: r,
                ..
            } => format!(
                "{project}: {} → {to} app tasks on the swarm in {:.1}s{}",
                r.from,
                r.elapsed.as_secs_f64(),
                if r.nginx_reloaded {
                    "; nginx reloaded for the new task set"
                } else {
                    ""
                }
            ),
        }
    }

    /// What follows the summary: where the count was saved, and what may override it.
    pub fn notes(&self) -> Vec<String> {
        match self {
            Scaled::Single(r) => {
                let mut notes = vec![format!(
                    "saved APP_INSTANCES={} in {}, so a later `up` keeps {} instances",
                    r.to,
                    r.env_file.display(),
                    r.to
                )];
                if r.overridden_by_environment {
                    notes.push(
                        "note: APP_INSTANCES is also set in the environment, which overrides \
                         the env file"
                            .into(),
                    );
                }
                notes
            }
            Scaled::Swarm { to, env_file, .. } => {
                vec![format!(
                    "saved APP_INSTANCES={to} in {}",
                    env_file.display()
                )]
            }
        }
    }
}

/// A client of the daemon `endpoint` names; `-v` says which one and what it runs.
pub async fn connect(endpoint: &Endpoint, ui: &Ui) -> Result<DockerClient> {
    let docker = DockerClient::connect(endpoint).await?;
    ui.detail(&format!("daemon: {}", docker.describe()));
    Ok(docker)
}

/// `scale N`: changes the number of app instances of the running deployment, keeping the HA
/// mode it runs ([`crate::status::runs_ha`]), then saves the count in the env file.
pub async fn scale(
    target: Target,
    endpoint: &Endpoint,
    opts: &ScaleOptions,
    ui: &Ui,
) -> Result<Scaled> {
    match target {
        Target::Single => Ok(Scaled::Single(scale::scale(endpoint, opts, ui).await?)),
        Target::Swarm => {
            let docker = connect(endpoint, ui).await?;
            let ha = swarm_engine::deployed_with_ha(&docker, &opts.project).await?;
            let cfg = scale::config(opts, ha)?;
            ui.warn_each(&cfg.warnings);
            let image_user = engine::app_image_user(&docker, &cfg, false, ui).await?;
            let tls = certificates::material(&docker, &cfg, false, ui).await?;
            let stack = swarm::build(&desired::build_with(&cfg, &image_user, tls.as_ref()));
            let report = swarm_engine::scale(&docker, &stack, opts.timeout, ui).await?;
            envfile::set_var(&opts.env_file, "APP_INSTANCES", &opts.instances.to_string())?;
            Ok(Scaled::Swarm {
                project: stack.project,
                to: opts.instances,
                env_file: opts.env_file.clone(),
                report,
            })
        }
    }
}

/// What `down` removed.
pub enum Down {
    Single(engine::DownReport),
    Swarm(swarm_engine::DownReport),
}

impl Down {
    /// The line `down` ends with.
    pub fn summary(&self, project: &str) -> String {
        match self {
            Down::Single(r) => format!(
                "{project}: removed {} containers, {} network{}, {} volumes{}",
                r.containers,
                r.networks,
                if r.networks == 1 { "" } else { "s" },
                r.volumes,
                kept_volumes(r.kept_volumes)
            ),
            Down::Swarm(r) => format!(
                "{project}: removed {} services, {} configs/secrets/networks, {} volumes{} from \
                 the swarm{}",
                r.services,
                r.objects,
                r.volumes,
                if r.node_labels > 0 {
                    format!(", {} node labels", r.node_labels)
                } else {
                    String::new()
                },
                kept_volumes(r.kept_volumes)
            ),
        }
    }

    /// What `down` could not remove from here (volumes on other nodes of a swarm).
    pub fn left_elsewhere(&self) -> &[String] {
        match self {
            Down::Single(_) => &[],
            Down::Swarm(r) => &r.elsewhere,
        }
    }
}

/// The note on the data volumes `down` kept; empty when it kept none.
fn kept_volumes(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!(
            "; kept {n} volume{} (data; `down --volumes` deletes them)",
            if n == 1 { "" } else { "s" }
        ),
    }
}

/// How long `down` on a swarm waits for the services' tasks to go before it removes what they
/// used.
const SWARM_DOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// `down`: removes everything the project created; its data volumes only with `volumes`.
pub async fn down(
    target: Target,
    docker: &DockerClient,
    project: &str,
    volumes: bool,
    ui: &Ui,
) -> Result<Down> {
    Ok(match target {
        Target::Single => Down::Single(engine::down(docker, project, volumes, ui).await?),
        Target::Swarm => {
            Down::Swarm(swarm_engine::down(docker, project, volumes, SWARM_DOWN_WAIT, ui).await?)
        }
    })
}

/// `status`: the project's containers (one host) or services and tasks (a swarm).
pub async fn status(target: Target, docker: &DockerClient, project: &str) -> Result<Report> {
    Ok(match target {
        Target::Single => Report::Single(engine::status(docker, project).await?),
        Target::Swarm => Report::Swarm(swarm_engine::status(docker, project).await?),
    })
}

/// What `logs` prints: every container's or task's log, or one service's or instance's.
#[derive(Clone, Copy)]
pub struct LogsOptions<'a> {
    /// A service (`app`: every instance) or one instance (`app-2`).
    pub service: Option<&'a str>,
    /// Keep printing new lines until Ctrl-C.
    pub follow: bool,
    /// Lines from the end of each log.
    pub tail: Option<u32>,
}

/// `logs`: each line prefixed with the instance it came from.
pub async fn logs(
    target: Target,
    docker: &DockerClient,
    project: &str,
    opts: &LogsOptions<'_>,
) -> Result<()> {
    let LogsOptions {
        service,
        follow,
        tail,
    } = *opts;
    match target {
        Target::Single => engine::logs(docker, project, service, follow, tail).await,
        Target::Swarm => swarm_engine::logs(docker, project, service, follow, tail).await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_command_lines_target_converts_once_into_the_operations() {
        use crate::cli::{Target as Flag, TargetArgs};
        assert_eq!(Target::from(Flag::Single), Target::Single);
        assert_eq!(Target::from(Flag::Swarm), Target::Swarm);
        let args = TargetArgs {
            target: Flag::Swarm,
        };
        assert_eq!(Target::from(args), Target::Swarm);
    }

    #[test]
    fn up_ends_with_what_it_did_on_either_target() {
        let single = Up::Single {
            project: "demo".into(),
            containers: 7,
            report: engine::UpReport {
                steps: 1,
                elapsed: Duration::from_millis(2340),
            },
        };
        assert_eq!(
            single.summary(),
            "demo is up: 7 containers ready, 1 step applied in 2.3s"
        );
        let swarm = Up::Swarm {
            project: "demo".into(),
            services: 5,
            report: swarm_engine::UpReport {
                created: 1,
                updated: 2,
                unchanged: 2,
                nginx_reloaded: true,
                elapsed: Duration::from_secs(12),
                ..Default::default()
            },
        };
        assert_eq!(
            swarm.summary(),
            "demo is up on the swarm: 5 services (1 created, 2 updated, 2 unchanged) ready in \
             12.0s; nginx reloaded for the new tasks"
        );
    }

    #[test]
    fn scale_names_the_change_and_where_the_count_was_saved() {
        let single = Scaled::Single(scale::ScaleReport {
            project: "demo".into(),
            from: 2,
            to: 3,
            added: vec!["app-3".into()],
            removed: vec![],
            elapsed: Duration::from_millis(4100),
            env_file: ".env".into(),
            overridden_by_environment: true,
        });
        assert_eq!(
            single.summary(),
            "demo: 2 → 3 app instances (added app-3) in 4.1s, no running instance recreated"
        );
        assert_eq!(single.notes().len(), 2, "{:?}", single.notes());
        assert!(single.notes()[1].contains("also set in the environment"));
        let swarm = Scaled::Swarm {
            project: "demo".into(),
            to: 1,
            env_file: ".env".into(),
            report: swarm_engine::ScaleReport {
                from: 3,
                nginx_reloaded: false,
                elapsed: Duration::from_secs(3),
            },
        };
        assert_eq!(
            swarm.summary(),
            "demo: 3 → 1 app tasks on the swarm in 3.0s"
        );
        assert_eq!(swarm.notes(), ["saved APP_INSTANCES=1 in .env"]);
    }

    #[test]
    fn down_names_what_it_removed_and_kept() {
        let single = Down::Single(engine::DownReport {
            containers: 8,
            networks: 1,
            volumes: 0,
            kept_volumes: 4,
        });
        assert_eq!(
            single.summary("demo"),
            "demo: removed 8 containers, 1 network, 0 volumes; kept 4 volumes (data; `down \
             --volumes` deletes them)"
        );
        assert!(single.left_elsewhere().is_empty());
        let swarm = Down::Swarm(swarm_engine::DownReport {
            services: 6,
            objects: 9,
            volumes: 3,
            node_labels: 2,
            elsewhere: vec!["node b keeps ...".into()],
            ..Default::default()
        });
        assert_eq!(
            swarm.summary("demo"),
            "demo: removed 6 services, 9 configs/secrets/networks, 3 volumes, 2 node labels \
             from the swarm"
        );
        assert_eq!(swarm.left_elsewhere().len(), 1);
    }
}
