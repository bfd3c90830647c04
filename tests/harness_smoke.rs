//! Proves the real-Envoy harness (tests/common/envoy.rs) and the shipped templates in
//! envoy/ with a real Envoy 1.40, WITHOUT certgate: mTLS through Envoy to the echo
//! upstream, refusals in the TLS handshake, fail-closed ext_authz when certgate is down,
//! the two-Envoy XFCC chain, and `envoy --mode validate` on every template.
//!
//! Certificates are made inline with rcgen so this file depends on nothing but the
//! harness. Envoy is required: if it cannot be installed these tests fail, never skip.

mod common;

use std::path::{Path, PathBuf};

use common::envoy::*;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

const CLIENT_URI: &str = "spiffe://cluster.local/ns/apps/sa/client";
const CLIENT_DNS: &str = "client.apps.svc";
const EDGE_URI: &str = "spiffe://cluster.local/ns/edge/sa/gateway";

struct Issued {
    cert_pem: String,
    key_pem: String,
    params: CertificateParams,
    key: KeyPair,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "certgate harness");
    dn.push(DnType::CommonName, cn);
    dn
}

fn sign(params: CertificateParams, issuer: Option<&Issued>) -> Issued {
    let key = KeyPair::generate().expect("key");
    let cert = match issuer {
        Some(i) => params
            .signed_by(&key, &Issuer::from_params(&i.params, &i.key))
            .expect("sign"),
        None => params.self_signed(&key).expect("self-sign"),
    };
    Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        params,
        key,
    }
}

fn ca(cn: &str, issuer: Option<&Issued>) -> Issued {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(match issuer {
        None => BasicConstraints::Unconstrained,
        Some(_) => BasicConstraints::Constrained(0),
    });
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    sign(p, issuer)
}

fn leaf(cn: &str, sans: Vec<SanType>, eku: ExtendedKeyUsagePurpose, issuer: &Issued) -> Issued {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name = dn(cn);
    p.subject_alt_names = sans;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![eku];
    p.use_authority_key_identifier_extension = true;
    sign(p, Some(issuer))
}

fn ia5(s: &str) -> rcgen::string::Ia5String {
    s.try_into().expect("ia5")
}

/// Two PKIs: clients (root → intermediate → leaf), and the proxies' own (one root for
/// Envoy server certs, `localhost`, and the edge's SPIFFE client cert).
struct Pki {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    client_int: Issued,
    client: Issued,
    proxy_root: Issued,
    // files
    server_cert: PathBuf,
    server_key: PathBuf,
    client_ca: PathBuf,
    proxy_ca: PathBuf,
    edge_cert: PathBuf,
    edge_key: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let client_root = ca("Harness Client Root", None);
        let client_int = ca("Harness Client Intermediate", Some(&client_root));
        let client = leaf(
            "harness-client",
            vec![
                SanType::URI(ia5(CLIENT_URI)),
                SanType::DnsName(ia5(CLIENT_DNS)),
            ],
            ExtendedKeyUsagePurpose::ClientAuth,
            &client_int,
        );
        let proxy_root = ca("Harness Proxy Root", None);
        let server = leaf(
            "localhost",
            vec![
                SanType::DnsName(ia5("localhost")),
                SanType::IpAddress([127, 0, 0, 1].into()),
            ],
            ExtendedKeyUsagePurpose::ServerAuth,
            &proxy_root,
        );
        let edge = leaf(
            "gateway",
            vec![SanType::URI(ia5(EDGE_URI))],
            ExtendedKeyUsagePurpose::ClientAuth,
            &proxy_root,
        );
        let server_cert = write_file(&dir, "pki/server.pem", &server.cert_pem);
        let server_key = write_file(&dir, "pki/server.key", &server.key_pem);
        let client_ca = write_file(&dir, "pki/client-ca.pem", &client_root.cert_pem);
        let proxy_ca = write_file(&dir, "pki/proxy-ca.pem", &proxy_root.cert_pem);
        let edge_cert = write_file(&dir, "pki/edge.pem", &edge.cert_pem);
        let edge_key = write_file(&dir, "pki/edge.key", &edge.key_pem);
        Pki {
            _tmp: tmp,
            dir,
            client_int,
            client,
            proxy_root,
            server_cert,
            server_key,
            client_ca,
            proxy_ca,
            edge_cert,
            edge_key,
        }
    }

    fn client_chain(&self) -> String {
        format!("{}{}", self.client.cert_pem, self.client_int.cert_pem)
    }

    /// Client presenting leaf + intermediate (what Envoy needs with a root trusted_ca).
    fn good_client(&self) -> Client {
        mtls_client(
            &self.proxy_root.cert_pem,
            &self.client_chain(),
            &self.client.key_pem,
        )
    }
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

