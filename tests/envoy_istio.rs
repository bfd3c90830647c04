//! certgate behind Istio, end to end: a real Envoy 1.40 configured the way istiod
//! configures an ingress gateway or a sidecar for an `envoyExtAuthzGrpc` CUSTOM provider
//! (envoy/istio-shaped.yaml), the real certgate binary running the shipped Istio config
//! (envoy/istio/certgate.yaml and roles/), an echo upstream, and mTLS clients holding
//! mesh workload certificates (SPIFFE URI SAN, empty subject, issued by an intermediate
//! as with Istio's plugged-in CA).
//!
//! Istio sends certgate neither the peer certificate nor per-route roles: everything
//! comes from the XFCC header that the gateway or sidecar writes, so these tests are
//! about which XFCC shapes work and which forgeries they stop. The four shapes (see the
//! template's header) are Istio's stock gateway and sidecar, and both with the
//! EnvoyFilters of envoy/istio/ applied. The last test checks that the shipped Istio
//! resources say what these tests run.
//!
//! Everything listens on 127.0.0.1 ephemeral ports and stops when its test ends.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::envoy::*;
use common::front::{chain_of, deny_reason, echoed_header, work_dir};
use common::pki::*;

const PROD_WEB: &str = "spiffe://cluster.local/ns/prod/sa/web";
const PROD_BATCH: &str = "spiffe://cluster.local/ns/prod/sa/batch";
const OTHER_WEB: &str = "spiffe://cluster.local/ns/other/sa/web";
/// The ingress gateway's workload identity, trusted as a hop in envoy/istio/certgate.yaml.
const GATEWAY_SA: &str =
    "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account";
/// The role in envoy/istio/roles/.
const PROD_ROLE: &str = "prod-workloads";

// === XFCC shapes ===

/// The lines marked `# shape` in envoy/istio-shaped.yaml: the three XFCC settings of an
/// Istio-generated HTTP connection manager (subject, dns and uri are always on), and
/// whether the listener requires a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    forward: &'static str,
    cert: bool,
    chain: bool,
    /// false: a gateway server in OPTIONAL_MUTUAL, or a sidecar under PERMISSIVE.
    client_cert_required: bool,
}

/// Stock gateway: istio/istio pilot/pkg/networking/core/gateway.go,
/// buildGatewayConnectionManager.
const GATEWAY_STOCK: Shape = Shape {
    forward: "SANITIZE_SET",
    cert: true,
    chain: false,
    client_cert_required: true,
};
/// Gateway with envoy/istio/gateway-xfcc.yaml: the template as written.
const GATEWAY_PATCHED: Shape = Shape {
    forward: "SANITIZE_SET",
    cert: true,
    chain: true,
    client_cert_required: true,
};
/// Stock sidecar inbound: listener_inbound.go, buildSidecarInboundHTTPOpts.
const SIDECAR_STOCK: Shape = Shape {
    forward: "APPEND_FORWARD",
    cert: false,
    chain: false,
    client_cert_required: true,
};
/// Sidecar with envoy/istio/sidecar-xfcc.yaml.
const SIDECAR_PATCHED: Shape = Shape {
    forward: "APPEND_FORWARD",
    cert: true,
    chain: true,
    client_cert_required: true,
};

/// envoy/istio-shaped.yaml rendered, with the `# shape` lines set to `shape`.
fn istio_envoy_yaml(shape: Shape, vars: &[(&str, String)]) -> String {
    let yaml = render(&envoy_template("istio-shaped.yaml"), vars);
    let yaml = set_shape_line(&yaml, "forward_client_cert_details:", shape.forward);
    let yaml = set_shape_line(&yaml, "cert:", &shape.cert.to_string());
    let yaml = set_shape_line(&yaml, "chain:", &shape.chain.to_string());
    set_shape_line(
        &yaml,
        "require_client_certificate:",
        &shape.client_cert_required.to_string(),
    )
}

