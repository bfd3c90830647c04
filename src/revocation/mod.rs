//! Revocation: CRLs indexed per issuer (name and key), checked on every candidate path
//! during chain building so that any clean chain may authenticate (Vault's rule).
//!
//! # How live sources slot in
//!
//! Today every CRL comes from `crls_dir` and lives in the [`CrlIndex`] of one
//! [`crate::snapshot::Snapshot`]; a change is a reload, which starts a new snapshot and
//! with it an empty verified-chain cache. Live sources keep that shape:
//!
//! - CRLs fetched from `crl_urls` or distribution points are parsed into the same
//!   [`CrlEntry`] (signature checked against the issuer's key, serials in a hash set)
//!   and published as a new index: either through the reloader (recompile with the
//!   fetched lists held beside the files) or through an `ArcSwap<CrlIndex>` with its own
//!   generation that cached chain outcomes record and compare. Cached outcomes already
//!   end at the earliest nextUpdate of the CRLs they consulted.
//! - OCSP is a per-leaf status the engine asks for at the revocation step (after names
//!   and extensions, as the spec orders), with the leaf's issuer from the verified
//!   chain ([`crate::engine::cache::RoleChain::issuer_der`]); responses are cached by
//!   CertID outside the snapshot, since they outlive reloads.

pub mod crl;
pub mod http;
pub mod live;
pub mod ocsp;

use std::sync::Arc;

pub use crl::{CrlEntry, CrlIndex, CrlStatus};
pub use live::{LiveRevocation, RevocationCounters};

use crate::snapshot::OcspRole;
use ocsp::{OcspAnswer, OcspTarget};

/// What the engine may consult beyond its snapshot during one decision: CRLs fetched
/// from URLs and distribution points, and OCSP answers. Implementations answer from
/// memory only and record what the decision would have liked to know; the caller
/// fetches that (bounded in time, one fetch per URL or CertID however many requests
/// want it) and decides again. The engine stays a pure function of what it is given.
pub trait LiveView: std::fmt::Debug {
    /// CRLs fetched so far.
    fn fetched_crls(&self) -> &CrlIndex;
    /// Changes whenever the fetched CRLs do; cached chain outcomes record it.
    fn crl_generation(&self) -> u64;
    /// Whether fetching the CRL at distribution point `url` has been tried (it may have
    /// failed). `false` records that this decision wants it.
    fn distribution_point_known(&self, url: &str) -> bool;
    /// What is known of `question`'s certificate at `responder` (one of the
    /// question's) under the role's OCSP settings.
    fn ocsp(
        &self,
        question: &OcspQuestion,
        responder: &OcspResponder,
        role: &OcspRole,
        now: i64,
    ) -> OcspLookup;
}

/// The OCSP cache key: SHA-256 over the CertID, the responder and the role's responder
/// anchors (a verdict checked under one role's anchors is not another's).
pub type OcspKey = [u8; 32];

/// What a role with `ocsp_enabled` asks about one leaf: its CertID and the responders
/// with their cache keys. Built once per verified chain and cached with it, so a
/// request only looks answers up.
#[derive(Debug)]
pub struct OcspQuestion {
    pub target: Arc<OcspTarget>,
    /// In the order they are asked.
    pub responders: Vec<OcspResponder>,
}

/// One responder of an [`OcspQuestion`].
#[derive(Debug)]
pub struct OcspResponder {
    pub url: Arc<str>,
    pub key: OcspKey,
}

impl OcspQuestion {
    /// The question for `target` to `urls` under `role`'s responder anchors.
    pub fn new<'u>(
        target: OcspTarget,
        urls: impl IntoIterator<Item = &'u str>,
        role: &OcspRole,
    ) -> OcspQuestion {
        let responders = urls
            .into_iter()
            .map(|url| OcspResponder {
                key: ocsp_key(&target, url, role),
                url: Arc::from(url),
            })
            .collect();
        OcspQuestion {
            target: Arc::new(target),
            responders,
        }
    }
}

fn ocsp_key(target: &OcspTarget, responder: &str, role: &OcspRole) -> OcspKey {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&(target.cert_id_der.len() as u64).to_be_bytes());
    ctx.update(&target.cert_id_der);
    ctx.update(&(responder.len() as u64).to_be_bytes());
    ctx.update(responder.as_bytes());
    for anchor in &role.ca_certificates {
        ctx.update(&anchor.fingerprint);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// One responder's state for one certificate.
#[derive(Debug, Clone)]
pub enum OcspLookup {
    /// A verified answer, current at the time asked (good, revoked or unknown).
    Answer(Arc<OcspAnswer>),
    /// No usable answer. `hard`: the response failed its signature check, which denies
    /// even with `ocsp_fail_open`.
    Failed { hard: bool, detail: String },
    /// Not asked yet (recorded as wanted).
    Pending,
}
