//! The command line: argument parsing and one module per subcommand.
//!
//! Every command returns an [`Exit`]; [`run`] is the one place where failures become exit
//! codes and error messages. Data goes to stdout (a table, or JSON with `--output json`);
//! progress, errors and hints go to stderr.

/// `println!` that cannot panic: a stdout that cannot be written (a pipe closed by `head`, a
/// full disk) drops the line instead of ending the process, so a long `run` finishes its
/// experiment whatever happens to its output.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` that cannot panic (see `outln!`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!` that cannot panic: a stderr that cannot be written loses the message, never
/// the run (a panic there once left a trial Running).
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// `eprint!` that cannot panic (see `errln!`).
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod completions;
mod crd;
mod dashboard;
mod export;
mod logs;
mod operator;
mod output;
mod progress;
mod query;
mod run;
mod serve;
mod stop;
mod submit;
mod validate;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::executor::Executor;
use crate::executor::kubernetes::{self, KubernetesExecutor, KubernetesSettings};
use crate::executor::local::LocalExecutor;

pub use output::Output;
pub use submit::{ManifestFormat, SubmitArgs};

/// Default store location, relative to the current directory.
pub const DEFAULT_STORE: &str = ".tuneflow/tuneflow.db";

/// tuneflow: hyperparameter tuning in one binary.
///
/// Write an experiment file (tuneflow's format or a Katib `Experiment`), run it, and query the
/// results kept in the store.
#[derive(Debug, Parser)]
#[command(name = "tuneflow", version, about, long_about = None)]
pub struct Cli {
    /// Where results are kept: a file path or sqlite://PATH.
    #[arg(long, global = true, env = "TUNEFLOW_STORE", default_value = DEFAULT_STORE)]
    pub store: String,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an experiment file until it is done (resumes it if the store already has it).
    Run(RunArgs),
    /// Check experiment files and report every problem found.
    Validate(ValidateArgs),
    /// List the experiments in the store.
    Experiments(ListArgs),
    /// List the trials of an experiment.
    Trials(ExperimentArgs),
    /// Show one trial: its parameters, state and every observation.
    Trial(TrialArgs),
    /// Show the best trial of an experiment and its parameters.
    Best(ExperimentArgs),
    /// Print a trial's log: its output as the executor wrote it (-f follows it until the
    /// trial ends).
    Logs(LogsArgs),
    /// Serve the REST API: suggestions for custom training loops, notebooks and workers.
    ///
    /// Prints `tuneflow serving on http://HOST:PORT` on stdout once it listens. Experiments
    /// without a trialTemplate are driven by clients (ask for suggestions, report
    /// observations); experiments with one are run by the server itself. See
    /// docs/rest-api.md, or GET /openapi.json on the running server.
    Serve(ServeArgs),
    /// Serve the web dashboard over a store, read-only: plots, trials and logs of every
    /// experiment, live while they run.
    ///
    /// It runs nothing and changes nothing, so it is safe beside a running `tuneflow run`,
    /// a `serve` or the operator. Prints `tuneflow dashboard on http://HOST:PORT/` on stdout
    /// once it listens. `tuneflow serve` serves the same dashboard at `/`, with a stop
    /// button.
    Dashboard(DashboardArgs),
    /// Stop a running experiment and keep its data; running it again resumes it.
    ///
    /// Records a stop request in the store, which the process running the experiment
    /// (`tuneflow run`, `serve`, the operator) acts on within a second or so; or, with
    /// --server, asks that server. Waits for the experiment to stop.
    Stop(StopArgs),
    /// Mirror an experiment to an MLflow tracking server now.
    ///
    /// `run` and `serve` do this in the background with --mlflow-uri; this sends what an
    /// earlier export missed (MLflow was down). Nothing MLflow already has is sent again.
    Export(ExportArgs),
    /// Print a shell completion script: `tuneflow completions bash > /etc/bash_completion.d/tuneflow`,
    /// or `source <(tuneflow completions zsh)`.
    Completions(CompletionsArgs),
    /// Print the man page (roff): `tuneflow man > tuneflow.1 && man ./tuneflow.1`.
    Man,
    /// Print the Experiment CustomResourceDefinition (YAML) for `kubectl apply -f -`.
    Crd,
    /// Validate an experiment file (tuneflow or Katib) and apply it to the cluster as an
    /// Experiment resource (server-side apply); --dry-run prints the resource instead.
    Submit(SubmitArgs),
    /// Run the Kubernetes operator: Experiment resources (tuneflow.dev/v1alpha1) in, trials
    /// as Jobs, status written back.
    ///
    /// Reads the cluster from KUBECONFIG or the pod's service account. Keeps every trial in
    /// the store (--store: SQLite on a volume, or postgres://...), serves the REST and MLflow
    /// APIs on --listen, and elects a leader through a Lease so that several replicas may run.
    /// See deploy/README.md.
    Operator(OperatorArgs),
}

