//! Certificate revocation lists: parsed and signature-checked once per load, serials
//! in a hash set (O(1) lookups, so a million-entry CRL costs nothing per request).
//!
//! A serial is revoked **for its issuer only**: a CRL applies to a certificate when the
//! CRL's issuer name equals the certificate's issuer name *and* the CRL's signature
//! verifies with the key that signed the certificate. Two CAs that issue the same
//! serial never revoke each other's certificates (the caveat Vault documents).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

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
    serials: Serials,
    /// The DER, kept to verify the signature against an issuer first seen at request
    /// time; dropped once a configured CA's key verified it.
    der: Arc<[u8]>,
    /// Where tbs, algorithm and signature are inside `der`.
    parts: SignedParts,
    /// SPKIs (DER) known to have signed this CRL, and known not to have: a signature
    /// over a large list is checked once per key, not once per chain.
    keys: Mutex<KeyMemo>,
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
        let mut serials = Serials::with_capacity(crl.tbs_cert_list.revoked_certificates.len());
        for revoked in crl.iter_revoked_certificates() {
            serials.insert(normalize_serial(revoked.raw_serial()));
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
            keys: Mutex::new(KeyMemo::default()),
            verified_by: None,
        })
    }

    /// Parses a PEM (one `X509 CRL` block) or DER CRL.
    pub fn parse_any(name: &str, source: &str, bytes: &[u8]) -> Result<CrlEntry, String> {
        CrlEntry::parse(name, source, decode_crl(bytes)?)
    }

    /// Whether `spki_der` (a SubjectPublicKeyInfo with its SEQUENCE) signed this CRL.
    pub fn signed_by(&self, spki_der: &[u8]) -> bool {
        {
            let memo = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            if memo.good.iter().any(|k| **k == *spki_der) {
                return true;
            }
            if memo.bad.iter().any(|k| **k == *spki_der) {
                return false;
            }
        }
        let good = self.verify_with(spki_der);
        let mut memo = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let list = if good { &mut memo.good } else { &mut memo.bad };
        // Bounded: only keys of certificates on verified paths get here.
        if list.len() < 64 {
            list.push(Box::from(spki_der));
        }
        good
    }

    fn verify_with(&self, spki_der: &[u8]) -> bool {
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

    /// Checks the signature against the configured CAs named as the CRL's issuer: `Ok`
    /// when one verifies it (recorded in `verified_by`) or when no such CA is configured
    /// (the list is verified later against the issuer a path reaches); `Err` when such CAs
    /// exist and none verifies it: a forged or misplaced list.
    pub fn verify_against(&mut self, known_cas: &[&ParsedCert]) -> Result<(), String> {
        let mut candidates = 0;
        let mut seen: HashSet<&[u8]> = HashSet::new();
        for ca in known_cas
            .iter()
            .filter(|ca| ca.subject_name == self.issuer_name)
        {
            candidates += 1;
            if seen.insert(&ca.spki) && self.signed_by(&ca.spki) {
                self.verified_by.get_or_insert_with(|| ca.subject.clone());
            }
        }
        if self.verified_by.is_some() {
            // Verified with a configured CA's key (remembered): no other key can have
            // signed these bytes, so the DER (~35 MB for a million serials) can go.
            self.der = Arc::from(Vec::new());
        }
        if candidates > 0 && self.verified_by.is_none() {
            return Err(format!(
                "CRL {:?} ({}): signature does not verify with the key of its issuer {}",
                self.name, self.source, self.issuer
            ));
        }
        Ok(())
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

/// A set of serials, compact for large lists: serials of up to 20 octets (all that
/// RFC 5280 allows) are stored inline, 21 bytes each with no allocation, so a
/// 1,000,000-entry list costs ~24 MB instead of ~50 MB; longer ones (non-conforming
/// CAs) go to a separate set.
#[derive(Debug, Default)]
struct Serials {
    short: HashSet<ShortSerial>,
    long: HashSet<Box<[u8]>>,
}

/// Up to 20 serial octets and their count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ShortSerial {
    len: u8,
    bytes: [u8; 20],
}

impl ShortSerial {
    fn new(serial: &[u8]) -> Option<ShortSerial> {
        let mut bytes = [0u8; 20];
        bytes.get_mut(..serial.len())?.copy_from_slice(serial);
        Some(ShortSerial {
            len: serial.len() as u8,
            bytes,
        })
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len).min(20)]
    }
}

