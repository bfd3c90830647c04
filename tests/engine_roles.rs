//! The decision engine against role files: every role field shown both allowing and
//! denying (Vault/OpenBao's own login test scenarios), role selection and order, the
//! reported reason when several roles fail, and Vault-exported roles.
//!
//! Each test writes a config directory (`certgate.yaml`, `roles/`, `crls/`), loads and
//! compiles it exactly as the server does, and calls `engine::decide` with an injected
//! clock. Assertions are on `Reason` variants, never on messages.

mod common;

use certgate::engine::{AuthRequest, Decision, Reason, explain};
use common::pki::*;
use common::world::*;

// === names ===

#[test]
fn common_name_glob_matches_across_dots_and_nothing_shorter() {
    let root = Ca::root("Names Root");
    let w = World::new();
    w.role(
        "web",
        &[&root.cert_pem],
        "allowed_common_names: '*.example.com'",
    );
    let snap = w.snapshot();

    let deep = root.leaf(LeafSpec::client("a.b.example.com"));
    allowed(&check(&snap, &deep), "web");

    let bare = root.leaf(LeafSpec::client("example.com"));
    assert_deny!(check(&snap, &bare), Reason::CommonNameNotAllowed);

    // go-glob matching is case-sensitive.
    let upper = root.leaf(LeafSpec::client("A.B.EXAMPLE.COM"));
    assert_deny!(check(&snap, &upper), Reason::CommonNameNotAllowed);

    let none = root.leaf(LeafSpec::client("x").no_cn().dns("x.example.com"));
    assert_deny!(check(&snap, &none), Reason::CommonNameNotAllowed);
}

#[test]
fn dns_sans_any_value_may_match() {
    let root = Ca::root("DNS Root");
    let w = World::new();
    w.role(
        "dns",
        &[&root.cert_pem],
        "allowed_dns_sans: '*.svc.example.com'",
    );
    let snap = w.snapshot();

    let ok = root.leaf(
        LeafSpec::client("client")
            .dns("other.example.org")
            .dns("api.svc.example.com"),
    );
    allowed(&check(&snap, &ok), "dns");

    let wrong = root.leaf(LeafSpec::client("client").dns("api.example.org"));
    assert_deny!(check(&snap, &wrong), Reason::DnsSanNotAllowed);

    // The CN is not a DNS SAN.
    let cn_only = root.leaf(LeafSpec::client("api.svc.example.com"));
    assert_deny!(check(&snap, &cn_only), Reason::DnsSanNotAllowed);
}

#[test]
fn email_sans() {
    let root = Ca::root("Email Root");
    let w = World::new();
    w.role(
        "mail",
        &[&root.cert_pem],
        "allowed_email_sans: '*@example.com'",
    );
    let snap = w.snapshot();

    let ok = root.leaf(LeafSpec::client("alice").email("alice@example.com"));
    allowed(&check(&snap, &ok), "mail");

    let wrong = root.leaf(LeafSpec::client("alice").email("alice@example.com.evil.org"));
    assert_deny!(check(&snap, &wrong), Reason::EmailSanNotAllowed);

    let none = root.leaf(LeafSpec::client("alice@example.com"));
    assert_deny!(check(&snap, &none), Reason::EmailSanNotAllowed);
}

#[test]
fn uri_sans_spiffe_glob() {
    let root = Ca::root("SPIFFE Root");
    let w = World::new();
    w.role(
        "prod",
        &[&root.cert_pem],
        "allowed_uri_sans: spiffe://cluster.local/ns/prod/sa/*",
    );
    let snap = w.snapshot();

    let web = root.leaf(LeafSpec::client("web").uri("spiffe://cluster.local/ns/prod/sa/web"));
    allowed(&check(&snap, &web), "prod");

    // `*` matches `/` too (go-glob).
    let nested =
        root.leaf(LeafSpec::client("web").uri("spiffe://cluster.local/ns/prod/sa/web/extra"));
    allowed(&check(&snap, &nested), "prod");

    let dev = root.leaf(LeafSpec::client("web").uri("spiffe://cluster.local/ns/dev/sa/web"));
    assert_deny!(check(&snap, &dev), Reason::UriSanNotAllowed);

    let none = root.leaf(LeafSpec::client("spiffe://cluster.local/ns/prod/sa/web"));
    assert_deny!(check(&snap, &none), Reason::UriSanNotAllowed);
}

