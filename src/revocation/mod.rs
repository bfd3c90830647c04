//! Revocation: CRLs indexed per issuer (name and key), checked on every candidate path
//! during chain building so that any clean chain may authenticate (Vault's rule).
//!
//! Live sources (CRL URLs, distribution points, OCSP) plug in here: they produce
//! [`crl::CrlEntry`] values for the same index, or a per-leaf status the engine asks for.

pub mod crl;

pub use crl::{CrlEntry, CrlIndex, CrlStatus};
