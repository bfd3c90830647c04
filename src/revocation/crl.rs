//! Certificate revocation lists: parsed and signature-checked once per load, serials
//! in a hash set (O(1) lookups, so a million-entry CRL costs nothing per request).
//!
//! A serial is revoked **for its issuer only**: a CRL applies to a certificate when the
//! CRL's issuer name equals the certificate's issuer name *and* the CRL's signature
//! verifies with the key that signed the certificate. Two CAs that issue the same
//! serial never revoke each other's certificates (the caveat Vault documents).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo};
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::AlgorithmIdentifier;

use crate::pki::cert::{ParsedCert, rfc4514};
use crate::pki::chain::PathCert;
use crate::pki::der::{self, SignedParts, normalize_serial};

/// Signature algorithms refused for CRLs, as for certificates: SHA-1 based ones.
const SHA1_SIGNATURE_OIDS: [&str; 3] = [
    "1.2.840.113549.1.1.5", // sha1WithRSAEncryption
    "1.3.14.3.2.29",        // sha1WithRSASignature (OIW)
    "1.2.840.10045.4.1",    // ecdsa-with-SHA1
];

/// One parsed CRL.
#[derive(Debug)]
pub struct CrlEntry {
    /// Name in listings: the file stem or the configured name.
    pub name: String,
    /// Where it came from: a file path or a URL.
    pub source: String,
    /// Issuer as RFC 4514 text.
    pub issuer: String,
    /// Issuer Name contents (no outer tag), the index key.
    pub issuer_name: Vec<u8>,
    /// Unix seconds.
    pub this_update: i64,
    /// Unix seconds; `None` when the CRL names no next update.
    pub next_update: Option<i64>,
    /// Revoked serials without leading zeros.
    serials: HashSet<Box<[u8]>>,
    /// The DER, kept to verify the signature against an issuer first seen at request time.
    der: Arc<[u8]>,
    /// Where tbs, algorithm and signature are inside `der`.
    parts: SignedParts,
    /// SPKIs (DER) known to have signed this CRL.
    verified_keys: Vec<Vec<u8>>,
    /// The subject of the configured CA that verified the signature, if one did.
    pub verified_by: Option<String>,
}

impl CrlEntry {
    /// Parses a DER CRL. Delta CRLs are refused (their meaning depends on a base CRL).
    pub fn parse(name: &str, source: &str, der: Vec<u8>) -> Result<CrlEntry, String> {
        let parts = der::signed_parts(&der).ok_or("not a DER signed structure")?;
        let (rest, crl) =
            CertificateRevocationList::from_der(&der).map_err(|e| format!("not a CRL: {e}"))?;
        if !rest.is_empty() {
            return Err("trailing bytes after the CRL".into());
        }
        let alg = crl.signature_algorithm.algorithm.to_id_string();
        if SHA1_SIGNATURE_OIDS.contains(&alg.as_str()) {
            return Err(format!("CRL signed with SHA-1 ({alg}), refused"));
        }
        for ext in crl.extensions() {
            if ext.oid.to_id_string() == "2.5.29.27" {
                return Err("delta CRLs are not supported".into());
            }
        }
        let issuer_name = der::sequence_contents(crl.issuer().as_raw())
            .ok_or("malformed CRL issuer name")?
            .to_vec();
        let mut serials = HashSet::with_capacity(crl.tbs_cert_list.revoked_certificates.len());
        for revoked in crl.iter_revoked_certificates() {
            serials.insert(Box::from(normalize_serial(revoked.raw_serial())));
        }
        Ok(CrlEntry {
            name: name.to_string(),
            source: source.to_string(),
            issuer: rfc4514(crl.issuer()),
            issuer_name,
            this_update: crl.last_update().timestamp(),
            next_update: crl.next_update().map(|t| t.timestamp()),
            serials,
            parts,
            der: Arc::from(der.into_boxed_slice()),
            verified_keys: Vec::new(),
            verified_by: None,
        })
    }

    /// Whether `spki_der` (a SubjectPublicKeyInfo with its SEQUENCE) signed this CRL.
    pub fn signed_by(&self, spki_der: &[u8]) -> bool {
        if self.verified_keys.iter().any(|k| k == spki_der) {
            return true;
        }
        let Ok((_, spki)) = SubjectPublicKeyInfo::from_der(spki_der) else {
            return false;
        };
        let (Some(alg_der), Some(sig), Some(tbs)) = (
            self.der.get(self.parts.algorithm.clone()),
            self.der.get(self.parts.signature.clone()),
            self.der.get(self.parts.tbs.clone()),
        ) else {
            return false;
        };
        let Ok((_, alg)) = AlgorithmIdentifier::from_der(alg_der) else {
            return false;
        };
        let Some((&unused_bits, sig_bytes)) = sig.split_first() else {
            return false;
        };
        if unused_bits != 0 {
            return false;
        }
        let bits = x509_parser::der_parser::asn1_rs::BitString::new(0, sig_bytes);
        x509_parser::verify::verify_signature(&spki, &alg, &bits, tbs).is_ok()
    }

