//! The decision engine and CRLs: revoked leaves, intermediates and roots, Vault's "any
//! clean chain wins" rule, serials revoked for their issuer only, forged and stale
//! lists, `require_crl_distribution_points`, and where revocation sits in the per-role
//! check order (chain → names → extensions → revocation → client IP → expiry → origin).
//!
//! Each test writes a config directory (`certgate.yaml`, `roles/`, `crls/`), loads and
//! compiles it exactly as the server does, and calls `engine::decide` with an injected
//! clock. Assertions are on `Reason` variants, never on messages.

mod common;

use certgate::engine::Reason;
use common::pki::*;
use common::world::*;
use time::{Duration, OffsetDateTime};

/// A CA certificate's serial as the engine reports it: lower-case hex, no leading zeros.
fn ca_serial(ca: &Ca) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(&ca.cert_der).expect("parse CA");
    let raw = cert.raw_serial();
    let first = raw.iter().position(|&b| b != 0).unwrap_or(raw.len() - 1);
    raw[first..].to_vec()
}

/// Root → issuing intermediate → leaf, with a second leaf from the same intermediate.
struct Pki {
    root: Ca,
    issuing: Ca,
    leaf: Leaf,
    sibling: Leaf,
}

fn pki(name: &str) -> Pki {
    let root = Ca::root(&format!("{name} Root"));
    let issuing = root.intermediate(&format!("{name} Issuing"));
    let leaf = issuing.leaf(LeafSpec::client("alice"));
    let sibling = issuing.leaf(LeafSpec::client("alice"));
    Pki {
        root,
        issuing,
        leaf,
        sibling,
    }
}

fn hour() -> Duration {
    Duration::hours(1)
}

// === what a CRL revokes ===

#[test]
fn crl_revoking_the_leaf() {
    let pki = pki("Leaf CRL");
    let w = World::new();
    w.role("ca", &[&pki.root.cert_pem], "").write(
        "crls/issuing.pem",
        pki.issuing.crl(&[&pki.leaf.serial], hour()).pem,
    );
    let snap = w.snapshot();

    let p = presented(&pki.leaf.cert_pem, &[&pki.issuing.cert_pem]);
    let serial = pki.leaf.serial_hex();
    assert_deny!(
        decide_with(&snap, &p, Ctx::default()),
        Reason::RevokedCrl { serial: s } if *s == serial
    );

    let p = presented(&pki.sibling.cert_pem, &[&pki.issuing.cert_pem]);
    allowed(&decide_with(&snap, &p, Ctx::default()), "ca");
}

#[test]
fn crl_revoking_the_leaf_when_its_issuer_is_a_bundled_anchor() {
    let pki = pki("Anchor Issuer CRL");
    let w = World::new();
    w.role("ca", &[&pki.root.cert_pem, &pki.issuing.cert_pem], "")
        .write(
            "crls/issuing.pem",
            pki.issuing.crl(&[&pki.leaf.serial], hour()).pem,
        );
    let snap = w.snapshot();
    assert_deny!(check(&snap, &pki.leaf), Reason::RevokedCrl { .. });
    allowed(&check(&snap, &pki.sibling), "ca");
}

#[test]
fn crl_revoking_a_leaf_issued_by_the_root() {
    let root = Ca::root("Direct CRL Root");
    let leaf = root.leaf(LeafSpec::client("alice"));
    let other = root.leaf(LeafSpec::client("alice"));
    let w = World::new();
    w.role("ca", &[&root.cert_pem], "")
        .write("crls/root.crl", root.crl(&[&leaf.serial], hour()).der);
    let snap = w.snapshot();
    assert_deny!(check(&snap, &leaf), Reason::RevokedCrl { .. });
    allowed(&check(&snap, &other), "ca");
}

#[test]
fn crl_revoking_the_presented_intermediate() {
    let pki = pki("Int CRL");
    let w = World::new();
    w.role("ca", &[&pki.root.cert_pem], "").write(
        "crls/root.pem",
        pki.root.crl(&[&ca_serial(&pki.issuing)], hour()).pem,
    );
    let snap = w.snapshot();

    let serial = hex::encode(ca_serial(&pki.issuing));
    for leaf in [&pki.leaf, &pki.sibling] {
        let p = presented(&leaf.cert_pem, &[&pki.issuing.cert_pem]);
        assert_deny!(
            decide_with(&snap, &p, Ctx::default()),
            Reason::RevokedCrl { serial: s } if *s == serial
        );
    }
}

