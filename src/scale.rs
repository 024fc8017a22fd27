//! The `scale` operation: change the number of app instances of a running deployment with no
//! failed request (docs/design.md §7), then remember the count in the env file so a later `up`
//! keeps it.
//!
//! Scaling is a plan like `up`'s, restricted to what scaling may do: add instances (they
//! become healthy before nginx's reload puts them in the upstream) and remove instances
//! (nginx's reload takes them out, its old workers finish what they sent them, then they are
//! stopped; the app drains on SIGTERM too). A running instance is never recreated: when the
//! deployment differs from the env file in anything else, `scale` refuses and says to run
//! `up`, which rolls such changes out. A removed instance's log volume is kept, like every
//! data volume (`down --volumes` deletes them); scaling up again reuses it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::apply::{self, ApplyOptions, HostEngine};
use crate::config::{self, Config, Origin, Overrides};
use crate::desired::{self, Deployment, Role, TlsMaterial};
use crate::docker::DockerClient;
use crate::endpoint::Endpoint;
use crate::lock::ProjectLock;
use crate::observed::{ContainerState, Observed};
use crate::plan::{self, Action, Plan};
use crate::ui::Ui;

pub struct ScaleOptions {
    pub env_file: PathBuf,
    pub project: String,
    pub instances: u32,
    /// The deadline of each wait.
    pub timeout: Duration,
    /// `--strict`: an unknown env-file variable is an error.
    pub strict: bool,
}

#[derive(Debug)]
pub struct ScaleReport {
    pub project: String,
    pub from: usize,
    pub to: u32,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub elapsed: Duration,
    /// Where the new count was saved.
    pub env_file: PathBuf,
    /// APP_INSTANCES is also set in the process environment, which overrides the file.
    pub overridden_by_environment: bool,
}

/// The configuration with `n` instances, validated like `up --instances n`: the count's range
/// and APP_INSTANCES x DB_POOL_SIZE against POSTGRES_MAX_CONNECTIONS, named with the numbers.
pub fn config(opts: &ScaleOptions, ha: bool) -> Result<Config> {
    let inputs = config::Inputs::from_process(
        opts.env_file.clone(),
        opts.project.clone(),
        Overrides {
            ha,
            instances: Some(opts.instances),
            strict: opts.strict,
        },
    );
    config::resolve(&inputs).map_err(|mut e| {
        for p in &mut e.problems {
            if p.origin == Some(Origin::Flag("--instances")) {
                p.origin = Some(Origin::Flag("`scale N`"));
            }
        }
        e.into()
    })
}

pub async fn scale(endpoint: &Endpoint, opts: &ScaleOptions, ui: &Ui) -> Result<ScaleReport> {
    let t0 = Instant::now();
    // Validate first: a bad count is reported without touching Docker.
    let cfg = config(opts, false)?;
    ui.warn_each(&cfg.warnings);
    let client = &DockerClient::connect(endpoint).await?;
    // nginx's certificate as the running deployment has it: scaling reloads nginx with it.
    let tls = crate::certificates::material(client, &cfg, false, ui).await?;
    scale_on(client, opts, cfg, tls, ui, t0).await
}

/// The operation on a connected engine, the configuration validated: lock, snapshot, plan,
/// apply, and on failure the rollback of the instances it added.
async fn scale_on<E: HostEngine>(
    client: &E,
    opts: &ScaleOptions,
    cfg: Config,
    tls: Option<TlsMaterial>,
    ui: &Ui,
    t0: Instant,
) -> Result<ScaleReport> {
    let _lock = ProjectLock::for_project(client.daemon_host(), &opts.project, ui).await?;
    let observed = client.observe(&opts.project).await?;
    ensure_up(&opts.project, &observed)?;
    // The running deployment's HA mode, whether it came from the env file or `up --ha`.
    let ha = crate::status::runs_ha(observed.containers.iter().filter_map(|c| c.role()));
    let cfg = if ha && !cfg.ha_enabled {
        config(opts, true)?
    } else {
        cfg
    };
    let image_user = crate::engine::app_image_user(client, &cfg, false, ui).await?;
    let d = desired::build_with(&cfg, &image_user, tls.as_ref());
    let plan = plan::plan(&d, &observed);
    only_scaling(&d, &plan)?;
    let from = observed
        .containers
        .iter()
        .filter(|c| c.role() == Some(Role::App.service()))
        .count();
    if plan.is_empty() {
        ui.detail(&plan.to_string());
    } else {
        ui.info(plan.to_string().trim_end());
    }
    // Scaling adds instances of the configuration that runs already: the plan has no release.
    let apply_opts = ApplyOptions {
        timeout: opts.timeout,
        before_release: None,
    };
    let run = apply::apply(client, &d, &plan, &apply_opts, ui);
    let applied = tokio::select! {
        r = run => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!(
            "interrupted: the stack is partly scaled; run `radar-deploy scale {}` again to finish",
            opts.instances
        )),
    };
    if let Err(e) = applied {
        let undone = roll_back_new_instances(client, &d, &plan).await;
        return Err(e.context(format!(
            "scale to {} failed; {undone}; the env file is unchanged",
            opts.instances
        )));
    }
    crate::envfile::set_var(&opts.env_file, "APP_INSTANCES", &opts.instances.to_string())
        .context("the deployment is scaled, but the new count could not be saved")?;
    let names = |f: fn(&Action) -> Option<&String>| -> Vec<String> {
        plan.steps
            .iter()
            .filter_map(|s| f(&s.action).cloned())
            .filter(|a| a.starts_with("app-"))
            .collect()
    };
    Ok(ScaleReport {
        project: opts.project.clone(),
        from,
        to: opts.instances,
        added: names(|a| match a {
            Action::Create { alias, .. } => Some(alias),
            _ => None,
        }),
        removed: names(|a| match a {
            Action::Remove { alias, .. } => Some(alias),
            _ => None,
        }),
        elapsed: t0.elapsed(),
        env_file: opts.env_file.clone(),
        overridden_by_environment: std::env::var_os("APP_INSTANCES").is_some(),
    })
}

