//! What certgate adds to a real Envoy 1.40 request path, as ratios against baselines
//! measured in the same run (the machines are shared and noisy: absolute numbers drift,
//! ratios hold better).
//!
//! Three setups, one after the other, on 127.0.0.1 with ephemeral ports, each measured
//! for `--seconds` (default 10) after a 1 s warm-up, with `--connections` (default 8)
//! closed-loop HTTP/1.1 keep-alive mTLS connections (one reqwest client each; every
//! connection sends its next `GET /web/load` as soon as the previous one is answered):
//!
//! - `plain`: `envoy/test-plain-mtls.yaml`, downstream mTLS → echo upstream, no ext_authz;
//! - `certgate`: `envoy/front-proxy.yaml` → the release `certgate` binary (one role that
//!   allows the client; its verified-chain cache is warm after the first request) →
//!   echo upstream;
//! - `noop`: the same front proxy with its ext_authz cluster pointed at an in-process
//!   Authorization server that always answers OK (tonic, own thread, TCP_NODELAY).
//!
//! For each: requests/s, p50/p90/p99 latency, errors (any non-200 or transport error,
//! warm-up included; there must be none), and CPU time per request of Envoy, the authz
//! server, the echo upstream and this client, from `/proc/.../stat` before and after the
//! window, plus how busy Envoy's one worker thread and the whole machine were and how
//! much CPU went to other processes.
//! Then ratios: certgate vs plain, certgate vs noop, noop vs plain.
//!
//! With `--audit`, a fourth setup `cg+audit`: certgate again, writing every decision to
//! an audit file, and the ratios cg+audit vs certgate (what the audit log costs).
//!
//! Run: `scripts/load.sh [--seconds N] [--connections C] [--audit]` (installs Envoy, builds the
//! release `certgate` binary, runs this in release). Exits 1 if any request failed.

#[path = "../tests/common/envoy.rs"]
#[allow(dead_code)]
mod envoy;
#[path = "../tests/common/pki.rs"]
#[allow(dead_code)]
mod pki;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use envoy::{Certgate, Envoy, Upstream, envoy_template, free_port, https_url, render};
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, OkHttpResponse,
};
use envoy_types::pb::google::rpc;
use pki::{Ca, Dir, LeafSpec, bundle};

const WARMUP: Duration = Duration::from_secs(1);
/// Pins the `web` role through the front proxy's per-route `certgate_roles`.
const PATH: &str = "/web/load";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Distinct error messages quoted per setup.
const ERRORS_SHOWN: usize = 10;

struct Args {
    seconds: u64,
    connections: usize,
    /// Also measure certgate with its audit log written to a file.
    audit: bool,
}

fn parse_args() -> Args {
    let usage = "usage: loadgen [--seconds N] [--connections C] [--audit]";
    let mut args = Args {
        seconds: 10,
        connections: 8,
        audit: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = |name: &str| -> u64 {
            let v = inline.clone().or_else(|| it.next()).unwrap_or_else(|| {
                eprintln!("{name} needs a value\n{usage}");
                std::process::exit(2)
            });
            match v.parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => {
                    eprintln!("{name}: not a positive integer: {v:?}\n{usage}");
                    std::process::exit(2)
                }
            }
        };
        match name.as_str() {
            "--seconds" => args.seconds = value("--seconds"),
            "--connections" => args.connections = value("--connections") as usize,
            "--audit" => args.audit = true,
            "-h" | "--help" => {
                println!("{usage}");
                std::process::exit(0)
            }
            _ => {
                eprintln!("unknown argument {arg:?}\n{usage}");
                std::process::exit(2)
            }
        }
    }
    args
}

// ---------------------------------------------------------------------------------------
// PKI and certgate's config
// ---------------------------------------------------------------------------------------

/// Files and PEMs shared by the three setups.
struct World {
    dir: Dir,
    server_ca_pem: String,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_ca: PathBuf,
    /// What the client presents: leaf then intermediate.
    client_chain_pem: String,
    client_key_pem: String,
    certgate_config: PathBuf,
    /// The same with `audit: { sink: audit.log }` (next to it).
    certgate_audit_config: PathBuf,
}

