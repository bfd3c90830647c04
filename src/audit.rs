//! The audit log: one JSON line per decision (spec §6), written by one background
//! thread so that a slow disk or a blocked stdout never delays a decision.
//!
//! The request path hands the writer a [`AuditRecord`] that holds the decision itself
//! (reference-counted roles and certificates, no copies) through a bounded queue; when
//! the queue is full the record is dropped and counted, never waited for. The writer
//! formats each line — role, decision, reason, caller IP, the certificate's serial,
//! fingerprint, issuer and subject, and the role's `audit_log_sub_claims` — and never
//! the certificate itself. A file sink is rotated by size (`<path>.1` is the newest
//! rotated file).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::config::schema::AuditConfig;
use crate::engine::cache::ClientCert;
use crate::engine::{Decision, RoleVerdict, unique_identifier};
use crate::snapshot::Role;

/// RFC 3339, UTC, milliseconds: `2026-11-23T18:01:14.770Z`.
const TIME_FORMAT: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// What happened to audit records, for metrics.
#[derive(Debug, Default)]
pub struct AuditCounters {
    /// Lines written.
    pub written: AtomicU64,
    /// Records dropped because the queue was full (or the writer had stopped).
    pub dropped: AtomicU64,
    /// Lines that could not be written (I/O errors, rotation failures).
    pub failed: AtomicU64,
}

/// One decision, as the request path hands it over.
#[derive(Debug)]
pub struct AuditRecord {
    /// When the decision was made.
    pub at: OffsetDateTime,
    /// Envoy's `x-request-id`.
    pub request_id: Option<String>,
    /// The route's `certgate_roles`, as configured (`None`: every role was tried).
    pub roles_asked: Option<String>,
    /// What was asked for: method, host (`:authority`) and path without the query
    /// string (which may carry secrets), each at most [`MAX_HTTP_FIELD`] bytes.
    pub http: HttpSummary,
    /// The caller after the `trusted_proxies` / X-Forwarded-For rule.
    pub caller_ip: Option<IpAddr>,
    /// The immediate peer Envoy saw.
    pub peer_ip: Option<IpAddr>,
    /// The request carried an XFCC header that was not believed (untrusted peer):
    /// the difference between "no certificate" and "a certificate nobody vouched for".
    pub xfcc_ignored: bool,
    /// The decision itself.
    pub decision: Decision,
    /// On a deny, the role whose reason is reported (its sub-claims are written).
    pub denied_role: Option<Arc<Role>>,
}

/// The request line, as much of it as an audit trail needs.
#[derive(Debug, Default, Clone, Serialize)]
pub struct HttpSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Longest host or path kept (longer ones are cut on a character boundary).
pub const MAX_HTTP_FIELD: usize = 256;

impl HttpSummary {
    /// From Envoy's pseudo-headers; the query string is never kept.
    pub fn of(method: Option<&str>, host: Option<&str>, path: Option<&str>) -> HttpSummary {
        let cut = |s: &str| {
            let mut end = s.len().min(MAX_HTTP_FIELD);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_string()
        };
        HttpSummary {
            method: method.map(cut),
            host: host.map(cut),
            path: path.map(|p| cut(p.split(['?', '#']).next().unwrap_or(p))),
        }
    }
}

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSink {
    /// Standard output (logs go to stderr, so stdout carries only audit lines).
    Stdout,
    /// Nothing is recorded.
    Disabled,
    /// A file, rotated by size.
    File(PathBuf),
}

impl AuditSink {
    /// `audit.sink` as configured; a relative file path is taken from `base` (the
    /// config file's directory).
    pub fn from_config(sink: &str, base: Option<&Path>) -> AuditSink {
        match sink.trim() {
            "stdout" | "-" => AuditSink::Stdout,
            "none" | "off" => AuditSink::Disabled,
            path => {
                let path = Path::new(path);
                AuditSink::File(match base {
                    Some(base) if path.is_relative() => base.join(path),
                    _ => path.to_path_buf(),
                })
            }
        }
    }
}

/// Control messages and records share the queue so that closing flushes what was
/// queued before it.
enum Message {
    Record(Box<AuditRecord>),
    Close,
}

/// The audit log handle the request path holds.
pub struct AuditLog {
    /// `None` when disabled.
    sender: Option<SyncSender<Message>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<AuditCounters>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("enabled", &self.sender.is_some())
            .field("counters", &self.counters)
            .finish()
    }
}

impl AuditLog {
    /// A log that records nothing.
    pub fn disabled() -> AuditLog {
        AuditLog {
            sender: None,
            writer: Mutex::new(None),
            counters: Arc::default(),
        }
    }

