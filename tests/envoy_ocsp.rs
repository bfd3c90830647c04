//! OCSP end to end: a real Envoy 1.40 in front of the real `certgate` binary, which asks
//! a real `openssl ocsp` responder about each client certificate.

mod common;

use common::envoy::https_url;
use common::front::*;
use common::ocsp_responder::{EntryStatus, OcspResponder};
use common::pki::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocsp_revoked_client_gets_403_and_a_burst_costs_one_responder_request() {
    let root = Ca::root("OCSP Clients Root");
    let inter = root.intermediate("OCSP Clients Issuing CA");
    let good = inter.leaf(LeafSpec::client("good-1"));
    let revoked = inter.leaf(LeafSpec::client("revoked-1"));
    let responder = OcspResponder::start(
        &inter.cert_pem,
        &inter.cert_pem,
        &inter.key_pem,
        &[
            (good.serial.clone(), EntryStatus::Good),
            (revoked.serial.clone(), EntryStatus::Revoked),
        ],
    );
    let roles = [(
        "web",
        role_yaml(
            &root.cert_pem,
            &format!(
                "ocsp_enabled: true\nocsp_servers_override: [\"{}\"]",
                responder.url()
            ),
        ),
    )];
    let f = front_proxy_with(&roles, &[], inter, root, "ocsp: { timeout: 2s }");
    let url = https_url(f.port, "/hello");

    // The revoked client: 403 with the OCSP reason.
    let (status, body) = common::envoy::get(&f.client(&revoked), &url, &[]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(deny_reason(&body), "revoked_ocsp");
    let after_revoked = responder.requests();
    assert_eq!(
        after_revoked, 1,
        "one responder request for the revoked client"
    );

    // A burst of 100 requests from one good client, 20 at a time: the responder is
    // asked once (concurrent misses coalesce, then the cache answers).
    let client = f.client(&good);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let wave: Vec<_> = (0..20)
            .map(|_| {
                let client = client.clone();
                let url = url.clone();
                tokio::spawn(async move { common::envoy::get(&client, &url, &[]).await })
            })
            .collect();
        for task in wave {
            let (status, body) = task.await.expect("request task");
            statuses.push((status, body));
        }
    }
    assert!(
        statuses.iter().all(|(s, _)| *s == 200),
        "every request of the burst is allowed: {:?}",
        statuses.iter().find(|(s, _)| *s != 200)
    );
    assert_eq!(
        responder.requests() - after_revoked,
        1,
        "the responder saw exactly one request for 100 requests from one client"
    );
    // The identity reached the upstream.
    assert_eq!(
        echoed_header(&statuses[0].1, "x-certgate-sub").as_deref(),
        Some("good-1")
    );

    // The revoked client stays denied from the cache, without asking again.
    let (status, body) = common::envoy::get(&f.client(&revoked), &url, &[]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(deny_reason(&body), "revoked_ocsp");
    assert_eq!(responder.requests(), after_revoked + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocsp_unreachable_responder_denies_unless_the_role_fails_open() {
    let root = Ca::root("OCSP Down Root");
    let inter = root.intermediate("OCSP Down Issuing CA");
    let client = inter.leaf(LeafSpec::client("c-1"));
    let down = common::ocsp_responder::unreachable_url();
    let roles = [
        (
            "web",
            role_yaml(
                &root.cert_pem,
                &format!(
                    "ocsp_enabled: true\nocsp_servers_override: [\"{down}\"]\nocsp_max_retries: 0"
                ),
            ),
        ),
        (
            "zopen",
            role_yaml(
                &root.cert_pem,
                &format!(
                    "ocsp_enabled: true\nocsp_fail_open: true\nocsp_servers_override: [\"{down}\"]\nocsp_max_retries: 0"
                ),
            ),
        ),
    ];
    let f = front_proxy_with(&roles, &[], inter, root, "ocsp: { timeout: 1s }");
    // /web asks for role `web` only: it fails closed.
    let (status, body) =
        common::envoy::get(&f.client(&client), &https_url(f.port, "/web/x"), &[]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(deny_reason(&body), "ocsp_unavailable");
    // The default route tries every role: the one that fails open lets the client in.
    let (status, body) =
        common::envoy::get(&f.client(&client), &https_url(f.port, "/hello"), &[]).await;
    assert_eq!(status, 200, "the fail-open role allows: {body}");
    assert_eq!(
        echoed_header(&body, "x-certgate-role").as_deref(),
        Some("zopen")
    );
}
