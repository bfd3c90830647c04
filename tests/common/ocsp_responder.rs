//! A real OCSP responder for tests: `openssl ocsp` serving an index file, behind a small
//! counting proxy that can also be slowed down or switched off.
//!
//! ```ignore
//! let ca = Ca::root("Root");
//! let alice = ca.leaf(LeafSpec::client("alice"));
//! let ocsp = OcspResponder::start(&ca.cert_pem, &ca.cert_pem, &ca.key_pem,
//!                                 &[(alice.serial.clone(), EntryStatus::Good)]);
//! // point certgate (or the leaf's AIA) at ocsp.url() ...
//! ocsp.set_entries(&[(alice.serial.clone(), EntryStatus::Revoked)]);
//! ocsp.poke(); // REQUIRED: see "index reloads" below
//! assert_eq!(ocsp.requests(), 1);
//! ```
//!
//! Facts about `openssl ocsp -port` (OpenSSL 3.0.19, measured), which shape this module:
//! - **Index reloads are one request late.** openssl checks whether index.txt changed
//!   (by mtime/ctime/inode) only *before waiting for the next connection*. After
//!   [`OcspResponder::set_entries`], the first request still gets the old statuses and
//!   the reload happens right after it. Call [`OcspResponder::poke`] after
//!   `set_entries`: it sends one throwaway request straight to openssl (not through the
//!   proxy, not counted), and every request after it sees the new index. Since the
//!   change check looks at whole-second mtimes, `set_entries` writes a new file, gives
//!   it a never-used mtime and renames it over index.txt, so no rewrite is ever missed.
//! - **Serials in the index**: upper-case hex. openssl looks a serial up ignoring leading
//!   `0` characters on both sides, so `8A0102`, `008A0102` and `A0102` all match a
//!   certificate whose DER serial is `00 8A 01 02`; lower-case hex never matches. Two
//!   rows that differ only in leading zeros are a duplicate and openssl refuses the file.
//!   Entries here take the serial bytes as in the certificate (leading `0x00` or not)
//!   and are written with leading zero bytes dropped (even length, upper case).
//!   Serials not listed answer `unknown`; an empty index is fine.
//! - **GET works**: `GET /<base64 DER request>` is answered at the root path, with the
//!   base64 raw or percent-encoded (`%2B`, `%2F`, `%3D`). Under any other path
//!   (`/ocsp/<base64>`) openssl fails to parse and does not answer. POST works on any
//!   path.
//! - Answers are `HTTP/1.0 200 OK` with `Content-Length`, then openssl closes the
//!   connection (also when the client asks for keep-alive).
//! - **A connection closed without a request wedges it**: openssl then spins at 100 % CPU
//!   reading EOF and never answers again. So readiness is probed with a full OCSP request,
//!   never a bare connect, and the proxy only connects to openssl once it holds a
//!   complete request.
//! - Without `-ignore_err` openssl **exits** after answering any malformed request
//!   (`malformedRequest`), so it always runs with `-ignore_err`. A request body that is
//!   not DER gets no answer at all: the proxy then answers 502 after 5 s.
//! - With `-port N` it binds every interface (`[::]:N`); tests only connect to 127.0.0.1.
//!   Without `-ndays`/`-nmin` responses carry no nextUpdate.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use super::envoy::free_port;
use super::http_server::{
    Connections, RawRequest, lock, loopback, nap, read_headers, read_request,
};

/// How long openssl may take to answer its first request after being started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the proxy waits for a client's request, and for openssl's answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest OCSP request body the proxy accepts.
const MAX_REQUEST_BODY: usize = 1024 * 1024;
/// Largest answer read back from openssl.
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;
const ACCEPT_POLL: Duration = Duration::from_millis(5);
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The expiry column of every index row (openssl ocsp does not look at it).
const INDEX_EXPIRY: &str = "491231235959Z";

/// A certificate's status in the responder's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryStatus {
    Good,
    /// Revoked an hour before the index was written, no reason code.
    Revoked,
}

/// `openssl ocsp` plus its counting proxy; both stopped on drop. See the module docs.
pub struct OcspResponder {
    dir: tempfile::TempDir,
    child: Child,
    openssl_port: u16,
    proxy_port: u16,
    proxy: Arc<Proxy>,
    acceptor: Option<JoinHandle<()>>,
    /// How many times the index has been rewritten; each rewrite gets mtime
    /// `mtime_base + generation` seconds, so openssl always sees a change.
    generation: Mutex<u64>,
    mtime_base: SystemTime,
}

