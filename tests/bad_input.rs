//! Spec §7 through the adapter, as Envoy would send it: hostile or broken input gets a
//! deny with a precise reason code, never a panic, a hang or an allow.

mod common;

use certgate::grpc::ext_authz;
use certgate::snapshot::Snapshot;
use common::pki::*;
use common::world::*;
use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};

/// A CheckRequest with the given peer certificate (URL-encoded PEM) and headers.
fn request(peer_certificate: &str, headers: &[(&str, &str)]) -> CheckRequest {
    common::check_request::check_request("10.0.0.7", peer_certificate, headers)
}

/// `Some(code)` for a denial, `None` for an allow.
fn outcome(response: &CheckResponse) -> Option<String> {
    match &response.http_response {
        Some(HttpResponse::OkResponse(_)) => {
            assert_eq!(response.status.as_ref().map(|s| s.code), Some(0));
            None
        }
        Some(HttpResponse::DeniedResponse(denied)) => {
            assert_eq!(response.status.as_ref().map(|s| s.code), Some(7));
            assert_eq!(denied.status.as_ref().map(|s| s.code), Some(403));
            let body: serde_json::Value =
                serde_json::from_str(&denied.body).expect("deny body is JSON");
            Some(body["reason"].as_str().expect("reason").to_string())
        }
        other => panic!("certgate answers OK or Denied, never {other:?}"),
    }
}

struct Setup {
    _world: World,
    snapshot: Snapshot,
    leaf: Leaf,
    inter: Ca,
}

/// One CA role trusting `root`; XFCC set by Envoy (as behind envoy/front-proxy.yaml).
fn setup() -> Setup {
    let root = Ca::root("Bad Input Root");
    let inter = root.intermediate("Bad Input Issuing CA");
    let leaf = inter.leaf(LeafSpec::client("web-1").ou("eng"));
    let world = World::with_global("xfcc: { envoy_sets: true }");
    world.role(
        "web",
        &[&root.cert_pem],
        "allowed_organizational_units: eng",
    );
    let snapshot = world.snapshot();
    Setup {
        _world: world,
        snapshot,
        leaf,
        inter,
    }
}

fn xfcc_for(s: &Setup) -> String {
    format!(
        "Hash={};Cert=\"{}\";Chain=\"{}\";Subject=\"CN=web-1,OU=eng\"",
        s.leaf.fingerprint_hex(),
        s.leaf.url_encoded_pem(),
        url_encode(&bundle(&[&s.leaf.cert_pem, &s.inter.cert_pem]))
    )
}

#[test]
fn the_good_request_is_allowed() {
    let s = setup();
    let xfcc = xfcc_for(&s);
    let req = request(
        &s.leaf.url_encoded_pem(),
        &[("x-forwarded-client-cert", &xfcc)],
    );
    assert_eq!(
        outcome(&ext_authz::check(&s.snapshot, &req, unix_now())),
        None
    );
}

