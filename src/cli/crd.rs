//! `tuneflow crd`: the `Experiment` CustomResourceDefinition, generated from the Rust types,
//! as YAML for `kubectl apply -f -` (and `deploy/crd.yaml`, which a test keeps equal to it).

use super::Exit;
use crate::operator::resource::crd_yaml;

/// Prints the CustomResourceDefinition on stdout.
pub fn crd() -> anyhow::Result<Exit> {
    out!("{}", crd_yaml()?);
    Ok(Exit::Success)
}
