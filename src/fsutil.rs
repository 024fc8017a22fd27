//! Writing files so that readers never see half a file, and a failed run writes nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

/// A file staged next to its destination, not yet visible under its final name.
struct Staged {
    temp: NamedTempFile,
    dest: PathBuf,
}

fn stage(dest: &Path, content: &[u8]) -> Result<Staged> {
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    // NamedTempFile is created with mode 0600, so a secret is never readable by others, not
    // even for an instant.
    let mut temp = NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    temp.write_all(content)
        .and_then(|_| temp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(Staged {
        temp,
        dest: dest.to_path_buf(),
    })
}

/// Writes every file or none: all are staged first, then renamed into place.
pub fn write_all_atomically(files: &[(PathBuf, String)], mode: u32) -> Result<()> {
    let staged = files
        .iter()
        .map(|(path, content)| stage(path, content.as_bytes()))
        .collect::<Result<Vec<_>>>()?;
    for s in staged {
        set_mode(s.temp.path(), mode)?;
        s.temp
            .persist(&s.dest)
            .with_context(|| format!("cannot write {}", s.dest.display()))?;
    }
    Ok(())
}

/// Writes a private file (mode 0600). With `overwrite` false, fails if the file exists —
/// checked atomically at the rename, so a concurrent writer cannot be clobbered.
pub fn write_private(dest: &Path, content: &str, overwrite: bool) -> Result<()> {
    let s = stage(dest, content.as_bytes())?;
    if overwrite {
        s.temp.persist(&s.dest).map(drop)
    } else {
        s.temp.persist_noclobber(&s.dest).map(drop)
    }
    .map_err(|e| e.error)
    .with_context(|| format!("cannot write {}", dest.display()))
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set permissions of {}", path.display()))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}