struct Proxy {
    /// Taken (closed) on drop, even if a straggling connection thread keeps `Proxy`.
    listener: Mutex<Option<TcpListener>>,
    openssl_port: u16,
    stop: AtomicBool,
    down: AtomicBool,
    delay: Mutex<Duration>,
    counts: Mutex<HashMap<String, usize>>,
    conns: Arc<Connections>,
}

impl OcspResponder {
    /// Starts `openssl ocsp -index index.txt -port N -rsigner signer.pem -rkey signer.key
    /// -CA issuer.pem -ignore_err -ndays 1` in its own temp dir, and the counting proxy
    /// on 127.0.0.1 in front of it. Returns once openssl has answered a probe request;
    /// panics with openssl's output if it exits or does not answer within 10 s.
    ///
    /// `issuer_pem`: the CA that issued the certificates in `entries` (requests for other
    /// issuers answer `unknown`). `signer_pem`/`signer_key_pem`: the certificate and
    /// PKCS#8 key that sign responses (the issuer itself, or a delegated responder with
    /// the OCSPSigning EKU). `entries`: serials as in the certificate (e.g.
    /// [`super::pki::Leaf::serial`]) with their status; unlisted serials are `unknown`.
    pub fn start(
        issuer_pem: &str,
        signer_pem: &str,
        signer_key_pem: &str,
        entries: &[(Vec<u8>, EntryStatus)],
    ) -> OcspResponder {
        Self::start_with(
            issuer_pem,
            signer_pem,
            signer_key_pem,
            entries,
            &["-ndays", "1"],
        )
    }

