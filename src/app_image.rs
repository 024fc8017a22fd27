//! The reference app's image on any machine (docs/design.md §5, §10): when `APP_IMAGE` names it (any
//! tag of `radar-deploy/radar-app`) and it is missing, or it was built from another source than
//! the one this binary carries, `up` builds it inside Docker, for the daemon's own architecture,
//! from the embedded source (`build.rs`: `app/` and the workspace's `Cargo.lock`) with
//! `APP_BUILDER_IMAGE` as the build stage. No host toolchain, no registry for the app itself.
//!
//! The decision is pure ([`decide`]); [`ensure`] looks, takes a machine-wide lock keyed by
//! daemon and image (parallel `up`s build once: the others wait, then find it built), looks
//! again, and builds through the Docker facade.

use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use sha2::{Digest, Sha256};

use crate::docker::{BuildRequest, DockerClient};
use crate::labels::{LABEL_APP_BUILDER, LABEL_APP_SOURCE};
use crate::lock::ProjectLock;
use crate::ui::Ui;

/// How long a run waits for another one that is building the same image (a cold build takes
/// minutes on a small machine).
const BUILD_WAIT: Duration = Duration::from_secs(30 * 60);

/// Lines of build output kept for the error of a failed build.
const KEEP_LINES: usize = 25;

static SOURCE_TAR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/app-source.tar"));

/// The build context of the reference app: `Dockerfile`, `Cargo.toml`, `Cargo.lock` and
/// `src/**` at its root, deterministic (sorted, mtime 0).
pub fn source_tar() -> &'static [u8] {
    SOURCE_TAR
}

/// The sha256 (hex) of [`source_tar`]: the label value of an image built from it.
pub fn source_digest() -> &'static str {
    static DIGEST: OnceLock<String> = OnceLock::new();
    DIGEST.get_or_init(|| hex::encode(Sha256::digest(SOURCE_TAR)))
}

pub use crate::config::is_reference_app as is_reference;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not the reference image: it is pulled or used like any other.
    NotReference,
    /// The reference image, built from this binary's source.
    UpToDate,
    /// The reference image, to be built now.
    Build(Why),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    Missing,
    /// Built from another source (`Some(digest)`), or by something that records none.
    Stale {
        have: Option<String>,
    },
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Missing => write!(f, "it is not on this Docker host"),
            Why::Stale { have: Some(have) } => write!(
                f,
                "it was built from another source ({LABEL_APP_SOURCE} {} ≠ this radar-deploy's {})",
                short(have),
                short(source_digest())
            ),
            Why::Stale { have: None } => write!(
                f,
                "it has no {LABEL_APP_SOURCE} label (not built by radar-deploy), so its source is unknown"
            ),
        }
    }
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// Pure: what to do about `image`, given its labels (`None`: not on the daemon) and the digest
/// of the source this binary carries.
pub fn decide(image: &str, labels: Option<&BTreeMap<String, String>>, digest: &str) -> Decision {
    if !is_reference(image) {
        return Decision::NotReference;
    }
    let Some(labels) = labels else {
        return Decision::Build(Why::Missing);
    };
    match labels.get(LABEL_APP_SOURCE) {
        Some(have) if have == digest => Decision::UpToDate,
        have => Decision::Build(Why::Stale {
            have: have.cloned(),
        }),
    }
}

/// The line `up --dry-run` prints before the plan when the image would be built.
pub fn plan_line(image: &str, builder: &str, decision: &Decision) -> Option<String> {
    match decision {
        Decision::Build(why) => Some(format!(
            "preflight: build {image} from the embedded source with {builder} ({why}; \
             minutes the first time)"
        )),
        Decision::NotReference | Decision::UpToDate => None,
    }
}

/// Looks at `image` on the daemon and decides (for `--dry-run`: nothing is changed).
pub async fn check(client: &DockerClient, image: &str) -> Result<Decision> {
    if !is_reference(image) {
        return Ok(Decision::NotReference);
    }
    let labels = client.image_labels(image).await?;
    Ok(decide(image, labels.as_ref(), source_digest()))
}

