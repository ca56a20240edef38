//! The HTTP side: URL parsing, verbs, watch streams, pod logs, fault injection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::gvr::{self, Gvr};
use crate::handle::{FakeKube, Inner, Request};
use crate::lock;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{DeleteOpts, Deleted, Event, Propagation, WatchFrom};
use crate::util::{rfc3339_nano, str_at};

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new().fallback(dispatch).with_state(inner)
}

/// What a resource URL names.
#[derive(Debug, Clone)]
struct Target {
    gvr: Gvr,
    /// `None`: all namespaces (lists, watches) or a cluster-scoped object.
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(k: &FakeKube, path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, core) = match segs.as_slice() {
        ["api", version, ..] => ("", *version, true),
        ["apis", group, version, ..] => (*group, *version, false),
        _ => return None,
    };
    let (ns, resource, name, sub) = rest_of(&segs, core)?;
    let gvr = lock(&k.inner.store).resolve(group, version, resource);
    Some(Target {
        gvr,
        ns: ns.map(str::to_string),
        name: name.map(str::to_string),
        sub: sub.map(str::to_string),
    })
}

/// Splits the segments after the group version into (namespace, resource, name, subresource).
#[allow(clippy::type_complexity)]
fn rest_of<'a>(
    segs: &[&'a str],
    core: bool,
) -> Option<(Option<&'a str>, &'a str, Option<&'a str>, Option<&'a str>)> {
    let rest = if core { segs.get(2..)? } else { segs.get(3..)? };
    match rest {
        ["namespaces", ns, resource] => Some((Some(*ns), *resource, None, None)),
        ["namespaces", ns, resource, name] => Some((Some(*ns), *resource, Some(*name), None)),
        ["namespaces", ns, resource, name, sub] => {
            Some((Some(*ns), *resource, Some(*name), Some(*sub)))
        }
        [resource] => Some((None, *resource, None, None)),
        [resource, name] => Some((None, *resource, Some(*name), None)),
        [resource, name, sub] => Some((None, *resource, Some(*name), Some(*sub))),
        _ => None,
    }
}

fn json_response(code: u16, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

fn parse_query(q: &str) -> HashMap<String, String> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

fn verb(method: &Method, t: &Target, watch: bool) -> &'static str {
    match *method {
        Method::GET if watch => "watch",
        Method::GET if t.name.is_some() => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if t.name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

async fn dispatch(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let k = FakeKube { inner };
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let q = parse_query(&query);
    let watch = method == Method::GET && flag(&q, "watch");
    let target = parse_target(&k, &path);
    lock(&k.inner.requests).push(Request {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        resource: target
            .as_ref()
            .map(|t| t.gvr.resource.to_string())
            .unwrap_or_default(),
        subresource: target
            .as_ref()
            .and_then(|t| t.sub.clone())
            .unwrap_or_default(),
        namespace: target
            .as_ref()
            .and_then(|t| t.ns.clone())
            .unwrap_or_default(),
        watch,
    });
    if k.inner.unavailable.load(Ordering::SeqCst) {
        // No Retry-After: kube would wait that long (a second at least) before retrying.
        return error_response(&ApiError::new(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ));
    }
    match path.as_str() {
        "/healthz" | "/readyz" | "/livez" => {
            return (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response();
        }
        "/version" => {
            return json_response(
                200,
                &json!({
                    "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake",
                    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                    "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2",
                    "compiler": "gc", "platform": "linux/amd64",
                }),
            );
        }
        "/api" => {
            return json_response(
                200,
                &json!({"kind": "APIVersions", "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": k.inner.addr.to_string()}]}),
            );
        }
        _ => {}
    }
    let Some(t) = target else {
        return error_response(&ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    if let Some(ns) = &t.ns
        && lock(&k.inner.forbidden).contains(ns)
    {
        return error_response(&forbidden(&k, &t, ns, verb(&method, &t, watch)));
    }
    let result = match (&method, t.name.as_deref(), t.sub.as_deref()) {
        (&Method::GET, Some(_), Some("log")) if t.gvr == gvr::PODS => {
            return logs(&k, &t, &q).await;
        }
        (&Method::GET, None, None) if watch => return watch_stream(&k, &t, &q),
        (&Method::GET, Some(name), _) => get(&k, &t, name),
        (&Method::GET, None, None) => match list(&k, &t, &q) {
            Ok(r) => return r,
            Err(e) => Err(e),
        },
        (&Method::POST, None, None) => create(&k, &t, &body),
        (&Method::PUT, Some(name), sub) => replace(&k, &t, name, sub, &q, &body),
        (&Method::PATCH, Some(name), sub) => patch(&k, &t, name, sub, &headers, &q, &body),
        (&Method::DELETE, Some(name), None) => delete(&k, &t, name, &q, &body),
        (&Method::DELETE, None, None) => delete_collection(&k, &t, &q, &body),
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({method} {path})"
            ),
        )),
    };
    match result {
        Ok((code, v)) => json_response(code, &v),
        Err(e) => error_response(&e),
    }
}