/// Replaces the value on the one line that starts with `key` and ends in `# shape`.
fn set_shape_line(yaml: &str, key: &str, value: &str) -> String {
    let mut hits = 0;
    let lines: Vec<String> = yaml
        .lines()
        .map(|line| {
            let body = line.trim_start();
            if body.starts_with(key) && body.ends_with("# shape") {
                hits += 1;
                let indent = &line[..line.len() - body.len()];
                format!("{indent}{key} {value}  # shape")
            } else {
                line.to_string()
            }
        })
        .collect();
    assert_eq!(
        hits, 1,
        "envoy/istio-shaped.yaml: one `{key} ... # shape` line"
    );
    lines.join("\n") + "\n"
}

// === the mesh PKI ===

/// The mesh's CA (root + a plugged-in intermediate) and the CA of the Envoys' server
/// certificates.
struct Mesh {
    /// istiod's `istio-ca-root-cert`.
    root: Ca,
    /// The intermediate of a plugged-in CA (cacerts `ca-cert.pem`): issues workload certs.
    inter: Ca,
    /// Issuer of the gateway's/sidecar's serving certificate (what clients verify).
    server_ca: Ca,
}

impl Mesh {
    fn new() -> Mesh {
        let root = Ca::root("Mesh Root CA");
        let inter = root.intermediate("Mesh Intermediate CA (cacerts)");
        Mesh {
            root,
            inter,
            server_ca: Ca::root("Gateway Server CA"),
        }
    }

    /// A workload certificate as Istio issues it: empty subject, one SPIFFE URI SAN,
    /// clientAuth + serverAuth, issued by the intermediate.
    fn workload(&self, spiffe: &str) -> Leaf {
        workload_from(&self.inter, spiffe)
    }

    /// An mTLS client presenting `leaf` with the intermediate.
    fn client(&self, leaf: &Leaf) -> reqwest::Client {
        self.client_sending(leaf, &chain_of(leaf, &self.inter))
    }

    /// An mTLS client presenting exactly `chain_pem` (leaf first).
    fn client_sending(&self, leaf: &Leaf, chain_pem: &str) -> reqwest::Client {
        mtls_client(&self.server_ca.cert_pem, chain_pem, &leaf.key_pem)
    }
}

fn workload_from(issuer: &Ca, spiffe: &str) -> Leaf {
    issuer.leaf(
        LeafSpec::client("unused")
            .no_cn()
            .uri(spiffe)
            .eku(Eku::ClientAndServer),
    )
}

/// One XFCC element as a patched Istio proxy writes it for `leaf`: Hash, Cert, Chain
/// (leaf + `inter`, what the client sent), empty Subject, URI.
fn xfcc_element(leaf: &Leaf, inter: &Ca, uri: &str) -> String {
    format!(
        "Hash={};Cert=\"{}\";Chain=\"{}\";Subject=\"\";URI={uri}",
        leaf.fingerprint_hex(),
        leaf.url_encoded_pem(),
        url_encode(&chain_of(leaf, inter)),
    )
}

// === the world: shipped certgate config, upstream, Envoys ===

/// certgate running envoy/istio/certgate.yaml and envoy/istio/roles/, the mesh root in
/// `mesh-ca/root-cert.pem` (where the Kubernetes manifests mount istio-ca-root-cert),
/// and an echo upstream. Fields drop in order: the processes stop before the directory
/// goes.
struct Istio {
    certgate: Certgate,
    upstream: Upstream,
    mesh: Mesh,
    /// certgate's config directory.
    cg: PathBuf,
    dir: Dir,
}

/// One Envoy shaped like an Istio proxy.
struct Proxy {
    port: u16,
    _envoy: Envoy,
}