#[test]
fn organizational_units_any_of_several_may_match() {
    let root = Ca::root("OU Root");
    let w = World::new();
    w.role(
        "payments",
        &[&root.cert_pem],
        "allowed_organizational_units: payments",
    );
    let snap = w.snapshot();

    // Two OUs; the second one matches.
    let two = root.leaf(LeafSpec::client("svc").ou("engineering").ou("payments"));
    allowed(&check(&snap, &two), "payments");

    let other = root.leaf(LeafSpec::client("svc").ou("engineering").ou("marketing"));
    assert_deny!(check(&snap, &other), Reason::OrganizationalUnitNotAllowed);

    let none = root.leaf(LeafSpec::client("payments"));
    assert_deny!(check(&snap, &none), Reason::OrganizationalUnitNotAllowed);
}

#[test]
fn organizations() {
    let root = Ca::root("O Root");
    let w = World::new();
    w.role(
        "corp",
        &[&root.cert_pem],
        "allowed_organizations: 'Example *'",
    );
    let snap = w.snapshot();

    let ok = root.leaf(LeafSpec::client("svc").org("Example Corp"));
    allowed(&check(&snap, &ok), "corp");

    let second = root.leaf(
        LeafSpec::client("svc")
            .org("Evil Corp")
            .org("Example Holdings"),
    );
    allowed(&check(&snap, &second), "corp");

    let wrong = root.leaf(LeafSpec::client("svc").org("Evil Corp"));
    assert_deny!(check(&snap, &wrong), Reason::OrganizationNotAllowed);
}

#[test]
fn every_constrained_field_must_pass() {
    let root = Ca::root("All Fields Root");
    let w = World::new();
    w.role(
        "strict",
        &[&root.cert_pem],
        "allowed_common_names: 'web-*'
         allowed_dns_sans: '*.example.com'
         allowed_organizational_units: [eng]",
    );
    let snap = w.snapshot();

    let ok = root.leaf(LeafSpec::client("web-1").dns("web.example.com").ou("eng"));
    allowed(&check(&snap, &ok), "strict");

    let bad_dns = root.leaf(LeafSpec::client("web-1").dns("web.example.org").ou("eng"));
    assert_deny!(check(&snap, &bad_dns), Reason::DnsSanNotAllowed);

    let bad_ou = root.leaf(LeafSpec::client("web-1").dns("web.example.com").ou("ops"));
    assert_deny!(check(&snap, &bad_ou), Reason::OrganizationalUnitNotAllowed);

    // The first failing check is reported: CN before DNS before OU.
    let all_bad = root.leaf(LeafSpec::client("db-1").dns("x.example.org").ou("ops"));
    assert_deny!(check(&snap, &all_bad), Reason::CommonNameNotAllowed);
}

#[test]
fn deprecated_allowed_names_match_cn_dns_or_email() {
    let root = Ca::root("Allowed Names Root");
    let w = World::new();
    w.role(
        "legacy",
        &[&root.cert_pem],
        "allowed_names: [web, '*.example.com', 'ops@example.org']",
    );
    let snap = w.snapshot();

    let by_cn = root.leaf(LeafSpec::client("web"));
    allowed(&check(&snap, &by_cn), "legacy");

    let by_dns = root.leaf(LeafSpec::client("nope").dns("api.example.com"));
    allowed(&check(&snap, &by_dns), "legacy");

    let by_email = root.leaf(LeafSpec::client("nope").email("ops@example.org"));
    allowed(&check(&snap, &by_email), "legacy");

    // URI SANs and OUs are not names for `allowed_names`.
    let by_uri = root.leaf(LeafSpec::client("nope").uri("web").ou("web"));
    assert_deny!(check(&snap, &by_uri), Reason::NameNotAllowed);

    let nothing = root.leaf(LeafSpec::client("nope").dns("api.example.org"));
    assert_deny!(check(&snap, &nothing), Reason::NameNotAllowed);
}

// === extensions ===

const OID_STR: &[u64] = &[1, 2, 3, 4];
const OID_INT: &[u64] = &[1, 2, 3, 5];

/// A leaf with 1.2.3.4 = UTF8String "prod-tenant" and 1.2.3.5 = INTEGER 5.
fn extension_leaf(root: &Ca) -> Leaf {
    root.leaf(
        LeafSpec::client("ext")
            .extension(OID_STR, der_utf8("prod-tenant"))
            .extension(OID_INT, vec![0x02, 0x01, 0x05]),
    )
}

