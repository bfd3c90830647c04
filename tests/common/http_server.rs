//! A small HTTP/1.1 server on 127.0.0.1 for CRL distribution points (or any file a
//! test wants fetched by GET), plus the HTTP plumbing the OCSP proxy in
//! [`super::ocsp_responder`] shares.
//!
//! Plain `std::net` and threads: it works from sync and async tests alike, needs no
//! runtime and is stopped on `Drop`.
//!
//! ```ignore
//! let srv = HttpServer::start();
//! srv.set("/issuing.crl", 200, crl.der.clone());
//! let cdp = srv.url("/issuing.crl"); // http://127.0.0.1:PORT/issuing.crl
//! // ... certgate fetches it ...
//! assert_eq!(srv.requests("/issuing.crl"), 1);
//! srv.set_down(true); // connections to the port are now refused
//! ```
//!
//! Behaviour:
//! - One thread per connection; **keep-alive** is supported (HTTP/1.1 default; a request
//!   with `Connection: close`, or HTTP/1.0 without `Connection: keep-alive`, gets its
//!   answer and the connection is closed).
//! - Paths are matched without the query string (`/a.crl?x=1` is `/a.crl`). Unknown paths
//!   answer 404; methods other than GET answer 405. Only GETs are counted.
//! - Bodies are sent with `Content-Length`; `Content-Type` is `application/pkix-crl` for
//!   paths ending in `.crl`, else `application/octet-stream`.
//!
//! Self-contained (std only), so a test file may also include it alone with
//! `#[path = "common/http_server.rs"] mod http_server;`, hence the allow.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a connection may sit idle (or a write may block) before it is dropped.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the accept loops look for new connections and for a stop request.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// How long `set_down(false)` keeps trying to rebind the same port.
const REBIND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `Drop` waits for connection threads before leaving them behind.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head (request line + headers) read.
const MAX_HEAD: u64 = 64 * 1024;
/// Largest request body read (the file server discards bodies anyway).
const MAX_BODY: usize = 16 * 1024 * 1024;

// === impl HttpServer ===

/// An HTTP/1.1 server on 127.0.0.1 with an ephemeral port; see the module docs.
pub struct HttpServer {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    port: u16,
    /// `None` while the server is down: the socket is closed, connections are refused.
    listener: Mutex<Option<TcpListener>>,
    down: AtomicBool,
    stop: Arc<AtomicBool>,
    routes: Mutex<HashMap<String, Route>>,
    delays: Mutex<HashMap<String, Duration>>,
    counts: Mutex<HashMap<String, usize>>,
    conns: Arc<Connections>,
}

#[derive(Clone)]
struct Route {
    status: u16,
    content: Content,
}

#[derive(Clone)]
enum Content {
    Bytes(Arc<Vec<u8>>),
    /// `n` bytes generated while writing, never held in memory.
    Huge(u64),
}

