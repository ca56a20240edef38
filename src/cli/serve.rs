//! `tuneflow serve`: the REST API until Ctrl-C or SIGTERM.

use std::io::Write;

use tokio_util::sync::CancellationToken;

use super::{Exit, ServeArgs};
use crate::api::{self, ServeConfig, ServeError};

/// Serves until interrupted.
pub async fn serve(store_url: &str, args: ServeArgs) -> anyhow::Result<Exit> {
    let mlflow_uri = match super::export::flag_uri(args.mlflow_uri.as_deref()) {
        Ok(uri) => uri,
        Err(exit) => return Ok(exit),
    };
    let executor = match args.executor.build().await {
        Ok(executor) => executor,
        Err(message) => {
            errln!("error: {message}");
            return Ok(Exit::Failure);
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(super::run::watch_signals(shutdown.clone()));
    let config = ServeConfig {
        addr: args.addr,
        store: store_url.to_string(),
        token: args.token,
        mlflow_uri,
        executor: Some(executor),
    };
    let secured = config.token.as_deref().is_some_and(|t| !t.is_empty());
    let result = api::serve(
        config,
        |bound| {
            // The first stdout line is the contract for programs that start a server.
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "tuneflow serving on http://{bound}");
            let _ = stdout.flush();
            errln!(
                "store: {store_url}; {}; API description at http://{bound}/openapi.json; Ctrl-C stops",
                if secured {
                    "bearer token required"
                } else {
                    "no token (loopback only)"
                }
            );
        },
        shutdown,
    )
    .await;
    match result {
        Ok(()) => Ok(Exit::Success),
        Err(error @ (ServeError::NoToken(_) | ServeError::BlankToken)) => Ok(refused(
            &error,
            "pass --token SECRET (or set TUNEFLOW_TOKEN), or listen on 127.0.0.1",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Says why a server refused to start over its token, with `hint` for a missing one.
pub(super) fn refused(error: &ServeError, hint: &str) -> Exit {
    errln!("error: {error}");
    match error {
        ServeError::BlankToken => {
            errln!(
                "hint: the token must have visible characters; check the variable or file it comes from"
            );
        }
        _ => errln!("hint: {hint}"),
    }
    Exit::Invalid
}
