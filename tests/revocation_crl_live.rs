//! Live CRLs: lists fetched over HTTP from `crl_urls` and from certificates' CRL
//! distribution points, served on 127.0.0.1 by the test itself ([`HttpServer`]).
//!
//! Each test builds a config directory ([`World`]), compiles its snapshot, starts one
//! [`LiveRevocation`] for it inside the test's Tokio runtime and decides requests through
//! `LiveRevocation::decide`, exactly as the ext_authz service does. Assertions are on
//! reason codes, on what `crl_sources()` reports and on how many requests the server
//! saw; never on how fast anything was. Every wait is bounded.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use certgate::revocation::live::SourceOrigin;
use common::http_server::HttpServer;
use common::live::*;
use common::pki::*;
use common::world::*;

// === helpers ===

/// One CRL's validity from now: an hour, so that no refresh happens during a test.
fn hour() -> time::Duration {
    time::Duration::hours(1)
}

/// `crl_urls: [{name, url}, ...]` as a global config line.
fn crl_urls(sources: &[(&str, &str)]) -> String {
    let items: Vec<String> = sources
        .iter()
        .map(|(name, url)| format!("{{name: {name}, url: \"{url}\"}}"))
        .collect();
    format!("crl_urls: [{}]\n", items.join(", "))
}

/// A root CA with a revoked and a clean client.
struct Pki {
    ca: Ca,
    revoked: Leaf,
    clean: Leaf,
}

fn pki(name: &str) -> Pki {
    let ca = Ca::root(&format!("{name} CA"));
    let revoked = ca.leaf(LeafSpec::client("revoked"));
    let clean = ca.leaf(LeafSpec::client("clean"));
    Pki { ca, revoked, clean }
}

/// Like [`pki`], both clients naming `cdp` as their CRL distribution point.
fn pki_with_cdp(name: &str, cdp: &str) -> Pki {
    let ca = Ca::root(&format!("{name} CA"));
    let revoked = ca.leaf(LeafSpec::client("revoked").cdp(cdp));
    let clean = ca.leaf(LeafSpec::client("clean").cdp(cdp));
    Pki { ca, revoked, clean }
}

/// A `/proc/self/status` field in KiB (`VmRSS`, `VmHWM`).
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident and peak resident memory, for the log.
fn memory() -> String {
    format!(
        "VmRSS {:?} KiB, VmHWM {:?} KiB",
        proc_status_kib("VmRSS"),
        proc_status_kib("VmHWM")
    )
}

