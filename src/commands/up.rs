use std::time::Duration;

use anyhow::Result;

use super::Globals;
use crate::certificates::{self, Renewal};
use crate::cli::UpArgs;
use crate::config::{CertSource, Overrides};
use crate::engine::UpOptions;
use crate::outcome::Outcome;
use crate::{backup, target, ui, verify};
use futures_util::{FutureExt, TryFutureExt};

pub async fn run(g: &Globals, args: UpArgs) -> Result<Outcome> {
    let UpArgs {
        target,
        ha,
        instances,
        timeout,
        no_verify,
        dry_run,
    } = args;
    let target = target.into();
    let cfg = g.config(Overrides {
        ha,
        instances,
        ..Overrides::default()
    })?;
    let docker = g.docker().await?;
    let deployment = target::deployment(&docker, &cfg, dry_run, &g.ui).await?;
    // BACKUP_BEFORE_RELEASE: the plan decides whether; this says how (the file `up` names).
    let backup = || {
        backup::before_release(&docker, &cfg)
            .map_ok(|file| file.display().to_string())
            .boxed()
    };
    let opts = UpOptions {
        timeout: Duration::from_secs(timeout),
        dry_run,
        app_builder_image: cfg.app.builder_image.to_string(),
        before_release: Some(&backup),
    };
    let Some(done) = target::up(target, &docker, &deployment, &opts, &g.ui).await? else {
        return Ok(Outcome::Success);
    };
    g.ui.success(&done.summary());
    // TLS_MODE=acme: nginx now answers the CA's challenge; a certificate when one is due.
    if matches!(&cfg.tls, Some(t) if matches!(t.source, CertSource::Acme { .. })) {
        let now = certificates::now_unix();
        let renewal = target::renew(target, &docker, &cfg, false, opts.timeout, &g.ui)
            .await
            .map_err(|e| {
                // The stack itself is up: say so, and how to finish, under the CA's reason.
                anyhow::anyhow!(
                    "{e:#}\n  the stack is up, but not verified; once the CA can validate, `radar-deploy renew` (or `up` again) gets the certificate"
                )
            })?;
        match renewal {
            Renewal::Renewed { info, reason } => g.ui.success(&format!(
                "certificate issued ({reason}): {}",
                certificates::describe(&info, now)
            )),
            Renewal::NotDue { info } => g.ui.info(&format!(
                "certificate: {}",
                certificates::describe(&info, now)
            )),
        }
    }
    if no_verify {
        return Ok(Outcome::Success);
    }
    // The stack is up; now prove it works. A failed check is exit 1, as with `verify`.
    let report = verify::run(&verify::Options::for_config(&cfg, target, Some(docker))?).await?;
    ui::out(&verify::report::text(&report, &g.ui))?;
    Ok(if report.passed {
        Outcome::Success
    } else {
        Outcome::ChecksFailed
    })
}