/// Makes sure the reference image `image` exists and was built from this binary's source,
/// building it with `builder` when not. Returns how long the build took, `None` when nothing
/// was built (not the reference image, or up to date, or built meanwhile by another run).
pub async fn ensure(
    client: &DockerClient,
    image: &str,
    builder: &str,
    ui: &Ui,
) -> Result<Option<Duration>> {
    match check(client, image).await? {
        Decision::Build(_) => {}
        Decision::UpToDate | Decision::NotReference => return Ok(None),
    }
    let _lock = ProjectLock::acquire_for(
        &client.endpoint.host,
        &format!("image build\0{image}"),
        &format!("the build of {image}"),
        BUILD_WAIT,
        |pid| {
            ui.info(&format!(
                "waiting for another radar-deploy run (pid {pid}) that is building {image}…"
            ))
        },
    )
    .await?;
    // Another run may have built it while this one waited.
    let why = match check(client, image).await? {
        Decision::Build(why) => why,
        Decision::UpToDate | Decision::NotReference => return Ok(None),
    };
    let t0 = Instant::now();
    ui.info(&format!(
        "building {image} from the embedded source with {builder} (APP_BUILDER_IMAGE): {why}"
    ));
    let req = BuildRequest {
        context: source_tar(),
        tag: image,
        build_args: BTreeMap::from([
            ("BUILDER_IMAGE".to_string(), builder.to_string()),
            ("VERSION".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ]),
        labels: BTreeMap::from([
            (LABEL_APP_SOURCE.to_string(), source_digest().to_string()),
            (LABEL_APP_BUILDER.to_string(), builder.to_string()),
        ]),
    };
    let mut last: VecDeque<String> = VecDeque::with_capacity(KEEP_LINES);
    let mut keep = |line: &str| {
        if last.len() == KEEP_LINES {
            last.pop_front();
        }
        last.push_back(line.to_string());
    };
    let result = if std::io::stderr().is_terminal() && !ui.quiet {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        let r = client
            .build_image(&req, |line| {
                keep(line);
                let line: String = line.chars().take(100).collect();
                bar.set_message(format!("building {image}: {line}"));
            })
            .await;
        bar.finish_and_clear();
        r
    } else {
        client
            .build_image(&req, |line| {
                keep(line);
                ui.info(&format!("build {image} | {line}"));
            })
            .await
    };
    if let Err(e) = result {
        let last: Vec<String> = last.into_iter().collect();
        return Err(anyhow!(
            "building the reference app image {image} with APP_BUILDER_IMAGE={builder} failed: \
             {e}\n  last lines of the build:\n{}\n  fix: {}",
            last.iter()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
            failure_fix(&e.to_string(), &last, builder)
        ));
    }
    let took = t0.elapsed();
    ui.info(&format!(
        "built {image} in {:.1}s (source sha256 {})",
        took.as_secs_f64(),
        short(source_digest())
    ));
    Ok(Some(took))
}

/// Pure: the fix for a failed build, from the daemon's message and the build's last lines.
pub fn failure_fix(message: &str, last_lines: &[String], builder: &str) -> String {
    let all = format!("{message}\n{}", last_lines.join("\n"));
    let has = |needle: &str| all.contains(needle);
    let at_from = last_lines
        .last()
        .is_some_and(|l| l.starts_with("Step ") && l.contains(" : FROM "));
    if at_from
        || has("pull access denied")
        || has("manifest unknown")
        || has("repository does not exist")
        || (has("not found") && has(builder))
    {
        return format!(
            "the builder image {builder} is not on this Docker host and could not be pulled: \
             pull it (`docker pull {builder}`), or set APP_BUILDER_IMAGE to a local image with \
             cargo (without a registry, scripts/offline-images.sh makes \
             radar-offline/rust:bookworm)"
        );
    }
    if has("--offline")
        || has("failed to get `")
        || has("failed to download")
        || has("Couldn't resolve host")
        || has("failed to query replaced source registry")
        || has("no matching package named")
    {
        return format!(
            "the build could not get the app's crates: {builder} needs to reach the crates registry, or \
             to carry them vendored with a $CARGO_HOME/config.toml source replacement \
             (scripts/offline-images.sh makes such an image, radar-offline/rust:bookworm); \
             or set APP_BUILDER_IMAGE to one that does"
        );
    }
    if has("cannot find -lc") || has("linked dynamically") {
        return format!(
            "{builder} lacks glibc's static libraries: use an image with libc6-dev (the official \
             rust images have it) as APP_BUILDER_IMAGE"
        );
    }
    format!(
        "read the build output above; APP_BUILDER_IMAGE must be a Rust image with cargo, gcc \
         and libc6-dev (default {}), or set APP_IMAGE to an app image of your own",
        crate::config::vars::DEFAULT_APP_BUILDER_IMAGE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_tags_of_the_reference_repository_are_the_reference_image() {
        for image in [
            "radar-deploy/radar-app:0.1.0",
            "radar-deploy/radar-app:test-1234",
            "radar-deploy/radar-app",
            "radar-deploy/radar-app:latest",
        ] {
            assert!(is_reference(image), "{image}");
        }
        for image in [
            "example/app:2",
            "radar-deploy/radar-app-fork:0.1.0",
            "registry.example:5000/radar-deploy/radar-app:0.1.0",
            "radar-deploy/radar-app@sha256:0123456789abcdef",
            "other/radar-deploy/radar-app:1",
        ] {
            assert!(!is_reference(image), "{image}");
        }
    }

    #[test]
    fn a_missing_reference_image_is_built_and_any_other_image_left_to_the_pull() {
        assert_eq!(
            decide("radar-deploy/radar-app:0.1.0", None, "abc"),
            Decision::Build(Why::Missing)
        );
        assert_eq!(decide("example/app:2", None, "abc"), Decision::NotReference);
        let built_elsewhere = labels(&[(LABEL_APP_SOURCE, "old")]);
        assert_eq!(
            decide("example/app:2", Some(&built_elsewhere), "abc"),
            Decision::NotReference
        );
    }

    #[test]
    fn a_reference_image_from_another_source_or_without_the_label_is_stale() {
        let image = "radar-deploy/radar-app:0.1.0";
        assert_eq!(
            decide(image, Some(&labels(&[(LABEL_APP_SOURCE, "abc")])), "abc"),
            Decision::UpToDate
        );
        assert_eq!(
            decide(image, Some(&labels(&[(LABEL_APP_SOURCE, "old")])), "abc"),
            Decision::Build(Why::Stale {
                have: Some("old".into())
            })
        );
        // An image from the former host build (scripts/build-app-image.sh) records the
        // binary's digest, not the source's.
        let legacy = labels(&[
            ("io.radar-deploy.app", "reference"),
            ("io.radar-deploy.app.binary-sha256", "0f0f"),
        ]);
        assert_eq!(
            decide(image, Some(&legacy), "abc"),
            Decision::Build(Why::Stale { have: None })
        );
    }

    #[test]
    fn dry_run_names_the_build_and_the_builder_only_when_one_is_due() {
        let image = "radar-deploy/radar-app:0.1.0";
        let line = plan_line(image, "rust:1-bookworm", &Decision::Build(Why::Missing)).unwrap();
        assert_eq!(
            line,
            "preflight: build radar-deploy/radar-app:0.1.0 from the embedded source with \
             rust:1-bookworm (it is not on this Docker host; minutes the first time)"
        );
        assert_eq!(plan_line(image, "b", &Decision::UpToDate), None);
        assert_eq!(plan_line("x/y:1", "b", &Decision::NotReference), None);
    }

    #[test]
    fn the_embedded_source_holds_the_app_package_the_lockfile_and_the_dockerfile() {
        let mut archive = tar::Archive::new(source_tar());
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            assert_eq!(entry.header().mtime().unwrap(), 0, "deterministic mtime");
            assert_eq!(entry.header().uid().unwrap(), 0);
            names.push(entry.path().unwrap().to_string_lossy().into_owned());
        }
        for want in [
            "Cargo.toml",
            "Cargo.lock",
            "Dockerfile",
            "src/main.rs",
            "src/routes.rs",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "entries in a stable order");
        assert!(
            !names.iter().any(|n| n.starts_with("tests/")),
            "the app's tests are not part of the image's source: {names:?}"
        );
    }

    #[test]
    fn the_embedded_source_is_the_app_directory_byte_for_byte_and_its_digest_is_stable() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut archive = tar::Archive::new(source_tar());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let on_disk = if name == "Cargo.lock" {
                root.join("Cargo.lock")
            } else {
                root.join("app").join(&name)
            };
            let mut embedded = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut embedded).unwrap();
            let disk = std::fs::read(&on_disk).unwrap();
            let disk: Vec<u8> = String::from_utf8(disk)
                .unwrap()
                .replace("\r\n", "\n")
                .into();
            assert!(
                embedded == disk,
                "{name} differs from {}",
                on_disk.display()
            );
        }
        // The digest is of the bytes, computed once: the same on every call, hex sha256.
        assert_eq!(source_digest(), source_digest());
        assert_eq!(source_digest().len(), 64);
        assert_eq!(
            source_digest(),
            hex::encode(Sha256::digest(source_tar())).as_str()
        );
    }

    #[test]
    fn a_failed_build_names_the_fix_for_its_cause() {
        let builder = "rust:1-bookworm";
        let at_from = vec!["Step 2/14 : FROM ${BUILDER_IMAGE} AS build".to_string()];
        let fix = failure_fix("image build x: lookup failed", &at_from, builder);
        assert!(fix.contains("docker pull rust:1-bookworm"), "{fix}");
        assert!(
            fix.contains("APP_BUILDER_IMAGE to a local image with cargo"),
            "{fix}"
        );

        let offline = vec![
            "error: failed to get `axum` as a dependency of package `radar-app v0.1.0`".into(),
        ];
        let fix = failure_fix("returned a non-zero code: 101", &offline, builder);
        assert!(fix.contains("vendored"), "{fix}");

        let other = vec!["error[E0308]: mismatched types".to_string()];
        let fix = failure_fix("returned a non-zero code: 101", &other, builder);
        assert!(
            fix.contains("APP_IMAGE to an app image of your own"),
            "{fix}"
        );
    }
}
