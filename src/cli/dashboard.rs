//! `tuneflow dashboard`: the web dashboard over any store, read-only, until Ctrl-C.
//!
//! It runs no experiment, claims nothing and refuses every change, so it can sit beside a
//! running `tuneflow run` (SQLite allows readers beside the writer), a `serve`, or the
//! operator's PostgreSQL store.

use std::io::Write;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{DashboardArgs, Exit};
use crate::api::{self, ServeError};
use crate::store::{self, StoreLocation};

/// Serves the dashboard until interrupted.
pub async fn dashboard(store_url: &str, args: DashboardArgs) -> anyhow::Result<Exit> {
    let location = StoreLocation::parse(store_url)?;
    let store: Arc<dyn store::Store> = Arc::from(store::open(&location).await?);
    let shutdown = CancellationToken::new();
    tokio::spawn(super::run::watch_signals(shutdown.clone()));
    let served = api::serve_read_only(
        store,
        args.addr,
        args.token.clone(),
        location.logs_dir(),
        shutdown,
    )
    .await;
    let (bound, task) = match served {
        Ok(served) => served,
        Err(error @ (ServeError::NoToken(_) | ServeError::BlankToken)) => {
            return Ok(super::serve::refused(
                &error,
                "pass --token SECRET (or set TUNEFLOW_TOKEN), or listen on 127.0.0.1",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let url = format!("http://{bound}/");
    {
        // The first stdout line is the contract for programs that start a dashboard.
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "tuneflow dashboard on {url}");
        let _ = stdout.flush();
    }
    errln!(
        "store: {}; read-only; {}; Ctrl-C stops",
        location_label(&location),
        if args.token.as_deref().is_some_and(|t| !t.is_empty()) {
            "bearer token required"
        } else {
            "no token (loopback only)"
        }
    );
    if args.open {
        open_browser(&url);
    }
    task.await??;
    Ok(Exit::Success)
}

/// The store for messages (a PostgreSQL URL without its password).
fn location_label(location: &StoreLocation) -> String {
    match location {
        StoreLocation::Sqlite(path) => path.display().to_string(),
        StoreLocation::Postgres(url) => url.to_string(),
    }
}

/// Opens `url` in the desktop's browser, or says how to.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let opened = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = opened {
        errln!("cannot open a browser ({opener}: {e})");
        errln!("hint: open {url} yourself");
    }
}
