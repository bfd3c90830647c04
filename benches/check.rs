//! What one `Check` costs, as ratios against a no-op baseline measured in the same run
//! (the machines are shared and noisy: absolute numbers drift, ratios hold).
//!
//! - `adapter/*`: the in-process request path (`ext_authz::check`) — a no-op that only
//!   builds an OK response, certgate with a warm verified-chain cache, and certgate with
//!   the cache disabled (every request URL-decodes, parses and builds the path).
//! - `grpc/*`: the same over real gRPC on loopback (tonic client → server): a no-op
//!   Authorization server, certgate warm, certgate cold (all with metrics, audit off),
//!   and `warm_audit`: warm with the audit log written to a file (the cost of one audit
//!   record on the request path; the writer thread formats and writes it).
//!
//! - `ocsp/*`: the request path with live revocation (`ext_authz::check_live`) for a
//!   role with `ocsp_enabled` asking a local `openssl ocsp` responder: `cached` (the
//!   answer is in the OCSP cache) and `cold` (cache emptied before each check: a real
//!   OCSP exchange on loopback), against `no_ocsp`, the same path for a role without
//!   OCSP.
//!
//! Run: `cargo bench --bench check` (prints the ratios at the end).

#[path = "../tests/common/pki.rs"]
#[allow(dead_code)]
mod pki;

#[path = "../tests/common/http_server.rs"]
mod http_server;

#[path = "../tests/common/envoy.rs"]
#[allow(dead_code)]
mod envoy;

#[path = "../tests/common/check_request.rs"]
mod check_request;

#[path = "../tests/common/ocsp_responder.rs"]
#[allow(dead_code)]
mod ocsp_responder;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certgate::grpc::ext_authz;
use certgate::reload::Reloader;
use certgate::revocation::LiveRevocation;
use criterion::Criterion;
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::google::rpc;
use pki::{Ca, Dir, LeafSpec};

/// A request shaped like Envoy 1.40's: URL-encoded leaf, typical headers, route roles.
fn envoy_request(leaf_url_pem: &str) -> CheckRequest {
    let mut request = check_request::check_request(
        "127.0.0.1",
        leaf_url_pem,
        &[
            (":authority", "api.example.com"),
            (":method", "GET"),
            (":path", "/v1/items?page=2"),
            (":scheme", "https"),
            ("user-agent", "curl/8.5.0"),
            ("accept", "*/*"),
            ("x-forwarded-proto", "https"),
            ("x-request-id", "7b0d3c1e-5b8f-4a55-9f0e-2d7c9d1f0a11"),
        ],
    );
    if let Some(attributes) = request.attributes.as_mut() {
        attributes.context_extensions = [("certgate_roles".to_string(), "web".to_string())].into();
    }
    request
}

fn noop_response() -> CheckResponse {
    CheckResponse {
        status: Some(rpc::Status::default()),
        http_response: Some(envoy_types::ext_authz::v3::pb::HttpResponse::OkResponse(
            OkHttpResponse::default(),
        )),
        dynamic_metadata: None,
    }
}

struct Noop;

#[tonic::async_trait]
impl Authorization for Noop {
    async fn check(
        &self,
        _: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(noop_response()))
    }
}

/// A config dir with one role (root + intermediate bundle, OU and URI constraints).
fn world(dir: &Dir, cache_entries: u64, root: &Ca, inter: &Ca) -> std::path::PathBuf {
    world_with(dir, cache_entries, &[&root.cert_pem, &inter.cert_pem], "")
}

