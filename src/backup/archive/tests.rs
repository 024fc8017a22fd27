use std::io::Write as _;

use tokio::io::AsyncWriteExt;

use super::*;

fn manifest() -> Manifest {
    Manifest {
        kind: KIND.into(),
        format: FORMAT,
        tool_version: "0.0.0".into(),
        project: "demo".into(),
        created_at: "2026-12-02T15:00:00Z".into(),
        postgres: PostgresSource {
            database: "app".into(),
            user: "app".into(),
            server_version: "15.8".into(),
            image: "postgres:15-bookworm".into(),
        },
        redis: RedisSource {
            server_version: "7.0.15".into(),
            taken_from: "demo-redis-1".into(),
            keys: 1,
        },
        entries: vec![],
    }
}

/// A backup with a 300 kB dump (more than one tar block, not a multiple of 512) and a key.
async fn written(dir: &Path) -> (PathBuf, Vec<u8>) {
    let dest = dir.join("demo.radar-backup");
    let dump: Vec<u8> = (0..300_001u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut pg = StagedEntry::new(&dest, POSTGRES_ENTRY).unwrap();
    pg.write_all(&dump).await.unwrap();
    pg.flush().await.unwrap();
    let mut rk = StagedEntry::new(&dest, REDIS_ENTRY).unwrap();
    rk.write_all(b"6b -1 00").await.unwrap();
    rk.flush().await.unwrap();
    let (size, written) = write(&dest, manifest(), vec![pg, rk]).unwrap();
    assert_eq!(written.entries.len(), 2);
    assert_eq!(size, std::fs::metadata(&dest).unwrap().len());
    (dest, dump)
}

fn refused(path: &Path) -> String {
    let e = verify(path).expect_err("the file must be refused");
    let text = e.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    e.problem
}

#[tokio::test]
async fn a_backup_round_trips_with_every_entry_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (dest, dump) = written(dir.path()).await;
    let v = verify(&dest).unwrap();
    let mut expected = manifest();
    expected.entries = vec![
        EntryInfo {
            name: POSTGRES_ENTRY.into(),
            size: dump.len() as u64,
            sha256: hex::encode(Sha256::digest(&dump)),
        },
        EntryInfo {
            name: REDIS_ENTRY.into(),
            size: 8,
            sha256: hex::encode(Sha256::digest(b"6b -1 00")),
        },
    ];
    assert_eq!(v.manifest, expected);
    let mut streamed = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(
        &mut open_entry(&v, POSTGRES_ENTRY).await.unwrap(),
        &mut streamed,
    )
    .await
    .unwrap();
    assert_eq!(streamed, dump);
    assert_eq!(read_entry(&v, REDIS_ENTRY).unwrap(), b"6b -1 00");
    // Nothing but the backup is left in the directory: the staged files are gone.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[tokio::test]
async fn the_manifest_is_the_first_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (dest, _) = written(dir.path()).await;
    let mut a = tar::Archive::new(File::open(&dest).unwrap());
    let first = a.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(first.path().unwrap().to_str(), Some(MANIFEST));
}

#[tokio::test]
async fn a_corrupted_byte_is_refused_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (dest, _) = written(dir.path()).await;
    let mut bytes = std::fs::read(&dest).unwrap();
    // A byte in the middle of the dump (after the manifest's blocks).
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&dest, &bytes).unwrap();
    let p = refused(&dest);
    assert!(p.contains("corrupted") && p.contains(POSTGRES_ENTRY), "{p}");
}

#[tokio::test]
async fn a_truncated_file_is_refused_at_any_length() {
    let dir = tempfile::tempdir().unwrap();
    let (dest, _) = written(dir.path()).await;
    let bytes = std::fs::read(&dest).unwrap();
    let cut = dir.path().join("cut.radar-backup");
    // Through the manifest, the dump, the key entry; the last blocks are tar's end marker,
    // whose loss leaves every entry whole.
    for len in [0, 100, 512, 1500, bytes.len() / 2, bytes.len() - 1100] {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let p = refused(&cut);
        assert!(
            p.contains("truncated") || p.contains("empty") || p.contains("damaged"),
            "{len}: {p}"
        );
    }
}

#[test]
fn other_files_are_refused_with_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.radar-backup");
    std::fs::write(&path, b"hello, this is not a tar archive at all").unwrap();
    refused(&path);

    // A tar whose first entry is something else.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    b.append_data(&mut h, "notes.txt", &b"hi"[..]).unwrap();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&b.into_inner().unwrap())
        .unwrap();
    assert!(refused(&path).contains("not a radar-deploy backup"));

    let missing = dir.path().join("missing.radar-backup");
    assert!(refused(&missing).contains("cannot open"));
}

#[tokio::test]
async fn a_newer_format_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("new.radar-backup");
    let mut m = manifest();
    m.format = FORMAT + 1;
    write(&dest, m, vec![]).unwrap();
    assert!(refused(&dest).contains(&format!("format {}", FORMAT + 1)));
}

#[test]
fn times_are_utc_in_both_forms() {
    assert_eq!(
        utc(0),
        ("1970-01-01T00:00:00Z".into(), "19700101T000000Z".into())
    );
    // 2026-12-02T15:06:49Z; 2024-02-29 (a leap day).
    assert_eq!(utc(1_796_224_009).0, "2026-12-02T15:06:49Z");
    assert_eq!(utc(1_709_164_800).1, "20240229T000000Z");
}