fn forbidden(k: &FakeKube, t: &Target, ns: &str, verb: &str) -> ApiError {
    let user = lock(&k.inner.user).clone();
    let resource = match &t.sub {
        Some(s) => format!("{}/{s}", t.gvr.resource),
        None => t.gvr.resource.to_string(),
    };
    let who = match &t.name {
        Some(n) => format!("{} \"{n}\"", t.gvr.group_resource()),
        None => t.gvr.group_resource(),
    };
    let mut e = ApiError::new(
        403,
        "Forbidden",
        format!(
            "{who} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{}\" in the namespace \"{ns}\"",
            t.gvr.group
        ),
    );
    e.details = Some(Box::new(
        json!({"name": t.name.clone().unwrap_or_default(), "group": t.gvr.group, "kind": t.gvr.resource}),
    ));
    e
}

type Answer = Result<(u16, Arc<Value>), ApiError>;

fn ns_of(t: &Target) -> &str {
    t.ns.as_deref().unwrap_or("")
}

fn get(k: &FakeKube, t: &Target, name: &str) -> Answer {
    if t.sub.as_deref().is_some_and(|s| s != "status") {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    k.get_arc(&t.gvr, ns_of(t), name)
        .map(|v| (200, v))
        .ok_or_else(|| ApiError::not_found(&t.gvr, name))
}

fn selectors(q: &HashMap<String, String>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

/// A list, serialized straight from the shared objects (no copies).
fn list(k: &FakeKube, t: &Target, q: &HashMap<String, String>) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(q)?;
    let (items, rv, gvr) = {
        let s = lock(&k.inner.store);
        (
            s.list(&t.gvr, t.ns.as_deref(), &labels, &fields),
            s.resource_version(),
            s.resolve(&t.gvr.group, &t.gvr.version, &t.gvr.resource),
        )
    };
    let head = json!({
        "kind": format!("{}List", gvr.kind),
        "apiVersion": gvr.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
    });
    let mut out = serde_json::to_vec(&head).unwrap_or_default();
    out.pop(); // the closing brace
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if serde_json::to_writer(&mut out, &**item).is_err() {
            out.extend_from_slice(b"null");
        }
    }
    out.extend_from_slice(b"]}");
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response())
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
    })
}

fn create(k: &FakeKube, t: &Target, body: &[u8]) -> Answer {
    let obj = parse_body(body)?;
    let created = k.create_arc(&t.gvr, ns_of(t), obj)?;
    Ok((201, created))
}

fn replace(
    k: &FakeKube,
    t: &Target,
    name: &str,
    sub: Option<&str>,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Answer {
    let obj = parse_body(body)?;
    let manager = q.get("fieldManager").map_or("unknown", String::as_str);
    let ns = ns_of(t);
    let v = k.apply(|s| {
        let old = s.get(&t.gvr, ns, name);
        let v = s.update(&t.gvr, ns, name, sub, true, |_| Ok(obj))?;
        s.note_fields(&t.gvr, ns, name, old.as_deref(), None, manager);
        Ok::<_, ApiError>(v)
    })?;
    Ok((200, v))
}

/// Applies a JSON patch like the API server (whose library lets a `test` of `null` pass on a
/// missing path, which kube-runtime's finalizer helper relies on).
fn json_patch(doc: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: json_patch::Patch = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as a JSON patch: {e}"
        ))
    })?;
    let mut doc = doc.clone();
    for op in &patch.0 {
        if let json_patch::PatchOperation::Test(test) = op
            && test.value.is_null()
        {
            match doc.pointer(test.path.as_str()) {
                None | Some(Value::Null) => continue,
                Some(_) => {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "the server rejected our request due to an error in our request: testing value {} failed: test failed",
                            test.path.as_str()
                        ),
                    ));
                }
            }
        }
        json_patch::patch(&mut doc, std::slice::from_ref(op)).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {e}"),
            )
        })?;
    }
    Ok(doc)
}

