//! The object store: every object as JSON, a global resourceVersion, per-resource watch history
//! and broadcast channels, owner references for cascading deletion.
//!
//! Everything here is synchronous and runs under one mutex held only for the operation itself
//! (never across an await). Each write bumps the global resourceVersion, is appended to its
//! resource's history and broadcast to open watches, and is recorded in `changes` so the owner
//! of the lock can run controller hooks once it has released it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::gvr::{self, Gvr};
use crate::selector::{FieldSelector, LabelSelector};
use crate::util::{child_mut, now_rfc3339, obj_mut, random_suffix, random_uid, str_at};

/// The type of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// The object was created (or is reported as existing at the start of a watch).
    Added,
    /// The object changed.
    Modified,
    /// The object was deleted.
    Deleted,
}

impl EventType {
    /// The watch protocol's name: `ADDED`, `MODIFIED`, `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change of one object, as watches see it.
#[derive(Debug)]
pub(crate) struct Event {
    pub rv: u64,
    pub ty: EventType,
    pub object: Arc<Value>,
}

impl Event {
    /// The newline-terminated JSON line of the watch protocol.
    pub fn line(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(self.ty.as_str().as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        if serde_json::to_writer(&mut out, &*self.object).is_err() {
            out.extend_from_slice(b"null");
        }
        out.extend_from_slice(b"}\n");
        out
    }
}

/// A write, reported to the controller hooks after the store lock is released.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub key: String,
    pub ty: EventType,
    pub object: Arc<Value>,
}

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WatchFrom {
    /// `resourceVersion` unset or `"0"`: every current object as `ADDED`, then changes.
    Now,
    /// Every change after this resourceVersion.
    After(u64),
}

/// How dependents are treated when their owner is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Propagation {
    Orphan,
    Background,
    Foreground,
}

/// `DeleteOptions` that matter here.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteOpts {
    pub propagation: Option<Propagation>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// What a delete did.
#[derive(Clone, Debug)]
pub(crate) enum Deleted {
    /// Finalizers remain: the object now carries `deletionTimestamp`.
    Pending(Arc<Value>),
    /// The object is gone; this is its last state.
    Gone(Arc<Value>),
}

struct ResourceState {
    gvr: Gvr,
    objects: BTreeMap<(String, String), Arc<Value>>,
    history: VecDeque<Arc<Event>>,
    /// Events at or below this resourceVersion were forgotten.
    floor: u64,
    tx: broadcast::Sender<Arc<Event>>,
}

/// The store. See the module docs.
pub(crate) struct Store {
    rv: u64,
    compacted: u64,
    resources: HashMap<String, ResourceState>,
    /// owner uid → dependents (resource key, namespace, name)
    owners: HashMap<String, HashSet<(String, String, String)>>,
    history_limit: usize,
    watch_capacity: usize,
    status_subresources: HashSet<String>,
    changes: Vec<Change>,
    /// Server-side apply field ownership, only for objects that were ever applied:
    /// (resource key, namespace, name) → field path (`.spec.holderIdentity`) → manager.
    field_owners: HashMap<(String, String, String), BTreeMap<String, String>>,
}

/// The leaf fields of an object as dotted paths, without what the server owns.
fn leaves<'a>(v: &'a Value, prefix: &str, out: &mut Vec<(String, &'a Value)>) {
    match v.as_object() {
        Some(m) if !m.is_empty() => {
            for (k, child) in m {
                if prefix.is_empty() && matches!(k.as_str(), "apiVersion" | "kind") {
                    continue;
                }
                if prefix == ".metadata"
                    && matches!(
                        k.as_str(),
                        "name"
                            | "namespace"
                            | "resourceVersion"
                            | "uid"
                            | "creationTimestamp"
                            | "generation"
                            | "managedFields"
                    )
                {
                    continue;
                }
                leaves(child, &format!("{prefix}.{k}"), out);
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.push((prefix.to_string(), v));
            }
        }
    }
}

fn at_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').skip(1).try_fold(v, |cur, seg| cur.get(seg))
}

