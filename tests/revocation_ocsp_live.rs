//! Live OCSP: roles with `ocsp_enabled` asking a real `openssl ocsp` responder
//! ([`OcspResponder`], behind a counting proxy on 127.0.0.1), through
//! `LiveRevocation::decide` exactly as the ext_authz service does.
//!
//! Where openssl cannot produce a case (an answer for another certificate, a pre-signed
//! answer with an old thisUpdate), a response made by `openssl ocsp` offline is served
//! by the test's [`HttpServer`] at the exact GET URL certgate asks (nonce off, so the
//! request is deterministic).
//!
//! Assertions are on reason codes and on how many requests the responder saw; never on
//! how fast anything was. Every wait is bounded.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use certgate::engine::Reason;
use certgate::pki::cert::ParsedCert;
use certgate::revocation::ocsp::{CertIdHash, OcspTarget, get_url, request_der};
use common::http_server::HttpServer;
use common::live::*;
use common::ocsp_responder::{EntryStatus, OcspResponder, index_serial, unreachable_url};
use common::pki::*;
use common::world::*;

// === helpers ===

/// Asserts the codes of `(leaf, role, expected)` triples, each decided in turn, and
/// reports every mismatch at once.
async fn expect_codes(live: &Live, cases: &[(&Leaf, &str, &str)]) {
    let mut wrong = Vec::new();
    for (i, (leaf, role, expected)) in cases.iter().enumerate() {
        let decision = live.decide(leaf, *role).await;
        if code(&decision) != *expected {
            wrong.push(format!(
                "case {i} (role {role}): expected {expected}, got {}",
                describe(&decision)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A role's OCSP lines: enabled, asking `servers` (none: the leaf's AIA), then `extra`.
fn ocsp_role(servers: &[&str], extra: &str) -> String {
    let mut yaml = String::from("ocsp_enabled: true\n");
    if !servers.is_empty() {
        let quoted: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
        yaml.push_str(&format!("ocsp_servers_override: [{}]\n", quoted.join(", ")));
    }
    yaml.push_str(extra);
    yaml
}

/// `ocsp_ca_certificates` as one double-quoted YAML line (`World::role` strips the
/// indentation a block scalar would need).
fn ocsp_ca_line(pem: &str) -> String {
    format!("ocsp_ca_certificates: {pem:?}\n")
}

/// A root CA and three clients the responders know as good, revoked and (unlisted)
/// unknown.
struct Pki {
    ca: Ca,
    good: Leaf,
    revoked: Leaf,
    unknown: Leaf,
}

fn pki(name: &str) -> Pki {
    pki_with(name, |spec| spec)
}

/// Like [`pki`], with every leaf's spec passed through `tweak` (e.g. to add an AIA).
fn pki_with(name: &str, tweak: impl Fn(LeafSpec) -> LeafSpec) -> Pki {
    let ca = Ca::root(&format!("{name} CA"));
    let good = ca.leaf(tweak(LeafSpec::client("good")));
    let revoked = ca.leaf(tweak(LeafSpec::client("revoked")));
    let unknown = ca.leaf(tweak(LeafSpec::client("unknown")));
    Pki {
        ca,
        good,
        revoked,
        unknown,
    }
}

impl Pki {
    /// good: Good, revoked: Revoked; unknown is not listed.
    fn entries(&self) -> Vec<(Vec<u8>, EntryStatus)> {
        vec![
            (self.good.serial.clone(), EntryStatus::Good),
            (self.revoked.serial.clone(), EntryStatus::Revoked),
        ]
    }

    /// A responder signing with the CA's own key.
    fn issuer_responder(&self) -> OcspResponder {
        OcspResponder::start(
            &self.ca.cert_pem,
            &self.ca.cert_pem,
            &self.ca.key_pem,
            &self.entries(),
        )
    }

    /// A responder signing with `signer` (certificate and key).
    fn responder_signed_by(&self, signer: &Leaf) -> OcspResponder {
        OcspResponder::start(
            &self.ca.cert_pem,
            &signer.cert_pem,
            &signer.key_pem,
            &self.entries(),
        )
    }

    /// Two roles on the CA, both asking `servers`: `closed` (fail closed) and `open`
    /// (`ocsp_fail_open: true`), each with `extra` as well.
    fn world(&self, global: &str, servers: &[&str], extra: &str) -> World {
        let w = World::with_global(global);
        w.role("closed", &[&self.ca.cert_pem], &ocsp_role(servers, extra));
        w.role(
            "open",
            &[&self.ca.cert_pem],
            &ocsp_role(servers, &format!("ocsp_fail_open: true\n{extra}")),
        );
        w
    }
}

/// The CertID request certgate sends for `leaf` (SHA-1, no nonce) and the GET URL it
/// uses at `responder`.
fn get_request(leaf: &Leaf, issuer: &Ca, responder: &str) -> (Vec<u8>, String) {
    let parsed = ParsedCert::from_der(rustls_pki_types::CertificateDer::from(
        leaf.cert_der.clone(),
    ))
    .expect("parse leaf");
    let target = OcspTarget::new(&parsed, &issuer.cert_der, CertIdHash::Sha1).expect("target");
    let der = request_der(&target, None);
    let url = get_url(responder, &der);
    (der, url)
}

/// What `openssl ocsp` run offline (as `issuer`, `-ndays 1`) answers to `request`,
/// with `entries` as its index.
fn offline_response(issuer: &Ca, entries: &[(&[u8], char)], request: &[u8]) -> Vec<u8> {
    let dir = Dir::new();
    let mut index = String::new();
    for (serial, flag) in entries {
        let revoked = if *flag == 'R' { "250101000000Z" } else { "" };
        let hex = index_serial(serial);
        index.push_str(&format!(
            "{flag}\t491231235959Z\t{revoked}\t{hex}\tunknown\t/CN=serial-{hex}\n"
        ));
    }
    dir.write("index.txt", index);
    dir.write("index.txt.attr", "unique_subject = no\n");
    dir.write("ca.pem", &issuer.cert_pem);
    dir.write("ca.key", &issuer.key_pem);
    dir.write("req.der", request);
    let out = Command::new("openssl")
        .args([
            "ocsp",
            "-index",
            "index.txt",
            "-rsigner",
            "ca.pem",
            "-rkey",
            "ca.key",
        ])
        .args(["-CA", "ca.pem", "-reqin", "req.der", "-respout", "resp.der"])
        .args(["-ndays", "1"])
        .current_dir(&dir.path)
        .output()
        .expect("run openssl ocsp");
    let resp = std::fs::read(dir.join("resp.der")).unwrap_or_default();
    assert!(
        !resp.is_empty(),
        "openssl ocsp wrote no response: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    resp
}

/// The path part of an `http://127.0.0.1:PORT/...` URL.
fn path_of(url: &str) -> &str {
    let rest = url.strip_prefix("http://").expect("http URL");
    &rest[rest.find('/').expect("a path")..]
}

// === good, revoked, unknown ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_revoked_and_unknown_from_an_override_responder() {
    let pki = pki("Override");
    let responder = pki.issuer_responder();
    let live = Live::start(pki.world("", &[&responder.url()], ""));

    expect_codes(
        &live,
        &[
            (&pki.good, "closed", "allow"),
            (&pki.good, "open", "allow"),
            (&pki.revoked, "closed", "revoked_ocsp"),
            // Revoked denies even when failing open.
            (&pki.revoked, "open", "revoked_ocsp"),
            (&pki.unknown, "closed", "ocsp_unavailable"),
            (&pki.unknown, "open", "allow"),
        ],
    )
    .await;
    // One exchange per certificate, shared by both roles; GET first and enough.
    assert_eq!(responder.requests(), 3, "{}", responder.log());
    assert_eq!(responder.requests_by_method("POST"), 0);

    match live.decide(&pki.revoked, "closed").await.reason() {
        Some(Reason::RevokedOcsp { serial }) => assert_eq!(*serial, pki.revoked.serial_hex()),
        other => panic!("expected revoked_ocsp, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responders_named_in_the_certificate() {
    // The leaves carry the responder's URL in their AIA, so the responder must exist
    // before them: it serves whatever serials the index lists, set afterwards.
    let ca = Ca::root("AIA CA");
    let responder = OcspResponder::start(&ca.cert_pem, &ca.cert_pem, &ca.key_pem, &[]);
    let url = responder.url();
    let good = ca.leaf(LeafSpec::client("good").ocsp(&url));
    let revoked = ca.leaf(LeafSpec::client("revoked").ocsp(&url));
    let no_aia = ca.leaf(LeafSpec::client("no aia"));
    responder.set_entries(&[
        (good.serial.clone(), EntryStatus::Good),
        (revoked.serial.clone(), EntryStatus::Revoked),
    ]);
    responder.poke();

    let w = World::new();
    w.role("closed", &[&ca.cert_pem], &ocsp_role(&[], ""));
    w.role(
        "open",
        &[&ca.cert_pem],
        &ocsp_role(&[], "ocsp_fail_open: true\n"),
    );
    let live = Live::start(w);
    expect_codes(
        &live,
        &[
            (&good, "closed", "allow"),
            (&revoked, "closed", "revoked_ocsp"),
            (&revoked, "open", "revoked_ocsp"),
            // No AIA and no override: nobody to ask.
            (&no_aia, "closed", "ocsp_unavailable"),
            (&no_aia, "open", "allow"),
        ],
    )
    .await;
    assert_eq!(responder.requests(), 2);
}

// === who may sign ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegated_responder_of_the_issuer_is_believed() {
    let pki = pki("Delegated");
    let signer = pki
        .ca
        .leaf(LeafSpec::client("Delegated OCSP responder").eku(Eku::OcspSigning));
    let responder = pki.responder_signed_by(&signer);
    let live = Live::start(pki.world("", &[&responder.url()], ""));
    expect_codes(
        &live,
        &[
            (&pki.good, "closed", "allow"),
            (&pki.revoked, "closed", "revoked_ocsp"),
            (&pki.unknown, "closed", "ocsp_unavailable"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responder_without_the_ocsp_signing_eku_is_not_believed() {
    let pki = pki("No EKU");
    let signer = pki.ca.leaf(LeafSpec::client("Not an OCSP responder"));
    let responder = pki.responder_signed_by(&signer);
    let live = Live::start(pki.world("", &[&responder.url()], "ocsp_max_retries: 0\n"));
    expect_codes(
        &live,
        &[
            (&pki.good, "closed", "ocsp_unavailable"),
            (&pki.good, "open", "allow"),
            // Its "revoked" is not believed either: an unauthenticated answer says nothing.
            (&pki.revoked, "closed", "ocsp_unavailable"),
            (&pki.revoked, "open", "allow"),
        ],
    )
    .await;
    match live.decide(&pki.good, "closed").await.reason() {
        Some(Reason::OcspUnavailable { detail }) => {
            assert!(
                detail.contains("authorized") || detail.contains("OCSPSigning"),
                "{detail}"
            )
        }
        other => panic!("expected ocsp_unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responder_from_another_ca_needs_that_ca_in_ocsp_ca_certificates() {
    let pki = pki("Client");
    let other = Ca::root("Responder CA");
    let signer = other.leaf(LeafSpec::client("Foreign OCSP responder").eku(Eku::OcspSigning));
    let responder = pki.responder_signed_by(&signer);
    let url = responder.url();

    let w = pki.world("", &[&url], "ocsp_max_retries: 0\n");
    w.role(
        "anchored",
        &[&pki.ca.cert_pem],
        &ocsp_role(&[&url], &ocsp_ca_line(&other.cert_pem)),
    );
    let live = Live::start(w);
    expect_codes(
        &live,
        &[
            (&pki.good, "closed", "ocsp_unavailable"),
            (&pki.good, "open", "allow"),
            (&pki.good, "anchored", "allow"),
            (&pki.revoked, "anchored", "revoked_ocsp"),
            (&pki.unknown, "anchored", "ocsp_unavailable"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_signature_denies_even_when_failing_open() {
    let pki = pki("Bad Signature");
    let responder = OcspResponder::start_with(
        &pki.ca.cert_pem,
        &pki.ca.cert_pem,
        &pki.ca.key_pem,
        &pki.entries(),
        &["-ndays", "1", "-badsig"],
    );
    let live = Live::start(pki.world("", &[&responder.url()], ""));
    expect_codes(
        &live,
        &[
            (&pki.good, "closed", "ocsp_invalid"),
            (&pki.good, "open", "ocsp_invalid"),
            (&pki.unknown, "open", "ocsp_invalid"),
        ],
    )
    .await;
}

// === what the answer is about, and when ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_for_another_certificate_is_not_used() {
    // openssl echoes the request's CertID, so a live responder never answers for the
    // wrong certificate: a correctly signed answer about `revoked` is served where
    // certgate asks about `good`.
    let pki = pki("Other Serial");
    let server = HttpServer::start();
    let base = server.url("/");
    let (_, good_url) = get_request(&pki.good, &pki.ca, &base);
    let (other_request, _) = get_request(&pki.revoked, &pki.ca, &base);
    let other_answer = offline_response(
        &pki.ca,
        &[(&pki.good.serial, 'V'), (&pki.revoked.serial, 'V')],
        &other_request,
    );
    server.set(path_of(&good_url), 200, other_answer);

    let live = Live::start(pki.world("ocsp: {nonce: false}\n", &[&base], "ocsp_max_retries: 0\n"));
    let decision = live.decide(&pki.good, "closed").await;
    eprintln!("answer for another certificate: {}", describe(&decision));
    assert_eq!(
        code(&decision),
        "ocsp_unavailable",
        "{}",
        describe(&decision)
    );
    assert_eq!(live.code(&pki.good, "open").await, "allow");
    assert_eq!(server.requests(path_of(&good_url)), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_answer_older_than_max_age_is_not_used() {
    // An RFC 5019 style responder serving a response signed earlier: thisUpdate is
    // 3 s old when certgate first fetches it; the roles accept at most 1 s.
    let pki = pki("Presigned");
    let server = HttpServer::start();
    let base = server.url("/");
    let (request, url) = get_request(&pki.good, &pki.ca, &base);
    let answer = offline_response(&pki.ca, &[(&pki.good.serial, 'V')], &request);
    server.set(path_of(&url), 200, answer);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let live = Live::start(pki.world(
        "ocsp: {nonce: false}\n",
        &[&base],
        "ocsp_this_update_max_age: 1s\nocsp_max_retries: 0\n",
    ));
    expect_codes(
        &live,
        &[
            (&pki.good, "closed", "ocsp_unavailable"),
            (&pki.good, "open", "allow"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_answer_past_max_age_is_fetched_again() {
    // openssl signs every answer afresh (thisUpdate = now). Once the cached answer is
    // older than ocsp_this_update_max_age, a decision should ask the healthy responder
    // again (as for a cache miss) rather than deny. The wait is past the 5 s for which
    // failures are remembered, so no rate limit stands in the way.
    let pki = pki("Max Age");
    let responder = pki.issuer_responder();
    let live = Live::start(pki.world("", &[&responder.url()], "ocsp_this_update_max_age: 2s\n"));
    assert_eq!(live.code(&pki.good, "closed").await, "allow");
    assert_eq!(responder.requests(), 1);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let decision = live.decide(&pki.good, "closed").await;
    assert_eq!(
        code(&decision),
        "allow",
        "the healthy responder was not asked before deciding ({} requests so far): {}",
        responder.requests(),
        describe(&decision)
    );
    assert_eq!(responder.requests(), 2);
}

// === unreachable and slow ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_responder() {
    let pki = pki("Unreachable");
    let nowhere = unreachable_url();
    let live = Live::start(pki.world("ocsp: {timeout: 500ms}\n", &[&nowhere], ""));
    expect_codes(
        &live,
        &[
            (&pki.good, "closed", "ocsp_unavailable"),
            (&pki.good, "open", "allow"),
            (&pki.revoked, "open", "allow"),
        ],
    )
    .await;
    // Counted once the query gives up (after its retries, which go on in the background).
    eventually("the failure is counted", || async {
        live.live.counters.ocsp_failures.load(Ordering::Relaxed) >= 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responder_that_closes_connections() {
    let pki = pki("Down");
    let responder = pki.issuer_responder();
    responder.set_down(true);
    let live = Live::start(pki.world(
        "ocsp: {timeout: 500ms}\n",
        &[&responder.url()],
        "ocsp_max_retries: 0\n",
    ));
    expect_codes(
        &live,
        &[
            (&pki.good, "closed", "ocsp_unavailable"),
            (&pki.good, "open", "allow"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_responder() {
    let pki = pki("Slow");
    let responder = pki.issuer_responder();
    responder.set_delay(Duration::from_secs(2));
    let live = Live::start(pki.world(
        "ocsp: {timeout: 500ms}\n",
        &[&responder.url()],
        "ocsp_max_retries: 0\n",
    ));
    expect_codes(
        &live,
        &[
            (&pki.good, "closed", "ocsp_unavailable"),
            (&pki.good, "open", "allow"),
            (&pki.revoked, "closed", "ocsp_unavailable"),
            (&pki.revoked, "open", "allow"),
        ],
    )
    .await;
    // Once it answers in time again (and the remembered failure has expired), the
    // real status comes back.
    responder.set_delay(Duration::ZERO);
    eventually("the responder answers again", || async {
        live.code(&pki.revoked, "open").await == "revoked_ocsp"
    })
    .await;
}

// === several responders ===

/// Responder A knows good, revoked and unknown as good; B says good / revoked /
/// (unlisted) unknown.
fn two_responders(pki: &Pki) -> (OcspResponder, OcspResponder) {
    let all_good = [
        (pki.good.serial.clone(), EntryStatus::Good),
        (pki.revoked.serial.clone(), EntryStatus::Good),
        (pki.unknown.serial.clone(), EntryStatus::Good),
    ];
    let a = OcspResponder::start(
        &pki.ca.cert_pem,
        &pki.ca.cert_pem,
        &pki.ca.key_pem,
        &all_good,
    );
    let b = pki.issuer_responder();
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_all_servers_needs_every_responder_to_say_good() {
    let pki = pki("Query All");
    let (a, b) = two_responders(&pki);
    let servers = [a.url(), b.url()];
    let servers: Vec<&str> = servers.iter().map(String::as_str).collect();
    let w = World::new();
    w.role(
        "all",
        &[&pki.ca.cert_pem],
        &ocsp_role(&servers, "ocsp_query_all_servers: true\n"),
    );
    w.role(
        "all-open",
        &[&pki.ca.cert_pem],
        &ocsp_role(
            &servers,
            "ocsp_query_all_servers: true\nocsp_fail_open: true\n",
        ),
    );
    w.role("first", &[&pki.ca.cert_pem], &ocsp_role(&servers, ""));
    let live = Live::start(w);
    expect_codes(
        &live,
        &[
            (&pki.good, "all", "allow"),
            (&pki.revoked, "all", "revoked_ocsp"),
            (&pki.revoked, "all-open", "revoked_ocsp"),
            (&pki.unknown, "all", "ocsp_unavailable"),
            (&pki.unknown, "all-open", "allow"),
            // Without query-all the first good answer decides (OpenBao's semantics).
            (&pki.revoked, "first", "allow"),
            (&pki.unknown, "first", "allow"),
        ],
    )
    .await;
    // Every certificate went to both under query-all, B never for "first".
    assert_eq!(a.requests(), 3);
    assert_eq!(b.requests(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_all_servers_asks_responders_in_parallel() {
    // Each responder alone answers well within ocsp.timeout (700 ms of 1 s); asked one
    // after the other they would not both fit in one request's wait.
    let pki = pki("Parallel");
    let (a, b) = two_responders(&pki);
    a.set_delay(Duration::from_millis(700));
    b.set_delay(Duration::from_millis(700));
    let w = World::with_global("ocsp: {timeout: 1s}\n");
    w.role(
        "all",
        &[&pki.ca.cert_pem],
        &ocsp_role(
            &[&a.url(), &b.url()],
            "ocsp_query_all_servers: true\nocsp_max_retries: 0\n",
        ),
    );
    let live = Live::start(w);
    let decision = live.decide(&pki.good, "all").await;
    assert_eq!(code(&decision), "allow", "{}", describe(&decision));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_responder_is_asked_when_one_fails() {
    let pki = pki("Fallback");
    let responder = pki.issuer_responder();
    let nowhere = unreachable_url();
    let live = Live::start(pki.world(
        "ocsp: {timeout: 500ms}\n",
        &[&nowhere, &responder.url()],
        "",
    ));
    expect_codes(
        &live,
        &[
            (&pki.good, "closed", "allow"),
            (&pki.revoked, "closed", "revoked_ocsp"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_third_responder_is_asked_when_two_fail() {
    let pki = pki("Third");
    let responder = pki.issuer_responder();
    let (x, y) = (unreachable_url(), unreachable_url());
    let live = Live::start(pki.world(
        "ocsp: {timeout: 500ms}\n",
        &[&x, &y, &responder.url()],
        "ocsp_max_retries: 0\n",
    ));
    let decision = live.decide(&pki.good, "closed").await;
    assert_eq!(
        code(&decision),
        "allow",
        "the third responder was asked {} times: {}",
        responder.requests(),
        describe(&decision)
    );
}

// === cache ===

async fn hundred_decisions_one_request(global: &str, name: &str) {
    let pki = pki(name);
    let responder = pki.issuer_responder();
    let live = Live::start(pki.world(global, &[&responder.url()], ""));

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (live, snapshot, leaf) = (
            Arc::clone(&live.live),
            Arc::clone(&live.snapshot),
            pki.good.clone(),
        );
        tasks.spawn(
            async move { code(&decide_live(&live, &snapshot, &leaf, Some("closed")).await) },
        );
    }
    let mut codes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        codes.push(joined.expect("decision task"));
    }
    assert!(codes.iter().all(|c| *c == "allow"), "{codes:?}");
    for _ in 0..50 {
        assert_eq!(live.code(&pki.good, "closed").await, "allow");
    }
    assert_eq!(
        responder.requests(),
        1,
        "one exchange for 100 decisions (50 concurrent)"
    );
    let hits = live.live.counters.ocsp_cache_hits.load(Ordering::Relaxed);
    assert!(hits >= 50, "cache hits {hits}");
    assert_eq!(live.live.ocsp_cache_len(), 1);

    // And the revoked client through the same path.
    assert_eq!(live.code(&pki.revoked, "closed").await, "revoked_ocsp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_cached_and_fetched_once() {
    hundred_decisions_one_request("", "Cache").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha256_cert_ids_work_too() {
    hundred_decisions_one_request("ocsp: {cert_id_hash: sha256}\n", "SHA-256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_good_answer_outlives_a_revocation_until_it_expires() {
    // Documented behaviour: an answer is believed until its nextUpdate (here a day,
    // openssl -ndays 1; at most 24 h), like any OCSP client cache.
    let pki = pki("Cached Good");
    let responder = pki.issuer_responder();
    let url = responder.url();
    let w = pki.world("", &[&url], "");
    let live = Live::start(w);
    assert_eq!(live.code(&pki.good, "closed").await, "allow");

    responder.set_entries(&[(pki.good.serial.clone(), EntryStatus::Revoked)]);
    responder.poke();
    assert_eq!(live.code(&pki.good, "closed").await, "allow");
    assert_eq!(responder.requests(), 1, "answered from the cache");

    // The responder does say revoked now: a fresh cache sees it.
    let fresh = Live::start(pki.world("", &[&url], ""));
    assert_eq!(fresh.code(&pki.good, "closed").await, "revoked_ocsp");
    assert_eq!(responder.requests(), 2);

    // A cached answer also carries the decision through a responder outage.
    responder.set_down(true);
    assert_eq!(live.code(&pki.good, "closed").await, "allow");
    assert_eq!(fresh.code(&pki.good, "closed").await, "revoked_ocsp");
}