#[allow(clippy::too_many_arguments)]
fn patch(
    k: &FakeKube,
    t: &Target,
    name: &str,
    sub: Option<&str>,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Answer {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let ns = ns_of(t);
    let manager = q.get("fieldManager").map_or("unknown", String::as_str);
    match ct.as_str() {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            let p = parse_body(body)?;
            let v = k.apply(|s| {
                let old = s.get(&t.gvr, ns, name);
                let v = s.update(&t.gvr, ns, name, sub, true, |cur| {
                    let mut doc = cur.clone();
                    json_patch::merge(&mut doc, &p);
                    Ok(doc)
                })?;
                s.note_fields(&t.gvr, ns, name, old.as_deref(), None, manager);
                Ok::<_, ApiError>(v)
            })?;
            Ok((200, v))
        }
        "application/json-patch+json" => {
            let v = k.apply(|s| {
                let old = s.get(&t.gvr, ns, name);
                let v = s.update(&t.gvr, ns, name, sub, true, |cur| json_patch(cur, body))?;
                s.note_fields(&t.gvr, ns, name, old.as_deref(), None, manager);
                Ok::<_, ApiError>(v)
            })?;
            Ok((200, v))
        }
        "application/apply-patch+yaml" => {
            if q.get("fieldManager").is_none_or(String::is_empty) {
                return Err(ApiError::bad_request(
                    "PATCH requests of type application/apply-patch+yaml require a fieldManager",
                ));
            }
            let p = serde_json::from_slice::<Value>(body).map_err(|e| {
                ApiError::bad_request(format!("error decoding YAML: the fake API server accepts apply bodies as JSON only: {e}"))
            })?;
            let force = flag(q, "force");
            let exists = k.get_arc(&t.gvr, ns, name).is_some();
            if !exists && sub.is_none() {
                let mut obj = p.clone();
                crate::util::obj_mut(crate::util::child_mut(&mut obj, "metadata"))
                    .insert("name".into(), Value::String(name.to_string()));
                let created = k.create_arc(&t.gvr, ns, obj)?;
                k.apply(|s| s.note_fields(&t.gvr, ns, name, None, Some(&p), manager));
                return Ok((201, created));
            }
            let v = k.apply(|s| {
                s.check_apply(&t.gvr, ns, name, &p, manager, force)?;
                let v = s.update(&t.gvr, ns, name, sub, true, |cur| {
                    let mut doc = cur.clone();
                    json_patch::merge(&mut doc, &p);
                    Ok(doc)
                })?;
                s.note_fields(&t.gvr, ns, name, None, Some(&p), manager);
                Ok::<_, ApiError>(v)
            })?;
            Ok((200, v))
        }
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
            ),
        )),
    }
}

fn delete_opts(q: &HashMap<String, String>, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let mut opts = DeleteOpts::default();
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        parse_body(body)?
    };
    let policy = q
        .get("propagationPolicy")
        .map(String::as_str)
        .or_else(|| str_at(&body, "/propagationPolicy"));
    opts.propagation = match policy {
        None => match body.get("orphanDependents").and_then(Value::as_bool) {
            Some(true) => Some(Propagation::Orphan),
            Some(false) => Some(Propagation::Background),
            None => None,
        },
        Some("Orphan") => Some(Propagation::Orphan),
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    };
    opts.uid = str_at(&body, "/preconditions/uid").map(str::to_string);
    opts.resource_version = str_at(&body, "/preconditions/resourceVersion").map(str::to_string);
    Ok(opts)
}

/// Whether a DELETE that removed the object answers with the object (pods, custom resources)
/// or with a `Success` Status (most built-in resources), like the real server.
fn returns_deleted_object(gvr: &Gvr) -> bool {
    *gvr == gvr::PODS || (gvr.group.contains('.') && !gvr.group.ends_with(".k8s.io"))
}

fn delete(
    k: &FakeKube,
    t: &Target,
    name: &str,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Answer {
    let opts = delete_opts(q, body)?;
    match k.apply(|s| s.delete(&t.gvr, ns_of(t), name, &opts))? {
        Deleted::Pending(v) => Ok((202, v)),
        Deleted::Gone(v) if returns_deleted_object(&t.gvr) => Ok((200, v)),
        Deleted::Gone(v) => Ok((
            200,
            Arc::new(json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": t.gvr.group, "kind": t.gvr.resource,
                            "uid": str_at(&v, "/metadata/uid").unwrap_or("")},
            })),
        )),
    }
}