impl Istio {
    fn start(mesh: Mesh) -> Istio {
        let dir = Dir::new();
        let cg = dir.join("certgate");
        let shipped = repo_root().join("envoy/istio");
        // The shipped file, on ephemeral loopback ports and reloading quickly.
        let mut text =
            std::fs::read_to_string(shipped.join("certgate.yaml")).expect("certgate.yaml");
        for (from, to) in [
            ("listen: 0.0.0.0:9191", "listen: 127.0.0.1:0"),
            ("admin_listen: 0.0.0.0:9192", "admin_listen: 127.0.0.1:0"),
            ("reload: { interval: 30s }", "reload: { interval: 1s }"),
        ] {
            assert_eq!(text.matches(from).count(), 1, "{from:?} in:\n{text}");
            text = text.replace(from, to);
        }
        write_file(&cg, "certgate.yaml", &text);
        let mut roles = 0;
        for entry in std::fs::read_dir(shipped.join("roles")).expect("envoy/istio/roles") {
            let path = entry.expect("role entry").path();
            let name = path.file_name().expect("file name").to_string_lossy();
            let role = std::fs::read_to_string(&path).expect("role file");
            write_file(&cg, &format!("roles/{name}"), &role);
            roles += 1;
        }
        assert!(roles > 0, "no roles in envoy/istio/roles");
        write_file(&cg, "mesh-ca/root-cert.pem", &mesh.root.cert_pem);
        let upstream = Upstream::start();
        let certgate = Certgate::start(&cg.join("certgate.yaml"));
        Istio {
            certgate,
            upstream,
            mesh,
            cg,
            dir,
        }
    }

    /// Starts an Envoy with `shape` whose TLS listener trusts `client_cas` (PEMs).
    fn proxy(&self, name: &str, shape: Shape, client_cas: &[&str]) -> Proxy {
        let envoy_dir = work_dir(&self.dir, name);
        let server = self.mesh.server_ca.leaf(
            LeafSpec::server("localhost")
                .dns("localhost")
                .ip("127.0.0.1"),
        );
        let w = |file: &str, pem: &str| write_file(&envoy_dir, file, pem).display().to_string();
        let (port, admin) = (free_port(), free_port());
        let yaml = istio_envoy_yaml(
            shape,
            &[
                ("ADMIN_PORT", admin.to_string()),
                ("LISTEN_PORT", port.to_string()),
                ("CERTGATE_PORT", self.certgate.port().to_string()),
                ("UPSTREAM_PORT", self.upstream.port.to_string()),
                ("SERVER_CERT", w("server.pem", &server.cert_pem)),
                ("SERVER_KEY", w("server.key", &server.key_pem)),
                ("CLIENT_CA", w("client-ca.pem", &bundle(client_cas))),
            ],
        );
        Proxy {
            port,
            _envoy: Envoy::start(&yaml, admin, &envoy_dir),
        }
    }

