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
    /// What is known of `target` at `responder` under the role's OCSP settings.
    fn ocsp(
        &self,
        target: &Arc<OcspTarget>,
        responder: &str,
        role: &OcspRole,
        now: i64,
    ) -> OcspLookup;
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
