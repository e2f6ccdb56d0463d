//! The Kubernetes API calls of the autoscaler, through ureq: read and set
//! the replicas of one Deployment's `scale` subresource, and mark the chat
//! pods with their deletion cost before a scale-down.
//!
//! `GET  /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale`
//! `PATCH` on the same path, `Content-Type: application/merge-patch+json`,
//! body `{"spec":{"replicas":N}}`.
//! `PATCH /api/v1/namespaces/{ns}/pods/{pod}`, merge patch of the
//! annotation `controller.kubernetes.io/pod-deletion-cost`.
//!
//! Read-only, for chat_dashboard: `GET .../deployments/{name}` (replicas
//! and their states, the pod selector) and `GET /api/v1/namespaces/{ns}/pods
//! ?labelSelector=...` (each chat pod).
//!
//! The bearer token is read from its file for every request: projected
//! ServiceAccount tokens rotate while the pod runs.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::RequestBuilder;

use crate::config::KubeTarget;

/// Longest a call may take, connect to last byte.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Most of an error body kept for the log.
const ERROR_BODY_LIMIT: usize = 300;

/// The verbs the autoscaler uses, as RBAC names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Patch,
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verb::Get => "get",
            Verb::Patch => "patch",
        })
    }
}

/// The Deployment whose scale is read and set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRef {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for DeploymentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deployments/scale {:?} in namespace {:?}", self.name, self.namespace)
    }
}

/// Why a call to the Kubernetes API failed.
#[derive(Debug)]
pub enum ScaleError {
    /// The CA file cannot be read or holds no certificate (at start).
    CaFile { path: PathBuf, source: io::Error },
    /// The token file cannot be read.
    TokenFile { path: PathBuf, source: io::Error },
    /// 401: the API server does not accept the token.
    Unauthorized { verb: Verb, target: DeploymentRef, token_file: Option<PathBuf> },
    /// 403: the ServiceAccount lacks the verb on `deployments/scale`.
    Forbidden { verb: Verb, target: DeploymentRef, message: String },
    /// 404: no such Deployment (or namespace).
    NotFound { verb: Verb, target: DeploymentRef },
    /// Any other status: 5xx, 409, 422...
    Status { verb: Verb, target: DeploymentRef, status: u16, message: String },
    /// Connection refused, TLS failure, timeout.
    Network { verb: Verb, source: ureq::Error },
    /// A 2xx answer that is not a Scale.
    BadReply { verb: Verb, source: ureq::Error },
}

impl fmt::Display for ScaleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScaleError::CaFile { path, source } => {
                write!(f, "cannot read CA certificates from {}: {source}", path.display())
            }
            ScaleError::TokenFile { path, source } => {
                write!(f, "cannot read the bearer token from {}: {source}", path.display())
            }
            ScaleError::Unauthorized { verb, target, token_file } => {
                let token = token_file.as_ref().map_or("no token (set KUBE_TOKEN_FILE)".to_string(), |p| {
                    format!("the token from {} (expired or not a ServiceAccount token?)", p.display())
                });
                write!(f, "401 Unauthorized: cannot {verb} {target}: the API server rejected {token}")
            }
            ScaleError::Forbidden { verb, target, message } => write!(
                f,
                "403 Forbidden: the ServiceAccount may not {verb} {target}; \
                 grant verbs get and patch on deployments/scale in a Role bound to it ({message})"
            ),
            ScaleError::NotFound { verb, target } => write!(
                f,
                "404 Not Found: cannot {verb} {target}: no deployment {:?} in namespace {:?} \
                 (check NAMESPACE and DEPLOYMENT_NAME)",
                target.name, target.namespace
            ),
            ScaleError::Status { verb, target, status, message } => {
                write!(f, "{verb} {target} answered {status}: {message}")
            }
            ScaleError::Network { verb, source } => write!(f, "cannot {verb} deployments/scale: {source}"),
            ScaleError::BadReply { verb, source } => {
                write!(f, "{verb} deployments/scale answered something that is not a Scale: {source}")
            }
        }
    }
}

impl std::error::Error for ScaleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScaleError::CaFile { source, .. } | ScaleError::TokenFile { source, .. } => Some(source),
            ScaleError::Network { source, .. } | ScaleError::BadReply { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The part of `autoscaling/v1` Scale the autoscaler reads.
#[derive(Deserialize)]
struct Scale {
    #[serde(default)]
    spec: ScaleSpec,
}

#[derive(Deserialize, Default)]
struct ScaleSpec {
    /// Absent when 0 (`omitempty`).
    #[serde(default)]
    replicas: u32,
}

/// The `message` of a Kubernetes `Status` body, or the start of the body.
#[derive(Deserialize)]
struct Status {
    message: String,
}

/// A Deployment as the dashboard shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeploymentStatus {
    pub name: String,
    pub desired: u32,
    pub ready: u32,
    pub available: u32,
    pub updated: u32,
    /// `spec.selector.matchLabels` as a label selector (`a=b,c=d`).
    #[serde(skip)]
    pub selector: String,
}

