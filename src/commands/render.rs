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
    Ok(Outcome::Success)
}
