//! radar-deploy: deploys N app instances behind nginx with shared PostgreSQL and Redis (and
//! optional Redis HA with Sentinels) on Docker, then proves the deployment works.
//!
//! **Two targets.** One Docker host (containers; the default) or a Docker Swarm
//! (`--target swarm`: services). The choice is made once: the command line's `--target` becomes
//! a [`config::Target`], and [`target`] matches on it to call the one-host operations
//! ([`engine`], [`scale`]) or the Swarm ones ([`swarm_engine`]); [`verify`] and [`drill`] take it
//! in their options.
//!
//! **Data flows one way** (docs/design.md §8, docs/architecture.md): a module imports only the
//! modules listed before it in this table (the test-only fakes aside), so no two import each other
//! (`python3 ../shared/tools/modgraph.py src` checks the circles).
//!
//! | layer | module | job |
//! |---|---|---|
//! | host | [`endpoint`] | which daemon: `--context`, `DOCKER_HOST`, `DOCKER_CONTEXT`, the docker CLI's current context, the default; TLS material; the advice when it does not answer |
//! | host | [`ui`], [`outcome`], [`fsutil`], [`lock`] | colour and verbosity, stdout that ends quietly when its reader goes away; exit status 0/1/2; atomic and private files (0600, an owner-only ACL on Windows); the per-project OS file lock |
//! | pure | [`config`] | env file < environment < flags → one validated, typed [`config::Config`]; [`config::vars`]: every variable, its default and documentation |
//! | pure | [`tls`] | certificates without IO: what a PEM chain says, whether a certificate file and key can be served for the public hosts (key, chain order and signatures, dates, names), ACME's self-signed placeholder, when to renew |
//! | pure | [`labels`] | every label key the tool writes or reads, and who reads it |
//! | pure | [`templates`] | nginx.conf and sentinel.conf from the minijinja templates in `templates/` |
//! | pure | [`probes`] | the commands run inside containers (nginx's workers, verify's HTTP and Sentinel questions, healthcheck tests) and the parsers of their output |
//! | pure | [`desired`] | config → the one-host desired state of every container, volume, secret, file |
//! | pure | [`compose`] | the desired state as a Compose file |
//! | pure | [`swarm`] | the desired state as Swarm services and a stack file; the swarm's observed snapshot; [`swarm::plan`] (what `up --target swarm` changes, printed by `--dry-run`); convergence as a predicate |
//! | pure | [`observed`] | types: what Docker reports of a project's containers, networks, volumes |
//! | pure | [`readiness`] | what "ready" means for a container, and the predicate that judges one look at it |
//! | pure | [`plan`] | (desired, observed) → one-host steps with reasons (`up --dry-run` prints it) |
//! | pure | [`traffic`] | nginx's JSON access log parsed and summed per instance over a window (requests/s, share, upstream percentiles, 4xx/5xx, failures, retries, in flight); [`traffic::view`]: `top`'s screen as text and JSON |
//! | pure | [`status`] | what `status` reports: one model per target, one text and one JSON rendering |
//! | seam | [`docker`] | the only bollard user: the Docker facade (unix, npipe, tcp, TLS, ssh), verbs only: it runs what it is given and converts desired and Swarm specs to the Engine API |
//! | seam | [`http`] | the only reqwest user: GETs, and the HTTPS front door's probes (a handshake's certificate and versions, the plain-HTTP redirect) |
//! | operation | [`app_image`] | the reference app's image: its source embedded by `build.rs`, missing or stale, built inside Docker with `APP_BUILDER_IMAGE` |
//! | operation | [`render`], [`envfile`] | the files of `render`, all or none; `init`'s env file with generated secrets |
//! | operation | [`maintenance`] | one host: nginx's maintenance flag (503 + Retry-After, instances get nothing), on, off, asked; Swarm refused |
//! | operation | [`sentinels`] | asks the Redis Sentinels (an exec in their containers) which Redis is the master |
//! | operation | [`acme`] | certificates from an ACME CA by HTTP-01 (answered by nginx statelessly with the account key's thumbprint); the account key and certificate kept on the project's `acme` volume |
//! | operation | [`certificates`] | the certificate nginx serves: the operator's files read and checked before anything is created, or the ACME store (account key, placeholder, renewal when due); the one nginx serves, for `status` |
//! | operation | [`backup`] | one host: Postgres dump and Redis keys streamed through execs into one checked file, written atomically ([`backup::archive`]); restore behind maintenance mode |
//! | operation | [`apply`] | executes a one-host plan, parallel where independent, ordered by readiness; [`apply::HostEngine`] names the verbs it, `engine` and `scale` use |
//! | operation | [`engine`] | one host: `up`/`down`/`status`/`logs` (preflight, lock, plan, apply) |
//! | operation | [`scale`] | one host: add or remove instances with no failed request, save the count |
//! | operation | [`swarm_engine`] | a swarm: observe, plan, apply with no decisions ([`swarm_engine::SwarmVerbs`]), wait for convergence; `up`/`scale`/`down`/`status`/`logs` |
//! | operation | [`verify`] | the proof: checks through the balancer (over HTTPS, with the handshake, certificate and redirect checks, when TLS is on) and, via Docker, each instance and Sentinel (`verify::topology`: who is asked, on either target) |
//! | operation | [`top`] | follows nginx's log (container or Swarm task) through the Engine API, with the stats API (streamed for the live view) and `stub_status`: `top`'s live view and snapshot, `status`'s last minute |
//! | operation | [`drill`] | a fault under load (instance, redis, postgres, nginx, network, memory, daemon), measured, judged and verified |
//! | dispatch | [`target`] | `up`/`down`/`scale`/`status`/`logs`/`render` on the chosen target |
//! | front | [`cli`], [`commands`] | the command line as typed (names are a contract); one thin file per subcommand: arguments → operation → report |
//!
//! Unit tests run the executors against in-memory fakes of the Docker verbs (`fake`, test-only).
//! The reference app (`radar-app`) is its own package in `app/` (a workspace member): the CLI
//! does not depend on it, it carries its source (`build.rs`) to build its image.

pub mod acme;
pub mod app_image;
pub mod apply;
pub mod backup;
pub mod certificates;
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
pub mod maintenance;
pub mod observed;
pub mod outcome;
pub mod plan;
pub mod probes;
pub mod readiness;
pub mod render;
pub mod scale;
pub mod sentinels;
pub mod status;
pub mod swarm;
pub mod swarm_engine;
pub mod target;
pub mod templates;
pub mod tls;
pub mod top;
pub mod traffic;
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
        Command::Top(args) => commands::top::run(&g, args).await,
        Command::Down(args) => commands::down::run(&g, args).await,
        Command::Drill(args) => commands::drill::run(&g, args).await,
        Command::Backup(args) => commands::backup::run(&g, args).await,
        Command::Restore(args) => commands::restore::run(&g, args).await,
        Command::Maintenance(args) => commands::maintenance::run(&g, args).await,
        Command::Renew(args) => commands::renew::run(&g, args).await,
        Command::Completions(args) => commands::completions::run(args),
    }
}
