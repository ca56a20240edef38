//! Builders and checks shared by the unit tests: search spaces, proptest strategies for any
//! valid domain, and the check that a value lies inside its domain.

use proptest::prelude::*;

use crate::space::{Distribution, Domain, Parameter, ParameterValue, SearchSpace};

/// A space of `domains`, named `p0`, `p1`, ...
pub fn space(domains: Vec<Domain>) -> SearchSpace {
    SearchSpace {
        parameters: domains
            .into_iter()
            .enumerate()
            .map(|(index, domain)| Parameter {
                name: format!("p{index}"),
                domain,
            })
            .collect(),
    }
}

/// A double domain.
pub fn double(min: f64, max: f64, step: Option<f64>, distribution: Distribution) -> Domain {
    Domain::Double {
        min,
        max,
        step,
        distribution,
    }
}

/// An int domain.
pub fn int(min: i64, max: i64, step: Option<i64>, distribution: Distribution) -> Domain {
    Domain::Int {
        min,
        max,
        step,
        distribution,
    }
}

/// A categorical domain.
pub fn categorical(choices: &[&str]) -> Domain {
    Domain::Categorical {
        choices: choices.iter().map(|c| c.to_string()).collect(),
    }
}

fn param(name: &str, domain: Domain) -> Parameter {
    Parameter {
        name: name.to_string(),
        domain,
    }
}

/// A space like a small neural-network experiment's, one parameter per kind.
pub fn example_space() -> SearchSpace {
    SearchSpace {
        parameters: vec![
            param("lr", double(1e-5, 1.0, None, Distribution::LogUniform)),
            param("layers", int(1, 8, None, Distribution::Uniform)),
            param(
                "momentum",
                double(0.5, 0.99, Some(0.01), Distribution::Normal),
            ),
            param(
                "batch",
                Domain::Discrete {
                    values: vec![16.0, 32.0, 64.0],
                },
            ),
            param(
                "optimizer",
                Domain::Categorical {
                    choices: vec!["sgd".into(), "adam".into(), "rmsprop".into()],
                },
            ),
        ],
    }
}

/// Whether `value` is a value `domain` allows, of the type it should have.
pub fn inside(domain: &Domain, value: &ParameterValue) -> bool {
    match (domain, value) {
        (Domain::Double { min, max, step, .. }, ParameterValue::Double(x)) => {
            let on_step = step.is_none_or(|step| {
                let k = (x - min) / step;
                (k - k.round()).abs() < 1e-5
            });
            (*min..=*max).contains(x) && on_step
        }
        (Domain::Int { min, max, step, .. }, ParameterValue::Int(x)) => {
            let offset = i128::from(*x) - i128::from(*min);
            (*min..=*max).contains(x) && offset % i128::from(step.unwrap_or(1)) == 0
        }
        (Domain::Discrete { values }, ParameterValue::Double(x)) => values.contains(x),
        (Domain::Categorical { choices }, ParameterValue::Categorical(x)) => choices.contains(x),
        _ => false,
    }
}

pub fn distribution() -> impl Strategy<Value = Distribution> {
    prop_oneof![
        Just(Distribution::Uniform),
        Just(Distribution::LogUniform),
        Just(Distribution::Normal),
        Just(Distribution::LogNormal),
    ]
}

/// Any domain the spec module would accept.
pub fn domain() -> impl Strategy<Value = Domain> {
    let double_domain = (
        -1e6..1e6_f64,
        0.0..1e6_f64,
        prop::option::of(1e-3..1e3_f64),
        distribution(),
    )
        .prop_map(|(min, width, step, distribution)| {
            let log = matches!(
                distribution,
                Distribution::LogUniform | Distribution::LogNormal
            );
            let min = if log { min.abs().max(1e-9) } else { min };
            double(min, min + width, step, distribution)
        });
    let int_domain = (
        -1_000_000..1_000_000_i64,
        0..1_000_000_i64,
        prop::option::of(1..1000_i64),
        distribution(),
    )
        .prop_map(|(min, width, step, distribution)| {
            let log = matches!(
                distribution,
                Distribution::LogUniform | Distribution::LogNormal
            );
            let min = if log { min.abs().max(1) } else { min };
            int(min, min + width, step, distribution)
        });
    let discrete_domain =
        prop::collection::vec(-1e9..1e9_f64, 1..6).prop_map(|values| Domain::Discrete { values });
    let categorical_domain = prop::collection::vec("[a-z]{1,6}", 1..6)
        .prop_map(|choices| Domain::Categorical { choices });
    prop_oneof![
        double_domain,
        int_domain,
        discrete_domain,
        categorical_domain
    ]
}
