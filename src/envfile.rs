//! The `init` operation: a ready-to-use env file with strong random secrets.

use std::path::Path;

use anyhow::{bail, Result};

use crate::config::{secret, vars};
use crate::fsutil;

/// The env file's text: every variable from the table, defaults as they are, secrets freshly
/// generated from the OS random source.
pub fn generate() -> Result<String> {
    let mut out = String::from(
        "# radar-deploy env file, written by `radar-deploy init`. Keep it private (mode 0600):\n\
         # it holds the stack's secrets. Every variable is described in .env.multi-instance.example.\n",
    );
    let mut group = "";
    for v in vars::VARS {
        if v.group != group {
            group = v.group;
            out.push_str(&format!("\n# --- {group} ---\n"));
        }
        let value = match v.need {
            vars::Need::Default(d) => d.to_string(),
            vars::Need::Required => vars::placeholder(v.name).to_string(),
            vars::Need::Secret => secret::generate(32)
                .map_err(|e| {
                    anyhow::anyhow!("cannot read the operating system's random source: {e}")
                })?
                .expose()
                .to_string(),
            vars::Need::OptionalSecret => String::new(),
        };
        out.push_str(&format!("{}={}\n", v.name, vars::dotenv_quote(&value)));
    }
    Ok(out)
}

/// Writes a new env file (mode 0600). Refuses to replace an existing one unless `force`.
pub fn init(path: &Path, force: bool) -> Result<()> {
    if !force && path.exists() {
        bail!(
            "{} already exists; it was left unchanged. Pass --force to replace it with new secrets \
             (the running stack's data volumes keep the old Postgres password), or use --env-file \
             to write another file",
            path.display()
        );
    }
    let content = generate()?;
    fsutil::write_private(path, &content, force).map_err(|e| {
        if !force && path.exists() {
            anyhow::anyhow!(
                "{} was created by someone else meanwhile; it was left unchanged (pass --force to replace it)",
                path.display()
            )
        } else {
            e
        }
    })
}
