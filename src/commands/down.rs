use anyhow::{bail, Result};

use super::Globals;
use crate::cli::DownArgs;
use crate::outcome::Outcome;

pub async fn run(_g: &Globals, _args: DownArgs) -> Result<Outcome> {
    bail!("`down` needs the Docker engine, which this build does not include yet (see README: Status)")
}