/// The intermediate is configured in the role's bundle next to the root (so it is an
/// anchor too, spec §2), and its parent's CRL revokes it: certificates it issued must be
/// denied, as when it is presented.
#[test]
fn crl_revoking_an_intermediate_in_the_role_bundle() {
    let pki = pki("Bundled Int CRL");
    let w = World::new();
    w.role("ca", &[&pki.root.cert_pem, &pki.issuing.cert_pem], "")
        .write(
            "crls/root.pem",
            pki.root.crl(&[&ca_serial(&pki.issuing)], hour()).pem,
        );
    let snap = w.snapshot();
    assert_deny!(check(&snap, &pki.leaf), Reason::RevokedCrl { .. });
    let p = presented(&pki.leaf.cert_pem, &[&pki.issuing.cert_pem]);
    assert_deny!(
        decide_with(&snap, &p, Ctx::default()),
        Reason::RevokedCrl { .. }
    );
}

#[test]
fn crl_revoking_the_root_itself() {
    let pki = pki("Self Revoked");
    let w = World::new();
    w.role("ca", &[&pki.root.cert_pem], "").write(
        "crls/root.pem",
        pki.root.crl(&[&ca_serial(&pki.root)], hour()).pem,
    );
    let snap = w.snapshot();
    let p = presented(&pki.leaf.cert_pem, &[&pki.issuing.cert_pem]);
    let serial = hex::encode(ca_serial(&pki.root));
    assert_deny!(
        decide_with(&snap, &p, Ctx::default()),
        Reason::RevokedCrl { serial: s } if *s == serial
    );
}

/// Vault: "if any chain from the presented certs has no revoked member, that chain may
/// authenticate". I is revoked by R1; the same I cross-signed by R2 is a clean path.
#[test]
fn revoked_intermediate_with_a_clean_cross_signed_path_is_allowed() {
    let r1 = Ca::root("Cross R1");
    let r2 = Ca::root("Cross R2");
    let issuing = r1.intermediate("Cross Issuing");
    let cross = issuing.cross_sign(&r2);
    let leaf = issuing.leaf(LeafSpec::client("alice"));
    let crl = r1.crl(&[&ca_serial(&issuing)], hour());

    // Both paths presented, in either order.
    let w = World::new();
    w.role("both", &[&r1.cert_pem, &r2.cert_pem], "")
        .write("crls/r1.pem", &crl.pem);
    let snap = w.snapshot();
    for chain in [
        [issuing.cert_pem.as_str(), cross.cert_pem.as_str()],
        [cross.cert_pem.as_str(), issuing.cert_pem.as_str()],
    ] {
        let p = presented(&leaf.cert_pem, &chain);
        allowed(&decide_with(&snap, &p, Ctx::default()), "both");
    }
    // Only the revoked path: denied.
    let p = presented(&leaf.cert_pem, &[&issuing.cert_pem]);
    assert_deny!(
        decide_with(&snap, &p, Ctx::default()),
        Reason::RevokedCrl { .. }
    );

    // The cross-signed certificate from a bundle (another role's): still a clean path.
    let w = World::new();
    w.role("both", &[&r1.cert_pem, &r2.cert_pem], "")
        .role(
            "pool",
            &[&r2.cert_pem, &cross.cert_pem],
            "allowed_common_names: nobody",
        )
        .write("crls/r1.pem", &crl.pem);
    let snap = w.snapshot();
    let p = presented(&leaf.cert_pem, &[&issuing.cert_pem]);
    let ctx = Ctx {
        roles: Some("both"),
        ..Ctx::default()
    };
    allowed(&decide_with(&snap, &p, ctx), "both");
}

#[test]
fn a_serial_is_revoked_for_its_issuer_only() {
    let ca1 = Ca::root("Clash CA1");
    let ca2 = Ca::root("Clash CA2");
    let serial = vec![0x42, 0x42, 0x42];
    let one = ca1.leaf(LeafSpec::client("alice").serial(serial.clone()));
    let two = ca2.leaf(LeafSpec::client("alice").serial(serial.clone()));
    let w = World::new();
    w.role("both", &[&ca1.cert_pem, &ca2.cert_pem], "")
        .write("crls/ca1.pem", ca1.crl(&[&serial], hour()).pem);
    let snap = w.snapshot();
    assert_deny!(check(&snap, &one), Reason::RevokedCrl { .. });
    allowed(&check(&snap, &two), "both");
}