/// The same role trusting `bundle`, with `extra` global settings.
fn world_with(dir: &Dir, cache_entries: u64, bundle: &[&str], extra: &str) -> std::path::PathBuf {
    dir.write(
        "roles/web.yaml",
        format!(
            "certificate: |\n{}\nallowed_organizational_units: eng\nallowed_uri_sans: spiffe://cluster.local/ns/prod/sa/*\ntoken_policies: web,read\n",
            pki::bundle(bundle)
                .lines()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    );
    dir.write(
        "certgate.yaml",
        format!(
            "listen: 127.0.0.1:0\nroles_dir: roles\ncache: {{ max_entries: {cache_entries} }}\nlog: {{ level: warn }}\naudit: {{ sink: none }}\n{extra}"
        ),
    )
}

fn main() {
    let root = Ca::root("Bench Root");
    let inter = root.intermediate("Bench Intermediate");
    let leaf = inter.leaf(
        LeafSpec::client("web-1")
            .ou("eng")
            .uri("spiffe://cluster.local/ns/prod/sa/web"),
    );
    let request = envoy_request(&leaf.url_encoded_pem());
    // Behind envoy/front-proxy.yaml: the peer leaf plus XFCC (SANITIZE_SET) carrying the
    // chain the client sent; the role trusts only the root.
    let mut xfcc_request = request.clone();
    let xfcc = format!(
        "Hash={};Cert=\"{}\";Chain=\"{}\";Subject=\"CN=web-1,OU=eng\";URI=spiffe://cluster.local/ns/prod/sa/web",
        leaf.fingerprint_hex(),
        leaf.url_encoded_pem(),
        pki::url_encode(&pki::bundle(&[&leaf.cert_pem, &inter.cert_pem]))
    );
    if let Some(http) = xfcc_request
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
    {
        http.headers.insert("x-forwarded-client-cert".into(), xfcc);
    }
    let xfcc_dir = Dir::new();
    let xfcc_world = Reloader::new(Some(world_with(
        &xfcc_dir,
        10_000,
        &[&root.cert_pem],
        "xfcc: { envoy_sets: true }\n",
    )))
    .expect("config");
    let warm_dir = Dir::new();
    let cold_dir = Dir::new();
    let warm = Reloader::new(Some(world(&warm_dir, 10_000, &root, &inter))).expect("config");
    let cold = Reloader::new(Some(world(&cold_dir, 0, &root, &inter))).expect("config");
    let now = 1_900_000_000.min(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    );
    // Sanity: both allow, or the benchmark would measure a denial.
    for r in [&warm, &cold] {
        let resp = ext_authz::check(&r.current(), &request, now);
        assert_eq!(
            resp.status.map(|s| s.code),
            Some(0),
            "bench request must be allowed"
        );
    }

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut adapter = c.benchmark_group("adapter");
    adapter.bench_function("noop", |b| b.iter(|| black_box(noop_response())));
    let ws = warm.current();
    adapter.bench_function("warm", |b| {
        b.iter(|| black_box(ext_authz::check(&ws, black_box(&request), now)))
    });
    let cs = cold.current();
    adapter.bench_function("cold", |b| {
        b.iter(|| black_box(ext_authz::check(&cs, black_box(&request), now)))
    });
    let xs = xfcc_world.current();
    adapter.bench_function("warm_xfcc", |b| {
        b.iter(|| black_box(ext_authz::check(&xs, black_box(&xfcc_request), now)))
    });
    adapter.finish();

    // Over gRPC on loopback.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let audit_dir = Dir::new();
    let audited = Reloader::new(Some(warm_dir.join("certgate.yaml"))).expect("config");
    let (noop_addr, warm_addr, cold_addr, audit_addr) = rt.block_on(async {
        let noop_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let noop_addr = noop_listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(AuthorizationServer::new(Noop))
                .serve_with_incoming(
                    tonic::transport::server::TcpIncoming::from(noop_listener)
                        .with_nodelay(Some(true)),
                ),
        );
        let mut addrs = Vec::new();
        let file_audit = || {
            certgate::audit::AuditLog::start(
                certgate::audit::AuditSink::File(audit_dir.join("audit.log")),
                &certgate::config::schema::AuditConfig::default(),
            )
            .expect("audit file")
        };
        for (r, audit) in [
            (Arc::clone(&warm), certgate::audit::AuditLog::disabled()),
            (Arc::clone(&cold), certgate::audit::AuditLog::disabled()),
            (Arc::clone(&audited), file_audit()),
        ] {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(l.local_addr().unwrap());
            let listeners = certgate::grpc::Listeners {
                grpc: l,
                admin: None,
            };
            let audit = Arc::new(audit);
            tokio::spawn(certgate::grpc::serve_on(
                r,
                listeners,
                audit,
                std::future::pending(),
            ));
        }
        (noop_addr, addrs[0], addrs[1], addrs[2])
    });
    let mut grpc = c.benchmark_group("grpc");
    for (name, addr) in [
        ("noop", noop_addr),
        ("warm", warm_addr),
        ("cold", cold_addr),
        ("warm_audit", audit_addr),
    ] {
        let mut client = rt.block_on(async {
            AuthorizationClient::connect(format!("http://{addr}"))
                .await
                .expect("connect")
        });
        grpc.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(client.check(request.clone()))
                    .expect("check")
                    .into_inner()
            })
        });
    }
    grpc.finish();

    // Live revocation with OCSP, against a real responder on loopback.
    let responder = ocsp_responder::OcspResponder::start(
        &inter.cert_pem,
        &inter.cert_pem,
        &inter.key_pem,
        &[(leaf.serial.clone(), ocsp_responder::EntryStatus::Good)],
    );
    let ocsp_dir = Dir::new();
    let ocsp_config = world(&ocsp_dir, 10_000, &root, &inter);
    ocsp_dir.write(
        "roles/web.yaml",
        format!(
            "{}ocsp_enabled: true\nocsp_servers_override: [\"{}\"]\n",
            std::fs::read_to_string(ocsp_dir.join("roles/web.yaml")).expect("role"),
            responder.url()
        ),
    );
    let ocsp_world = Reloader::new(Some(ocsp_config)).expect("config");
    let os = ocsp_world.current();
    let live = rt.block_on(async { LiveRevocation::new(&os) });
    let live_plain = rt.block_on(async { LiveRevocation::new(&ws) });
    let allowed = |resp: CheckResponse| {
        assert_eq!(
            resp.status.map(|s| s.code),
            Some(0),
            "bench request must be allowed"
        );
    };
    allowed(rt.block_on(ext_authz::check_live(&live, &os, &request, now)));
    let mut ocsp = c.benchmark_group("ocsp");
    ocsp.bench_function("no_ocsp", |b| {
        b.iter(|| {
            rt.block_on(ext_authz::check_live(
                &live_plain,
                &ws,
                black_box(&request),
                now,
            ))
        })
    });
    ocsp.bench_function("cached", |b| {
        b.iter(|| rt.block_on(ext_authz::check_live(&live, &os, black_box(&request), now)))
    });
    ocsp.bench_function("cold", |b| {
        b.iter(|| {
            live.invalidate_ocsp();
            rt.block_on(ext_authz::check_live(&live, &os, black_box(&request), now))
        })
    });
    ocsp.finish();
    let asked = responder.requests();
    c.final_summary();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary as a
    // smoke test, in a debug build, where the ratios would mean nothing.
    if std::env::args().any(|a| a == "--bench") {
        report_ratios(&request, &ws, &cs, now);
        report_ocsp(&rt, &request, (&live_plain, &ws), (&live, &os), now);
        println!("responder requests during the ocsp group: {asked}");
    }
}

