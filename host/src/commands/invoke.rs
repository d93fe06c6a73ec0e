//! `berth invoke <group>/<function>`: build and load one group and call one function directly,
//! without starting a server.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use berth_host::core::loader::TriggerSpec;
use berth_host::core::{CallError, FunctionEntry, HttpError};
use berth_host::runtime::Runtime;
use berth_plugin_api::{HttpRequestBuilder, Input};

use super::ConfigArg;

#[derive(Debug, clap::Args)]
pub struct Invoke {
    /// `group/function`, e.g. `hello/echo`.
    target: String,
    /// Request body (usually JSON).
    #[arg(long, short = 'd')]
    data: Option<String>,
    /// Request path, for routes with parameters (e.g. `/hello/world`); defaults to the route.
    #[arg(long)]
    path: Option<String>,
    /// HTTP method; defaults to the function's own.
    #[arg(long, short = 'X')]
    method: Option<String>,
    /// Extra request headers, `name: value`.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Deliver the event(s) of a JSON file instead of an HTTP request: a CloudEvent (structured
    /// mode), an S3 notification, an SQS batch, an EventBridge schedule, or any other JSON as a
    /// direct-invoke payload. Works for timer, queue, blob and invoke functions alike.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["data", "path", "method", "headers", "remote"])]
    event: Option<std::path::PathBuf>,
    /// Call a running host instead (`http://127.0.0.1:8080`): POSTs the data as an event to
    /// `/invoke/<group>/<function>`.
    #[arg(long)]
    remote: Option<String>,
    /// Bearer token for `--remote` calls from another machine (`server.invoke_token`).
    #[arg(long, env = "BERTH_INVOKE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(flatten)]
    config: ConfigArg,
}

