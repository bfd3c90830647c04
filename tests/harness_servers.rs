//! Proves the loopback servers tests use for revocation: the CRL/file server
//! (tests/common/http_server.rs) and the real `openssl ocsp` responder behind its
//! counting proxy (tests/common/ocsp_responder.rs). Plain blocking sockets as clients.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::http_server::{HttpServer, read_headers};
use common::ocsp_responder::{EntryStatus, OcspResponder, index_serial, unreachable_url};
use common::pki::{Ca, Dir, Eku, Leaf, LeafSpec};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

// === a tiny blocking client ===

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// 127.0.0.1 port and path of an `http://127.0.0.1:PORT/path` URL.
fn split_url(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://127.0.0.1:").expect("loopback URL");
    let (port, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    (
        port.parse().expect("port"),
        format!("/{}", path.trim_start_matches('/')),
    )
}

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// One request with `Connection: close`; `Err` on any transport failure or when the
/// server closes without an answer.
fn request(method: &str, url: &str, body: Option<&[u8]>) -> Result<Reply, String> {
    let (port, path) = split_url(url);
    let mut s = connect(port).map_err(|e| format!("connect {url}: {e}"))?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(body) = body {
        req.push_str("Content-Type: application/ocsp-request\r\n");
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    s.write_all(&bytes)
        .map_err(|e| format!("write {url}: {e}"))?;
    read_reply(&mut BufReader::new(s)).map_err(|e| format!("{method} {url}: {e}"))
}

fn get(url: &str) -> Reply {
    request("GET", url, None).unwrap_or_else(|e| panic!("{e}"))
}

/// Reads one response (Content-Length body) off a possibly kept-alive connection.
fn read_reply(r: &mut impl BufRead) -> Result<Reply, String> {
    let mut status_line = String::new();
    r.read_line(&mut status_line).map_err(|e| e.to_string())?;
    if status_line.is_empty() {
        return Err("closed without an answer".into());
    }
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers = read_headers(r).map_err(|e| e.to_string())?;
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = reply
        .header("content-length")
        .ok_or("no Content-Length")?
        .parse()
        .map_err(|_| "bad Content-Length")?;
    reply.body = vec![0; len];
    r.read_exact(&mut reply.body).map_err(|e| e.to_string())?;
    Ok(reply)
}

// === HttpServer ===

#[test]
fn http_server_serves_counts_404s_and_keeps_connections_alive() {
    let srv = HttpServer::start();
    srv.set("/a.crl", 200, b"first".to_vec());
    srv.set("teapot", 418, b"short and stout".to_vec());
    assert_eq!(
        srv.url("/a.crl"),
        format!("http://127.0.0.1:{}/a.crl", srv.port())
    );

    let r = get(&srv.url("/a.crl"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"first"[..]));
    assert_eq!(r.header("content-type"), Some("application/pkix-crl"));
    assert_eq!(get(&srv.url("/teapot?x=1")).status, 418);
    assert_eq!(get(&srv.url("/missing")).status, 404);
    // Non-GET methods are refused and not counted.
    assert_eq!(
        request("POST", &srv.url("/a.crl"), Some(b"x"))
            .unwrap()
            .status,
        405
    );

    srv.set("/a.crl", 503, b"later".to_vec());
    let r = get(&srv.url("/a.crl"));
    assert_eq!((r.status, r.body.as_slice()), (503, &b"later"[..]));
    assert_eq!(srv.requests("/a.crl"), 2);
    assert_eq!(srv.requests("/teapot"), 1);
    assert_eq!(srv.requests("/missing"), 1);
    assert_eq!(srv.requests("/never"), 0);

    // Keep-alive: two requests on one connection, both answered and counted.
    srv.set("/k", 200, b"kept".to_vec());
    let mut s = connect(srv.port()).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for _ in 0..2 {
        s.write_all(b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let reply = read_reply(&mut r).unwrap();
        assert_eq!((reply.status, reply.body.as_slice()), (200, &b"kept"[..]));
        assert_eq!(reply.header("connection"), Some("keep-alive"));
    }
    assert_eq!(srv.requests("/k"), 2);
}

#[test]
fn http_server_goes_down_refusing_connections_and_comes_back_on_the_same_port() {
    let srv = HttpServer::start();
    srv.set("/c.crl", 200, b"crl".to_vec());
    let port = srv.port();
    assert_eq!(get(&srv.url("/c.crl")).status, 200);

    // An idle keep-alive connection is closed too.
    let mut idle = connect(port).unwrap();
    idle.write_all(b"GET /c.crl HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut idle_reader = BufReader::new(idle.try_clone().unwrap());
    assert_eq!(read_reply(&mut idle_reader).unwrap().status, 200);

    srv.set_down(true);
    let err = TcpStream::connect(("127.0.0.1", port)).expect_err("the server is down");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    let mut rest = Vec::new();
    let n = idle_reader.read_to_end(&mut rest).unwrap_or(0);
    assert_eq!(n, 0, "the kept-alive connection was closed");
    assert_eq!(srv.requests("/c.crl"), 2);

    srv.set_down(false);
    assert_eq!(srv.port(), port);
    let r = get(&srv.url("/c.crl"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"crl"[..]));
    assert_eq!(srv.requests("/c.crl"), 3);
}

#[test]
fn http_server_delays_and_streams_a_huge_body_without_holding_it() {
    let srv = HttpServer::start();
    srv.set("/slow.crl", 200, b"slow".to_vec());
    srv.set_delay("/slow.crl", Duration::from_millis(400));
    let t = Instant::now();
    assert_eq!(get(&srv.url("/slow.crl")).status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(srv.requests("/slow.crl"), 1);
    srv.set_delay("/slow.crl", Duration::ZERO);
    let t = Instant::now();
    get(&srv.url("/slow.crl"));
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );

    // 200 MB announced; read 4 MB of it, then hang up.
    srv.set_huge("/huge.crl", 200 << 20);
    let mut s = connect(srv.port()).unwrap();
    s.write_all(b"GET /huge.crl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let headers = read_headers(&mut r).unwrap();
    assert!(
        headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("content-length") && v == "209715200"),
        "{headers:?}"
    );
    let mut chunk = vec![0u8; 4 << 20];
    r.read_exact(&mut chunk).unwrap();
    drop(r);
    // The server shrugs the hang-up off.
    assert_eq!(get(&srv.url("/slow.crl")).status, 200);
    assert_eq!(srv.requests("/huge.crl"), 1);
}

#[test]
fn servers_stop_on_drop() {
    let srv = HttpServer::start();
    srv.set("/x", 200, b"x".to_vec());
    let port = srv.port();
    // A connection left open does not hold up the drop.
    let _open = connect(port).unwrap();
    let t = Instant::now();
    drop(srv);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());

    let ca = Ca::root("Drop Root");
    let ocsp = OcspResponder::start(&ca.cert_pem, &ca.cert_pem, &ca.key_pem, &[]);
    let (port, _) = split_url(&ocsp.url());
    drop(ocsp);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());

    let (port, _) = split_url(&unreachable_url());
    let err = TcpStream::connect(("127.0.0.1", port)).expect_err("nothing listens");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

// === OcspResponder ===

/// A DER OCSP request for `leaf` made by `openssl ocsp -reqout` (SHA-1 CertID, no nonce).
fn ocsp_request(dir: &Dir, ca: &Ca, leaf: &Leaf) -> Vec<u8> {
    let issuer = dir.write("issuer.pem", &ca.cert_pem);
    let cert = dir.write("leaf.pem", &leaf.cert_pem);
    let out = dir.join("req.der");
    run_openssl(&[
        "ocsp",
        "-issuer",
        issuer.to_str().unwrap(),
        "-cert",
        cert.to_str().unwrap(),
        "-no_nonce",
        "-reqout",
        out.to_str().unwrap(),
    ]);
    std::fs::read(out).expect("req.der")
}

fn run_openssl(args: &[&str]) -> (String, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "openssl {args:?}: {stdout}{stderr}");
    (stdout, stderr)
}

/// `openssl ocsp -respin ... -resp_text` of a response, checked against `ca`.
fn response_text(dir: &Dir, ca: &Ca, der: &[u8]) -> String {
    let resp = dir.write("resp.der", der);
    let ca_file = dir.write("trust.pem", &ca.cert_pem);
    let (stdout, stderr) = run_openssl(&[
        "ocsp",
        "-respin",
        resp.to_str().unwrap(),
        "-CAfile",
        ca_file.to_str().unwrap(),
        "-resp_text",
    ]);
    assert!(stderr.contains("Response verify OK"), "{stderr}\n{stdout}");
    stdout
}

fn cert_status(text: &str) -> &str {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Cert Status: "))
        .unwrap_or_else(|| panic!("no Cert Status in:\n{text}"))
}

/// POSTs a request for `leaf` to the responder and returns the status it reads.
fn ask(ocsp: &OcspResponder, dir: &Dir, ca: &Ca, leaf: &Leaf) -> String {
    let req = ocsp_request(dir, ca, leaf);
    let reply = request("POST", &ocsp.url(), Some(&req)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("application/ocsp-response")
    );
    cert_status(&response_text(dir, ca, &reply.body)).to_string()
}

#[test]
fn ocsp_responder_answers_good_revoked_unknown_by_post_and_get_and_counts_exactly() {
    let ca = Ca::root("Harness OCSP Root");
    let good = ca.leaf(LeafSpec::client("good"));
    // First byte >= 0x80: the DER serial carries a leading zero byte.
    let revoked = ca.leaf(LeafSpec::client("revoked").serial(vec![0x8a, 1, 2, 3]));
    assert_eq!(revoked.serial, [0, 0x8a, 1, 2, 3]);
    assert_eq!(index_serial(&revoked.serial), "8A010203");
    let unknown = ca.leaf(LeafSpec::client("unknown"));
    let ocsp = OcspResponder::start(
        &ca.cert_pem,
        &ca.cert_pem,
        &ca.key_pem,
        &[
            (good.serial.clone(), EntryStatus::Good),
            (revoked.serial.clone(), EntryStatus::Revoked),
        ],
    );
    assert_eq!(ocsp.requests(), 0, "the readiness probe is not counted");
    let dir = Dir::new();

    assert_eq!(ask(&ocsp, &dir, &ca, &good), "good");
    assert_eq!(ask(&ocsp, &dir, &ca, &revoked), "revoked");
    assert_eq!(ask(&ocsp, &dir, &ca, &unknown), "unknown");
    assert_eq!(ocsp.requests(), 3);

    // GET /<percent-encoded base64 of the DER request>.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(ocsp_request(&dir, &ca, &good));
    let escaped = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let reply = get(&format!("{}{escaped}", ocsp.url()));
    assert_eq!(reply.status, 200);
    assert_eq!(cert_status(&response_text(&dir, &ca, &reply.body)), "good");

    // openssl's own client, through the proxy.
    let (stdout, _) = run_openssl(&[
        "ocsp",
        "-issuer",
        dir.join("issuer.pem").to_str().unwrap(),
        "-cert",
        dir.write("revoked.pem", &revoked.cert_pem)
            .to_str()
            .unwrap(),
        "-url",
        &ocsp.url(),
        "-CAfile",
        dir.join("issuer.pem").to_str().unwrap(),
    ]);
    assert!(stdout.contains("revoked.pem: revoked"), "{stdout}");

    assert_eq!(ocsp.requests(), 5);
    assert_eq!(ocsp.requests_by_method("POST"), 4);
    assert_eq!(ocsp.requests_by_method("get"), 1);
    assert_eq!(ocsp.requests_by_method("PUT"), 0);
    assert!(ocsp.log().contains("Received request"), "{}", ocsp.log());
}

#[test]
fn ocsp_responder_index_changes_need_a_poke() {
    let ca = Ca::root("Harness OCSP Reload Root");
    let leaf = ca.leaf(LeafSpec::client("later-revoked").serial(vec![0x91, 0x22]));
    // Listed without the leading zero byte the certificate's serial has.
    let ocsp = OcspResponder::start(
        &ca.cert_pem,
        &ca.cert_pem,
        &ca.key_pem,
        &[(leaf.serial[1..].to_vec(), EntryStatus::Good)],
    );
    let dir = Dir::new();
    assert_eq!(ask(&ocsp, &dir, &ca, &leaf), "good");

    // With poke: the very next request sees the new index.
    ocsp.set_entries(&[(leaf.serial.clone(), EntryStatus::Revoked)]);
    ocsp.poke();
    assert_eq!(ask(&ocsp, &dir, &ca, &leaf), "revoked");

    // Without poke, openssl answers once more from the old index (it looks for changes
    // only before waiting for a connection; the pause lets it get there first).
    std::thread::sleep(Duration::from_millis(250));
    ocsp.set_entries(&[(leaf.serial.clone(), EntryStatus::Good)]);
    assert_eq!(ask(&ocsp, &dir, &ca, &leaf), "revoked", "one request late");
    assert_eq!(ask(&ocsp, &dir, &ca, &leaf), "good");

    // Emptied: unknown. Pokes are not counted.
    ocsp.set_entries(&[]);
    ocsp.poke();
    assert_eq!(ask(&ocsp, &dir, &ca, &leaf), "unknown");
    assert_eq!(ocsp.requests(), 5);
}

#[test]
fn ocsp_responder_down_and_slow() {
    let ca = Ca::root("Harness OCSP Flaky Root");
    let leaf = ca.leaf(LeafSpec::client("c"));
    let ocsp = OcspResponder::start(
        &ca.cert_pem,
        &ca.cert_pem,
        &ca.key_pem,
        &[(leaf.serial.clone(), EntryStatus::Good)],
    );
    let dir = Dir::new();
    let req = ocsp_request(&dir, &ca, &leaf);

    ocsp.set_down(true);
    let err = request("POST", &ocsp.url(), Some(&req)).expect_err("the responder is down");
    assert!(
        !err.starts_with("connect "),
        "down accepts, then closes: {err}"
    );
    assert_eq!(ocsp.requests(), 0);
    ocsp.set_down(false);
    assert_eq!(ask(&ocsp, &dir, &ca, &leaf), "good");

    ocsp.set_delay(Duration::from_millis(600));
    let t = Instant::now();
    assert_eq!(ask(&ocsp, &dir, &ca, &leaf), "good");
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
    ocsp.set_delay(Duration::ZERO);
    let t = Instant::now();
    assert_eq!(ask(&ocsp, &dir, &ca, &leaf), "good");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(ocsp.requests(), 3);
}

#[test]
fn ocsp_responder_with_delegated_signer_and_validity_args() {
    let ca = Ca::root("Harness OCSP Delegating Root");
    let signer = ca.leaf(LeafSpec::client("ocsp-signer").eku(Eku::OcspSigning));
    let leaf = ca.leaf(LeafSpec::client("c"));
    let entries = [(leaf.serial.clone(), EntryStatus::Good)];
    let dir = Dir::new();

    // Delegated signer, no validity args: no nextUpdate.
    let ocsp = OcspResponder::start_with(
        &ca.cert_pem,
        &signer.cert_pem,
        &signer.key_pem,
        &entries,
        &[],
    );
    let reply = request("POST", &ocsp.url(), Some(&ocsp_request(&dir, &ca, &leaf))).unwrap();
    let text = response_text(&dir, &ca, &reply.body);
    assert_eq!(cert_status(&text), "good");
    assert!(text.contains("Responder Id: CN = ocsp-signer"), "{text}");
    assert!(!text.contains("Next Update"), "{text}");

    // -nmin 1: a nextUpdate.
    let ocsp = OcspResponder::start_with(
        &ca.cert_pem,
        &ca.cert_pem,
        &ca.key_pem,
        &entries,
        &["-nmin", "1"],
    );
    let reply = request("POST", &ocsp.url(), Some(&ocsp_request(&dir, &ca, &leaf))).unwrap();
    let text = response_text(&dir, &ca, &reply.body);
    assert!(text.contains("Next Update"), "{text}");
}
