//! The engine's operations behind `up`, `down`, `status` and `logs`: preflight, lock,
//! snapshot → plan → apply, and the read-only views. Commands call these; tests run the CLI.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;

use crate::apply::{self, ApplyOptions, HostEngine};
use crate::config::Config;
use crate::desired::{Deployment, ImageUser, Role};
use crate::docker::DockerClient;
use crate::lock::ProjectLock;
use crate::observed::{ContainerState, ObservedContainer};
use crate::plan;
use crate::status::{ContainerStatus, HostStatus, PortStatus};
use crate::ui::{self, Ui};
use crate::{app_image, certificates};

pub struct UpOptions<'a> {
    pub timeout: Duration,
    pub dry_run: bool,
    /// APP_BUILDER_IMAGE: builds the reference app image when it is missing or stale.
    pub app_builder_image: String,
    /// How to take the backup the plan may ask for before the release command
    /// (`BACKUP_BEFORE_RELEASE`; see [`apply::BeforeRelease`]).
    pub before_release: Option<&'a apply::BeforeRelease<'a>>,
}

/// What `up` did, for the caller's report.
pub struct UpReport {
    pub steps: usize,
    pub elapsed: Duration,
}

/// The variable a role's image comes from, for messages.
fn image_var(role: Role) -> &'static str {
    match role {
        Role::Postgres => "POSTGRES_IMAGE",
        Role::Redis | Role::RedisReplica | Role::Sentinel => "REDIS_IMAGE",
        Role::App | Role::Release => "APP_IMAGE",
        Role::Nginx => "NGINX_IMAGE",
    }
}

/// Converges the running stack to `d`.
pub async fn up(
    client: &DockerClient,
    d: &Deployment,
    opts: &UpOptions<'_>,
    ui: &Ui,
) -> Result<UpReport> {
    let t0 = Instant::now();
    let app_image = d
        .containers
        .iter()
        .find(|c| c.role == Role::App)
        .map(|c| c.image.as_str());
    if opts.dry_run {
        if let Some(image) = app_image {
            let decision = app_image::check(client, image).await?;
            if let Some(line) = app_image::plan_line(image, &opts.app_builder_image, &decision) {
                ui.result(&line);
            }
        }
        let observed = client.observe(&d.project).await?;
        ui.result(&plan::plan(d, &observed).to_string());
        return Ok(UpReport {
            steps: 0,
            elapsed: t0.elapsed(),
        });
    }
    let _lock = ProjectLock::for_project(&client.endpoint.host, &d.project, ui).await?;
    let work = async {
        // Before the plan, so the instances are created from the image just built.
        if let Some(image) = app_image {
            app_image::ensure(client, image, &opts.app_builder_image, ui).await?;
        }
        let apply_opts = ApplyOptions {
            timeout: opts.timeout,
            before_release: opts.before_release,
        };
        converge(client, d, &apply_opts, ui).await
    };
    // Ctrl-C drops whatever is in flight; the lock is released on the way out, and the next
    // `up` plans from what it then finds (created-but-not-started containers are started).
    let steps = tokio::select! {
        r = work => r?,
        _ = tokio::signal::ctrl_c() => bail!(
            "interrupted: the stack is partly converged; run `radar-deploy up` again to finish"
        ),
    };
    Ok(UpReport {
        steps,
        elapsed: t0.elapsed(),
    })
}

/// `renew` on one host: nginx reloaded with the certificate in `d` (checked by `nginx -t`
/// first, like every reload), and nothing else changed. Returns what else the env file would
/// change, for `up`. The caller holds the project lock (it holds it from the order on).
pub async fn install_certificate(
    client: &DockerClient,
    d: &Deployment,
    timeout: Duration,
    ui: &Ui,
) -> Result<Vec<String>> {
    let observed = client.observe(&d.project).await?;
    let (plan, left) = plan::certificate_only(d, &observed).map_err(|why| {
        anyhow!("cannot give nginx the new certificate by a reload: {why}\n  fix: run `radar-deploy up`, which installs it with the other changes")
    })?;
    ui.info(plan.to_string().trim_end());
    let opts = ApplyOptions {
        timeout,
        before_release: None,
    };
    apply::apply(client, d, &plan, &opts, ui).await?;
    Ok(left)
}