#[test]
fn crl_signed_by_the_wrong_key_rejects_the_config() {
    let root = Ca::root("Forged CRL Root");
    let leaf = root.leaf(LeafSpec::client("alice"));
    let w = World::new();
    w.role("ca", &[&root.cert_pem], "").write(
        "crls/forged.pem",
        root.crl_signed_by_wrong_key(&[&leaf.serial]).pem,
    );
    let errors = match w.load() {
        Ok(_) => panic!("a CRL that does not verify with its configured issuer must not load"),
        Err(errors) => errors,
    };
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        text.iter().any(|t| t.contains("forged.pem")),
        "the error names the file: {text:?}"
    );
}

/// A forged list claiming an issuer that no role configures cannot be checked at load;
/// it must not revoke anything at request time either.
#[test]
fn forged_crl_of_an_unconfigured_issuer_revokes_nothing() {
    let pki = pki("Forged Unconfigured");
    let w = World::new();
    w.role("ca", &[&pki.root.cert_pem], "").write(
        "crls/forged.pem",
        pki.issuing.crl_signed_by_wrong_key(&[&pki.leaf.serial]).pem,
    );
    let snap = w.snapshot();
    let p = presented(&pki.leaf.cert_pem, &[&pki.issuing.cert_pem]);
    allowed(&decide_with(&snap, &p, Ctx::default()), "ca");
}

#[test]
fn crls_load_in_der_and_pem_under_either_extension() {
    let cas: Vec<Ca> = (1..=4)
        .map(|i| Ca::root(&format!("Format CA{i}")))
        .collect();
    let revoked: Vec<Leaf> = cas
        .iter()
        .map(|ca| ca.leaf(LeafSpec::client("revoked")))
        .collect();
    let good: Vec<Leaf> = cas
        .iter()
        .map(|ca| ca.leaf(LeafSpec::client("good")))
        .collect();
    let crls: Vec<Crl> = cas
        .iter()
        .zip(&revoked)
        .map(|(ca, leaf)| ca.crl(&[&leaf.serial], hour()))
        .collect();
    let pems: Vec<&str> = cas.iter().map(|c| c.cert_pem.as_str()).collect();
    let w = World::new();
    w.role("all", &pems, "")
        .write("crls/a-der.crl", &crls[0].der)
        .write("crls/b-pem.crl", &crls[1].pem)
        .write("crls/c-der.pem", &crls[2].der)
        .write("crls/d-pem.pem", &crls[3].pem);
    let snap = w.snapshot();
    assert_eq!(snap.crls.entries().len(), 4);
    for (revoked, good) in revoked.iter().zip(&good) {
        assert_deny!(check(&snap, revoked), Reason::RevokedCrl { .. });
        allowed(&check(&snap, good), "all");
    }
}

#[test]
fn an_unrelated_crl_changes_nothing() {
    let root = Ca::root("Related Root");
    let unrelated = Ca::root("Unrelated Root");
    let leaf = root.leaf(LeafSpec::client("alice"));
    let w = World::new();
    w.role("ca", &[&root.cert_pem], "").write(
        "crls/unrelated.pem",
        // Lists our leaf's serial, but it is another CA's list.
        unrelated.crl(&[&leaf.serial], hour()).pem,
    );
    let snap = w.snapshot();
    allowed(&check(&snap, &leaf), "ca");
}

/// A pinned (non-CA) leaf whose issuer is configured (in another role) and has revoked it
/// on its CRL: Vault checks pinned certificates against the CRLs too.
#[test]
fn pinned_leaf_revoked_by_its_issuers_crl() {
    let root = Ca::root("Pinned CRL Root");
    let leaf = root.leaf(LeafSpec::client("alice"));
    let w = World::new();
    w.role("pinned", &[&leaf.cert_pem], "")
        .role("ca", &[&root.cert_pem], "allowed_common_names: nobody")
        .write("crls/root.pem", root.crl(&[&leaf.serial], hour()).pem);
    let snap = w.snapshot();
    assert_deny!(
        check_roles(&snap, &leaf, "pinned"),
        Reason::RevokedCrl { .. }
    );
}

// === require_crl_distribution_points ===

