//! `spec.tracking` (a tuneflow extension): where else an experiment's trials are recorded.
//!
//! Today that is one thing, an external MLflow tracking server (`spec.tracking.mlflow.uri`)
//! that tuneflow mirrors every trial to. The address rule lives here, in [`mlflow_uri`], so
//! that the document's field and the `--mlflow-uri` flag accept exactly the same addresses.

use url::Url;

use super::document::Node;
use super::model::Tracking;
use super::walk::{Reader, error_at};

const TRACKING_FIELDS: &[&str] = &["mlflow"];
const MLFLOW_FIELDS: &[&str] = &["uri"];

/// The hint shown with every rejected MLflow address.
pub const MLFLOW_URI_HINT: &str = "give the tracking server's address as http://HOST:PORT or https://HOST[/PATH], e.g. http://127.0.0.1:5000";

/// Checks an MLflow tracking server address: an absolute `http` or `https` URL with a host
/// and neither query nor fragment (tuneflow appends `/api/2.0/mlflow/...` to it).
///
/// # Errors
///
/// A sentence saying what is wrong with it, for the caller to prefix with the flag or field.
pub fn mlflow_uri(text: &str) -> Result<Url, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the MLflow tracking URI is empty".to_string());
    }
    let url = Url::parse(trimmed).map_err(|e| format!("`{trimmed}` is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{trimmed}` uses the scheme `{}`; tuneflow talks to MLflow's REST API over http or https",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{trimmed}` names no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{trimmed}` has a query or fragment; give only the server's address"
        ));
    }
    Ok(url)
}

/// Reads `spec.tracking`.
pub(crate) fn tracking(reader: &mut Reader, node: &Node, path: &str) -> Option<Tracking> {
    let fields = reader.fields(node, path, TRACKING_FIELDS)?;
    let mut tracking = Tracking::default();
    if let Some(mlflow) = fields.get("mlflow") {
        let mlflow_path = fields.child("mlflow");
        let mlflow_fields = reader.fields(mlflow, &mlflow_path, MLFLOW_FIELDS)?;
        let uri_path = mlflow_fields.child("uri");
        let uri_node = reader.required(&mlflow_fields, "uri")?;
        let text = reader.string(uri_node, &uri_path)?;
        match mlflow_uri(&text) {
            Ok(url) => tracking.mlflow_uri = Some(url.to_string()),
            Err(message) => {
                reader.report(error_at(uri_node, uri_path, message).with_hint(MLFLOW_URI_HINT));
                return None;
            }
        }
    }
    Some(tracking)
}

#[cfg(test)]
mod tests {
    use super::mlflow_uri;

    #[test]
    fn http_and_https_addresses_are_accepted() {
        for text in [
            "http://127.0.0.1:5000",
            "https://mlflow.example.com/prefix/",
            " http://localhost:5000 ",
        ] {
            assert!(mlflow_uri(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn other_addresses_say_what_is_wrong() {
        let cases = [
            ("", "empty"),
            ("localhost:5000", "scheme `localhost`"),
            ("127.0.0.1:5000", "not a URL"),
            ("file:///tmp/mlruns", "scheme `file`"),
            ("databricks", "not a URL"),
            ("http://host:5000/?x=1", "query"),
        ];
        for (text, expected) in cases {
            let error = mlflow_uri(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
