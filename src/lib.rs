//! # tuneflow
//!
//! A hyperparameter tuning service in one binary: search algorithms
//! ([`tuneflow_algorithms`]), an engine that runs experiments ([`engine`]), executors that run
//! trials ([`executor`]), collectors that turn their output into observations ([`collector`]),
//! and a tracking store that keeps everything ([`store`]). The [`cli`] is one front door.
//!
//! Layers point down only: `cli` → `engine` → (`spec`, `executor`, `collector`, `store`) →
//! `tuneflow_algorithms`.

pub mod api;
pub mod cli;
pub mod collector;
pub mod engine;
pub mod executor;
pub mod export;
pub mod operator;
pub mod spec;
pub mod store;
pub mod summary;
