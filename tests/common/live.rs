//! The live-revocation suites' harness: a compiled [`World`] with a [`LiveRevocation`]
//! started for it inside the test's Tokio runtime, requests decided through
//! `LiveRevocation::decide` exactly as the ext_authz service does, and assertions on
//! reason codes. Shared by `revocation_crl_live.rs` and `revocation_ocsp_live.rs`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certgate::engine::{AuthRequest, Decision};
use certgate::revocation::LiveRevocation;
use certgate::revocation::live::CrlSourceReport;
use certgate::snapshot::Snapshot;
use certgate::source::Presented;

use super::pki::Leaf;
use super::world::{World, presented, unix_now};

/// How long a test waits for something that should happen within a few seconds.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A snapshot and the live revocation started for it.
pub struct Live {
    pub snapshot: Arc<Snapshot>,
    pub live: Arc<LiveRevocation>,
    /// Keeps the config directory for the test's duration.
    pub _world: World,
}

impl Live {
    /// Compiles `world` and starts live revocation for it (within the test's runtime).
    pub fn start(world: World) -> Live {
        let snapshot = Arc::new(world.snapshot());
        let live = LiveRevocation::new(&snapshot);
        Live {
            snapshot,
            live,
            _world: world,
        }
    }

    /// Decides `leaf` (presented alone) against `roles` (a role name, or `None`: every
    /// role), now.
    pub async fn decide<'r>(&self, leaf: &Leaf, roles: impl Into<Option<&'r str>>) -> Decision {
        decide_live(&self.live, &self.snapshot, leaf, roles.into()).await
    }

    /// The decision's code for `leaf` against `roles`.
    pub async fn code<'r>(&self, leaf: &Leaf, roles: impl Into<Option<&'r str>>) -> &'static str {
        code(&self.decide(leaf, roles).await)
    }

    /// The source named `name`; panics with the full listing when absent.
    pub fn source(&self, name: &str) -> CrlSourceReport {
        let sources = self.live.crl_sources();
        sources
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no CRL source {name:?} in {sources:#?}"))
    }

    /// Waits until every `crl_urls` source has finished its first attempt.
    pub async fn first_fetches(&self) {
        self.live.wait_first_fetches(PATIENCE).await;
    }
}

/// What the ext_authz service does for one request: `leaf` presented alone, now.
pub async fn decide_live(
    live: &LiveRevocation,
    snapshot: &Snapshot,
    leaf: &Leaf,
    roles: Option<&str>,
) -> Decision {
    decide_presented(live, snapshot, &presented(&leaf.cert_pem, &[]), roles).await
}

/// What the ext_authz service does for one request, now.
pub async fn decide_presented(
    live: &LiveRevocation,
    snapshot: &Snapshot,
    presented: &Presented<'_>,
    roles: Option<&str>,
) -> Decision {
    live.decide(|view| {
        certgate::engine::decide(
            snapshot,
            &AuthRequest {
                presented,
                roles,
                client_ip: None,
                origin: None,
                now: unix_now(),
                live: Some(view),
            },
        )
    })
    .await
}

/// `"allow"`, or the deny reason's code.
pub fn code(decision: &Decision) -> &'static str {
    decision.reason().map_or("allow", |r| r.code())
}

/// One line: `allow by ROLE`, or the deny reason with its detail.
pub fn describe(decision: &Decision) -> String {
    match decision {
        Decision::Allow(grant) => format!("allow by {}", grant.role.name),
        Decision::Deny(denial) => format!("deny {}", denial.reason),
    }
}

/// Asserts the decision's code, describing the decision when it differs.
#[track_caller]
pub fn assert_code(decision: &Decision, expected: &str) {
    assert_eq!(code(decision), expected, "{}", describe(decision));
}

/// Polls `check` every 100 ms until it holds; panics after [`PATIENCE`] with `what`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
