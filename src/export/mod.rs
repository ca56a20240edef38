//! Exporters: copies of the store's experiments in other tracking systems.
//!
//! The store stays the truth (see [`crate::store`]). An exporter only *reads* it, on its own
//! task and at its own pace, and sends what is new to the other system; the engine, the CLI
//! and the REST API never wait for it. So an exporter that is down, slow or misconfigured
//! costs an experiment nothing, and whatever it missed it sends later, because the store
//! still has it.
//!
//! [`mlflow`] mirrors experiments to an external MLflow tracking server.

pub mod mlflow;
