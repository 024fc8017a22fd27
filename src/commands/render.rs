use anyhow::Result;

use super::Globals;
use crate::cli::RenderArgs;
use crate::config::Overrides;
use crate::outcome::Outcome;
use crate::{desired, target};

pub fn run(g: &Globals, args: RenderArgs) -> Result<Outcome> {
    let RenderArgs { target, out, ha } = args;
    let cfg = g.config(Overrides {
        ha,
        ..Overrides::default()
    })?;
    let deployment = desired::build(&cfg);
    let env_file = g.env_file.display().to_string();
    let written = target::render(target.into(), &deployment, &out, &env_file)?;
    for path in &written {
        g.ui.success(&format!("wrote {}", path.display()));
    }
    // No daemon to inspect the app image: say which user the file gives the app, and why.
    let image_user = desired::ImageUser::without_daemon(&cfg);
    g.ui.info(&desired::app_user(cfg.app.user.as_ref(), &image_user).line());
    Ok(Outcome::Success)
}
