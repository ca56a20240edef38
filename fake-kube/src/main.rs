//! `fake-kube`: the fake Kubernetes API server as a process, for benchmarks and manual runs.
//!
//! ```text
//! fake-kube [--port P] [--simulate-jobs] [--line-delay-ms N] [--lines N] [--kubeconfig PATH]
//! ```
//!
//! Prints `fake-kube listening on http://127.0.0.1:PORT` once it serves. With
//! `--simulate-jobs`, every Job's first container prints `--lines` lines `loss=<value>`
//! (`--line-delay-ms` apart; values derived from the Job's name) and succeeds. With
//! `--kubeconfig`, writes a kubeconfig for the server (no auth, namespace `default`).

use std::io::Write;
use std::time::Duration;

use tuneflow_fake_kube::{FakeKube, JobScript};

struct Args {
    port: u16,
    simulate_jobs: bool,
    line_delay_ms: u64,
    lines: usize,
    kubeconfig: Option<String>,
}

const USAGE: &str = "usage: fake-kube [--port P] [--simulate-jobs] [--line-delay-ms N] [--lines N] [--kubeconfig PATH]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 0,
        simulate_jobs: false,
        line_delay_ms: 10,
        lines: 5,
        kubeconfig: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--port" => {
                args.port = value("--port")?
                    .parse()
                    .map_err(|e| format!("--port: {e}"))?
            }
            "--simulate-jobs" => args.simulate_jobs = true,
            "--line-delay-ms" => {
                args.line_delay_ms = value("--line-delay-ms")?
                    .parse()
                    .map_err(|e| format!("--line-delay-ms: {e}"))?;
            }
            "--lines" => {
                args.lines = value("--lines")?
                    .parse()
                    .map_err(|e| format!("--lines: {e}"))?
            }
            "--kubeconfig" => args.kubeconfig = Some(value("--kubeconfig")?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake-kube\n  cluster:\n    server: {url}\ncontexts:\n- name: fake-kube\n  context:\n    cluster: fake-kube\n    user: fake-kube\n    namespace: default\ncurrent-context: fake-kube\nusers:\n- name: fake-kube\n  user: {{}}\n"
    )
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let kube = match FakeKube::builder().port(args.port).start().await {
        Ok(k) => k,
        Err(e) => {
            eprintln!("fake-kube: cannot bind 127.0.0.1:{}: {e}", args.port);
            return std::process::ExitCode::FAILURE;
        }
    };
    if args.simulate_jobs {
        let (n, delay) = (args.lines, Duration::from_millis(args.line_delay_ms));
        kube.simulate_jobs(move |job| {
            let name = job
                .pointer("/metadata/name")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            JobScript::losses(name, n, delay)
        });
    }
    if let Some(path) = &args.kubeconfig
        && let Err(e) = std::fs::write(path, kubeconfig(&kube.url()))
    {
        eprintln!("fake-kube: cannot write kubeconfig {path}: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "fake-kube listening on {}", kube.url());
    let _ = out.flush();
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}
