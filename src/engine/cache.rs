//! The verified-chain cache: presented certificate bytes → the parsed client
//! certificate and, per role, the outcome of path building and revocation.
//!
//! Keys are the exact strings Envoy sent (leaf, plus the XFCC chain when there is one):
//! moka hashes them with a keyed hash and compares them in full, so no crafted input
//! can collide with a cached entry. A hit skips URL-decoding, parsing and path building.
//! The cache belongs to one [`crate::snapshot::Snapshot`]: a reload starts a new one.
//! Outcomes that depend on time are stored with their validity window and recomputed
//! outside it; expiry failures are never stored.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use crate::pki::cert::ParsedCert;
use crate::pki::pem::decode_certificates;
use crate::revocation::CrlStatus;
use crate::revocation::OcspQuestion;
use crate::snapshot::CacheCounters;
use crate::source::Presented;

use super::Reason;

/// A presented client certificate, parsed, with per-role chain outcomes filled lazily.
#[derive(Debug)]
pub struct ClientCert {
    /// The leaf.
    pub leaf: ParsedCert,
    /// Intermediates the client presented (XFCC `Chain`, minus the leaf).
    pub intermediates: Vec<CertificateDer<'static>>,
    /// `uri_sans` joined with `,`, ready for the header.
    pub uri_sans_joined: String,
    /// `dns_sans` joined with `,`, ready for the header.
    pub dns_sans_joined: String,
    /// Per role index of the snapshot: the chain outcome once computed, with the
    /// generation of the fetched CRLs it was computed against.
    chains: Box<[arc_swap::ArcSwapOption<Stored>]>,
}

/// A stored chain outcome.
#[derive(Debug)]
struct Stored {
    crl_generation: u64,
    outcome: ChainOutcome,
}

/// What path building and revocation said for one role.
pub type ChainOutcome = Result<Arc<RoleChain>, Reason>;

/// A chain that verified for a role.
#[derive(Debug)]
pub struct RoleChain {
    /// The chain is usable from then on (Unix seconds).
    pub not_before: i64,
    /// The chain is usable until then (Unix seconds).
    pub not_after: i64,
    /// What the CRLs said about the leaf on the accepted path.
    pub leaf_crl: CrlStatus,
    /// The leaf's issuer (None for a pinned leaf whose issuer no role names).
    pub issuer_der: Option<Vec<u8>>,
    /// For roles with `ocsp_enabled`: what to ask which responders, or why nothing can
    /// be asked (no issuer known, no responder).
    pub ocsp: Option<Result<Arc<OcspQuestion>, String>>,
}

impl ClientCert {
    /// Decodes and parses what the client presented.
    pub fn parse(presented: &Presented<'_>, roles: usize) -> Result<ClientCert, Reason> {
        let malformed = |detail: String| Reason::MalformedCertificate { detail };
        let mut leaf_ders =
            decode_certificates(&presented.leaf).map_err(|e| malformed(e.to_string()))?;
        if leaf_ders.is_empty() {
            return Err(Reason::NoClientCertificate);
        }
        let leaf_der = leaf_ders.swap_remove(0);
        let mut intermediates: Vec<CertificateDer<'static>> = leaf_ders;
        if let Some(chain) = presented.chain.as_deref().filter(|c| !c.is_empty()) {
            let more = decode_certificates(chain).map_err(|e| malformed(format!("chain: {e}")))?;
            intermediates.extend(more);
        }
        intermediates.retain(|c| c != &leaf_der);
        intermediates.dedup();
        let leaf = ParsedCert::from_der(leaf_der).map_err(malformed)?;
        Ok(ClientCert {
            uri_sans_joined: leaf.uri_sans.join(","),
            dns_sans_joined: leaf.dns_sans.join(","),
            leaf,
            intermediates,
            chains: (0..roles)
                .map(|_| arc_swap::ArcSwapOption::empty())
                .collect(),
        })
    }

    /// The chain outcome for role `index` at `now` against fetched CRLs of
    /// `crl_generation`: the stored one when it still holds, else `compute()`, which also
    /// says whether its outcome may be stored (not when it lacked a list it asked for).
    /// Time-dependent failures are never stored.
    pub fn chain_for(
        &self,
        index: usize,
        now: i64,
        crl_generation: u64,
        compute: impl FnOnce() -> (ChainOutcome, bool),
    ) -> ChainOutcome {
        let Some(slot) = self.chains.get(index) else {
            return compute().0;
        };
        if let Some(stored) = slot.load().as_deref()
            && stored.crl_generation == crl_generation
        {
            match &stored.outcome {
                Ok(chain) if now >= chain.not_before && now <= chain.not_after => {
                    return Ok(Arc::clone(chain));
                }
                Ok(_) => {}
                Err(reason) => return Err(reason.clone()),
            }
        }
        let (outcome, storable) = compute();
        let time_dependent = matches!(
            outcome,
            Err(Reason::CertificateExpired { .. }
                | Reason::CertificateNotYetValid { .. }
                | Reason::CrlExpired)
        );
        if storable && !time_dependent {
            slot.store(Some(Arc::new(Stored {
                crl_generation,
                outcome: outcome.clone(),
            })));
        }
        outcome
    }
}

/// Presented bytes → parsed client certificate. Bounded; entries expire after `ttl`.
pub struct ChainCache {
    inner: Option<moka::sync::Cache<Box<str>, Arc<ClientCert>>>,
    roles: usize,
    /// Hits and misses, for metrics; the reloader hands each new snapshot's cache the
    /// same counters.
    pub counters: Arc<CacheCounters>,
}

impl std::fmt::Debug for ChainCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainCache")
            .field("entries", &self.inner.as_ref().map(|c| c.entry_count()))
            .finish()
    }
}

impl ChainCache {
    /// A cache of at most `max_entries` presented certificates (0 disables caching).
    pub fn new(max_entries: u64, ttl: Duration, roles: usize) -> ChainCache {
        let inner = (max_entries > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(if ttl.is_zero() {
                    Duration::from_secs(300)
                } else {
                    ttl
                })
                .build()
        });
        ChainCache {
            inner,
            roles,
            counters: Arc::default(),
        }
    }

    /// The parsed client certificate for what was presented, from the cache or parsed
    /// now (concurrent misses for one key parse once).
    pub fn client(&self, presented: &Presented<'_>) -> Result<Arc<ClientCert>, Reason> {
        let Some(cache) = &self.inner else {
            return ClientCert::parse(presented, self.roles).map(Arc::new);
        };
        let joined;
        let key: &str = match presented.chain.as_deref() {
            Some(chain) if !chain.is_empty() => {
                joined = format!("{}\u{0}{}", presented.leaf, chain);
                &joined
            }
            _ => &presented.leaf,
        };
        if let Some(hit) = cache.get(key) {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        cache
            .try_get_with(Box::from(key), || {
                ClientCert::parse(presented, self.roles).map(Arc::new)
            })
            .map_err(|e: Arc<Reason>| (*e).clone())
    }

    /// Entries currently cached (approximate, for metrics and tests).
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| {
            c.run_pending_tasks();
            c.entry_count()
        })
    }

    /// Nothing cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