// === crl_urls ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crl_urls_are_fetched_and_revoke() {
    let pki = pki("Fetched");
    let server = HttpServer::start();
    let crl = pki.ca.crl(&[&pki.revoked.serial], hour());
    server.set("/fetched.crl", 200, crl.der.clone());
    let url = server.url("/fetched.crl");

    let w = World::with_global(&crl_urls(&[("fetched", &url)]));
    w.role("ca", &[&pki.ca.cert_pem], "");
    let live = Live::start(w);
    live.first_fetches().await;

    assert_code(&live.decide(&pki.revoked, None).await, "revoked_crl");
    allowed(&live.decide(&pki.clean, None).await, "ca");

    let source = live.source("fetched");
    assert_eq!(source.url, url);
    assert_eq!(source.origin, SourceOrigin::Configured);
    assert_eq!(source.last_error, None, "{source:#?}");
    assert_eq!((source.fetches, source.failures), (1, 0), "{source:#?}");
    assert!(source.last_success.is_some() && source.last_attempt.is_some());
    let list = source.crl.as_ref().expect("the fetched list");
    assert!(list.issuer.contains("Fetched CA"), "issuer {}", list.issuer);
    assert_eq!(list.len(), 1);
    assert!(list.contains(&pki.revoked.serial));
    assert!(!list.contains(&pki.clean.serial));
    let now = unix_now();
    assert!(
        (now - 120..=now).contains(&list.this_update),
        "thisUpdate {} (now {now})",
        list.this_update
    );
    let next = list.next_update.expect("nextUpdate");
    assert!(
        (now + 3500..=now + 3700).contains(&next),
        "nextUpdate {next} (now {now})"
    );
    assert!(list.verified_by.is_some(), "signature checked: {list:?}");
    // The next refresh is planned before nextUpdate.
    let planned = source.next_refresh.expect("next refresh planned");
    assert!(planned <= next, "refresh at {planned}, nextUpdate {next}");
    assert_eq!(server.requests("/fetched.crl"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_is_refreshed_after_its_next_update() {
    let pki = pki("Refreshed");
    let later = pki.ca.leaf(LeafSpec::client("revoked later"));
    let server = HttpServer::start();
    // Due in 3 s: the source comes back for a newer list then.
    let first = pki
        .ca
        .crl(&[&pki.revoked.serial], time::Duration::seconds(3));
    server.set("/refreshed.crl", 200, first.der.clone());

    let w = World::with_global(&crl_urls(&[("refreshed", &server.url("/refreshed.crl"))]));
    w.role("ca", &[&pki.ca.cert_pem], "");
    let live = Live::start(w);
    live.first_fetches().await;
    assert_code(&live.decide(&pki.revoked, None).await, "revoked_crl");
    allowed(&live.decide(&later, None).await, "ca");
    let fetches_before = live.source("refreshed").fetches;

    let second = pki.ca.crl(&[&pki.revoked.serial, &later.serial], hour());
    server.set("/refreshed.crl", 200, second.der.clone());

    eventually("the newly listed serial is denied", || async {
        code(&live.decide(&later, None).await) == "revoked_crl"
    })
    .await;
    assert_code(&live.decide(&pki.revoked, None).await, "revoked_crl");
    allowed(&live.decide(&pki.clean, None).await, "ca");
    let source = live.source("refreshed");
    assert!(source.fetches > fetches_before, "{source:#?}");
    assert!(server.requests("/refreshed.crl") >= 2);
    assert_eq!(source.crl.as_ref().map(|c| c.len()), Some(2));
    assert_eq!(source.last_error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_keeps_the_last_good_list() {
    let pki = pki("Kept");
    let server = HttpServer::start();
    let crl = pki.ca.crl(&[&pki.revoked.serial], hour());
    server.set("/kept.crl", 200, crl.der.clone());

    let w = World::with_global(&crl_urls(&[("kept", &server.url("/kept.crl"))]));
    w.role("ca", &[&pki.ca.cert_pem], "");
    let live = Live::start(w);
    live.first_fetches().await;
    assert_code(&live.decide(&pki.revoked, None).await, "revoked_crl");

    server.set_down(true);
    live.live.refresh_all();
    eventually("the refresh fails and is counted", || async {
        live.source("kept").failures >= 1
    })
    .await;

    let source = live.source("kept");
    assert!(source.last_error.is_some(), "{source:#?}");
    assert!(source.fetches >= 2, "{source:#?}");
    assert!(
        source
            .crl
            .as_ref()
            .is_some_and(|c| c.contains(&pki.revoked.serial)),
        "the last good list stays: {source:#?}"
    );
    assert!(
        live.live
            .counters
            .crl_fetch_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    assert_code(&live.decide(&pki.revoked, None).await, "revoked_crl");
    allowed(&live.decide(&pki.clean, None).await, "ca");
}

// === refused lists ===

/// Two roles on the same CA: `plain`, and `strict` that requires the leaf's CRL. The
/// clients name the source's URL as their distribution point, so that the configured
/// source is the one the strict role needs.
fn refused_list_world(pki: &Pki, url: &str, extra_global: &str) -> World {
    let w = World::with_global(&format!("{}{extra_global}", crl_urls(&[("refused", url)])));
    w.role("plain", &[&pki.ca.cert_pem], "");
    w.role(
        "strict",
        &[&pki.ca.cert_pem],
        "require_crl_distribution_points: true",
    );
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_a_crl_is_refused() {
    let server = HttpServer::start();
    let url = server.url("/junk.crl");
    let pki = pki_with_cdp("Junk", &url);
    server.set(
        "/junk.crl",
        200,
        b"<html><body>Service temporarily unavailable</body></html>".to_vec(),
    );

    let live = Live::start(refused_list_world(&pki, &url, ""));
    live.first_fetches().await;

    let source = live.source("refused");
    let error = source.last_error.clone().expect("an error");
    assert!(error.contains("CRL"), "error does not say why: {error}");
    assert!(source.crl.is_none(), "{source:#?}");
    assert_eq!(source.failures, 1);

    // No list: the plain role decides without one, the strict one cannot.
    allowed(&live.decide(&pki.revoked, Some("plain")).await, "plain");
    assert_code(
        &live.decide(&pki.revoked, Some("strict")).await,
        "crl_required",
    );
    assert_code(
        &live.decide(&pki.clean, Some("strict")).await,
        "crl_required",
    );
    // One source for the URL, whether configured or met as a distribution point.
    assert_eq!(live.live.crl_sources().len(), 1);
    assert_eq!(server.requests("/junk.crl"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_max_size_is_refused() {
    let server = HttpServer::start();
    let url = server.url("/huge.crl");
    let pki = pki_with_cdp("Huge", &url);
    server.set_huge("/huge.crl", 3 << 20);

    let live = Live::start(refused_list_world(
        &pki,
        &url,
        "crl_fetch: {max_size: 1048576}\n",
    ));
    live.first_fetches().await;

    let source = live.source("refused");
    let error = source.last_error.clone().expect("an error");
    assert!(
        error.contains("larger than 1048576"),
        "error does not say why: {error}"
    );
    assert!(source.crl.is_none(), "{source:#?}");
    allowed(&live.decide(&pki.revoked, Some("plain")).await, "plain");
    assert_code(
        &live.decide(&pki.clean, Some("strict")).await,
        "crl_required",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_signed_by_the_wrong_key_revokes_nothing() {
    let server = HttpServer::start();
    let url = server.url("/forged.crl");
    let pki = pki_with_cdp("Forged", &url);
    let forged = pki.ca.crl_signed_by_wrong_key(&[&pki.revoked.serial]);
    server.set("/forged.crl", 200, forged.der.clone());

    let live = Live::start(refused_list_world(&pki, &url, ""));
    live.first_fetches().await;

    let source = live.source("refused");
    let error = source.last_error.clone().expect("an error");
    assert!(
        error.contains("signature"),
        "error does not say why: {error}"
    );
    assert!(source.crl.is_none(), "{source:#?}");
    allowed(&live.decide(&pki.revoked, Some("plain")).await, "plain");
    assert_code(
        &live.decide(&pki.revoked, Some("strict")).await,
        "crl_required",
    );

    // The genuine list, once served, is taken at the next refresh.
    let genuine = pki.ca.crl(&[&pki.revoked.serial], hour());
    server.set("/forged.crl", 200, genuine.der.clone());
    live.live.refresh_all();
    eventually("the genuine list is taken", || async {
        live.source("refused").crl.is_some()
    })
    .await;
    assert_code(
        &live.decide(&pki.revoked, Some("plain")).await,
        "revoked_crl",
    );
    allowed(&live.decide(&pki.clean, Some("strict")).await, "strict");
}

// === distribution points ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_points_are_fetched_once_for_concurrent_requests() {
    let server = HttpServer::start();
    let url = server.url("/ca.crl");
    let pki = pki_with_cdp("Distribution", &url);
    let crl = pki.ca.crl(&[&pki.revoked.serial], hour());
    server.set("/ca.crl", 200, crl.der.clone());

    // No crl_urls; a generous first-fetch wait so that a loaded machine still makes it.
    let w = World::with_global("crl_fetch: {first_fetch_wait: 10s}\n");
    w.role("ca", &[&pki.ca.cert_pem], "");
    let live = Live::start(w);
    assert!(live.live.crl_sources().is_empty());

    // The very first decision waits for the first fetch.
    let first = live.decide(&pki.revoked, None).await;
    assert_code(&first, "revoked_crl");
    assert_eq!(server.requests("/ca.crl"), 1);

    let source = live.source(&url);
    assert_eq!(source.origin, SourceOrigin::DistributionPoint);
    assert!(source.crl.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_first_requests_make_one_fetch() {
    let server = HttpServer::start();
    let url = server.url("/ca.crl");
    let pki = pki_with_cdp("Single Flight", &url);
    let crl = pki.ca.crl(&[&pki.revoked.serial], hour());
    server.set("/ca.crl", 200, crl.der.clone());
    // Slow enough that every request below meets the fetch in flight.
    server.set_delay("/ca.crl", Duration::from_millis(500));

    let w = World::with_global("crl_fetch: {first_fetch_wait: 10s}\n");
    w.role("ca", &[&pki.ca.cert_pem], "");
    let live = Live::start(w);

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let leaf = if i % 2 == 0 {
            pki.revoked.clone()
        } else {
            pki.clean.clone()
        };
        let (live, snapshot) = (Arc::clone(&live.live), Arc::clone(&live.snapshot));
        tasks.spawn(async move {
            let decision = decide_live(&live, &snapshot, &leaf, None).await;
            (i, code(&decision))
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.expect("decision task"));
    }
    outcomes.sort();
    for (i, got) in &outcomes {
        let expected = if i % 2 == 0 { "revoked_crl" } else { "allow" };
        assert_eq!(*got, expected, "request {i}: {outcomes:?}");
    }
    assert_eq!(
        server.requests("/ca.crl"),
        1,
        "one fetch for 20 concurrent requests"
    );
    assert_eq!(live.live.crl_sources().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_distribution_point_does_not_hold_requests() {
    let server = HttpServer::start();
    let url = server.url("/slow.crl");
    let pki = pki_with_cdp("Slow", &url);
    let crl = pki.ca.crl(&[&pki.revoked.serial], hour());
    server.set("/slow.crl", 200, crl.der.clone());
    server.set_delay("/slow.crl", Duration::from_secs(4));

    let w = World::with_global("crl_fetch: {first_fetch_wait: 300ms, timeout: 15s}\n");
    w.role("plain", &[&pki.ca.cert_pem], "");
    w.role(
        "strict",
        &[&pki.ca.cert_pem],
        "require_crl_distribution_points: true",
    );
    let live = Live::start(w);

    // The fetch is still running: no CRL is known yet.
    let started = Instant::now();
    let plain = live.decide(&pki.revoked, Some("plain")).await;
    let waited = started.elapsed();
    allowed(&plain, "plain");
    eprintln!(
        "first decision with a 4 s distribution point and first_fetch_wait 300ms took {waited:?}"
    );
    assert_code(
        &live.decide(&pki.clean, Some("strict")).await,
        "crl_required",
    );

    eventually("the slow list arrives and revokes", || async {
        code(&live.decide(&pki.revoked, Some("plain")).await) == "revoked_crl"
    })
    .await;
    allowed(&live.decide(&pki.clean, Some("strict")).await, "strict");
    assert_code(
        &live.decide(&pki.revoked, Some("strict")).await,
        "revoked_crl",
    );
    assert_eq!(server.requests("/slow.crl"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_fetch_wait_bounds_the_whole_decision() {
    // The list arrives 3 s after the first request; first_fetch_wait is 2 s. A request
    // that waited only first_fetch_wait decides without the list; one that waited again
    // (per pass of fetch-and-decide) would see it and deny.
    let server = HttpServer::start();
    let url = server.url("/late.crl");
    let pki = pki_with_cdp("Late", &url);
    server.set(
        "/late.crl",
        200,
        pki.ca.crl(&[&pki.revoked.serial], hour()).der.clone(),
    );
    server.set_delay("/late.crl", Duration::from_secs(3));

    let w = World::with_global("crl_fetch: {first_fetch_wait: 2s}\n");
    w.role("plain", &[&pki.ca.cert_pem], "");
    let live = Live::start(w);
    let decision = live.decide(&pki.revoked, Some("plain")).await;
    assert_code(&decision, "allow");
    // It does arrive, and counts from then on.
    eventually("the late list arrives", || async {
        code(&live.decide(&pki.revoked, Some("plain")).await) == "revoked_crl"
    })
    .await;
    assert_eq!(server.requests("/late.crl"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serial_is_revoked_for_its_issuer_only() {
    // The distribution point serves another CA's list, which names our client's serial.
    let server = HttpServer::start();
    let url = server.url("/mixed-up.crl");
    let pki = pki_with_cdp("Ours", &url);
    let theirs = Ca::root("Theirs CA");
    server.set(
        "/mixed-up.crl",
        200,
        theirs.crl(&[&pki.revoked.serial], hour()).der.clone(),
    );

    let w = World::new();
    w.role("plain", &[&pki.ca.cert_pem], "");
    w.role(
        "strict",
        &[&pki.ca.cert_pem],
        "require_crl_distribution_points: true",
    );
    w.role("theirs", &[&theirs.cert_pem], "");
    let live = Live::start(w);
    allowed(&live.decide(&pki.revoked, Some("plain")).await, "plain");
    // The list was taken (it verifies with its own issuer's key) but says nothing
    // about our CA's certificates.
    let source = live.source(&url);
    assert!(source.crl.is_some(), "{source:#?}");
    assert_code(
        &live.decide(&pki.revoked, Some("strict")).await,
        "crl_required",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_list_under_the_expiry_policy() {
    // Due in 2 s, and the server goes away: the list stays, past its nextUpdate.
    let server = HttpServer::start();
    let url = server.url("/stale.crl");
    let pki = pki_with_cdp("Stale", &url);
    server.set(
        "/stale.crl",
        200,
        pki.ca
            .crl(&[&pki.revoked.serial], time::Duration::seconds(2))
            .der
            .clone(),
    );
    let world = |global: &str| {
        let w = World::with_global(&format!("{}{global}", crl_urls(&[("stale", &url)])));
        w.role("plain", &[&pki.ca.cert_pem], "");
        w.role(
            "strict",
            &[&pki.ca.cert_pem],
            "require_crl_distribution_points: true",
        );
        w
    };
    let default_policy = Live::start(world(""));
    let allow_policy = Live::start(world("crl_expired: allow\n"));
    default_policy.first_fetches().await;
    allow_policy.first_fetches().await;
    allowed(
        &default_policy.decide(&pki.clean, Some("strict")).await,
        "strict",
    );
    server.set_down(true);

    let next_update = default_policy
        .source("stale")
        .crl
        .and_then(|c| c.next_update)
        .expect("nextUpdate");
    eventually("the list is past its nextUpdate", || async {
        unix_now() > next_update
    })
    .await;
    // Default: deny for CDP-required roles, allow (with a warning) otherwise.
    assert_code(
        &default_policy.decide(&pki.clean, Some("strict")).await,
        "crl_expired",
    );
    allowed(
        &default_policy.decide(&pki.clean, Some("plain")).await,
        "plain",
    );
    // A listed serial stays revoked whatever the policy.
    assert_code(
        &default_policy.decide(&pki.revoked, Some("plain")).await,
        "revoked_crl",
    );
    // crl_expired: allow keeps using the stale list for everyone.
    allowed(
        &allow_policy.decide(&pki.clean, Some("strict")).await,
        "strict",
    );
    assert_code(
        &allow_policy.decide(&pki.revoked, Some("strict")).await,
        "revoked_crl",
    );
    let source = default_policy.source("stale");
    assert!(source.crl.is_some(), "the stale list is kept: {source:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_points_beyond_the_limit_are_not_fetched() {
    // Two CAs, each client naming its own CA's list; only one distribution point may
    // be remembered.
    let server = HttpServer::start();
    let first = pki_with_cdp("First", &server.url("/first.crl"));
    let second = pki_with_cdp("Second", &server.url("/second.crl"));
    for (path, pki) in [("/first.crl", &first), ("/second.crl", &second)] {
        let crl = pki.ca.crl(&[&pki.revoked.serial], hour());
        server.set(path, 200, crl.der.clone());
    }

    let w = World::with_global("crl_fetch: {max_distribution_points: 1}\n");
    for (name, pki) in [("first", &first), ("second", &second)] {
        w.role(&format!("{name}-plain"), &[&pki.ca.cert_pem], "");
        w.role(
            &format!("{name}-strict"),
            &[&pki.ca.cert_pem],
            "require_crl_distribution_points: true",
        );
    }
    let live = Live::start(w);
    assert_code(
        &live.decide(&first.revoked, Some("first-plain")).await,
        "revoked_crl",
    );
    allowed(
        &live.decide(&first.clean, Some("first-strict")).await,
        "first-strict",
    );
    // The second URL is over the limit: never fetched, so the second CA's clients go
    // unchecked by a plain role and are refused by a strict one.
    allowed(
        &live.decide(&second.revoked, Some("second-plain")).await,
        "second-plain",
    );
    assert_code(
        &live.decide(&second.clean, Some("second-strict")).await,
        "crl_required",
    );
    assert_eq!(server.requests("/first.crl"), 1);
    assert_eq!(server.requests("/second.crl"), 0);
    assert_eq!(live.live.crl_sources().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_list_is_reported() {
    let server = HttpServer::start();
    let url = server.url("/missing.crl");
    let w = World::with_global(&crl_urls(&[("missing", &url)]));
    let ca = Ca::root("Missing CA");
    w.role("ca", &[&ca.cert_pem], "");
    let live = Live::start(w);
    live.first_fetches().await;
    let source = live.source("missing");
    let error = source.last_error.clone().expect("an error");
    assert!(error.contains("404"), "{error}");
    assert!(source.crl.is_none());
    assert!(
        source.next_refresh.is_some(),
        "a retry is planned: {source:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_points_ignored_are_never_fetched() {
    let server = HttpServer::start();
    let url = server.url("/ignored.crl");
    let pki = pki_with_cdp("Ignored", &url);
    let crl = pki.ca.crl(&[&pki.revoked.serial], hour());
    server.set("/ignored.crl", 200, crl.der.clone());

    let w = World::with_global("crl_distribution_points: ignore\n");
    w.role("plain", &[&pki.ca.cert_pem], "");
    w.role(
        "strict",
        &[&pki.ca.cert_pem],
        "require_crl_distribution_points: true",
    );
    let live = Live::start(w);

    allowed(&live.decide(&pki.revoked, Some("plain")).await, "plain");
    assert_code(
        &live.decide(&pki.clean, Some("strict")).await,
        "crl_required",
    );
    // Give a stray fetch every chance to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.requests("/ignored.crl"), 0);
    assert!(live.live.crl_sources().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intermediate_is_checked_through_its_own_distribution_point() {
    // Root → intermediate (CDP: the root's list) → leaves; the role anchors the root and
    // the client sends its intermediate. The root's list revokes the intermediate.
    let server = HttpServer::start();
    let root_list = server.url("/root.crl");
    let root = Ca::root("Path Root");
    let issuing = root.intermediate_with("Path Issuing", |params| {
        params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![root_list.clone()],
        }];
    });
    let leaf = issuing.leaf(LeafSpec::client("alice"));
    let (_, parsed) = x509_parser::parse_x509_certificate(&issuing.cert_der).expect("parse");
    let issuing_serial = parsed.raw_serial().to_vec();
    server.set("/root.crl", 200, root.crl(&[], hour()).der.clone());

    let w = World::new();
    w.role("root", &[&root.cert_pem], "");
    let live = Live::start(w);
    let presented = presented(&leaf.cert_pem, &[&issuing.cert_pem]);
    let decide = || decide_presented(&live.live, &live.snapshot, &presented, None);
    allowed(&decide().await, "root");
    assert_eq!(server.requests("/root.crl"), 1);

    server.set(
        "/root.crl",
        200,
        root.crl(&[&issuing_serial], hour()).der.clone(),
    );
    live.live.refresh_all();
    eventually("the revoked intermediate denies its leaves", || async {
        code(&decide().await) == "revoked_crl"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_for_an_unconfigured_issuer_counts_only_if_that_issuer_signed_it() {
    // The role anchors the root only; the issuing CA reaches certgate in the client's
    // chain. Its lists cannot be verified at fetch time, only when a path meets it: the
    // genuine list revokes, a forged one (same name and key id, another key) does not.
    let root = Ca::root("Unconfigured Root");
    let issuing = root.intermediate("Unconfigured Issuing");
    let revoked = issuing.leaf(LeafSpec::client("revoked"));
    let clean = issuing.leaf(LeafSpec::client("clean"));
    let server = HttpServer::start();
    server.set(
        "/genuine.crl",
        200,
        issuing.crl(&[&revoked.serial], hour()).der.clone(),
    );
    server.set(
        "/forged.crl",
        200,
        issuing
            .crl_signed_by_wrong_key(&[&clean.serial])
            .der
            .clone(),
    );
    let w = World::with_global(&crl_urls(&[
        ("genuine", &server.url("/genuine.crl")),
        ("forged", &server.url("/forged.crl")),
    ]));
    w.role("root", &[&root.cert_pem], "");
    let live = Live::start(w);
    live.first_fetches().await;

    let decide = |leaf: &Leaf| {
        let presented = presented(&leaf.cert_pem, &[&issuing.cert_pem]);
        let live = &live;
        async move { decide_presented(&live.live, &live.snapshot, &presented, None).await }
    };
    assert_code(&decide(&revoked).await, "revoked_crl");
    allowed(&decide(&clean).await, "root");
    // Both lists were taken: nothing could tell them apart when they were fetched.
    for name in ["genuine", "forged"] {
        let source = live.source(name);
        assert_eq!(source.last_error, None, "{source:#?}");
        let list = source.crl.as_ref().expect("list held");
        assert!(list.verified_by.is_none(), "{list:?}");
    }
}

// === reload ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_crl_sources() {
    let pki = pki("Reload");
    let server = HttpServer::start();
    let old_list = pki.ca.crl(&[&pki.revoked.serial], hour());
    let new_list = pki.ca.crl(&[&pki.clean.serial], hour());
    server.set("/old.crl", 200, old_list.der.clone());
    server.set("/new.crl", 200, new_list.der.clone());

    let w = World::with_global(&crl_urls(&[("old", &server.url("/old.crl"))]));
    w.role("ca", &[&pki.ca.cert_pem], "");
    let live = Live::start(w);
    live.first_fetches().await;
    assert_code(&live.decide(&pki.revoked, None).await, "revoked_crl");
    allowed(&live.decide(&pki.clean, None).await, "ca");

    let w2 = World::with_global(&crl_urls(&[("new", &server.url("/new.crl"))]));
    w2.role("ca", &[&pki.ca.cert_pem], "");
    let snapshot2 = Arc::new(w2.snapshot());
    live.live.apply(&snapshot2);
    live.live.wait_first_fetches(PATIENCE).await;

    let names: Vec<String> = live
        .live
        .crl_sources()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["new"]);
    let source = live.source("new");
    assert!(source.crl.is_some(), "{source:#?}");
    assert_eq!(server.requests("/new.crl"), 1);

    let after = Live {
        snapshot: snapshot2,
        live: Arc::clone(&live.live),
        _world: w2,
    };
    allowed(&after.decide(&pki.revoked, None).await, "ca");
    assert_code(&after.decide(&pki.clean, None).await, "revoked_crl");
    // The removed source is not fetched any more.
    let old_requests = server.requests("/old.crl");
    live.live.refresh_all();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.requests("/old.crl"), old_requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_refreshes_remaining_sources() {
    let pki = pki("Reload Refresh");
    let server = HttpServer::start();
    server.set(
        "/kept.crl",
        200,
        pki.ca.crl(&[&pki.revoked.serial], hour()).der.clone(),
    );
    let w = World::with_global(&crl_urls(&[("kept", &server.url("/kept.crl"))]));
    w.role("ca", &[&pki.ca.cert_pem], "");
    let live = Live::start(w);
    live.first_fetches().await;
    allowed(&live.decide(&pki.clean, None).await, "ca");

    server.set(
        "/kept.crl",
        200,
        pki.ca
            .crl(&[&pki.revoked.serial, &pki.clean.serial], hour())
            .der
            .clone(),
    );
    live.live.apply(&live.snapshot);
    eventually("the reload refreshes the list", || async {
        code(&live.decide(&pki.clean, None).await) == "revoked_crl"
    })
    .await;
    assert_eq!(server.requests("/kept.crl"), 2);
}

// === a million serials ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_serial_list() {
    const COUNT: u32 = 1_000_000;
    let ca = Ca::root("Million CA");
    // 16-byte serials, like real CAs' (and this suite's random ones).
    let serial = |i: u32| -> Vec<u8> {
        let mut s = vec![
            0x42, 0x17, 0x5e, 0xa1, 0x0c, 0x33, 0x90, 0x2d, 0x71, 0x08, 0xbe, 0x64,
        ];
        s.extend_from_slice(&i.to_be_bytes());
        s
    };
    let listed = ca.leaf(LeafSpec::client("listed").serial(serial(777_777)));
    let unlisted = ca.leaf(LeafSpec::client("unlisted").serial(serial(COUNT + 5)));

    let started = Instant::now();
    let serials: Vec<Vec<u8>> = (0..COUNT).map(serial).collect();
    let refs: Vec<&[u8]> = serials.iter().map(Vec::as_slice).collect();
    let crl = ca.crl(&refs, hour());
    drop(refs);
    drop(serials);
    eprintln!(
        "generating a {COUNT}-serial CRL ({} bytes DER) with rcgen took {:?}",
        crl.der.len(),
        started.elapsed()
    );

    // Parse, verify and index alone, as the fetcher does off the runtime.
    let ca_parsed = certgate::pki::cert::ParsedCert::from_der(
        rustls_pki_types::CertificateDer::from(ca.cert_der.clone()),
    )
    .expect("parse CA");
    let memory_before_parse = memory();
    let started = Instant::now();
    let mut entry =
        certgate::revocation::CrlEntry::parse_any("million", "memory", &crl.der).expect("parse");
    let parsed_in = started.elapsed();
    entry.verify_against(&[&ca_parsed]).expect("verify");
    eprintln!(
        "parse+index {parsed_in:?}, +verify {:?}, {} serials; {memory_before_parse} -> {}",
        started.elapsed(),
        entry.len(),
        memory()
    );
    assert_eq!(entry.len(), COUNT as usize);
    drop(entry);

    let server = HttpServer::start();
    server.set("/million.crl", 200, crl.der.clone());
    let w = World::with_global(&crl_urls(&[("million", &server.url("/million.crl"))]));
    w.role("ca", &[&ca.cert_pem], "");
    let memory_before_fetch = memory();
    let started = Instant::now();
    let live = Live::start(w);
    live.live.wait_first_fetches(Duration::from_secs(120)).await;
    let fetched_in = started.elapsed();
    eprintln!(
        "fetch+parse+verify+index over HTTP took {fetched_in:?}; {memory_before_fetch} -> {}",
        memory()
    );

    let source = live.source("million");
    assert_eq!(source.last_error, None, "{source:#?}");
    assert_eq!(source.crl.as_ref().map(|c| c.len()), Some(COUNT as usize));
    assert_code(&live.decide(&listed, None).await, "revoked_crl");
    allowed(&live.decide(&unlisted, None).await, "ca");
    let started = Instant::now();
    for _ in 0..100 {
        assert_code(&live.decide(&listed, None).await, "revoked_crl");
    }
    eprintln!(
        "100 decisions against the million-serial list: {:?}",
        started.elapsed()
    );
}
