//! The model operations on one Ollama server, over the provider client's [`Transport`] seam:
//! status (`/api/tags` + `/api/ps`), start (pull when absent, then load with an empty
//! `/api/generate`), stop (`keep_alive: 0`).
//!
//! A server whose `/api/tags` or `/api/ps` is a 404 does not speak Ollama's native API (vLLM,
//! llama.cpp): [`ManageError::NotOllama`].

use std::rc::Rc;

use futures::future::{select, Either};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};

use crate::providers::client::transport::{Reply, Transport};
use crate::providers::ollama::native::{
    self, canonical, LineSplitter, NativeModel, PullLine, PullSummary,
};
use crate::providers::settings::Upstream;
use crate::providers::wire::OutboundRequest;

/// The most of a list or error body read.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Lists answer at once; a slow one is a server in trouble.
const LIST_TIMEOUT_MS: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManageError {
    /// The server does not answer Ollama's native API.
    NotOllama,
    /// No answer at all (or a body that could not be read).
    Unreachable(String),
    /// Nothing of that name locally (stop, status) or in the registry (start).
    ModelNotFound(String),
    /// Any other failure the server reported.
    Upstream {
        status: u16,
        message: String,
    },
    TimedOut(u64),
}

/// What the status route answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelStatus {
    /// Threadline's id, `ollama/<name>`.
    pub id: String,
    /// The server's name for it (tag included).
    pub name: String,
    /// Present on the server's disk.
    pub available: bool,
    /// Loaded in memory.
    pub loaded: bool,
    pub size: Option<u64>,
    pub size_vram: Option<u64>,
    /// When the server will unload it if unused (RFC 3339).
    pub expires_at: Option<String>,
    pub digest: Option<String>,
    pub details: Option<Value>,
}

/// One Ollama server.
pub struct OllamaServer {
    transport: Rc<dyn Transport>,
    /// The prefix of the models it serves (`ollama`).
    prefix: &'static str,
    root: String,
    key: Option<String>,
    timeout_ms: u64,
}

impl OllamaServer {
    pub fn new(transport: Rc<dyn Transport>, upstream: &Upstream) -> OllamaServer {
        OllamaServer {
            transport,
            prefix: upstream.name,
            root: native::native_root(&upstream.endpoint.base_url),
            key: upstream.endpoint.key().map(str::to_string),
            timeout_ms: upstream.timeout_secs * 1000,
        }
    }

    async fn within<T>(
        &self,
        ms: u64,
        work: impl std::future::Future<Output = Result<T, ManageError>>,
    ) -> Result<T, ManageError> {
        let work = Box::pin(work);
        match select(work, self.transport.sleep(ms)).await {
            Either::Left((out, _)) => out,
            Either::Right(_) => Err(ManageError::TimedOut(ms / 1000)),
        }
    }

    async fn send(&self, request: OutboundRequest) -> Result<Reply, ManageError> {
        self.transport
            .send(request)
            .await
            .map_err(ManageError::Unreachable)
    }