    /// GET that must be allowed; returns the upstream's echo.
    async fn allow(&self, http: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> String {
        let (status, body) = get(http, url, headers).await;
        assert_eq!(
            status,
            200,
            "expected allow: {body}\n--- certgate log ---\n{}",
            self.certgate.log_text()
        );
        assert_eq!(
            echoed_header(&body, "x-certgate-role").as_deref(),
            Some(PROD_ROLE),
            "{body}"
        );
        body
    }

    /// GET that must be denied by certgate with `reason`; the upstream must not see it.
    async fn deny(
        &self,
        http: &reqwest::Client,
        url: &str,
        headers: &[(&str, &str)],
        reason: &str,
    ) {
        let before = self.upstream.requests();
        let (status, body) = get(http, url, headers).await;
        assert_eq!(
            (status, deny_reason(&body).as_str()),
            (403, reason),
            "body {body:?}\n--- certgate log ---\n{}",
            self.certgate.log_text()
        );
        assert_eq!(
            self.upstream.requests(),
            before,
            "a denied request reached the upstream"
        );
    }
}

/// Polls `f` until it returns true or `timeout` passes.
async fn eventually(timeout: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

// === tests ===

/// The ingress gateway with envoy/istio/gateway-xfcc.yaml: SANITIZE_SET with Cert and
/// Chain. Roles trust only the mesh root; the intermediate comes from `Chain`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_with_chain_envoyfilter_authorizes_by_spiffe_identity_and_drops_forged_xfcc() {
    let world = Istio::start(Mesh::new());
    let mesh = &world.mesh;
    let prod = mesh.workload(PROD_WEB);
    let other = mesh.workload(OTHER_WEB);
    let gw = world.proxy("gateway", GATEWAY_PATCHED, &[&mesh.root.cert_pem]);
    let url = https_url(gw.port, "/api/orders");

    // (a) A prod workload passes; the upstream gets its identity.
    let body = world.allow(&mesh.client(&prod), &url, &[]).await;
    for (header, want) in [
        ("x-certgate-uri-sans", PROD_WEB),
        ("x-certgate-sub", PROD_WEB),
        ("x-certgate-policies", "prod"),
        ("x-certgate-serial", prod.serial_hex().as_str()),
    ] {
        assert_eq!(
            echoed_header(&body, header).as_deref(),
            Some(want),
            "{header}: {body}"
        );
    }
    assert_eq!(echoed_header(&body, "x-certgate-subject"), None, "{body}");
    // What certgate read: the one element the gateway wrote, with Cert and Chain.
    let xfcc = echoed_header(&body, "x-forwarded-client-cert").expect("XFCC upstream");
    assert!(
        xfcc.starts_with(&format!("Hash={};Cert=\"", prod.fingerprint_hex()))
            && xfcc.contains(";Chain=\"")
            && xfcc.contains(&format!("URI={PROD_WEB}"))
            && !xfcc.contains(','),
        "{xfcc}"
    );

    // (b) Another namespace's workload: the mesh root trusts it, the role does not.
    world
        .deny(&mesh.client(&other), &url, &[], "uri_san_not_allowed")
        .await;

    // (c) `other` sends an XFCC naming prod's real certificate, vouched for by a forged
    // gateway hop. Passed through, certgate would believe it (see the end of this test);
    // SANITIZE_SET replaces it, and `other` is judged by its own certificate.
    let forged = format!(
        "{},Hash={};URI={GATEWAY_SA}",
        xfcc_element(&prod, &mesh.inter, PROD_WEB),
        other.fingerprint_hex()
    );
    let forged_headers = [("x-forwarded-client-cert", forged.as_str())];
    world
        .deny(
            &mesh.client(&other),
            &url,
            &forged_headers,
            "uri_san_not_allowed",
        )
        .await;

    // An allowed client's forged XFCC and identity headers never reach the upstream.
    let body = world
        .allow(
            &mesh.client(&prod),
            &url,
            &[
                (
                    "x-forwarded-client-cert",
                    "By=spiffe://forged;URI=spiffe://forged",
                ),
                ("x-certgate-role", "admins"),
                ("x-certgate-sub", "root"),
            ],
        )
        .await;
    assert!(!body.contains("forged"), "{body}");
    assert_eq!(
        echoed_header(&body, "x-certgate-sub").as_deref(),
        Some(PROD_WEB)
    );

    // (d) A certificate from another root, even with a prod SPIFFE ID, and no
    // certificate at all: the gateway's TLS refuses both before certgate is asked.
    let rogue_root = Ca::root("Rogue Root");
    let rogue_inter = rogue_root.intermediate("Rogue Issuing CA");
    let rogue = workload_from(&rogue_inter, PROD_WEB);
    let before = world.upstream.requests();
    let rogue_client = mesh.client_sending(&rogue, &chain_of(&rogue, &rogue_inter));
    for (who, http) in [
        ("rogue-root client", rogue_client),
        (
            "client without a certificate",
            no_cert_client(&mesh.server_ca.cert_pem),
        ),
    ] {
        if let Ok(reply) = try_get(&http, &url, &[]).await {
            panic!(
                "{who}: expected a TLS failure, got {} {}",
                reply.status, reply.body
            );
        }
    }
    assert_eq!(world.upstream.requests(), before);

    // The forgery in (c) is real: a gateway that forwards client XFCC (FORWARD_ONLY, never
    // with `envoy_sets: true`) lets `other` in as prod. This is why the shipped config
    // pins SANITIZE_SET.
    let leaky = world.proxy(
        "gateway-forward-only",
        Shape {
            forward: "FORWARD_ONLY",
            ..GATEWAY_PATCHED
        },
        &[&mesh.root.cert_pem],
    );
    let body = world
        .allow(
            &mesh.client(&other),
            &https_url(leaky.port, "/api/orders"),
            &forged_headers,
        )
        .await;
    assert_eq!(
        echoed_header(&body, "x-certgate-uri-sans").as_deref(),
        Some(PROD_WEB)
    );
}

/// Istio's stock gateway writes Cert but no Chain. A leaf from the plugged-in
/// intermediate then has no path to a root-only role; a leaf issued by the root itself
/// (istiod's self-signed CA) does. Adding the intermediate to the role bundle fixes it
/// without touching Istio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_gateway_sends_no_chain_so_the_role_bundle_needs_the_intermediate() {
    let world = Istio::start(Mesh::new());
    let mesh = &world.mesh;
    let prod = mesh.workload(PROD_WEB);
    let prod_by_root = workload_from(&mesh.root, PROD_BATCH);
    // The gateway credential's ca.crt also admits a partner CA at the TLS level.
    let partner_root = Ca::root("Partner Root");
    let partner_inter = partner_root.intermediate("Partner Issuing CA");
    let partner = workload_from(&partner_inter, PROD_WEB);
    let partner_client = mesh.client_sending(&partner, &chain_of(&partner, &partner_inter));
    let gw = world.proxy(
        "gateway-stock",
        GATEWAY_STOCK,
        &[&mesh.root.cert_pem, &partner_root.cert_pem],
    );
    let url = https_url(gw.port, "/");

