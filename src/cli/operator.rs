//! `tuneflow operator`: reconcile `Experiment` resources in the cluster, serving the REST and
//! MLflow APIs (and `/metrics`) beside it, until SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Exit, OperatorArgs};
use crate::api;
use crate::engine::TrackingEndpoint;
use crate::executor::kubernetes::connect::connect;
use crate::operator::jobs::KubernetesExecutors;
use crate::operator::{self, LeaderElection, OperatorConfig};
use crate::store::{self, StoreLocation};

/// Runs the operator until interrupted.
pub async fn operator(store_url: &str, args: OperatorArgs) -> anyhow::Result<Exit> {
    let connection = match connect(None).await {
        Ok(connection) => connection,
        Err(message) => {
            errln!("error: {message}");
            return Ok(Exit::Failure);
        }
    };
    let location = StoreLocation::parse(store_url)?;
    let store: Arc<dyn store::Store> = Arc::from(store::open(&location).await?);
    let shutdown = CancellationToken::new();
    tokio::spawn(super::run::watch_signals(shutdown.clone()));

    let token = match api::checked_token(args.token.clone(), args.listen) {
        Ok(token) => token,
        Err(error) => {
            return Ok(super::serve::refused(
                &error,
                "set TUNEFLOW_TOKEN (deploy/ takes it from the Secret tuneflow-api-token), or listen on 127.0.0.1",
            ));
        }
    };
    let (bound, served) = match api::serve_store(
        store.clone(),
        args.listen,
        token.clone(),
        location.logs_dir(),
        shutdown.clone(),
    )
    .await
    {
        Ok(serving) => serving,
        Err(e) => return Err(e.into()),
    };
    errln!(
        "tuneflow operator: store {store_url}; API on http://{bound}; cluster from {}",
        connection.source
    );
    let tracking = tracking_endpoint(&args, bound, token);
    let leader_election = match (&args.lease_namespace, args.no_leader_election) {
        (Some(namespace), false) => Some(LeaderElection {
            lease: args.lease_name.clone(),
            namespace: namespace.clone(),
            identity: args
                .identity
                .clone()
                .unwrap_or_else(crate::engine::owner_token),
            duration: args.lease_duration,
        }),
        (None, false) => {
            errln!(
                "note: no --lease-namespace (or POD_NAMESPACE): running without leader \
                 election; run a single replica"
            );
            None
        }
        (_, true) => None,
    };
    let config = OperatorConfig {
        client: connection.client.clone(),
        store,
        logs_dir: location.logs_dir(),
        namespace: args.namespace.clone(),
        leader_election,
        executors: Arc::new(KubernetesExecutors::new(
            connection.client,
            args.image_pull_timeout,
        )),
        tracking: Some(tracking),
    };
    let result = operator::run(config, shutdown.clone()).await;
    shutdown.cancel();
    if let Ok(Err(e)) = served.await {
        tracing::warn!("the API server stopped: {e}");
    }
    match result {
        Ok(()) => Ok(Exit::Success),
        Err(e) => {
            errln!("error: {e}");
            Ok(Exit::Failure)
        }
    }
}

/// Where trials in pods reach the tracking API: `--tracking-uri` (the operator's Service),
/// else the bound address (only right when trials share the operator's network).
fn tracking_endpoint(
    args: &OperatorArgs,
    bound: SocketAddr,
    token: Option<String>,
) -> TrackingEndpoint {
    TrackingEndpoint {
        uri: args
            .tracking_uri
            .clone()
            .unwrap_or_else(|| format!("http://{bound}")),
        token,
    }
}