/// Snapshot → plan → preflight → apply: the part of `up` that is not about the app's image.
/// Returns the number of steps the plan had.
async fn converge<E: HostEngine>(
    client: &E,
    d: &Deployment,
    opts: &ApplyOptions<'_>,
    ui: &Ui,
) -> Result<usize> {
    let observed = client.observe(&d.project).await?;
    let plan = plan::plan(d, &observed);
    if plan.is_empty() {
        ui.detail(&plan.to_string());
    } else {
        ui.info(plan.to_string().trim_end());
        preflight_images(client, d, ui).await?;
        preflight_port(client, d).await?;
    }
    apply::apply(client, d, &plan, opts, ui).await?;
    Ok(plan.steps.len())
}

/// Every image present, or pulled now; a failed pull names the image and its variable.
async fn preflight_images<E: HostEngine>(client: &E, d: &Deployment, ui: &Ui) -> Result<()> {
    let mut seen = BTreeSet::new();
    for c in &d.containers {
        if !seen.insert(c.image.as_str()) {
            continue;
        }
        if client.image_exists(&c.image).await? {
            continue;
        }
        pull_for(client, &c.image, c.role, ui).await?;
    }
    Ok(())
}

/// Pulls the image of `role`; a failed pull names the image, its variable and the fix.
async fn pull_for<E: HostEngine>(client: &E, image: &str, role: Role, ui: &Ui) -> Result<()> {
    let var = image_var(role);
    pull(client, image, ui).await.map_err(|e| {
        let fix = match role {
            Role::App => format!(
                "check the name, or make the image available to this Docker host \
                 (push it to a registry it reaches, or build/load it here), or unset {var} \
                 to deploy the reference app"
            ),
            role => format!(
                "check the name and the registry; without a registry, build local stand-ins \
                 with `scripts/offline-images.sh` and set {var}=radar-offline/{svc}:bookworm",
                svc = match role {
                    Role::Postgres => "postgres",
                    Role::Nginx => "nginx",
                    _ => "redis",
                }
            ),
        };
        anyhow!("cannot pull {image} (set by {var}): {e}\n  fix: {fix}")
    })
}

/// The app image's own user, as the desired state needs it ([`desired::app_user`]): known
/// without asking for the reference image; else inspected, after pulling the image first when
/// `pull` (a missing image is [`ImageUser::Unknown`] otherwise, e.g. for `--dry-run`).
pub async fn app_image_user<E: HostEngine>(
    client: &E,
    cfg: &Config,
    pull: bool,
    ui: &Ui,
) -> Result<ImageUser> {
    let known = ImageUser::without_daemon(cfg);
    if known != ImageUser::Unknown {
        return Ok(known);
    }
    let image = cfg.app.image.as_str();
    if pull && !client.image_exists(image).await? {
        pull_for(client, image, Role::App, ui).await?;
    }
    Ok(match client.image_user(image).await? {
        Some(user) => ImageUser::Is(user),
        None => ImageUser::Unknown,
    })
}

async fn pull<E: HostEngine>(client: &E, image: &str, ui: &Ui) -> Result<()> {
    if std::io::stderr().is_terminal() && !ui.quiet {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(format!("pulling {image}"));
        bar.enable_steady_tick(Duration::from_millis(120));
        let r = client
            .pull(image, |layer, status, cur, total| {
                let amount = match (cur, total) {
                    (Some(c), Some(t)) if t > 0 => format!(" {}/{} MB", c >> 20, t >> 20),
                    _ => String::new(),
                };
                bar.set_message(format!("pulling {image}: {layer} {status}{amount}"));
            })
            .await;
        bar.finish_and_clear();
        r?;
    } else {
        let mut last = String::new();
        client
            .pull(image, |layer, status, _, _| {
                let line = format!("pulling {image}: {layer} {status}");
                if line != last
                    && !status.starts_with("Downloading")
                    && !status.starts_with("Extracting")
                {
                    ui.info(&line);
                    last = line;
                }
            })
            .await?;
    }
    ui.info(&format!("pulled {image}"));
    Ok(())
}