    async fn read(reply: &mut Reply) -> Result<String, ManageError> {
        let mut bytes = Vec::new();
        while let Some(chunk) = reply.body.next().await {
            bytes.extend_from_slice(&chunk.map_err(ManageError::Unreachable)?);
            if bytes.len() >= MAX_BODY_BYTES {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The failure a non-2xx answer stands for; `not_found` is what a 404 means here.
    async fn failure(mut reply: Reply, not_found: ManageError) -> ManageError {
        let body = Self::read(&mut reply).await.unwrap_or_default();
        match reply.status {
            404 => match not_found {
                ManageError::ModelNotFound(_) => {
                    ManageError::ModelNotFound(native::error_message(&body))
                }
                other => other,
            },
            status => ManageError::Upstream {
                status,
                message: native::error_message(&body),
            },
        }
    }

    async fn list(&self, path: &str) -> Result<Vec<NativeModel>, ManageError> {
        self.within(LIST_TIMEOUT_MS, async {
            let mut reply = self
                .send(native::get(&self.root, path, self.key.as_deref()))
                .await?;
            if !(200..300).contains(&reply.status) {
                return Err(Self::failure(reply, ManageError::NotOllama).await);
            }
            let body = Self::read(&mut reply).await?;
            // An OpenAI-compatible server that answers 200 with something else is not one.
            native::parse_models(&body).map_err(|_| ManageError::NotOllama)
        })
        .await
    }

    /// The models on the server's disk (`/api/tags`).
    pub async fn local_models(&self) -> Result<Vec<NativeModel>, ManageError> {
        self.list("/api/tags").await
    }

    /// The models in memory (`/api/ps`).
    pub async fn loaded_models(&self) -> Result<Vec<NativeModel>, ManageError> {
        self.list("/api/ps").await
    }

    /// Whether the model is on disk and in memory, with its sizes and expiry.
    pub async fn status(&self, name: &str) -> Result<ModelStatus, ManageError> {
        let name = canonical(name);
        let (local, loaded) =
            futures::future::join(self.local_models(), self.loaded_models()).await;
        let local = local?.into_iter().find(|m| canonical(&m.name) == name);
        let loaded = loaded?.into_iter().find(|m| canonical(&m.name) == name);
        let base = loaded.clone().or_else(|| local.clone());
        Ok(ModelStatus {
            id: format!("{}/{name}", self.prefix),
            available: local.is_some(),
            loaded: loaded.is_some(),
            size: base.as_ref().map(|m| m.size),
            size_vram: loaded.as_ref().and_then(|m| m.size_vram),
            expires_at: loaded.as_ref().and_then(|m| m.expires_at.clone()),
            digest: base.as_ref().and_then(|m| m.digest.clone()),
            details: base.and_then(|m| m.details),
            name,
        })
    }

    /// Pulls the model, reading the NDJSON progress to its end. A `{"error"}` line fails
    /// the pull (Ollama keeps the HTTP status 200 for it); a registry that has no such
    /// model is [`ManageError::ModelNotFound`].
    pub async fn pull(&self, name: &str) -> Result<PullSummary, ManageError> {
        let request = native::post(
            &self.root,
            "/api/pull",
            self.key.as_deref(),
            &json!({ "model": name, "stream": true }),
        );
        let mut reply = self.within(self.timeout_ms, self.send(request)).await?;
        if !(200..300).contains(&reply.status) {
            return Err(Self::failure(reply, ManageError::ModelNotFound(name.into())).await);
        }
        let mut split = LineSplitter::default();
        let mut summary = PullSummary::default();
        loop {
            // Each read may wait up to the provider timeout: a pull is long, a silent one is not.
            let next = self
                .within(self.timeout_ms, async { Ok(reply.body.next().await) })
                .await?;
            let ended = next.is_none();
            let lines = match next {
                Some(chunk) => split.push(&chunk.map_err(ManageError::Unreachable)?),
                None => split.finish().into_iter().collect(),
            };
            for line in lines {
                match native::parse_pull_line(&line).map_err(|m| ManageError::Upstream {
                    status: 200,
                    message: m,
                })? {
                    PullLine::Progress(p) => summary.add(p),
                    PullLine::Failed(message) => return Err(pull_failure(message)),
                }
            }
            if ended {
                break;
            }
        }
        if !summary.succeeded {
            return Err(ManageError::Upstream {
                status: 200,
                message: "the pull ended without reporting success".into(),
            });
        }
        Ok(summary)
    }

    /// An empty `/api/generate`: loads the model (`keep_alive` as given, the server's own
    /// default when `None`) or, with `keep_alive: 0`, unloads it.
    async fn generate(&self, name: &str, keep_alive: Option<&Value>) -> Result<(), ManageError> {
        let mut body = json!({ "model": name, "stream": false });
        if let Some(keep_alive) = keep_alive {
            body["keep_alive"] = keep_alive.clone();
        }
        let request = native::post(&self.root, "/api/generate", self.key.as_deref(), &body);
        self.within(self.timeout_ms, async {
            let mut reply = self.send(request).await?;
            if !(200..300).contains(&reply.status) {
                return Err(Self::failure(reply, ManageError::ModelNotFound(name.into())).await);
            }
            Self::read(&mut reply).await.map(|_| ())
        })
        .await
    }

    /// Whether the server has the model (canonical name) on disk.
    async fn has(&self, name: &str) -> Result<bool, ManageError> {
        Ok(self
            .local_models()
            .await?
            .iter()
            .any(|m| canonical(&m.name) == name))
    }

    /// Loads the model into memory, pulling it first when the server does not have it.
    pub async fn start(
        &self,
        name: &str,
        keep_alive: Option<&Value>,
    ) -> Result<(ModelStatus, Option<PullSummary>), ManageError> {
        let name = canonical(name);
        let pulled = if self.has(&name).await? {
            None
        } else {
            Some(self.pull(&name).await?)
        };
        self.generate(&name, keep_alive).await?;
        Ok((self.status(&name).await?, pulled))
    }

    /// Unloads the model (`keep_alive: 0`); a model the server does not have is a 404.
    pub async fn stop(&self, name: &str) -> Result<ModelStatus, ManageError> {
        let name = canonical(name);
        if !self.has(&name).await? {
            return Err(ManageError::ModelNotFound(format!(
                "model '{name}' not found"
            )));
        }
        self.generate(&name, Some(&json!(0))).await?;
        self.status(&name).await
    }
}

/// A pull's `{"error"}`: the registry not knowing the model is a 404, the rest upstream.
fn pull_failure(message: String) -> ManageError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("file does not exist") || lower.contains("not found") {
        ManageError::ModelNotFound(message)
    } else {
        ManageError::Upstream {
            status: 200,
            message,
        }
    }
}