    /// [`OcspResponder::start`] with `validity_args` instead of `-ndays 1`, e.g.
    /// `&["-nmin", "1"]` (nextUpdate a minute after thisUpdate) or `&[]` (no nextUpdate
    /// at all). They are passed to openssl verbatim, so other responder options
    /// (`-resp_no_certs`, `-rmd sha384`, `-rother FILE`...) can go here too.
    pub fn start_with(
        issuer_pem: &str,
        signer_pem: &str,
        signer_key_pem: &str,
        entries: &[(Vec<u8>, EntryStatus)],
        validity_args: &[&str],
    ) -> OcspResponder {
        let dir = tempfile::Builder::new()
            .prefix("ocsp-responder-")
            .tempdir()
            .expect("create OCSP responder temp dir");
        let write = |name: &str, contents: &str| {
            let path = dir.path().join(name);
            fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()))
        };
        write("issuer.pem", issuer_pem);
        write("signer.pem", signer_pem);
        write("signer.key", signer_key_pem);
        write("index.txt.attr", "unique_subject = no\n");
        let mtime_base = SystemTime::now();
        write_index(dir.path(), entries, mtime_base);

        // openssl binds [::]:N while `free_port` only checked 127.0.0.1:N; on a clash
        // openssl exits at once and another port is tried.
        let mut failures = Vec::new();
        for _ in 0..3 {
            let openssl_port = free_port();
            let mut child = spawn_openssl(dir.path(), openssl_port, validity_args);
            match wait_ready(&mut child, openssl_port, dir.path()) {
                Ready::Yes => {
                    return Self::with_proxy(dir, child, openssl_port, mtime_base);
                }
                Ready::PortTaken(log) => failures.push(log),
                Ready::Failed(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("OCSP responder: {why}");
                }
            }
        }
        panic!(
            "OCSP responder: openssl ocsp could not bind a port in 3 tries:\n{}",
            failures.join("\n---\n")
        );
    }

    fn with_proxy(
        dir: tempfile::TempDir,
        child: Child,
        openssl_port: u16,
        mtime_base: SystemTime,
    ) -> OcspResponder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind OCSP proxy on 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let proxy_port = listener.local_addr().expect("local addr").port();
        let proxy = Arc::new(Proxy {
            listener: Mutex::new(Some(listener)),
            openssl_port,
            stop: AtomicBool::new(false),
            down: AtomicBool::new(false),
            delay: Mutex::new(Duration::ZERO),
            counts: Mutex::new(HashMap::new()),
            conns: Arc::new(Connections::default()),
        });
        let acceptor = {
            let proxy = proxy.clone();
            thread::Builder::new()
                .name(format!("ocsp-proxy-{proxy_port}"))
                .spawn(move || proxy_accept_loop(&proxy))
                .expect("spawn OCSP proxy thread")
        };
        OcspResponder {
            dir,
            child,
            openssl_port,
            proxy_port,
            proxy,
            acceptor: Some(acceptor),
            generation: Mutex::new(0),
            mtime_base,
        }
    }

    /// `http://127.0.0.1:<proxy port>/`, the URL clients use (e.g. in a leaf's AIA).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.proxy_port)
    }

    /// Complete requests (any method) the proxy has received so far. A request is
    /// counted as soon as it has been read, before it is forwarded or delayed, so the
    /// count is up to date when the client sees the answer. Connections refused by
    /// [`OcspResponder::set_down`], probes and pokes are not counted.
    pub fn requests(&self) -> usize {
        lock(&self.proxy.counts).values().sum()
    }

    /// [`OcspResponder::requests`] with one method, e.g. `"GET"` or `"POST"`.
    pub fn requests_by_method(&self, method: &str) -> usize {
        lock(&self.proxy.counts)
            .get(&method.to_ascii_uppercase())
            .copied()
            .unwrap_or(0)
    }

    /// Hold every answer for `d` before sending it, from now on (`Duration::ZERO`:
    /// answer at once). openssl answers at once; only the proxy waits.
    pub fn set_delay(&self, d: Duration) {
        *lock(&self.proxy.delay) = d;
    }

    /// `true`: the proxy accepts connections and closes them at once, reading and
    /// answering nothing (clients see EOF or a reset, not a refused connection).
    /// `false`: back to normal. Connections already being served are not affected.
    pub fn set_down(&self, down: bool) {
        self.proxy.down.store(down, Ordering::SeqCst);
    }

    /// Rewrites index.txt with `entries`. openssl picks the new index up only after
    /// its next request, so **call [`OcspResponder::poke`] afterwards** unless the test
    /// means to see the old answer once more.
    pub fn set_entries(&self, entries: &[(Vec<u8>, EntryStatus)]) {
        let mut generation = lock(&self.generation);
        *generation += 1;
        let mtime = self.mtime_base + Duration::from_secs(*generation);
        write_index(self.dir.path(), entries, mtime);
    }

    /// Sends one throwaway OCSP request straight to openssl (bypassing the proxy: not
    /// counted, not delayed, works while "down") and waits for its answer. openssl
    /// re-reads a changed index.txt right after answering it, before it accepts another
    /// connection, so every request sent after `poke` returns sees the current index.
    pub fn poke(&self) {
        if let Err(e) = exchange(self.openssl_port, &probe_request(), Duration::from_secs(2)) {
            panic!(
                "OCSP responder: poke to openssl on port {} failed: {e}\n--- openssl log ---\n{}",
                self.openssl_port,
                self.log()
            );
        }
    }

    /// Everything openssl has printed so far (one line per request it received).
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }
}

impl Drop for OcspResponder {
    fn drop(&mut self) {
        self.proxy.stop.store(true, Ordering::SeqCst);
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        drop(lock(&self.proxy.listener).take());
        self.proxy.conns.close_all();
        self.proxy.conns.join_all(JOIN_TIMEOUT);
    }
}

/// A URL where nothing listens: `http://127.0.0.1:<port>/` for a port that was just
/// bound and released (connections are refused, unless something grabs it meanwhile).
pub fn unreachable_url() -> String {
    format!("http://127.0.0.1:{}/", free_port())
}

/// The index.txt line serial for `serial` (DER INTEGER contents): leading zero bytes
/// dropped, upper-case hex, even length (`"00"` for zero).
pub fn index_serial(serial: &[u8]) -> String {
    assert!(!serial.is_empty(), "OCSP index entry with an empty serial");
    let first = serial
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(serial.len() - 1);
    hex::encode_upper(&serial[first..])
}

// === openssl process ===