/// A pod as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PodStatus {
    pub name: String,
    pub phase: String,
    pub ready: bool,
    pub restarts: u32,
    /// `metadata.creationTimestamp` (RFC 3339).
    pub created: String,
    pub node: String,
    pub ip: String,
}

/// The annotation the ReplicaSet controller reads to pick the pods it
/// removes first (the lowest cost).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// A client for one Deployment's scale.
pub struct KubeApi {
    agent: ureq::Agent,
    scale_url: String,
    /// `.../api/v1/namespaces/{ns}/pods/`
    pods_url: String,
    token_file: Option<PathBuf>,
    target: DeploymentRef,
}

impl KubeApi {
    /// Builds the client; reads the CA file now, the token at every call.
    pub fn new(kube: &KubeTarget, target: DeploymentRef) -> Result<Self, ScaleError> {
        let mut tls = TlsConfig::builder();
        if let Some(path) = &kube.ca_file {
            tls = tls.root_certs(RootCerts::Specific(Arc::new(read_ca_file(path)?)));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(CALL_TIMEOUT))
            .user_agent(concat!("chat_autoscaler/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build();
        let scale_url = format!(
            "{}/apis/apps/v1/namespaces/{}/deployments/{}/scale",
            kube.url.trim_end_matches('/'),
            target.namespace,
            target.name
        );
        let pods_url = format!("{}/api/v1/namespaces/{}/pods/", kube.url.trim_end_matches('/'), target.namespace);
        Ok(KubeApi { agent: config.new_agent(), scale_url, pods_url, token_file: kube.token_file.clone(), target })
    }

    /// The Deployment's replicas (`spec.replicas` of its scale).
    pub fn replicas(&self) -> Result<u32, ScaleError> {
        let request = self.authorized(self.agent.get(&self.scale_url))?;
        self.read_scale(Verb::Get, request.call())
    }

    /// Sets the replicas; returns them as the API server now has them.
    pub fn set_replicas(&self, replicas: u32) -> Result<u32, ScaleError> {
        let body = serde_json::json!({ "spec": { "replicas": replicas } }).to_string();
        let request = self.authorized(self.agent.patch(&self.scale_url))?;
        let request = request.header("Content-Type", "application/merge-patch+json");
        self.read_scale(Verb::Patch, request.send(body))
    }

    /// Sets a pod's deletion cost. A pod that is gone already is fine; an
    /// error is one line naming the call and, for 403, the fix.
    pub fn set_deletion_cost(&self, pod: &str, cost: u64) -> Result<(), String> {
        let body = serde_json::json!({ "metadata": { "annotations": { POD_DELETION_COST: cost.to_string() } } });
        let call = format!("patch pods/{pod} in namespace {:?}", self.target.namespace);
        let request =
            self.authorized(self.agent.patch(format!("{}{pod}", self.pods_url))).map_err(|e| e.to_string())?;
        let request = request.header("Content-Type", "application/merge-patch+json");
        let mut reply = request.send(body.to_string()).map_err(|e| format!("{call}: {e}"))?;
        match reply.status().as_u16() {
            200..=299 | 404 => Ok(()),
            403 => Err(format!(
                "{call}: 403 Forbidden: {}; grant verb patch on pods in a Role bound to the ServiceAccount",
                status_message(reply.body_mut())
            )),
            status => Err(format!("{call}: answered {status}: {}", status_message(reply.body_mut()))),
        }
    }

    /// The Deployment's replicas (desired, ready, available, updated) and
    /// pod selector.
    pub fn deployment_status(&self) -> Result<DeploymentStatus, String> {
        let url = self.scale_url.trim_end_matches("/scale").to_string();
        let v = self.get_json(&url, &format!("get deployments/{}", self.target.name))?;
        let num = |p: &str| v.pointer(p).and_then(|n| n.as_u64()).unwrap_or(0) as u32;
        let selector = v
            .pointer("/spec/selector/matchLabels")
            .and_then(|m| m.as_object())
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>())
            .unwrap_or_default()
            .join(",");
        Ok(DeploymentStatus {
            name: self.target.name.clone(),
            desired: num("/spec/replicas"),
            ready: num("/status/readyReplicas"),
            available: num("/status/availableReplicas"),
            updated: num("/status/updatedReplicas"),
            selector,
        })
    }

    /// The pods `selector` (`a=b,c=d`) picks, by name.
    pub fn pods(&self, selector: &str) -> Result<Vec<PodStatus>, String> {
        let url = format!("{}?labelSelector={}", self.pods_url.trim_end_matches('/'), url_encode(selector));
        let v = self.get_json(&url, "list pods")?;
        let text = |item: &serde_json::Value, p: &str| {
            item.pointer(p).and_then(|s| s.as_str()).unwrap_or_default().to_string()
        };
        let mut pods: Vec<PodStatus> = v
            .pointer("/items")
            .and_then(|i| i.as_array())
            .map(|items| {
                items
                    .iter()
                    .map(|item| {
                        let statuses = item.pointer("/status/containerStatuses").and_then(|c| c.as_array());
                        let ready = item
                            .pointer("/status/conditions")
                            .and_then(|c| c.as_array())
                            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
                        PodStatus {
                            name: text(item, "/metadata/name"),
                            phase: text(item, "/status/phase"),
                            ready,
                            restarts: statuses
                                .map(|s| s.iter().filter_map(|c| c["restartCount"].as_u64()).sum::<u64>() as u32)
                                .unwrap_or(0),
                            created: text(item, "/metadata/creationTimestamp"),
                            node: text(item, "/spec/nodeName"),
                            ip: text(item, "/status/podIP"),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(pods)
    }

    /// A GET whose answer is JSON; the error is one line naming the call.
    fn get_json(&self, url: &str, call: &str) -> Result<serde_json::Value, String> {
        let request = self.authorized(self.agent.get(url)).map_err(|e| e.to_string())?;
        let mut reply = request.call().map_err(|e| format!("{call}: {e}"))?;
        match reply.status().as_u16() {
            200..=299 => reply.body_mut().read_json().map_err(|e| format!("{call}: not JSON: {e}")),
            403 => Err(format!(
                "{call}: 403 Forbidden: {}; grant verbs get and list in a Role bound to the ServiceAccount",
                status_message(reply.body_mut())
            )),
            status => Err(format!("{call}: answered {status}: {}", status_message(reply.body_mut()))),
        }
    }

    /// Adds `Accept` and, with a token file, `Authorization: Bearer <token>`
    /// from the file as it is now.
    fn authorized<B>(&self, request: RequestBuilder<B>) -> Result<RequestBuilder<B>, ScaleError> {
        let request = request.header("Accept", "application/json");
        let Some(path) = &self.token_file else { return Ok(request) };
        let token =
            std::fs::read_to_string(path).map_err(|source| ScaleError::TokenFile { path: path.clone(), source })?;
        Ok(request.header("Authorization", format!("Bearer {}", token.trim())))
    }

    fn read_scale(
        &self,
        verb: Verb,
        reply: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<u32, ScaleError> {
        let mut reply = reply.map_err(|source| ScaleError::Network { verb, source })?;
        let status = reply.status().as_u16();
        let target = self.target.clone();
        match status {
            200..=299 => {
                let scale: Scale =
                    reply.body_mut().read_json().map_err(|source| ScaleError::BadReply { verb, source })?;
                Ok(scale.spec.replicas)
            }
            401 => Err(ScaleError::Unauthorized { verb, target, token_file: self.token_file.clone() }),
            403 => Err(ScaleError::Forbidden { verb, target, message: status_message(reply.body_mut()) }),
            404 => Err(ScaleError::NotFound { verb, target }),
            _ => Err(ScaleError::Status { verb, target, status, message: status_message(reply.body_mut()) }),
        }
    }
}

/// The message of an error answer: a `Status` object's `message`, or the
/// first bytes of the body.
fn status_message(body: &mut ureq::Body) -> String {
    let text = body.with_config().limit(64 * 1024).read_to_string().unwrap_or_default();
    let message = serde_json::from_str::<Status>(&text).map(|s| s.message).unwrap_or(text);
    let mut message = message.trim().replace('\n', " ");
    if message.len() > ERROR_BODY_LIMIT {
        let mut end = ERROR_BODY_LIMIT;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    message
}

/// A label selector in a query string (`=` and `,` escaped).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every certificate in a PEM file.
fn read_ca_file(path: &Path) -> Result<Vec<Certificate<'static>>, ScaleError> {
    let ca_error = |source| ScaleError::CaFile { path: path.to_path_buf(), source };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| ca_error(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    if certs.is_empty() {
        return Err(ca_error(io::Error::new(io::ErrorKind::InvalidData, "no CERTIFICATE in the file")));
    }
    Ok(certs.iter().map(|der| Certificate::from_der(der).to_owned()).collect())
}
