//! The REST API: `tuneflow serve`.
//!
//! axum routes over the same engine and store as `tuneflow run`. Client-driven experiments
//! (no trial template) are served by [`Session`](crate::engine::session::Session)s: clients ask
//! for suggestions and report observations and completions. Experiments with a trial template
//! are run by the server itself with the local executor. The routes, their bodies and errors are
//! described in `docs/rest-api.md` and served as an OpenAPI document at `/openapi.json`, which
//! is generated from the handlers below, so the two cannot drift apart.

mod auth;
pub mod dashboard;
pub mod error;
pub mod experiments;
pub mod extract;
pub mod metrics;
pub mod mlflow;
pub mod state;
pub mod trials;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::engine::{Engine, TrackingEndpoint};
use crate::executor::Executor;
use crate::executor::local::LocalExecutor;
use crate::export::mlflow::{Exporter, Selection};
use crate::store::{self, StoreLocation};
use error::ApiError;
use state::AppState;

/// The address `tuneflow serve` listens on by default.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8470";

/// How long shutting down waits for the MLflow export to send what is left.
pub const EXPORT_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tuneflow",
        description = "Hyperparameter tuning: experiments, suggestions (ask) and observations (tell). \
                       Every error is `{\"error\": {\"code\", \"message\"}}`."
    ),
    tags(
        (name = "experiments", description = "Create, list, show and delete experiments"),
        (name = "trials", description = "Ask for trials, report observations and results"),
        (name = "dashboard", description = "Columns, curves, importance and logs for plots (the dashboard's data)"),
    )
)]
struct ApiDoc;

/// The routes with their OpenAPI document.
pub fn router(state: Arc<AppState>) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(experiments::create, experiments::list))
        .routes(routes!(experiments::get, experiments::delete))
        .routes(routes!(trials::suggest))
        .routes(routes!(trials::list))
        .routes(routes!(trials::get))
        .routes(routes!(trials::observe))
        .routes(routes!(trials::complete))
        .routes(routes!(trials::heartbeat))
        .routes(routes!(dashboard::info))
        .routes(routes!(dashboard::columns))
        .routes(routes!(dashboard::observations))
        .routes(routes!(dashboard::importance))
        .routes(routes!(dashboard::document))
        .routes(routes!(dashboard::stop))
        .routes(routes!(dashboard::events))
        .routes(routes!(dashboard::log))
        .split_for_parts();
    let openapi = Arc::new(openapi);
    api.route(
        "/openapi.json",
        get(move || {
            let openapi = openapi.clone();
            async move { Json(openapi.as_ref().clone()) }
        }),
    )
    .merge(mlflow::router())
    .route("/healthz", get(healthz))
    .route("/metrics", get(metrics::serve_metrics))
    .route("/", axum::routing::any(web::page))
    .route("/index.html", axum::routing::any(web::page))
    .route("/ui/{*path}", axum::routing::any(web::page))
    .fallback(not_found)
    .method_not_allowed_fallback(method_not_allowed)
    .layer(middleware::from_fn_with_state(
        state.clone(),
        refuse_changes_when_read_only,
    ))
    .layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_token,
    ))
    .layer(middleware::from_fn_with_state(
        state.clone(),
        metrics::track,
    ))
    .layer(DefaultBodyLimit::max(BODY_LIMIT))
    // Fastest gzip: on plot data (mostly digits) it takes a third of the default level's
    // time for about 15% more bytes, and the time is what a page waits for.
    .layer(
        tower_http::compression::CompressionLayer::new()
            .quality(tower_http::compression::CompressionLevel::Fastest),
    )
    .layer(middleware::from_fn(web::security_headers))
    .with_state(state)
}

/// Middleware: on a read-only server (`tuneflow dashboard`), every request that could change
/// the store is refused with 403 `read_only`: anything but GET and HEAD, and of MLflow's
/// routes (which take either method for everything) all but its reads.
async fn refuse_changes_when_read_only(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    if !state.read_only {
        return next.run(request).await;
    }
    let path = request.uri().path();
    let method = request.method();
    let reads = if mlflow::is_mlflow(path) {
        mlflow::is_read(path)
    } else {
        method == axum::http::Method::GET || method == axum::http::Method::HEAD
    };
    if !reads {
        return ApiError::read_only().into_response();
    }
    next.run(request).await
}

