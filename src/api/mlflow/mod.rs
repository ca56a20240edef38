//! MLflow's tracking REST API, served by `tuneflow serve`.

pub mod error;
pub mod search;
pub mod validation;
pub mod wire;
