//! # Experiment specs: from a YAML or JSON document to a validated [`ExperimentSpec`]
//!
//! Every front door (the CLI's files, the REST API's bodies, the operator's custom resources)
//! hands the engine an [`ExperimentSpec`], and this module is the one place that makes one.
//! The document is read in three steps:
//!
//! 1. `document` parses the text (YAML, or JSON, which YAML 1.2 contains) into a small tree
//!    whose every node knows its line and column. The parser runs with limits on size, depth
//!    and alias expansion, so hostile input is refused rather than exhausting memory.
//! 2. `validate` walks that tree by hand, keeping the field path
//!    (`spec.parameters[2].feasibleSpace.max`), applying Katib's webhook rules and tuneflow's
//!    own, and collects *every* error instead of stopping at the first. Unknown fields are
//!    errors with the nearest known name as a hint, since a misspelt optional field would
//!    otherwise be silently ignored.
//! 3. The parts are assembled into the model ([`model`]); the search algorithm is built once
//!    against the search space, so an algorithm that cannot run on it is a spec error too.
//!
//! Both tuneflow's `apiVersion: tuneflow.dev/v1alpha1` and Katib's `kubeflow.org/v1beta1` are
//! accepted with Katib's field names and defaults. A Katib `trialSpec` that is a Job runs
//! locally as its primary container's command (see the `katib` submodule). Trial templates
//! are filled in per trial by [`TrialTemplate::render`] and [`ExperimentSpec::render_trial`].
//!
//! This module refers only to itself (`super::`) and to external crates, never to `crate::`.

mod algorithm;
mod collector;
pub mod condition;
mod document;
mod error;
mod katib;
mod kubernetes;
pub mod model;
pub mod names;
mod parameters;
mod placeholders;
mod template;
pub mod tracking;
mod trial;
mod validate;
mod walk;

use std::path::Path;

pub use error::{SpecError, SpecErrors};
pub use model::{
    AlgorithmSpec, CollectorKind, EnvVar, ExperimentSpec, FileFormat, FileSource, Flavor,
    KubernetesTemplate, MetricStrategy, MetricsCollector, Objective, Strategy, Tracking,
    TrialParameter, TrialTemplate,
};
pub use template::{RenderedTrial, TrialContext};

/// Reads and validates the experiment in the file at `path` (YAML or JSON).
///
/// # Errors
///
/// [`SpecErrors`] naming the file: when it cannot be read (`cannot read FILE: No such file or
/// directory`), is not UTF-8, or holds anything but exactly one valid experiment. Every
/// problem found is reported, not just the first.
pub fn parse_file(path: &Path) -> Result<ExperimentSpec, SpecErrors> {
    let source = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|error| {
        SpecErrors::single(
            source.clone(),
            SpecError::new("", format!("cannot read {source}: {}", io_message(&error))),
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|error| {
        let offset = error.utf8_error().valid_up_to();
        SpecErrors::single(
            source.clone(),
            SpecError::new(
                "",
                format!("{source} is not UTF-8 text (invalid byte at offset {offset})"),
            ),
        )
    })?;
    parse_str(&text, &source)
}

/// Validates the experiment in `text` (YAML or JSON). `source` names where the text came from
/// (a file path, `<stdin>`, `request body`) and prefixes every error.
///
/// # Errors
///
/// [`SpecErrors`] with every problem found: malformed YAML (one error with the parser's
/// position), no document or several non-empty documents, and every rule the document breaks.
pub fn parse_str(text: &str, source: &str) -> Result<ExperimentSpec, SpecErrors> {
    let root = single_document(text, source)?;
    validate::experiment(&root).map_err(|errors| SpecErrors {
        source: source.to_string(),
        errors,
    })
}

/// The one document in `text` (YAML or JSON) as JSON, read by the same parser as
/// [`parse_str`] (YAML 1.2 scalars, the same limits), for front doors that pass the document
/// on, such as `tuneflow submit` turning a file into a custom resource. It is not validated:
/// call [`parse_str`] for that.
///
/// # Errors
///
/// [`SpecErrors`] for malformed YAML and for no document or several non-empty documents.
pub fn document_json(text: &str, source: &str) -> Result<serde_json::Value, SpecErrors> {
    single_document(text, source).map(|root| root.to_json())
}

/// The one non-empty document of `text`, or the error saying there is none or several.
fn single_document(text: &str, source: &str) -> Result<document::Node, SpecErrors> {
    let fail = |errors: Vec<SpecError>| SpecErrors {
        source: source.to_string(),
        errors,
    };
    let mut documents = document::parse(text).map_err(|error| fail(vec![error]))?;
    match documents.len() {
        0 => Err(fail(vec![
            SpecError::new(
                "",
                format!("{source} holds no experiment: the document is empty"),
            )
            .with_hint("start from an example: apiVersion, kind: Experiment, metadata, spec"),
        ])),
        1 => Ok(documents.remove(0)),
        count => Err(fail(vec![
            SpecError::new(
                "",
                format!("{source} holds {count} documents; put one experiment per file"),
            )
            .at(documents[1].line, documents[1].column),
        ])),
    }
}

/// An I/O error's message without the `(os error N)` suffix.
fn io_message(error: &std::io::Error) -> String {
    let message = error.to_string();
    match message.find(" (os error ") {
        Some(at) => message[..at].to_string(),
        None => message,
    }
}

#[cfg(test)]
mod tests;
