//! The guide is executable: every ```` ```sh run ```` block of `docs/guide.md` runs, in order, in
//! one temp dir against a real stack, and the ```` ```text expect ```` block after it lists lines
//! its output must contain. ```` ```sh run exit=N ```` expects that exit status (default 0).
//!
//! `radar-deploy` is the binary cargo built, first on PATH. The stack uses a unique project
//! name (RADAR_PROJECT), a free HTTP_PORT and the offline images (scripts/offline-images.sh),
//! all given as environment, so the commands read exactly as a user types them.
//!
//! A ```` ```sh run swarm ```` block needs the daemon to be a swarm manager: before the first
//! one, the test makes it one if it is not (a single-node swarm on loopback, left again at the
//! end — `common::SwarmGuard`), as an operator would have run `docker swarm init`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug)]
struct Example {
    line: usize,
    script: String,
    exit: i32,
    swarm: bool,
    expect: Vec<String>,
}

fn examples(markdown: &str) -> Vec<Example> {
    let mut out: Vec<Example> = vec![];
    let mut lines = markdown.lines().enumerate().peekable();
    while let Some((n, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let mut body = vec![];
        for (_, l) in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            body.push(l.to_string());
        }
        let words: Vec<&str> = info.split_whitespace().collect();
        match words.as_slice() {
            ["sh", "run", rest @ ..] => {
                let exit = rest
                    .iter()
                    .find_map(|w| w.strip_prefix("exit="))
                    .map(|c| c.parse().expect("exit=N"))
                    .unwrap_or(0);
                out.push(Example {
                    line: n + 1,
                    script: body.join("\n"),
                    exit,
                    swarm: rest.contains(&"swarm"),
                    expect: vec![],
                });
            }
            ["text", "expect"] => {
                let last = out
                    .last_mut()
                    .expect("a text expect block follows a sh run block");
                last.expect = body.into_iter().filter(|l| !l.trim().is_empty()).collect();
            }
            _ => {}
        }
    }
    out
}

struct Cleanup {
    project: String,
    dir: PathBuf,
    bin: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for target in ["swarm", "single"] {
            let _ = Command::new(&self.bin)
                .current_dir(&self.dir)
                .args(["--project", &self.project, "down", "--volumes"])
                .args(["--target", target])
                .output();
        }
        let label = format!("label=com.docker.compose.project={}", self.project);
        for kind in ["container", "volume", "network"] {
            let ids = Command::new("docker")
                .args([kind, "ls", "-q", "--filter", &label])
                .arg(if kind == "container" { "-a" } else { "-q" })
                .output();
            if let Ok(o) = ids {
                for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("docker").args([kind, "rm", "-f", id]).output();
                }
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_guide_runs_as_written() {
    let _slot = common::shared();
    let guide_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide.md");
    let guide = std::fs::read_to_string(&guide_path).unwrap();
    let examples = examples(&guide);
    assert!(examples.len() >= 10, "the guide lost its runnable examples");
    assert!(
        examples.iter().filter(|e| e.swarm).count() >= 4,
        "the guide lost its runnable Swarm examples"
    );
    assert!(
        Command::new("docker")
            .arg("info")
            .output()
            .is_ok_and(|o| o.status.success()),
        "the Docker daemon is unreachable: the doc tests need it (they never skip)"
    );

    let bin = PathBuf::from(env!("CARGO_BIN_EXE_radar-deploy"));
    let dir = tempfile::tempdir().unwrap();
    let project = format!("rddoc-{}", std::process::id());
    // Declared before the cleanup, so it is dropped after it: the swarm stack is removed
    // before the swarm is left.
    let mut swarm: Option<common::SwarmGuard> = None;
    let _cleanup = Cleanup {
        project: project.clone(),
        dir: dir.path().to_path_buf(),
        bin: bin.clone(),
    };
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let port = free_port().to_string();
    for (i, ex) in examples.iter().enumerate() {
        if ex.swarm && swarm.is_none() {
            swarm = Some(common::SwarmGuard::acquire());
        }
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &ex.script])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("RADAR_PROJECT", &project)
            .env("HTTP_PORT", &port)
            .env("NGINX_IMAGE", "radar-offline/nginx:bookworm")
            .env("REDIS_IMAGE", "radar-offline/redis:bookworm")
            .env("POSTGRES_IMAGE", "radar-offline/postgres:bookworm")
            .env("APP_BUILDER_IMAGE", "radar-offline/rust:bookworm")
            .env("NO_COLOR", "1")
            .env_remove("RADAR_ENV_FILE")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let code = out.status.code().unwrap_or(-1);
        assert_eq!(
            code,
            ex.exit,
            "docs/guide.md:{} (example {}): `{}` exited {code}, the guide says {}:\n{text}",
            ex.line,
            i + 1,
            ex.script,
            ex.exit
        );
        for want in &ex.expect {
            assert!(
                text.contains(want.trim()),
                "docs/guide.md:{}: the output of `{}` lacks {:?}:\n{text}",
                ex.line,
                ex.script,
                want.trim()
            );
        }
    }
    eprintln!("docs/guide.md: {} examples executed", examples.len());
}