#[test]
fn required_extensions_string_hex_non_string_and_missing() {
    let root = Ca::root("Extensions Root");
    let w = World::new();
    let ca = [root.cert_pem.as_str()];
    w.role("str-ok", &ca, "required_extensions: ['1.2.3.4:prod-*']")
        .role(
            "str-exact",
            &ca,
            "required_extensions: ['1.2.3.4:prod-tenant']",
        )
        .role("str-bad", &ca, "required_extensions: ['1.2.3.4:dev-*']")
        // 0c 0b = UTF8String of 11 bytes, then "prod" = 70 72 6f 64.
        .role(
            "hex-ok",
            &ca,
            "required_extensions: ['hex:1.2.3.4:0c0b70726f64*']",
        )
        .role(
            "hex-bad",
            &ca,
            "required_extensions: ['hex:1.2.3.4:0c0b646576*']",
        )
        .role("int-empty", &ca, "required_extensions: ['1.2.3.5:']")
        .role("int-star", &ca, "required_extensions: ['1.2.3.5:*']")
        .role("int-five", &ca, "required_extensions: ['1.2.3.5:5']")
        .role(
            "int-hex",
            &ca,
            "required_extensions: ['hex:1.2.3.5:020105']",
        )
        .role("missing", &ca, "required_extensions: ['1.2.3.9:*']")
        .role(
            "both-ok",
            &ca,
            "required_extensions: ['1.2.3.4:prod-*', 'hex:1.2.3.5:020105']",
        )
        .role(
            "one-bad",
            &ca,
            "required_extensions: ['1.2.3.4:prod-*', '1.2.3.5:5']",
        );
    let snap = w.snapshot();
    let leaf = extension_leaf(&root);

    for role in [
        "str-ok",
        "str-exact",
        "hex-ok",
        "int-empty",
        "int-star",
        "int-hex",
        "both-ok",
    ] {
        allowed(&check_roles(&snap, &leaf, role), role);
    }
    for (role, oid) in [
        ("str-bad", "1.2.3.4"),
        ("hex-bad", "1.2.3.4"),
        ("int-five", "1.2.3.5"),
        ("missing", "1.2.3.9"),
        ("one-bad", "1.2.3.5"),
    ] {
        assert_deny!(
            check_roles(&snap, &leaf, role),
            Reason::RequiredExtensionMismatch { oid: got } if got == oid
        );
    }

    // A certificate without the extensions fails every rule.
    let plain = root.leaf(LeafSpec::client("ext"));
    assert_deny!(
        check_roles(&snap, &plain, "int-empty"),
        Reason::RequiredExtensionMismatch { .. }
    );
}

#[test]
fn metadata_extensions_become_meta() {
    let root = Ca::root("Metadata Root");
    let w = World::new();
    w.role(
        "meta",
        &[&root.cert_pem],
        "allowed_metadata_extensions: [1.2.3.4, 1.2.3.9]",
    );
    let snap = w.snapshot();

    let decision = check(&snap, &extension_leaf(&root));
    let grant = allowed(&decision, "meta");
    assert_eq!(
        grant.meta,
        vec![("1-2-3-4".to_string(), "prod-tenant".to_string())],
        "present string extension copied; absent one left out"
    );

    let plain = root.leaf(LeafSpec::client("plain"));
    let decision = check(&snap, &plain);
    assert!(allowed(&decision, "meta").meta.is_empty());
}

// === role selection and order ===

#[test]
fn roles_selected_by_name() {
    let root = Ca::root("Selection Root");
    let w = World::new();
    w.role("a", &[&root.cert_pem], "allowed_common_names: alice")
        .role("b", &[&root.cert_pem], "allowed_common_names: bob");
    let snap = w.snapshot();
    let alice = root.leaf(LeafSpec::client("alice"));
    let bob = root.leaf(LeafSpec::client("bob"));

    allowed(&check_roles(&snap, &alice, "a"), "a");
    assert_deny!(
        check_roles(&snap, &alice, "b"),
        Reason::CommonNameNotAllowed
    );
    allowed(&check_roles(&snap, &alice, "a,b"), "a");
    allowed(&check_roles(&snap, &bob, "a,b"), "b");
    allowed(&check_roles(&snap, &bob, " a , b "), "b");
    // Names are lower-cased like role names.
    allowed(&check_roles(&snap, &alice, "A"), "a");
    // No selection: every role is tried; an empty selection means the same.
    allowed(&check(&snap, &bob), "b");
    allowed(&check_roles(&snap, &bob, ""), "b");

    assert_deny!(
        check_roles(&snap, &alice, "nope"),
        Reason::RoleNotFound { role } if role == "nope"
    );
    // An unknown name next to a role that fails: the role that got further explains it.
    assert_deny!(
        check_roles(&snap, &alice, "nope,b"),
        Reason::CommonNameNotAllowed
    );
    // An unknown name next to a role that passes: the request passes.
    allowed(&check_roles(&snap, &alice, "nope,a"), "a");
}

