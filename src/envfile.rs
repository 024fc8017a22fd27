//! The `init` operation: a ready-to-use env file with strong random secrets.

use std::path::Path;

use anyhow::{bail, Result};

use crate::config::source::EnvText;
use crate::config::{secret, vars};
use crate::fsutil;

/// The env file's text: every variable from the table, defaults as they are, secrets freshly
/// generated from the OS random source.
pub fn generate() -> Result<String> {
    let mut out = String::from(
        "# radar-deploy env file, written by `radar-deploy init`. It holds the stack's secrets: keep it\n\
         # private (mode 0600; on Windows, readable by your account alone). Every variable is\n\
         # described in .env.multi-instance.example.\n",
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

/// Writes a new env file (mode 0600 on unix, an owner-only ACL on Windows) and says how private
/// it is. Refuses to replace an existing one unless `force`.
pub fn init(path: &Path, force: bool) -> Result<fsutil::Privacy> {
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

/// Sets `name=value` in an existing env file, atomically and keeping everything else: every
/// other line and comment, its byte-order mark and line ends, and the file's mode (0600 for a
/// file holding secrets). Every
/// assignment of `name` gets the value (dotenv's last one wins, so an earlier stale one would
/// only mislead a reader); without one, the assignment is appended.
pub fn set_var(path: &Path, name: &str, value: &str) -> Result<()> {
    use anyhow::Context;
    // Write where the file really is: replacing a symlink with a file would cut it loose.
    let real =
        std::fs::canonicalize(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = std::fs::read(&real).with_context(|| format!("cannot read {}", path.display()))?;
    let stored = EnvText::decode(&bytes)
        .map_err(|e| anyhow::anyhow!("{} {e}\n  fix: {}", path.display(), e.fix()))?;
    let mode = file_mode(&real)?;
    // Written back as it was stored (a BOM, CRLF), so an editor on Windows sees no change
    // beyond the value.
    let updated = stored.encode(&set_assignment(&stored.text, name, value));
    fsutil::write_all_atomically(&[(real, updated)], mode)
}

#[cfg(unix)]
fn file_mode(path: &Path) -> Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn file_mode(_path: &Path) -> Result<u32> {
    Ok(0o600)
}

/// The env file text with `name` set to `value` (see [`set_var`]). Pure.
pub fn set_assignment(text: &str, name: &str, value: &str) -> String {
    let mut found = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|line| match split_assignment(line, name) {
            Some((prefix, rest)) => {
                found = true;
                format!("{prefix}{value}{rest}")
            }
            None => line.to_string(),
        })
        .collect();
    if !found {
        out.push(format!("{name}={value}"));
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// For `  export NAME = old  # note`: (`  export NAME = `, `  # note`).
fn split_assignment<'a>(line: &'a str, name: &str) -> Option<(&'a str, &'a str)> {
    let body = line.trim_start();
    let body = body.strip_prefix("export ").map_or(body, str::trim_start);
    let after_name = body.strip_prefix(name)?;
    let after_eq = after_name.trim_start().strip_prefix('=')?;
    let value_start = line.len() - after_eq.trim_start().len();
    let value_len = line[value_start..]
        .find(char::is_whitespace)
        .unwrap_or(line.len() - value_start);
    Some((&line[..value_start], &line[value_start + value_len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_assignment_replaces_the_value_and_keeps_everything_else() {
        let text =
            "# header\nHTTP_PORT=80\nAPP_INSTANCES=3  # grows with traffic\n\nAPP_INSTANCESX=1\n";
        assert_eq!(
            set_assignment(text, "APP_INSTANCES", "5"),
            "# header\nHTTP_PORT=80\nAPP_INSTANCES=5  # grows with traffic\n\nAPP_INSTANCESX=1\n"
        );
        assert_eq!(
            set_assignment("export APP_INSTANCES = \"3\"\n", "APP_INSTANCES", "2"),
            "export APP_INSTANCES = 2\n"
        );
    }

    #[test]
    fn set_assignment_appends_when_missing() {
        assert_eq!(
            set_assignment("A=1", "APP_INSTANCES", "4"),
            "A=1\nAPP_INSTANCES=4\n"
        );
    }

    #[test]
    fn set_var_keeps_a_byte_order_mark_and_crlf_line_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        let cases = [
            (
                "\u{feff}A=1\r\nAPP_INSTANCES=3\r\n",
                "\u{feff}A=1\r\nAPP_INSTANCES=7\r\n",
            ),
            ("\u{feff}APP_INSTANCES=3\n", "\u{feff}APP_INSTANCES=7\n"),
            ("A=1\r\n", "A=1\r\nAPP_INSTANCES=7\r\n"),
            ("A=1\n", "A=1\nAPP_INSTANCES=7\n"),
        ];
        for (before, after) in cases {
            std::fs::write(&path, before).unwrap();
            set_var(&path, "APP_INSTANCES", "7").unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), after, "{before:?}");
        }
    }

    #[test]
    fn set_var_refuses_a_utf16_file_and_leaves_it_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(
                "APP_INSTANCES=3\r\n"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        std::fs::write(&path, &utf16).unwrap();
        let err = set_var(&path, "APP_INSTANCES", "7")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("UTF-16 LE") && err.contains("save it as UTF-8"),
            "{err}"
        );
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), utf16);
    }

    #[cfg(unix)]
    #[test]
    fn set_var_keeps_the_file_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        fsutil::write_private(&path, "SECRET=x\nAPP_INSTANCES=3\n", false).unwrap();
        set_var(&path, "APP_INSTANCES", "7").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "SECRET=x\nAPP_INSTANCES=7\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
