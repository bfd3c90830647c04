//! The decision engine's chain rules: path building to a role's anchors through
//! presented and configured intermediates, pinned leaves, validity, key usage, refused
//! signature algorithms, hostile input, and the verified-chain cache (which must never
//! hide time-dependent failures).
//!
//! Each test writes a config directory (`certgate.yaml`, `roles/`, `crls/`), loads and
//! compiles it exactly as the server does, and calls `engine::decide` with an injected
//! clock. Assertions are on `Reason` variants, never on messages.

mod common;

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::time::{Duration as StdDuration, Instant};

use certgate::engine::{Decision, Reason};
use certgate::source::{CertOrigin, Presented};
use common::pki::*;
use common::world::*;
use time::{Duration, OffsetDateTime};

// === path building ===

#[test]
fn intermediate_presented_in_the_chain() {
    let root = Ca::root("Chain Root");
    let issuing = root.intermediate("Chain Issuing");
    let leaf = issuing.leaf(LeafSpec::client("alice"));
    let w = World::new();
    w.role("root-only", &[&root.cert_pem], "");
    let snap = w.snapshot();

    let p = presented(&leaf.cert_pem, &[&issuing.cert_pem]);
    let decision = decide_with(&snap, &p, Ctx::default());
    assert_eq!(allowed(&decision, "root-only").sub, "alice");

    // XFCC `Chain` holds what the client sent, leaf first.
    let p = presented(&leaf.cert_pem, &[&leaf.cert_pem, &issuing.cert_pem]);
    allowed(&decide_with(&snap, &p, Ctx::default()), "root-only");

    // The client sent the root too.
    let p = presented(&leaf.cert_pem, &[&issuing.cert_pem, &root.cert_pem]);
    allowed(&decide_with(&snap, &p, Ctx::default()), "root-only");

    // A bundle in the leaf field (`check --cert`): first = leaf, the rest intermediates.
    let p = Presented {
        leaf: Cow::Owned(url_encode(&bundle(&[&leaf.cert_pem, &issuing.cert_pem]))),
        chain: None,
        origin: CertOrigin::Peer,
        xfcc_ignored: false,
    };
    allowed(&decide_with(&snap, &p, Ctx::default()), "root-only");
}

#[test]
fn intermediate_in_the_role_bundle() {
    let root = Ca::root("Bundle Root");
    let issuing = root.intermediate("Bundle Issuing");
    let leaf = issuing.leaf(LeafSpec::client("alice"));
    let w = World::new();
    w.role("bundle", &[&root.cert_pem, &issuing.cert_pem], "");
    let snap = w.snapshot();
    allowed(&check(&snap, &leaf), "bundle");
}

#[test]
fn a_pinned_intermediate_alone_is_an_anchor() {
    let root = Ca::root("Pinned Int Root");
    let issuing = root.intermediate("Pinned Int Issuing");
    let leaf = issuing.leaf(LeafSpec::client("alice"));
    let sibling = root.intermediate("Pinned Int Sibling");
    let w = World::new();
    w.role("issuing-only", &[&issuing.cert_pem], "");
    let snap = w.snapshot();
    allowed(&check(&snap, &leaf), "issuing-only");

    // A leaf of another intermediate under the same root is not trusted.
    let cousin = sibling.leaf(LeafSpec::client("alice"));
    let p = presented(&cousin.cert_pem, &[&sibling.cert_pem]);
    assert_deny!(
        decide_with(&snap, &p, Ctx::default()),
        Reason::UntrustedIssuer
    );
}

#[test]
fn intermediates_from_any_roles_bundle_complete_a_path() {
    let root = Ca::root("Pool Root");
    let issuing = root.intermediate("Pool Issuing");
    let leaf = issuing.leaf(LeafSpec::client("alice"));
    let w = World::new();
    w.role("a", &[&root.cert_pem], "").role(
        "b",
        &[&root.cert_pem, &issuing.cert_pem],
        "allowed_common_names: nobody",
    );
    let snap = w.snapshot();
    // Envoy sends the leaf only; role `a` trusts only the root, the intermediate comes
    // from role `b`'s bundle.
    allowed(&check_roles(&snap, &leaf, "a"), "a");
}

