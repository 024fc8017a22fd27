//! Terminal output: colour only on a terminal that shows it (on Windows, a console that accepts
//! ANSI codes) and never with NO_COLOR or --no-color; quiet and verbose levels. Secrets never
//! reach this module: callers pass text that holds none.

use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub color: bool,
    pub quiet: bool,
    pub verbose: u8,
}

impl Ui {
    pub fn new(no_color: bool, quiet: bool, verbose: u8) -> Ui {
        let color = !no_color
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::io::stdout().is_terminal()
            && console_takes_ansi();
        Ui {
            color,
            quiet,
            verbose,
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }

    pub fn yellow(&self, text: &str) -> String {
        self.paint("33", text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    /// A progress or informational line; hidden with --quiet.
    pub fn info(&self, text: &str) {
        if !self.quiet {
            line(text);
        }
    }

    /// A result line: always shown.
    pub fn result(&self, text: &str) {
        line(text);
    }

    pub fn success(&self, text: &str) {
        self.result(&format!("{} {text}", self.green("✓")));
    }

    /// Something the operator must act on: always shown, on stderr.
    pub fn warn(&self, text: &str) {
        eprintln!("{} {text}", self.yellow("!"));
    }

    /// Each of a configuration's warnings (unknown variables and the like), one line each.
    pub fn warn_each(&self, warnings: &[impl std::fmt::Display]) {
        for w in warnings {
            self.warn(&w.to_string());
        }
    }

    pub fn detail(&self, text: &str) {
        if self.verbose > 0 {
            line(text);
        }
    }
}

/// Writes `text` to stdout as is. `Ok(false)` when the reader went away (`status | head -3`):
/// the output ends there without an error, as other tools' does, where `print!` would panic.
pub fn out(text: &str) -> anyhow::Result<bool> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(anyhow::anyhow!("cannot write to stdout: {e}")),
    }
}

/// A progress line. Unwritable stdout must not stop a deployment halfway (`up | head -1`
/// closes it early): the line is dropped and the work goes on, its outcome in the exit code.
fn line(text: &str) {
    let _ = out(&format!("{text}\n"));
}

/// Whether the terminal turns ANSI codes into colours. Unix terminals do. A Windows console does
/// once virtual terminal processing is switched on (Windows 10 and later, on stdout and stderr);
/// a legacy console refuses, and would print the codes raw, so colour is off there.
pub fn console_takes_ansi() -> bool {
    // `None` off Windows: nothing to switch on.
    anstyle_query::windows::enable_ansi_colors().unwrap_or(true)
}