fn meta(v: &Value) -> Option<&Map<String, Value>> {
    v.get("metadata").and_then(Value::as_object)
}

fn rv_of(v: &Value) -> u64 {
    str_at(v, "/metadata/resourceVersion")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn owner_uids(v: &Value) -> Vec<String> {
    v.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn has_finalizers(v: &Value) -> bool {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// RFC 1123 subdomain, as object names must be.
fn valid_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// A label value: at most 63 characters, alphanumerics with `-_.` inside.
fn valid_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && v.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
            && v.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric))
}

/// Checks `metadata.labels` like the API server's validation.
pub(crate) fn validate_labels(gvr: &Gvr, name: &str, obj: &Value) -> Result<(), ApiError> {
    let Some(labels) = obj.pointer("/metadata/labels") else {
        return Ok(());
    };
    let Some(labels) = labels.as_object() else {
        return Err(ApiError::bad_request(
            "metadata.labels must be a map of strings",
        ));
    };
    for (k, v) in labels {
        let Some(v) = v.as_str() else {
            return Err(ApiError::bad_request(format!(
                "metadata.labels[{k}] must be a string"
            )));
        };
        let key_name = k.rsplit('/').next().unwrap_or(k);
        if key_name.is_empty() || !valid_label_value(key_name) {
            return Err(ApiError::invalid(
                gvr,
                name,
                &format!(
                    "metadata.labels: Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        if !valid_label_value(v) {
            return Err(ApiError::invalid(
                gvr,
                name,
                &format!(
                    "metadata.labels: Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                ),
            ));
        }
    }
    Ok(())
}

/// Whether two objects are equal but for `metadata.resourceVersion` (and managed fields), for
/// no-op detection. Compares in place, without copying.
fn same_ignoring_rv(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let ignored = |k: &str| k == "resourceVersion" || k == "managedFields";
    let same_meta = |x: Option<&Value>, y: Option<&Value>| match (
        x.and_then(Value::as_object),
        y.and_then(Value::as_object),
    ) {
        (Some(x), Some(y)) => {
            x.iter().filter(|(k, _)| !ignored(k)).count()
                == y.iter().filter(|(k, _)| !ignored(k)).count()
                && x.iter()
                    .filter(|(k, _)| !ignored(k))
                    .all(|(k, v)| y.get(k) == Some(v))
        }
        _ => x == y,
    };
    a.len() == b.len()
        && a.iter().all(|(k, v)| {
            if k == "metadata" {
                same_meta(Some(v), b.get(k))
            } else {
                b.get(k) == Some(v)
            }
        })
}

/// Whether anything but metadata (and status, for resources with a status subresource) changed.
fn spec_changed(old: &Value, new: &Value, status_sub: bool) -> bool {
    let counted = |k: &str| {
        let server_side = matches!(k, "metadata" | "apiVersion" | "kind");
        !(server_side || status_sub && k == "status")
    };
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return old != new;
    };
    o.keys().filter(|k| counted(k)).count() != n.keys().filter(|k| counted(k)).count()
        || o.iter()
            .filter(|(k, _)| counted(k))
            .any(|(k, v)| n.get(k) != Some(v))
}

impl Store {
    pub fn new(
        history_limit: usize,
        watch_capacity: usize,
        status_subresources: HashSet<String>,
    ) -> Self {
        Store {
            rv: 1,
            compacted: 0,
            resources: HashMap::new(),
            owners: HashMap::new(),
            history_limit: history_limit.max(1),
            watch_capacity: watch_capacity.max(16),
            status_subresources,
            changes: Vec::new(),
            field_owners: HashMap::new(),
        }
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Takes the changes recorded since the last call.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    pub fn set_status_subresources(&mut self, set: HashSet<String>) {
        self.status_subresources = set;
    }

    pub fn has_status_subresource(&self, gvr: &Gvr) -> bool {
        self.status_subresources.contains(gvr.resource.as_ref())
    }

    /// The resource type named by a URL, with the kind the store knows for it.
    pub fn resolve(&self, group: &str, version: &str, resource: &str) -> Gvr {
        let key = format!("{group}/{version}/{resource}");
        if let Some(rs) = self.resources.get(&key) {
            return rs.gvr.clone();
        }
        if let Some(known) = gvr::KNOWN
            .iter()
            .find(|g| g.group == group && g.version == version && g.resource == resource)
        {
            return known.clone();
        }
        Gvr::new(group, version, resource, gvr::guess_kind(resource))
    }

    /// Makes the store know a resource type's kind.
    pub fn register(&mut self, gvr: &Gvr) {
        self.state(gvr).gvr.kind = gvr.kind.clone();
    }

    fn state(&mut self, gvr: &Gvr) -> &mut ResourceState {
        let capacity = self.watch_capacity;
        let floor = self.compacted;
        self.resources
            .entry(gvr.key())
            .or_insert_with(|| ResourceState {
                gvr: gvr.clone(),
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                floor,
                tx: broadcast::channel(capacity).0,
            })
    }

    pub fn get(&self, gvr: &Gvr, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.resources
            .get(&gvr.key())
            .and_then(|rs| rs.objects.get(&(ns.to_string(), name.to_string())))
            .cloned()
    }

    /// Objects of a resource, in one namespace or all, that match the selectors, ordered by
    /// namespace and name.
    pub fn list(
        &self,
        gvr: &Gvr,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Arc<Value>> {
        let Some(rs) = self.resources.get(&gvr.key()) else {
            return Vec::new();
        };
        let keep = |v: &&Arc<Value>| labels.matches(v) && fields.matches(v);
        match ns {
            Some(ns) => rs
                .objects
                .range((
                    Bound::Included((ns.to_string(), String::new())),
                    Bound::Unbounded,
                ))
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v)
                .filter(keep)
                .cloned()
                .collect(),
            None => rs.objects.values().filter(keep).cloned().collect(),
        }
    }

    fn record(&mut self, key: &str, ty: EventType, object: Arc<Value>) {
        let limit = self.history_limit;
        let rv = self.rv;
        let Some(rs) = self.resources.get_mut(key) else {
            return;
        };
        let ev = Arc::new(Event {
            rv,
            ty,
            object: object.clone(),
        });
        rs.history.push_back(ev.clone());
        while rs.history.len() > limit {
            if let Some(dropped) = rs.history.pop_front() {
                rs.floor = dropped.rv;
            }
        }
        // No receivers is fine: nobody watches this resource.
        let _ = rs.tx.send(ev);
        self.changes.push(Change {
            key: key.to_string(),
            ty,
            object,
        });
    }

    fn index_owners(
        &mut self,
        key: &str,
        ns: &str,
        name: &str,
        old: Option<&Value>,
        new: Option<&Value>,
    ) {
        let entry = (key.to_string(), ns.to_string(), name.to_string());
        if let Some(old) = old {
            for uid in owner_uids(old) {
                if let Some(set) = self.owners.get_mut(&uid) {
                    set.remove(&entry);
                    if set.is_empty() {
                        self.owners.remove(&uid);
                    }
                }
            }
        }
        if let Some(new) = new {
            for uid in owner_uids(new) {
                self.owners.entry(uid).or_default().insert(entry.clone());
            }
        }
    }

    /// Stores `obj` (whose metadata is complete but for resourceVersion) as a new version.
    fn commit_put(&mut self, gvr: &Gvr, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        let md = child_mut(&mut obj, "metadata");
        obj_mut(md).insert("resourceVersion".into(), Value::String(rv.to_string()));
        let ns = str_at(&obj, "/metadata/namespace")
            .unwrap_or("")
            .to_string();
        let name = str_at(&obj, "/metadata/name").unwrap_or("").to_string();
        let arc = Arc::new(obj);
        let key = gvr.key();
        let old = self
            .state(gvr)
            .objects
            .insert((ns.clone(), name.clone()), arc.clone());
        self.index_owners(&key, &ns, &name, old.as_deref(), Some(&arc));
        let ty = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(&key, ty, arc.clone());
        arc
    }

    /// Removes an object; its last state carries the deletion's resourceVersion.
    /// `last` is the state to report (default: the stored one).
    fn commit_delete(
        &mut self,
        gvr: &Gvr,
        ns: &str,
        name: &str,
        last: Option<Value>,
    ) -> Option<Arc<Value>> {
        let key = gvr.key();
        let old = self
            .resources
            .get_mut(&key)?
            .objects
            .remove(&(ns.to_string(), name.to_string()))?;
        self.rv += 1;
        self.field_owners
            .remove(&(key.clone(), ns.to_string(), name.to_string()));
        let mut last = last.unwrap_or_else(|| (*old).clone());
        let md = child_mut(&mut last, "metadata");
        obj_mut(md).insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        let last = Arc::new(last);
        self.index_owners(&key, ns, name, Some(&old), None);
        self.record(&key, EventType::Deleted, last.clone());
        Some(last)
    }

    /// Creates an object. `api` applies what the API server does on create (validation,
    /// status reset for resources with a status subresource, Job defaults); without it the
    /// object is stored as given (test setup).
    pub fn create(
        &mut self,
        gvr: &Gvr,
        ns: &str,
        mut obj: Value,
        api: bool,
    ) -> Result<Arc<Value>, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request was not a JSON object",
            ));
        }
        if let Some(body_ns) = str_at(&obj, "/metadata/namespace")
            && !body_ns.is_empty()
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if let Some(kind) = obj.get("kind").and_then(Value::as_str)
            && !gvr::KNOWN.iter().any(|k| k.key() == gvr.key())
            && kind != gvr.kind
        {
            let mut g = gvr.clone();
            g.kind = kind.to_string().into();
            self.register(&g);
        }
        let name = match str_at(&obj, "/metadata/name").filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => {
                let Some(prefix) = str_at(&obj, "/metadata/generateName").filter(|p| !p.is_empty())
                else {
                    return Err(ApiError::invalid(
                        gvr,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                };
                let prefix = prefix.to_string();
                let mut tries = 0;
                loop {
                    let candidate = format!("{prefix}{}", random_suffix(5));
                    if self.get(gvr, ns, &candidate).is_none() {
                        break candidate;
                    }
                    tries += 1;
                    if tries > 8 {
                        return Err(ApiError::already_exists(gvr, &candidate));
                    }
                }
            }
        };
        if api && !valid_name(&name) {
            return Err(ApiError::invalid(
                gvr,
                &name,
                &format!(
                    "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                ),
            ));
        }
        if self.get(gvr, ns, &name).is_some() {
            return Err(ApiError::already_exists(gvr, &name));
        }
        if api {
            validate_labels(gvr, &name, &obj)?;
        }
        let kind = self.resolve(&gvr.group, &gvr.version, &gvr.resource).kind;
        let m = obj_mut(&mut obj);
        m.insert("apiVersion".into(), Value::String(gvr.api_version()));
        m.entry("kind")
            .or_insert_with(|| Value::String(kind.to_string()));
        let md = obj_mut(child_mut(&mut obj, "metadata"));
        md.insert("name".into(), Value::String(name.clone()));
        if ns.is_empty() {
            md.remove("namespace");
        } else {
            md.insert("namespace".into(), Value::String(ns.to_string()));
        }
        if api || !md.contains_key("uid") {
            md.insert("uid".into(), Value::String(random_uid()));
        }
        if api || !md.contains_key("creationTimestamp") {
            md.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
        }
        md.insert("generation".into(), json!(1));
        md.remove("resourceVersion");
        if api {
            md.remove("deletionTimestamp");
            md.remove("deletionGracePeriodSeconds");
            if self.has_status_subresource(gvr) {
                let m = obj_mut(&mut obj);
                if *gvr == gvr::PODS {
                    m.insert(
                        "status".into(),
                        json!({"phase": "Pending", "qosClass": "BestEffort"}),
                    );
                } else if gvr.group.contains('.') && !gvr.group.ends_with(".k8s.io") {
                    m.remove("status");
                } else {
                    m.insert("status".into(), json!({}));
                }
            }
            if *gvr == gvr::JOBS {
                crate::jobs::admit_job(gvr, &mut obj)?;
            }
        }
        Ok(self.commit_put(gvr, obj))
    }

    /// Updates an object through `f` (which gets the current state and returns the wanted one).
    ///
    /// `sub` is `None` for the main resource or `Some("status")`. With `api`, the status
    /// subresource rules apply and a stale `metadata.resourceVersion` in the result is a
    /// conflict; without it (test control) the whole object is replaced as returned.
    pub fn update(
        &mut self,
        gvr: &Gvr,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        api: bool,
        f: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Arc<Value>, ApiError> {
        let old = self
            .get(gvr, ns, name)
            .ok_or_else(|| ApiError::not_found(gvr, name))?;
        let mut cand = f(&old)?;
        if !cand.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request was not a JSON object",
            ));
        }
        if let Some(rv) = str_at(&cand, "/metadata/resourceVersion")
            && api
            && !rv.is_empty()
            && rv != str_at(&old, "/metadata/resourceVersion").unwrap_or("")
        {
            return Err(ApiError::conflict(
                gvr,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        if let Some(n) = str_at(&cand, "/metadata/name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let status_sub = self.has_status_subresource(gvr);
        let mut new = match sub {
            None => {
                if api && status_sub {
                    let m = obj_mut(&mut cand);
                    match old.get("status") {
                        Some(s) => m.insert("status".into(), s.clone()),
                        None => m.remove("status"),
                    };
                }
                cand
            }
            Some("status") if status_sub => {
                let mut n = (*old).clone();
                let m = obj_mut(&mut n);
                match cand.get("status") {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
                n
            }
            Some(other) => {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    format!("the server could not find the requested resource ({other})"),
                ));
            }
        };
        // Fields the server owns.
        let m = obj_mut(&mut new);
        m.insert("apiVersion".into(), Value::String(gvr.api_version()));
        if let Some(kind) = old.get("kind") {
            m.insert("kind".into(), kind.clone());
        }
        let md = obj_mut(child_mut(&mut new, "metadata"));
        let old_md = meta(&old).cloned().unwrap_or_default();
        let owned: &[&str] = if api {
            &[
                "uid",
                "creationTimestamp",
                "namespace",
                "name",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ]
        } else {
            &["namespace", "name", "generation"]
        };
        for f in owned {
            match old_md.get(*f) {
                Some(v) => md.insert((*f).to_string(), v.clone()),
                None => md.remove(*f),
            };
        }
        if !md.contains_key("uid")
            && let Some(uid) = old_md.get("uid")
        {
            md.insert("uid".into(), uid.clone());
        }
        if api {
            validate_labels(gvr, name, &new)?;
        }
        if spec_changed(&old, &new, status_sub) {
            let g = old_md
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            obj_mut(child_mut(&mut new, "metadata")).insert("generation".into(), json!(g + 1));
        }
        if same_ignoring_rv(&old, &new) {
            return Ok(old);
        }
        if new.pointer("/metadata/deletionTimestamp").is_some() && !has_finalizers(&new) {
            // The last finalizer is gone: the deletion completes.
            let uid = str_at(&old, "/metadata/uid").unwrap_or("").to_string();
            let gone = self
                .commit_delete(gvr, ns, name, Some(new))
                .ok_or_else(|| ApiError::not_found(gvr, name))?;
            self.cascade(&uid, Propagation::Background);
            return Ok(gone);
        }
        Ok(self.commit_put(gvr, new))
    }

    /// Deletes an object like the API server: with finalizers it only gains
    /// `deletionTimestamp`; otherwise it is removed and its dependents are deleted (background,
    /// foreground) or released (orphan).
    pub fn delete(
        &mut self,
        gvr: &Gvr,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Deleted, ApiError> {
        let old = self
            .get(gvr, ns, name)
            .ok_or_else(|| ApiError::not_found(gvr, name))?;
        if let Some(uid) = &opts.uid {
            let have = str_at(&old, "/metadata/uid").unwrap_or("");
            if uid != have {
                return Err(ApiError::conflict(
                    gvr,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"
                    ),
                ));
            }
        }
        if let Some(rv) = &opts.resource_version {
            let have = str_at(&old, "/metadata/resourceVersion").unwrap_or("");
            if rv != have {
                return Err(ApiError::conflict(
                    gvr,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"
                    ),
                ));
            }
        }
        // batch/v1 Jobs orphan their pods unless told otherwise, like the real server.
        let propagation = opts.propagation.unwrap_or(if *gvr == gvr::JOBS {
            Propagation::Orphan
        } else {
            Propagation::Background
        });
        if has_finalizers(&old) {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(Deleted::Pending(old));
            }
            let mut new = (*old).clone();
            let md = obj_mut(child_mut(&mut new, "metadata"));
            md.insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
            md.insert("deletionGracePeriodSeconds".into(), json!(0));
            return Ok(Deleted::Pending(self.commit_put(gvr, new)));
        }
        let uid = str_at(&old, "/metadata/uid").unwrap_or("").to_string();
        let gone = self
            .commit_delete(gvr, ns, name, None)
            .ok_or_else(|| ApiError::not_found(gvr, name))?;
        self.cascade(&uid, propagation);
        Ok(Deleted::Gone(gone))
    }

    /// Deletes or releases the dependents of a deleted owner.
    fn cascade(&mut self, owner_uid: &str, propagation: Propagation) {
        if owner_uid.is_empty() {
            return;
        }
        let Some(deps) = self.owners.get(owner_uid).cloned() else {
            return;
        };
        for (key, ns, name) in deps {
            let Some(gvr) = self.resources.get(&key).map(|rs| rs.gvr.clone()) else {
                continue;
            };
            match propagation {
                Propagation::Orphan => {
                    let _ = self.update(&gvr, &ns, &name, None, false, |cur| {
                        let mut v = cur.clone();
                        if let Some(refs) = v
                            .pointer_mut("/metadata/ownerReferences")
                            .and_then(Value::as_array_mut)
                        {
                            refs.retain(|r| {
                                r.get("uid").and_then(Value::as_str) != Some(owner_uid)
                            });
                        }
                        Ok(v)
                    });
                }
                Propagation::Background | Propagation::Foreground => {
                    let _ = self.delete(
                        &gvr,
                        &ns,
                        &name,
                        &DeleteOpts {
                            propagation: Some(Propagation::Background),
                            ..DeleteOpts::default()
                        },
                    );
                }
            }
        }
    }

    /// Removes an object at once, ignoring finalizers and dependents (test control).
    pub fn remove(&mut self, gvr: &Gvr, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.commit_delete(gvr, ns, name, None)
    }

    /// Starts a watch: the events to send first, the live channel and the current
    /// resourceVersion. `Err(floor)` when `from` is older than the retained history (410 Expired).
    #[allow(clippy::type_complexity)]
    pub fn watch(
        &mut self,
        gvr: &Gvr,
        ns: Option<&str>,
        from: WatchFrom,
    ) -> Result<(Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>, u64), u64> {
        let now = self.rv;
        let rs = self.state(gvr);
        let rx = rs.tx.subscribe();
        let in_ns =
            |v: &Value| ns.is_none_or(|ns| str_at(v, "/metadata/namespace").unwrap_or("") == ns);
        let initial = match from {
            WatchFrom::Now => rs
                .objects
                .values()
                .filter(|v| in_ns(v))
                .map(|v| {
                    Arc::new(Event {
                        rv: rv_of(v),
                        ty: EventType::Added,
                        object: v.clone(),
                    })
                })
                .collect(),
            WatchFrom::After(rv) => {
                if rv < rs.floor {
                    return Err(rs.floor);
                }
                let start = rs.history.partition_point(|e| e.rv <= rv);
                rs.history
                    .range(start..)
                    .filter(|e| in_ns(&e.object))
                    .cloned()
                    .collect()
            }
        };
        Ok((initial, rx, now))
    }

    /// The resourceVersion a bookmark may carry for a watch whose channel is `rx`: the current
    /// one when the watch has received everything sent so far.
    pub fn bookmark_rv(&self, rx: &broadcast::Receiver<Arc<Event>>) -> Option<u64> {
        rx.is_empty().then_some(self.rv)
    }

    /// Server-side apply's conflict check: fields of `applied` that another manager owns and
    /// that would change are conflicts (409) unless `force`.
    pub fn check_apply(
        &self,
        gvr: &Gvr,
        ns: &str,
        name: &str,
        applied: &Value,
        manager: &str,
        force: bool,
    ) -> Result<(), ApiError> {
        let (Some(owners), Some(cur)) = (
            self.field_owners
                .get(&(gvr.key(), ns.to_string(), name.to_string())),
            self.get(gvr, ns, name),
        ) else {
            return Ok(());
        };
        if force {
            return Ok(());
        }
        let mut fields = Vec::new();
        leaves(applied, "", &mut fields);
        let conflicts: Vec<String> = fields
            .iter()
            .filter_map(|(path, v)| {
                let owner = owners.get(path)?;
                (owner != manager && at_path(&cur, path) != Some(*v))
                    .then(|| format!("conflict with \"{owner}\": {path}"))
            })
            .collect();
        if conflicts.is_empty() {
            return Ok(());
        }
        let n = conflicts.len();
        let mut e = ApiError::conflict(gvr, name, "");
        e.message = format!(
            "Apply failed with {n} conflict{}: {}",
            if n == 1 { "" } else { "s" },
            conflicts.join("\n")
        );
        Err(e)
    }

    /// Records field ownership after a write: `applied` (server-side apply) makes `manager` own
    /// every field it names; other writes make it own the fields they changed, on objects that
    /// take part in server-side apply. Fields that disappeared lose their owner.
    pub fn note_fields(
        &mut self,
        gvr: &Gvr,
        ns: &str,
        name: &str,
        old: Option<&Value>,
        applied: Option<&Value>,
        manager: &str,
    ) {
        let id = (gvr.key(), ns.to_string(), name.to_string());
        if applied.is_none() && !self.field_owners.contains_key(&id) {
            return;
        }
        let Some(cur) = self.get(gvr, ns, name) else {
            return;
        };
        let owners = self.field_owners.entry(id).or_default();
        let mut now = Vec::new();
        leaves(&cur, "", &mut now);
        let present: HashSet<&str> = now.iter().map(|(p, _)| p.as_str()).collect();
        owners.retain(|p, _| present.contains(p.as_str()));
        match applied {
            Some(a) => {
                let mut fields = Vec::new();
                leaves(a, "", &mut fields);
                for (p, _) in fields {
                    if present.contains(p.as_str()) {
                        owners.insert(p, manager.to_string());
                    }
                }
            }
            None => {
                for (p, v) in &now {
                    if old.and_then(|o| at_path(o, p)) != Some(*v) {
                        owners.insert(p.clone(), manager.to_string());
                    }
                }
            }
        }
    }

    /// Forgets every resource's history: watches from an older resourceVersion get 410.
    pub fn compact(&mut self) {
        self.compacted = self.rv;
        for rs in self.resources.values_mut() {
            rs.history.clear();
            rs.floor = self.rv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        assert!(valid_name("trial-1.a"));
        assert!(!valid_name("Trial"));
        assert!(!valid_name("-a"));
        assert!(valid_label_value("A_b.c-1"));
        assert!(!valid_label_value("-a"));
        assert!(!valid_label_value(&"a".repeat(64)));
    }

    #[test]
    fn history_and_compaction() {
        let mut s = Store::new(3, 16, HashSet::new());
        let g = gvr::LEASES;
        for i in 0..5 {
            s.create(
                &g,
                "ns",
                json!({"metadata": {"name": format!("l{i}")}}),
                true,
            )
            .expect("create");
        }
        let rv = s.resource_version();
        assert!(s.watch(&g, None, WatchFrom::After(2)).is_err());
        let (events, _, _) = s
            .watch(&g, None, WatchFrom::After(rv - 2))
            .expect("in history");
        assert_eq!(events.len(), 2);
        s.compact();
        assert!(s.watch(&g, None, WatchFrom::After(rv - 1)).is_err());
        assert!(s.watch(&g, None, WatchFrom::After(rv)).is_ok());
    }
}