#[test]
fn each_kind_of_bad_input_has_its_own_reason() {
    let s = setup();
    let now = unix_now();
    let good_xfcc = xfcc_for(&s);
    let leaf = s.leaf.url_encoded_pem();
    let pem = &s.leaf.cert_pem;
    let b64_start = pem.find('\n').expect("PEM header") + 1;
    let truncated = format!("{}\n-----END CERTIFICATE-----\n", &pem[..b64_start + 40]);
    let garbage_b64 =
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n-----END CERTIFICATE-----\n";
    let megabyte = "A".repeat(1024 * 1024);
    let deep_chain = {
        let mut cas = vec![Ca::root("Deep Root")];
        for i in 0..50 {
            let next = cas[cas.len() - 1].intermediate(&format!("Deep {i}"));
            cas.push(next);
        }
        let leaf = cas[50].leaf(LeafSpec::client("deep"));
        let chain: Vec<&str> = cas.iter().rev().map(|c| c.cert_pem.as_str()).collect();
        (leaf, url_encode(&bundle(&chain)))
    };
    let deep_xfcc = format!(
        "Hash={};Chain=\"{}\"",
        deep_chain.0.fingerprint_hex(),
        deep_chain.1
    );
    let deep_leaf = deep_chain.0.url_encoded_pem();

    /// (what, peer certificate, headers, expected reason code)
    type Case<'a> = (&'a str, String, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "no certificate at all",
            String::new(),
            vec![],
            "no_client_certificate",
        ),
        (
            "garbage text",
            "hello".into(),
            vec![],
            "malformed_certificate",
        ),
        (
            "garbage base64",
            garbage_b64.into(),
            vec![],
            "malformed_certificate",
        ),
        (
            "truncated DER",
            url_encode(&truncated),
            vec![],
            "malformed_certificate",
        ),
        (
            "1 MiB peer certificate",
            megabyte.clone(),
            vec![],
            "malformed_certificate",
        ),
        (
            "1 MiB XFCC header",
            leaf.clone(),
            vec![("x-forwarded-client-cert", megabyte.clone())],
            "malformed_xfcc",
        ),
        (
            "unterminated quote",
            leaf.clone(),
            vec![(
                "x-forwarded-client-cert",
                format!("Hash={};Cert=\"abc", s.leaf.fingerprint_hex()),
            )],
            "malformed_xfcc",
        ),
        (
            "quote in the middle of a value",
            leaf.clone(),
            vec![("x-forwarded-client-cert", "Hash=ab\"cd\";URI=x".into())],
            "malformed_xfcc",
        ),
        (
            "17 elements",
            leaf.clone(),
            vec![(
                "x-forwarded-client-cert",
                vec![good_xfcc.as_str(); 17].join(","),
            )],
            "malformed_xfcc",
        ),
        (
            "XFCC describing another certificate",
            leaf.clone(),
            vec![(
                "x-forwarded-client-cert",
                format!("Hash={}", "00".repeat(32)),
            )],
            "xfcc_mismatch",
        ),
        (
            "a 50-deep chain",
            deep_leaf,
            vec![("x-forwarded-client-cert", deep_xfcc)],
            "malformed_certificate",
        ),
    ];
    for (what, peer, headers, expected) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let got = outcome(&ext_authz::check(
            &s.snapshot,
            &request(&peer, &headers),
            now,
        ));
        assert_eq!(got.as_deref(), Some(expected), "{what}");
    }
}

/// A small deterministic PRNG (xorshift): reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Random byte edits of a valid peer certificate and XFCC header: every outcome is a
/// deny (or, for an edit that changed nothing that matters, the same allow), and
/// nothing panics. A mutated certificate is never allowed under another identity.
#[test]
fn mutated_certificates_and_headers_never_panic_and_never_allow_a_forgery() {
    let s = setup();
    let now = unix_now();
    let leaf = s.leaf.url_encoded_pem();
    let xfcc = xfcc_for(&s);
    let alphabet = b"%0A=\";,\\ABCxyz+/";
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    for round in 0..1500 {
        let mut cert = leaf.clone().into_bytes();
        let mut header = xfcc.clone().into_bytes();
        let target = if round % 2 == 0 {
            &mut cert
        } else {
            &mut header
        };
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(target.len());
            match rng.below(3) {
                0 => target[i] = alphabet[rng.below(alphabet.len())],
                1 => {
                    target.remove(i);
                }
                _ => target.insert(i, alphabet[rng.below(alphabet.len())]),
            }
        }
        let cert = String::from_utf8_lossy(&cert).into_owned();
        let header = String::from_utf8_lossy(&header).into_owned();
        let response = ext_authz::check(
            &s.snapshot,
            &request(&cert, &[("x-forwarded-client-cert", &header)]),
            now,
        );
        if outcome(&response).is_none() {
            // Allowed: only possible if the edit left the same certificate in effect.
            let Some(HttpResponse::OkResponse(ok)) = &response.http_response else {
                unreachable!()
            };
            let fp = ok
                .headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .find(|h| h.key == "x-certgate-fingerprint-sha256")
                .map(|h| h.value.clone());
            assert_eq!(
                fp.as_deref(),
                Some(s.leaf.fingerprint_hex().as_str()),
                "round {round}: allowed a different certificate"
            );
        }
    }
}
