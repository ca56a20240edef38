//! A real `tuneflow serve` for black-box API tests: started on a free port against a world's
//! store, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use serde_json::{Value, json};

use super::World;

/// A running server.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub token: Option<String>,
    pub client: reqwest::Client,
}

impl Server {
    /// Starts `tuneflow serve --addr 127.0.0.1:0` in `world` with `args`, and waits for its
    /// address line.
    pub fn start(world: &World, args: &[&str]) -> Server {
        Server::spawn(world, "serve", "tuneflow serving on ", args)
    }

    /// Starts `tuneflow dashboard --addr 127.0.0.1:0` (read-only) in `world` with `args`,
    /// and waits for its address line.
    pub fn dashboard(world: &World, args: &[&str]) -> Server {
        Server::spawn(world, "dashboard", "tuneflow dashboard on ", args)
    }

    /// Starts `tuneflow COMMAND --addr 127.0.0.1:0 ARGS` and reads its URL from the first
    /// stdout line, which starts with `announce`.
    fn spawn(world: &World, command_name: &str, announce: &str, args: &[&str]) -> Server {
        let mut command = world.tuneflow();
        command
            .args([command_name, "--addr", "127.0.0.1:0"])
            .args(args)
            .env_remove("TUNEFLOW_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // TUNEFLOW_TEST_SERVER_LOGS=FILTER shows the servers' logs at that level (debugging).
        if let Some(filter) = std::env::var_os("TUNEFLOW_TEST_SERVER_LOGS") {
            command.env("TUNEFLOW_LOG", filter).stderr(Stdio::inherit());
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start tuneflow {command_name}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the address line");
        let url = line
            .trim()
            .strip_prefix(announce)
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim_end_matches('/')
            .to_string();
        let token = args
            .iter()
            .position(|a| *a == "--token")
            .map(|i| args[i + 1].to_string());
        Server {
            child,
            url,
            token,
            client: reqwest::Client::new(),
        }
    }

    /// Kills the server with SIGKILL, as a crash would, and waits for it.
    pub fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A request to `path` with the server's token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends a request and returns the status and the JSON body (Null when empty).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut builder = self.request(method, path);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        let response = builder.send().await.expect("send the request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("read the body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// Creates an experiment and asserts 201.
    pub async fn create(&self, document: Value) -> Value {
        let (status, body) = self.post("/api/v1/experiments", document).await;
        assert_eq!(status, 201, "create failed: {body}");
        body
    }

    /// Asks for `count` suggestions and asserts 200.
    pub async fn suggest(&self, experiment: &str, count: u32) -> Value {
        let (status, body) = self
            .post(
                &format!("/api/v1/experiments/{experiment}/suggestions"),
                json!({ "count": count }),
            )
            .await;
        assert_eq!(status, 200, "suggestions failed: {body}");
        body
    }

    /// Completes a trial with `metrics`, returning status and body.
    pub async fn complete(&self, experiment: &str, trial: &str, body: Value) -> (u16, Value) {
        self.post(
            &format!("/api/v1/experiments/{experiment}/trials/{trial}/complete"),
            body,
        )
        .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client-driven experiment document: minimize `loss` over `x` in [0, 1] and a categorical
/// `opt`, with `extra` merged into `spec`.
pub fn client_experiment(name: &str, extra: Value) -> Value {
    let mut document = json!({
        "apiVersion": "tuneflow.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "3"}]},
            "parameters": [
                {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
                {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"}},
                {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["adam", "sgd"]}}
            ]
        }
    });
    if let (Some(spec), Some(extra)) = (document["spec"].as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            spec.insert(key.clone(), value.clone());
        }
    }
    document
}
