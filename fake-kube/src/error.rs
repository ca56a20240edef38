//! Kubernetes `Status` failures, the shape every error answer of the fake takes.

use serde_json::{Value, json};

use crate::gvr::Gvr;

/// A failed request: the HTTP code, the `reason` and the message of a k8s `Status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code (`404`, `409`, ...).
    pub code: u16,
    /// The `reason` field: `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...
    pub reason: String,
    /// A message shaped like the real API server's.
    pub message: String,
    /// `details` of the Status, when it names an object (boxed: errors stay small).
    pub details: Option<Box<Value>>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

fn details(gvr: &Gvr, name: &str) -> Value {
    json!({"name": name, "group": gvr.group, "kind": gvr.resource})
}

impl ApiError {
    /// A failure with no details.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
        }
    }

    /// 404 `NotFound`: `jobs.batch "x" not found`.
    pub fn not_found(gvr: &Gvr, name: &str) -> Self {
        ApiError {
            details: Some(Box::new(details(gvr, name))),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", gvr.group_resource()),
            )
        }
    }

    /// 409 `AlreadyExists`.
    pub fn already_exists(gvr: &Gvr, name: &str) -> Self {
        ApiError {
            details: Some(Box::new(details(gvr, name))),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", gvr.group_resource()),
            )
        }
    }

    /// 409 `Conflict` for a stale `resourceVersion` or a failed precondition.
    pub fn conflict(gvr: &Gvr, name: &str, why: &str) -> Self {
        ApiError {
            details: Some(Box::new(details(gvr, name))),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": {why}",
                    gvr.group_resource()
                ),
            )
        }
    }

    /// 422 `Invalid`: `Job.batch "x" is invalid: field: what`.
    pub fn invalid(gvr: &Gvr, name: &str, causes: &str) -> Self {
        let kind = if gvr.group.is_empty() {
            gvr.kind.to_string()
        } else {
            format!("{}.{}", gvr.kind, gvr.group)
        };
        ApiError {
            details: Some(Box::new(details(gvr, name))),
            ..Self::new(
                422,
                "Invalid",
                format!("{kind} \"{name}\" is invalid: {causes}"),
            )
        }
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// The `Status` object the server answers with.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let (Some(d), Some(map)) = (&self.details, status.as_object_mut()) {
            map.insert("details".into(), (**d).clone());
        }
        status
    }
}