    /// Opens the sink (a file is created if missing, appended to otherwise) and starts
    /// the writer thread. Fails if the file cannot be opened: a service that was asked
    /// to keep an audit trail must not start without one.
    pub fn start(sink: AuditSink, config: &AuditConfig) -> io::Result<AuditLog> {
        let out = match sink {
            AuditSink::Disabled => return Ok(AuditLog::disabled()),
            AuditSink::Stdout => Output::Stdout(BufWriter::new(io::stdout())),
            AuditSink::File(path) => {
                Output::File(RotatingFile::open(path, config.max_size, config.max_files)?)
            }
        };
        let (sender, receiver) = std::sync::mpsc::sync_channel(config.queue.max(1));
        let counters = Arc::new(AuditCounters::default());
        let writer_counters = Arc::clone(&counters);
        let writer = std::thread::Builder::new()
            .name("certgate-audit".into())
            .spawn(move || write_loop(receiver, out, &writer_counters))?;
        Ok(AuditLog {
            sender: Some(sender),
            writer: Mutex::new(Some(writer)),
            counters,
        })
    }

    /// Whether records are kept (callers skip building one otherwise).
    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Queues a record; never blocks. A full queue drops it and counts the drop.
    pub fn record(&self, record: AuditRecord) {
        let Some(sender) = &self.sender else { return };
        match sender.try_send(Message::Record(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Written, dropped and failed records.
    pub fn counters(&self) -> &Arc<AuditCounters> {
        &self.counters
    }

    /// Writes out everything queued so far, flushes and stops the writer. Records
    /// offered afterwards are counted as dropped. Called on shutdown.
    pub fn close(&self) {
        let handle = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let (Some(sender), Some(handle)) = (&self.sender, handle) {
            // A blocking send: it waits only for the writer to make room.
            let _ = sender.send(Message::Close);
            let _ = handle.join();
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer polls rather than blocking in `recv`: a receiver blocked in `recv` must
/// be woken by the sender, a futex syscall on the request path for every record
/// (measured: audit on cost certgate +29% CPU per request under load when the writer
/// blocked). Polling, a request only enqueues. The writer drains everything queued,
/// flushes once, then sleeps [`POLL_MIN`], doubling while idle up to [`POLL_MAX`]: a
/// line reaches the sink within `POLL_MAX` of its decision.
fn write_loop(receiver: Receiver<Message>, mut out: Output, counters: &AuditCounters) {
    let mut line = Vec::with_capacity(1024);
    let mut pause = POLL_MIN;
    loop {
        let mut wrote = false;
        loop {
            match receiver.try_recv() {
                Ok(Message::Record(record)) => {
                    wrote = true;
                    line.clear();
                    if serde_json::to_writer(&mut line, &Line::of(&record)).is_err() {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    line.push(b'\n');
                    match out.write_line(&line) {
                        Ok(()) => {
                            counters.written.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => failed(counters, &e),
                    }
                }
                Ok(Message::Close) | Err(TryRecvError::Disconnected) => {
                    if let Err(e) = out.flush() {
                        failed(counters, &e);
                    }
                    return;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        if wrote {
            if let Err(e) = out.flush() {
                failed(counters, &e);
            }
            pause = POLL_MIN;
        } else {
            pause = (pause * 2).min(POLL_MAX);
        }
        std::thread::sleep(pause);
    }
}

/// The writer's shortest sleep between drains (while records keep coming).
const POLL_MIN: Duration = Duration::from_millis(5);
/// Its longest (idle).
const POLL_MAX: Duration = Duration::from_millis(100);

/// Counts a write failure; logs the first and every 1000th (a full disk fails every
/// line, and the log must not become the next full disk).
fn failed(counters: &AuditCounters, error: &io::Error) {
    let n = counters.failed.fetch_add(1, Ordering::Relaxed);
    if n.is_multiple_of(1000) {
        tracing::error!(error = %error, failures = n + 1, "cannot write the audit log");
    }
}

// === the line ===

/// The JSON object of one line. Field order is the order operators read in.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    decision: &'static str,
    reason: &'static str,
    /// The route's role list; `null` = every role was tried.
    roles_asked: Option<Vec<&'a str>>,
    #[serde(flatten)]
    http: &'a HttpSummary,
    role: Option<&'a str>,
    caller_ip: Option<String>,
    peer_ip: Option<String>,
    /// Present (true) only when an XFCC header was ignored.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    xfcc_ignored: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert: Option<CertLine<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    claims: BTreeMap<&'a str, String>,
    /// Deny only: the reported reason in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    /// Deny only: every role tried.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    roles: Vec<VerdictLine<'a>>,
}

/// What identifies the certificate — never the certificate.
#[derive(Serialize)]
struct CertLine<'a> {
    serial: &'a str,
    fingerprint_sha256: &'a str,
    issuer: &'a str,
    subject: &'a str,
}

#[derive(Serialize)]
struct VerdictLine<'a> {
    role: &'a str,
    reason: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    detail: String,
}

impl<'a> Line<'a> {
    fn of(r: &'a AuditRecord) -> Line<'a> {
        // Fixed width (milliseconds, UTC) so that lines sort as text.
        let time =
            r.at.to_offset(time::UtcOffset::UTC)
                .format(TIME_FORMAT)
                .unwrap_or_default();
        let base = Line {
            time,
            request_id: r.request_id.as_deref(),
            decision: "",
            reason: "",
            roles_asked: r.roles_asked.as_deref().map(|roles| {
                roles
                    .split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .collect()
            }),
            http: &r.http,
            role: None,
            caller_ip: r.caller_ip.map(|ip| ip.to_string()),
            peer_ip: r.peer_ip.map(|ip| ip.to_string()),
            xfcc_ignored: r.xfcc_ignored,
            cert: None,
            claims: BTreeMap::new(),
            detail: None,
            roles: Vec::new(),
        };
        match &r.decision {
            Decision::Allow(grant) => Line {
                decision: "allow",
                reason: "ok",
                role: Some(&grant.role.name),
                cert: Some(CertLine::of(&grant.client)),
                claims: claims(&grant.role, &grant.client, Some(&grant.sub), &grant.meta),
                ..base
            },
            Decision::Deny(denial) => Line {
                decision: "deny",
                reason: denial.reason.code(),
                role: denial.role.as_deref(),
                cert: denial.client.as_deref().map(CertLine::of),
                claims: match (&r.denied_role, &denial.client) {
                    (Some(role), Some(client)) => {
                        let sub = unique_identifier(role.unique_identifier, &client.leaf);
                        claims(role, client, sub.as_deref(), &[])
                    }
                    _ => BTreeMap::new(),
                },
                detail: Some(denial.reason.to_string()),
                roles: denial.verdicts.iter().map(VerdictLine::of).collect(),
                ..base
            },
        }
    }
}

impl<'a> CertLine<'a> {
    fn of(client: &'a ClientCert) -> CertLine<'a> {
        let leaf = &client.leaf;
        CertLine {
            serial: &leaf.serial_hex,
            fingerprint_sha256: &leaf.fingerprint_hex,
            issuer: &leaf.issuer,
            subject: &leaf.subject,
        }
    }
}

impl<'a> VerdictLine<'a> {
    fn of(v: &'a RoleVerdict) -> VerdictLine<'a> {
        match &v.outcome {
            Ok(()) => VerdictLine {
                role: &v.role,
                reason: "ok",
                detail: String::new(),
            },
            Err(reason) => VerdictLine {
                role: &v.role,
                reason: reason.code(),
                detail: reason.to_string(),
            },
        }
    }
}

/// The role's `audit_log_sub_claims`, each with its value for this certificate (a
/// claim with no value is left out). `sub` is absent when the role's
/// `unique_identifier` field is missing from the certificate; `meta-*` claims exist
/// only on an allow, where the metadata extensions were read.
fn claims<'a>(
    role: &'a Role,
    client: &ClientCert,
    sub: Option<&str>,
    meta: &[(String, String)],
) -> BTreeMap<&'a str, String> {
    let leaf = &client.leaf;
    let mut out = BTreeMap::new();
    for claim in &role.audit_log_sub_claims {
        let value = match claim.as_str() {
            "role" => Some(role.name.to_string()),
            "display_name" => Some(role.display_name.to_string()),
            "sub" => sub.map(str::to_string),
            "subject" => Some(leaf.subject.clone()),
            "issuer" => Some(leaf.issuer.clone()),
            "serial" => Some(leaf.serial_hex.clone()),
            "fingerprint_sha256" => Some(leaf.fingerprint_hex.clone()),
            "common_name" => leaf.common_names.first().cloned(),
            "uri_sans" => Some(client.uri_sans_joined.clone()),
            "dns_sans" => Some(client.dns_sans_joined.clone()),
            "email_sans" => Some(leaf.email_sans.join(",")),
            other => other
                .strip_prefix("meta-")
                .and_then(|key| meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())),
        };
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            out.insert(claim.as_str(), value);
        }
    }
    out
}

// === output ===

enum Output {
    Stdout(BufWriter<io::Stdout>),
    File(RotatingFile),
}

impl Output {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Output::Stdout(out) => out.write_all(line),
            Output::File(file) => file.write_line(line),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(out) => out.flush(),
            Output::File(file) => file.out.flush(),
        }
    }
}

/// An append-only file rotated when the next line would take it past `max_size`.
struct RotatingFile {
    path: PathBuf,
    out: BufWriter<File>,
    /// Bytes in the current file (including what is buffered).
    size: u64,
    max_size: u64,
    max_files: u32,
}

impl RotatingFile {
    fn open(path: PathBuf, max_size: u64, max_files: u32) -> io::Result<RotatingFile> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path,
            out: BufWriter::new(file),
            size,
            max_size,
            max_files,
        })
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.out.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    /// `<path>.N-1` → `<path>.N`, …, `<path>` → `<path>.1`, then a new `<path>`.
    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if self.max_files == 0 {
            let file = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&self.path)?;
            self.out = BufWriter::new(file);
            self.size = 0;
            return Ok(());
        }
        for n in (1..self.max_files).rev() {
            match std::fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.out = BufWriter::new(file);
        self.size = 0;
        Ok(())
    }
}

/// `<path>.n`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_from_config() {
        let base = Path::new("/etc/certgate");
        assert_eq!(
            AuditSink::from_config("stdout", Some(base)),
            AuditSink::Stdout
        );
        assert_eq!(
            AuditSink::from_config(" none ", Some(base)),
            AuditSink::Disabled
        );
        assert_eq!(
            AuditSink::from_config("audit.log", Some(base)),
            AuditSink::File(PathBuf::from("/etc/certgate/audit.log"))
        );
        assert_eq!(
            AuditSink::from_config("/var/log/a.log", Some(base)),
            AuditSink::File(PathBuf::from("/var/log/a.log"))
        );
    }