/// `GET /healthz`: 200 when the store answers.
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match state.store.experiments().await {
        Ok(_) => Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see GET /openapi.json for the API")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; see GET /openapi.json for the API",
    )
}

/// How to run the server.
#[derive(Clone)]
pub struct ServeConfig {
    /// Where to listen (port 0 picks a free port).
    pub addr: SocketAddr,
    /// The store URL.
    pub store: String,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// Mirror every experiment to this MLflow tracking server (otherwise each experiment's
    /// `spec.tracking.mlflow.uri`, if any).
    pub mlflow_uri: Option<url::Url>,
    /// Runs the trials of experiments the server runs itself; `None` runs them as local
    /// processes.
    pub executor: Option<Arc<dyn Executor>>,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("addr", &self.addr)
            .field("store", &self.store)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("mlflow_uri", &self.mlflow_uri)
            .field("executor", &self.executor.as_ref().map(|_| "<custom>"))
            .finish()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Exposing the API beyond this machine without a token.
    #[error(
        "refusing to listen on {0} without a token: anyone who can reach it could run commands through trial templates"
    )]
    NoToken(SocketAddr),
    /// A token that is only whitespace: no client could send it.
    #[error("the token is blank (only whitespace): no client could authenticate with it")]
    BlankToken,
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// Serving failed.
    #[error("the server stopped: {0}")]
    Io(#[from] std::io::Error),
}

/// The token a server listening on `addr` requires: none for an empty one, surrounding
/// whitespace (a token read from a file) trimmed; refused when it is blank, or when there is
/// none and `addr` is reachable from other machines.
///
/// # Errors
///
/// [`ServeError::BlankToken`], [`ServeError::NoToken`].
pub fn checked_token(
    token: Option<String>,
    addr: SocketAddr,
) -> Result<Option<String>, ServeError> {
    let token = match token {
        Some(token) if token.is_empty() => None,
        Some(token) if token.trim().is_empty() => return Err(ServeError::BlankToken),
        Some(token) => Some(token.trim().to_string()),
        None => None,
    };
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(ServeError::NoToken(addr));
    }
    Ok(token)
}

/// Serves until `shutdown` fires; `ready` is told the address actually bound.
pub async fn serve(
    config: ServeConfig,
    ready: impl FnOnce(SocketAddr),
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let token = checked_token(config.token, config.addr)?;
    let location = StoreLocation::parse(&config.store)?;
    let store: Arc<dyn store::Store> = Arc::from(store::open(&location).await?);
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.addr,
            source,
        })?;
    let bound = listener.local_addr()?;
    let executor = config
        .executor
        .unwrap_or_else(|| Arc::new(LocalExecutor) as Arc<dyn Executor>);
    let engine = Engine::new(store.clone(), executor, location.logs_dir())
        .with_tracking(endpoint_for(bound, token.clone()));
    let base_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let state = Arc::new(AppState::new(store.clone(), engine, token, base_dir));
    if let Err(e) = state.adopt().await {
        tracing::error!("cannot resume the store's experiments: {}", e.message());
    }
    let sweeper = tokio::spawn(sweep_leases(state.clone(), shutdown.clone()));
    // Mirrors to MLflow from the store, beside the API: requests never wait for it.
    let mut exporter = Exporter::spawn(store.clone(), Selection::All, config.mlflow_uri);
    ready(bound);
    let served = serve_on(listener, state.clone(), shutdown.clone()).await;
    shutdown.cancel();
    let _ = sweeper.await;
    state.shutdown().await;
    let report = exporter.flush(EXPORT_FLUSH_TIMEOUT).await;
    if report.rounds > 0 && !report.pending.is_empty() {
        tracing::warn!(
            "MLflow export incomplete at shutdown: {} not sent; it resumes at the next start",
            report.pending
        );
    }
    exporter.stop().await;
    Ok(served?)
}

/// How long a connection may take to send a request's headers, from when it opens or from
/// the end of its previous answer: connections that open and say nothing (or trickle their
/// headers) are closed instead of held forever.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The most connections served at once; further ones wait in the listen backlog until one
/// closes, so a flood of connections can exhaust neither file descriptors nor memory.
pub const MAX_CONNECTIONS: usize = 2048;