    /// Whether `serial` (leading zeros ignored) is listed.
    pub fn contains(&self, serial: &[u8]) -> bool {
        self.serials.contains(normalize_serial(serial))
    }

    /// Number of revoked serials.
    pub fn len(&self) -> usize {
        self.serials.len()
    }

    /// The CRL lists nothing.
    pub fn is_empty(&self) -> bool {
        self.serials.is_empty()
    }

    /// Revoked serials as lower-case hex, sorted (for the read API; not the hot path).
    pub fn serials_hex(&self) -> Vec<String> {
        let mut out: Vec<String> = self.serials.iter().map(hex::encode).collect();
        out.sort();
        out
    }

    /// Past its nextUpdate at `now`.
    pub fn is_stale(&self, now: i64) -> bool {
        self.next_update.is_some_and(|n| now > n)
    }
}

/// What the CRLs say about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlStatus {
    /// A CRL from this certificate's issuer lists it.
    Revoked,
    /// A CRL from this certificate's issuer exists and does not list it; `stale`: that
    /// CRL is past its nextUpdate.
    NotRevoked { stale: bool },
    /// No CRL from this issuer is known.
    NoCrl,
}

/// Every CRL, indexed by issuer name.
#[derive(Debug, Default)]
pub struct CrlIndex {
    by_issuer: HashMap<Vec<u8>, Vec<Arc<CrlEntry>>>,
    entries: Vec<Arc<CrlEntry>>,
}

impl CrlIndex {
    /// Indexes `crls`, verifying each against the configured CA certificates with the
    /// CRL's issuer name. A CRL that such a CA exists for but none verifies is an error
    /// (a forged or misplaced list must not load silently); a CRL whose issuer is not
    /// configured is kept and verified against the real issuer when a path meets it.
    pub fn build(crls: Vec<CrlEntry>, known_cas: &[&ParsedCert]) -> Result<CrlIndex, Vec<String>> {
        let mut errors = Vec::new();
        let mut index = CrlIndex::default();
        for mut crl in crls {
            let candidates: Vec<&&ParsedCert> = known_cas
                .iter()
                .filter(|ca| ca.subject_name == crl.issuer_name)
                .collect();
            let mut seen = HashSet::new();
            for ca in &candidates {
                if seen.insert(ca.spki.clone()) && crl.signed_by(&ca.spki) {
                    crl.verified_keys.push(ca.spki.clone());
                    crl.verified_by.get_or_insert_with(|| ca.subject.clone());
                }
            }
            if !candidates.is_empty() && crl.verified_keys.is_empty() {
                errors.push(format!(
                    "CRL {:?} ({}): signature does not verify with the key of its issuer {}",
                    crl.name, crl.source, crl.issuer
                ));
                continue;
            }
            let crl = Arc::new(crl);
            index
                .by_issuer
                .entry(crl.issuer_name.clone())
                .or_default()
                .push(Arc::clone(&crl));
            index.entries.push(crl);
        }
        if errors.is_empty() {
            Ok(index)
        } else {
            Err(errors)
        }
    }

    /// The status of one certificate of a candidate path, and the earliest future
    /// nextUpdate among the CRLs consulted: a cached verdict must be re-derived then,
    /// when a newer list is due.
    ///
    /// An empty `issuer_spki` means the issuer's key is unknown: no CRL can be verified
    /// as its, so none applies.
    pub fn lookup(&self, cert: &PathCert<'_>, now: i64) -> (CrlStatus, Option<i64>) {
        let crls = match self.by_issuer.get(cert.issuer_name) {
            Some(crls) if !cert.issuer_spki.is_empty() => crls,
            _ => return (CrlStatus::NoCrl, None),
        };
        let mut status = CrlStatus::NoCrl;
        let mut due: Option<i64> = None;
        for crl in crls.iter().filter(|c| c.signed_by(cert.issuer_spki)) {
            if crl.contains(cert.serial) {
                return (CrlStatus::Revoked, None);
            }
            if let Some(next) = crl.next_update.filter(|&n| n >= now) {
                due = Some(due.map_or(next, |d| d.min(next)));
            }
            let stale = crl.is_stale(now);
            status = match status {
                // A fresh list from the issuer outweighs a stale one.
                CrlStatus::NotRevoked { stale: false } => status,
                _ => CrlStatus::NotRevoked { stale },
            };
        }
        (status, due)
    }

    /// Every CRL, in load order.
    pub fn entries(&self) -> &[Arc<CrlEntry>] {
        &self.entries
    }

    /// A CRL by name.
    pub fn get(&self, name: &str) -> Option<&Arc<CrlEntry>> {
        self.entries.iter().find(|c| c.name == name)
    }
}
