//! A stand-in for a paid outside service: a local HTTP server that speaks the OpenAI embeddings
//! wire format (`POST /v1/embeddings`), including its error answers — 401 for a wrong key, 429
//! with `Retry-After`, 500 — so that the client's retries, backoff and checks meet the real
//! shapes. Its vectors come from the `hash` embedder, so search results stay meaningful.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// What the server does with the next request instead of answering it properly.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// 429 `rate_limit_exceeded` with `Retry-After: secs`.
    RateLimited { retry_after_secs: u64 },
    /// 500 `server_error`.
    ServerError,
    /// 503 with a plain-text body, as a proxy in front of the service would answer.
    BadGateway,
    /// A 200 answer whose vectors have this many dimensions whatever was asked.
    WrongDimension(usize),
    /// Waits this long before answering properly (to trip the client's timeout).
    Slow(Duration),
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub authorization: Option<String>,
    pub body: Value,
}

impl Seen {
    pub fn inputs(&self) -> Vec<String> {
        self.body["input"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Script {
    faults: VecDeque<Fault>,
    seen: Vec<Seen>,
}

struct Shared {
    api_key: Option<String>,
    script: Mutex<Script>,
}

pub struct FakeOpenAi {
    /// The embeddings endpoint, `http://127.0.0.1:PORT/v1/embeddings`.
    pub url: String,
    shared: Arc<Shared>,
    handle: ServerHandle,
}

impl FakeOpenAi {
    /// Starts the server; requests must carry `Authorization: Bearer <api_key>` when given.
    pub fn start(api_key: Option<&str>) -> Self {
        let shared = Arc::new(Shared {
            api_key: api_key.map(str::to_owned),
            script: Mutex::default(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake OpenAI server");
        let port = listener.local_addr().expect("address").port();
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::JsonConfig::default().limit(16 << 20))
                .route("/v1/embeddings", web::post().to(embeddings))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/v1/embeddings"),
            shared,
            handle,
        }
    }

    /// Queues faults for the next requests, in order.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.shared.script.lock().unwrap().faults.extend(faults);
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.script.lock().unwrap().seen.clone()
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

fn error(status: u16, message: &str, kind: &str, code: Option<&str>) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).expect("status");
    HttpResponse::build(status).json(json!({
        "error": {"message": message, "type": kind, "param": null, "code": code}
    }))
}

async fn embeddings(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<Value>,
) -> HttpResponse {
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let fault = {
        let mut script = shared.script.lock().unwrap();
        script.seen.push(Seen {
            authorization: authorization.clone(),
            body: body.0.clone(),
        });
        script.faults.pop_front()
    };
    if let Some(key) = &shared.api_key
        && authorization.as_deref() != Some(&format!("Bearer {key}"))
    {
        return error(
            401,
            "Incorrect API key provided: sk-wr***ng. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            Some("invalid_api_key"),
        );
    }
    let mut width = body["dimensions"].as_u64().unwrap_or(1536) as usize;
    match fault {
        Some(Fault::RateLimited { retry_after_secs }) => {
            let mut response = error(
                429,
                "Rate limit reached for requests. Please try again later.",
                "requests",
                Some("rate_limit_exceeded"),
            );
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                retry_after_secs.to_string().parse().expect("header"),
            );
            return response;
        }
        Some(Fault::ServerError) => {
            return error(
                500,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            );
        }
        Some(Fault::BadGateway) => {
            return HttpResponse::ServiceUnavailable().body("upstream connect error");
        }
        Some(Fault::WrongDimension(n)) => width = n,
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    let Some(inputs) = body["input"].as_array() else {
        return error(
            400,
            "'input' is a required property",
            "invalid_request_error",
            None,
        );
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let mut vector = bosar_chat::embed::hash::embed_one(input.as_str().unwrap_or_default());
            vector.resize(width, 0.0);
            json!({"object": "embedding", "index": index, "embedding": vector})
        })
        .collect();
    let tokens = inputs.len() * 8;
    HttpResponse::Ok().json(json!({
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    }))
}