fn spawn_openssl(dir: &Path, port: u16, validity_args: &[&str]) -> Child {
    let log = File::create(dir.join("openssl.log")).expect("create openssl.log");
    let log2 = log.try_clone().expect("clone log handle");
    Command::new("openssl")
        .args(["ocsp", "-index", "index.txt", "-port"])
        .arg(port.to_string())
        .args([
            "-rsigner",
            "signer.pem",
            "-rkey",
            "signer.key",
            "-CA",
            "issuer.pem",
        ])
        .arg("-ignore_err")
        .args(validity_args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `openssl ocsp` (is openssl installed?): {e}"))
}

enum Ready {
    Yes,
    /// openssl exited saying it could not bind; its log.
    PortTaken(String),
    Failed(String),
}

/// Polls until openssl answers a full probe request on 127.0.0.1:`port`. Never connects
/// without sending a request: a bare connect + close wedges openssl (module docs).
fn wait_ready(child: &mut Child, port: u16, dir: &Path) -> Ready {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = read_log(dir);
            let lower = log.to_ascii_lowercase();
            if lower.contains("address already in use") || lower.contains("bind") {
                return Ready::PortTaken(log);
            }
            return Ready::Failed(format!(
                "openssl ocsp exited ({status}) before answering\n--- openssl log ---\n{log}"
            ));
        }
        match exchange(port, &probe_request(), Duration::from_millis(500)) {
            Ok(_) => return Ready::Yes,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                return Ready::Failed(format!(
                    "openssl ocsp on port {port} did not answer a probe: {e}\n--- openssl log ---\n{}",
                    read_log(dir)
                ));
            }
        }
        if Instant::now() > deadline {
            return Ready::Failed(format!(
                "openssl ocsp did not listen on port {port} within {STARTUP_TIMEOUT:?}\n--- openssl log ---\n{}",
                read_log(dir)
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn read_log(dir: &Path) -> String {
    match fs::read(dir.join("openssl.log")) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("<cannot read openssl.log: {e}>"),
    }
}

/// POSTs `der` (an OCSP request) to openssl on 127.0.0.1:`port`; `Ok(body)` on 200.
fn exchange(port: u16, der: &[u8], connect_timeout: Duration) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&loopback(port), connect_timeout)?;
    s.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    s.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
    let mut req = format!(
        "POST / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\n\r\n",
        der.len()
    )
    .into_bytes();
    req.extend_from_slice(der);
    s.write_all(&req)?;
    let raw = read_response(&mut BufReader::new(s))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 4);
    if !raw.starts_with(b"HTTP/1.0 200") && !raw.starts_with(b"HTTP/1.1 200") {
        let status = String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned();
        return Err(io::Error::other(format!("unexpected answer {status:?}")));
    }
    Ok(raw[split..].to_vec())
}

/// A fixed, valid OCSP request (SHA-1 CertID of zeros, serial 1): openssl answers it
/// `unknown`, signed, so it proves the responder works end to end.
fn probe_request() -> Vec<u8> {
    use super::pki::der_tlv;
    let sha1 = [
        0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00,
    ];
    let cert_id = der_tlv(
        0x30,
        &[
            &sha1[..],
            &der_tlv(0x04, &[0; 20]),
            &der_tlv(0x04, &[0; 20]),
            &der_tlv(0x02, &[1]),
        ]
        .concat(),
    );
    let request = der_tlv(0x30, &cert_id);
    let request_list = der_tlv(0x30, &request);
    let tbs_request = der_tlv(0x30, &request_list);
    der_tlv(0x30, &tbs_request)
}

// === index ===

fn write_index(dir: &Path, entries: &[(Vec<u8>, EntryStatus)], mtime: SystemTime) {
    let text = index_text(entries);
    let tmp = dir.join("index.txt.new");
    let mut f = File::create(&tmp).expect("create index.txt.new");
    f.write_all(text.as_bytes()).expect("write index.txt.new");
    f.set_modified(mtime).expect("set index.txt mtime");
    drop(f);
    fs::rename(&tmp, dir.join("index.txt")).expect("rename index.txt.new over index.txt");
}

fn index_text(entries: &[(Vec<u8>, EntryStatus)]) -> String {
    let revoked_at = utc_time(time::OffsetDateTime::now_utc() - time::Duration::hours(1));
    let mut seen = HashSet::new();
    let mut text = String::new();
    for (serial, status) in entries {
        let hex = index_serial(serial);
        assert!(
            seen.insert(hex.clone()),
            "OCSP index: serial {hex} listed twice (leading zero bytes do not count)"
        );
        let (flag, revoked) = match status {
            EntryStatus::Good => ('V', ""),
            EntryStatus::Revoked => ('R', revoked_at.as_str()),
        };
        text.push_str(&format!(
            "{flag}\t{INDEX_EXPIRY}\t{revoked}\t{hex}\tunknown\t/CN=serial-{hex}\n"
        ));
    }
    text
}