#[test]
fn intermediate_nowhere_is_untrusted() {
    let root = Ca::root("Missing Root");
    let issuing = root.intermediate("Missing Issuing");
    let leaf = issuing.leaf(LeafSpec::client("alice"));
    let w = World::new();
    w.role("root-only", &[&root.cert_pem], "");
    let snap = w.snapshot();
    assert_deny!(check(&snap, &leaf), Reason::UntrustedIssuer);
}

#[test]
fn wrong_ca_is_untrusted() {
    let root = Ca::root("Right Root");
    let other = Ca::root("Other Root");
    let other_issuing = other.intermediate("Other Issuing");
    let w = World::new();
    w.role("right", &[&root.cert_pem], "");
    let snap = w.snapshot();

    let leaf = other.leaf(LeafSpec::client("alice"));
    assert_deny!(check(&snap, &leaf), Reason::UntrustedIssuer);

    let leaf = other_issuing.leaf(LeafSpec::client("alice"));
    let p = presented(&leaf.cert_pem, &[&other_issuing.cert_pem, &other.cert_pem]);
    assert_deny!(
        decide_with(&snap, &p, Ctx::default()),
        Reason::UntrustedIssuer
    );
}

#[test]
fn impostor_ca_with_the_same_name_is_refused() {
    let root = Ca::root("Same Name Root");
    let impostor = Ca::root("Same Name Root");
    let w = World::new();
    w.role("real", &[&root.cert_pem], "");
    let snap = w.snapshot();
    let leaf = impostor.leaf(LeafSpec::client("alice"));
    assert_deny!(
        check(&snap, &leaf),
        Reason::UntrustedIssuer | Reason::BadSignature
    );
}

// === pinned leaves ===

#[test]
fn pinned_leaf_is_allowed_byte_for_byte() {
    let root = Ca::root("Pin Root");
    let leaf = root.leaf(LeafSpec::client("alice"));
    let w = World::new();
    w.role("pinned", &[&leaf.cert_pem], "");
    let snap = w.snapshot();
    let decision = check(&snap, &leaf);
    assert_eq!(allowed(&decision, "pinned").sub, "alice");
}

#[test]
fn pinned_leaf_forged_twin_is_refused() {
    let root = Ca::root("Twin Root");
    let leaf = root.leaf(LeafSpec::client("alice"));
    let w = World::new();
    w.role("pinned", &[&leaf.cert_pem], "");
    let snap = w.snapshot();

    // Same serial, same key, same issuer: another CN.
    let other_cn = root.leaf(
        LeafSpec::client("alice-admin")
            .key(leaf.key.clone())
            .serial(leaf.serial.clone()),
    );
    // Same serial, same key, same CN: another validity period.
    let other_validity = root.leaf(
        LeafSpec::client("alice")
            .key(leaf.key.clone())
            .serial(leaf.serial.clone())
            .validity(
                OffsetDateTime::now_utc() - Duration::hours(2),
                OffsetDateTime::now_utc() + Duration::days(3650),
            ),
    );
    // Same serial, same key, same CN, issued by a CA nobody trusts.
    let elsewhere = Ca::root("Twin Root").leaf(
        LeafSpec::client("alice")
            .key(leaf.key.clone())
            .serial(leaf.serial.clone()),
    );
    for twin in [&other_cn, &other_validity, &elsewhere] {
        assert_eq!(twin.serial, leaf.serial);
        assert_ne!(twin.cert_der, leaf.cert_der);
        assert_deny!(check(&snap, twin), Reason::LeafNotPinned);
    }

    let stranger = root.leaf(LeafSpec::client("alice"));
    assert_deny!(check(&snap, &stranger), Reason::LeafNotPinned);
}

#[test]
fn pinned_leaf_validity_is_checked() {
    let root = Ca::root("Pin Validity Root");
    let expired = root.leaf(LeafSpec::client("old").expired());
    let early = root.leaf(LeafSpec::client("new").not_yet_valid());
    let w = World::new();
    w.role("expired", &[&expired.cert_pem], "")
        .role("early", &[&early.cert_pem], "");
    let snap = w.snapshot();
    assert_deny!(
        check_roles(&snap, &expired, "expired"),
        Reason::CertificateExpired { .. }
    );
    assert_deny!(
        check_roles(&snap, &early, "early"),
        Reason::CertificateNotYetValid { .. }
    );
}

// === validity, key usage, algorithms ===

