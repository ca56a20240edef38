//! Placeholders in trial templates and their substitution for one trial.
//!
//! A template string may hold `${trialParameters.NAME}` (Katib: NAME is one of the template's
//! `trialParameters`, whose `reference` names a parameter or trial metadata) and the tuneflow
//! shorthand `${parameters.NAME}` (NAME is a parameter). Anything else, such as `${HOME}`, is
//! left as it is: trials run without a shell, so nothing else would expand it either.
//!
//! Validation (see [`super::placeholders`]) guarantees that every placeholder of a validated
//! [`TrialTemplate`] resolves, so [`TrialTemplate::render`] cannot fail on a spec that came
//! out of [`super::parse_str`]; it still returns errors rather than panicking, for templates
//! built by hand.

use serde::Serialize;
use tuneflow_algorithms::{Assignment, SearchSpace};

use super::error::SpecError;
use super::model::{ExperimentSpec, TrialTemplate};

const TRIAL_PARAMETERS_PREFIX: &str = "${trialParameters.";
const PARAMETERS_PREFIX: &str = "${parameters.";
const TRIAL_SPEC_PREFIX: &str = "${trialSpec.";

/// What a trial needs to fill in its template.
#[derive(Debug, Clone, Copy)]
pub struct TrialContext<'a> {
    /// The experiment's name.
    pub experiment: &'a str,
    /// The experiment's namespace, when it has one (`${trialSpec.Namespace}` falls back to
    /// `default`).
    pub namespace: Option<&'a str>,
    /// The trial's name (`${trialSpec.Name}`).
    pub trial_name: &'a str,
    /// The experiment's search space.
    pub space: &'a SearchSpace,
    /// The trial's parameter values, in the order of `space`.
    pub assignment: &'a Assignment,
}

/// A trial template with every placeholder replaced by the trial's values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedTrial {
    /// The argv to run (no shell). Empty when the template has no local command (a Katib
    /// trialSpec that is not a Job).
    pub command: Vec<String>,
    /// Extra environment variables, in template order.
    pub env: Vec<(String, String)>,
    /// The metrics file's path, for the File collector.
    pub metrics_file: Option<String>,
}

/// A placeholder found in a template string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placeholder<'a> {
    /// `${trialParameters.NAME}`.
    TrialParameter(&'a str),
    /// `${parameters.NAME}`.
    Parameter(&'a str),
}

/// Trial metadata a trialParameter's `reference` may stand for (Katib's `${trialSpec.*}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaReference<'a> {
    /// `${trialSpec.Name}`: the trial's name.
    Name,
    /// `${trialSpec.Namespace}`.
    Namespace,
    /// `${trialSpec.Kind}`: the trialSpec's kind (`Job` without one).
    Kind,
    /// `${trialSpec.APIVersion}`: the trialSpec's apiVersion (`batch/v1` without one).
    ApiVersion,
    /// `${trialSpec.Labels[KEY]}`: a label of the trialSpec's metadata.
    Label(&'a str),
    /// `${trialSpec.Annotations[KEY]}`: an annotation of the trialSpec's metadata.
    Annotation(&'a str),
}

/// The metadata references Katib supports, for hints.
pub(crate) const META_REFERENCES: &str = "${trialSpec.Name}, ${trialSpec.Namespace}, \
    ${trialSpec.Kind}, ${trialSpec.APIVersion}, ${trialSpec.Labels[KEY]}, \
    ${trialSpec.Annotations[KEY]}";

/// A piece of a template string: literal text or a placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Literal(&'a str),
    Placeholder(Placeholder<'a>),
}

/// Splits `text` into literal pieces and placeholders, in order. A `${trialParameters.`
/// without a closing `}` is literal text, as is any other `${...}`.
fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut literal_start = 0;
    let mut search_from = 0;
    while let Some(offset) = text[search_from..].find("${") {
        let start = search_from + offset;
        let candidate = &text[start..];
        let found = [TRIAL_PARAMETERS_PREFIX, PARAMETERS_PREFIX]
            .into_iter()
            .find_map(|prefix| {
                let after = candidate.strip_prefix(prefix)?;
                let end = after.find('}')?;
                let name = &after[..end];
                let placeholder = if prefix == PARAMETERS_PREFIX {
                    Placeholder::Parameter(name)
                } else {
                    Placeholder::TrialParameter(name)
                };
                Some((placeholder, start + prefix.len() + end + 1))
            });
        match found {
            Some((placeholder, end)) => {
                if literal_start < start {
                    pieces.push(Piece::Literal(&text[literal_start..start]));
                }
                pieces.push(Piece::Placeholder(placeholder));
                literal_start = end;
                search_from = end;
            }
            None => search_from = start + 2,
        }
    }
    if literal_start < text.len() {
        pieces.push(Piece::Literal(&text[literal_start..]));
    }
    pieces
}

/// Every placeholder in `text`, in order.
pub(crate) fn placeholders(text: &str) -> Vec<Placeholder<'_>> {
    pieces(text)
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Placeholder(placeholder) => Some(placeholder),
            Piece::Literal(_) => None,
        })
        .collect()
}