    world
        .deny(&mesh.client(&prod), &url, &[], "untrusted_issuer")
        .await;
    let body = world
        .allow(
            &mesh.client_sending(&prod_by_root, &prod_by_root.cert_pem),
            &url,
            &[],
        )
        .await;
    assert_eq!(
        echoed_header(&body, "x-certgate-uri-sans").as_deref(),
        Some(PROD_BATCH)
    );
    let xfcc = echoed_header(&body, "x-forwarded-client-cert").expect("XFCC upstream");
    assert!(
        xfcc.contains(";Cert=\"") && !xfcc.contains("Chain="),
        "{xfcc}"
    );
    // Envoy admits the partner; certgate's role trusts the mesh root only.
    world
        .deny(&partner_client, &url, &[], "untrusted_issuer")
        .await;

    // The fix from roles/prod-workloads.yaml's comment: root + intermediate.
    write_file(
        &world.cg,
        "mesh-ca/ca-bundle.pem",
        &bundle(&[&mesh.root.cert_pem, &mesh.inter.cert_pem]),
    );
    let role_path = world.cg.join("roles/prod-workloads.yaml");
    let role = std::fs::read_to_string(&role_path).expect("role");
    let line = "certificate_file: ../mesh-ca/root-cert.pem";
    assert_eq!(role.matches(line).count(), 1, "{role}");
    write_atomically(
        &role_path,
        &role.replace(line, "certificate_file: ../mesh-ca/ca-bundle.pem"),
    );
    let prod_client = mesh.client(&prod);
    let fixed = eventually(Duration::from_secs(15), async || {
        get(&prod_client, &url, &[]).await.0 == 200
    })
    .await;
    assert!(fixed, "the role with the intermediate never took effect");
    world.allow(&prod_client, &url, &[]).await;
    world
        .deny(&partner_client, &url, &[], "untrusted_issuer")
        .await;
}

