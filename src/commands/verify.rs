use anyhow::{bail, Result};

use super::Globals;
use crate::cli::{ReportFormat, VerifyArgs};
use crate::config::{vars::lookup, Overrides};
use crate::outcome::Outcome;
use crate::ui;
use crate::verify::{self, report, Options};

pub async fn run(g: &Globals, args: VerifyArgs) -> Result<Outcome> {
    let VerifyArgs {
        target,
        url,
        requests,
        format,
        ha,
    } = args;
    let target = target.into();
    if !(1..=10_000).contains(&requests) {
        bail!("--requests {requests} is out of range: use 1 to 10000");
    }
    let url = url
        .as_deref()
        .map(crate::http::parse_base_url)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    // With --url the configuration only adds expectations; without it, it says where to look.
    let cfg = match (
        &url,
        g.config(Overrides {
            ha,
            ..Overrides::default()
        }),
    ) {
        (_, Ok(cfg)) => Some(cfg),
        (Some(_), Err(_)) => None,
        (None, Err(e)) => return Err(e),
    };
    let docker = match g.docker().await {
        Ok(d) => Some(d),
        Err(_) if url.is_some() => None,
        Err(e) => bail!(
            "{e}\n  or pass --url to run only the HTTP checks (per-instance checks are then skipped)"
        ),
    };
    let mut opts = match &cfg {
        Some(cfg) => Options::for_config(cfg, target, docker)?,
        None => Options {
            project: g.project.clone(),
            url: String::new(),
            requests,
            ha,
            app_port: 3000,
            expected_instances: None,
            lb_strategy: None,
            master_name: default_of("REDIS_MASTER_NAME"),
            paths: crate::config::AppPaths::reference(),
            docker,
            target,
            https: None,
            tls: None,
        },
    };
    opts.requests = requests;
    opts.ha |= ha;
    if let Some(url) = url {
        opts.url = url;
    }
    let r = verify::run(&opts).await?;
    match format {
        ReportFormat::Text => ui::out(&report::text(&r, &g.ui))?,
        ReportFormat::Json => ui::out(&format!("{}\n", report::json(&r)))?,
        ReportFormat::Junit => ui::out(&format!("{}\n", report::junit(&r)))?,
    };
    Ok(if r.passed {
        Outcome::Success
    } else {
        Outcome::ChecksFailed
    })
}

fn default_of(name: &str) -> String {
    match lookup(name).map(|v| v.need) {
        Some(crate::config::vars::Need::Default(d)) => d.to_string(),
        _ => String::new(),
    }
}