/// How long shutting down waits for the requests in flight.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `state`'s routes on `listener` until `shutdown`: HTTP/1.1 with keep-alive,
/// TCP_NODELAY on every connection (answers are small and written in one piece; Nagle would
/// only delay them), [`HEADER_READ_TIMEOUT`] and [`MAX_CONNECTIONS`] against clients that
/// hold connections without using them.
async fn serve_on(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let service = hyper_util::service::TowerToHyperService::new(router(state));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = shutdown.cancelled() => break,
        };
        let Ok(slot) = slot else { break };
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was taken:
                    // pause briefly rather than spin, as axum's own loop does.
                    tracing::debug!("accepting a connection failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
    Ok(())
}

/// The tracking endpoint local trials reach a server bound to `bound` at: a wildcard address
/// is reached through loopback.
fn endpoint_for(bound: SocketAddr, token: Option<String>) -> TrackingEndpoint {
    let host = match bound.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::from(([127, 0, 0, 1], bound.port()))
        }
        ip if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, bound.port()))
        }
        _ => bound,
    };
    TrackingEndpoint {
        uri: format!("http://{host}"),
        token,
    }
}

/// Serves the API over `store` on a free loopback port for the trials of one `tuneflow run`
/// (the MLflow collector's runs and pushed observations) until `shutdown`; returns the
/// endpoint trials reach it at. It adopts no experiments and sweeps no leases: the run loop
/// owns its experiment.
pub async fn serve_for_trials(
    store: Arc<dyn store::Store>,
    logs_dir: PathBuf,
    shutdown: CancellationToken,
) -> Result<TrackingEndpoint, ServeError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let (bound, served) = serve_store(store, addr, None, logs_dir, shutdown).await?;
    tokio::spawn(async move {
        if let Ok(Err(e)) = served.await {
            tracing::error!("the tracking API for trials stopped: {e}");
        }
    });
    Ok(endpoint_for(bound, None))
}

/// Serves the API over `store` on `addr` until `shutdown`, for a process whose experiments
/// are run by someone else (`tuneflow run`'s loop, the operator's reconciler): it adopts no
/// experiments and sweeps no leases. Returns the address bound and the serving task.
///
/// # Errors
///
/// A wildcard or non-loopback `addr` without a token ([`ServeError::NoToken`]), or an
/// address that cannot be bound.
pub async fn serve_store(
    store: Arc<dyn store::Store>,
    addr: SocketAddr,
    token: Option<String>,
    logs_dir: PathBuf,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>), ServeError> {
    serve_over(store, addr, token, logs_dir, shutdown, false).await
}

/// Serves the dashboard and the API's reads over `store` on `addr` until `shutdown`
/// (`tuneflow dashboard`): every route that would change the store answers 403, and nothing
/// is claimed, adopted or swept, so it is safe beside whatever runs the experiments. Returns
/// the address bound and the serving task.
///
/// # Errors
///
/// As [`serve_store`].
pub async fn serve_read_only(
    store: Arc<dyn store::Store>,
    addr: SocketAddr,
    token: Option<String>,
    logs_dir: PathBuf,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>), ServeError> {
    serve_over(store, addr, token, logs_dir, shutdown, true).await
}

/// The body of [`serve_store`] and [`serve_read_only`].
async fn serve_over(
    store: Arc<dyn store::Store>,
    addr: SocketAddr,
    token: Option<String>,
    logs_dir: PathBuf,
    shutdown: CancellationToken,
    read_only: bool,
) -> Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>), ServeError> {
    let token = checked_token(token, addr)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr()?;
    let engine = Engine::new(store.clone(), Arc::new(LocalExecutor), logs_dir);
    let base_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let mut state = AppState::new(store, engine, token, base_dir);
    if read_only {
        state = state.read_only();
    }
    Ok((
        bound,
        tokio::spawn(serve_on(listener, Arc::new(state), shutdown)),
    ))
}

/// Fails expired leases until shutdown.
async fn sweep_leases(state: Arc<AppState>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(state::LEASE_SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                state.expire_leases().await;
                state.check_stops().await;
            }
            () = shutdown.cancelled() => return,
        }
    }
}