fn delete_collection(k: &FakeKube, t: &Target, q: &HashMap<String, String>, body: &[u8]) -> Answer {
    let opts = delete_opts(q, body)?;
    let (labels, fields) = selectors(q)?;
    let items = k.apply(|s| {
        let names: Vec<(String, String)> = s
            .list(&t.gvr, t.ns.as_deref(), &labels, &fields)
            .iter()
            .map(|v| {
                (
                    str_at(v, "/metadata/namespace").unwrap_or("").to_string(),
                    str_at(v, "/metadata/name").unwrap_or("").to_string(),
                )
            })
            .collect();
        names
            .into_iter()
            .filter_map(|(ns, name)| match s.delete(&t.gvr, &ns, &name, &opts) {
                Ok(Deleted::Pending(v) | Deleted::Gone(v)) => Some((*v).clone()),
                Err(_) => None,
            })
            .collect::<Vec<_>>()
    });
    let rv = k.resource_version();
    Ok((
        200,
        Arc::new(json!({
            "kind": format!("{}List", t.gvr.kind), "apiVersion": t.gvr.api_version(),
            "metadata": {"resourceVersion": rv.to_string()}, "items": items,
        })),
    ))
}

/// Decrements the open-watch count when a watch stream is dropped.
struct WatchGuard(Arc<Inner>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

struct WatchState {
    k: FakeKube,
    gvr: Gvr,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    initial: std::vec::IntoIter<Arc<Event>>,
    /// `Some(rv)`: after the initial events, a bookmark at `rv` marks their end
    /// (`sendInitialEvents=true`).
    initial_end_bookmark: Option<u64>,
    rx: broadcast::Receiver<Arc<Event>>,
    epoch: tokio::sync::watch::Receiver<u64>,
    deadline: tokio::time::Instant,
    bookmarks: bool,
    next_bookmark: tokio::time::Instant,
    _guard: WatchGuard,
}

impl WatchState {
    fn wanted(&self, ev: &Event) -> bool {
        self.ns
            .as_deref()
            .is_none_or(|ns| str_at(&ev.object, "/metadata/namespace").unwrap_or("") == ns)
            && self.labels.matches(&ev.object)
            && self.fields.matches(&ev.object)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut md = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let v = json!({"type": "BOOKMARK", "object": {
            "kind": self.gvr.kind, "apiVersion": self.gvr.api_version(), "metadata": md,
        }});
        let mut line = serde_json::to_vec(&v).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    /// The next chunk of the stream, or `None` to close it.
    async fn next(&mut self) -> Option<Bytes> {
        while let Some(ev) = self.initial.next() {
            if self.wanted(&ev) {
                return Some(Bytes::from(ev.line()));
            }
        }
        if let Some(rv) = self.initial_end_bookmark.take() {
            return Some(self.bookmark(rv, true));
        }
        loop {
            if self.k.inner.unavailable.load(Ordering::SeqCst) {
                return None;
            }
            tokio::select! {
                biased;
                changed = self.epoch.changed() => {
                    let _ = changed;
                    return None;
                }
                () = tokio::time::sleep_until(self.deadline) => return None,
                r = self.rx.recv() => match r {
                    Ok(ev) => {
                        if self.wanted(&ev) {
                            return Some(Bytes::from(ev.line()));
                        }
                    }
                    // Fell too far behind (or the server is gone): close, the client re-watches.
                    Err(_) => return None,
                },
                () = tokio::time::sleep_until(self.next_bookmark), if self.bookmarks => {
                    self.next_bookmark = tokio::time::Instant::now() + self.k.inner.bookmark_interval;
                    let rv = lock(&self.k.inner.store).bookmark_rv(&self.rx);
                    if let Some(rv) = rv {
                        return Some(self.bookmark(rv, false));
                    }
                }
            }
        }
    }
}

fn watch_stream(k: &FakeKube, t: &Target, q: &HashMap<String, String>) -> Response {
    let (labels, fields) = match selectors(q) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let from = match q.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => WatchFrom::Now,
        Some(s) => match s.parse::<u64>() {
            Ok(rv) => WatchFrom::After(rv),
            Err(_) => {
                return error_response(&ApiError::bad_request(format!(
                    "invalid resource version: {s:?}"
                )));
            }
        },
    };
    let send_initial = flag(q, "sendInitialEvents");
    let from = if send_initial { WatchFrom::Now } else { from };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(1800);
    let started = lock(&k.inner.store).watch(&t.gvr, t.ns.as_deref(), from);
    let (initial, rx, start_rv) = match started {
        Ok(x) => x,
        Err(floor) => {
            let asked = q.get("resourceVersion").cloned().unwrap_or_default();
            let status = ApiError::new(
                410,
                "Expired",
                format!("too old resource version: {asked} ({floor})"),
            )
            .to_status();
            let mut line =
                serde_json::to_vec(&json!({"type": "ERROR", "object": status})).unwrap_or_default();
            line.push(b'\n');
            return watch_response(Body::from(line));
        }
    };
    k.inner.open_watches.fetch_add(1, Ordering::SeqCst);
    let now = tokio::time::Instant::now();
    let state = WatchState {
        k: k.clone(),
        gvr: lock(&k.inner.store).resolve(&t.gvr.group, &t.gvr.version, &t.gvr.resource),
        ns: t.ns.clone(),
        labels,
        fields,
        initial: initial.into_iter(),
        initial_end_bookmark: send_initial.then_some(start_rv),
        rx,
        epoch: k.inner.epoch.subscribe(),
        deadline: now + Duration::from_secs(timeout),
        bookmarks: flag(q, "allowWatchBookmarks"),
        next_bookmark: now + k.inner.bookmark_interval,
        _guard: WatchGuard(k.inner.clone()),
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        let chunk = st.next().await?;
        Some((Ok::<_, Infallible>(chunk), st))
    });
    watch_response(Body::from_stream(stream))
}

