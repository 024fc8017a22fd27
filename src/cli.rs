//! The command line, as the user types it. Names here are a contract (docs/design.md §2): scripts
//! and other tools call them, so they change only with a major version.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Deploy N app instances behind nginx with shared PostgreSQL and Redis (optionally Redis HA
/// with Sentinels) on Docker, and prove the deployment works.
#[derive(Debug, Parser)]
#[command(name = "radar-deploy", version, propagate_version = true)]
pub struct Cli {
    /// The env file holding the configuration and secrets.
    #[arg(
        long,
        global = true,
        env = "RADAR_ENV_FILE",
        default_value = ".env.multi-instance",
        value_name = "PATH"
    )]
    pub env_file: PathBuf,

    /// Project name: every Docker object is named and labelled from it.
    #[arg(
        long,
        global = true,
        env = "RADAR_PROJECT",
        default_value = "reporadar",
        value_name = "NAME"
    )]
    pub project: String,

    /// The docker CLI context to use (see `docker context ls`); beats DOCKER_HOST, as in the
    /// docker CLI. Without it: DOCKER_HOST, then DOCKER_CONTEXT, then the current context.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// Unknown env-file variables (a misspelling such as HTTP_PROT) are errors, not warnings:
    /// for CI, where a warning goes unread.
    #[arg(long, global = true, env = "RADAR_STRICT")]
    pub strict: bool,

    /// Never colour the output (NO_COLOR is honoured too).
    #[arg(long, global = true)]
    pub no_color: bool,

    /// Print only errors and results.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more detail (repeat for even more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// Where the stack runs: one Docker host, or the Docker Swarm the daemon belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Target {
    /// Containers on this one Docker host (the default).
    #[default]
    Single,
    /// Services on the Docker Swarm the daemon is a manager of.
    Swarm,
}

impl From<Target> for crate::config::Target {
    fn from(t: Target) -> Self {
        match t {
            Target::Single => crate::config::Target::Single,
            Target::Swarm => crate::config::Target::Swarm,
        }
    }
}

/// `--target`, declared once for every subcommand that runs on either target (`drill` has its
/// own: there it may also name the instance to kill).
#[derive(Debug, Clone, Copy, Args)]
pub struct TargetArgs {
    /// Where the stack runs: `single` (one Docker host) or `swarm` (the daemon's swarm).
    #[arg(long, env = "RADAR_TARGET", value_enum, default_value_t = Target::Single)]
    pub target: Target,
}