#[test]
fn no_roles_configured() {
    let root = Ca::root("Empty Root");
    let w = World::new();
    let snap = w.snapshot();
    assert!(snap.roles.is_empty());
    let leaf = root.leaf(LeafSpec::client("alice"));
    assert_deny!(check(&snap, &leaf), Reason::NoRoles);
    assert_deny!(check_roles(&snap, &leaf, "anything"), Reason::NoRoles);
}

#[test]
fn pinned_leaf_roles_are_tried_before_ca_roles_then_by_name() {
    let root = Ca::root("Order Root");
    let leaf = root.leaf(LeafSpec::client("alice"));
    let w = World::new();
    w.role("aaa-ca", &[&root.cert_pem], "")
        .role("bbb-ca", &[&root.cert_pem], "")
        .role("zzz-pinned", &[&leaf.cert_pem], "");
    let snap = w.snapshot();
    let names: Vec<&str> = snap.roles.iter().map(|r| &*r.name).collect();
    assert_eq!(names, ["zzz-pinned", "aaa-ca", "bbb-ca"]);

    let decision = check(&snap, &leaf);
    let grant = allowed(&decision, "zzz-pinned");
    assert!(
        grant.tried.is_empty(),
        "the first role passed: {:?}",
        grant.tried
    );

    // Without the pinned role in the selection, CA roles go by name.
    allowed(&check_roles(&snap, &leaf, "bbb-ca,aaa-ca"), "aaa-ca");

    // Another leaf fails the pinned role and passes the first CA role.
    let other = root.leaf(LeafSpec::client("bob"));
    let decision = check(&snap, &other);
    let grant = allowed(&decision, "aaa-ca");
    assert_eq!(grant.tried.len(), 1);
    assert_eq!(&*grant.tried[0].role, "zzz-pinned");
    assert!(matches!(grant.tried[0].outcome, Err(Reason::LeafNotPinned)));
}

#[test]
fn deny_reason_is_the_one_of_the_role_that_got_furthest() {
    let root = Ca::root("Furthest Root");
    let other = Ca::root("Unrelated Root");
    let w = World::new();
    // `a` fails at the chain, `b` at the OU, `c` at the chain again.
    w.role("a", &[&other.cert_pem], "")
        .role("b", &[&root.cert_pem], "allowed_organizational_units: ops")
        .role("c", &[&other.cert_pem], "");
    let snap = w.snapshot();
    let leaf = root.leaf(LeafSpec::client("svc").ou("eng"));

    let decision = check(&snap, &leaf);
    assert_deny!(decision, Reason::OrganizationalUnitNotAllowed);
    let Decision::Deny(denial) = &decision else {
        unreachable!()
    };
    let verdicts: Vec<(&str, &Result<(), Reason>)> = denial
        .verdicts
        .iter()
        .map(|v| (&*v.role, &v.outcome))
        .collect();
    assert_eq!(verdicts.len(), 3, "{verdicts:?}");
    assert!(matches!(verdicts[0], ("a", Err(Reason::UntrustedIssuer))));
    assert!(matches!(
        verdicts[1],
        ("b", Err(Reason::OrganizationalUnitNotAllowed))
    ));
    assert!(matches!(verdicts[2], ("c", Err(Reason::UntrustedIssuer))));
}