fn header<'a>(echo: &'a serde_json::Value, name: &str) -> &'a str {
    echo["headers"][name]
        .as_str()
        .unwrap_or_else(|| panic!("upstream saw no `{name}` header: {echo:#}"))
}

/// The value of `key="..."` (quoted) in an XFCC element.
fn quoted<'a>(element: &'a str, key: &str) -> Option<&'a str> {
    let start = element.find(&format!("{key}=\""))? + key.len() + 2;
    let len = element[start..].find('"')?;
    Some(&element[start..start + len])
}

#[tokio::test]
async fn envoy_mtls_roundtrip_to_upstream_without_certgate() {
    let pki = Pki::new();
    let upstream = Upstream::start();
    let (admin, listen) = (free_port(), free_port());
    let config = render(
        &envoy_template("test-plain-mtls.yaml"),
        &[
            ("ADMIN_PORT", admin.to_string()),
            ("LISTEN_PORT", listen.to_string()),
            ("UPSTREAM_PORT", upstream.port.to_string()),
            ("SERVER_CERT", p(&pki.server_cert)),
            ("SERVER_KEY", p(&pki.server_key)),
            ("CLIENT_CA", p(&pki.client_ca)),
        ],
    );
    let envoy = Envoy::start(&config, admin, &pki.dir);

    let url = https_url(listen, "/hello/world?x=1");
    let (status, body) = get(
        &pki.good_client(),
        &url,
        &[("x-forwarded-client-cert", "By=forged;URI=spiffe://evil")],
    )
    .await;
    assert_eq!(status, 200, "{body}\n{}", envoy.log_text());
    let echo: serde_json::Value = serde_json::from_str(&body).expect("echo JSON");
    assert_eq!(echo["path"], "/hello/world");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(header(&echo, "x-forwarded-proto"), "https");

    // SANITIZE_SET: the client's forged XFCC is gone, Envoy's own element is there.
    let xfcc = header(&echo, "x-forwarded-client-cert");
    assert!(!xfcc.contains("evil") && !xfcc.contains("forged"), "{xfcc}");
    assert!(xfcc.starts_with("Hash="), "{xfcc}");
    assert!(xfcc.contains(&format!("URI={CLIENT_URI}")), "{xfcc}");
    assert!(xfcc.contains(&format!("DNS={CLIENT_DNS}")), "{xfcc}");
    assert!(
        quoted(xfcc, "Subject")
            .unwrap_or("")
            .contains("CN=harness-client"),
        "{xfcc}"
    );
    assert!(quoted(xfcc, "Cert").is_some(), "{xfcc}");
    let chain = quoted(xfcc, "Chain").expect("Chain in XFCC");
    assert_eq!(
        chain.matches("BEGIN%20CERTIFICATE").count(),
        2,
        "Chain = exactly what the client sent: {chain}"
    );
    assert_eq!(upstream.requests(), 1);
    assert!(envoy.stat("http.plain.downstream_rq_2xx").unwrap_or(0) >= 1);
}