fn world() -> World {
    let dir = Dir::new();
    let server_ca = Ca::root("Load Server CA");
    let server = server_ca.leaf(
        LeafSpec::server("localhost")
            .dns("localhost")
            .ip("127.0.0.1"),
    );
    let root = Ca::root("Load Clients Root");
    let inter = root.intermediate("Load Clients Issuing CA");
    let leaf = inter.leaf(
        LeafSpec::client("web-1")
            .ou("eng")
            .uri("spiffe://cluster.local/ns/prod/sa/web"),
    );
    let indented: String = root
        .cert_pem
        .trim()
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect();
    dir.write(
        "cg/roles/web.yaml",
        format!(
            "certificate: |\n{indented}allowed_organizational_units: eng\n\
             allowed_uri_sans: spiffe://cluster.local/ns/prod/sa/*\ntoken_policies: web,read\n"
        ),
    );
    // As in tests/envoy_e2e.rs, behind envoy/front-proxy.yaml; allows are logged only
    // at debug, so `info` writes nothing per request.
    let common = "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nroles_dir: roles\ncrls_dir: crls\n\
                  xfcc: { envoy_sets: true }\nlog: { level: info }\n";
    let certgate_config = dir.write(
        "cg/certgate.yaml",
        format!("{common}audit: {{ sink: none }}\n"),
    );
    let certgate_audit_config = dir.write(
        "cg/certgate-audit.yaml",
        format!("{common}audit: {{ sink: audit.log }}\n"),
    );
    World {
        server_cert: dir.write("tls/server.pem", &server.cert_pem),
        server_key: dir.write("tls/server.key", &server.key_pem),
        client_ca: dir.write("tls/client-ca.pem", &root.cert_pem),
        server_ca_pem: server_ca.cert_pem.clone(),
        client_chain_pem: bundle(&[&leaf.cert_pem, &inter.cert_pem]),
        client_key_pem: leaf.key_pem.clone(),
        certgate_config,
        certgate_audit_config,
        dir,
    }
}

impl World {
    /// Renders `template` for a listener on `port`, admin on `admin`.
    fn envoy_yaml(
        &self,
        template: &str,
        port: u16,
        admin: u16,
        upstream: u16,
        authz: u16,
    ) -> String {
        render(
            &envoy_template(template),
            &[
                ("ADMIN_PORT", admin.to_string()),
                ("LISTEN_PORT", port.to_string()),
                ("CERTGATE_PORT", authz.to_string()),
                ("UPSTREAM_PORT", upstream.to_string()),
                ("SERVER_CERT", self.server_cert.display().to_string()),
                ("SERVER_KEY", self.server_key.display().to_string()),
                ("CLIENT_CA", self.client_ca.display().to_string()),
            ],
        )
    }

    fn work_dir(&self, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::create_dir_all(&path).expect("create work dir");
        path
    }

    /// One keep-alive HTTP/1.1 mTLS client holding (at most) one connection. The
    /// harness's `mtls_client` keeps no idle connection, so it would reconnect (a full
    /// TLS handshake) on every request.
    fn client(&self) -> reqwest::Client {
        let identity = format!(
            "{}\n{}\n",
            self.client_chain_pem.trim(),
            self.client_key_pem.trim()
        );
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .identity(reqwest::Identity::from_pem(identity.as_bytes()).expect("client identity"))
            .no_proxy()
            .http1_only()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(None)
            .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)))
            .timeout(REQUEST_TIMEOUT);
        for cert in reqwest::Certificate::from_pem_bundle(self.server_ca_pem.as_bytes())
            .expect("server CA PEM")
        {
            b = b.add_root_certificate(cert);
        }
        b.build().expect("build mTLS client")
    }
}

// ---------------------------------------------------------------------------------------
// No-op Authorization server
// ---------------------------------------------------------------------------------------

