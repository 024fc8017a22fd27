use anyhow::{bail, Result};

use super::Globals;
use crate::cli::VerifyArgs;
use crate::outcome::Outcome;

pub async fn run(_g: &Globals, _args: VerifyArgs) -> Result<Outcome> {
    bail!("`verify` needs the Docker engine, which this build does not include yet (see README: Status)")
}
