//! What operators see, end to end: a real Envoy 1.40 in front of the real `certgate`
//! binary, its `/metrics` scraped and parsed, its audit file read, and the caller IP
//! taken from X-Forwarded-For only through a trusted proxy.

mod common;

use std::time::Duration;

use common::envoy::{get, https_url};
use common::front::*;
use common::pki::*;
use common::scrape::{Scrape, admin_get, scrape_until};

/// Blocking admin calls from an async test, without starving its runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn audit_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}")))
        .collect()
}

/// Polls the audit file until it has `n` lines (the writer is asynchronous).
async fn wait_audit(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let lines = audit_lines(path);
        if lines.len() >= n || std::time::Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const DECISIONS: &str = "certgate_decisions_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_audit_follow_decisions_and_reloads() {
    let root = Ca::root("Observability Root");
    let inter = root.intermediate("Observability Issuing CA");
    let web = inter.leaf(LeafSpec::client("web-1"));
    let intruder = inter.leaf(LeafSpec::client("intruder-1"));
    let role = |extra: &str| {
        role_yaml(
            &root.cert_pem,
            &format!(
                "allowed_common_names: [\"web-*\"{extra}]\naudit_log_sub_claims: [sub, serial, common_name, role]"
            ),
        )
    };
    let roles = [("web", role(""))];
    // The issuing CA's CRL (crls/inter.pem, due in a day) revokes nobody we use.
    let f = front_proxy_with(
        &roles,
        &[&[0x7f, 0x01]],
        inter,
        root.clone(),
        "audit: { sink: audit.log }",
    );
    let admin = f.admin_addr();
    let url = https_url(f.port, "/hello");
    let audit_path = f.certgate_path("audit.log");

    // Before any request: ready, generation 1, nothing decided.
    let before = blocking(|| Scrape::fetch(admin));
    assert_eq!(before.value("certgate_ready", &[]), 1.0, "{}", before.text);
    assert_eq!(before.value("certgate_config_generation", &[]), 1.0);
    assert_eq!(before.value("certgate_config_roles", &[]), 1.0);
    assert_eq!(before.value("certgate_build_info", &[]), 1.0);
    assert_eq!(before.value(DECISIONS, &[]), 0.0);
    assert!(
        before.has("process_resident_memory_bytes"),
        "{}",
        before.text
    );
    let next_update = before.value(
        "certgate_crl_next_update_timestamp_seconds",
        &[("crl", "inter"), ("origin", "file")],
    );
    let in_a_day =
        (time::OffsetDateTime::now_utc() + time::Duration::days(1)).unix_timestamp() as f64;
    assert!(
        (next_update - in_a_day).abs() < 600.0,
        "CRL nextUpdate {next_update} vs {in_a_day}:\n{}",
        before.text
    );
    assert_eq!(blocking(|| admin_get(admin, "/healthz")).0, 200);
    let (status, body) = blocking(|| admin_get(admin, "/readyz"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("generation 1"), "{body}");
    assert_eq!(blocking(|| admin_get(admin, "/nope")).0, 404);

    // Three allows, two denies.
    let web_client = f.client(&web);
    let intruder_client = f.client(&intruder);
    for i in 0..3 {
        let id = format!("allow-{i}");
        let (status, body) = get(&web_client, &url, &[("x-request-id", &id)]).await;
        assert_eq!(status, 200, "{body}");
    }
    for _ in 0..2 {
        let (status, body) = get(&intruder_client, &url, &[]).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(deny_reason(&body), "common_name_not_allowed");
    }
    let after = blocking(|| Scrape::fetch(admin));
    let allow = [("role", "web"), ("result", "allow"), ("reason", "ok")];
    let deny = [
        ("role", "web"),
        ("result", "deny"),
        ("reason", "common_name_not_allowed"),
    ];
    assert_eq!(after.value(DECISIONS, &allow), 3.0, "{}", after.text);
    assert_eq!(after.value(DECISIONS, &deny), 2.0, "{}", after.text);
    assert_eq!(
        after.value(
            "certgate_check_duration_seconds_count",
            &[("result", "allow")]
        ),
        3.0
    );
    assert_eq!(
        after.value(
            "certgate_check_duration_seconds_count",
            &[("result", "deny")]
        ),
        2.0
    );
    // Every observation fell into the +Inf bucket and took some time.
    assert_eq!(
        after.value(
            "certgate_check_duration_seconds_bucket",
            &[("result", "allow"), ("le", "+Inf")]
        ),
        3.0
    );
    assert!(after.value("certgate_check_duration_seconds_sum", &[]) > 0.0);
    // Two distinct certificates: two misses, the rest hits.
    assert_eq!(
        after.value("certgate_chain_cache_requests_total", &[("result", "miss")]),
        2.0,
        "{}",
        after.text
    );
    assert_eq!(
        after.value("certgate_chain_cache_requests_total", &[("result", "hit")]),
        3.0
    );

    // Audit: one line per decision, the role's claims on allow and deny, no PEM.
    let lines = wait_audit(&audit_path, 5).await;
    assert_eq!(lines.len(), 5, "{lines:#?}");
    let raw = std::fs::read_to_string(&audit_path).unwrap();
    assert!(!raw.contains("BEGIN"), "{raw}");
    assert!(
        !raw.contains("MII"),
        "no base64 DER in the audit log: {raw}"
    );
    let allowed = &lines[0];
    assert_eq!(allowed["decision"], "allow", "{allowed}");
    assert_eq!(allowed["reason"], "ok");
    assert_eq!(allowed["role"], "web");
    // Envoy at the edge (use_remote_address) replaces a client's x-request-id.
    assert!(
        allowed["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{allowed}"
    );
    assert_eq!(allowed["caller_ip"], "127.0.0.1");
    assert_eq!(allowed["method"], "GET");
    assert_eq!(allowed["path"], "/hello");
    assert!(
        allowed["host"]
            .as_str()
            .is_some_and(|h| h.starts_with("localhost")),
        "{allowed}"
    );
    assert_eq!(allowed["peer_ip"], "127.0.0.1");
    assert!(allowed["roles_asked"].is_null(), "{allowed}");
    let serial = hex(&web.serial);
    assert_eq!(allowed["cert"]["serial"], serial.as_str());
    assert_eq!(allowed["cert"]["issuer"], "CN=Observability Issuing CA");
    assert_eq!(
        allowed["claims"],
        serde_json::json!({
            "sub": "web-1", "serial": serial, "common_name": "web-1", "role": "web"
        })
    );
    let denied = &lines[3];
    assert_eq!(denied["decision"], "deny", "{denied}");
    assert_eq!(denied["reason"], "common_name_not_allowed");
    assert_eq!(denied["role"], "web");
    assert_eq!(denied["claims"]["sub"], "intruder-1", "{denied}");
    assert_eq!(denied["claims"]["common_name"], "intruder-1");
    assert_eq!(denied["roles"][0]["role"], "web");
    assert_eq!(denied["roles"][0]["reason"], "common_name_not_allowed");
    assert_eq!(
        denied["cert"]["fingerprint_sha256"].as_str().map(str::len),
        Some(64)
    );
    let written = blocking(|| Scrape::fetch(admin))
        .value("certgate_audit_records_total", &[("result", "written")]);
    assert_eq!(written, 5.0);

    // A good edit: reload ok, generation 2, the intruder is now allowed.
    std::fs::write(f.roles_dir.join("web.yaml"), role(", \"intruder-*\"")).unwrap();
    let (s, ok) = blocking(|| {
        scrape_until(admin, Duration::from_secs(15), |s| {
            s.value("certgate_config_generation", &[]) == 2.0
        })
    });
    assert!(ok, "no reload seen:\n{}", s.text);
    assert_eq!(
        s.value("certgate_config_reloads_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(s.value("certgate_config_reload_failing", &[]), 0.0);
    let (status, body) = get(&intruder_client, &url, &[]).await;
    assert_eq!(status, 200, "{body}");

    // A broken edit: reload failed, still generation 2, still serving it.
    std::fs::write(
        f.roles_dir.join("web.yaml"),
        "allowed_common_names: [oops\n",
    )
    .unwrap();
    let (s, ok) = blocking(|| {
        scrape_until(admin, Duration::from_secs(15), |s| {
            s.value("certgate_config_reload_failing", &[]) == 1.0
        })
    });
    assert!(ok, "no failed reload seen:\n{}", s.text);
    assert!(s.value("certgate_config_reloads_total", &[("result", "failed")]) >= 1.0);
    assert_eq!(s.value("certgate_config_generation", &[]), 2.0);
    let (status, body) = blocking(|| admin_get(admin, "/readyz"));
    assert_eq!(
        status, 200,
        "a rejected edit does not make it unready: {body}"
    );
    assert!(body.contains("rejected"), "{body}");
    let (status, body) = get(&web_client, &url, &[]).await;
    assert_eq!(status, 200, "{body}");
    // 3 allows, then the intruder and web once each under generation 2.
    let s = blocking(|| Scrape::fetch(admin));
    assert_eq!(s.value(DECISIONS, &allow), 5.0, "{}", s.text);
    assert_eq!(s.value(DECISIONS, &deny), 2.0);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The client IP matrix through a real Envoy. The test client connects from 127.0.0.1;
/// Envoy (use_remote_address) then appends its host's own address E to
/// X-Forwarded-For (for a loopback peer it appends its local address, not 127.0.0.1),
/// and certgate sees 127.0.0.1 as the peer. So the proxies in front of certgate here
/// are 127.0.0.1 (the "load balancer") and E (the hop Envoy writes): the test learns E,
/// trusts it by editing `trusted_proxies` (a live reload), then walks the matrix. A role
/// bound to 198.51.100.0/24 passes only when the right-most untrusted hop is in range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_ip_comes_from_forwarded_for_only_through_trusted_proxies() {
    let root = Ca::root("Client IP Root");
    let inter = root.intermediate("Client IP Issuing CA");
    let leaf = inter.leaf(LeafSpec::client("svc-1"));
    let roles = [(
        "bound",
        role_yaml(
            &root.cert_pem,
            "token_bound_cidrs: [198.51.100.0/24]\naudit_log_sub_claims: [sub]",
        ),
    )];
    let trusted = "trusted_proxies: [127.0.0.1/32, 10.0.0.0/8]";
    let f = front_proxy_with(
        &roles,
        &[],
        inter.clone(),
        root.clone(),
        &format!("{trusted}\naudit: {{ sink: audit.log }}"),
    );
    let client = f.client(&leaf);
    let url = https_url(f.port, "/x");
    let audit = f.certgate_path("audit.log");

    // Learn E: with no header from the client, Envoy's hop is the only one.
    let (status, body) = get(&client, &url, &[]).await;
    assert_eq!(status, 403, "{body}");
    let first = wait_audit(&audit, 1).await;
    let envoy_hop = first[0]["caller_ip"]
        .as_str()
        .unwrap_or_else(|| panic!("{first:#?}"))
        .to_string();
    let config = f.certgate_path("certgate.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            trusted,
            &format!("trusted_proxies: [127.0.0.1/32, 10.0.0.0/8, {envoy_hop}]"),
        ),
    )
    .unwrap();
    let (s, ok) = blocking(|| {
        scrape_until(f.admin_addr(), Duration::from_secs(15), |s| {
            s.value("certgate_config_generation", &[]) == 2.0
        })
    });
    assert!(ok, "trusted_proxies edit not loaded:\n{}", s.text);

    let cases: [(&str, Option<&str>, u16, &str); 6] = [
        (
            "one hop in range",
            Some("198.51.100.7"),
            200,
            "198.51.100.7",
        ),
        (
            "two hops, the nearer one trusted",
            Some("198.51.100.7, 10.1.2.3"),
            200,
            "198.51.100.7",
        ),
        (
            "forged hop left of the real one",
            Some("198.51.100.7, 203.0.113.9"),
            403,
            "203.0.113.9",
        ),
        (
            "the real hop out of range",
            Some("203.0.113.9"),
            403,
            "203.0.113.9",
        ),
        (
            "garbage where a hop should be",
            Some("not-an-ip"),
            403,
            "null",
        ),
        // Every hop trusted: the furthest one (Envoy's own) is the caller.
        ("no header", None, 403, &envoy_hop),
    ];
    for (i, (case, xff, want, caller)) in cases.iter().enumerate() {
        let headers: Vec<(&str, &str)> = xff.map(|v| ("x-forwarded-for", v)).into_iter().collect();
        let (status, body) = get(&client, &url, &headers).await;
        assert_eq!(status, *want, "{case}: {body}");
        if *want == 403 {
            assert_eq!(deny_reason(&body), "source_ip_not_allowed", "{case}");
        }
        let lines = wait_audit(&audit, i + 2).await;
        let line = &lines[i + 1];
        assert_eq!(
            line["caller_ip"].as_str().unwrap_or("null"),
            *caller,
            "{case}: {line}"
        );
        assert_eq!(line["peer_ip"], "127.0.0.1", "{case}: {line}");
    }

    // Untrusted peer: a forged header changes nothing.
    let g = front_proxy_with(&roles, &[], inter, root, "audit: { sink: audit.log }");
    let client = g.client(&leaf);
    let (status, body) = get(
        &client,
        &https_url(g.port, "/x"),
        &[("x-forwarded-for", "198.51.100.7")],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(deny_reason(&body), "source_ip_not_allowed");
    let lines = wait_audit(&g.certgate_path("audit.log"), 1).await;
    assert_eq!(lines[0]["caller_ip"], "127.0.0.1", "{lines:#?}");
}

/// An XFCC header from a peer nobody trusts is ignored (the peer certificate decides),
/// and that is visible: `certgate_xfcc_ignored_total` moves and the audit line says
/// `xfcc_ignored: true`. Driven over gRPC as Envoy would (no Envoy needed: the point is
/// a header Envoy passed through unsanitized).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_xfcc_is_counted_and_audited() {
    use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;

    let root = Ca::root("XFCC Ignored Root");
    let inter = root.intermediate("XFCC Ignored Issuing CA");
    let peer = inter.leaf(LeafSpec::client("peer-1"));
    let claimed = inter.leaf(LeafSpec::client("admin-1"));
    let dir = Dir::new();
    dir.write(
        "cg/roles/web.yaml",
        role_yaml(&root.cert_pem, "allowed_common_names: [\"peer-*\"]"),
    );
    let config = dir.write(
        "cg/certgate.yaml",
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nroles_dir: roles\n\
         certificate_sources: [peer, xfcc]\naudit: { sink: audit.log }\n",
    );
    let certgate = common::envoy::Certgate::start(&config);
    let admin = certgate.admin_addr.expect("admin_addr");
    let mut client = AuthorizationClient::connect(format!("http://{}", certgate.grpc_addr))
        .await
        .expect("connect");
    let leaf = peer.url_encoded_pem();
    let request = |xfcc: Option<&str>| {
        let headers: Vec<(&str, &str)> = xfcc
            .map(|x| ("x-forwarded-client-cert", x))
            .into_iter()
            .collect();
        common::check_request::check_request("203.0.113.5", &leaf, &headers)
    };
    // A forged XFCC naming another certificate, from an untrusted peer.
    let forged = format!("Cert=\"{}\"", claimed.url_encoded_pem());
    let first = client
        .check(request(Some(&forged)))
        .await
        .expect("check")
        .into_inner();
    let second = client
        .check(request(None))
        .await
        .expect("check")
        .into_inner();
    // Both judged on the peer's own certificate (Envoy passes only the leaf, and the
    // role bundles only the root: both deny untrusted_issuer alike): the forged header
    // changed nothing.
    let code = |r: &envoy_types::ext_authz::v3::pb::CheckResponse| {
        r.status.as_ref().map(|s| (s.code, s.message.clone()))
    };
    assert_eq!(code(&first), code(&second));
    assert_eq!(
        code(&first).map(|c| c.1).as_deref(),
        Some("untrusted_issuer")
    );

    let s = blocking(|| Scrape::fetch(admin));
    assert_eq!(
        s.value("certgate_xfcc_ignored_total", &[]),
        1.0,
        "{}",
        s.text
    );
    let lines = wait_audit(&dir.join("cg/audit.log"), 2).await;
    assert_eq!(lines[0]["xfcc_ignored"], true, "{}", lines[0]);
    assert_eq!(lines[0]["cert"]["subject"], "CN=peer-1", "{}", lines[0]);
    assert!(lines[1].get("xfcc_ignored").is_none(), "{}", lines[1]);
    assert_eq!(lines[1]["peer_ip"], "203.0.113.5");
}
