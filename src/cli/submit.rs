//! `tuneflow submit FILE`: an experiment file (tuneflow's or Katib's) as an `Experiment`
//! resource, applied to the cluster or, with `--dry-run`, printed.
//!
//! The file is validated first by the spec parser, with the same report and exit code (2) as
//! `tuneflow validate`, so nothing invalid reaches the cluster. The resource keeps the file's
//! name, namespace, labels and annotations and its `spec` as written; a Katib file keeps its
//! flavour through the `tuneflow.dev/source-api-version` annotation. Applying is a
//! server-side apply with field manager `tuneflow`, like `kubectl apply --server-side`.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use kube::api::{Api, Patch, PatchParams};

use super::Exit;
use crate::executor::kubernetes::connect::connect;
use crate::operator::resource::{self, ExperimentResource};
use crate::spec;

/// The field manager of `tuneflow submit`'s server-side applies.
pub const FIELD_MANAGER: &str = "tuneflow";

/// `tuneflow submit`.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The experiment file: tuneflow's `tuneflow.dev/v1alpha1` or Katib's
    /// `kubeflow.org/v1beta1` (YAML or JSON).
    pub file: PathBuf,
    /// Print the resource instead of applying it.
    #[arg(long)]
    pub dry_run: bool,
    /// The namespace to create it in (default: the file's metadata.namespace, then the
    /// kubeconfig context's namespace).
    #[arg(long, short)]
    pub namespace: Option<String>,
    /// Print the resource in this format: with --dry-run, the resource that would be
    /// applied (default yaml); otherwise the resource as the cluster stored it.
    #[arg(long, short, value_enum)]
    pub output: Option<ManifestFormat>,
    /// Take over fields that another field manager (kubectl edit, a controller) owns.
    #[arg(long)]
    pub force_conflicts: bool,
}

/// How a resource is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ManifestFormat {
    /// YAML, as `kubectl get -o yaml` prints it.
    Yaml,
    /// JSON.
    Json,
}

/// Validates, converts and applies (or prints) the file.
pub async fn submit(args: SubmitArgs) -> anyhow::Result<Exit> {
    let Some(resource) = convert(&args)? else {
        return Ok(Exit::Invalid);
    };
    if args.dry_run {
        print(&resource, args.output.unwrap_or(ManifestFormat::Yaml))?;
        return Ok(Exit::Success);
    }
    apply(resource, &args).await
}

/// The resource for the file, or `None` (with the errors printed) when it is invalid.
fn convert(args: &SubmitArgs) -> anyhow::Result<Option<ExperimentResource>> {
    let source = args.file.display().to_string();
    if let Err(errors) = spec::parse_file(&args.file) {
        errln!("{errors}");
        let count = errors.errors.len();
        errln!(
            "{count} error{} in {source}; nothing was submitted",
            if count == 1 { "" } else { "s" }
        );
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {source}"))?;
    let document = spec::document_json(&text, &source).map_err(|errors| anyhow!("{errors}"))?;
    let mut resource = resource::from_document(&document)
        .map_err(|error| anyhow!("cannot convert {source} into an Experiment resource: {error}"))?;
    if let Some(namespace) = &args.namespace {
        resource.metadata.namespace = Some(namespace.clone());
    }
    // The operator validates the resource by turning it back into a document; check here
    // that this gives a valid spec, so a conversion gap shows now and not in the cluster.
    spec::parse_str(&resource::document(&resource), &source).map_err(|errors| {
        anyhow!("the converted resource does not validate (a tuneflow bug): {errors}")
    })?;
    Ok(Some(resource))
}

/// Prints `resource` on stdout.
fn print(resource: &ExperimentResource, format: ManifestFormat) -> anyhow::Result<()> {
    let text = match format {
        ManifestFormat::Yaml => serde_saphyr::to_string(resource)?,
        ManifestFormat::Json => serde_json::to_string_pretty(resource)? + "\n",
    };
    out!("{text}");
    Ok(())
}

/// Applies `resource` (server-side apply) and says whether it was created or configured.
async fn apply(mut resource: ExperimentResource, args: &SubmitArgs) -> anyhow::Result<Exit> {
    // kube's client needs a rustls provider; ring is the one the build enables. An earlier
    // install (by another front door) is fine, hence the ignored result.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let connection = match connect(resource.metadata.namespace.clone()).await {
        Ok(connection) => connection,
        Err(message) => {
            return Err(anyhow!(
                "{message}; or use --dry-run to print the resource and apply it yourself"
            ));
        }
    };
    let namespace = connection.namespace.clone();
    resource.metadata.namespace = Some(namespace.clone());
    let name = resource.metadata.name.clone().unwrap_or_default();
    let target = connection.source.clone();
    let client = connection.client;
    let api: Api<ExperimentResource> = Api::namespaced(client, &namespace);
    let existing = api
        .get_opt(&name)
        .await
        .map_err(|error| explain(&error, &target, &namespace))?;
    let mut params = PatchParams::apply(FIELD_MANAGER);
    if args.force_conflicts {
        params = params.force();
    }
    let applied = api
        .patch(&name, &params, &Patch::Apply(&resource))
        .await
        .map_err(|error| explain(&error, &target, &namespace))?;
    match args.output {
        Some(format) => print(&applied, format)?,
        None => outln!(
            "experiment.tuneflow.dev/{name} {}",
            if existing.is_some() {
                "configured"
            } else {
                "created"
            }
        ),
    }
    errln!("hint: watch it with `kubectl get experiments -n {namespace} -w`");
    Ok(Exit::Success)
}

