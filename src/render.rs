//! The `render` operation: the deployment as files a person can read, review or run with
//! `docker compose`.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::compose;
use crate::desired::Deployment;
use crate::fsutil;

/// Every file `render` writes, as (path relative to the output directory, content).
pub fn files(d: &Deployment, env_file: &str) -> Vec<(String, String)> {
    let mut files = vec![(compose::FILE_NAME.to_string(), compose::render(d, env_file))];
    files.extend(d.files.iter().map(|f| (f.path.clone(), f.content.clone())));
    files
}

/// Writes the files into `out`, all or none. Returns the paths written.
pub fn write(d: &Deployment, out: &Path, env_file: &str) -> Result<Vec<PathBuf>> {
    let files: Vec<(PathBuf, String)> = files(d, env_file)
        .into_iter()
        .map(|(rel, content)| (out.join(rel), content))
        .collect();
    // Rendered files hold no secret: readable by all, like any config in a repository.
    fsutil::write_all_atomically(&files, 0o644)?;
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

#[cfg(test)]
mod tests;
