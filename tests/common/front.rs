//! The front-proxy setup end-to-end tests share: Envoy (envoy/front-proxy.yaml) in front
//! of the real certgate binary and an echo upstream, with a generated PKI.

use super::envoy::*;
use super::pki::*;

/// A role file whose `certificate` is `pem`, followed by `rest` (YAML lines).
pub fn role_yaml(pem: &str, rest: &str) -> String {
    let indented: String = pem.trim().lines().map(|l| format!("  {l}\n")).collect();
    format!("certificate: |\n{indented}{rest}\n")
}

/// A fresh directory for one Envoy's config and log.
pub fn work_dir(dir: &Dir, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).expect("create Envoy dir");
    path
}

/// Client certificate chain as the client sends it: leaf then intermediate.
pub fn chain_of(leaf: &Leaf, inter: &Ca) -> String {
    bundle(&[&leaf.cert_pem, &inter.cert_pem])
}

pub struct Front {
    pub _dir: Dir,
    pub _upstream: Upstream,
    pub _certgate: Certgate,
    pub _envoy: Envoy,
    pub port: u16,
    pub server_ca: Ca,
    pub root: Ca,
    pub inter: Ca,
    pub roles_dir: std::path::PathBuf,
}

/// Envoy front proxy (envoy/front-proxy.yaml) → certgate → echo upstream.
pub fn front_proxy(roles: &[(&str, String)], revoked: &[&[u8]], inter: Ca, root: Ca) -> Front {
    front_proxy_with(roles, revoked, inter, root, "")
}

/// Like [`front_proxy`], with `global_extra` (YAML lines) appended to certgate.yaml.
pub fn front_proxy_with(
    roles: &[(&str, String)],
    revoked: &[&[u8]],
    inter: Ca,
    root: Ca,
    global_extra: &str,
) -> Front {
    let dir = Dir::new();
    let server_ca = Ca::root("Envoy Server CA");
    let server = server_ca.leaf(
        LeafSpec::server("localhost")
            .dns("localhost")
            .ip("127.0.0.1"),
    );
    let server_cert = dir.write("tls/server.pem", &server.cert_pem);
    let server_key = dir.write("tls/server.key", &server.key_pem);
    let client_ca = dir.write("tls/client-ca.pem", &root.cert_pem);
    for (name, yaml) in roles {
        dir.write(&format!("cg/roles/{name}.yaml"), yaml);
    }
    if !revoked.is_empty() {
        dir.write(
            "cg/crls/inter.pem",
            inter.crl(revoked, time::Duration::days(1)).pem,
        );
    }
    let config = dir.write(
        "cg/certgate.yaml",
        format!("listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nroles_dir: roles\ncrls_dir: crls\nxfcc: {{ envoy_sets: true }}\nreload: {{ interval: 1s }}\nlog: {{ level: info }}\n{global_extra}\n"),
    );
    let upstream = Upstream::start();
    let certgate = Certgate::start(&config);
    let port = free_port();
    let admin = free_port();
    let yaml = render(
        &envoy_template("front-proxy.yaml"),
        &[
            ("ADMIN_PORT", admin.to_string()),
            ("LISTEN_PORT", port.to_string()),
            ("CERTGATE_PORT", certgate.port().to_string()),
            ("UPSTREAM_PORT", upstream.port.to_string()),
            ("SERVER_CERT", server_cert.display().to_string()),
            ("SERVER_KEY", server_key.display().to_string()),
            ("CLIENT_CA", client_ca.display().to_string()),
        ],
    );
    let envoy = Envoy::start(&yaml, admin, &work_dir(&dir, "envoy"));
    let roles_dir = dir.join("cg/roles");
    Front {
        _dir: dir,
        _upstream: upstream,
        _certgate: certgate,
        _envoy: envoy,
        port,
        server_ca,
        root,
        inter,
        roles_dir,
    }
}

impl Front {
    /// certgate's admin HTTP address (/metrics, /healthz, /readyz).
    pub fn admin_addr(&self) -> std::net::SocketAddr {
        self._certgate
            .admin_addr
            .expect("certgate announced its admin_addr")
    }

    /// A path inside certgate's config directory (`cg/`).
    pub fn certgate_path(&self, rel: &str) -> std::path::PathBuf {
        self._dir.join("cg").join(rel)
    }

    pub fn client(&self, leaf: &Leaf) -> reqwest::Client {
        mtls_client(
            &self.server_ca.cert_pem,
            &chain_of(leaf, &self.inter),
            &leaf.key_pem,
        )
    }
}

pub fn echoed_header(body: &str, name: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["headers"][name].as_str().map(String::from)
}

pub fn deny_reason(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["reason"].as_str().map(String::from))
        .unwrap_or_else(|| format!("<not a certgate denial: {body:?}>"))
}
