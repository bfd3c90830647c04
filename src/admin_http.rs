//! The admin HTTP listener (`admin_listen`): `/metrics`, `/healthz`, `/readyz`.
//!
//! - `/healthz`: 200 while the process can answer at all (a liveness probe).
//! - `/readyz`: 200 once a valid configuration is loaded (always, after start) and the
//!   gRPC server is serving; 503 while starting (first CRL fetches) and from the moment
//!   a shutdown begins, so a load balancer stops sending before the drain ends. The
//!   body names the generation served and whether the files on disk are rejected
//!   (still ready: the last good configuration serves).
//! - `/metrics`: OpenMetrics text ([`crate::metrics`]).
//!
//! Plain HTTP/1.1, GET and HEAD only, bounded: at most [`MAX_CONNECTIONS`] at once and
//! a header read timeout, so a stuck scraper cannot pin the process.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::metrics::{Metrics, Readiness};
use crate::reload::Reloader;

/// Admin connections served at once; more wait in the accept queue.
pub const MAX_CONNECTIONS: usize = 64;
/// A client must send its request head within this.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the admin endpoints read.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The generation and reload state `/readyz` reports.
    pub reloader: Arc<Reloader>,
    /// Whether the gRPC server is serving.
    pub ready: Arc<Readiness>,
}

/// Serves the admin endpoints on `listener` until `stop` completes.
pub async fn serve(listener: TcpListener, state: AdminState, stop: impl Future<Output = ()>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            () = &mut stop => break,
            permit = Arc::clone(&limit).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, _) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, &req)) }
            });
            let result = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = result {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
            drop(permit);
        });
    }
}

fn route(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            let mut response = text(StatusCode::OK, state.metrics.encode());
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            let stats = state.reloader.stats();
            let config = if stats.failing {
                "the files on disk are rejected; serving the last good configuration"
            } else {
                "the files on disk are served"
            };
            if state.ready.is_serving() {
                text(
                    StatusCode::OK,
                    format!("ready: generation {}; {config}\n", stats.generation),
                )
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: the gRPC server is starting or draining\n".into(),
                )
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