/// A workload's sidecar (APPEND_FORWARD). Stock, it writes no Cert and certgate has
/// nothing to verify. Patched, certgate judges the calling workload, believes a
/// client-written element only when the gateway's identity added it, and ignores what
/// any other caller writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_judges_the_caller_and_believes_only_the_gateway_hop() {
    let world = Istio::start(Mesh::new());
    let mesh = &world.mesh;
    let prod = mesh.workload(PROD_WEB);
    let other = mesh.workload(OTHER_WEB);
    let gateway = mesh.workload(GATEWAY_SA);
    let stock = world.proxy("sidecar-stock", SIDECAR_STOCK, &[&mesh.root.cert_pem]);
    let sidecar = world.proxy("sidecar", SIDECAR_PATCHED, &[&mesh.root.cert_pem]);
    let url = https_url(sidecar.port, "/ledger");

    // Stock sidecar: XFCC carries URI and Subject but no Cert.
    world
        .deny(
            &mesh.client(&prod),
            &https_url(stock.port, "/ledger"),
            &[],
            "no_client_certificate",
        )
        .await;

    // Patched: the calling workload is judged.
    let body = world.allow(&mesh.client(&prod), &url, &[]).await;
    assert_eq!(
        echoed_header(&body, "x-certgate-uri-sans").as_deref(),
        Some(PROD_WEB)
    );
    world
        .deny(&mesh.client(&other), &url, &[], "uri_san_not_allowed")
        .await;

    // APPEND_FORWARD keeps what `other` writes, left of its own element; `other` is no
    // trusted hop, so its claims are ignored: a prod element, or a prod element behind a
    // forged gateway hop.
    let prod_element = xfcc_element(&prod, &mesh.inter, PROD_WEB);
    let via_forged_gateway = format!(
        "{prod_element},{}",
        xfcc_element(&gateway, &mesh.inter, GATEWAY_SA)
    );
    for forged in [prod_element.as_str(), via_forged_gateway.as_str()] {
        world
            .deny(
                &mesh.client(&other),
                &url,
                &[("x-forwarded-client-cert", forged)],
                "uri_san_not_allowed",
            )
            .await;
    }

    // The gateway (its identity is in trusted_proxies) forwards a request with the element
    // it wrote for its client: the client is judged, not the gateway.
    let body = world
        .allow(
            &mesh.client(&gateway),
            &url,
            &[("x-forwarded-client-cert", prod_element.as_str())],
        )
        .await;
    assert_eq!(
        echoed_header(&body, "x-certgate-sub").as_deref(),
        Some(PROD_WEB)
    );
    let other_element = xfcc_element(&other, &mesh.inter, OTHER_WEB);
    world
        .deny(
            &mesh.client(&gateway),
            &url,
            &[("x-forwarded-client-cert", other_element.as_str())],
            "uri_san_not_allowed",
        )
        .await;
    // Without a client element the gateway is the client, and no role admits it.
    world
        .deny(&mesh.client(&gateway), &url, &[], "uri_san_not_allowed")
        .await;

    // PERMISSIVE mTLS: a caller without a certificate gets through TLS. Its XFCC, even a
    // complete prod element behind a gateway hop, is dropped by Envoy (no mTLS, nothing
    // to append to), so certgate sees no certificate at all.
    let permissive = world.proxy(
        "sidecar-permissive",
        Shape {
            client_cert_required: false,
            ..SIDECAR_PATCHED
        },
        &[&mesh.root.cert_pem],
    );
    let anonymous = no_cert_client(&mesh.server_ca.cert_pem);
    world
        .deny(
            &anonymous,
            &https_url(permissive.port, "/ledger"),
            &[("x-forwarded-client-cert", via_forged_gateway.as_str())],
            "no_client_certificate",
        )
        .await;
}

