use std::time::Duration;

use anyhow::Result;

use super::Globals;
use crate::certificates::{self, Renewal};
use crate::cli::RenewArgs;
use crate::config::Overrides;
use crate::outcome::Outcome;
use crate::target;

pub async fn run(g: &Globals, args: RenewArgs) -> Result<Outcome> {
    let RenewArgs {
        target,
        force,
        timeout,
    } = args;
    let cfg = g.config(Overrides::default())?;
    let docker = g.docker().await?;
    let now = certificates::now_unix();
    match target::renew(
        target.into(),
        &docker,
        &cfg,
        force,
        Duration::from_secs(timeout),
        &g.ui,
    )
    .await?
    {
        Renewal::Renewed { info, reason } => g.ui.success(&format!(
            "certificate renewed ({reason}): {}; nginx serves it",
            certificates::describe(&info, now)
        )),
        Renewal::NotDue { info } => g.ui.success(&format!(
            "certificate not due for renewal: {} (renewed from 30 days before expiry; --force renews now)",
            certificates::describe(&info, now)
        )),
    }
    Ok(Outcome::Success)
}
