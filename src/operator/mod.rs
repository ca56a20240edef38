//! The Kubernetes operator: `Experiment` resources run by the engine, trials as Jobs.

pub mod resource;