#[tokio::test]
async fn envoy_refuses_missing_incomplete_or_foreign_client_certs() {
    let pki = Pki::new();
    let upstream = Upstream::start();
    let (admin, listen) = (free_port(), free_port());
    let config = render(
        &envoy_template("test-plain-mtls.yaml"),
        &[
            ("ADMIN_PORT", admin.to_string()),
            ("LISTEN_PORT", listen.to_string()),
            ("UPSTREAM_PORT", upstream.port.to_string()),
            ("SERVER_CERT", p(&pki.server_cert)),
            ("SERVER_KEY", p(&pki.server_key)),
            ("CLIENT_CA", p(&pki.client_ca)),
        ],
    );
    let _envoy = Envoy::start(&config, admin, &pki.dir);
    let url = https_url(listen, "/");
    let ca = &pki.proxy_root.cert_pem;

    let no_cert = try_get(&no_cert_client(ca), &url, &[]).await;
    assert!(no_cert.is_err(), "no client cert must fail: {no_cert:?}");

    // Leaf only, no intermediate: Envoy cannot build the path to the root.
    let leaf_only = mtls_client(ca, &pki.client.cert_pem, &pki.client.key_pem);
    let r = try_get(&leaf_only, &url, &[]).await;
    assert!(r.is_err(), "leaf without intermediate must fail: {r:?}");

    // A certificate from another CA (the proxies' own edge identity).
    let edge_cert = std::fs::read_to_string(&pki.edge_cert).unwrap();
    let edge_key = std::fs::read_to_string(&pki.edge_key).unwrap();
    let r = try_get(&mtls_client(ca, &edge_cert, &edge_key), &url, &[]).await;
    assert!(r.is_err(), "foreign CA must fail: {r:?}");

    // ... and the right one still works on the same Envoy.
    let (status, _) = get(&pki.good_client(), &url, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(upstream.requests(), 1);
}

fn front_proxy_vars(
    pki: &Pki,
    admin: u16,
    listen: u16,
    certgate: u16,
    upstream: u16,
) -> Vec<(&'static str, String)> {
    vec![
        ("ADMIN_PORT", admin.to_string()),
        ("LISTEN_PORT", listen.to_string()),
        ("CERTGATE_PORT", certgate.to_string()),
        ("UPSTREAM_PORT", upstream.to_string()),
        ("SERVER_CERT", p(&pki.server_cert)),
        ("SERVER_KEY", p(&pki.server_key)),
        ("CLIENT_CA", p(&pki.client_ca)),
    ]
}

#[tokio::test]
async fn front_proxy_fails_closed_when_certgate_is_down() {
    let pki = Pki::new();
    let upstream = Upstream::start();
    let (admin, listen, nobody) = (free_port(), free_port(), free_port());
    let config = render(
        &envoy_template("front-proxy.yaml"),
        &front_proxy_vars(&pki, admin, listen, nobody, upstream.port),
    );
    let envoy = Envoy::start(&config, admin, &pki.dir);
    let client = pki.good_client();
    for path in ["/", "/admin/x", "/web", "/ADMIN"] {
        let r = try_get(&client, &https_url(listen, path), &[])
            .await
            .expect(path);
        assert_eq!(r.status, 403, "{path}: {r:?}");
        assert_eq!(
            r.body, "",
            "{path}: Envoy's own fail-closed 403 has no body"
        );
    }
    assert_eq!(upstream.requests(), 0, "nothing may reach the upstream");
    assert!(envoy.stat("http.ingress.ext_authz.error").unwrap_or(0) >= 4);
}

#[tokio::test]
async fn mesh_chain_edge_to_inner_over_mtls_builds_two_element_xfcc() {
    let pki = Pki::new();
    let upstream = Upstream::start();
    let (edge_admin, edge_listen) = (free_port(), free_port());
    let (inner_admin, inner_listen, nobody) = (free_port(), free_port(), free_port());
    let inner_vars = [
        ("ADMIN_PORT", inner_admin.to_string()),
        ("LISTEN_PORT", inner_listen.to_string()),
        ("CERTGATE_PORT", nobody.to_string()),
        ("UPSTREAM_PORT", upstream.port.to_string()),
        ("SERVER_CERT", p(&pki.server_cert)),
        ("SERVER_KEY", p(&pki.server_key)),
        ("CLIENT_CA", p(&pki.proxy_ca)),
    ];
    let edge_vars = [
        ("ADMIN_PORT", edge_admin.to_string()),
        ("LISTEN_PORT", edge_listen.to_string()),
        ("INNER_PORT", inner_listen.to_string()),
        ("SERVER_CERT", p(&pki.server_cert)),
        ("SERVER_KEY", p(&pki.server_key)),
        ("CLIENT_CA", p(&pki.client_ca)),
        ("EDGE_CLIENT_CERT", p(&pki.edge_cert)),
        ("EDGE_CLIENT_KEY", p(&pki.edge_key)),
        ("INNER_CA", p(&pki.proxy_ca)),
    ];
    let inner_config = render(&envoy_template("mesh-inner.yaml"), &inner_vars);
    let edge = Envoy::start(
        &render(&envoy_template("mesh-edge.yaml"), &edge_vars),
        edge_admin,
        &pki.dir,
    );
    let client = pki.good_client();
    let url = https_url(edge_listen, "/admin/panel");

    // As shipped (certgate down): the inner Envoy answers 403, proving the edge→inner
    // mTLS hop works (a broken hop would be a 503 from the edge).
    {
        let inner = Envoy::start(&inner_config, inner_admin, &pki.dir);
        let (status, body) = get(&client, &url, &[]).await;
        assert_eq!(
            status,
            403,
            "{body}\nedge:\n{}\ninner:\n{}",
            edge.log_text(),
            inner.log_text()
        );
        assert_eq!(upstream.requests(), 0);
        assert!(inner.stat("http.inner.ext_authz.error").unwrap_or(0) >= 1);
    }

    // Same chain with the authz failure mode flipped open (test-only edit) to see what
    // reaches the upstream: XFCC = "<client element>,<edge element>".
    assert_eq!(inner_config.matches("failure_mode_allow: false").count(), 1);
    let open = inner_config.replace(
        "failure_mode_allow: false",
        "failure_mode_allow: true\n              failure_mode_allow_header_add: true",
    );
    let _inner = Envoy::start(&open, inner_admin, &pki.dir);
    let (status, body) = get(
        &client,
        &url,
        &[("x-forwarded-client-cert", "URI=spiffe://evil")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    let xfcc = header(&echo, "x-forwarded-client-cert");
    assert!(!xfcc.contains("evil"), "edge must sanitize: {xfcc}");
    let client_at = xfcc.find(&format!("URI={CLIENT_URI}")).expect(xfcc);
    let edge_at = xfcc.find(&format!("URI={EDGE_URI}")).expect(xfcc);
    assert!(
        client_at < edge_at,
        "client element first, then edge: {xfcc}"
    );
    assert_eq!(xfcc.matches("Hash=").count(), 2, "{xfcc}");
    assert_eq!(header(&echo, "x-envoy-auth-failure-mode-allowed"), "true");
}

#[test]
fn shipped_templates_render_and_pass_envoy_validate() {
    let pki = Pki::new();
    let ports = |n: usize| (0..n).map(|_| free_port().to_string()).collect::<Vec<_>>();
    let pp = ports(6);
    let all = [
        ("ADMIN_PORT", pp[0].clone()),
        ("LISTEN_PORT", pp[1].clone()),
        ("CERTGATE_PORT", pp[2].clone()),
        ("UPSTREAM_PORT", pp[3].clone()),
        ("INNER_PORT", pp[4].clone()),
        ("SERVER_CERT", p(&pki.server_cert)),
        ("SERVER_KEY", p(&pki.server_key)),
        ("CLIENT_CA", p(&pki.client_ca)),
        ("EDGE_CLIENT_CERT", p(&pki.edge_cert)),
        ("EDGE_CLIENT_KEY", p(&pki.edge_key)),
        ("INNER_CA", p(&pki.proxy_ca)),
    ];
    let mut seen = 0;
    for entry in std::fs::read_dir(repo_root().join("envoy")).expect("envoy/") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let rendered = render(&path, &all);
        assert!(!rendered.contains("${"), "{}", path.display());
        if let Err(e) = validate_config(&rendered, &pki.dir) {
            panic!("{}: {e}", path.display());
        }
        seen += 1;
    }
    assert!(
        seen >= 4,
        "expected front-proxy, mesh-edge, mesh-inner, test-plain-mtls"
    );

    // The check is not vacuous: a missing certificate file is rejected.
    let broken = render(&envoy_template("front-proxy.yaml"), &all)
        .replace(&p(&pki.client_ca), &p(&pki.dir.join("missing.pem")));
    assert!(validate_config(&broken, &pki.dir).is_err());
}

#[test]
#[should_panic(expected = "no value for placeholder `${UPSTREAM_PORT}`")]
fn render_refuses_leftover_placeholders() {
    render_str(
        "a: ${LISTEN_PORT}\nb: ${UPSTREAM_PORT}\n",
        &[("LISTEN_PORT", "1".into())],
        "inline",
    );
}

#[test]
fn render_does_not_rescan_values() {
    let out = render_str("x: ${A}", &[("A", "${B}".into())], "inline");
    assert_eq!(out, "x: ${B}");
}

#[test]
fn grpc_addr_is_found_in_text_and_json_logs() {
    let text = "2026-11-23T10:00:00Z  INFO certgate::grpc: listening grpc_addr=127.0.0.1:40123 admin_addr=127.0.0.1:1";
    assert_eq!(
        parse_grpc_addr(text),
        Some("127.0.0.1:40123".parse().unwrap())
    );
    let json = r#"{"level":"INFO","fields":{"message":"listening","grpc_addr":"127.0.0.1:9191"}}"#;
    assert_eq!(
        parse_grpc_addr(json),
        Some("127.0.0.1:9191".parse().unwrap())
    );
    let ansi = "\u{1b}[3mgrpc_addr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:5";
    assert_eq!(parse_grpc_addr(ansi), Some("127.0.0.1:5".parse().unwrap()));
    assert_eq!(parse_grpc_addr("grpc_addr unset"), None);
    assert_eq!(parse_grpc_addr("listening on 127.0.0.1:9191"), None);
}