/// On a local daemon, HTTP_PORT must be free, unless one of the project's own containers holds
/// it. That is asked of Docker when the port is found taken, not read from the snapshot: after an
/// interrupted `up` the holder may be a container that is created, starting, restarting or being
/// replaced, which the list call shows without ports, or one that changed state while images
/// were pulled.
async fn preflight_port<E: HostEngine>(client: &E, d: &Deployment) -> Result<()> {
    if !client.is_local() {
        return Ok(());
    }
    for port in d.containers.iter().flat_map(|c| c.published.iter()) {
        // A port our container has just released (a stop in flight) is free a moment later.
        let mut tries = 0;
        while port_taken(port.host) {
            if published_by_project(client, &d.project, port.host).await? {
                break;
            }
            tries += 1;
            if tries == PORT_TRIES {
                bail!(
                    "HTTP_PORT={} is already in use on this machine, by a process that is not one of project {}'s containers\n  fix: stop what listens there, or set HTTP_PORT to a free port in the env file",
                    port.host,
                    d.project
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

const PORT_TRIES: u32 = 4;

fn port_taken(port: u16) -> bool {
    matches!(
        std::net::TcpListener::bind(("0.0.0.0", port)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse
    )
}

/// Whether a container of the project, in any state but stopped, is configured to publish
/// `port`: then it, or its restart, holds the port.
async fn published_by_project<E: HostEngine>(client: &E, project: &str, port: u16) -> Result<bool> {
    for c in client.list_containers(project).await? {
        if stopped(&c) {
            continue;
        }
        // Gone since the list call: it holds nothing.
        let configured = match client.container_facts(&c.name).await {
            Ok(facts) => facts.published_host_ports,
            Err(e) if e.is_not_found() => vec![],
            Err(e) => return Err(e.into()),
        };
        if holds_port(&c, &configured, port) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn stopped(c: &ObservedContainer) -> bool {
    matches!(c.state, ContainerState::Exited | ContainerState::Dead)
}

/// A container that is not stopped holds the port it publishes, or is about to: created (a
/// start in flight), restarting, paused, being removed. The list call shows ports only while it
/// runs, so its configuration decides.
fn holds_port(c: &ObservedContainer, configured: &[u16], port: u16) -> bool {
    !stopped(c) && (c.ports.iter().any(|(host, _)| *host == port) || configured.contains(&port))
}

pub struct DownReport {
    pub containers: usize,
    pub networks: usize,
    pub volumes: usize,
    pub kept_volumes: usize,
}

/// Removes every object labelled with the project, and nothing else.
pub async fn down<E: HostEngine>(
    client: &E,
    project: &str,
    volumes: bool,
    ui: &Ui,
) -> Result<DownReport> {
    let _lock = ProjectLock::for_project(client.daemon_host(), project, ui).await?;
    let observed = client.observe(project).await?;
    // nginx first, so no request reaches an instance that is stopping.
    let (front, rest): (Vec<_>, Vec<_>) = observed
        .containers
        .iter()
        .partition(|c| c.role() == Some(Role::Nginx.service()));
    for group in [front, rest] {
        futures_util::future::try_join_all(group.iter().map(|c| {
            let client = &client;
            async move {
                client
                    .stop_and_remove(&c.name, 30)
                    .await
                    .with_context(|| format!("removing {}", c.name))?;
                ui.detail(&format!("  removed {}", c.name));
                Ok::<_, anyhow::Error>(())
            }
        }))
        .await?;
    }
    for n in &observed.networks {
        client.remove_network(&n.name).await?;
    }
    if volumes {
        for v in &observed.volumes {
            client.remove_volume(&v.name).await?;
        }
    }
    Ok(DownReport {
        containers: observed.containers.len(),
        networks: observed.networks.len(),
        volumes: if volumes { observed.volumes.len() } else { 0 },
        kept_volumes: if volumes { 0 } else { observed.volumes.len() },
    })
}

pub async fn status(client: &DockerClient, project: &str) -> Result<HostStatus> {
    let (containers, networks, volumes) = tokio::try_join!(
        client.list_containers(project),
        client.list_networks(project),
        client.list_volumes(project),
    )?;
    let mut containers: Vec<ContainerStatus> = containers
        .into_iter()
        .map(|c| ContainerStatus {
            service: c.role().unwrap_or("?").to_string(),
            instance: c.alias(),
            id: c.id.chars().take(12).collect(),
            image: c.image.clone(),
            state: c.state,
            health: c.health,
            status: c.status.clone(),
            ports: c
                .ports
                .iter()
                .map(|(host, container)| PortStatus {
                    host: *host,
                    container: *container,
                })
                .collect(),
            name: c.name,
        })
        .collect();
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    let nginx = containers
        .iter()
        .find(|c| c.service == "nginx" && c.state == ContainerState::Running);
    let maintenance = match nginx {
        Some(c) => crate::maintenance::is_on(client, &c.name).await?,
        None => false,
    };
    let certificate = match nginx {
        Some(c) => certificates::served(client, &c.name).await,
        None => None,
    };
    Ok(HostStatus {
        last_minute: Default::default(),
        maintenance,
        certificate,
        project: project.to_string(),
        containers,
        networks: networks.into_iter().map(|n| n.name).collect(),
        volumes: volumes.into_iter().map(|v| v.name).collect(),
    })
}

/// Prints the logs of the project's containers, each line prefixed with `instance | `.
/// `service` selects a service (`app`: every instance) or one instance (`app-2`).
pub async fn logs(
    client: &DockerClient,
    project: &str,
    service: Option<&str>,
    follow: bool,
    tail: Option<u32>,
) -> Result<()> {
    let mut containers = client.list_containers(project).await?;
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    if containers.is_empty() {
        bail!("project {project} has no containers\n  fix: `radar-deploy up` first, or pass --project");
    }
    let selected: Vec<_> = containers
        .iter()
        .filter(|c| service.is_none_or(|s| c.role() == Some(s) || c.alias() == s))
        .collect();
    if selected.is_empty() {
        let known: BTreeSet<String> = containers
            .iter()
            .flat_map(|c| [c.role().unwrap_or("?").to_string(), c.alias()])
            .collect();
        bail!(
            "no service or instance {:?} in project {project}; known: {}",
            service.unwrap_or_default(),
            known.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let streams = selected
        .iter()
        .map(|c| (c.alias(), client.logs(&c.id, tail, follow).boxed()))
        .collect();
    print_logs(streams, follow).await
}

/// Prints named log streams, each line prefixed with its name (padded to the longest): one
/// stream after the other, or with `follow` interleaved as lines arrive until Ctrl-C. Shared
/// by both targets' `logs`.
pub(crate) async fn print_logs(
    named: Vec<(
        String,
        futures_util::stream::BoxStream<'_, crate::docker::Result<crate::docker::LogLine>>,
    )>,
    follow: bool,
) -> Result<()> {
    let width = named.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let streams: Vec<_> = named
        .into_iter()
        .map(|(name, s)| {
            let prefix = format!("{name:<width$} | ");
            s.map(move |line| line.map(|l| format!("{prefix}{}", l.text)))
                .boxed()
        })
        .collect();
    if follow {
        let mut merged = futures_util::stream::select_all(streams);
        loop {
            tokio::select! {
                line = merged.next() => match line {
                    Some(line) => if !ui::out(&format!("{}\n", line?))? { break },
                    None => break,
                },
                _ = tokio::signal::ctrl_c() => break,
            }
        }
    } else {
        for mut s in streams {
            while let Some(line) = s.next().await {
                if !ui::out(&format!("{}\n", line?))? {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(state: ContainerState, listed: &[(u16, u16)]) -> ObservedContainer {
        ObservedContainer {
            name: "p-nginx".into(),
            state,
            ports: listed.to_vec(),
            ..ObservedContainer::default()
        }
    }

    #[test]
    fn the_projects_own_container_holds_its_port_in_every_state_but_stopped() {
        use ContainerState::*;
        for state in [Created, Restarting, Paused, Removing, Other] {
            // Listed without ports (as Docker lists all but a running container).
            let c = container(state, &[]);
            assert!(holds_port(&c, &[8080], 8080), "{state:?}");
            assert!(!holds_port(&c, &[8080], 9090), "{state:?}");
        }
        assert!(holds_port(&container(Running, &[(8080, 80)]), &[], 8080));
        for state in [Exited, Dead] {
            assert!(
                !holds_port(&container(state, &[]), &[8080], 8080),
                "{state:?}"
            );
        }
    }

    use crate::config::testing::config;
    use crate::desired;
    use crate::fake::host::FakeHost;

    fn ui() -> Ui {
        Ui::new(true, true, 0)
    }

    fn deployment(extra: &str) -> Deployment {
        desired::build(&config(extra, false))
    }

    const LONG: ApplyOptions<'static> = ApplyOptions {
        timeout: Duration::from_secs(30),
        before_release: None,
    };

    #[tokio::test]
    async fn up_plans_from_the_snapshot_and_a_converged_stack_needs_nothing() {
        let fake = FakeHost::new();
        let d = deployment("");
        let steps = converge(&fake, &d, &LONG, &ui()).await.unwrap();
        assert!(steps > d.containers.len(), "{steps}");
        let before = fake.calls().len();
        assert_eq!(converge(&fake, &d, &LONG, &ui()).await.unwrap(), 0);
        let changes: Vec<String> = fake.calls()[before..]
            .iter()
            .filter(|c| {
                ["create", "start", "upload", "stop_and_remove"]
                    .contains(&c.split(' ').next().unwrap())
            })
            .cloned()
            .collect();
        assert!(changes.is_empty(), "{changes:#?}");
    }

    #[tokio::test]
    async fn the_app_images_user_is_inspected_after_pulling_it_and_only_for_another_image() {
        let fake = FakeHost::new();
        // The reference image's user is known without asking the daemon.
        let reference = app_image_user(&fake, &config("", false), true, &ui()).await;
        assert_eq!(reference.unwrap(), ImageUser::Is(desired::APP_USER.into()));
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
        let cfg = config("APP_IMAGE=example/web:1\n", false);
        fake.missing_image("example/web:1");
        // --dry-run pulls nothing: the user is not known yet.
        let dry = app_image_user(&fake, &cfg, false, &ui()).await.unwrap();
        assert_eq!(dry, ImageUser::Unknown);
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
        // `up` pulls it first, then reads its user (the fake's images set none: root).
        let up = app_image_user(&fake, &cfg, true, &ui()).await.unwrap();
        assert_eq!(up, ImageUser::Is(String::new()));
        assert_eq!(fake.calls(), ["pull example/web:1"]);
        let d = desired::build_with(&cfg, &up, None);
        let app = d.containers_of(Role::App).next().unwrap();
        assert_eq!(app.user.as_deref(), Some(desired::APP_USER));
    }

    #[tokio::test]
    async fn a_missing_image_is_pulled_before_anything_is_created() {
        let fake = FakeHost::new();
        let d = deployment("");
        let image = d
            .containers_of(Role::Postgres)
            .next()
            .unwrap()
            .image
            .clone();
        fake.missing_image(&image);
        converge(&fake, &d, &LONG, &ui()).await.unwrap();
        let pulled = fake.position(&format!("pull {image}"));
        assert!(fake.calls()[..pulled]
            .iter()
            .all(|c| !c.starts_with("create")));
    }

    #[tokio::test]
    async fn a_failed_pull_names_the_image_and_its_variable() {
        let fake = FakeHost::new();
        let d = deployment("NGINX_IMAGE=example/nginx:none");
        fake.missing_image("example/nginx:none");
        fake.fail("pull", "example/nginx:none");
        let err = converge(&fake, &d, &LONG, &ui())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot pull example/nginx:none (set by NGINX_IMAGE)"),
            "{err}"
        );
        assert!(fake.container_names().is_empty());
    }

    /// A port some other process of this machine listens on.
    fn taken_port() -> (std::net::TcpListener, u16) {
        let l = std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        (l, port)
    }

    #[tokio::test]
    async fn a_port_taken_by_another_process_stops_up_before_any_change() {
        let (_listener, port) = taken_port();
        let fake = FakeHost::local();
        let d = deployment(&format!("HTTP_PORT={port}"));
        let err = converge(&fake, &d, &LONG, &ui())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "HTTP_PORT={port} is already in use on this machine, by a process that is not one of project reporadar's containers"
            )),
            "{err}"
        );
        assert!(fake.container_names().is_empty());
    }

    #[tokio::test]
    async fn a_port_the_projects_own_container_publishes_is_its_own() {
        let fake = FakeHost::new();
        let (_listener, port) = taken_port();
        let d = deployment(&format!("HTTP_PORT={port}"));
        converge(&fake, &d, &LONG, &ui()).await.unwrap();
        assert!(published_by_project(&fake, "reporadar", port)
            .await
            .unwrap());
        assert!(
            !published_by_project(&fake, "reporadar", port.wrapping_add(1))
                .await
                .unwrap()
        );
        assert!(!published_by_project(&fake, "other", port).await.unwrap());
    }

    /// A project deployed on a fake, then taken down.
    async fn deployed_then_down(volumes: bool) -> (FakeHost, Deployment, DownReport) {
        let fake = FakeHost::new();
        let d = deployment("");
        converge(&fake, &d, &LONG, &ui()).await.unwrap();
        let report = down(&fake, &d.project, volumes, &ui()).await.unwrap();
        (fake, d, report)
    }

    #[tokio::test]
    async fn down_removes_nginx_first_then_everything_and_keeps_the_data() {
        let (fake, d, report) = deployed_then_down(false).await;
        assert_eq!(report.containers, d.containers.len());
        assert_eq!((report.networks, report.volumes), (1, 0));
        assert_eq!(report.kept_volumes, d.volumes.len());
        assert!(fake.container_names().is_empty());
        assert!(fake.network_names().is_empty());
        assert_eq!(fake.volume_names().len(), d.volumes.len());
        let nginx = d.container_name(d.containers_of(Role::Nginx).next().unwrap());
        let first = fake.position(&format!("stop_and_remove {nginx}"));
        let removals: Vec<usize> = fake
            .calls()
            .iter()
            .enumerate()
            .filter(|(_, c)| c.starts_with("stop_and_remove"))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(removals.first(), Some(&first));
    }

    #[tokio::test]
    async fn down_with_volumes_removes_the_data_too() {
        let (fake, d, report) = deployed_then_down(true).await;
        assert_eq!((report.volumes, report.kept_volumes), (d.volumes.len(), 0));
        assert!(fake.volume_names().is_empty());
        // A second `down` finds nothing left to remove.
        let again = down(&fake, &d.project, true, &ui()).await.unwrap();
        assert_eq!((again.containers, again.networks, again.volumes), (0, 0, 0));
    }

    #[tokio::test]
    async fn down_waits_for_the_projects_lock() {
        let fake = FakeHost::new();
        let held = ProjectLock::for_project(fake.daemon_host(), "locked-project", &ui())
            .await
            .unwrap();
        let release = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(held);
        };
        let t0 = Instant::now();
        let ui = ui();
        let (report, ()) = tokio::join!(down(&fake, "locked-project", false, &ui), release);
        assert_eq!(report.unwrap().containers, 0);
        assert!(t0.elapsed() >= Duration::from_millis(300));
    }
}