    #[test]
    fn http_summary_is_bounded_and_drops_the_query() {
        let long = format!("/{}", "é".repeat(300));
        let h = HttpSummary::of(None, Some(&"h".repeat(1000)), Some(&long));
        assert_eq!(h.host.as_deref().map(str::len), Some(MAX_HTTP_FIELD));
        let path = h.path.unwrap();
        assert!(path.len() <= MAX_HTTP_FIELD && path.len() >= MAX_HTTP_FIELD - 1);
        assert!(path.ends_with('é'));
        assert_eq!(
            HttpSummary::of(None, None, Some("/a#frag?x"))
                .path
                .as_deref(),
            Some("/a")
        );
        assert!(HttpSummary::of(None, None, None).path.is_none());
    }

    #[test]
    fn rotation_keeps_max_files() {
        let dir = std::env::temp_dir().join(format!("certgate-audit-rot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let mut file = RotatingFile::open(path.clone(), 100, 2).unwrap();
        let line = [b'x'; 39];
        for i in 0..10u8 {
            let mut l = line.to_vec();
            l[0] = b'0' + i;
            l.push(b'\n');
            file.write_line(&l).unwrap();
        }
        file.out.flush().unwrap();
        // 40-byte lines, 100-byte files: two lines per file.
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path).lines().count(), 2);
        assert!(read(&path).starts_with('8'));
        assert!(read(&numbered(&path, 1)).starts_with('6'));
        assert!(read(&numbered(&path, 2)).starts_with('4'));
        assert!(!numbered(&path, 3).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let dir = std::env::temp_dir().join(format!("certgate-audit-q-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = AuditConfig {
            queue: 1,
            ..AuditConfig::default()
        };
        let log = AuditLog::start(AuditSink::File(dir.join("a.log")), &config).unwrap();
        let denial = || AuditRecord {
            at: OffsetDateTime::UNIX_EPOCH,
            request_id: Some("r".into()),
            roles_asked: None,
            http: HttpSummary::of(
                Some("GET"),
                Some("api.example.com"),
                Some("/x?token=secret"),
            ),
            caller_ip: None,
            peer_ip: None,
            xfcc_ignored: false,
            decision: Decision::Deny(crate::engine::Denial {
                reason: crate::engine::Reason::NoClientCertificate,
                role: None,
                verdicts: Vec::new(),
                client: None,
            }),
            denied_role: None,
        };
        for _ in 0..2000 {
            log.record(denial());
        }
        log.close();
        let c = log.counters();
        let written = c.written.load(Ordering::Relaxed);
        let dropped = c.dropped.load(Ordering::Relaxed);
        assert_eq!(written + dropped, 2000);
        assert!(written >= 1, "the writer drained some records");
        let text = std::fs::read_to_string(dir.join("a.log")).unwrap();
        assert_eq!(text.lines().count() as u64, written);
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["decision"], "deny");
        assert_eq!(first["reason"], "no_client_certificate");
        assert_eq!(first["time"], "1970-01-01T00:00:00.000Z");
        assert!(first["roles_asked"].is_null());
        assert_eq!(first["method"], "GET");
        assert_eq!(first["host"], "api.example.com");
        assert_eq!(first["path"], "/x", "the query string is never logged");
        // After close, records are dropped, not queued forever.
        log.record(denial());
        assert_eq!(c.dropped.load(Ordering::Relaxed), dropped + 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