struct Noop {
    checks: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl Authorization for Noop {
    async fn check(
        &self,
        _: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        self.checks.fetch_add(1, Ordering::Relaxed);
        Ok(tonic::Response::new(CheckResponse {
            status: Some(rpc::Status::default()),
            http_response: Some(envoy_types::ext_authz::v3::pb::HttpResponse::OkResponse(
                OkHttpResponse::default(),
            )),
            dynamic_metadata: None,
        }))
    }
}

const NOOP_THREAD: &str = "noop-authz";

/// The no-op server on its own thread (current-thread runtime), so its CPU time can be
/// read per thread and it does not share the client's runtime.
struct NoopAuthz {
    port: u16,
    checks: Arc<AtomicU64>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl NoopAuthz {
    fn start() -> NoopAuthz {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind no-op authz");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("local addr").port();
        let checks = Arc::new(AtomicU64::new(0));
        let counter = checks.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name(NOOP_THREAD.into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("no-op runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    // Without TCP_NODELAY, answers stall ~40 ms (Nagle + delayed ACK).
                    let incoming = tonic::transport::server::TcpIncoming::from(listener)
                        .with_nodelay(Some(true));
                    tonic::transport::Server::builder()
                        .add_service(AuthorizationServer::new(Noop { checks: counter }))
                        .serve_with_incoming_shutdown(incoming, async {
                            let _ = rx.await;
                        })
                        .await
                        .expect("no-op authz server");
                });
            })
            .expect("spawn no-op authz thread");
        NoopAuthz {
            port,
            checks,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for NoopAuthz {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// CPU accounting from /proc
// ---------------------------------------------------------------------------------------

/// utime + stime (clock ticks) from a `/proc/.../stat` file.
fn stat_ticks(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// (busy, total) ticks of the whole machine, from the first line of `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user]
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The id of this process's thread named `name` (as `/proc/self/task/*/comm` shows it,
/// at most 15 bytes).
/// The id of process `pid`'s thread named `name` (as `/proc/<pid>/task/*/comm` shows
/// it, at most 15 bytes). A new thread names itself once it runs: retried for up to 2 s.
fn thread_id(pid: &str, name: &str) -> Option<u32> {
    let want = &name.as_bytes()[..name.len().min(15)];
    let find = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .find_map(|e| {
                let e = e.ok()?;
                let comm = std::fs::read(e.path().join("comm")).ok()?;
                (comm.trim_ascii_end() == want).then(|| e.file_name().to_str()?.parse().ok())?
            })
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(tid) = find() {
            return Some(tid);
        }
        if Instant::now() > deadline {
            eprintln!("warning: no thread {name:?} in /proc/{pid}/task: its CPU is not shown");
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Envoy's (only, with `--concurrency 1`) worker thread.
const ENVOY_WORKER: &str = "wrk:worker_0";

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// Where the authz server's CPU time is read.
#[derive(Clone, Copy)]
enum AuthzCpu {
    None,
    /// A separate process (certgate).
    Process(u32),
    /// A thread of this process (the no-op server).
    Thread(u32),
}

#[derive(Clone, Copy)]
struct Probes {
    envoy: u32,
    envoy_worker_tid: Option<u32>,
    authz: AuthzCpu,
    upstream_tid: Option<u32>,
}

impl Probes {
    fn new(envoy: &Envoy, authz: AuthzCpu, upstream_tid: Option<u32>) -> Probes {
        Probes {
            envoy: envoy.pid(),
            envoy_worker_tid: thread_id(&envoy.pid().to_string(), ENVOY_WORKER),
            authz,
            upstream_tid,
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Sample {
    envoy: Option<u64>,
    envoy_worker: Option<u64>,
    authz: Option<u64>,
    upstream: Option<u64>,
    own: Option<u64>,
    machine: Option<(u64, u64)>,
}

impl Probes {
    fn sample(&self) -> Sample {
        let thread = |tid: u32| stat_ticks(&format!("/proc/self/task/{tid}/stat"));
        Sample {
            envoy: stat_ticks(&format!("/proc/{}/stat", self.envoy)),
            envoy_worker: self
                .envoy_worker_tid
                .and_then(|tid| stat_ticks(&format!("/proc/{}/task/{tid}/stat", self.envoy))),
            authz: match self.authz {
                AuthzCpu::None => None,
                AuthzCpu::Process(pid) => stat_ticks(&format!("/proc/{pid}/stat")),
                AuthzCpu::Thread(tid) => thread(tid),
            },
            upstream: self.upstream_tid.and_then(thread),
            own: stat_ticks("/proc/self/stat"),
            machine: machine_ticks(),
        }
    }
}

/// CPU seconds used during the window.
#[derive(Clone, Copy, Default)]
struct Cpu {
    envoy: Option<f64>,
    /// Busy fraction of Envoy's worker thread (the one that handles every request).
    envoy_worker_busy: Option<f64>,
    authz: Option<f64>,
    upstream: Option<f64>,
    /// This process minus the upstream and an in-process authz server.
    client: Option<f64>,
    /// Busy fraction of all cores.
    machine_busy: Option<f64>,
    /// Seconds of CPU used by processes outside this run.
    other: Option<f64>,
}

fn cpu_delta(before: Sample, after: Sample, probes: Probes, tck: f64, window: f64) -> Cpu {
    let d = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?) as f64 / tck);
    let envoy = d(before.envoy, after.envoy);
    let envoy_worker_busy = d(before.envoy_worker, after.envoy_worker).map(|s| s / window);
    let authz = d(before.authz, after.authz);
    let upstream = d(before.upstream, after.upstream);
    let own = d(before.own, after.own);
    let in_process_authz = match probes.authz {
        AuthzCpu::Thread(_) => authz.unwrap_or(0.0),
        _ => 0.0,
    };
    let external_authz = match probes.authz {
        AuthzCpu::Process(_) => authz.unwrap_or(0.0),
        _ => 0.0,
    };
    let client = own.map(|o| (o - upstream.unwrap_or(0.0) - in_process_authz).max(0.0));
    let (machine_busy, other) = match (before.machine, after.machine) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
            let busy = (b1 - b0) as f64 / tck;
            let ours = envoy.unwrap_or(0.0) + external_authz + own.unwrap_or(0.0);
            (
                Some((b1 - b0) as f64 / (t1 - t0) as f64),
                Some((busy - ours).max(0.0)),
            )
        }
        _ => (None, None),
    };
    Cpu {
        envoy,
        envoy_worker_busy,
        authz,
        upstream,
        client,
        machine_busy,
        other,
    }
}

// ---------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------

struct Measured {
    name: &'static str,
    /// What the connections saw, merged; latencies sorted.
    tally: Tally,
    window: Duration,
    cpu: Cpu,
    /// What Envoy (and the no-op server) counted: proof of the path taken.
    check: String,
}

impl Measured {
    fn requests(&self) -> usize {
        self.tally.latencies.len()
    }

    fn rps(&self) -> f64 {
        self.requests() as f64 / self.window.as_secs_f64()
    }

    /// Nearest-rank percentile, milliseconds.
    fn pct(&self, p: f64) -> f64 {
        let l = &self.tally.latencies;
        if l.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * l.len() as f64).ceil() as usize;
        l[rank.clamp(1, l.len()) - 1] as f64 / 1e6
    }

    fn error_count(&self) -> u64 {
        self.tally.errors.values().sum()
    }

    /// The slowest and fastest second of the window, requests/s.
    fn per_second_range(&self) -> (u64, u64) {
        let s = &self.tally.per_second;
        (
            s.iter().copied().min().unwrap_or(0),
            s.iter().copied().max().unwrap_or(0),
        )
    }

    /// CPU microseconds per request.
    fn per_req(&self, secs: Option<f64>) -> Option<f64> {
        let n = self.requests();
        (n > 0).then_some(secs? * 1e6 / n as f64)
    }
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

/// One GET; `Err` for anything but a fully read 200.
async fn one_request(client: &reqwest::Client, url: &str) -> Result<hyper::body::Bytes, String> {
    let resp = client.get(url).send().await.map_err(|e| error_chain(&e))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| error_chain(&e))?;
    if status == 200 {
        Ok(body)
    } else {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        Err(format!("HTTP {status}: {text}"))
    }
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    /// Latencies (ns) of the requests started in the window.
    latencies: Vec<u64>,
    /// Those requests per second of the window.
    per_second: Vec<u64>,
    /// Message → count, warm-up included.
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        if self.per_second.len() < other.per_second.len() {
            self.per_second.resize(other.per_second.len(), 0);
        }
        for (a, b) in self.per_second.iter_mut().zip(other.per_second) {
            *a += b;
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_insert(0) += v;
        }
    }
}

/// A closed loop on one connection: the next request goes out when the previous one
/// is answered. Records the requests started in `[start, end)`.
async fn worker(client: reqwest::Client, url: String, start: Instant, end: Instant) -> Tally {
    let mut t = Tally {
        latencies: Vec::with_capacity(64 * 1024),
        per_second: vec![0; (end - start).as_secs().max(1) as usize],
        errors: BTreeMap::new(),
    };
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        match one_request(&client, &url).await {
            Ok(_) if sent >= start => {
                t.latencies.push(sent.elapsed().as_nanos() as u64);
                let second = (sent - start).as_secs() as usize;
                if let Some(n) = t.per_second.get_mut(second) {
                    *n += 1;
                }
            }
            Ok(_) => {}
            Err(e) => {
                *t.errors.entry(e).or_insert(0) += 1;
                // Do not spin on a dead listener.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    t
}

/// Which role header the upstream must (not) see on the sanity request.
fn sanity_check(body: &[u8], expect_role: Option<&str>, name: &str) {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{name}: echo body is not JSON ({e})"));
    let role = v["headers"]["x-certgate-role"].as_str();
    assert_eq!(
        role, expect_role,
        "{name}: x-certgate-role seen by the upstream"
    );
}

#[allow(clippy::too_many_arguments)]
fn measure(
    rt: &tokio::runtime::Runtime,
    w: &World,
    name: &'static str,
    port: u16,
    probes: Probes,
    expect_role: Option<&str>,
    args: &Args,
    tck: f64,
) -> Measured {
    let url = https_url(port, PATH);
    let clients: Vec<reqwest::Client> = (0..args.connections).map(|_| w.client()).collect();
    let window = Duration::from_secs(args.seconds);
    rt.block_on(async {
        // One request first (on the first connection, which is then reused): the path
        // works and goes where it should.
        match one_request(&clients[0], &url).await {
            Ok(body) => sanity_check(&body, expect_role, name),
            Err(e) => panic!("{name}: first request failed: {e}"),
        }
        // Let that connection go back to the client's pool before the loop starts.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let start = Instant::now() + WARMUP;
        let end = start + window;
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|c| tokio::spawn(worker(c, url.clone(), start, end)))
            .collect();
        tokio::time::sleep_until(start.into()).await;
        let before = probes.sample();
        tokio::time::sleep_until(end.into()).await;
        let after = probes.sample();
        let mut tally = Tally::default();
        for t in tasks {
            tally.merge(t.await.expect("worker task"));
        }
        tally.latencies.sort_unstable();
        Measured {
            name,
            tally,
            window,
            cpu: cpu_delta(before, after, probes, tck, window.as_secs_f64()),
            check: String::new(),
        }
    })
}

fn stat(envoy: &Envoy, name: &str) -> u64 {
    envoy.stat(name).unwrap_or(0)
}

fn run_plain(
    rt: &tokio::runtime::Runtime,
    w: &World,
    upstream: &Upstream,
    upstream_tid: Option<u32>,
    args: &Args,
    tck: f64,
) -> Measured {
    let (port, admin) = (free_port(), free_port());
    let yaml = w.envoy_yaml("test-plain-mtls.yaml", port, admin, upstream.port, 0);
    let envoy = Envoy::start(&yaml, admin, &w.work_dir("envoy-plain"));
    let probes = Probes::new(&envoy, AuthzCpu::None, upstream_tid);
    let mut m = measure(rt, w, "plain", port, probes, None, args, tck);
    m.check = format!(
        "envoy: {} downstream connections, {} requests",
        stat(&envoy, "http.plain.downstream_cx_total"),
        stat(&envoy, "http.plain.downstream_rq_total"),
    );
    m
}

/// Envoy's ext_authz counters on the front proxy.
fn front_check(envoy: &Envoy) -> String {
    format!(
        "envoy: {} downstream connections, {} requests, ext_authz ok={} denied={} error={}",
        stat(envoy, "http.ingress.downstream_cx_total"),
        stat(envoy, "http.ingress.downstream_rq_total"),
        stat(envoy, "http.ingress.ext_authz.ok"),
        stat(envoy, "http.ingress.ext_authz.denied"),
        stat(envoy, "http.ingress.ext_authz.error"),
    )
}

#[allow(clippy::too_many_arguments)]
fn run_certgate(
    rt: &tokio::runtime::Runtime,
    w: &World,
    upstream: &Upstream,
    upstream_tid: Option<u32>,
    args: &Args,
    tck: f64,
    name: &'static str,
    config: &Path,
) -> Measured {
    let certgate = Certgate::start(config);
    let (port, admin) = (free_port(), free_port());
    let yaml = w.envoy_yaml(
        "front-proxy.yaml",
        port,
        admin,
        upstream.port,
        certgate.port(),
    );
    let envoy = Envoy::start(&yaml, admin, &w.work_dir("envoy-certgate"));
    let probes = Probes::new(&envoy, AuthzCpu::Process(certgate.pid()), upstream_tid);
    let mut m = measure(rt, w, name, port, probes, Some("web"), args, tck);
    m.check = front_check(&envoy);
    drop(envoy);
    drop(certgate);
    m
}

fn run_noop(
    rt: &tokio::runtime::Runtime,
    w: &World,
    upstream: &Upstream,
    upstream_tid: Option<u32>,
    args: &Args,
    tck: f64,
) -> Measured {
    let noop = NoopAuthz::start();
    let (port, admin) = (free_port(), free_port());
    let yaml = w.envoy_yaml("front-proxy.yaml", port, admin, upstream.port, noop.port);
    let envoy = Envoy::start(&yaml, admin, &w.work_dir("envoy-noop"));
    let tid = thread_id("self", NOOP_THREAD);
    let probes = Probes::new(
        &envoy,
        tid.map_or(AuthzCpu::None, AuthzCpu::Thread),
        upstream_tid,
    );
    let mut m = measure(rt, w, "noop", port, probes, None, args, tck);
    m.check = format!(
        "{}; no-op server answered {}",
        front_check(&envoy),
        noop.checks.load(Ordering::Relaxed)
    );
    drop(envoy);
    drop(noop);
    m
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

fn opt(v: Option<f64>, width: usize, decimals: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:>width$.decimals$}"),
        _ => format!("{:>width$}", "-"),
    }
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| format!("{:>5}", "-"), |b| format!("{:>4.0}%", b * 100.0))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

fn print_table(rows: &[&Measured], args: &Args) {
    println!();
    println!(
        "{} s per setup after a {} s warm-up, {} closed-loop HTTP/1.1 keep-alive mTLS connections, GET {PATH}",
        args.seconds,
        WARMUP.as_secs(),
        args.connections
    );
    println!(
        "{:49} | {:^27} | {:^18}",
        "", "CPU µs per request", "CPU busy"
    );
    println!(
        "{:<9} {:>8} {:>7} {:>7} {:>7} {:>6} | {:>6} {:>6} {:>6} {:>6} | {:>5} {:>5} {:>6}",
        "setup",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "errors",
        "envoy",
        "authz",
        "upstr",
        "client",
        "wrk",
        "all",
        "other"
    );
    for m in rows {
        println!(
            "{:<9} {:>8.0} {:>7.3} {:>7.3} {:>7.3} {:>6} | {} {} {} {} | {} {} {}",
            m.name,
            m.rps(),
            m.pct(50.0),
            m.pct(90.0),
            m.pct(99.0),
            m.error_count(),
            opt(m.per_req(m.cpu.envoy), 6, 1),
            opt(m.per_req(m.cpu.authz), 6, 1),
            opt(m.per_req(m.cpu.upstream), 6, 1),
            opt(m.per_req(m.cpu.client), 6, 1),
            percent(m.cpu.envoy_worker_busy),
            percent(m.cpu.machine_busy),
            m.cpu
                .other
                .map_or_else(|| format!("{:>6}", "-"), |o| format!("{o:>5.1}s")),
        );
    }
}

/// `a / b` for throughput, p50, p99 and Envoy's CPU per request, plus an optional
/// labelled authz ratio.
fn print_ratios(label: &str, a: &Measured, b: &Measured, authz: Option<(&str, String)>) {
    let p = |m: &Measured, q| Some(m.pct(q));
    let authz = authz.map_or_else(String::new, |(note, r)| format!("  {note} {r}"));
    println!(
        "{label:<18} throughput {:>6}  p50 {:>6}  p99 {:>6}  Envoy CPU/req {:>6}{authz}",
        ratio(Some(a.rps()), Some(b.rps())),
        ratio(p(a, 50.0), p(b, 50.0)),
        ratio(p(a, 99.0), p(b, 99.0)),
        ratio(a.per_req(a.cpu.envoy), b.per_req(b.cpu.envoy)),
    );
}

fn version_of(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            // Envoy prints `<path>  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL`.
            line.rsplit_once("version: ")
                .map_or(line, |(_, v)| v)
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

fn main() {
    let args = parse_args();
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let tck = clock_ticks_per_second();
    let envoy_bin = envoy::envoy_binary();
    let certgate_bin = envoy::certgate_binary();
    println!(
        "envoy:    {} ({})",
        envoy_bin.display(),
        version_of(&envoy_bin)
    );
    println!(
        "certgate: {} ({})",
        certgate_bin.display(),
        version_of(&certgate_bin)
    );
    if cfg!(debug_assertions) {
        println!("warning: this load generator is a debug build: run it with --release");
    }
    println!(
        "machine: {cores} cores shared by Envoy (--concurrency 1), the authz server, the echo \
         upstream and this load generator, which competes for the same cores"
    );

    let w = world();
    // The client's runtime. Envoy and certgate are separate processes; the echo upstream
    // and the no-op server each run on a thread of their own.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("loadgen-client")
        .enable_all()
        .build()
        .expect("client runtime");
    let upstream = Upstream::start();
    let upstream_tid = thread_id("self", &format!("upstream-{}", upstream.port));

    let plain = run_plain(&rt, &w, &upstream, upstream_tid, &args, tck);
    let certgate_with = |name, config: &Path| {
        run_certgate(&rt, &w, &upstream, upstream_tid, &args, tck, name, config)
    };
    let certgate = certgate_with("certgate", &w.certgate_config);
    let noop = run_noop(&rt, &w, &upstream, upstream_tid, &args, tck);
    let audited = args
        .audit
        .then(|| certgate_with("cg+audit", &w.certgate_audit_config));
    drop(upstream);
    drop(rt);

    let mut rows = vec![&plain, &certgate, &noop];
    rows.extend(audited.as_ref());
    print_table(&rows, &args);
    println!();
    print_ratios(
        "certgate vs plain:",
        &certgate,
        &plain,
        Some((
            "certgate's CPU/req vs plain Envoy's",
            ratio(
                certgate.per_req(certgate.cpu.authz),
                plain.per_req(plain.cpu.envoy),
            ),
        )),
    );
    print_ratios(
        "certgate vs noop:",
        &certgate,
        &noop,
        Some((
            "authz server CPU/req (certgate / no-op)",
            ratio(
                certgate.per_req(certgate.cpu.authz),
                noop.per_req(noop.cpu.authz),
            ),
        )),
    );
    print_ratios("noop vs plain:", &noop, &plain, None);
    if let Some(audited) = &audited {
        print_ratios(
            "cg+audit vs certgate:",
            audited,
            &certgate,
            Some((
                "certgate's CPU/req (audit file / audit off)",
                ratio(
                    audited.per_req(audited.cpu.authz),
                    certgate.per_req(certgate.cpu.authz),
                ),
            )),
        );
        let lines = std::fs::read_to_string(w.dir.join("cg/audit.log"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        println!("  audit lines written: {lines}");
    }
    println!();
    for m in &rows {
        let (lo, hi) = m.per_second_range();
        println!(
            "{:<9} {}; slowest/fastest second {lo}/{hi} req",
            m.name, m.check
        );
    }
    println!();
    for line in [
        format!(
            "notes: CPU from /proc (utime+stime, {tck} ticks/s) over the window, divided by the"
        ),
        "  requests started in it. authz = certgate's whole process or the no-op server's".into(),
        "  thread; client = this load generator minus the upstream and no-op threads.".into(),
        "  wrk = Envoy's one worker thread (--concurrency 1), % of a core: near 100% it is".into(),
        format!(
            "  the bottleneck. all = all {cores} cores; other = CPU seconds used outside these"
        ),
        "  processes (other tenants, kernel interrupts): large = a noisy run.".into(),
        "  The client competes for the same cores: compare ratios within one run, not".into(),
        "  absolute numbers. `plain` also lacks the front proxy's access log and path".into(),
        "  normalisation, so certgate-vs-plain includes those; certgate-vs-noop isolates".into(),
        "  certgate (its decision, and the headers and metadata Envoy applies and logs).".into(),
    ] {
        println!("{line}");
    }
    let failed: Vec<&&Measured> = rows.iter().filter(|m| m.error_count() > 0).collect();
    if failed.is_empty() {
        return;
    }
    for m in &failed {
        println!("\n{}: {} failed requests:", m.name, m.error_count());
        for (msg, n) in m.tally.errors.iter().take(ERRORS_SHOWN) {
            println!("  {n:>7} × {msg}");
        }
        if m.tally.errors.len() > ERRORS_SHOWN {
            println!(
                "  ... and {} more distinct errors",
                m.tally.errors.len() - ERRORS_SHOWN
            );
        }
    }
    drop(w);
    std::process::exit(1);
}