#[test]
fn expired_and_not_yet_valid_leaves() {
    let root = Ca::root("Validity Root");
    let w = World::new();
    w.role("ca", &[&root.cert_pem], "");
    let snap = w.snapshot();

    let expired = root.leaf(LeafSpec::client("old").expired());
    assert_deny!(check(&snap, &expired), Reason::CertificateExpired { .. });

    let early = root.leaf(LeafSpec::client("new").not_yet_valid());
    assert_deny!(check(&snap, &early), Reason::CertificateNotYetValid { .. });
}

#[test]
fn expired_intermediate() {
    let root = Ca::root("Expired Int Root");
    let issuing = root.intermediate_with("Expired Int Issuing", |p| {
        p.not_before = OffsetDateTime::now_utc() - Duration::days(30);
        p.not_after = OffsetDateTime::now_utc() - Duration::days(1);
    });
    let leaf = issuing.leaf(LeafSpec::client("alice"));
    let w = World::new();
    w.role("ca", &[&root.cert_pem], "");
    let snap = w.snapshot();
    let p = presented(&leaf.cert_pem, &[&issuing.cert_pem]);
    assert_deny!(
        decide_with(&snap, &p, Ctx::default()),
        Reason::CertificateExpired { .. }
    );
}

#[test]
fn extended_key_usage() {
    let root = Ca::root("EKU Root");
    let w = World::new();
    w.role("ca", &[&root.cert_pem], "");
    let snap = w.snapshot();

    let server = root.leaf(LeafSpec::client("srv").eku(Eku::Server));
    assert_deny!(check(&snap, &server), Reason::InvalidKeyUsage);

    let ocsp = root.leaf(LeafSpec::client("ocsp").eku(Eku::OcspSigning));
    assert_deny!(check(&snap, &ocsp), Reason::InvalidKeyUsage);

    let none = root.leaf(LeafSpec::client("any").eku(Eku::None));
    allowed(&check(&snap, &none), "ca");

    let both = root.leaf(LeafSpec::client("both").eku(Eku::ClientAndServer));
    allowed(&check(&snap, &both), "ca");
}

#[test]
fn sha1_signatures_are_refused() {
    let dir = Dir::new();
    let (rsa_ca_pem, rsa_leaf_pem) = sha1_signed_leaf(&dir.join("rsa"));
    let ec_root = Ca::root("SHA1 EC Root");
    let ec_leaf_pem = sha1_signed_leaf_by(&ec_root, &dir.join("ec"));

    let w = World::new();
    w.role("rsa", &[&rsa_ca_pem], "")
        .role("ec", &[&ec_root.cert_pem], "");
    let snap = w.snapshot();
    for (role, leaf_pem) in [("rsa", &rsa_leaf_pem), ("ec", &ec_leaf_pem)] {
        let p = presented(leaf_pem, &[]);
        let ctx = Ctx {
            roles: Some(role),
            ..Ctx::default()
        };
        assert_deny!(
            decide_with(&snap, &p, ctx),
            Reason::UnsupportedSignatureAlgorithm
        );
    }
}

#[test]
fn rsa_root() {
    let root = Ca::root_rsa("RSA Root");
    let issuing = root.intermediate("EC Issuing under RSA");
    let w = World::new();
    w.role("rsa", &[&root.cert_pem], "");
    let snap = w.snapshot();

    let direct = root.leaf(LeafSpec::client("direct"));
    allowed(&check(&snap, &direct), "rsa");

    let rsa_leaf = root.leaf(LeafSpec::client("rsa-leaf").rsa());
    allowed(&check(&snap, &rsa_leaf), "rsa");

    let below = issuing.leaf(LeafSpec::client("below"));
    let p = presented(&below.cert_pem, &[&issuing.cert_pem]);
    allowed(&decide_with(&snap, &p, Ctx::default()), "rsa");
}

// === hostile input ===

