//! Where raw values come from: the env file (dotenvy, never exported into the process), then the
//! process environment, then command-line flags. One place merges them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::vars::{self, APP_PASSTHROUGH_PREFIX};
use super::Problem;

const UTF8_BOM: &str = "\u{feff}";

/// An env file's text as the parser needs it (UTF-8, no byte-order mark, `\n` line ends), and
/// how the file itself was stored, so that a rewrite (`envfile::set_var`) keeps it:
/// editors on Windows save with a UTF-8 BOM and CRLF line ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvText {
    pub text: String,
    pub bom: bool,
    pub crlf: bool,
}

/// Why an env file's bytes are not text radar-deploy can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    /// What Notepad's "Unicode" and PowerShell 5's `Out-File`/`>` write.
    #[error("is encoded as {0} (it starts with that byte-order mark); env files must be UTF-8")]
    Utf16Or32(&'static str),
    #[error("holds NUL bytes at line {line}: probably UTF-16 without a byte-order mark; env files must be UTF-8")]
    Nul { line: usize },
    #[error(
        "is not valid UTF-8 at line {line} (a legacy code page such as Windows-1252 or Latin-1?)"
    )]
    NotUtf8 { line: usize },
}

impl EncodingError {
    pub fn fix(&self) -> &'static str {
        "save it as UTF-8 (Notepad: File > Save as > Encoding: UTF-8; PowerShell: \
         Set-Content -Encoding utf8), or write a new one with `radar-deploy init --force`"
    }
}

impl EnvText {
    pub fn decode(bytes: &[u8]) -> Result<EnvText, EncodingError> {
        // UTF-32 LE's mark begins with UTF-16 LE's, so it is checked first.
        for (mark, name) in [
            (&[0xFF, 0xFE, 0, 0][..], "UTF-32 LE"),
            (&[0, 0, 0xFE, 0xFF][..], "UTF-32 BE"),
            (&[0xFF, 0xFE][..], "UTF-16 LE"),
            (&[0xFE, 0xFF][..], "UTF-16 BE"),
        ] {
            if bytes.starts_with(mark) {
                return Err(EncodingError::Utf16Or32(name));
            }
        }
        let line_of = |at: usize| 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
        if let Some(at) = bytes.iter().position(|&b| b == 0) {
            return Err(EncodingError::Nul { line: line_of(at) });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| EncodingError::NotUtf8 {
            line: line_of(e.valid_up_to()),
        })?;
        let (bom, text) = match text.strip_prefix(UTF8_BOM) {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let crlf = text.contains("\r\n");
        Ok(EnvText {
            // dotenvy drops a line's final '\r', but would keep it inside a quoted multi-line
            // value, so every CRLF goes before parsing.
            text: text.replace("\r\n", "\n"),
            bom,
            crlf,
        })
    }

    /// The file's bytes for `text` (with `\n` line ends), stored as this file was.
    pub fn encode(&self, text: &str) -> String {
        let body = if self.crlf {
            text.replace("\r\n", "\n").replace('\n', "\r\n")
        } else {
            text.to_string()
        };
        if self.bom {
            format!("{UTF8_BOM}{body}")
        } else {
            body
        }
    }
}

/// Where a value was set, so a problem can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File { path: PathBuf, line: usize },
    Environment,
    Flag(&'static str),
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Environment => f.write_str("process environment"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::Default => f.write_str("built-in default"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RawValue {
    pub value: String,
    pub origin: Origin,
}

/// Every raw value by variable name, merged by precedence.
#[derive(Debug, Default, Clone)]
pub struct RawValues {
    pub values: BTreeMap<String, RawValue>,
}

impl RawValues {
    pub fn get(&self, name: &str) -> Option<&RawValue> {
        self.values.get(name)
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>, origin: Origin) {
        self.values.insert(
            name.to_string(),
            RawValue {
                value: value.into(),
                origin,
            },
        );
    }

    /// Values from the env file. A missing file is not an error here: validation then reports
    /// each required variable, and the caller adds the hint to run `init`.
    pub fn read_env_file(&mut self, path: &Path, problems: &mut Vec<Problem>) -> bool {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            Err(e) => {
                problems.push(Problem::file(
                    path,
                    format!("cannot be read: {e}"),
                    "check the path and its permissions",
                ));
                return true;
            }
        };
        let text = match EnvText::decode(&bytes) {
            Ok(decoded) => decoded.text,
            Err(e) => {
                problems.push(Problem::file(path, e.to_string(), e.fix()));
                return true;
            }
        };
        for item in dotenvy::from_read_iter(text.as_bytes()) {
            match item {
                Ok((name, value)) => {
                    let line = line_of_assignment(&text, &name);
                    self.set(
                        &name,
                        value,
                        Origin::File {
                            path: path.to_path_buf(),
                            line,
                        },
                    );
                }
                Err(dotenvy::Error::LineParse(bad, _)) => {
                    // dotenvy reports the unparsable rest of the line; find the line it is on.
                    let (line, text_of_line) = line_containing(&text, &bad);
                    // The variable name is shown, never the value: the line may hold a secret.
                    let name = text_of_line
                        .split('=')
                        .next()
                        .map(|n| n.trim().trim_start_matches("export ").trim())
                        .filter(|n| {
                            !n.is_empty() && n.len() <= 64 && !n.contains(char::is_whitespace)
                        })
                        .unwrap_or("(env file)");
                    problems.push(Problem {
                        variable: name.to_string(),
                        origin: Some(Origin::File { path: path.to_path_buf(), line }),
                        message: "is not valid dotenv syntax".into(),
                        fix: "write NAME=value, and quote a value that contains spaces, quotes or # (NAME='a value')".into(),
                    });
                }
                Err(e) => problems.push(Problem::file(
                    path,
                    format!("cannot be parsed: {e}"),
                    "fix the file or write a new one with `radar-deploy init --force`",
                )),
            }
        }
        true
    }

    /// Known variables (and `APP_ENV_*`) from the process environment override the file.
    pub fn read_process_env(&mut self, env: impl IntoIterator<Item = (String, String)>) {
        for (name, value) in env {
            if vars::lookup(&name).is_some() || name.starts_with(APP_PASSTHROUGH_PREFIX) {
                self.set(&name, value, Origin::Environment);
            }
        }
    }
}

fn line_of_assignment(text: &str, name: &str) -> usize {
    // The last assignment wins in dotenv, so report the last line that assigns the name.
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start();
            let l = l.strip_prefix("export ").unwrap_or(l).trim_start();
            l.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1)
        .last()
        .unwrap_or(0)
}

fn line_containing<'t>(text: &'t str, fragment: &str) -> (usize, &'t str) {
    let first = fragment.lines().next().unwrap_or("").trim();
    text.lines()
        .enumerate()
        .find(|(_, l)| !first.is_empty() && l.contains(first))
        .map(|(i, l)| (i + 1, l))
        .unwrap_or((0, ""))
}