/// A kube error as a sentence that names the cluster and says what to do.
fn explain(error: &kube::Error, target: &str, namespace: &str) -> anyhow::Error {
    let cluster = format!("the cluster of {target}");
    match error {
        kube::Error::Api(status) => match status.code {
            404 => anyhow!(
                "{cluster} does not know Experiment resources (tuneflow.dev/v1alpha1): {}; \
                 install the CRD first with `kubectl apply -f deploy/crd.yaml` (or \
                 `tuneflow crd | kubectl apply -f -`)",
                status.message
            ),
            401 => anyhow!(
                "{cluster} did not accept the credentials: {}; log in again or refresh the \
                 kubeconfig's token",
                status.message
            ),
            403 => anyhow!(
                "{cluster} refused: {}; your account needs get, create and patch on \
                 experiments.tuneflow.dev in namespace \"{namespace}\"",
                status.message
            ),
            409 => anyhow!(
                "{cluster}: conflict with another field manager: {}; rerun with \
                 --force-conflicts to take over those fields",
                status.message
            ),
            422 | 400 => anyhow!(
                "{cluster} rejected the resource: {}; check that deploy/crd.yaml on the \
                 cluster is the one of this tuneflow version (`tuneflow crd | kubectl apply -f -`)",
                status.message
            ),
            _ => anyhow!("{cluster}: {} ({})", status.message, status.reason),
        },
        other => anyhow!(
            "cannot reach {cluster}: {other}; check that the cluster is running and that \
             `kubectl cluster-info` works with the same kubeconfig"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str) -> kube::Error {
        let mut status = kube::core::Status::failure("the message", reason);
        status.code = code;
        kube::Error::Api(status.boxed())
    }

    #[test]
    fn api_errors_name_the_cluster_and_the_fix() {
        let target = "KUBECONFIG=/k (context \"prod\")";
        let text = |code, reason| explain(&api_error(code, reason), target, "team").to_string();
        let missing = text(404, "NotFound");
        assert!(missing.starts_with("the cluster of KUBECONFIG=/k (context \"prod\")"));
        assert!(
            missing.contains("kubectl apply -f deploy/crd.yaml"),
            "{missing}"
        );
        let forbidden = text(403, "Forbidden");
        assert!(forbidden.contains("namespace \"team\""), "{forbidden}");
        assert!(forbidden.contains("the message"), "{forbidden}");
        assert!(text(409, "Conflict").contains("--force-conflicts"));
        assert!(text(401, "Unauthorized").contains("credentials"));
        assert!(text(422, "Invalid").contains("tuneflow crd"));
        let other = text(500, "InternalError");
        assert!(other.contains("the message (InternalError)"), "{other}");
    }
}
