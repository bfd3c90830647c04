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

pub use crl::{CrlEntry, CrlIndex, CrlStatus};
