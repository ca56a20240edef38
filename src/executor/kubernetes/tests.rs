//! Unit tests of the Kubernetes executor.