fn pem_of(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

#[test]
fn malformed_input_is_denied_without_panic() {
    let root = Ca::root("Malformed Root");
    let leaf = root.leaf(LeafSpec::client("alice"));
    let w = World::new();
    w.role("ca", &[&root.cert_pem], "");
    let snap = w.snapshot();

    let truncated = pem_of(&leaf.cert_der[..leaf.cert_der.len() / 2]);
    let not_a_cert = pem_of(&der_tlv(0x30, &[0x02, 0x01, 0x01]));
    let trailing = pem_of(&[leaf.cert_der.clone(), vec![0x00, 0x00]].concat());
    let unterminated = leaf.cert_pem.replace("-----END CERTIFICATE-----", "");
    let bad_base64 = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
    let key_only = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    let huge = "A".repeat(1 << 20);
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("whitespace", " \n\t".into()),
        ("garbage", "garbage".into()),
        ("truncated DER", url_encode(&truncated)),
        ("not a certificate", url_encode(&not_a_cert)),
        ("trailing bytes", url_encode(&trailing)),
        ("unterminated PEM", url_encode(&unterminated)),
        ("bad base64", url_encode(bad_base64)),
        ("key only", url_encode(key_only)),
        ("bad percent-encoding", "%ZZ%".into()),
        ("percent-encoded non-UTF-8", "%FF%FE%FD".into()),
        ("1 MB", huge),
    ];
    for (what, text) in cases {
        let p = Presented {
            leaf: Cow::Owned(text),
            chain: None,
            origin: CertOrigin::Peer,
            xfcc_ignored: false,
        };
        match decide_with(&snap, &p, Ctx::default()) {
            Decision::Deny(d) => assert!(
                matches!(
                    d.reason,
                    Reason::MalformedCertificate { .. } | Reason::NoClientCertificate
                ),
                "{what}: {:?}",
                d.reason
            ),
            Decision::Allow(g) => panic!("{what}: allowed by {}", g.role.name),
        }
    }

    // A good leaf with a broken chain.
    let p = Presented {
        leaf: Cow::Owned(leaf.url_encoded_pem()),
        chain: Some(Cow::Owned(url_encode(&truncated))),
        origin: CertOrigin::Peer,
        xfcc_ignored: false,
    };
    assert_deny!(
        decide_with(&snap, &p, Ctx::default()),
        Reason::MalformedCertificate { .. }
    );
}

#[test]
fn a_ca_certificate_presented_as_the_client_is_denied() {
    let root = Ca::root("CA As Leaf Root");
    let issuing = root.intermediate("CA As Leaf Issuing");
    let w = World::new();
    w.role("ca", &[&root.cert_pem], "");
    let snap = w.snapshot();
    let p = presented(&issuing.cert_pem, &[]);
    let decision = decide_with(&snap, &p, Ctx::default());
    assert!(
        matches!(decision, Decision::Deny(_)),
        "a CA certificate is not a client certificate: {decision:?}"
    );
}

/// A chain `depth` intermediates deep below `root`; returns the CAs nearest-the-root first.
fn deep_chain(root: &Ca, depth: usize) -> Vec<Ca> {
    let mut cas: Vec<Ca> = Vec::with_capacity(depth);
    for i in 1..=depth {
        let parent = cas.last().unwrap_or(root);
        let next = parent.intermediate(&format!("Deep {i}"));
        cas.push(next);
    }
    cas
}

#[test]
fn fifty_intermediates_are_denied_promptly() {
    let root = Ca::root("Deep Root");
    let cas = deep_chain(&root, 50);
    let leaf = cas.last().unwrap().leaf(LeafSpec::client("deep"));
    let w = World::new();
    w.role("ca", &[&root.cert_pem], "");
    let snap = w.snapshot();

    let chain: Vec<&str> = cas.iter().rev().map(|c| c.cert_pem.as_str()).collect();
    let p = presented(&leaf.cert_pem, &chain);
    let started = Instant::now();
    let decision = decide_with(&snap, &p, Ctx::default());
    let took = started.elapsed();
    assert_deny!(
        decision,
        Reason::ChainTooComplex
            | Reason::UntrustedIssuer
            | Reason::MalformedCertificate { .. }
            | Reason::InvalidChain { .. }
    );
    assert!(took < StdDuration::from_secs(5), "took {took:?}");

    // Deeper than webpki allows, yet within the presented-certificate cap.
    let cas = deep_chain(&root, 12);
    let leaf = cas.last().unwrap().leaf(LeafSpec::client("deep"));
    let chain: Vec<&str> = cas.iter().rev().map(|c| c.cert_pem.as_str()).collect();
    let p = presented(&leaf.cert_pem, &chain);
    let started = Instant::now();
    assert_deny!(
        decide_with(&snap, &p, Ctx::default()),
        Reason::ChainTooComplex | Reason::UntrustedIssuer
    );
    assert!(started.elapsed() < StdDuration::from_secs(5));
}

// === the verified-chain cache ===

