//! The HTTP client revocation fetches go through: hyper-util's pooled client over plain
//! TCP or rustls (Mozilla roots), every exchange bounded in time and in body size.
//!
//! Responders and CRL servers are untrusted input: a body larger than the cap is cut
//! off and refused (never buffered whole), a server that trickles bytes hits the
//! deadline, and redirects are not followed (a CRL or OCSP URL names its server).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Not an `http` or `https` URL we can send to.
    #[error("unsupported URL {0:?}")]
    BadUrl(String),
    /// No answer within the deadline (connect, headers and body together).
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Connection refused, reset, TLS failure, malformed HTTP.
    #[error("transport: {0}")]
    Transport(String),
    /// An answer other than 200.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The body exceeded the size cap.
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
}

impl FetchError {
    /// Short code for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::BadUrl(_) => "bad_url",
            FetchError::Timeout(_) => "timeout",
            FetchError::Transport(_) => "transport",
            FetchError::Status(_) => "status",
            FetchError::TooLarge(_) => "too_large",
        }
    }
}

/// A pooled HTTP/1.1 client for CRLs and OCSP.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new()
    }
}

impl HttpClient {
    /// A client; TLS trusts the Mozilla root set (CRL and OCSP servers are public or
    /// plain HTTP in practice: their answers are signed, the transport need not be).
    pub fn new() -> HttpClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build(connector);
        HttpClient { client }
    }

    /// GET `url`; the body if the answer is 200 and at most `max_bytes` long.
    pub async fn get(
        &self,
        url: &str,
        accept: &str,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Bytes, FetchError> {
        self.exchange(Method::GET, url, accept, None, timeout, max_bytes)
            .await
    }

    /// POST `body` as `content_type` to `url`; the answer as for [`HttpClient::get`].
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        accept: &str,
        body: Vec<u8>,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Bytes, FetchError> {
        self.exchange(
            Method::POST,
            url,
            accept,
            Some((content_type, body)),
            timeout,
            max_bytes,
        )
        .await
    }

    async fn exchange(
        &self,
        method: Method,
        url: &str,
        accept: &str,
        body: Option<(&str, Vec<u8>)>,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Bytes, FetchError> {
        let uri: hyper::Uri = url.parse().map_err(|_| FetchError::BadUrl(url.into()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(FetchError::BadUrl(url.into()));
        }
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::ACCEPT, accept)
            .header(hyper::header::USER_AGENT, "certgate");
        let payload = match body {
            Some((content_type, body)) => {
                builder = builder.header(hyper::header::CONTENT_TYPE, content_type);
                Full::new(Bytes::from(body))
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder
            .body(payload)
            .map_err(|e| FetchError::BadUrl(format!("{url}: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| FetchError::Transport(error_chain(&e)))?;
            if response.status() != StatusCode::OK {
                return Err(FetchError::Status(response.status().as_u16()));
            }
            if let Some(len) = response
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                && len > max_bytes as u64
            {
                return Err(FetchError::TooLarge(max_bytes));
            }
            let limited = Limited::new(response.into_body(), max_bytes);
            match limited.collect().await {
                Ok(collected) => Ok(collected.to_bytes()),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    Err(FetchError::TooLarge(max_bytes))
                }
                Err(e) => Err(FetchError::Transport(e.to_string())),
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout(timeout))?
    }
}

/// An error with its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
