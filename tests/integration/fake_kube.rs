//! A fake Kubernetes API for the autoscaler tests: a real HTTP(S) server on
//! 127.0.0.1 serving one Deployment's `scale` subresource at its real path
//! (`/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale`), with state (a
//! PATCH is seen by the next GET), a bearer token to check, failures on
//! demand, and a record of every request.
//!
//! HTTPS uses a CA and server certificate generated per fake (rcgen); the
//! CA and token are written to files, as a pod gets them mounted.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

use crate::support::unique;

/// One request as the fake saw it, with the status it answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

struct State {
    namespace: String,
    name: String,
    replicas: u32,
    /// Expected bearer token; None accepts requests without one (as
    /// `kubectl proxy` does).
    token: Option<String>,
    /// Injected answers: (method or any, status), used once each.
    failures: VecDeque<(Option<String>, u16)>,
    requests: Vec<Recorded>,
    /// The Deployment's pods: (name, ready).
    pods: Vec<(String, bool)>,
}

/// The fake API server; stopped on drop.
pub struct FakeKube {
    /// `https://127.0.0.1:<port>` or `http://...`.
    pub url: String,
    pub dir: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    port: u16,
    thread: Option<JoinHandle<()>>,
}

impl FakeKube {
    /// An HTTPS API server for deployment `name` in `namespace`, with its own
    /// CA and the bearer token `token`.
    pub fn https(namespace: &str, name: &str, replicas: u32, token: &str) -> FakeKube {
        let dir = std::env::temp_dir().join(unique("fake-kube-"));
        std::fs::create_dir_all(&dir).unwrap();
        let (tls, ca_pem) = server_tls();
        let ca_file = dir.join("ca.crt");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let token_file = dir.join("token");
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        let mut fake = FakeKube::start(dir, namespace, name, replicas, Some(token), Some(tls));
        fake.ca_file = Some(ca_file);
        fake.token_file = Some(token_file);
        fake
    }

    /// A plain HTTP API server that wants no token, like `kubectl proxy`.
    pub fn http(namespace: &str, name: &str, replicas: u32) -> FakeKube {
        let dir = std::env::temp_dir().join(unique("fake-kube-"));
        std::fs::create_dir_all(&dir).unwrap();
        FakeKube::start(dir, namespace, name, replicas, None, None)
    }

    fn start(
        dir: PathBuf,
        namespace: &str,
        name: &str,
        replicas: u32,
        token: Option<&str>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> FakeKube {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let state = Arc::new(Mutex::new(State {
            namespace: namespace.into(),
            name: name.into(),
            replicas,
            token: token.map(String::from),
            failures: VecDeque::new(),
            requests: Vec::new(),
            pods: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (Arc::clone(&state), Arc::clone(&stop));
            std::thread::spawn(move || accept_loop(listener, tls, state, stop))
        };
        FakeKube {
            url: format!("{scheme}://127.0.0.1:{port}"),
            dir,
            ca_file: None,
            token_file: None,
            state,
            stop,
            port,
            thread: Some(thread),
        }
    }

    /// The Deployment's pods as `GET .../pods` lists them: (name, ready).
    pub fn set_pods(&self, pods: &[(&str, bool)]) {
        self.state.lock().unwrap().pods = pods.iter().map(|(n, r)| (n.to_string(), *r)).collect();
    }

    pub fn replicas(&self) -> u32 {
        self.state.lock().unwrap().replicas
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Replicas of every scale PATCH the fake accepted, in order.
    pub fn patches(&self) -> Vec<u32> {
        self.requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.status == 200 && r.path.ends_with("/scale"))
            .map(|r| serde_json::from_str::<Value>(&r.body).unwrap()["spec"]["replicas"].as_u64().unwrap() as u32)
            .collect()
    }

    /// Every accepted request as `pod=<name> cost=<n>` (deletion costs) or
    /// `scale=<n>`, in order.
    pub fn patch_log(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.status == 200)
            .map(|r| {
                let body: Value = serde_json::from_str(&r.body).unwrap();
                match r.path.rsplit_once("/pods/") {
                    Some((_, pod)) => format!(
                        "pod={pod} cost={}",
                        body["metadata"]["annotations"]["controller.kubernetes.io/pod-deletion-cost"].as_str().unwrap()
                    ),
                    None => format!("scale={}", body["spec"]["replicas"]),
                }
            })
            .collect()
    }

    /// Answers the next `method` request (any method if None) with `status`.
    pub fn fail_next(&self, method: Option<&str>, status: u16) {
        self.state.lock().unwrap().failures.push_back((method.map(String::from), status));
    }

    /// Rotates the token: the API accepts only `token` from now on, and the
    /// token file holds it, as a projected ServiceAccount token is renewed.
    pub fn rotate_token(&self, token: &str) {
        let mut state = self.state.lock().unwrap();
        std::fs::write(self.token_file.as_ref().expect("an HTTPS fake has a token file"), token).unwrap();
        state.token = Some(token.into());
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA, and a certificate for 127.0.0.1 signed by it.
fn server_tls() -> (Arc<rustls::ServerConfig>, String) {
    let ca = crate::certs::Ca::new("fake-kube-ca");
    let (cert, key) = ca.issue(&["127.0.0.1", "localhost"]);
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
    (Arc::new(config), ca.pem())
}

/// One request per connection (answers carry `Connection: close`).
fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        match &tls {
            Some(config) => {
                let Ok(conn) = rustls::ServerConnection::new(Arc::clone(config)) else { continue };
                serve(rustls::StreamOwned::new(conn, stream), &state);
            }
            None => serve(stream, &state),
        }
    }
}

fn serve<S: Read + Write>(stream: S, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return; // a TLS handshake that failed, or the wake-up connection
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.push((name.trim().to_lowercase(), value.trim().to_string()));
        }
    }
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut request = Recorded { method, path, headers, body: String::from_utf8_lossy(&body).into(), status: 0 };
    let (status, reply) = answer(&mut state.lock().unwrap(), &mut request);
    let reply = reply.to_string();
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reason(status),
        reply.len()
    );
    let _ = stream.flush();
}