/// openssl's index time format: `YYMMDDHHMMSSZ`.
pub fn utc_time(t: time::OffsetDateTime) -> String {
    format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        t.year() % 100,
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

// === proxy ===

fn proxy_accept_loop(proxy: &Arc<Proxy>) {
    while !proxy.stop.load(Ordering::SeqCst) {
        let accepted = match lock(&proxy.listener).as_ref() {
            Some(l) => l.accept(),
            None => return,
        };
        match accepted {
            Ok((stream, _)) => {
                if proxy.down.load(Ordering::SeqCst) {
                    drop(stream); // refuse service: close without reading or answering
                    continue;
                }
                let p = proxy.clone();
                proxy.conns.spawn(
                    &format!("ocsp-proxy-conn-{}", proxy.openssl_port),
                    stream,
                    move |stream| proxy_connection(&p, stream),
                );
            }
            Err(_) => thread::sleep(ACCEPT_POLL),
        }
    }
}

fn proxy_connection(proxy: &Proxy, client: TcpStream) {
    if client.set_nonblocking(false).is_err()
        || client.set_read_timeout(Some(CLIENT_TIMEOUT)).is_err()
        || client.set_write_timeout(Some(CLIENT_TIMEOUT)).is_err()
    {
        return;
    }
    let Ok(read_half) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut client = client;
    // Only a complete request is ever forwarded: openssl must never see a connection
    // that closes without one.
    let req = match read_request(&mut reader, MAX_REQUEST_BODY) {
        Ok(Some(req)) => req,
        Ok(None) => return,
        Err(e) => {
            if e.kind() == io::ErrorKind::InvalidData {
                let _ = client.write_all(&plain_answer(400, &format!("ocsp proxy: {e}\n")));
            }
            return;
        }
    };
    *lock(&proxy.counts)
        .entry(req.method.to_ascii_uppercase())
        .or_insert(0) += 1;
    let answer = forward(proxy.openssl_port, &req).unwrap_or_else(|e| {
        plain_answer(
            502,
            &format!(
                "ocsp proxy: openssl ocsp did not answer {} {}: {e}\n",
                req.method, req.target
            ),
        )
    });
    let delay = *lock(&proxy.delay);
    if !nap(&proxy.stop, delay) {
        return;
    }
    if client
        .write_all(&answer)
        .and_then(|()| client.flush())
        .is_err()
    {
        return;
    }
    let _ = client.shutdown(Shutdown::Write);
    // Let the client read the answer and close first: closing with unread input would
    // send a reset that can destroy the answer in flight. Bounded to one second.
    let deadline = Instant::now() + Duration::from_secs(1);
    let _ = reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    while Instant::now() < deadline {
        match reader.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
}

/// Sends `req` to openssl and returns its whole answer (status line, headers, body).
fn forward(port: u16, req: &RawRequest) -> io::Result<Vec<u8>> {
    let mut up = TcpStream::connect_timeout(&loopback(port), UPSTREAM_TIMEOUT)?;
    up.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    up.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
    up.write_all(&req.to_bytes())?;
    read_response(&mut BufReader::new(up))
}

/// Reads one HTTP/1.x response: up to `Content-Length`, or to EOF without one.
fn read_response<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    r.take(8192).read_until(b'\n', &mut raw)?;
    if raw.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed without an answer",
        ));
    }
    if !raw.starts_with(b"HTTP/1.") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not an HTTP answer: {:?}", String::from_utf8_lossy(&raw)),
        ));
    }
    let headers = read_headers(r)?;
    let mut length = None;
    for (k, v) in &headers {
        raw.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        if k.eq_ignore_ascii_case("content-length") {
            length = v.parse::<u64>().ok();
        }
    }
    raw.extend_from_slice(b"\r\n");
    match length {
        Some(n) if n <= MAX_RESPONSE => {
            let start = raw.len();
            raw.resize(start + n as usize, 0);
            r.read_exact(&mut raw[start..])?;
        }
        Some(n) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("answer of {n} bytes"),
            ));
        }
        None => {
            r.take(MAX_RESPONSE).read_to_end(&mut raw)?;
        }
    }
    Ok(raw)
}

fn plain_answer(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.0 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        super::http_server::reason(status),
        body.len()
    )
    .into_bytes()
}