/// `tuneflow operator`.
#[derive(Debug, clap::Args)]
pub struct OperatorArgs {
    /// Address of the REST API, the MLflow API and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: std::net::SocketAddr,
    /// Bearer token of the API (required to listen beyond loopback).
    #[arg(long, env = "TUNEFLOW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Watch Experiments in this namespace only (all namespaces by default).
    #[arg(long, env = "TUNEFLOW_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Namespace of the leader election Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the leader election Lease.
    #[arg(long, default_value = "tuneflow-operator")]
    pub lease_name: String,
    /// How long the lease holds without renewal; a new leader takes over after it.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: std::time::Duration,
    /// This replica's identity in the Lease (default: HOST:PID).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Run without leader election (one replica only).
    #[arg(long)]
    pub no_leader_election: bool,
    /// How long a trial's image may fail to pull (ErrImagePull, ImagePullBackOff) before the
    /// trial fails.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub image_pull_timeout: std::time::Duration,
    /// The URL trials reach this operator's API at (MLFLOW_TRACKING_URI of MLflow-collector
    /// trials), e.g. http://tuneflow-operator.tuneflow-system.svc:8080.
    #[arg(long, env = "TUNEFLOW_TRACKING_URI", value_name = "URL")]
    pub tracking_uri: Option<String>,
}

/// `tuneflow dashboard`.
#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8471")]
    pub addr: std::net::SocketAddr,
    /// Require `Authorization: Bearer TOKEN` (the page asks for it once); needed to listen
    /// beyond loopback.
    #[arg(long, env = "TUNEFLOW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Open the dashboard in the desktop's browser.
    #[arg(long)]
    pub open: bool,
}

/// `tuneflow stop`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// The experiment's name.
    pub experiment: String,
    /// Ask this tuneflow server (`serve`, the operator) instead of writing to the store,
    /// e.g. http://127.0.0.1:8470.
    #[arg(long, env = "TUNEFLOW_SERVER", value_name = "URL")]
    pub server: Option<url::Url>,
    /// The server's bearer token (with --server).
    #[arg(long, env = "TUNEFLOW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// How long to wait for the experiment to stop.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub wait: std::time::Duration,
}

/// `tuneflow completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `tuneflow logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The experiment's name.
    pub experiment: String,
    /// The trial's name (see `tuneflow trials EXP`).
    pub trial: String,
    /// Keep printing what the trial writes until it ends.
    #[arg(long, short)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
}

/// `tuneflow export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The experiment's name.
    pub experiment: String,
    /// The MLflow tracking server (http:// or https://); defaults to the experiment's
    /// spec.tracking.mlflow.uri.
    #[arg(long, env = "TUNEFLOW_MLFLOW_URI", value_name = "URL")]
    pub mlflow_uri: Option<String>,
    /// How long to keep trying before giving up.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

/// `tuneflow serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = crate::api::DEFAULT_ADDR)]
    pub addr: std::net::SocketAddr,
    /// Require `Authorization: Bearer TOKEN` on every request (needed to listen beyond
    /// loopback).
    #[arg(long, env = "TUNEFLOW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Mirror every experiment's trials to this MLflow tracking server (http:// or
    /// https://), in the background; overrides spec.tracking.mlflow.uri.
    #[arg(long, env = "TUNEFLOW_MLFLOW_URI", value_name = "URL")]
    pub mlflow_uri: Option<String>,
    /// Where the experiments' trials run.
    #[command(flatten)]
    pub executor: ExecutorArgs,
}

/// Where trials run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExecutorKind {
    /// Child processes on this machine.
    #[default]
    Local,
    /// `batch/v1` Jobs on the cluster of the current kubeconfig context (KUBECONFIG,
    /// ~/.kube/config, or the pod's service account).
    Kubernetes,
}