impl Invoke {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if let Some(remote) = &self.remote {
            return self.run_remote(remote);
        }
        let config = self.config.load()?;
        berth_host::telemetry::init(if config.log == "info" { "warn" } else { &config.log });
        let (group_name, function) = self
            .target
            .split_once('/')
            .ok_or_else(|| anyhow!("`{}`: expected `group/function`, e.g. `hello/echo`", self.target))?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let config_file = self.config.config.display().to_string();
        rt.block_on(async {
            // The same install path as `berth up`: the group and the groups whose exports it
            // needs, in dependency order, with their services. No listener, no event triggers.
            let runtime = Runtime::new(config);
            let refused = runtime.load_groups(Some(group_name)).await.errors;
            let outcome =
                match runtime.dispatcher.get(group_name, function) {
                    Some(entry) if self.event.is_some() => self.deliver(&runtime, &entry).await,
                    Some(entry) => self.call(&entry).await,
                    None => match runtime.serving.get(group_name) {
                        Some(group) => {
                            let names: Vec<_> = group.manifest().functions.iter().map(|f| f.name.clone()).collect();
                            Err(anyhow!("the group has no function `{function}`; it has: {}", names.join(", ")))
                        }
                        None => match refused.into_iter().last() {
                            Some(e) => Err(anyhow::Error::new(e)
                                .context(format!("invoking {group_name}/{function} ({config_file})"))),
                            None => Err(anyhow!("group `{group_name}` did not load ({config_file})")),
                        },
                    },
                };
            runtime.stop_groups().await;
            outcome
        })
    }

    #[cfg(not(feature = "http-client"))]
    fn run_remote(&self, remote: &str) -> anyhow::Result<ExitCode> {
        bail!("`--remote {remote}`: this berth was built without the `http-client` feature; rebuild it with `--features http-client`")
    }

    #[cfg(feature = "http-client")]
    fn run_remote(&self, remote: &str) -> anyhow::Result<ExitCode> {
        let (group, function) = self
            .target
            .split_once('/')
            .ok_or_else(|| anyhow!("`{}`: expected `group/function`, e.g. `hello/echo`", self.target))?;
        let url = format!("{}/invoke/{group}/{function}", remote.trim_end_matches('/'));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut req = reqwest::Client::new().post(&url).body(self.data.clone().unwrap_or_default());
            req = req.header("content-type", "application/json");
            for h in &self.headers {
                let (k, v) = h.split_once(':').ok_or_else(|| anyhow!("header `{h}`: expected `name: value`"))?;
                req = req.header(k.trim(), v.trim());
            }
            if let Some(token) = &self.token {
                req = req.bearer_auth(token);
            }
            let res = req.send().await.with_context(|| format!("calling {url}; is the host running?"))?;
            let status = res.status();
            let body = res.bytes().await.with_context(|| format!("reading the answer of {url}"))?;
            std::io::stdout().write_all(&body)?;
            if !body.ends_with(b"\n") {
                println!();
            }
            if !status.is_success() {
                eprintln!("status {}", status.as_u16());
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        })
    }

    /// Delivers each event of `--event`'s file to the function, as its trigger would; prints
    /// each answer. Fails when any delivery failed.
    async fn deliver(&self, runtime: &Runtime, entry: &FunctionEntry) -> anyhow::Result<ExitCode> {
        let file = self.event.as_deref().expect("called with --event");
        let target =
            berth_platforms::FunctionRef { group: entry.group.name.to_string(), function: entry.name.to_string() };
        let events = berth_host::event_file::read(file, &target)?;
        let mut failed = 0;
        for e in events {
            let id = e.event.id.clone();
            match runtime.dispatcher.deliver(&target.group, &target.function, e.trigger, e.event).await {
                Ok(res) => {
                    std::io::stdout().write_all(&res.body)?;
                    if !res.body.is_empty() && !res.body.ends_with(b"\n") {
                        println!();
                    }
                }
                Err(err) => {
                    failed += 1;
                    eprintln!("event {id} ({} trigger): {err}", e.trigger);
                }
            }
        }
        Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }

    async fn call(&self, entry: &FunctionEntry) -> anyhow::Result<ExitCode> {
        let function = &*entry.name;
        let Some((route_method, pattern)) = entry.triggers.iter().find_map(|t| match t {
            TriggerSpec::Http { method, route } => Some((method.clone(), route.clone())),
            _ => None,
        }) else {
            bail!(
                "function `{function}` has no HTTP route; give it an event with --event FILE (a CloudEvent, S3, SQS or schedule JSON), or call a running host with --remote (`POST /invoke/{}/{function}`)",
                entry.group.name
            )
        };
        let path = match &self.path {
            Some(p) => p.clone(),
            None if pattern.contains('{') => {
                bail!("function `{function}` has route `{pattern}`; pass --path with the parameters filled in")
            }
            None => pattern.clone(),
        };
        let (path_only, query) = path.split_once('?').unwrap_or((&path, ""));
        let mut router = matchit::Router::new();
        router.insert(pattern.clone(), ()).context("the function's route")?;
        let params: Vec<(String, String)> = match router.at(path_only) {
            Ok(m) => m.params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            Err(_) => bail!("path `{path_only}` does not match the function's route `{pattern}`"),
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for h in &self.headers {
            let (k, v) = h.split_once(':').ok_or_else(|| anyhow!("header `{h}`: expected `name: value`"))?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        if self.data.is_some() && !headers.iter().any(|(k, _)| k == "content-type") {
            headers.push(("content-type".into(), "application/json".into()));
        }
        let method = self.method.clone().unwrap_or_else(|| route_method.to_string()).to_ascii_uppercase();
        let mut request = HttpRequestBuilder::new(&method, path_only, query, 0, headers.len(), params.len());
        for (k, v) in &headers {
            request.header(k, v);
        }
        for (k, v) in &params {
            request.param(k, &percent_encoding::percent_decode_str(v).decode_utf8_lossy());
        }
        let input = Input::Http(request.finish(self.data.as_deref().unwrap_or("").as_bytes().into()));
        let request_id = format!("invoke-{}", std::process::id());
        let started = tokio::time::Instant::now();
        let deadline = berth_host::core::call::deadline(entry, started, None);
        match berth_host::core::call::call(entry, "invoke", &request_id, input, started, deadline).await {
            Ok(res) => {
                std::io::stdout().write_all(&res.body)?;
                if !res.body.ends_with(b"\n") {
                    println!();
                }
                if res.status >= 400 {
                    eprintln!("status {}", res.status);
                    return Ok(ExitCode::FAILURE);
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                let body =
                    serde_json::json!({ "error": e.code(), "message": e.public_message(), "request_id": request_id });
                println!("{body}");
                if let CallError::Panicked { message } = &e {
                    eprintln!("panic: {message}");
                }
                eprintln!("status {}", e.status().as_u16());
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
