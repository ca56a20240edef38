//! `tuneflow validate FILE...`: every problem in every file, at once.

use serde::Serialize;

use super::output::{self, Output};
use super::{Exit, ValidateArgs};
use crate::spec::{self, SpecError};

#[derive(Serialize)]
struct Report {
    file: String,
    valid: bool,
    experiment: Option<String>,
    errors: Vec<SpecError>,
}

/// Checks each file; exits non-zero when any has an error.
pub fn validate(args: ValidateArgs) -> Exit {
    let mut reports = Vec::new();
    for file in &args.files {
        let report = match spec::parse_file(file) {
            Ok(spec) => Report {
                file: file.display().to_string(),
                valid: true,
                experiment: Some(spec.name),
                errors: Vec::new(),
            },
            Err(errors) => {
                if args.output == Output::Table {
                    errln!("{errors}");
                }
                Report {
                    file: file.display().to_string(),
                    valid: false,
                    experiment: None,
                    errors: errors.errors,
                }
            }
        };
        if args.output == Output::Table && report.valid {
            outln!(
                "{}: valid (experiment {})",
                report.file,
                report.experiment.as_deref().unwrap_or("")
            );
        }
        reports.push(report);
    }
    let invalid = reports.iter().filter(|r| !r.valid).count();
    if args.output == Output::Json {
        if let Err(e) = output::json(&reports) {
            output::error(&e);
            return Exit::Failure;
        }
    } else if invalid > 0 {
        let errors: usize = reports.iter().map(|r| r.errors.len()).sum();
        errln!(
            "{errors} error{} in {invalid} of {} file{}",
            if errors == 1 { "" } else { "s" },
            reports.len(),
            if reports.len() == 1 { "" } else { "s" }
        );
    }
    if invalid > 0 {
        Exit::Invalid
    } else {
        Exit::Success
    }
}
