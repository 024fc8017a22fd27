use std::time::Duration;

use anyhow::{bail, Result};

use super::Globals;
use crate::cli::{self, DrillArgs, DrillDaemonArgs, DrillKind, StatusFormat};
use crate::config::Overrides;
use crate::config::Target;
use crate::desired::{self, Role};
use crate::drill::{self, picture, report, Kind, Options};
use crate::outcome::Outcome;
use crate::readiness::Readiness;
use crate::ui;

pub async fn run(g: &Globals, args: DrillArgs) -> Result<Outcome> {
    let DrillArgs {
        kind,
        duration,
        concurrency,
        format,
        target,
        instance,
        max_failed,
        max_outage_ms,
        timeout,
        cut_secs,
        url,
        report: report_file,
        daemon,
    } = args;
    // Before anything runs: no fault is injected for a report that cannot be written.
    let report_file = report_file
        .map(|path| picture_target(&path).map(|format| (path, format)))
        .transpose()?;
    if !(1..=3600).contains(&cut_secs) {
        bail!("--cut-secs {cut_secs} is out of range: use 1 to 3600 seconds");
    }
    if !(1..=3600).contains(&duration) {
        bail!("--duration {duration} is out of range: use 1 to 3600 seconds");
    }
    if !(1..=256).contains(&concurrency) {
        bail!("--concurrency {concurrency} is out of range: use 1 to 256");
    }
    let daemon = daemon_settings(kind, daemon)?;
    let env_target = std::env::var("RADAR_TARGET").ok();
    let (on, instance) = resolve_target(target.as_deref(), instance, env_target.as_deref())?;
    let names_an_instance = matches!(
        kind,
        DrillKind::Instance | DrillKind::Network | DrillKind::Memory
    );
    if let Some(i) = instance.as_deref().filter(|_| !names_an_instance) {
        bail!(
            "--instance {i} applies to `drill instance`, `network` and `memory` only; drop it for this drill"
        );
    }
    let url = url
        .as_deref()
        .map(crate::http::parse_base_url)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let cfg = g.config(Overrides::default())?;
    let deployment = desired::build(&cfg);
    let app_readiness = deployment
        .containers_of(Role::App)
        .next()
        .map_or(Readiness::Healthy { test: None }, Readiness::of);
    let https = crate::certificates::balancer_route(&cfg)?;
    let opts = Options {
        kind: match kind {
            DrillKind::Instance => Kind::Instance,
            DrillKind::Redis => Kind::Redis,
            DrillKind::Postgres => Kind::Postgres,
            DrillKind::Nginx => Kind::Nginx,
            DrillKind::Network => Kind::Network,
            DrillKind::Memory => Kind::Memory,
            DrillKind::Daemon => Kind::Daemon,
        },
        project: cfg.project.to_string(),
        // TLS on: over HTTPS to the first public host, as verify asks.
        url: url.unwrap_or_else(|| {
            https.as_ref().map_or_else(
                || format!("http://localhost:{}", cfg.http_port),
                crate::http::HttpsRoute::base_url,
            )
        }),
        https,
        duration: Duration::from_secs(duration),
        concurrency: concurrency as usize,
        on,
        instance,
        max_failed,
        max_outage_ms,
        cut: Duration::from_secs(cut_secs),
        timeout: Duration::from_secs(timeout),
        master_name: cfg.sentinel.master_name.clone(),
        app_readiness,
        paths: cfg.app.paths.clone(),
        docker: g.docker().await?,
        daemon: drill::daemon::Settings {
            verify: (kind == DrillKind::Daemon)
                .then(|| crate::verify::Options::for_config(&cfg, on, None))
                .transpose()?,
            ..daemon
        },
    };
    // Progress goes to stderr, so `--format json` keeps stdout a single JSON document.
    let ui = g.ui;
    let started = std::time::Instant::now();
    let progress = move |line: &str| {
        if !ui.quiet {
            eprintln!("[{:>6.2}s] {line}", started.elapsed().as_secs_f64());
        }
    };
    let r = drill::run(&opts, &progress).await?;
    match format {
        StatusFormat::Text => ui::out(&report::text(&r, &g.ui))?,
        StatusFormat::Json => ui::out(&format!("{}\n", report::json(&r)))?,
    };
    // Also after a failed drill: that is when the picture matters most.
    if let Some((path, picture_format)) = &report_file {
        picture::write(path, *picture_format, &r)?;
        let line = format!("drill report written: {}", path.display());
        match format {
            StatusFormat::Text => g.ui.success(&line),
            // stdout stays one JSON document.
            StatusFormat::Json => eprintln!("{line}"),
        }
    }
    if r.interrupted {
        bail!("interrupted (Ctrl-C): the drill stopped early and put the deployment back; its figures are incomplete");
    }
    Ok(if r.passed {
        Outcome::Success
    } else {
        Outcome::ChecksFailed
    })
}

/// The format `--report` asks for, and a path it can be written to (not a directory).
fn picture_target(path: &std::path::Path) -> Result<picture::Format> {
    let format = picture::Format::of(path)?;
    if path.is_dir() {
        bail!(
            "--report {}: is a directory; name the file to write (e.g. {})",
            path.display(),
            path.join("drill.html").display()
        );
    }
    Ok(format)
}

