use anyhow::{bail, Result};

use super::Globals;
use crate::cli::LogsArgs;
use crate::outcome::Outcome;

pub async fn run(_g: &Globals, _args: LogsArgs) -> Result<Outcome> {
    bail!("`logs` needs the Docker engine, which this build does not include yet (see README: Status)")
}