#[test]
fn explain_evaluates_every_role() {
    let root = Ca::root("Explain Root");
    let w = World::new();
    w.role("a", &[&root.cert_pem], "allowed_common_names: bob")
        .role("b", &[&root.cert_pem], "")
        .role("c", &[&root.cert_pem], "");
    let snap = w.snapshot();
    let leaf = root.leaf(LeafSpec::client("alice"));
    let p = presented(&leaf.cert_pem, &[]);
    let (decision, verdicts) = explain(
        &snap,
        &AuthRequest {
            presented: &p,
            roles: None,
            client_ip: None,
            origin: None,
            now: unix_now(),
            live: None,
        },
    );
    allowed(&decision, "b");
    let outcomes: Vec<(&str, bool)> = verdicts
        .iter()
        .map(|v| (&*v.role, v.outcome.is_ok()))
        .collect();
    assert_eq!(outcomes, [("a", false), ("b", true), ("c", true)]);
    assert!(matches!(
        verdicts[0].outcome,
        Err(Reason::CommonNameNotAllowed)
    ));
}

// === request context: client IP, role expiry, origin ===

#[test]
fn token_bound_cidrs() {
    let root = Ca::root("CIDR Root");
    let w = World::new();
    w.role(
        "net",
        &[&root.cert_pem],
        "token_bound_cidrs: '10.0.0.0/8, 192.168.1.7, 2001:db8::/32'",
    )
    .role("legacy", &[&root.cert_pem], "bound_cidrs: [127.0.0.1/32]");
    let snap = w.snapshot();
    let leaf = root.leaf(LeafSpec::client("svc"));
    let p = presented(&leaf.cert_pem, &[]);
    let at = |roles: &'static str, ip: Option<&'static str>| Ctx {
        roles: Some(roles),
        ip,
        ..Ctx::default()
    };

    for ip in ["10.1.2.3", "192.168.1.7", "2001:db8::1"] {
        allowed(&decide_with(&snap, &p, at("net", Some(ip))), "net");
    }
    for ip in ["11.0.0.1", "192.168.1.8", "2001:db9::1", "::1"] {
        assert_deny!(
            decide_with(&snap, &p, at("net", Some(ip))),
            Reason::SourceIpNotAllowed
        );
    }
    // No client IP known: a bound role fails closed.
    assert_deny!(
        decide_with(&snap, &p, at("net", None)),
        Reason::SourceIpNotAllowed
    );

    // The Vault alias `bound_cidrs`.
    allowed(
        &decide_with(&snap, &p, at("legacy", Some("127.0.0.1"))),
        "legacy",
    );
    assert_deny!(
        decide_with(&snap, &p, at("legacy", Some("127.0.0.2"))),
        Reason::SourceIpNotAllowed
    );
}

/// A dual-stack listener may report an IPv4 client as `::ffff:a.b.c.d`; Vault (Go's
/// `IPNet.Contains`) matches such an address against IPv4 CIDRs.
#[test]
fn token_bound_cidrs_match_ipv4_mapped_ipv6_clients() {
    let root = Ca::root("Mapped CIDR Root");
    let w = World::new();
    w.role("net", &[&root.cert_pem], "token_bound_cidrs: 10.0.0.0/8");
    let snap = w.snapshot();
    let leaf = root.leaf(LeafSpec::client("svc"));
    let p = presented(&leaf.cert_pem, &[]);
    let from = |ip: &'static str| Ctx {
        ip: Some(ip),
        ..Ctx::default()
    };
    allowed(&decide_with(&snap, &p, from("::ffff:10.1.2.3")), "net");
    assert_deny!(
        decide_with(&snap, &p, from("::ffff:11.1.2.3")),
        Reason::SourceIpNotAllowed
    );
}

