use anyhow::Result;

use super::Globals;
use crate::backup;
use crate::cli::BackupArgs;
use crate::config::Overrides;
use crate::maintenance::refuse_swarm;
use crate::outcome::Outcome;

pub async fn run(g: &Globals, args: BackupArgs) -> Result<Outcome> {
    let BackupArgs { target, out } = args;
    refuse_swarm(target.into(), "backup")?;
    let cfg = g.config(Overrides::default())?;
    let docker = g.docker().await?;
    let t = backup::take(&docker, &cfg, out.as_deref()).await?;
    g.ui.success(&format!(
        "backup written: {} ({} bytes; Postgres {} {}, {} Redis keys; taken {}, in {:.1} s)",
        t.path.display(),
        t.size,
        t.manifest.postgres.database,
        t.manifest.postgres.server_version,
        t.manifest.redis.keys,
        t.manifest.created_at,
        t.elapsed.as_secs_f64()
    ));
    Ok(Outcome::Success)
}