/// `text` with every placeholder replaced by `resolve`'s answer; the first error stops it.
pub(crate) fn substitute<E>(
    text: &str,
    mut resolve: impl FnMut(Placeholder<'_>) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text) {
        match piece {
            Piece::Literal(literal) => out.push_str(literal),
            Piece::Placeholder(placeholder) => out.push_str(&resolve(placeholder)?),
        }
    }
    Ok(out)
}

/// Reads a trialParameter `reference` of the form `${trialSpec.KEY}`: `None` when it is not
/// one (it then names a parameter), `Some(Err(()))` when KEY is not a supported key.
pub(crate) fn meta_reference(reference: &str) -> Option<Result<MetaReference<'_>, ()>> {
    let key = reference.strip_prefix(TRIAL_SPEC_PREFIX)?;
    let Some(key) = key.strip_suffix('}') else {
        return Some(Err(()));
    };
    let indexed = |name: &str| {
        key.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('['))
            .and_then(|rest| rest.strip_suffix(']'))
            .filter(|inner| !inner.is_empty())
    };
    Some(match key {
        "Name" => Ok(MetaReference::Name),
        "Namespace" => Ok(MetaReference::Namespace),
        "Kind" => Ok(MetaReference::Kind),
        "APIVersion" => Ok(MetaReference::ApiVersion),
        _ => match (indexed("Labels"), indexed("Annotations")) {
            (Some(label), _) => Ok(MetaReference::Label(label)),
            (None, Some(annotation)) => Ok(MetaReference::Annotation(annotation)),
            (None, None) => Err(()),
        },
    })
}

/// `metadata.labels[key]` (or annotations) of a trialSpec manifest.
pub(crate) fn trial_spec_metadata<'a>(
    trial_spec: Option<&'a serde_json::Value>,
    section: &str,
    key: &str,
) -> Option<&'a str> {
    trial_spec?
        .get("metadata")?
        .get(section)?
        .get(key)?
        .as_str()
}

fn render_error(message: String) -> SpecError {
    SpecError::new("spec.trialTemplate", message)
}

impl TrialTemplate {
    /// Fills in the command and environment for one trial. `metrics_file` of the result is
    /// `None`; [`ExperimentSpec::render_trial`] adds it.
    ///
    /// # Errors
    ///
    /// A [`SpecError`] when a placeholder does not resolve (an undefined trialParameter, a
    /// parameter missing from the space or the assignment, a label absent from the
    /// trialSpec). Validation rules all of these out for templates it produced.
    pub fn render(&self, trial: &TrialContext<'_>) -> Result<RenderedTrial, SpecError> {
        let command = self
            .command
            .iter()
            .map(|arg| self.substitute(arg, trial))
            .collect::<Result<Vec<_>, _>>()?;
        let env = self
            .env
            .iter()
            .map(|var| Ok((var.name.clone(), self.substitute(&var.value, trial)?)))
            .collect::<Result<Vec<_>, SpecError>>()?;
        Ok(RenderedTrial {
            command,
            env,
            metrics_file: None,
        })
    }

    /// The Katib `trialSpec` manifest with the placeholders in its strings filled in (as
    /// Katib does), for executors that submit the manifest itself; `None` without one.
    ///
    /// # Errors
    ///
    /// As [`TrialTemplate::render`].
    pub fn render_trial_spec(
        &self,
        trial: &TrialContext<'_>,
    ) -> Result<Option<serde_json::Value>, SpecError> {
        self.trial_spec
            .as_ref()
            .map(|manifest| self.substitute_json(manifest, trial))
            .transpose()
    }