impl Serials {
    fn with_capacity(n: usize) -> Serials {
        Serials {
            short: HashSet::with_capacity(n),
            long: HashSet::new(),
        }
    }

    fn insert(&mut self, serial: &[u8]) {
        match ShortSerial::new(serial) {
            Some(short) => {
                self.short.insert(short);
            }
            None => {
                self.long.insert(Box::from(serial));
            }
        }
    }

    fn contains(&self, serial: &[u8]) -> bool {
        match ShortSerial::new(serial) {
            Some(short) => self.short.contains(&short),
            None => self.long.contains(serial),
        }
    }

    fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.short
            .iter()
            .map(ShortSerial::as_slice)
            .chain(self.long.iter().map(|b| &b[..]))
    }
}

/// Keys a CRL's signature was checked with.
#[derive(Debug, Default)]
struct KeyMemo {
    good: Vec<Box<[u8]>>,
    bad: Vec<Box<[u8]>>,
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

/// A CRL's DER from a file or an HTTP body: PEM with exactly one `X509 CRL` block, or
/// DER as is.
pub fn decode_crl(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        let blocks = pem::parse_many(bytes).map_err(|e| format!("malformed PEM: {e}"))?;
        let mut crls: Vec<pem::Pem> = blocks
            .into_iter()
            .filter(|b| b.tag() == "X509 CRL")
            .collect();
        return match crls.len() {
            0 => Err("no `X509 CRL` PEM block".into()),
            1 => Ok(crls.remove(0).into_contents()),
            n => Err(format!(
                "{n} CRLs in one file: put one CRL per file (the file stem names it)"
            )),
        };
    }
    if matches!(bytes, [0x30, 0x81..=0x84, ..]) {
        return Ok(bytes.to_vec());
    }
    Err("neither PEM (`X509 CRL`) nor DER".into())
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
        let mut entries = Vec::with_capacity(crls.len());
        for mut crl in crls {
            match crl.verify_against(known_cas) {
                Ok(()) => entries.push(Arc::new(crl)),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(CrlIndex::from_entries(entries))
        } else {
            Err(errors)
        }
    }

    /// Indexes CRLs already checked (see [`CrlEntry::verify_against`]).
    pub fn from_entries(entries: Vec<Arc<CrlEntry>>) -> CrlIndex {
        let mut index = CrlIndex::default();
        for crl in entries {
            index
                .by_issuer
                .entry(crl.issuer_name.clone())
                .or_default()
                .push(Arc::clone(&crl));
            index.entries.push(crl);
        }
        index
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

    /// Combines what two indexes said about one certificate (files and fetched lists):
    /// revoked wins, then a fresh list, then a stale one.
    pub fn merge(
        a: (CrlStatus, Option<i64>),
        b: (CrlStatus, Option<i64>),
    ) -> (CrlStatus, Option<i64>) {
        let status = match (a.0, b.0) {
            (CrlStatus::Revoked, _) | (_, CrlStatus::Revoked) => return (CrlStatus::Revoked, None),
            (CrlStatus::NotRevoked { stale: false }, _)
            | (_, CrlStatus::NotRevoked { stale: false }) => CrlStatus::NotRevoked { stale: false },
            (CrlStatus::NotRevoked { stale: true }, _)
            | (_, CrlStatus::NotRevoked { stale: true }) => CrlStatus::NotRevoked { stale: true },
            _ => CrlStatus::NoCrl,
        };
        let due = match (a.1, b.1) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
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