#[test]
fn cache_hit_gives_the_same_decision() {
    let root = Ca::root("Cache Root");
    let issuing = root.intermediate("Cache Issuing");
    let other = Ca::root("Cache Other Root");
    let w = World::new();
    w.role("ca", &[&root.cert_pem], "");
    let snap = w.snapshot();
    let hits = || snap.cache.counters.hits.load(Ordering::Relaxed);

    let leaf = issuing.leaf(LeafSpec::client("alice"));
    let p = presented(&leaf.cert_pem, &[&issuing.cert_pem]);
    let before = hits();
    let first = decide_with(&snap, &p, Ctx::default());
    let second = decide_with(&snap, &p, Ctx::default());
    assert_eq!(allowed(&first, "ca").sub, "alice");
    assert_eq!(allowed(&second, "ca").sub, "alice");
    assert_eq!(hits(), before + 1, "the second decision is a cache hit");

    let stranger = other.leaf(LeafSpec::client("mallory"));
    let p = presented(&stranger.cert_pem, &[]);
    assert_deny!(
        decide_with(&snap, &p, Ctx::default()),
        Reason::UntrustedIssuer
    );
    assert_deny!(
        decide_with(&snap, &p, Ctx::default()),
        Reason::UntrustedIssuer
    );
    assert_eq!(hits(), before + 2);

    // The same leaf with another chain is another entry, not a hit on the first.
    let p = presented(&leaf.cert_pem, &[]);
    assert_deny!(
        decide_with(&snap, &p, Ctx::default()),
        Reason::UntrustedIssuer
    );
    assert_eq!(hits(), before + 2);
}

#[test]
fn cache_does_not_hide_expiry() {
    let root = Ca::root("Cache Expiry Root");
    let now = OffsetDateTime::now_utc();
    let leaf = root.leaf(
        LeafSpec::client("alice").validity(now - Duration::hours(1), now + Duration::days(1)),
    );
    let not_after = (now + Duration::days(1)).unix_timestamp();
    let w = World::new();
    w.role("ca", &[&root.cert_pem], "")
        .role("pinned", &[&leaf.cert_pem], "");
    let snap = w.snapshot();
    let p = presented(&leaf.cert_pem, &[]);

    for role in ["ca", "pinned"] {
        let at = |t: i64| Ctx {
            roles: Some(role),
            now: t,
            ..Ctx::default()
        };
        allowed(&decide_with(&snap, &p, at(unix_now())), role);
        assert_deny!(
            decide_with(&snap, &p, at(not_after + 60)),
            Reason::CertificateExpired { .. }
        );
        // An expiry failure is not remembered either.
        allowed(&decide_with(&snap, &p, at(unix_now())), role);
    }
    assert!(snap.cache.counters.hits.load(Ordering::Relaxed) >= 5);
}

#[test]
fn cache_does_not_remember_not_yet_valid() {
    let root = Ca::root("Cache Early Root");
    let leaf = root.leaf(LeafSpec::client("alice"));
    let w = World::new();
    w.role("ca", &[&root.cert_pem], "");
    let snap = w.snapshot();
    let p = presented(&leaf.cert_pem, &[]);
    let at = |t: i64| Ctx {
        now: t,
        ..Ctx::default()
    };
    assert_deny!(
        decide_with(&snap, &p, at(unix_now() - 2 * 86_400)),
        Reason::CertificateNotYetValid { .. }
    );
    allowed(&decide_with(&snap, &p, at(unix_now())), "ca");
}

#[test]
fn cache_window_is_the_shortest_validity_on_the_path() {
    let root = Ca::root("Cache Window Root");
    let issuing = root.intermediate_with("Cache Window Issuing", |p| {
        p.not_after = OffsetDateTime::now_utc() + Duration::days(1);
    });
    let leaf = issuing.leaf(LeafSpec::client("alice"));
    let w = World::new();
    w.role("ca", &[&root.cert_pem], "");
    let snap = w.snapshot();
    let p = presented(&leaf.cert_pem, &[&issuing.cert_pem]);
    let at = |t: i64| Ctx {
        now: t,
        ..Ctx::default()
    };
    allowed(&decide_with(&snap, &p, at(unix_now())), "ca");
    // The leaf is still valid in two days, the intermediate is not.
    assert_deny!(
        decide_with(&snap, &p, at(unix_now() + 2 * 86_400)),
        Reason::CertificateExpired { .. }
    );
}