#[test]
fn unique_identifier_every_kind() {
    let root = Ca::root("Sub Root");
    let ca = [root.cert_pem.as_str()];
    let w = World::new();
    for kind in [
        "common_name",
        "organizational_unit",
        "uri_san",
        "dns_san",
        "email_san",
        "serial_number",
        "fingerprint_sha256",
    ] {
        w.role(kind, &ca, &format!("unique_identifier: {kind}"));
    }
    w.role("default", &ca, "");
    let snap = w.snapshot();

    let leaf = root.leaf(
        LeafSpec::client("alice")
            .ou("eng")
            .ou("payments")
            .uri("spiffe://cluster.local/ns/prod/sa/alice")
            .uri("spiffe://other")
            .dns("alice.example.com")
            .email("alice@example.com")
            .serial(vec![0x0a, 0xbc, 0xde, 0xf1]),
    );
    let sub = |role: &str| {
        let d = check_roles(&snap, &leaf, role);
        allowed(&d, role).sub.clone()
    };
    assert_eq!(sub("default"), "alice");
    assert_eq!(sub("common_name"), "alice");
    assert_eq!(sub("organizational_unit"), "eng");
    assert_eq!(sub("uri_san"), "spiffe://cluster.local/ns/prod/sa/alice");
    assert_eq!(sub("dns_san"), "alice.example.com");
    assert_eq!(sub("email_san"), "alice@example.com");
    assert_eq!(sub("serial_number"), "0abcdef1");
    assert_eq!(sub("serial_number"), leaf.serial_hex());
    assert_eq!(sub("fingerprint_sha256"), leaf.fingerprint_hex());

    // A value that is not in the certificate.
    let bare = root.leaf(LeafSpec::client("x").no_cn().dns("only.example.com"));
    for (role, field) in [
        ("default", "common_name"),
        ("common_name", "common_name"),
        ("organizational_unit", "organizational_unit"),
        ("uri_san", "uri_san"),
        ("email_san", "email_san"),
    ] {
        assert_deny!(
            check_roles(&snap, &bare, role),
            Reason::IdentifierMissing { field: f } if *f == field
        );
    }
    allowed(&check_roles(&snap, &bare, "dns_san"), "dns_san");
    allowed(&check_roles(&snap, &bare, "serial_number"), "serial_number");
}

#[test]
fn expires_at() {
    let root = Ca::root("Expiry Root");
    let now = unix_now();
    let w = World::new();
    w.role(
        "old",
        &[&root.cert_pem],
        "expires_at: '2020-01-01T00:00:00Z'",
    )
    .role(
        "fresh",
        &[&root.cert_pem],
        &format!("expires_at: {}", now + 3600),
    )
    .role(
        "rfc3339",
        &[&root.cert_pem],
        "expires_at: '2999-01-01T00:00:00+02:00'",
    );
    let snap = w.snapshot();
    let leaf = root.leaf(LeafSpec::client("svc"));
    let p = presented(&leaf.cert_pem, &[]);

    assert_deny!(check_roles(&snap, &leaf, "old"), Reason::RoleExpired);
    allowed(&check_roles(&snap, &leaf, "fresh"), "fresh");
    allowed(&check_roles(&snap, &leaf, "rfc3339"), "rfc3339");
    // The same role once its time has passed (the clock is injected).
    let later = Ctx {
        roles: Some("fresh"),
        now: now + 7200,
        ..Ctx::default()
    };
    assert_deny!(decide_with(&snap, &p, later), Reason::RoleExpired);
}

#[test]
fn allowed_cors_domains() {
    let root = Ca::root("CORS Root");
    let w = World::new();
    w.role(
        "cors",
        &[&root.cert_pem],
        "allowed_cors_domains: ['*.example.com', localhost]",
    );
    let snap = w.snapshot();
    let leaf = root.leaf(LeafSpec::client("svc"));
    let p = presented(&leaf.cert_pem, &[]);
    let with = |origin: Option<&'static str>| Ctx {
        origin,
        ..Ctx::default()
    };

    for origin in [
        "https://app.example.com",
        "https://app.example.com:8443",
        "http://localhost:3000",
    ] {
        allowed(&decide_with(&snap, &p, with(Some(origin))), "cors");
    }
    for origin in [
        "https://evil.org",
        "https://example.com.evil.org",
        "https://example.com",
        "null",
    ] {
        assert_deny!(
            decide_with(&snap, &p, with(Some(origin))),
            Reason::OriginNotAllowed
        );
    }
    // No Origin header: not a CORS request, allowed.
    allowed(&decide_with(&snap, &p, with(None)), "cors");
}

// === revoked_cert_ids ===