    fn substitute_json(
        &self,
        value: &serde_json::Value,
        trial: &TrialContext<'_>,
    ) -> Result<serde_json::Value, SpecError> {
        use serde_json::Value as Json;
        Ok(match value {
            Json::String(text) => Json::String(self.substitute(text, trial)?),
            Json::Array(items) => Json::Array(
                items
                    .iter()
                    .map(|item| self.substitute_json(item, trial))
                    .collect::<Result<_, _>>()?,
            ),
            Json::Object(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(key, item)| Ok((key.clone(), self.substitute_json(item, trial)?)))
                    .collect::<Result<_, SpecError>>()?,
            ),
            Json::Null | Json::Bool(_) | Json::Number(_) => value.clone(),
        })
    }

    /// `text` with the trial's values in place of its placeholders.
    pub(crate) fn substitute(
        &self,
        text: &str,
        trial: &TrialContext<'_>,
    ) -> Result<String, SpecError> {
        substitute(text, |placeholder| match placeholder {
            Placeholder::Parameter(name) => parameter_value(name, trial),
            Placeholder::TrialParameter(name) => {
                let defined = self
                    .trial_parameters
                    .iter()
                    .find(|parameter| parameter.name == name)
                    .ok_or_else(|| render_error(format!("undefined trial parameter \"{name}\"")))?;
                match meta_reference(&defined.reference) {
                    None => parameter_value(&defined.reference, trial),
                    Some(Ok(meta)) => self.meta_value(meta, trial),
                    Some(Err(())) => Err(render_error(format!(
                        "unsupported trial metadata reference \"{}\"",
                        defined.reference
                    ))),
                }
            }
        })
    }

    fn meta_value(
        &self,
        meta: MetaReference<'_>,
        trial: &TrialContext<'_>,
    ) -> Result<String, SpecError> {
        let manifest_field = |field: &str, default: &str| {
            self.trial_spec
                .as_ref()
                .and_then(|spec| spec.get(field))
                .and_then(serde_json::Value::as_str)
                .unwrap_or(default)
                .to_string()
        };
        let metadata = |section: &str, key: &str| {
            trial_spec_metadata(self.trial_spec.as_ref(), section, key)
                .map(str::to_string)
                .ok_or_else(|| render_error(format!("the trialSpec has no {section} \"{key}\"")))
        };
        match meta {
            MetaReference::Name => Ok(trial.trial_name.to_string()),
            MetaReference::Namespace => Ok(trial.namespace.unwrap_or("default").to_string()),
            MetaReference::Kind => Ok(manifest_field("kind", "Job")),
            MetaReference::ApiVersion => Ok(manifest_field("apiVersion", "batch/v1")),
            MetaReference::Label(key) => metadata("labels", key),
            MetaReference::Annotation(key) => metadata("annotations", key),
        }
    }
}

/// The value of parameter `name` in the trial's assignment, formatted for a command line.
fn parameter_value(name: &str, trial: &TrialContext<'_>) -> Result<String, SpecError> {
    let position = trial
        .space
        .parameters
        .iter()
        .position(|parameter| parameter.name == name)
        .ok_or_else(|| render_error(format!("unknown parameter \"{name}\"")))?;
    trial
        .assignment
        .get(position)
        .map(ToString::to_string)
        .ok_or_else(|| {
            render_error(format!(
                "the assignment has no value for parameter \"{name}\""
            ))
        })
}

impl ExperimentSpec {
    /// Fills in the trial template and the metrics file path for one trial.
    ///
    /// # Errors
    ///
    /// A [`SpecError`] when the experiment has no trial template (its trials are run by a
    /// client) or a placeholder does not resolve (see [`TrialTemplate::render`]).
    pub fn render_trial(&self, trial: &TrialContext<'_>) -> Result<RenderedTrial, SpecError> {
        let template = self.trial_template.as_ref().ok_or_else(|| {
            render_error(
                "the experiment has no trial template; its trials are run by a client".to_string(),
            )
        })?;
        let mut rendered = template.render(trial)?;
        if let Some(file) = &self.metrics_collector.file {
            rendered.metrics_file = Some(template.substitute(&file.path, trial)?);
        }
        Ok(rendered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_in_order() {
        let text =
            "--lr=${trialParameters.lr} --m=${parameters.momentum} ${HOME} ${trialParameters.open";
        assert_eq!(
            placeholders(text),
            [
                Placeholder::TrialParameter("lr"),
                Placeholder::Parameter("momentum")
            ]
        );
    }

    #[test]
    fn substitution_keeps_other_text() {
        let out = substitute::<()>("a${parameters.x}b${HOME}${parameters.y}", |placeholder| {
            Ok(match placeholder {
                Placeholder::Parameter(name) => name.to_uppercase(),
                Placeholder::TrialParameter(_) => String::new(),
            })
        });
        assert_eq!(out, Ok("aXb${HOME}Y".to_string()));
    }

    #[test]
    fn meta_references() {
        assert_eq!(meta_reference("lr"), None);
        assert_eq!(
            meta_reference("${trialSpec.Name}"),
            Some(Ok(MetaReference::Name))
        );
        assert_eq!(
            meta_reference("${trialSpec.Labels[custom-key]}"),
            Some(Ok(MetaReference::Label("custom-key")))
        );
        assert_eq!(
            meta_reference("${trialSpec.Annotations[a]}"),
            Some(Ok(MetaReference::Annotation("a")))
        );
        assert_eq!(meta_reference("${trialSpec.Labels}"), Some(Err(())));
        assert_eq!(meta_reference("${trialSpec.Uid}"), Some(Err(())));
    }
}
