//! radar-deploy: deploys N app instances behind nginx with shared PostgreSQL and Redis (and
//! optional Redis HA with Sentinels) on Docker, then proves the deployment works.
//!
//! Data flows one way (DESIGN.md §8):
//!
//! | module | job |
//! |---|---|
//! | [`cli`] | the command line as typed (clap derive); names are a contract |
//! | [`commands`] | one thin file per subcommand: arguments → operation → report |
//! | [`config`] | env file < environment < flags → one validated, typed [`config::Config`] |
//! | [`config::vars`] | the table of every variable, its default and documentation |
//! | [`desired`] | pure: config → the desired state of every container, volume, secret, file |
//! | [`templates`] | nginx.conf and sentinel.conf from the minijinja templates in `templates/` |
//! | [`compose`] | the desired state as a Compose file |
//! | [`swarm`] | pure: the desired state as Swarm services and a stack file (`--target swarm`), the swarm's observed snapshot, the plan `up --target swarm` applies, convergence |
//! | [`endpoint`] | which daemon: `--context`, `DOCKER_HOST`, `DOCKER_CONTEXT`, the docker CLI's current context, the default; TLS material; the advice when it does not answer |
//! | [`labels`] | every label key the tool writes or reads, and who reads it |
//! | [`docker`] | the only bollard user: Docker facade (unix, npipe, tcp, TLS, ssh transports), project errors; verbs only, it runs the commands it is given |
//! | [`observed`] | types: what Docker reports of a project's labelled containers, networks, volumes (`DockerClient::observe` takes the snapshot) |
//! | [`probes`] | pure: the commands run inside containers (nginx's workers, verify's HTTP and Sentinel questions, healthcheck tests) and the parsers of their output |
//! | [`readiness`] | pure: what "ready" means for a container, one look at it, and the predicate that judges the look |
//! | [`plan`] | pure: (desired, observed) → steps with reasons (`up --dry-run` prints it) |
//! | [`apply`] | executes a plan: parallel where independent, ordered by readiness; states the Docker verbs it, `engine` and `scale` use ([`apply::HostEngine`]), which a fake engine implements in unit tests |
//! | [`app_image`] | the reference app's image: its source embedded by `build.rs`, the pure decision (missing, stale), the build inside Docker with `APP_BUILDER_IMAGE` |
//! | [`target`] | the target chosen once: `up`/`down`/`scale`/`status`/`logs`/`render` on one host (`engine`, `scale`) or a swarm (`swarm_engine`) |
//! | [`engine`] | the `up`/`down`/`status`/`logs` operations: preflight, lock, plan, apply |
//! | [`swarm_engine`] | the `up`/`scale`/`down`/`status`/`logs` operations on a swarm: observe, plan (`swarm::plan`), apply with no decisions, wait for convergence |
//! | [`scale`] | the `scale` operation: add or remove instances with no failed request, save the count |
//! | [`status`] | what `status` reports: one model per target, one text and one JSON rendering |
//! | [`lock`] | per-project OS file lock, freed when its process dies (a second run waits, then names the holder) |
//! | [`render`] | the `render` operation: write those files, all or none |
//! | [`envfile`] | the `init` operation: an env file with generated secrets; setting one variable in place |
//! | [`fsutil`] | atomic file writes; private files (mode 0600, on Windows an owner-only ACL) |
//! | [`verify`] | the proof: checks through the balancer and, via Docker, each instance and Sentinel (`verify::topology`: who is asked, from which container, on either target) |
//! | [`drill`] | a fault under load (instance, redis, postgres, nginx, network, memory, daemon), measured, judged and verified |
//! | [`http`] | the only module that speaks HTTP (reqwest) |
//! | [`ui`] | colour, quiet/verbose |
//! | [`outcome`] | exit status: 0 ok, 1 a check failed, 2 any error |
//!
//! The reference app (`radar-app`) is its own package in `app/` (a workspace member): the CLI
//! does not depend on it, it carries its source (`build.rs`) to build its image.

pub mod app_image;
pub mod apply;
pub mod cli;
pub mod commands;
pub mod compose;
pub mod config;
pub mod desired;
pub mod docker;
pub mod drill;
pub mod endpoint;
pub mod engine;
pub mod envfile;
#[cfg(test)]
mod fake;
pub mod fsutil;
pub mod http;
pub mod labels;
pub mod lock;
pub mod observed;
pub mod outcome;
pub mod plan;
pub mod probes;
pub mod readiness;
pub mod render;
pub mod scale;
pub mod status;
pub mod swarm;
pub mod swarm_engine;
pub mod target;
pub mod templates;
pub mod ui;
pub mod verify;

use anyhow::Result;

use cli::{Cli, Command};
use commands::Globals;
use outcome::Outcome;

/// Runs one invocation; `main` maps the result to the exit status.
pub async fn run(cli: Cli) -> Result<Outcome> {
    let Cli {
        env_file,
        project,
        context,
        strict,
        no_color,
        quiet,
        verbose,
        command,
    } = cli;
    let g = Globals {
        env_file,
        project,
        context,
        strict,
        ui: ui::Ui::new(no_color, quiet, verbose),
    };
    match command {
        Command::Init(args) => commands::init::run(&g, args),
        Command::Render(args) => commands::render::run(&g, args),
        Command::Up(args) => commands::up::run(&g, args).await,
        Command::Verify(args) => commands::verify::run(&g, args).await,
        Command::Scale(args) => commands::scale::run(&g, args).await,
        Command::Status(args) => commands::status::run(&g, args).await,
        Command::Logs(args) => commands::logs::run(&g, args).await,
        Command::Down(args) => commands::down::run(&g, args).await,
        Command::Drill(args) => commands::drill::run(&g, args).await,
        Command::Completions(args) => commands::completions::run(args),
    }
}