#[test]
fn require_crl_distribution_points() {
    let root = Ca::root("CDP Root");
    let cdp = "http://127.0.0.1:1/crl/root.crl";
    let without_cdp = root.leaf(LeafSpec::client("alice"));
    let with_cdp = root.leaf(LeafSpec::client("alice").cdp(cdp));
    let revoked = root.leaf(LeafSpec::client("alice").cdp(cdp));
    let role = "require_crl_distribution_points: true";

    // The issuer's CRL is loaded.
    let w = World::with_global("crl_distribution_points: ignore");
    w.role("strict", &[&root.cert_pem], role)
        .role("lax", &[&root.cert_pem], "")
        .write("crls/root.pem", root.crl(&[&revoked.serial], hour()).pem);
    let snap = w.snapshot();
    assert_deny!(
        check_roles(&snap, &without_cdp, "strict"),
        Reason::CrlRequired
    );
    allowed(&check_roles(&snap, &without_cdp, "lax"), "lax");
    allowed(&check_roles(&snap, &with_cdp, "strict"), "strict");
    assert_deny!(
        check_roles(&snap, &revoked, "strict"),
        Reason::RevokedCrl { .. }
    );

    // No CRL at all: the leaf names a CDP but nothing was checked.
    let w = World::with_global("crl_distribution_points: ignore");
    w.role("strict", &[&root.cert_pem], role);
    let snap = w.snapshot();
    assert_deny!(check(&snap, &with_cdp), Reason::CrlRequired);
    assert_deny!(check(&snap, &without_cdp), Reason::CrlRequired);
}

// === stale CRLs ===

/// A CRL whose nextUpdate passed an hour ago, listing nothing of interest.
fn stale_crl(ca: &Ca) -> Crl {
    let now = OffsetDateTime::now_utc();
    ca.crl_at(&[&[0x7f, 0x7f][..]], now - Duration::hours(2), now - hour())
}

#[test]
fn stale_crl_denies_only_when_policy_says_so() {
    let root = Ca::root("Stale Root");
    let leaf = root.leaf(LeafSpec::client("alice"));
    let cdp_leaf = root.leaf(LeafSpec::client("alice").cdp("http://127.0.0.1:1/root.crl"));
    let stale = stale_crl(&root);
    let setup = |global: &str| {
        let w = World::with_global(global);
        w.role("ca", &[&root.cert_pem], "")
            .role(
                "strict",
                &[&root.cert_pem],
                "require_crl_distribution_points: true",
            )
            .write("crls/root.pem", &stale.pem);
        w.snapshot()
    };

    let deny = setup("crl_expired: deny");
    assert_deny!(check_roles(&deny, &leaf, "ca"), Reason::CrlExpired);
    assert_deny!(check_roles(&deny, &cdp_leaf, "strict"), Reason::CrlExpired);

    // Default: allowed with a warning, except for CDP-required roles.
    let default = setup("");
    allowed(&check_roles(&default, &leaf, "ca"), "ca");
    assert_deny!(
        check_roles(&default, &cdp_leaf, "strict"),
        Reason::CrlExpired
    );

    let allow = setup("crl_expired: allow");
    allowed(&check_roles(&allow, &leaf, "ca"), "ca");
    allowed(&check_roles(&allow, &cdp_leaf, "strict"), "strict");
}

#[test]
fn a_crl_goes_stale_by_the_injected_clock() {
    let root = Ca::root("Clock Stale Root");
    let leaf = root.leaf(LeafSpec::client("alice"));
    let w = World::with_global("crl_expired: deny");
    w.role("ca", &[&root.cert_pem], "")
        .write("crls/root.pem", root.crl(&[], hour()).pem);
    let snap = w.snapshot();
    let p = presented(&leaf.cert_pem, &[]);
    let later = Ctx {
        now: unix_now() + 2 * 3600,
        ..Ctx::default()
    };
    assert_deny!(decide_with(&snap, &p, later), Reason::CrlExpired);
}