fn watch_response(body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        body,
    )
        .into_response()
}

fn container_names(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn format_lines(lines: &[(DateTime<Utc>, String)], timestamps: bool) -> Bytes {
    let mut out = String::new();
    for (t, l) in lines {
        if timestamps {
            out.push_str(&rfc3339_nano(t));
            out.push(' ');
        }
        out.push_str(l);
        out.push('\n');
    }
    Bytes::from(out)
}

async fn logs(k: &FakeKube, t: &Target, q: &HashMap<String, String>) -> Response {
    let ns = ns_of(t).to_string();
    let Some(name) = t.name.clone() else {
        return error_response(&ApiError::bad_request("a pod name is required"));
    };
    let Some(pod) = k.get_arc(&gvr::PODS, &ns, &name) else {
        return error_response(&ApiError::not_found(&gvr::PODS, &name));
    };
    let names = container_names(&pod);
    let container = match q.get("container").filter(|c| !c.is_empty()) {
        Some(c) => {
            if !names.contains(c) {
                return error_response(&ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            c.clone()
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            return error_response(&ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    let status = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(container.as_str()))
        });
    let waiting = match status {
        None => Some("ContainerCreating".to_string()),
        Some(s) => s.pointer("/state/waiting").map(|w| {
            w.get("reason")
                .and_then(Value::as_str)
                .unwrap_or("ContainerCreating")
                .to_string()
        }),
    };
    if let Some(reason) = waiting {
        return error_response(&ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    let timestamps = flag(q, "timestamps");
    let follow = flag(q, "follow");
    let since: Option<DateTime<Utc>> = if let Some(s) = q.get("sinceTime") {
        match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                return error_response(&ApiError::bad_request(format!(
                    "sinceTime: invalid time {s:?}: {e}"
                )));
            }
        }
    } else {
        q.get("sinceSeconds")
            .and_then(|s| s.parse::<i64>().ok())
            .map(|s| Utc::now() - chrono::Duration::seconds(s))
    };
    let tail = q.get("tailLines").and_then(|s| s.parse::<usize>().ok());
    let limit_bytes = q.get("limitBytes").and_then(|s| s.parse::<usize>().ok());
    let buf = k.inner.logs.buf(&ns, &name, &container);
    let mut rx = buf.subscribe();
    rx.borrow_and_update();
    let (mut lines, ended) = buf.read_from(0);
    let next = lines.len();
    if let Some(since) = since {
        lines.retain(|(t, _)| *t >= since);
    }
    if let Some(n) = tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let first = format_lines(&lines, timestamps);
    let text =
        |b: Body| (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], b).into_response();
    if !follow {
        let mut b = first.to_vec();
        if let Some(n) = limit_bytes {
            b.truncate(n);
        }
        return text(Body::from(b));
    }
    let stream = futures::stream::unfold(
        (Some(first), ended, rx, buf, next),
        move |(mut pending, mut ended, mut rx, buf, mut next)| async move {
            loop {
                if let Some(chunk) = pending.take()
                    && !chunk.is_empty()
                {
                    return Some((Ok::<_, Infallible>(chunk), (None, ended, rx, buf, next)));
                }
                if ended {
                    return None;
                }
                if rx.changed().await.is_err() {
                    return None;
                }
                let (new, e) = buf.read_from(next);
                next += new.len();
                ended = e;
                pending = Some(format_lines(&new, timestamps));
            }
        },
    );
    text(Body::from_stream(stream))
}