/// The executor flags of `run` and `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecutorArgs {
    /// Where trials run: `local` processes, or `kubernetes` Jobs (the engine stays here;
    /// nothing needs installing in the cluster).
    #[arg(long, value_enum, env = "TUNEFLOW_EXECUTOR", default_value_t = ExecutorKind::Local)]
    pub executor: ExecutorKind,
    /// Namespace of the trials' Jobs when the spec names none (with `--executor
    /// kubernetes`; default: the kubeconfig context's namespace).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// How long a trial's container may fail to pull its image (ErrImagePull,
    /// ImagePullBackOff, ...) before the trial fails (with `--executor kubernetes`).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub image_pull_timeout: std::time::Duration,
}

impl ExecutorArgs {
    /// Builds the executor the flags ask for.
    ///
    /// # Errors
    ///
    /// Why no Kubernetes client could be made, and how to fix it.
    pub async fn build(&self) -> Result<Arc<dyn Executor>, String> {
        match self.executor {
            ExecutorKind::Local => {
                if self.namespace.is_some() {
                    tracing::warn!("--namespace applies only with --executor kubernetes");
                }
                Ok(Arc::new(LocalExecutor))
            }
            ExecutorKind::Kubernetes => {
                let connection = kubernetes::connect::connect(self.namespace.clone()).await?;
                tracing::info!(
                    "trials run as Jobs in namespace {} (from {})",
                    connection.namespace,
                    connection.source
                );
                let mut settings = KubernetesSettings::new(connection.namespace);
                settings.image_pull_timeout = self.image_pull_timeout;
                Ok(Arc::new(KubernetesExecutor::new(
                    connection.client,
                    settings,
                )))
            }
        }
    }
}

/// `tuneflow run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The experiment file (YAML or JSON).
    pub file: PathBuf,
    /// Delete a stored experiment of the same name first and start over.
    #[arg(long)]
    pub fresh: bool,
    /// Output format of the final summary.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Mirror the trials to this MLflow tracking server (http:// or https://), in the
    /// background; overrides spec.tracking.mlflow.uri.
    #[arg(long, env = "TUNEFLOW_MLFLOW_URI", value_name = "URL")]
    pub mlflow_uri: Option<String>,
    /// Where the trials run.
    #[command(flatten)]
    pub executor: ExecutorArgs,
}

/// `tuneflow validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Experiment files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `tuneflow experiments`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Commands about one experiment.
#[derive(Debug, clap::Args)]
pub struct ExperimentArgs {
    /// The experiment's name (metadata.name).
    pub experiment: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `tuneflow trial EXP TRIAL`.
#[derive(Debug, clap::Args)]
pub struct TrialArgs {
    /// The experiment's name.
    pub experiment: String,
    /// The trial's name (see `tuneflow trials EXP`).
    pub trial: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success (0).
    Success,
    /// The experiment failed, or an operation did (1).
    Failure,
    /// Invalid input: a bad experiment file or usage (2).
    Invalid,
    /// Interrupted by the user (130).
    Interrupted,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Invalid => 2,
            Exit::Interrupted => 130,
        }
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Exit {
    let result = match cli.command {
        Command::Run(args) => run::run(&cli.store, args).await,
        Command::Validate(args) => Ok(validate::validate(args)),
        Command::Experiments(args) => query::experiments(&cli.store, args).await,
        Command::Trials(args) => query::trials(&cli.store, args).await,
        Command::Trial(args) => query::trial(&cli.store, args).await,
        Command::Best(args) => query::best(&cli.store, args).await,
        Command::Serve(args) => serve::serve(&cli.store, args).await,
        Command::Logs(args) => logs::logs(&cli.store, args).await,
        Command::Dashboard(args) => dashboard::dashboard(&cli.store, args).await,
        Command::Stop(args) => stop::stop(&cli.store, args).await,
        Command::Export(args) => export::export(&cli.store, args).await,
        Command::Completions(args) => completions::completions(&args),
        Command::Man => completions::man(),
        Command::Crd => crd::crd(),
        Command::Submit(args) => submit::submit(args).await,
        Command::Operator(args) => operator::operator(&cli.store, args).await,
    };
    match result {
        Ok(exit) => exit,
        Err(error) => {
            output::error(&error);
            Exit::Failure
        }
    }
}
