//! Resource identities: API group, version, plural resource name and kind.

use std::borrow::Cow;
use std::fmt;

/// A resource type the fake serves: API group (empty for the core group), version, plural
/// resource name as it appears in URLs, and kind.
///
/// Two `Gvr`s name the same storage when group, version and resource are equal; the kind is
/// what lists (`{Kind}List`), bookmarks and objects created without `kind` are labelled with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Gvr {
    /// API group: `""` for the core group, `"batch"`, `"tuneflow.dev"`, ...
    pub group: Cow<'static, str>,
    /// API version within the group: `"v1"`, `"v1alpha1"`.
    pub version: Cow<'static, str>,
    /// Plural resource name: `"jobs"`, `"pods"`.
    pub resource: Cow<'static, str>,
    /// Kind: `"Job"`, `"Pod"`.
    pub kind: Cow<'static, str>,
}

impl Gvr {
    /// A resource type from static strings (usable in constants).
    pub const fn new_static(
        group: &'static str,
        version: &'static str,
        resource: &'static str,
        kind: &'static str,
    ) -> Self {
        Gvr {
            group: Cow::Borrowed(group),
            version: Cow::Borrowed(version),
            resource: Cow::Borrowed(resource),
            kind: Cow::Borrowed(kind),
        }
    }

    /// A resource type from owned strings.
    pub fn new(
        group: impl Into<String>,
        version: impl Into<String>,
        resource: impl Into<String>,
        kind: impl Into<String>,
    ) -> Self {
        Gvr {
            group: Cow::Owned(group.into()),
            version: Cow::Owned(version.into()),
            resource: Cow::Owned(resource.into()),
            kind: Cow::Owned(kind.into()),
        }
    }

    /// `apiVersion` as written in objects: `"v1"` for the core group, `"batch/v1"` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource qualified by its group as Kubernetes writes it in messages: `"jobs.batch"`,
    /// `"pods"`.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// The storage key: group, version and resource (the kind is not part of it).
    pub(crate) fn key(&self) -> String {
        format!("{}/{}/{}", self.group, self.version, self.resource)
    }

    /// The URL prefix of the group version: `/api/v1` or `/apis/batch/v1`.
    pub fn url_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

impl fmt::Display for Gvr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.api_version(), self.resource)
    }
}

/// `batch/v1` Jobs.
pub const JOBS: Gvr = Gvr::new_static("batch", "v1", "jobs", "Job");
/// Core `v1` Pods.
pub const PODS: Gvr = Gvr::new_static("", "v1", "pods", "Pod");
/// Core `v1` Events.
pub const EVENTS: Gvr = Gvr::new_static("", "v1", "events", "Event");
/// `events.k8s.io/v1` Events.
pub const EVENTS_V1: Gvr = Gvr::new_static("events.k8s.io", "v1", "events", "Event");
/// `coordination.k8s.io/v1` Leases.
pub const LEASES: Gvr = Gvr::new_static("coordination.k8s.io", "v1", "leases", "Lease");
/// tuneflow's `tuneflow.dev/v1alpha1` Experiments.
pub const EXPERIMENTS: Gvr =
    Gvr::new_static("tuneflow.dev", "v1alpha1", "experiments", "Experiment");
/// Core `v1` ConfigMaps.
pub const CONFIG_MAPS: Gvr = Gvr::new_static("", "v1", "configmaps", "ConfigMap");
/// Core `v1` Secrets.
pub const SECRETS: Gvr = Gvr::new_static("", "v1", "secrets", "Secret");
/// Core `v1` Services.
pub const SERVICES: Gvr = Gvr::new_static("", "v1", "services", "Service");
/// Core `v1` ServiceAccounts.
pub const SERVICE_ACCOUNTS: Gvr = Gvr::new_static("", "v1", "serviceaccounts", "ServiceAccount");
/// Core `v1` Namespaces (cluster-scoped: served at `/api/v1/namespaces[/{name}]`).
pub const NAMESPACES: Gvr = Gvr::new_static("", "v1", "namespaces", "Namespace");

/// The resource types the fake knows the kind of out of the box.
pub const KNOWN: &[Gvr] = &[
    JOBS,
    PODS,
    EVENTS,
    EVENTS_V1,
    LEASES,
    EXPERIMENTS,
    CONFIG_MAPS,
    SECRETS,
    SERVICES,
    SERVICE_ACCOUNTS,
    NAMESPACES,
];

/// A kind guessed from a plural resource name, for resources nobody registered:
/// `"widgets"` → `"Widget"`.
pub(crate) fn guess_kind(resource: &str) -> String {
    let singular = resource
        .strip_suffix("ies")
        .map(|s| format!("{s}y"))
        .or_else(|| resource.strip_suffix('s').map(str::to_string))
        .unwrap_or_else(|| resource.to_string());
    let mut chars = singular.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
