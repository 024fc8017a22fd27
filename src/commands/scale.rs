use anyhow::{bail, Result};

use super::Globals;
use crate::cli::ScaleArgs;
use crate::outcome::Outcome;

pub async fn run(_g: &Globals, _args: ScaleArgs) -> Result<Outcome> {
    bail!("`scale` needs the Docker engine, which this build does not include yet (see README: Status)")
}