impl From<TargetArgs> for crate::config::Target {
    fn from(args: TargetArgs) -> Self {
        args.target.into()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the env file with strong generated secrets (mode 0600; Windows: your account only).
    Init(InitArgs),
    /// Write the deployment files (Compose file, nginx.conf, sentinel.conf).
    Render(RenderArgs),
    /// Create or update the stack, wait until it is healthy, then verify it.
    Up(UpArgs),
    /// Prove a running deployment works; exit 1 when a check fails.
    Verify(VerifyArgs),
    /// Change the number of app instances without failing a request.
    Scale(ScaleArgs),
    /// Show services, instances, health and published ports.
    Status(StatusArgs),
    /// Show container logs.
    Logs(LogsArgs),
    /// Live per-instance traffic from nginx's log (requests/s, share, latency, errors,
    /// retries) with each instance's health, CPU and memory; Ctrl-C ends it.
    Top(TopArgs),
    /// Remove everything the project created (volumes only with --volumes).
    Down(DownArgs),
    /// Inject a fault under load (an instance, Redis, Postgres or nginx crashing, an instance
    /// cut off or out of memory, the Docker daemon restarting), measure what clients saw and
    /// verify the recovery; exit 1 when a budget is exceeded.
    Drill(DrillArgs),
    /// Write a backup of the Postgres database and the Redis keys into one checked file.
    Backup(BackupArgs),
    /// Restore a backup into the running stack, behind maintenance mode (needs --yes).
    Restore(RestoreArgs),
    /// Turn maintenance mode on or off: nginx answers 503 with Retry-After, instances get
    /// nothing.
    Maintenance(MaintenanceArgs),
    /// Renew the ACME certificate when it nears expiry (or with --force) and reload nginx
    /// with it: for cron or a systemd timer, daily.
    Renew(RenewArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Renew now, however long the certificate is still valid.
    #[arg(long)]
    pub force: bool,
    /// Seconds to wait for nginx to take the new certificate.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The file to write (default: {project}-{UTC time}.radar-backup in the current directory).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The backup file (`radar-deploy backup` wrote it).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Replace the project's database and Redis keys with the backup's.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Args)]
pub struct MaintenanceArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// `on`: nginx answers 503 to every request but /health; `off`: serve again.
    #[arg(value_enum)]
    pub state: OnOff,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing env file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Directory to write the files into.
    #[arg(long, default_value = "docker", value_name = "DIR")]
    pub out: PathBuf,
    /// Include the Redis replica and three Sentinels (Compose profile `ha`).
    #[arg(long)]
    pub ha: bool,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Add a Redis replica and three Sentinels.
    #[arg(long)]
    pub ha: bool,
    /// Number of app instances (overrides APP_INSTANCES).
    #[arg(long, value_name = "N")]
    pub instances: Option<u32>,
    /// Deadline in seconds for every wait.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub timeout: u64,
    /// Do not run `verify` after the stack is up.
    #[arg(long)]
    pub no_verify: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Junit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Base URL of the balancer (default: http://localhost:HTTP_PORT).
    #[arg(long)]
    pub url: Option<String>,
    /// Requests for the load-distribution check.
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub requests: u32,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Also check the Sentinels and the replica.
    #[arg(long)]
    pub ha: bool,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The new number of app instances (1..=64).
    #[arg(value_name = "N")]
    pub instances: u32,
    /// Deadline in seconds for every wait.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// `json`: one snapshot of the last --window seconds, then exit (for scripts and CI).
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
    /// Seconds of traffic each figure covers (1..=3600).
    #[arg(long, default_value_t = 10, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub window: u64,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Only this service (e.g. nginx, app, app-2, postgres).
    pub service: Option<String>,
    /// Keep printing new lines.
    #[arg(long, short)]
    pub follow: bool,
    /// Lines to show from the end of each log.
    #[arg(long, value_name = "N")]
    pub tail: Option<u32>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Also delete the data volumes (Postgres and Redis data are lost).
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DrillKind {
    /// SIGKILL one app instance; its restart policy brings it back.
    Instance,
    /// Redis: with Sentinels (--ha) stop the master, the replica is promoted; without, SIGKILL
    /// Redis, its restart policy and append-only file bring it back.
    Redis,
    /// SIGKILL Postgres: readiness goes 503, sessions go on, no instance restarts, no row lost.
    Postgres,
    /// SIGKILL nginx: how long the front door is shut.
    Nginx,
    /// Cut one app instance off the network for --cut-secs, then attach it again.
    Network,
    /// Make one app instance reach its memory limit: the OOM kill is reported as such.
    Memory,
    /// Restart the Docker daemon the stack runs on (--restart-command says how); every
    /// container must come back by its restart policy and `verify` pass again.
    Daemon,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The fault to inject.
    #[arg(value_enum)]
    pub kind: DrillKind,
    /// Seconds the load runs at least (it runs on until full health is back).
    #[arg(long, default_value_t = 20, value_name = "S")]
    pub duration: u64,
    /// Concurrent keep-alive clients (plus one session client).
    #[arg(long, default_value_t = 8, value_name = "C")]
    pub concurrency: u32,
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
    /// Where the stack runs: `single` (one Docker host, the default) or `swarm` (the daemon's
    /// swarm; `RADAR_TARGET` is honoured too). Any other value names the instance to kill, as
    /// `--instance` does (kept for scripts: `drill instance --target app-2`).
    #[arg(long, value_name = "single|swarm|INSTANCE")]
    pub target: Option<String>,
    /// `drill instance`: the instance to kill (e.g. app-2; on Swarm app-N is the task in slot
    /// N); default the highest numbered.
    #[arg(long, value_name = "NAME")]
    pub instance: Option<String>,
    /// Failed requests allowed (default: 0 for `instance`, `postgres` and `memory`, 20 for
    /// `network`, not judged for `redis` and `nginx`).
    #[arg(long, value_name = "N")]
    pub max_failed: Option<u64>,
    /// Longest outage allowed in ms: the session client's for `redis` (default 7000 with
    /// Sentinels, 5000 without), any client's for `nginx` (default 5000), the worst client's
    /// for the others (default: not judged).
    #[arg(long, value_name = "N")]
    pub max_outage_ms: Option<u64>,
    /// Deadline in seconds for each recovery.
    #[arg(long, default_value_t = 90, value_name = "SECS")]
    pub timeout: u64,
    /// `drill network`: seconds the instance stays cut off the network.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub cut_secs: u64,
    /// Base URL of the balancer (default: http://localhost:HTTP_PORT).
    #[arg(long)]
    pub url: Option<String>,
    /// Also draw what the clients saw: requests/s, latency p50/p95/p99 and failures per
    /// second, the fault, recovery and verification marked. FILE.html: a self-contained page
    /// with the verdict and figures; FILE.svg: the charts. Written also when the drill fails.
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub daemon: DrillDaemonArgs,
}

/// The flags of `drill daemon`.
#[derive(Debug, Args, Default)]
pub struct DrillDaemonArgs {
    /// `drill daemon`: the command that restarts the Docker daemon, run with the platform's
    /// shell (sh -c; cmd /c on Windows), e.g. "sudo systemctl restart docker".
    #[arg(long, value_name = "COMMAND")]
    pub restart_command: Option<String>,
    /// `drill daemon`: the longest time from the fault until `verify` passes again, in ms
    /// (default 60000).
    #[arg(long, value_name = "N")]
    pub max_recovery_ms: Option<u64>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
