use anyhow::Result;

use super::Globals;
use crate::cli::RenderArgs;
use crate::config::Overrides;
use crate::outcome::Outcome;
use crate::{desired, render};

pub fn run(g: &Globals, args: RenderArgs) -> Result<Outcome> {
    let RenderArgs { out, ha } = args;
    let cfg = g.config(Overrides {
        ha,
        instances: None,
    })?;
    let deployment = desired::build(&cfg);
    let written = render::write(&deployment, &out, &g.env_file.display().to_string())?;
    for path in &written {
        g.ui.success(&format!("wrote {}", path.display()));
    }
    Ok(Outcome::Success)
}