/// Cold (responder asked) and cached OCSP checks against the same path without OCSP.
fn report_ocsp(
    rt: &tokio::runtime::Runtime,
    request: &CheckRequest,
    plain: (&LiveRevocation, &certgate::snapshot::Snapshot),
    ocsp: (&LiveRevocation, &certgate::snapshot::Snapshot),
    now: i64,
) {
    let time = |n: u32, f: &dyn Fn()| {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed() / n
    };
    let base = time(5_000, &|| {
        allowed_code(rt.block_on(ext_authz::check_live(plain.0, plain.1, request, now)));
    });
    let cached = time(5_000, &|| {
        allowed_code(rt.block_on(ext_authz::check_live(ocsp.0, ocsp.1, request, now)));
    });
    let cold = time(300, &|| {
        ocsp.0.invalidate_ocsp();
        allowed_code(rt.block_on(ext_authz::check_live(ocsp.0, ocsp.1, request, now)));
    });
    println!(
        "live check: no OCSP {base:?}, OCSP cached {cached:?} ({:.2}x), OCSP cold {cold:?} ({:.1}x); cold/cached = {:.0}x",
        cached.as_secs_f64() / base.as_secs_f64(),
        cold.as_secs_f64() / base.as_secs_f64(),
        cold.as_secs_f64() / cached.as_secs_f64()
    );
}

fn allowed_code(resp: CheckResponse) {
    assert_eq!(
        resp.status.map(|s| s.code),
        Some(0),
        "bench request must be allowed"
    );
}

/// A plain timing loop after criterion, printing the ratios the closing notes quote.
fn report_ratios(
    request: &CheckRequest,
    warm: &certgate::snapshot::Snapshot,
    cold: &certgate::snapshot::Snapshot,
    now: i64,
) {
    let time = |f: &dyn Fn()| {
        let n = 20_000u32;
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed() / n
    };
    let noop = time(&|| {
        black_box(noop_response());
    });
    let w = time(&|| {
        black_box(ext_authz::check(warm, black_box(request), now));
    });
    let c = time(&|| {
        black_box(ext_authz::check(cold, black_box(request), now));
    });
    println!(
        "adapter per check: noop {noop:?}, warm {w:?}, cold {c:?}; cold/warm = {:.1}x",
        c.as_secs_f64() / w.as_secs_f64()
    );
}