/// The Markdown pages a reader follows links between: the README and every page of `docs/`.
fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages.sort();
    pages
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The lines of a page outside fenced code blocks, with their line numbers.
fn prose(markdown: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = vec![];
    for (n, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push((n + 1, line));
        }
    }
    out
}

fn anchors(markdown: &str) -> Vec<String> {
    prose(markdown)
        .into_iter()
        .filter_map(|(_, l)| l.strip_prefix('#'))
        .map(|h| anchor(h.trim_start_matches('#')))
        .collect()
}

/// Moving text between the README and `docs/` must not leave a link behind: every relative link
/// names a file that exists and, with `#anchor`, a heading of that page.
#[test]
fn the_docs_links_resolve() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    let mut broken = vec![];
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let shown = page.strip_prefix(root).unwrap().display().to_string();
        for (n, line) in prose(&text) {
            for target in line.split("](").skip(1).filter_map(|s| s.split(')').next()) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, fragment) = target.split_once('#').unwrap_or((target, ""));
                let dest = if file.is_empty() {
                    page.clone()
                } else {
                    page.parent().unwrap().join(file)
                };
                checked += 1;
                if !dest.exists() {
                    broken.push(format!("{shown}:{n}: {target}: no such file"));
                } else if !fragment.is_empty() {
                    let dest_text = std::fs::read_to_string(&dest).unwrap();
                    if !anchors(&dest_text).iter().any(|a| a == fragment) {
                        broken.push(format!("{shown}:{n}: {target}: no such heading"));
                    }
                }
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} links found: the parser lost them"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The code cites the design document by section (`design.md §N`); every section it cites must
/// exist there, so a citation never points at nothing.
#[test]
fn every_cited_design_section_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let design = std::fs::read_to_string(root.join("docs/design.md")).unwrap();
    let sections: Vec<String> = prose(&design)
        .into_iter()
        .filter_map(|(_, l)| l.strip_prefix("## "))
        .filter_map(|h| h.split_once(". ").map(|(n, _)| n.to_string()))
        .collect();
    let mut stack: Vec<PathBuf> = [
        "src",
        "app",
        "scripts",
        "templates",
        "tests",
        ".ci",
        "build.rs",
        "docs",
        "README.md",
    ]
    .iter()
    .map(|d| root.join(d))
    .collect();
    let mut cited = 0;
    let mut missing = vec![];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // not text: no citation in it
        };
        for (n, line) in text.lines().enumerate() {
            let Some(at) = line
                .find("DESIGN.md §")
                .or_else(|| line.find("design.md §"))
            else {
                continue;
            };
            for section in line[at..].split('§').skip(1) {
                let number: String = section.chars().take_while(char::is_ascii_digit).collect();
                if number.is_empty() {
                    continue; // `§N` in prose about citations, not a citation
                }
                cited += 1;
                if !sections.contains(&number) {
                    let shown = path.strip_prefix(root).unwrap().display();
                    missing.push(format!("{shown}:{}: §{number}", n + 1));
                }
            }
        }
    }
    assert!(cited >= 10, "only {cited} citations of design.md found");
    assert!(
        missing.is_empty(),
        "cited sections missing from docs/design.md:\n{}",
        missing.join("\n")
    );
}
