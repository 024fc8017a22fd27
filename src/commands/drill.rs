use std::time::Duration;

use anyhow::{bail, Result};

use super::Globals;
use crate::cli::{DrillArgs, DrillKind, StatusFormat};
use crate::config::Overrides;
use crate::desired::{self, Role};
use crate::docker::{DockerClient, Readiness};
use crate::drill::{self, report, Kind, Options};
use crate::outcome::Outcome;

pub async fn run(g: &Globals, args: DrillArgs) -> Result<Outcome> {
    let DrillArgs {
        kind,
        duration,
        concurrency,
        format,
        target,
        max_failed,
        max_outage_ms,
        timeout,
        url,
    } = args;
    if !(1..=3600).contains(&duration) {
        bail!("--duration {duration} is out of range: use 1 to 3600 seconds");
    }
    if !(1..=256).contains(&concurrency) {
        bail!("--concurrency {concurrency} is out of range: use 1 to 256");
    }
    if target.is_some() && kind != DrillKind::Instance {
        bail!("--target applies to `drill instance` only");
    }
    let url = url
        .as_deref()
        .map(crate::http::parse_base_url)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let cfg = g.config(Overrides {
        ha: false,
        instances: None,
    })?;
    let deployment = desired::build(&cfg);
    let app_readiness = deployment
        .containers_of(Role::App)
        .next()
        .map_or(Readiness::Healthy { test: None }, Readiness::of);
    let opts = Options {
        kind: match kind {
            DrillKind::Instance => Kind::Instance,
            DrillKind::Redis => Kind::Redis,
        },
        project: cfg.project.to_string(),
        url: url.unwrap_or_else(|| format!("http://localhost:{}", cfg.http_port)),
        duration: Duration::from_secs(duration),
        concurrency: concurrency as usize,
        target,
        max_failed,
        max_outage_ms,
        timeout: Duration::from_secs(timeout),
        master_name: cfg.sentinel.master_name.clone(),
        app_readiness,
        docker: DockerClient::connect().await?,
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
        StatusFormat::Text => print!("{}", report::text(&r, &g.ui)),
        StatusFormat::Json => println!("{}", report::json(&r)),
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
