use anyhow::Result;

use super::Globals;
use crate::cli::{RenderArgs, Target};
use crate::config::Overrides;
use crate::outcome::Outcome;
use crate::{desired, fsutil, render, swarm};

pub fn run(g: &Globals, args: RenderArgs) -> Result<Outcome> {
    let RenderArgs { target, out, ha } = args;
    let cfg = g.config(Overrides {
        ha,
        ..Overrides::default()
    })?;
    let deployment = desired::build(&cfg);
    let env_file = g.env_file.display().to_string();
    let written = match target {
        Target::Single => render::write(&deployment, &out, &env_file)?,
        Target::Swarm => {
            let files: Vec<_> = swarm::files(&swarm::build(&deployment), &env_file)
                .into_iter()
                .map(|(rel, content)| (out.join(rel), content))
                .collect();
            // Like the Compose render: no secret in these files, readable by all.
            fsutil::write_all_atomically(&files, 0o644)?;
            files.into_iter().map(|(p, _)| p).collect()
        }
    };
    for path in &written {
        g.ui.success(&format!("wrote {}", path.display()));
    }
    Ok(Outcome::Success)
}
