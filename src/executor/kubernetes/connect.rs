//! The Kubernetes client of the CLI and the server: from `KUBECONFIG`, `~/.kube/config` or the
//! pod's service account, like `kubectl`, with errors that say which source failed and how to
//! fix it.

use kube::Client;
use kube::config::{Config, Kubeconfig};

/// A client and the namespace trials go to by default.
#[derive(Clone)]
pub struct Connection {
    /// The client.
    pub client: Client,
    /// `--namespace` if given, else the kubeconfig context's namespace (`default` without one).
    pub namespace: String,
    /// Where the configuration came from, for messages.
    pub source: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("namespace", &self.namespace)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Builds a client the way `kubectl` finds its cluster.
///
/// # Errors
///
/// A message naming the kubeconfig (and context) that failed and how to fix it.
pub async fn connect(namespace: Option<String>) -> Result<Connection, String> {
    install_crypto_provider();
    let source = source();
    let config = Config::infer().await.map_err(|e| {
        format!(
            "cannot configure a Kubernetes client from {source}: {e}; point KUBECONFIG at a \
             kubeconfig whose current context reaches your cluster (check with `kubectl \
             config current-context` and `kubectl get jobs`), or run tuneflow in a pod with a \
             service account"
        )
    })?;
    let namespace = namespace
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| config.default_namespace.clone());
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| {
        format!(
            "cannot create a Kubernetes client for {server} from {source}: {e}; check the \
             cluster's certificate and the user's credentials in that kubeconfig"
        )
    })?;
    Ok(Connection {
        client,
        namespace,
        source,
    })
}

/// Where [`Config::infer`] reads its configuration, with the current context.
fn source() -> String {
    let file = match std::env::var_os("KUBECONFIG") {
        Some(path) if !path.is_empty() => format!("KUBECONFIG={}", path.to_string_lossy()),
        _ => {
            let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
            match home.map(|h| h.join(".kube").join("config")) {
                Some(path) if path.exists() => path.display().to_string(),
                _ => {
                    return "the in-cluster service account (no KUBECONFIG and no \
                            ~/.kube/config)"
                        .to_string();
                }
            }
        }
    };
    match Kubeconfig::read().ok().and_then(|k| k.current_context) {
        Some(context) => format!("{file} (context \"{context}\")"),
        None => file,
    }
}

/// Makes rustls's ring provider the process default, once (kube's client needs one even for
/// plain-http servers).
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
