use anyhow::{bail, Result};

use super::Globals;
use crate::cli::StatusArgs;
use crate::outcome::Outcome;

pub async fn run(_g: &Globals, _args: StatusArgs) -> Result<Outcome> {
    bail!("`status` needs the Docker engine, which this build does not include yet (see README: Status)")
}