impl HttpServer {
    /// Binds 127.0.0.1:0 and starts the accept thread. Nothing is served until
    /// [`HttpServer::set`]: every path answers 404.
    pub fn start() -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for HttpServer");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("local addr").port();
        let shared = Arc::new(Shared {
            port,
            listener: Mutex::new(Some(listener)),
            down: AtomicBool::new(false),
            stop: Arc::new(AtomicBool::new(false)),
            routes: Mutex::new(HashMap::new()),
            delays: Mutex::new(HashMap::new()),
            counts: Mutex::new(HashMap::new()),
            conns: Arc::new(Connections::default()),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::Builder::new()
                .name(format!("http-server-{port}"))
                .spawn(move || accept_loop(&shared))
                .expect("spawn HttpServer accept thread")
        };
        HttpServer {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The port (stays the same across [`HttpServer::set_down`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/path` (a missing leading `/` is added).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, normalize(path))
    }

    /// What `GET path` answers from now on: `status` with `body`.
    pub fn set(&self, path: &str, status: u16, body: Vec<u8>) {
        lock(&self.shared.routes).insert(
            normalize(path),
            Route {
                status,
                content: Content::Bytes(Arc::new(body)),
            },
        );
    }

    /// `GET path` answers 200 with `bytes` bytes of filler (`Content-Length: bytes`),
    /// generated while sending: nothing that size is ever allocated. A client that
    /// gives up and closes the connection stops the sending.
    pub fn set_huge(&self, path: &str, bytes: u64) {
        lock(&self.shared.routes).insert(
            normalize(path),
            Route {
                status: 200,
                content: Content::Huge(bytes),
            },
        );
    }

    /// Wait `d` before answering each request for `path` (known or not) from now on;
    /// `Duration::ZERO` answers at once again. Requests are counted when received,
    /// before the wait.
    pub fn set_delay(&self, path: &str, d: Duration) {
        lock(&self.shared.delays).insert(normalize(path), d);
    }

    /// GETs received for `path` so far (any status, counted on receipt).
    pub fn requests(&self, path: &str) -> usize {
        lock(&self.shared.counts)
            .get(&normalize(path))
            .copied()
            .unwrap_or(0)
    }

    /// `true`: closes the listening socket (new connections are **refused**) and shuts
    /// down every open connection (a pooled keep-alive connection sees EOF).
    /// `false`: binds the **same port** again. std's `TcpListener::bind` sets
    /// `SO_REUSEADDR`, so connections left in TIME_WAIT do not block the rebind; if the
    /// port is briefly busy otherwise (e.g. another socket took it as its ephemeral
    /// port), it retries for up to 2 s, then panics saying so.
    pub fn set_down(&self, down: bool) {
        let mut listener = lock(&self.shared.listener);
        if down {
            self.shared.down.store(true, Ordering::SeqCst);
            drop(listener.take());
            self.shared.conns.close_all();
        } else if listener.is_none() {
            *listener = Some(rebind(self.port));
            self.shared.down.store(false, Ordering::SeqCst);
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        drop(lock(&self.shared.listener).take());
        self.shared.conns.close_all();
        self.shared.conns.join_all(JOIN_TIMEOUT);
    }
}

fn rebind(port: u16) -> TcpListener {
    let deadline = Instant::now() + REBIND_TIMEOUT;
    loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => {
                l.set_nonblocking(true).expect("nonblocking listener");
                return l;
            }
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!(
                "HttpServer::set_down(false): cannot rebind 127.0.0.1:{port} within \
                 {REBIND_TIMEOUT:?}: {e} (another socket holds the port)"
            ),
        }
    }
}

fn accept_loop(shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let accepted = match lock(&shared.listener).as_ref() {
            Some(l) => l.accept(),
            None => Err(io::ErrorKind::WouldBlock.into()),
        };
        match accepted {
            Ok((stream, _)) => {
                let s = shared.clone();
                shared.conns.spawn(
                    &format!("http-conn-{}", shared.port),
                    stream,
                    move |stream| serve_connection(&s, stream),
                );
            }
            Err(_) => thread::sleep(ACCEPT_POLL),
        }
    }
}

fn serve_connection(shared: &Shared, stream: TcpStream) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(IO_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(IO_TIMEOUT)).is_err()
    {
        return;
    }
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let req = match read_request(&mut reader, MAX_BODY) {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    let _ = write_simple(&mut writer, 400, "bad request\n", false);
                }
                return;
            }
        };
        if shared.down.load(Ordering::SeqCst) || shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let keep_alive = req.keep_alive();
        if req.method != "GET" {
            if write_simple(&mut writer, 405, "GET only\n", keep_alive).is_err() || !keep_alive {
                return;
            }
            continue;
        }
        let path = req.path().to_string();
        *lock(&shared.counts).entry(path.clone()).or_insert(0) += 1;
        let delay = lock(&shared.delays).get(&path).copied().unwrap_or_default();
        if !nap(&shared.stop, delay) {
            return;
        }
        let route = lock(&shared.routes).get(&path).cloned();
        let written = match route {
            None => write_simple(&mut writer, 404, "not found\n", keep_alive),
            Some(route) => write_route(&mut writer, &shared.stop, &path, &route, keep_alive),
        };
        if written.is_err() || !keep_alive {
            let _ = writer.shutdown(Shutdown::Write);
            return;
        }
    }
}

fn write_route(
    w: &mut TcpStream,
    stop: &AtomicBool,
    path: &str,
    route: &Route,
    keep_alive: bool,
) -> io::Result<()> {
    let content_type = if path.ends_with(".crl") {
        "application/pkix-crl"
    } else {
        "application/octet-stream"
    };
    let len = match &route.content {
        Content::Bytes(b) => b.len() as u64,
        Content::Huge(n) => *n,
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nConnection: {}\r\n\r\n",
        route.status,
        reason(route.status),
        if keep_alive { "keep-alive" } else { "close" },
    );
    w.write_all(head.as_bytes())?;
    match &route.content {
        Content::Bytes(b) => w.write_all(b)?,
        Content::Huge(n) => {
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = *n;
            while left > 0 {
                if stop.load(Ordering::SeqCst) {
                    return Err(io::ErrorKind::Interrupted.into());
                }
                let k = left.min(chunk.len() as u64) as usize;
                w.write_all(&chunk[..k])?;
                left -= k as u64;
            }
        }
    }
    w.flush()
}

fn write_simple(w: &mut TcpStream, status: u16, body: &str, keep_alive: bool) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        reason(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    w.write_all(head.as_bytes())?;
    w.write_all(body.as_bytes())?;
    w.flush()
}

/// The standard reason phrase for common codes ("Status" otherwise).
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn normalize(path: &str) -> String {
    let path = path.split('?').next().unwrap_or("");
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

// === HTTP/1.x request reading (shared with the OCSP proxy) ===

/// One HTTP/1.x request as read off the wire, body de-chunked.
#[derive(Clone, Debug)]
pub struct RawRequest {
    pub method: String,
    /// The request target as sent (`/path?query`, or a base64 OCSP GET path).
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
    /// Names as sent, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The target without its query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// Whether the client lets the connection stay open after the answer.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.version == "HTTP/1.0" {
            conn.contains("keep-alive")
        } else {
            !conn.contains("close")
        }
    }

    /// The request re-serialised with its body length in `Content-Length` (no
    /// `Transfer-Encoding`), everything else as received.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} {}\r\n", self.method, self.target, self.version);
        for (k, v) in &self.headers {
            if k.eq_ignore_ascii_case("content-length")
                || k.eq_ignore_ascii_case("transfer-encoding")
            {
                continue;
            }
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if !self.body.is_empty() || self.method == "POST" || self.method == "PUT" {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// Reads one request. `Ok(None)`: the peer closed (or went idle past the read
/// timeout) before sending a byte. `InvalidData`: not HTTP/1.x, or too large.
/// Supports `Content-Length` and `Transfer-Encoding: chunked` bodies.
pub fn read_request<R: BufRead>(r: &mut R, max_body: usize) -> io::Result<Option<RawRequest>> {
    let mut line = Vec::new();
    // Tolerate empty lines between requests (RFC 9112 §2.2).
    loop {
        line.clear();
        match read_line(r, &mut line) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        if !trim_eol(&line).is_empty() {
            break;
        }
    }
    let request_line = String::from_utf8_lossy(trim_eol(&line)).into_owned();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(format!("bad request line {request_line:?}")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("not HTTP/1.x: {request_line:?}")));
    }
    let headers = read_headers(r)?;
    let mut req = RawRequest {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers,
        body: Vec::new(),
    };
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        req.body = read_chunked(r, max_body)?;
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| invalid(format!("bad Content-Length {len:?}")))?;
        if len > max_body {
            return Err(invalid(format!("body of {len} bytes is over {max_body}")));
        }
        req.body = vec![0; len];
        r.read_exact(&mut req.body)?;
    }
    Ok(Some(req))
}

/// Reads header lines up to the empty line; `(name, value)` trimmed.
pub fn read_headers<R: BufRead>(r: &mut R) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    let mut total = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = read_line(r, &mut line)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        total += n as u64;
        if total > MAX_HEAD {
            return Err(invalid("header section too large".into()));
        }
        let text = trim_eol(&line);
        if text.is_empty() {
            return Ok(headers);
        }
        let text = String::from_utf8_lossy(text);
        let Some((k, v)) = text.split_once(':') else {
            return Err(invalid(format!("bad header line {text:?}")));
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
}

fn read_chunked<R: BufRead>(r: &mut R, max_body: usize) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read_line(r, &mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let size_line = String::from_utf8_lossy(trim_eol(&line)).into_owned();
        let hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(hex, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_line:?}")))?;
        if size == 0 {
            read_headers(r)?; // trailers
            return Ok(body);
        }
        if body.len() + size > max_body {
            return Err(invalid(format!("chunked body over {max_body} bytes")));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
    }
}

/// Reads one line (up to and including `\n`), at most `MAX_HEAD` bytes.
fn read_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<usize> {
    let n = r.take(MAX_HEAD).read_until(b'\n', buf)?;
    if n as u64 == MAX_HEAD && !buf.ends_with(b"\n") {
        return Err(invalid("line too long".into()));
    }
    Ok(n)
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

// === threads, connections, locks ===

/// Connection threads of one server, with a clone of each open socket so they can be
/// shut down (which unblocks any read or write) on `set_down` and `Drop`.
#[derive(Default)]
pub struct Connections {
    inner: Mutex<ConnsInner>,
}

#[derive(Default)]
struct ConnsInner {
    next_id: u64,
    open: HashMap<u64, TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

impl Connections {
    /// Runs `serve(stream)` on a new thread; the socket is tracked until it returns.
    pub fn spawn(
        self: &Arc<Self>,
        name: &str,
        stream: TcpStream,
        serve: impl FnOnce(TcpStream) + Send + 'static,
    ) {
        let mut inner = lock(&self.inner);
        inner.threads.retain(|t| !t.is_finished());
        let id = inner.next_id;
        inner.next_id += 1;
        if let Ok(clone) = stream.try_clone() {
            inner.open.insert(id, clone);
        }
        let me = self.clone();
        let spawned = thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                serve(stream);
                lock(&me.inner).open.remove(&id);
            });
        match spawned {
            Ok(t) => inner.threads.push(t),
            Err(_) => {
                if let Some(s) = inner.open.remove(&id) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
    }

    /// Shuts down every open connection (both directions).
    pub fn close_all(&self) {
        for s in lock(&self.inner).open.values() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Waits up to `timeout` for all connection threads; stragglers are left detached
    /// (they hold only closed sockets) so `Drop` never hangs a test.
    pub fn join_all(&self, timeout: Duration) {
        let threads = std::mem::take(&mut lock(&self.inner).threads);
        let deadline = Instant::now() + timeout;
        for t in threads {
            while !t.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// Sleeps `d` in small steps; `false` if `stop` was raised meanwhile.
pub fn nap(stop: &AtomicBool, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        thread::sleep((deadline - now).min(Duration::from_millis(10)));
    }
}

/// Locks, ignoring poisoning (a panicking test thread must not wedge the servers).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// 127.0.0.1:`port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
