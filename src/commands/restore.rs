use anyhow::{bail, Result};

use super::Globals;
use crate::backup;
use crate::cli::RestoreArgs;
use crate::config::Overrides;
use crate::maintenance::refuse_swarm;
use crate::outcome::Outcome;

pub async fn run(g: &Globals, args: RestoreArgs) -> Result<Outcome> {
    let RestoreArgs { target, file, yes } = args;
    refuse_swarm(target.into(), "restore")?;
    // The whole file is checked before anything else, with or without --yes.
    let v = backup::verify_file(&file).await?;
    let m = &v.manifest;
    let cfg = g.config(Overrides::default())?;
    let what = format!(
        "replace database {db} and the Redis keys of project {project} with the backup of \
         project {from} taken {at} ({pg} bytes of Postgres dump, {keys} Redis keys), behind \
         maintenance mode",
        db = cfg.postgres.db.as_str(),
        project = cfg.project,
        from = m.project,
        at = m.created_at,
        pg = m
            .entry(backup::archive::POSTGRES_ENTRY)
            .map_or(0, |e| e.size),
        keys = m.redis.keys,
    );
    if !yes {
        bail!(
            "refusing to restore without --yes: it would {what}\n  fix: `radar-deploy restore {} \
             --yes`",
            file.display()
        );
    }
    g.ui.info(&format!("{} checked: {what}", file.display()));
    let docker = g.docker().await?;
    let r = backup::restore(&docker, &cfg, &v, &|p| g.ui.info(p)).await?;
    g.ui.success(&format!(
        "restored {} into project {} in {:.1} s",
        file.display(),
        cfg.project,
        r.elapsed.as_secs_f64()
    ));
    if r.maintenance_was_on {
        g.ui.warn("maintenance mode was on before the restore and stays on: `radar-deploy maintenance off` ends it");
    }
    Ok(Outcome::Success)
}