/// The API server's answer; records the request with its status.
fn answer(state: &mut State, request: &mut Recorded) -> (u16, Value) {
    let (status, body) = decide(state, request);
    request.status = status;
    state.requests.push(request.clone());
    (status, body)
}

fn decide(state: &mut State, request: &Recorded) -> (u16, Value) {
    let resource = format!("deployments.apps {:?}", state.name);
    let injected = state.failures.iter().position(|(m, _)| m.as_deref().is_none_or(|m| m == request.method));
    if let Some(i) = injected {
        let (_, status) = state.failures.remove(i).unwrap();
        let message = match status {
            401 => "Unauthorized".to_string(),
            403 => format!(
                "{resource} is forbidden: User \"system:serviceaccount:{ns}:chat-autoscaler\" cannot {verb} resource \
                 \"deployments/scale\" in API group \"apps\" in the namespace \"{ns}\"",
                ns = state.namespace,
                verb = request.method.to_lowercase()
            ),
            404 => format!("{resource} not found"),
            _ => "etcdserver: request timed out".to_string(),
        };
        return (status, k8s_status(status, &message));
    }
    if let Some(token) = &state.token {
        if request.header("authorization") != Some(&format!("Bearer {token}")) {
            return (401, k8s_status(401, "Unauthorized"));
        }
    }
    let pods_list = format!("/api/v1/namespaces/{}/pods?labelSelector=app%3D{}", state.namespace, state.name);
    if request.path == pods_list && request.method == "GET" {
        return (200, pod_list(state));
    }
    if request.path == format!("/apis/apps/v1/namespaces/{}/deployments/{}", state.namespace, state.name)
        && request.method == "GET"
    {
        return (200, deployment(state));
    }
    let pods_prefix = format!("/api/v1/namespaces/{}/pods/", state.namespace);
    if let Some(pod) = request.path.strip_prefix(&pods_prefix) {
        let patch: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
        let cost = &patch["metadata"]["annotations"]["controller.kubernetes.io/pod-deletion-cost"];
        return match (request.method.as_str(), request.header("content-type"), cost.as_str()) {
            ("PATCH", Some("application/merge-patch+json"), Some(_)) => {
                (200, json!({"kind": "Pod", "metadata": {"name": pod}}))
            }
            ("PATCH", _, _) => (422, k8s_status(422, "invalid patch")),
            _ => (405, k8s_status(405, "method not allowed")),
        };
    }
    let scale_path = format!("/apis/apps/v1/namespaces/{}/deployments/{}/scale", state.namespace, state.name);
    if request.path != scale_path {
        return (404, k8s_status(404, "the server could not find the requested resource"));
    }
    match request.method.as_str() {
        "GET" => (200, scale(state)),
        "PATCH" => {
            if request.header("content-type") != Some("application/merge-patch+json") {
                return (415, k8s_status(415, "the body of the request was in an unknown format"));
            }
            let patch: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
            match patch["spec"]["replicas"].as_u64() {
                Some(n) if patch.as_object().is_some_and(|o| o.len() == 1) => {
                    state.replicas = n as u32;
                    (200, scale(state))
                }
                _ => (422, k8s_status(422, "invalid patch")),
            }
        }
        _ => (405, k8s_status(405, "method not allowed")),
    }
}

fn scale(state: &State) -> Value {
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": { "name": state.name, "namespace": state.namespace },
        "spec": { "replicas": state.replicas },
        "status": { "replicas": state.replicas, "selector": format!("app={}", state.name) }
    })
}

fn deployment(state: &State) -> Value {
    let ready = state.pods.iter().filter(|(_, r)| *r).count();
    json!({
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": { "name": state.name, "namespace": state.namespace },
        "spec": { "replicas": state.replicas, "selector": { "matchLabels": { "app": state.name } } },
        "status": {
            "replicas": state.pods.len(), "readyReplicas": ready, "availableReplicas": ready,
            "updatedReplicas": state.pods.len()
        }
    })
}

fn pod_list(state: &State) -> Value {
    let items: Vec<Value> = state
        .pods
        .iter()
        .enumerate()
        .map(|(i, (name, ready))| {
            json!({
                "metadata": { "name": name, "namespace": state.namespace, "creationTimestamp": "2026-11-26T10:00:00Z",
                              "labels": { "app": state.name } },
                "spec": { "nodeName": format!("node-{}", i % 2) },
                "status": {
                    "phase": "Running", "podIP": format!("10.0.0.{}", i + 10),
                    "conditions": [{ "type": "Ready", "status": if *ready { "True" } else { "False" } }],
                    "containerStatuses": [{ "name": "chat-server", "restartCount": i }]
                }
            })
        })
        .collect();
    json!({ "kind": "PodList", "apiVersion": "v1", "items": items })
}

fn k8s_status(code: u16, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason(code).replace(' ', ""), "code": code
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        _ => "Internal Server Error",
    }
}