/// Same as above, but the certificate was decided (and cached) while the CRL was fresh:
/// the verified-chain cache must not keep allowing past the CRL's nextUpdate.
#[test]
fn the_cache_does_not_hide_a_crl_going_stale() {
    let root = Ca::root("Cache Stale Root");
    let leaf = root.leaf(LeafSpec::client("alice"));
    let w = World::with_global("crl_expired: deny");
    w.role("ca", &[&root.cert_pem], "")
        .write("crls/root.pem", root.crl(&[], hour()).pem);
    let snap = w.snapshot();
    let p = presented(&leaf.cert_pem, &[]);
    allowed(&decide_with(&snap, &p, Ctx::default()), "ca");
    let later = Ctx {
        now: unix_now() + 2 * 3600,
        ..Ctx::default()
    };
    assert_deny!(decide_with(&snap, &p, later), Reason::CrlExpired);
}

#[test]
fn a_fresh_crl_outweighs_a_stale_one_from_the_same_issuer() {
    let root = Ca::root("Fresh And Stale Root");
    let leaf = root.leaf(LeafSpec::client("alice"));
    let w = World::with_global("crl_expired: deny");
    w.role("ca", &[&root.cert_pem], "")
        .write("crls/a-stale.pem", stale_crl(&root).pem)
        .write("crls/b-fresh.pem", root.crl(&[], hour()).pem);
    let snap = w.snapshot();
    allowed(&check(&snap, &leaf), "ca");
}

// === where revocation sits in the check order ===

#[test]
fn names_and_extensions_are_reported_before_revocation() {
    let root = Ca::root("Order Root");
    let leaf = root.leaf(LeafSpec::client("mallory"));
    let w = World::new();
    w.role("names", &[&root.cert_pem], "allowed_common_names: alice")
        .role(
            "ext",
            &[&root.cert_pem],
            "required_extensions: ['1.2.3.4:*']",
        )
        .role("plain", &[&root.cert_pem], "")
        .role(
            "ids",
            &[&root.cert_pem],
            &format!(
                "allowed_common_names: alice\nrevoked_cert_ids: ['{}']",
                leaf.serial_hex()
            ),
        )
        .write("crls/root.pem", root.crl(&[&leaf.serial], hour()).pem);
    let snap = w.snapshot();
    assert_deny!(
        check_roles(&snap, &leaf, "names"),
        Reason::CommonNameNotAllowed
    );
    assert_deny!(
        check_roles(&snap, &leaf, "ext"),
        Reason::RequiredExtensionMismatch { .. }
    );
    assert_deny!(
        check_roles(&snap, &leaf, "plain"),
        Reason::RevokedCrl { .. }
    );
    assert_deny!(
        check_roles(&snap, &leaf, "ids"),
        Reason::CommonNameNotAllowed
    );
}

#[test]
fn revocation_is_reported_before_client_ip_expiry_and_origin() {
    let root = Ca::root("Order Late Root");
    let leaf = root.leaf(LeafSpec::client("alice"));
    let w = World::new();
    w.role(
        "late",
        &[&root.cert_pem],
        "token_bound_cidrs: 10.0.0.0/8
         expires_at: '2020-01-01T00:00:00Z'
         allowed_cors_domains: example.com",
    )
    .write("crls/root.pem", root.crl(&[&leaf.serial], hour()).pem);
    let snap = w.snapshot();
    let p = presented(&leaf.cert_pem, &[]);
    let ctx = Ctx {
        ip: Some("192.0.2.1"),
        origin: Some("https://evil.org"),
        ..Ctx::default()
    };
    assert_deny!(decide_with(&snap, &p, ctx), Reason::RevokedCrl { .. });
}

#[test]
fn crl_urls_must_be_named_http_urls_with_distinct_names() {
    let root = Ca::root("URL Root");
    let bad = |urls: &str| {
        let w = World::with_global(&format!("crl_urls: {urls}\n"));
        w.role("r", &[&root.cert_pem], "");
        w.write("crls/files.pem", root.crl(&[], time::Duration::days(1)).pem);
        let errors = w.load().err().expect("rejected");
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(bad(r#"[{name: a, url: "ldap://x/crl"}]"#).contains("not an http:// or https:// URL"));
    assert!(
        bad(r#"[{name: a, url: "http://x/1"}, {name: a, url: "http://x/2"}]"#)
            .contains("used twice")
    );
    assert!(
        bad(r#"[{name: files, url: "http://x/1"}]"#).contains("already the name of a CRL file")
    );
    let ok = World::with_global("crl_urls: [{name: a, url: \"https://crl.example.com/a.crl\"}]\n");
    ok.role("r", &[&root.cert_pem], "");
    assert!(ok.load().is_ok());
}