/// `drill daemon`'s flags, checked before anything else: without `--restart-command` it cannot
/// run (exit 2, with what to pass); the flags belong to it alone.
fn daemon_settings(kind: DrillKind, args: DrillDaemonArgs) -> Result<drill::daemon::Settings> {
    let DrillDaemonArgs {
        restart_command,
        max_recovery_ms,
    } = args;
    if kind == DrillKind::Daemon {
        drill::daemon::require_restart_command(restart_command.as_deref())?;
    } else if restart_command.is_some() || max_recovery_ms.is_some() {
        bail!("--restart-command and --max-recovery-ms apply to `drill daemon` only");
    }
    Ok(drill::daemon::Settings {
        restart_command,
        max_recovery_ms,
        verify: None,
    })
}

/// `--target` names where the stack runs (`single`, `swarm`) or, as it always did for
/// `drill`, the instance to kill; `--instance` names the instance; `RADAR_TARGET` (as on the
/// other commands) says where the stack runs when `--target` does not.
fn resolve_target(
    target: Option<&str>,
    instance: Option<String>,
    env: Option<&str>,
) -> Result<(Target, Option<String>)> {
    use clap::ValueEnum;
    let parse = |v: &str| cli::Target::from_str(v, false).ok().map(Target::from);
    let (flag, instance) = match target {
        None => (None, instance),
        Some(t) => match parse(t) {
            Some(on) => (Some(on), instance),
            None => match instance {
                Some(i) => bail!(
                    "--target {t} and --instance {i} both name an instance\n  fix: name it with \
                     --instance only; --target says where the stack runs (single or swarm)"
                ),
                None => (None, Some(t.to_string())),
            },
        },
    };
    let on = match (flag, env.filter(|v| !v.is_empty())) {
        (Some(on), _) => on,
        (None, Some(v)) => parse(v).ok_or_else(|| {
            anyhow::anyhow!(
                "RADAR_TARGET={v} is not a deployment target\n  fix: set it to single or swarm, \
                 or unset it (the instance to kill is --instance NAME)"
            )
        })?,
        (None, None) => Target::Single,
    };
    Ok((on, instance))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(
        target: Option<&str>,
        instance: Option<&str>,
        env: Option<&str>,
    ) -> Result<(Target, Option<String>)> {
        resolve_target(target, instance.map(String::from), env)
    }

    #[test]
    fn target_is_where_the_stack_runs_or_else_the_instance() {
        assert_eq!(resolve(None, None, None).unwrap(), (Target::Single, None));
        assert_eq!(
            resolve(Some("swarm"), None, None).unwrap(),
            (Target::Swarm, None)
        );
        assert_eq!(
            resolve(Some("app-2"), None, None).unwrap(),
            (Target::Single, Some("app-2".into()))
        );
        assert_eq!(
            resolve(Some("swarm"), Some("app-3"), None).unwrap(),
            (Target::Swarm, Some("app-3".into()))
        );
        assert_eq!(
            resolve(None, Some("app-1"), Some("single")).unwrap(),
            (Target::Single, Some("app-1".into()))
        );
    }

    #[test]
    fn radar_target_applies_unless_the_flag_names_single_or_swarm() {
        assert_eq!(resolve(None, None, Some("swarm")).unwrap().0, Target::Swarm);
        // `--target app-2` names the instance; where the stack runs still comes from the env.
        assert_eq!(
            resolve(Some("app-2"), None, Some("swarm")).unwrap(),
            (Target::Swarm, Some("app-2".into()))
        );
        assert_eq!(
            resolve(Some("single"), None, Some("swarm")).unwrap().0,
            Target::Single
        );
        assert_eq!(resolve(None, None, Some("")).unwrap().0, Target::Single);
    }

    #[test]
    fn the_daemon_flags_belong_to_drill_daemon_which_needs_a_restart_command() {
        let args = |cmd: Option<&str>, max: Option<u64>| DrillDaemonArgs {
            restart_command: cmd.map(String::from),
            max_recovery_ms: max,
        };
        let e = daemon_settings(DrillKind::Daemon, args(None, Some(5)))
            .err()
            .unwrap();
        assert!(e.to_string().contains("needs --restart-command"), "{e}");
        let s = daemon_settings(DrillKind::Daemon, args(Some("true"), Some(5))).unwrap();
        assert_eq!(
            (s.restart_command.as_deref(), s.max_recovery_ms),
            (Some("true"), Some(5))
        );
        let e = daemon_settings(DrillKind::Instance, args(Some("true"), None))
            .err()
            .unwrap();
        assert!(e.to_string().contains("`drill daemon` only"), "{e}");
        assert!(daemon_settings(DrillKind::Redis, args(None, None)).is_ok());
    }

    #[test]
    fn conflicting_or_unknown_targets_are_errors_that_name_the_fix() {
        let e = resolve(Some("app-2"), Some("app-3"), None).unwrap_err();
        assert!(e.to_string().contains("--instance only"), "{e}");
        let e = resolve(None, None, Some("app-2")).unwrap_err();
        assert!(e.to_string().contains("RADAR_TARGET=app-2"), "{e}");
        assert!(e.to_string().contains("single or swarm"), "{e}");
    }
}
