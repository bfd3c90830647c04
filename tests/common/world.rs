//! The engine suites' world: a config directory (`certgate.yaml`, `roles/`, `crls/`)
//! loaded and compiled exactly as the server does, requests decided with an injected
//! clock, and assertions on the decision (`allowed`, `assert_deny!`).
//!
//! Shared by `engine_roles.rs`, `engine_chain.rs` and `engine_revocation.rs`:
//! `use common::world::*;` brings in the helpers and the macro.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use certgate::config::ConfigError;
use certgate::engine::{AuthRequest, Decision, Grant, decide};
use certgate::snapshot::Snapshot;
use certgate::source::{CertOrigin, Presented};

use super::pki::{Dir, Leaf, bundle, url_encode};

/// A config directory: `certgate.yaml`, `roles/` and `crls/`.
pub struct World {
    dir: Dir,
    global: String,
}

impl World {
    pub fn new() -> World {
        World::with_global("")
    }

    /// `extra` is appended to `certgate.yaml` (global settings).
    pub fn with_global(extra: &str) -> World {
        let dir = Dir::new();
        std::fs::create_dir_all(dir.join("roles")).expect("roles dir");
        std::fs::create_dir_all(dir.join("crls")).expect("crls dir");
        World {
            dir,
            global: extra.to_string(),
        }
    }

    /// Writes `roles/<name>.yaml`: `certificate` holds `certs` as a PEM bundle, followed
    /// by `extra` (YAML; each line's leading whitespace is dropped, so write block lists
    /// at the key's indentation or use flow lists).
    pub fn role(&self, name: &str, certs: &[&str], extra: &str) -> &World {
        let mut text = String::from("certificate: |\n");
        for line in bundle(certs).lines() {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
        for line in extra.lines() {
            text.push_str(line.trim_start());
            text.push('\n');
        }
        self.dir.write(&format!("roles/{name}.yaml"), text);
        self
    }

    /// Writes any file under the directory.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> &World {
        self.dir.write(rel, contents);
        self
    }

    pub fn load(&self) -> Result<Snapshot, Vec<ConfigError>> {
        let path = self.dir.write(
            "certgate.yaml",
            format!("roles_dir: roles\ncrls_dir: crls\n{}\n", self.global),
        );
        let loaded = certgate::config::load(Some(&path))?;
        Snapshot::compile(loaded, 1)
    }

    pub fn snapshot(&self) -> Snapshot {
        self.load().unwrap_or_else(|errors| {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("config rejected:\n{}", text.join("\n"))
        })
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// What Envoy sends: the URL-encoded leaf, and optionally intermediates.
pub fn presented(leaf_pem: &str, chain: &[&str]) -> Presented<'static> {
    Presented {
        leaf: Cow::Owned(url_encode(leaf_pem)),
        chain: (!chain.is_empty()).then(|| Cow::Owned(url_encode(&bundle(chain)))),
        origin: CertOrigin::Peer,
        xfcc_ignored: false,
    }
}

/// One request's context beyond the certificate.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub roles: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub now: i64,
}

impl Default for Ctx<'_> {
    fn default() -> Self {
        Ctx {
            roles: None,
            ip: None,
            origin: None,
            now: unix_now(),
        }
    }
}

pub fn decide_with(snapshot: &Snapshot, p: &Presented<'_>, ctx: Ctx<'_>) -> Decision {
    let client_ip: Option<IpAddr> = ctx.ip.map(|ip| ip.parse().expect("IP"));
    decide(
        snapshot,
        &AuthRequest {
            presented: p,
            roles: ctx.roles,
            client_ip,
            origin: ctx.origin,
            now: ctx.now,
            live: None,
        },
    )
}

/// The leaf alone, all roles, now.
pub fn check(snapshot: &Snapshot, leaf: &Leaf) -> Decision {
    decide_with(snapshot, &presented(&leaf.cert_pem, &[]), Ctx::default())
}

/// The leaf alone against the named roles, now.
pub fn check_roles(snapshot: &Snapshot, leaf: &Leaf, roles: &str) -> Decision {
    let ctx = Ctx {
        roles: Some(roles),
        ..Ctx::default()
    };
    decide_with(snapshot, &presented(&leaf.cert_pem, &[]), ctx)
}

/// Asserts an allow by `role` and returns the grant.
#[track_caller]
pub fn allowed<'d>(decision: &'d Decision, role: &str) -> &'d Grant {
    match decision {
        Decision::Allow(grant) => {
            assert_eq!(&*grant.role.name, role, "allowed by the wrong role");
            grant
        }
        Decision::Deny(denial) => panic!(
            "expected allow by {role}, got deny {:?}; verdicts {:?}",
            denial.reason, denial.verdicts
        ),
    }
}

/// Asserts a deny whose reported reason matches the pattern. The pattern is written at
/// the call site, so that file imports whatever it names (usually `Reason`).
///
/// The allows are for the test crates that `mod common;` without asserting on denials
/// (`mod.rs`'s `dead_code` allow covers neither lint).
#[allow(unused_macros)]
macro_rules! assert_deny {
    ($decision:expr, $pattern:pat) => {
        assert_deny!($decision, $pattern if true)
    };
    ($decision:expr, $pattern:pat if $guard:expr) => {
        match &$decision {
            ::certgate::engine::Decision::Deny(denial) => assert!(
                matches!(&denial.reason, $pattern if $guard),
                "expected deny {}, got {:?}; verdicts {:?}",
                stringify!($pattern),
                denial.reason,
                denial.verdicts
            ),
            ::certgate::engine::Decision::Allow(grant) => panic!(
                "expected deny {}, got allow by role {}",
                stringify!($pattern),
                grant.role.name
            ),
        }
    };
}
#[allow(unused_imports)] // path-based import: `use common::world::*;` or `::assert_deny`
pub(crate) use assert_deny;
