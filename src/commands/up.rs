use anyhow::{bail, Result};

use super::Globals;
use crate::cli::UpArgs;
use crate::outcome::Outcome;

pub async fn run(_g: &Globals, _args: UpArgs) -> Result<Outcome> {
    bail!(
        "`up` needs the Docker engine, which this build does not include yet (see README: Status)"
    )
}
