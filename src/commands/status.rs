use anyhow::Result;

use super::Globals;
use crate::cli::{StatusArgs, StatusFormat};
use crate::engine;
use crate::outcome::Outcome;

pub async fn run(g: &Globals, args: StatusArgs) -> Result<Outcome> {
    let StatusArgs { target, format } = args;
    super::single_host_only(target, "status")?;
    let report = engine::status(&g.project).await?;
    match format {
        StatusFormat::Text => print!("{}", report.to_text(&g.ui)),
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(Outcome::Success)
}