#[test]
fn revoked_cert_ids_by_serial_in_every_form_and_by_fingerprint() {
    let root = Ca::root("Revoked Ids Root");
    let leaf = root.leaf(LeafSpec::client("svc").serial(vec![0x0a, 0xbc, 0xde, 0xf1]));
    let fp = leaf.fingerprint_hex();
    let fp_colons_upper = fp
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap().to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    let decimal = u64::from_str_radix("0abcdef1", 16).unwrap().to_string();
    assert_eq!(decimal, "180150001");

    let ca = [root.cert_pem.as_str()];
    let w = World::new();
    w.role("colons", &ca, "revoked_cert_ids: ['0a:bc:de:f1']")
        .role("plain-hex", &ca, "revoked_cert_ids: [abcdef1]")
        .role("decimal", &ca, &format!("revoked_cert_ids: ['{decimal}']"))
        .role("fingerprint", &ca, &format!("revoked_cert_ids: ['{fp}']"))
        .role(
            "fingerprint-openssl",
            &ca,
            &format!("revoked_cert_ids: ['{fp_colons_upper}']"),
        )
        .role("unrelated", &ca, "revoked_cert_ids: '01:02:03, 99'");
    let snap = w.snapshot();

    for role in [
        "colons",
        "plain-hex",
        "decimal",
        "fingerprint",
        "fingerprint-openssl",
    ] {
        assert_deny!(
            check_roles(&snap, &leaf, role),
            Reason::RevokedCertId { .. }
        );
    }
    allowed(&check_roles(&snap, &leaf, "unrelated"), "unrelated");

    let other = root.leaf(LeafSpec::client("svc"));
    allowed(&check_roles(&snap, &other, "colons"), "colons");
}

#[test]
fn revoked_cert_ids_anywhere_in_the_chain() {
    let root = Ca::root("Revoked Chain Root");
    let issuing = root.intermediate("Revoked Chain Issuing");
    let (_, int_cert) = x509_parser::parse_x509_certificate(&issuing.cert_der).unwrap();
    let int_serial = hex::encode(int_cert.raw_serial());
    let leaf = issuing.leaf(LeafSpec::client("svc"));

    let w = World::new();
    w.role(
        "by-int",
        &[&root.cert_pem],
        &format!("revoked_cert_ids: ['{int_serial}']"),
    )
    .role("clean", &[&root.cert_pem], "");
    let snap = w.snapshot();
    let p = presented(&leaf.cert_pem, &[&issuing.cert_pem]);
    let roles = |r: &'static str| Ctx {
        roles: Some(r),
        ..Ctx::default()
    };
    assert_deny!(
        decide_with(&snap, &p, roles("by-int")),
        Reason::RevokedCertId { .. }
    );
    allowed(&decide_with(&snap, &p, roles("clean")), "clean");
}

#[test]
fn revoked_cert_ids_on_a_pinned_leaf() {
    let root = Ca::root("Pinned Revoked Root");
    let leaf = root.leaf(LeafSpec::client("svc"));
    let w = World::new();
    w.role(
        "pinned",
        &[&leaf.cert_pem],
        &format!("revoked_cert_ids: ['{}']", leaf.fingerprint_hex()),
    );
    let snap = w.snapshot();
    assert_deny!(check(&snap, &leaf), Reason::RevokedCertId { .. });
}

// === file formats ===

#[test]
fn comma_separated_string_and_yaml_list_behave_identically() {
    let root = Ca::root("Lists Root");
    let w = World::new();
    w.role(
        "comma",
        &[&root.cert_pem],
        "allowed_dns_sans: 'a.example.com, b.example.com'
         allowed_organizational_units: 'eng,ops'
         token_policies: 'web, read'",
    )
    .role(
        "list",
        &[&root.cert_pem],
        "allowed_dns_sans:
         - a.example.com
         - b.example.com
         allowed_organizational_units: [eng, ops]
         token_policies:
         - web
         - read",
    );
    let snap = w.snapshot();

    let good = root.leaf(LeafSpec::client("svc").dns("b.example.com").ou("ops"));
    let bad_dns = root.leaf(LeafSpec::client("svc").dns("c.example.com").ou("ops"));
    let bad_ou = root.leaf(LeafSpec::client("svc").dns("a.example.com").ou("dev"));
    for role in ["comma", "list"] {
        let decision = check_roles(&snap, &good, role);
        let grant = allowed(&decision, role);
        assert_eq!(grant.role.policies, ["web", "read"]);
        assert_eq!(&*grant.role.policies_joined, "web,read");
        assert_deny!(check_roles(&snap, &bad_dns, role), Reason::DnsSanNotAllowed);
        assert_deny!(
            check_roles(&snap, &bad_ou, role),
            Reason::OrganizationalUnitNotAllowed
        );
    }
}