/// The Istio resources in envoy/istio/ configure what the tests above run.
#[test]
fn shipped_istio_resources_match_the_tested_shapes() {
    let dir = repo_root().join("envoy/istio");
    let docs = |name: &str| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(dir.join(name)).expect(name);
        serde_saphyr::from_multiple::<serde_json::Value>(&text)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .into_iter()
            .filter(|d| !d.is_null())
            .collect()
    };

    // The provider: gRPC to certgate:9191, 8 s, fail closed; gateways sanitize XFCC.
    let mesh = &docs("meshconfig.yaml")[0]["spec"]["meshConfig"];
    let provider = mesh["extensionProviders"]
        .as_array()
        .expect("extensionProviders")
        .iter()
        .find(|p| p["name"] == "certgate")
        .expect("provider certgate");
    let grpc = &provider["envoyExtAuthzGrpc"];
    assert_eq!(grpc["port"], 9191);
    assert_eq!(grpc["timeout"], "8s");
    assert_eq!(grpc["failOpen"], false);
    assert_eq!(
        mesh["defaultConfig"]["gatewayTopology"]["forwardClientCertDetails"],
        GATEWAY_STOCK.forward
    );

    // Policies: CUSTOM, provider certgate, a rule matching everything.
    let policies = docs("authorization-policy.yaml");
    assert_eq!(policies.len(), 2);
    for p in &policies {
        assert_eq!(p["kind"], "AuthorizationPolicy");
        assert_eq!(p["spec"]["action"], "CUSTOM");
        assert_eq!(p["spec"]["provider"]["name"], "certgate");
        assert_eq!(p["spec"]["rules"], serde_json::json!([{}]));
    }

    // The EnvoyFilters turn the stock shapes into the patched ones.
    let patched = |file: &str, context: &str| -> (String, bool, bool) {
        let filter = docs(file)
            .into_iter()
            .find(|d| d["kind"] == "EnvoyFilter")
            .unwrap_or_else(|| panic!("{file}: no EnvoyFilter"));
        let cp = &filter["spec"]["configPatches"][0];
        assert_eq!(cp["match"]["context"], context, "{file}");
        assert_eq!(cp["patch"]["operation"], "MERGE", "{file}");
        let hcm = &cp["patch"]["value"]["typed_config"];
        let set = &hcm["set_current_client_cert_details"];
        (
            hcm["forward_client_cert_details"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            set["cert"] == true,
            set["chain"] == true,
        )
    };
    let expect = |s: Shape| (s.forward.to_string(), s.cert, s.chain);
    assert_eq!(
        patched("gateway-xfcc.yaml", "GATEWAY"),
        expect(GATEWAY_PATCHED)
    );
    assert_eq!(
        patched("sidecar-xfcc.yaml", "SIDECAR_INBOUND"),
        expect(SIDECAR_PATCHED)
    );

    // certgate reads XFCC only and believes the proxy's own element.
    let cg = &docs("certgate.yaml")[0];
    assert_eq!(cg["certificate_sources"], serde_json::json!(["xfcc"]));
    assert_eq!(cg["xfcc"]["envoy_sets"], true);
    assert_eq!(cg["trusted_proxies"], serde_json::json!([GATEWAY_SA]));

    // The template is Istio's ext_authz: no peer certificate, no per-route roles.
    let template = std::fs::read_to_string(envoy_template("istio-shaped.yaml")).expect("template");
    let active: String = template
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    for absent in [
        "include_peer_certificate",
        "context_extensions",
        "certgate_roles",
    ] {
        assert!(!active.contains(absent), "istio-shaped.yaml sets {absent}");
    }
}

/// Writes through a temporary file and a rename, as the kubelet and editors do.
fn write_atomically(path: &Path, contents: &str) {
    let tmp = path.with_extension("yaml.tmp~");
    std::fs::write(&tmp, contents).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}