/// `scale` changes a running deployment; it does not create one.
fn ensure_up(project: &str, observed: &Observed) -> Result<()> {
    let running = |role: Role| {
        observed
            .containers
            .iter()
            .any(|c| c.role() == Some(role.service()) && c.state == ContainerState::Running)
    };
    if !running(Role::Nginx) || !running(Role::App) {
        bail!(
            "project {project} is not up (no running nginx and app instances){}\n  fix: `radar-deploy up` deploys it (with --instances N for the count you want); `scale` changes a running deployment",
            if observed.containers.is_empty() {
                ": it has no containers"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// Scaling adds or removes instances and reloads nginx; anything else in the plan is a change
/// of configuration, which `up` rolls out.
fn only_scaling(d: &Deployment, plan: &Plan) -> Result<()> {
    let is_app = |name: &str| {
        d.containers
            .iter()
            .any(|c| c.role == Role::App && d.container_name(c) == name)
    };
    let other = plan.steps.iter().any(|s| match &s.action {
        Action::CreateVolume { volume, .. } => !volume.starts_with("app-"),
        Action::Create { name, .. } | Action::Start { name, .. } => !is_app(name),
        Action::Reload {
            alias, upstream, ..
        } => alias != "nginx" || upstream.is_some(),
        Action::Drain { .. } => false,
        Action::Remove { name, .. } => !name.starts_with(&format!("{}-app-", d.project)),
        _ => true,
    });
    if other {
        bail!(
            "the running deployment differs from the env file in more than the instance count, and `scale` never recreates a running instance; what `up` would do:\n{}\n  fix: run `radar-deploy up` to roll those changes out (one instance at a time), then scale",
            plan.to_string()
                .lines()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}

/// After a failed scale up: the new instances never joined the upstream when nginx was not
/// reloaded (its reload waits for all of them), so they go, and the deployment is as before.
async fn roll_back_new_instances<E: HostEngine>(client: &E, d: &Deployment, plan: &Plan) -> String {
    let created: Vec<&str> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Create { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    if created.is_empty() {
        return "nothing was added".into();
    }
    let reloaded = match client.observe(&d.project).await {
        Ok(o) => d.containers_of(Role::Nginx).next().is_some_and(|n| {
            o.container(&d.container_name(n))
                .and_then(|c| c.reload_hash().map(str::to_string))
                == d.reload_hash(n)
        }),
        Err(_) => true,
    };
    if reloaded {
        return "nginx already serves the new instances, so they stay".into();
    }
    let mut removed = vec![];
    for name in created {
        if client.stop_and_remove(name, 30).await.is_ok() {
            removed.push(name.to_string());
        }
    }
    format!(
        "the new instances never joined the upstream and were removed ({})",
        removed.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::HostEngine;
    use crate::config::testing::env_file;
    use crate::fake::host::FakeHost;

    fn ui() -> Ui {
        Ui::new(true, true, 0)
    }

    /// An env file with `instances`, in a directory that lives as long as the value.
    fn env_with(instances: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env.multi-instance");
        std::fs::write(&path, env_file(&format!("APP_INSTANCES={instances}\n"))).unwrap();
        (dir, path)
    }

    /// A project deployed with `instances` on the fake, and its env file saying so.
    async fn deployed(fake: &FakeHost, instances: u32) -> (tempfile::TempDir, PathBuf) {
        let (dir, path) = env_with(instances);
        let opts = options(&path, instances);
        let d = desired::build(&config(&opts, false).unwrap());
        let plan = plan::plan(&d, &HostEngine::observe(fake, &d.project).await.unwrap());
        let apply_opts = ApplyOptions {
            timeout: Duration::from_secs(30),
            before_release: None,
        };
        apply::apply(fake, &d, &plan, &apply_opts, &ui())
            .await
            .unwrap();
        (dir, path)
    }

    fn options(env_file: &std::path::Path, instances: u32) -> ScaleOptions {
        ScaleOptions {
            env_file: env_file.to_path_buf(),
            project: "reporadar".into(),
            instances,
            timeout: Duration::from_millis(600),
            strict: false,
        }
    }

    async fn scale_fake(fake: &FakeHost, opts: &ScaleOptions) -> Result<ScaleReport> {
        let cfg = config(opts, false)?;
        scale_on(fake, opts, cfg, None, &ui(), Instant::now()).await
    }

    /// The error of scaling to `instances`, which must fail, in full.
    async fn scale_error(fake: &FakeHost, env_file: &std::path::Path, instances: u32) -> String {
        let failed = scale_fake(fake, &options(env_file, instances)).await;
        format!("{:#}", failed.unwrap_err())
    }

    fn saved_count(path: &std::path::Path) -> String {
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines = text.lines().filter(|l| l.starts_with("APP_INSTANCES="));
        lines.next_back().unwrap().to_string()
    }

    #[tokio::test]
    async fn scaling_up_adds_the_instance_and_saves_the_count() {
        let fake = FakeHost::new();
        let (_dir, path) = deployed(&fake, 2).await;
        let report = scale_fake(&fake, &options(&path, 3)).await.unwrap();
        assert_eq!((report.from, report.to), (2, 3));
        assert_eq!(report.added, vec!["app-3".to_string()]);
        assert!(report.removed.is_empty());
        assert_eq!(saved_count(&path), "APP_INSTANCES=3");
        let app3 = fake.container("reporadar-app-3").unwrap();
        // nginx is reloaded only once the new instance is ready.
        assert_eq!(app3.state, ContainerState::Running);
        let reload = fake.position("exec reporadar-nginx-1 nginx -s reload");
        assert!(fake.position("ready reporadar-app-3") < reload);
    }

    #[tokio::test]
    async fn a_new_instance_that_never_becomes_ready_is_removed_and_the_count_stays() {
        let fake = FakeHost::new();
        let (_dir, path) = deployed(&fake, 2).await;
        fake.never_ready("reporadar-app-3");
        let err = scale_error(&fake, &path, 3).await;
        assert!(
            err.starts_with(
                "scale to 3 failed; the new instances never joined the upstream and were removed (reporadar-app-3); the env file is unchanged: reporadar-app-3 (app-3) did not become healthy"
            ),
            "{err}"
        );
        assert!(fake.container("reporadar-app-3").is_none());
        assert_eq!(saved_count(&path), "APP_INSTANCES=2");
        assert!(!fake
            .calls()
            .contains(&"exec reporadar-nginx-1 nginx -s reload".to_string()));
        for app in ["reporadar-app-1", "reporadar-app-2"] {
            assert_eq!(fake.container(app).unwrap().state, ContainerState::Running);
        }
    }

    #[tokio::test]
    async fn scaling_down_takes_the_instance_out_of_nginx_drains_then_removes_it() {
        let fake = FakeHost::new();
        let (_dir, path) = deployed(&fake, 3).await;
        let report = scale_fake(&fake, &options(&path, 2)).await.unwrap();
        assert_eq!(report.removed, vec!["app-3".to_string()]);
        assert_eq!(saved_count(&path), "APP_INSTANCES=2");
        assert!(fake.container("reporadar-app-3").is_none());
        let reload = fake.position("exec reporadar-nginx-1 nginx -s reload");
        let removed = fake.position("stop_and_remove reporadar-app-3");
        // The drain looks at nginx's workers between the reload and the removal.
        let looked = fake.calls()[reload..removed]
            .iter()
            .any(|c| c == "exec reporadar-nginx-1 bash -c …");
        assert!(looked, "{:#?}", fake.calls());
    }

    #[tokio::test]
    async fn a_project_that_is_not_up_is_not_scaled() {
        let fake = FakeHost::new();
        let (_dir, path) = env_with(2);
        let err = scale_error(&fake, &path, 3).await;
        assert!(
            err.starts_with("project reporadar is not up (no running nginx and app instances): it has no containers"),
            "{err}"
        );
        assert_eq!(saved_count(&path), "APP_INSTANCES=2");
    }

    #[tokio::test]
    async fn a_change_beyond_the_count_is_left_to_up() {
        let fake = FakeHost::new();
        let (_dir, path) = deployed(&fake, 2).await;
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("APP_IMAGE=example/app:2\n");
        std::fs::write(&path, text).unwrap();
        let before = fake.calls().len();
        let err = scale_error(&fake, &path, 3).await;
        assert!(
            err.contains("differs from the env file in more than the instance count"),
            "{err}"
        );
        let changed = fake.calls()[before..]
            .iter()
            .any(|c| c.starts_with("create") || c.starts_with("stop_and_remove"));
        assert!(!changed, "{:#?}", fake.calls());
    }
}
