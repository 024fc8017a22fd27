//! Embeds the reference app's source in the radar-deploy binary, so `up` can build the app's
//! image inside Docker on any machine (`src/app_image.rs`): `app/Cargo.toml`, `app/Dockerfile`,
//! `app/src/**` and the workspace's `Cargo.lock`, as one tar at the root of the build context.
//!
//! The tar is deterministic (entries sorted, mtime 0, uid/gid 0, fixed modes, CRLF turned into
//! LF so a Windows checkout gives the same bytes): its sha256 names the source, and an image
//! labelled with another digest is stale.

use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let app = root.join("app");
    let mut files: Vec<(String, PathBuf)> = vec![
        ("Cargo.toml".into(), app.join("Cargo.toml")),
        ("Cargo.lock".into(), root.join("Cargo.lock")),
        ("Dockerfile".into(), app.join("Dockerfile")),
    ];
    collect(&app.join("src"), "src", &mut files);
    files.sort();

    let mut tar = tar::Builder::new(Vec::new());
    for (name, path) in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| {
            panic!(
                "reading {} for the embedded app source: {e}",
                path.display()
            )
        });
        let bytes = lf_only(bytes);
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, bytes.as_slice())
            .unwrap_or_else(|e| panic!("adding {name} to the embedded app source: {e}"));
    }
    let tar = tar
        .into_inner()
        .expect("finishing the embedded app source tar");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("app-source.tar");
    std::fs::write(&out, tar).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));

    // A directory is watched as a whole (any file in it changing or appearing).
    for p in ["app/Cargo.toml", "app/Dockerfile", "app/src", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={p}");
    }
}

/// Every file under `dir`, named `prefix/relative/path` with `/` separators.
fn collect(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {} for the embedded app source: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("a directory entry");
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        // Editor and OS leftovers are not source.
        if file_name.starts_with('.') || file_name.ends_with('~') {
            continue;
        }
        let name = format!("{prefix}/{file_name}");
        if path.is_dir() {
            collect(&path, &name, out);
        } else {
            out.push((name, path));
        }
    }
}

fn lf_only(bytes: Vec<u8>) -> Vec<u8> {
    if !bytes.windows(2).any(|w| w == b"\r\n") {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        if !(b == b'\r' && bytes.get(i + 1) == Some(&b'\n')) {
            out.push(b);
        }
    }
    out
}
