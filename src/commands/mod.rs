//! One file per subcommand. Each only turns its arguments into the operation's inputs, calls
//! the operation, and reports; the operations live in the modules named in lib.rs.

pub mod backup;
pub mod completions;
pub mod down;
pub mod drill;
pub mod init;
pub mod logs;
pub mod maintenance;
pub mod render;
pub mod renew;
pub mod restore;
pub mod scale;
pub mod status;
pub mod top;
pub mod up;
pub mod verify;

use std::path::PathBuf;

use anyhow::Result;

use crate::config::{self, Config, Overrides};
use crate::docker::DockerClient;
use crate::endpoint::{self, Endpoint};
use crate::ui::Ui;

/// The global options every subcommand sees.
#[derive(Debug, Clone)]
pub struct Globals {
    pub env_file: PathBuf,
    pub project: String,
    /// `--context NAME`: the docker CLI's context to use (see [`crate::endpoint`]).
    pub context: Option<String>,
    /// `--strict` (or RADAR_STRICT): unknown env-file variables are errors, not warnings.
    pub strict: bool,
    pub ui: Ui,
}

impl Globals {
    /// The validated configuration for this run; every problem is reported at once, and
    /// every unknown env-file variable is warned about (an error under `--strict`).
    pub fn config(&self, overrides: Overrides) -> Result<Config> {
        let overrides = Overrides {
            strict: self.strict,
            ..overrides
        };
        let inputs =
            config::Inputs::from_process(self.env_file.clone(), self.project.clone(), overrides);
        let cfg = config::resolve(&inputs)?;
        self.ui.warn_each(&cfg.warnings);
        Ok(cfg)
    }

    /// The Docker endpoint, resolved as the docker CLI does (flag, environment, context store).
    pub fn endpoint(&self) -> Result<Endpoint> {
        Ok(endpoint::from_process(self.context.clone())?)
    }

    /// A client of the daemon this run talks to; `-v` says which one and what it runs.
    pub async fn docker(&self) -> Result<DockerClient> {
        crate::target::connect(&self.endpoint()?, &self.ui).await
    }
}
