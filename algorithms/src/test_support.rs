//! Builders for the unit tests' search spaces.

use crate::space::{Distribution, Domain, Parameter, SearchSpace};

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
