//! The backup file: one tar archive, `manifest.json` first, then the entries it lists (the
//! Postgres dump, the Redis keys). The manifest says what the backup was taken from and the
//! size and sha256 of every entry, so a file is checked completely — structure, manifest,
//! every byte of every entry — before a restore touches anything.
//!
//! Written atomically: the archive is assembled in a temporary file beside its destination,
//! flushed to disk (fsync), then renamed into place, so a reader never sees half a backup and
//! a failed backup leaves nothing under the name.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWrite;

/// What `manifest.json`'s `kind` says: a file of this tool, not any tar.
pub const KIND: &str = "radar-deploy backup";
/// The layout version; a reader refuses versions it does not know.
pub const FORMAT: u32 = 1;
pub const MANIFEST: &str = "manifest.json";
/// The Postgres dump (`pg_dump --format=custom`).
pub const POSTGRES_ENTRY: &str = "postgres.dump";
/// The Redis keys: one line per key, `hex(name) pttl hex(DUMP payload)`.
pub const REDIS_ENTRY: &str = "redis.keys";
/// A manifest is a few hundred bytes; anything far larger is not one.
const MANIFEST_MAX: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub kind: String,
    pub format: u32,
    /// radar-deploy's version that wrote it.
    pub tool_version: String,
    pub project: String,
    /// When the backup was taken, UTC (RFC 3339).
    pub created_at: String,
    pub postgres: PostgresSource,
    pub redis: RedisSource,
    /// Every entry after the manifest, in order.
    pub entries: Vec<EntryInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostgresSource {
    pub database: String,
    pub user: String,
    pub server_version: String,
    pub image: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisSource {
    pub server_version: String,
    /// The Redis the keys were read from (the master, with Sentinels).
    pub taken_from: String,
    pub keys: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

impl Manifest {
    pub fn entry(&self, name: &str) -> Option<&EntryInfo> {
        self.entries.iter().find(|e| e.name == name)
    }

    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// An entry's content staged in a temporary file beside the destination, hashed as it is
/// written: the dump streams from the daemon into it, never into memory.
pub struct StagedEntry {
    pub name: String,
    file: tokio::fs::File,
    temp: tempfile::TempPath,
    hasher: Sha256,
    size: u64,
}

impl StagedEntry {
    pub fn new(dest: &Path, name: &str) -> anyhow::Result<StagedEntry> {
        let dir = parent_dir(dest);
        let temp = tempfile::Builder::new()
            .prefix(".radar-backup-")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        let (file, temp) = temp.into_parts();
        Ok(StagedEntry {
            name: name.to_string(),
            file: tokio::fs::File::from_std(file),
            temp,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    pub fn info(&self) -> EntryInfo {
        EntryInfo {
            name: self.name.clone(),
            size: self.size,
            sha256: hex::encode(self.hasher.clone().finalize()),
        }
    }
}

impl AsyncWrite for StagedEntry {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.file).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.hasher.update(&buf[..n]);
                this.size += n as u64;
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

fn parent_dir(dest: &Path) -> PathBuf {
    match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes the archive to `dest` atomically: `manifest` (whose `entries` are set from the
/// staged ones) first, then each staged entry. Returns the file's size and the manifest as
/// written.
pub fn write(
    dest: &Path,
    mut manifest: Manifest,
    entries: Vec<StagedEntry>,
) -> anyhow::Result<(u64, Manifest)> {
    manifest.entries = entries.iter().map(StagedEntry::info).collect();
    let dir = parent_dir(dest);
    let temp = tempfile::Builder::new()
        .prefix(".radar-backup-")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let fail = || format!("cannot write {}", dest.display());
    let mut tar = tar::Builder::new(BufWriter::new(temp.as_file()));
    let json = serde_json::to_vec_pretty(&manifest)?;
    append(&mut tar, MANIFEST, json.len() as u64, json.as_slice()).with_context(fail)?;
    for (info, staged) in manifest.entries.iter().zip(entries) {
        let file = File::open(&staged.temp).with_context(fail)?;
        append(&mut tar, &info.name, info.size, file).with_context(fail)?;
    }
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .and_then(|_| temp.as_file().sync_all())
        .with_context(fail)?;
    let size = temp.as_file().metadata().with_context(fail)?.len();
    temp.persist(dest).with_context(fail)?;
    // The rename itself is durable only once the directory is flushed (unix; Windows has no
    // directory handles to flush).
    #[cfg(unix)]
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok((size, manifest))
}

fn append<W: Write, R: Read>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: R,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mtime(0);
    tar.append_data(&mut h, name, data.take(size))
}

/// Why a backup file cannot be used. The message names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("backup file {file} is not usable: {problem}\n  nothing was changed; fix: take the backup again, or restore another copy of it")]
pub struct Unusable {
    pub file: String,
    pub problem: String,
}

/// A checked backup file: its manifest, and where each entry's bytes begin in the file.
#[derive(Debug, Clone)]
pub struct Verified {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub offsets: Vec<(String, u64)>,
}

impl Verified {
    /// An entry's bytes in the file, to stream: (offset, size).
    pub fn span(&self, name: &str) -> Option<(u64, u64)> {
        let size = self.manifest.entry(name)?.size;
        let offset = self.offsets.iter().find(|(n, _)| n == name)?.1;
        Some((offset, size))
    }
}

/// Reads the whole file and checks it: a tar archive, `manifest.json` first and of a known
/// kind and format, then exactly the entries it lists, each with the size and sha256 it says.
pub fn verify(path: &Path) -> Result<Verified, Unusable> {
    let unusable = |problem: String| Unusable {
        file: path.display().to_string(),
        problem,
    };
    let file = File::open(path).map_err(|e| unusable(format!("cannot open it: {e}")))?;
    let length = file
        .metadata()
        .map_err(|e| unusable(format!("cannot read it: {e}")))?
        .len();
    let mut archive = tar::Archive::new(BufReader::new(file));
    let mut entries = archive
        .entries()
        .map_err(|e| unusable(format!("not a tar archive: {e}")))?;
    let damaged = |e: std::io::Error| {
        format!("truncated or damaged (the file has {length} bytes; reading it failed: {e})")
    };

    let first = match entries.next() {
        None => return Err(unusable(format!("empty or not a backup ({length} bytes)"))),
        Some(e) => e.map_err(|e| unusable(damaged(e)))?,
    };
    if first.path_bytes().as_ref() != MANIFEST.as_bytes() {
        return Err(unusable(format!(
            "not a radar-deploy backup: its first entry is {:?}, not {MANIFEST}",
            String::from_utf8_lossy(&first.path_bytes())
        )));
    }
    let declared = first.size();
    let mut json = Vec::new();
    first
        .take(MANIFEST_MAX)
        .read_to_end(&mut json)
        .map_err(|e| unusable(damaged(e)))?;
    if json.len() as u64 != declared {
        return Err(unusable(format!(
            "truncated: its {MANIFEST} has {} of its {declared} bytes (the file has {length} bytes)",
            json.len()
        )));
    }
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|e| unusable(format!("its {MANIFEST} cannot be read: {e}")))?;
    if manifest.kind != KIND {
        return Err(unusable(format!(
            "its {MANIFEST} is of kind {:?}, not {KIND:?}",
            manifest.kind
        )));
    }
    if manifest.format != FORMAT {
        return Err(unusable(format!(
            "format {} (written by radar-deploy {}); this radar-deploy reads format {FORMAT}",
            manifest.format, manifest.tool_version
        )));
    }

    let mut offsets = Vec::new();
    for expected in &manifest.entries {
        let mut entry = match entries.next() {
            None => {
                return Err(unusable(format!(
                    "truncated: entry {} listed in the manifest is missing (the file has {length} bytes)",
                    expected.name
                )))
            }
            Some(e) => e.map_err(|e| unusable(damaged(e)))?,
        };
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if name != expected.name {
            return Err(unusable(format!(
                "entry {name:?} found where the manifest lists {}",
                expected.name
            )));
        }
        let offset = entry.raw_file_position();
        let (size, sha256) = hash(&mut entry).map_err(|e| unusable(damaged(e)))?;
        if size != expected.size {
            return Err(unusable(format!(
                "truncated or damaged: entry {name} has {size} bytes, the manifest says {}",
                expected.size
            )));
        }
        if sha256 != expected.sha256 {
            return Err(unusable(format!(
                "corrupted: entry {name} has sha256 {sha256}, the manifest says {}",
                expected.sha256
            )));
        }
        offsets.push((name, offset));
    }
    if let Some(extra) = entries.next() {
        let extra = extra.map_err(|e| unusable(damaged(e)))?;
        return Err(unusable(format!(
            "entry {:?} is not listed in the manifest",
            String::from_utf8_lossy(&extra.path_bytes())
        )));
    }
    Ok(Verified {
        path: path.to_path_buf(),
        manifest,
        offsets,
    })
}

fn hash(r: &mut impl Read) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// An entry of a verified file, as a stream of its bytes.
pub async fn open_entry(
    v: &Verified,
    name: &str,
) -> anyhow::Result<tokio::io::Take<tokio::fs::File>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let (offset, size) = v
        .span(name)
        .with_context(|| format!("backup file {} has no entry {name}", v.path.display()))?;
    let mut f = tokio::fs::File::open(&v.path)
        .await
        .with_context(|| format!("cannot open {}", v.path.display()))?;
    f.seek(SeekFrom::Start(offset))
        .await
        .with_context(|| format!("cannot read {}", v.path.display()))?;
    Ok(f.take(size))
}

/// An entry of a verified file, whole (the Redis keys: small).
pub fn read_entry(v: &Verified, name: &str) -> anyhow::Result<Vec<u8>> {
    let (offset, size) = v
        .span(name)
        .with_context(|| format!("backup file {} has no entry {name}", v.path.display()))?;
    let mut f = File::open(&v.path).with_context(|| format!("cannot open {}", v.path.display()))?;
    f.seek(SeekFrom::Start(offset))?;
    let mut out = Vec::new();
    f.take(size).read_to_end(&mut out)?;
    Ok(out)
}

/// `secs` since the Unix epoch as RFC 3339 UTC, and as the compact form in file names.
pub fn utc(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    (
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z"),
        format!("{y:04}{mo:02}{d:02}T{h:02}{m:02}{s:02}Z"),
    )
}

#[cfg(test)]
mod tests;