#[test]
fn role_name_from_file_stem_is_lower_cased_and_display_name_defaults_to_it() {
    let root = Ca::root("Name Root");
    let w = World::new();
    w.role("Web-Frontend", &[&root.cert_pem], "").role(
        "named",
        &[&root.cert_pem],
        "name: Payments\ndisplay_name: Payments API",
    );
    let snap = w.snapshot();
    let leaf = root.leaf(LeafSpec::client("svc"));

    let d = check_roles(&snap, &leaf, "web-frontend");
    assert_eq!(
        &*allowed(&d, "web-frontend").role.display_name,
        "web-frontend"
    );
    let d = check_roles(&snap, &leaf, "Payments");
    assert_eq!(&*allowed(&d, "payments").role.display_name, "Payments API");
}

/// `vault read -format=json auth/cert/certs/web`'s `data` object for a role created with
/// `token_policies`: loads unchanged.
#[test]
fn vault_exported_json_role() {
    let root = Ca::root("Vault Root");
    let role = serde_json::json!({
        "allowed_common_names": ["x"],
        "allowed_dns_sans": [],
        "allowed_email_sans": [],
        "allowed_metadata_extensions": [],
        "allowed_names": [],
        "allowed_organizational_units": [],
        "allowed_uri_sans": [],
        "certificate": root.cert_pem,
        "display_name": "web",
        "ocsp_ca_certificates": "",
        "ocsp_enabled": false,
        "ocsp_fail_open": false,
        "ocsp_query_all_servers": false,
        "ocsp_servers_override": [],
        "required_extensions": [],
        "token_bound_cidrs": [],
        "token_explicit_max_ttl": 0,
        "token_max_ttl": 0,
        "token_no_default_policy": false,
        "token_num_uses": 0,
        "token_period": 0,
        "token_policies": ["a", "b"],
        "token_ttl": 0,
        "token_type": "default"
    });
    let w = World::new();
    w.write(
        "roles/web.json",
        serde_json::to_string_pretty(&role).unwrap(),
    );
    let snap = w.snapshot();
    assert!(
        snap.warnings.iter().any(|m| m.contains("token_type")),
        "ignored Vault fields are reported: {:?}",
        snap.warnings
    );

    let x = root.leaf(LeafSpec::client("x"));
    let decision = check(&snap, &x);
    let grant = allowed(&decision, "web");
    assert_eq!(&*grant.role.policies_joined, "a,b");
    assert_eq!(&*grant.role.display_name, "web");
    assert_eq!(grant.sub, "x");

    let y = root.leaf(LeafSpec::client("y"));
    assert_deny!(check(&snap, &y), Reason::CommonNameNotAllowed);
}

/// The same export for a role created with the legacy `policies` / `bound_cidrs`
/// parameters: Vault's pathCertRead then returns both the `token_*` field and the
/// legacy name with the same value (`data["policies"] = data["token_policies"]`,
/// `data["bound_cidrs"] = data["token_bound_cidrs"]`, plus `ttl`/`max_ttl`/`period`).
#[test]
fn vault_exported_json_role_with_legacy_duplicates() {
    let root = Ca::root("Vault Legacy Root");
    let role = serde_json::json!({
        "allowed_common_names": ["x"],
        "allowed_dns_sans": [],
        "allowed_email_sans": [],
        "allowed_metadata_extensions": [],
        "allowed_names": [],
        "allowed_organizational_units": [],
        "allowed_uri_sans": [],
        "bound_cidrs": ["10.0.0.0/8"],
        "certificate": root.cert_pem,
        "display_name": "web",
        "max_ttl": 7200,
        "policies": ["a", "b"],
        "required_extensions": [],
        "token_bound_cidrs": ["10.0.0.0/8"],
        "token_explicit_max_ttl": 0,
        "token_max_ttl": 7200,
        "token_no_default_policy": false,
        "token_num_uses": 0,
        "token_period": 0,
        "token_policies": ["a", "b"],
        "token_ttl": 3600,
        "token_type": "default",
        "ttl": 3600
    });
    let w = World::new();
    w.write(
        "roles/web.json",
        serde_json::to_string_pretty(&role).unwrap(),
    );
    let snap = w.snapshot();

    let x = root.leaf(LeafSpec::client("x"));
    let p = presented(&x.cert_pem, &[]);
    let inside = Ctx {
        ip: Some("10.9.8.7"),
        ..Ctx::default()
    };
    let decision = decide_with(&snap, &p, inside);
    assert_eq!(&*allowed(&decision, "web").role.policies_joined, "a,b");
    let outside = Ctx {
        ip: Some("192.0.2.1"),
        ..Ctx::default()
    };
    assert_deny!(decide_with(&snap, &p, outside), Reason::SourceIpNotAllowed);
}
