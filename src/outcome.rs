//! Exit status (docs/design.md §2): 0 success; 1 a verification check failed; 2 usage,
//! configuration or environment error. A failed check is a result, not an error: commands
//! return `Ok(Outcome::ChecksFailed)`, and every `Err` maps to 2.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    ChecksFailed,
}

pub const EXIT_ERROR: u8 = 2;

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::ChecksFailed => ExitCode::from(1),
        }
    }
}
