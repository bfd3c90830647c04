//! OCSP messages (RFC 6960): building requests and checking responses. Pure: no
//! network, no clock (the caller passes `now`), no cache.
//!
//! # What [`check_response`] trusts, in order
//!
//! 1. The envelope: `responseStatus` successful, `responseBytes` of type
//!    id-pkix-ocsp-basic, a BasicOCSPResponse that decodes (strict DER).
//! 2. The signer, before anything the response says is believed: the ResponderID must
//!    name the leaf's issuer, a delegated responder the issuer signed with the
//!    OCSPSigning EKU, or a responder anchored by the role's `ocsp_ca_certificates`;
//!    then the signature over the exact `tbsResponseData` bytes of the input must
//!    verify with that signer's key. SHA-1 signatures are refused.
//! 3. The SingleResponse for our CertID, recomputed with the response's own hash
//!    algorithm (SHA-1 or SHA-256): issuer name hash, issuer key hash and serial all
//!    compare (Vault's client once forgot the issuer and the serial).
//! 4. The nonce, when the request carried one.
//! 5. The time window: thisUpdate at most [`MAX_CLOCK_SKEW_SECS`] ahead, nextUpdate (if
//!    any) not passed.
//!
//! Malformed input of any shape is an [`OcspError`], never a panic.

use std::sync::Arc;

use der::{Decode, Tagged};
use x509_ocsp::{
    BasicOcspResponse, OcspResponse, OcspResponseStatus, ResponseData, SingleResponse,
};
use x509_parser::error::X509Error;
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo, X509Certificate};
use x509_parser::x509::AlgorithmIdentifier;

use crate::pki::cert::{ParsedCert, rfc4514};
use crate::pki::der::{element_at, normalize_serial, sequence_contents};

/// How far in the future a response's thisUpdate may be (responder clock ahead of
/// ours) before the response is refused, in seconds.
pub const MAX_CLOCK_SKEW_SECS: i64 = 60;

/// Most certificates a response may carry in `certs`. Real responders send zero to two;
/// each one that matches the ResponderID costs signature checks.
pub const MAX_RESPONSE_CERTS: usize = 16;

/// DER contents of the OIDs this module compares.
mod oid {
    /// 1.3.14.3.2.26 id-sha1
    pub const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
    /// 2.16.840.1.101.3.4.2.1 id-sha256
    pub const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    /// 1.3.6.1.5.5.7.48.1.1 id-pkix-ocsp-basic
    pub const OCSP_BASIC: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];
    /// 1.3.6.1.5.5.7.48.1.2 id-pkix-ocsp-nonce
    pub const OCSP_NONCE: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02];
}

/// Signature algorithms refused, as for certificates and CRLs: SHA-1 based ones.
const SHA1_SIGNATURE_OIDS: [&str; 5] = [
    "1.2.840.113549.1.1.5", // sha1WithRSAEncryption
    "1.3.14.3.2.29",        // sha1WithRSASignature (OIW)
    "1.2.840.10045.4.1",    // ecdsa-with-SHA1
    "1.2.840.10040.4.3",    // dsa-with-sha1
    "1.3.14.3.2.27",        // dsaWithSHA1 (OIW)
];

/// Hash algorithm of a CertID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CertIdHash {
    /// SHA-1: what every responder understands (RFC 5019 requires it).
    #[default]
    Sha1,
    /// SHA-256.
    Sha256,
}

impl CertIdHash {
    fn algorithm(self) -> &'static ring::digest::Algorithm {
        match self {
            CertIdHash::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            CertIdHash::Sha256 => &ring::digest::SHA256,
        }
    }

    fn oid(self) -> &'static [u8] {
        match self {
            CertIdHash::Sha1 => oid::SHA1,
            CertIdHash::Sha256 => oid::SHA256,
        }
    }

    /// The algorithm named by a CertID's hashAlgorithm (OID contents), if supported.
    fn from_oid(oid: &[u8]) -> Option<CertIdHash> {
        match oid {
            o if o == oid::SHA1 => Some(CertIdHash::Sha1),
            o if o == oid::SHA256 => Some(CertIdHash::Sha256),
            _ => None,
        }
    }

    /// "sha1" / "sha256", for logs.
    pub fn name(self) -> &'static str {
        match self {
            CertIdHash::Sha1 => "sha1",
            CertIdHash::Sha256 => "sha256",
        }
    }
}

fn digest(hash: CertIdHash, data: &[u8]) -> Vec<u8> {
    ring::digest::digest(hash.algorithm(), data)
        .as_ref()
        .to_vec()
}

/// Issuer name hash and issuer key hash under one algorithm.
#[derive(Debug, Clone)]
struct IssuerHashes {
    name: Vec<u8>,
    key: Vec<u8>,
}

/// What one OCSP query is about: the leaf's CertID, computed once per verified chain.
#[derive(Debug, Clone)]
pub struct OcspTarget {
    pub hash: CertIdHash,
    /// DER of the CertID (the cache key).
    pub cert_id_der: Vec<u8>,
    /// Leaf serial, leading zero bytes removed (like crate::pki::der::normalize_serial).
    pub serial: Vec<u8>,
    /// The issuer certificate (DER) and what is derived from it.
    pub issuer_der: Arc<[u8]>,
    /// The issuer's subject Name, full TLV (compared with a byName ResponderID and a
    /// delegated responder's issuer name).
    issuer_name_der: Vec<u8>,
    /// The issuer's SubjectPublicKeyInfo DER (verifies responses and delegations).
    issuer_spki: Vec<u8>,
    /// The issuer's subject as RFC 4514 text, for messages.
    issuer_subject: String,
    /// Issuer hashes under SHA-1 (also the byKey ResponderID of the issuer) and SHA-256.
    sha1: IssuerHashes,
    sha256: IssuerHashes,
}

impl OcspTarget {
    /// `leaf`: the client certificate; `issuer_der`: the certificate that signed it.
    ///
    /// Checks that the issuer's subject is the leaf's issuer name (a wrong certificate
    /// would make every answer a CertID mismatch); the signature itself was verified by
    /// chain building.
    pub fn new(
        leaf: &ParsedCert,
        issuer_der: &[u8],
        hash: CertIdHash,
    ) -> Result<OcspTarget, String> {
        let (rest, issuer) = X509Certificate::from_der(issuer_der)
            .map_err(|e| format!("issuer is not an X.509 certificate: {e}"))?;
        if !rest.is_empty() {
            return Err("trailing bytes after the issuer certificate".into());
        }
        let issuer_name_der = issuer.subject().as_raw().to_vec();
        if sequence_contents(&issuer_name_der) != Some(leaf.issuer_name.as_slice()) {
            return Err(format!(
                "certificate {} is not the issuer of {}: its issuer is {}",
                rfc4514(issuer.subject()),
                leaf.subject,
                leaf.issuer
            ));
        }
        let key_bits = issuer.public_key().subject_public_key.data.as_ref();
        let hashes = |h| IssuerHashes {
            name: digest(h, &issuer_name_der),
            key: digest(h, key_bits),
        };
        let sha1 = hashes(CertIdHash::Sha1);
        let sha256 = hashes(CertIdHash::Sha256);
        let raw_serial = raw_serial(leaf.der.as_ref()).ok_or("leaf has no readable serial")?;
        let chosen = match hash {
            CertIdHash::Sha1 => &sha1,
            CertIdHash::Sha256 => &sha256,
        };
        let cert_id_der = encode_cert_id(hash, chosen, raw_serial);
        Ok(OcspTarget {
            hash,
            cert_id_der,
            serial: normalize_serial(raw_serial).to_vec(),
            issuer_subject: rfc4514(issuer.subject()),
            issuer_spki: issuer.public_key().raw.to_vec(),
            issuer_name_der,
            issuer_der: Arc::from(issuer_der),
            sha1,
            sha256,
        })
    }

    /// The issuer's subject (RFC 4514 text).
    pub fn issuer_subject(&self) -> &str {
        &self.issuer_subject
    }

    fn hashes(&self, hash: CertIdHash) -> &IssuerHashes {
        match hash {
            CertIdHash::Sha1 => &self.sha1,
            CertIdHash::Sha256 => &self.sha256,
        }
    }
}

/// The serialNumber INTEGER contents of a certificate, exactly as encoded:
/// `Certificate ::= SEQUENCE { tbs SEQUENCE { [0] version OPTIONAL, serial INTEGER, ..`.
fn raw_serial(cert: &[u8]) -> Option<&[u8]> {
    let outer = element_at(cert, 0)?;
    let tbs = element_at(cert, outer.contents.start)?;
    if outer.tag != 0x30 || tbs.tag != 0x30 {
        return None;
    }
    let mut e = element_at(cert, tbs.contents.start)?;
    if e.tag == 0xa0 {
        e = element_at(cert, e.whole.end)?;
    }
    (e.tag == 0x02 && !e.contents.is_empty() && e.whole.end <= tbs.contents.end)
        .then(|| &cert[e.contents])
}

// === encoding ===

/// One DER TLV.
fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = Vec::with_capacity(len + 6);
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

/// `CertID ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier (with NULL parameters, as
/// OpenSSL writes it), issuerNameHash, issuerKeyHash, serialNumber }`.
fn encode_cert_id(hash: CertIdHash, hashes: &IssuerHashes, raw_serial: &[u8]) -> Vec<u8> {
    let alg = tlv(0x30, &[tlv(0x06, hash.oid()), vec![0x05, 0x00]].concat());
    tlv(
        0x30,
        &[
            alg,
            tlv(0x04, &hashes.name),
            tlv(0x04, &hashes.key),
            tlv(0x02, raw_serial),
        ]
        .concat(),
    )
}

/// A DER OCSPRequest for the target, with a nonce extension (RFC 8954: extnValue is an
/// OCTET STRING containing an OCTET STRING) when `nonce` is Some. Unsigned.
///
/// ```text
/// OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest }
/// TBSRequest  ::= SEQUENCE { requestList SEQUENCE OF Request,
///                            requestExtensions [2] EXPLICIT Extensions OPTIONAL }
/// Request     ::= SEQUENCE { reqCert CertID }
/// ```
pub fn request_der(target: &OcspTarget, nonce: Option<&[u8]>) -> Vec<u8> {
    let request = tlv(0x30, &target.cert_id_der);
    let mut tbs = tlv(0x30, &request);
    if let Some(nonce) = nonce {
        let extension = tlv(
            0x30,
            &[tlv(0x06, oid::OCSP_NONCE), tlv(0x04, &tlv(0x04, nonce))].concat(),
        );
        tbs.extend(tlv(0xa2, &tlv(0x30, &extension)));
    }
    tlv(0x30, &tlv(0x30, &tbs))
}

/// RFC 6960 A.1 GET URL: responder URL + '/' (unless it ends with one) +
/// percent-encoded standard base64 of the request.
pub fn get_url(responder: &str, request_der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(request_der);
    let mut url = String::with_capacity(responder.len() + 1 + b64.len() + b64.len() / 8);
    url.push_str(responder);
    if !responder.ends_with('/') {
        url.push('/');
    }
    for c in b64.chars() {
        match c {
            '+' => url.push_str("%2B"),
            '/' => url.push_str("%2F"),
            '=' => url.push_str("%3D"),
            c => url.push(c),
        }
    }
    url
}

/// 16 random bytes from ring::rand::SystemRandom.
///
/// Should the system source ever fail, the bytes come from SHA-256 of the time and a
/// process-wide counter instead: unpredictable enough to keep a replayed response from
/// matching, and a nonce is no reason to bring the server down.
pub fn new_nonce() -> [u8; 16] {
    use ring::rand::SecureRandom;
    let mut out = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut out).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let seed = [
            nanos.to_be_bytes().as_slice(),
            &COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes(),
            &std::process::id().to_be_bytes(),
        ]
        .concat();
        let d = ring::digest::digest(&ring::digest::SHA256, &seed);
        for (o, b) in out.iter_mut().zip(d.as_ref()) {
            *o = *b;
        }
    }
    out
}

// === answers and errors ===

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertStatus {
    Good,
    /// `revoked_at`: Unix seconds; `reason`: the RFC 5280 CRLReason name
    /// (`keyCompromise`, ...) when the responder gave one.
    Revoked {
        revoked_at: i64,
        reason: Option<String>,
    },
    Unknown,
}

/// A verified answer for the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspAnswer {
    pub status: CertStatus,
    /// Unix seconds.
    pub this_update: i64,
    pub next_update: Option<i64>,
    pub produced_at: i64,
    /// Who signed: "issuer" or the delegated responder's subject (RFC 4514 text).
    pub signer: String,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OcspError {
    /// Not an OCSPResponse, not id-pkix-ocsp-basic, bad DER.
    #[error("malformed OCSP response: {0}")]
    Malformed(String),
    /// responseStatus other than successful: "malformedRequest", "internalError",
    /// "tryLater", "sigRequired", "unauthorized".
    #[error("OCSP responder did not answer: responseStatus {0}")]
    Unsuccessful(String),
    /// The signer is authorized but the signature does not verify.
    #[error("OCSP response signature does not verify: {0}")]
    BadSignature(String),
    /// No acceptable signer.
    #[error("OCSP response not signed by an authorized responder: {0}")]
    UnauthorizedSigner(String),
    /// E.g. a SHA-1 signature.
    #[error("OCSP response uses an unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// No SingleResponse for our CertID.
    #[error(
        "OCSP response does not cover this certificate: no SingleResponse matches its \
         CertID (issuer name hash, issuer key hash, serial)"
    )]
    CertIdMismatch,
    /// A nonce was sent and the response does not echo it.
    #[error("OCSP response does not echo the request's nonce (stale or replayed response)")]
    NonceMismatch,
    /// thisUpdate > now + MAX_CLOCK_SKEW_SECS.
    #[error(
        "OCSP response thisUpdate is more than {MAX_CLOCK_SKEW_SECS} s in the future \
         (responder or local clock wrong)"
    )]
    ThisUpdateInFuture,
    /// nextUpdate present and < now.
    #[error("OCSP response is past its nextUpdate")]
    Expired,
}

impl OcspError {
    /// Code for metrics/logs.
    pub fn code(&self) -> &'static str {
        match self {
            OcspError::Malformed(_) => "malformed",
            OcspError::Unsuccessful(_) => "unsuccessful",
            OcspError::BadSignature(_) => "bad_signature",
            OcspError::UnauthorizedSigner(_) => "unauthorized_signer",
            OcspError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            OcspError::CertIdMismatch => "cert_id_mismatch",
            OcspError::NonceMismatch => "nonce_mismatch",
            OcspError::ThisUpdateInFuture => "this_update_in_future",
            OcspError::Expired => "expired",
        }
    }
}

fn malformed(msg: impl Into<String>) -> OcspError {
    OcspError::Malformed(msg.into())
}

// === checking responses ===

/// The parts of a BasicOCSPResponse, as slices of the input:
/// `SEQUENCE { tbsResponseData, signatureAlgorithm, signature BIT STRING,
/// certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }`.
struct BasicParts<'a> {
    tbs: &'a [u8],
    algorithm: &'a [u8],
    /// BIT STRING contents without the unused-bits byte (which must be 0).
    signature: &'a [u8],
    certs: Vec<&'a [u8]>,
}

fn split_basic(input: &[u8]) -> Result<BasicParts<'_>, OcspError> {
    let bad = |what: &str| malformed(format!("BasicOCSPResponse: {what}"));
    let outer = element_at(input, 0).ok_or_else(|| bad("not a DER element"))?;
    if outer.tag != 0x30 || outer.whole.end != input.len() {
        return Err(bad("not one SEQUENCE"));
    }
    let end = outer.contents.end;
    let tbs = element_at(input, outer.contents.start).ok_or_else(|| bad("no tbsResponseData"))?;
    let alg = element_at(input, tbs.whole.end).ok_or_else(|| bad("no signatureAlgorithm"))?;
    let sig = element_at(input, alg.whole.end).ok_or_else(|| bad("no signature"))?;
    if tbs.tag != 0x30 || alg.tag != 0x30 || sig.tag != 0x03 || sig.whole.end > end {
        return Err(bad("unexpected element"));
    }
    let signature = match input.get(sig.contents.clone()) {
        Some([0, rest @ ..]) => rest,
        _ => return Err(bad("signature BIT STRING with unused bits")),
    };
    let mut certs = Vec::new();
    if sig.whole.end < end {
        let explicit = element_at(input, sig.whole.end).ok_or_else(|| bad("malformed certs"))?;
        if explicit.tag != 0xa0 || explicit.whole.end != end {
            return Err(bad("unexpected element after the signature"));
        }
        let seq =
            element_at(input, explicit.contents.start).ok_or_else(|| bad("malformed certs"))?;
        if seq.tag != 0x30 || seq.whole.end != explicit.contents.end {
            return Err(bad("certs is not one SEQUENCE"));
        }
        let mut at = seq.contents.start;
        while at < seq.contents.end {
            let cert =
                element_at(input, at).ok_or_else(|| bad("malformed certificate in certs"))?;
            if cert.whole.end > seq.contents.end {
                return Err(bad("malformed certificate in certs"));
            }
            if certs.len() == MAX_RESPONSE_CERTS {
                return Err(bad(&format!(
                    "more than {MAX_RESPONSE_CERTS} certificates in certs"
                )));
            }
            certs.push(&input[cert.whole.clone()]);
            at = cert.whole.end;
        }
    }
    Ok(BasicParts {
        tbs: &input[tbs.whole],
        algorithm: &input[alg.whole],
        signature,
        certs,
    })
}

/// The ResponderID as it appears in the signed bytes.
#[derive(Debug, Clone, Copy)]
enum ResponderRef<'a> {
    /// The Name, full TLV.
    ByName(&'a [u8]),
    /// SHA-1 of the responder's subjectPublicKey bits.
    ByKey(&'a [u8]),
}

impl ResponderRef<'_> {
    fn matches(&self, name_der: &[u8], key_bits: &[u8]) -> bool {
        match *self {
            ResponderRef::ByName(name) => name == name_der,
            ResponderRef::ByKey(hash) => hash == digest(CertIdHash::Sha1, key_bits).as_slice(),
        }
    }

    fn describe(&self) -> String {
        match *self {
            ResponderRef::ByName(name) => match x509_parser::x509::X509Name::from_der(name) {
                Ok((_, n)) => format!("responder {} (by name)", rfc4514(&n)),
                Err(_) => "responder (unreadable name)".into(),
            },
            ResponderRef::ByKey(hash) => format!("responder with key hash {}", hex::encode(hash)),
        }
    }
}

/// `ResponseData ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1, responderID, ...}`,
/// `ResponderID ::= CHOICE { byName [1] Name, byKey [2] KeyHash }` (explicit tags).
fn responder_ref(tbs: &[u8]) -> Result<ResponderRef<'_>, OcspError> {
    let bad = || malformed("ResponseData: unreadable responderID");
    let outer = element_at(tbs, 0).ok_or_else(bad)?;
    let mut e = element_at(tbs, outer.contents.start).ok_or_else(bad)?;
    if e.tag == 0xa0 {
        e = element_at(tbs, e.whole.end).ok_or_else(bad)?;
    }
    let inner = element_at(tbs, e.contents.start).ok_or_else(bad)?;
    if inner.whole.end != e.contents.end {
        return Err(bad());
    }
    match (e.tag, inner.tag) {
        (0xa1, 0x30) => Ok(ResponderRef::ByName(&tbs[inner.whole])),
        (0xa2, 0x04) => Ok(ResponderRef::ByKey(&tbs[inner.contents])),
        _ => Err(bad()),
    }
}

/// A certificate from `certs`, parsed.
struct RespCert<'a> {
    der: &'a [u8],
    cert: X509Certificate<'a>,
}

/// Someone allowed to sign for the target's issuer.
struct Signer {
    spki: Vec<u8>,
    label: String,
}

fn is_sha1_signature(oid: &str) -> bool {
    SHA1_SIGNATURE_OIDS.contains(&oid)
}

fn validity_text(cert: &X509Certificate<'_>, now: i64) -> Result<(), String> {
    window_text(
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
        now,
    )
}

fn window_text(not_before: i64, not_after: i64, now: i64) -> Result<(), String> {
    use crate::clock::rfc3339;
    if now < not_before {
        Err(format!(
            "not valid before {} (now {})",
            rfc3339(not_before),
            rfc3339(now)
        ))
    } else if now > not_after {
        Err(format!(
            "expired at {} (now {})",
            rfc3339(not_after),
            rfc3339(now)
        ))
    } else {
        Ok(())
    }
}

/// Whether `cert` is a responder delegated by the CA whose subject is `ca_name_der`
/// (full TLV) and key `ca_spki_der`: issued and signed by it, OCSPSigning EKU, valid.
fn delegated_by(
    cert: &X509Certificate<'_>,
    ca_name_der: &[u8],
    ca_spki_der: &[u8],
    ca_label: &str,
    now: i64,
) -> Result<(), String> {
    if cert.issuer().as_raw() != ca_name_der {
        return Err(format!(
            "issued by {}, not by {ca_label}",
            rfc4514(cert.issuer())
        ));
    }
    let alg = cert.signature_algorithm.algorithm.to_id_string();
    if is_sha1_signature(&alg) {
        return Err(format!("signed by {ca_label} with SHA-1 ({alg}), refused"));
    }
    let spki = SubjectPublicKeyInfo::from_der(ca_spki_der)
        .map(|(_, s)| s)
        .map_err(|_| format!("unreadable key of {ca_label}"))?;
    // The unused-bits count sits outside what the signature covers: a non-zero one
    // over the same bytes would still verify, so it is refused (malleability).
    if cert.signature_value.unused_bits != 0 || cert.verify_signature(Some(&spki)).is_err() {
        return Err(format!(
            "names {ca_label} as issuer but its signature does not verify with that key"
        ));
    }
    let ocsp_signing = matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.ocsp_signing);
    if !ocsp_signing {
        return Err(format!(
            "issued by {ca_label} but lacks the OCSPSigning extended key usage \
             (1.3.6.1.5.5.7.3.9)"
        ));
    }
    validity_text(cert, now)
}

/// Every signer the ResponderID may stand for that is authorized for `target`, in
/// order: the issuer, delegated responders from `certs`, anchored responders. An empty
/// list is [`OcspError::UnauthorizedSigner`] with every reason for refusal.
fn authorized_signers(
    responder: ResponderRef<'_>,
    certs: &[RespCert<'_>],
    target: &OcspTarget,
    anchors: &[Arc<ParsedCert>],
    now: i64,
) -> Result<Vec<Signer>, OcspError> {
    let mut signers = Vec::new();
    let mut refusals: Vec<String> = Vec::new();
    let issuer_label = format!("the issuer {}", target.issuer_subject);

    // (a) the issuer itself.
    let issuer_key_hash = &target.sha1.key;
    let issuer_matches = match responder {
        ResponderRef::ByName(name) => name == target.issuer_name_der.as_slice(),
        ResponderRef::ByKey(hash) => hash == issuer_key_hash.as_slice(),
    };
    if issuer_matches {
        signers.push(Signer {
            spki: target.issuer_spki.clone(),
            label: "issuer".into(),
        });
    }

    // Anchors, parsed once.
    let anchors: Vec<(&ParsedCert, Vec<u8>, Vec<u8>)> = anchors
        .iter()
        .filter_map(|a| {
            let (_, spki) = SubjectPublicKeyInfo::from_der(&a.spki).ok()?;
            let key_bits = spki.subject_public_key.data.to_vec();
            // The subject Name TLV, rebuilt from its contents (same bytes).
            let name_der = tlv(0x30, &a.subject_name);
            Some((a.as_ref(), name_der, key_bits))
        })
        .collect();

    // (b) and (c): certificates from the response that the ResponderID names.
    let mut any_cert_matched = false;
    for rc in certs {
        let cert = &rc.cert;
        if !responder.matches(
            cert.subject().as_raw(),
            &cert.public_key().subject_public_key.data,
        ) {
            continue;
        }
        any_cert_matched = true;
        if rc.der == target.issuer_der.as_ref() {
            continue; // the issuer itself, handled above
        }
        let subject = rfc4514(cert.subject());
        let mut why = Vec::new();
        match delegated_by(
            cert,
            &target.issuer_name_der,
            &target.issuer_spki,
            &issuer_label,
            now,
        ) {
            Ok(()) => {
                signers.push(Signer {
                    spki: cert.public_key().raw.to_vec(),
                    label: subject,
                });
                continue;
            }
            Err(e) => why.push(e),
        }
        let mut anchored = false;
        let issuer_reasons = why.len();
        for (anchor, name_der, _) in &anchors {
            let label = format!("the OCSP CA certificate {}", anchor.subject);
            let result = if rc.der == anchor.der.as_ref() {
                validity_text(cert, now)
            } else if cert.issuer().as_raw() == name_der.as_slice() {
                delegated_by(cert, name_der, &anchor.spki, &label, now)
            } else {
                continue;
            };
            match result {
                Ok(()) => {
                    anchored = true;
                    break;
                }
                Err(e) => why.push(e),
            }
        }
        if anchored {
            signers.push(Signer {
                spki: cert.public_key().raw.to_vec(),
                label: subject,
            });
        } else {
            if anchors.is_empty() {
                why.push("no OCSP CA certificates are configured".into());
            } else if why.len() == issuer_reasons {
                why.push("neither one of the OCSP CA certificates nor issued by one".into());
            }
            refusals.push(format!("certificate {subject}: {}", why.join("; ")));
        }
    }

    // (c) an anchor itself signing, when the response carries no certificate for it.
    if !any_cert_matched {
        for (anchor, name_der, key_bits) in &anchors {
            if !responder.matches(name_der, key_bits) {
                continue;
            }
            if let Err(e) = window_text(anchor.not_before, anchor.not_after, now) {
                refusals.push(format!("OCSP CA certificate {}: {e}", anchor.subject));
                continue;
            }
            signers.push(Signer {
                spki: anchor.spki.clone(),
                label: anchor.subject.clone(),
            });
        }
    }

    if signers.is_empty() {
        let mut msg = format!("{} is not {issuer_label}", responder.describe());
        if refusals.is_empty() {
            msg.push_str(", and the response carries no certificate for it");
            if !anchors.is_empty() {
                msg.push_str(" nor is it one of the OCSP CA certificates");
            }
        } else {
            msg.push_str(": ");
            msg.push_str(&refusals.join(" | "));
        }
        return Err(OcspError::UnauthorizedSigner(msg));
    }
    Ok(signers)
}

/// Verifies the signature over `tbs` with one of `signers`; returns the label of the
/// one whose key verifies.
fn verify_by_any(parts: &BasicParts<'_>, signers: &[Signer]) -> Result<String, OcspError> {
    let (rest, alg) = AlgorithmIdentifier::from_der(parts.algorithm)
        .map_err(|_| malformed("unreadable signatureAlgorithm"))?;
    if !rest.is_empty() {
        return Err(malformed("trailing bytes in signatureAlgorithm"));
    }
    let alg_oid = alg.algorithm.to_id_string();
    if is_sha1_signature(&alg_oid) {
        return Err(OcspError::UnsupportedAlgorithm(format!(
            "response signed with SHA-1 ({alg_oid}), refused"
        )));
    }
    let bits = x509_parser::der_parser::asn1_rs::BitString::new(0, parts.signature);
    let mut unsupported = true;
    for signer in signers {
        let Ok((_, spki)) = SubjectPublicKeyInfo::from_der(&signer.spki) else {
            continue;
        };
        match x509_parser::verify::verify_signature(&spki, &alg, &bits, parts.tbs) {
            Ok(()) => return Ok(signer.label.clone()),
            Err(X509Error::SignatureUnsupportedAlgorithm) => {}
            Err(_) => unsupported = false,
        }
    }
    let names: Vec<&str> = signers.iter().map(|s| s.label.as_str()).collect();
    if unsupported {
        Err(OcspError::UnsupportedAlgorithm(format!(
            "signature algorithm {alg_oid} with the key of {}",
            names.join(", ")
        )))
    } else {
        Err(OcspError::BadSignature(format!(
            "signature ({alg_oid}) does not verify with the key of {}",
            names.join(", ")
        )))
    }
}

fn unix(t: &x509_ocsp::OcspGeneralizedTime) -> i64 {
    i64::try_from(t.0.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

fn status_name(s: OcspResponseStatus) -> &'static str {
    match s {
        OcspResponseStatus::Successful => "successful",
        OcspResponseStatus::MalformedRequest => "malformedRequest",
        OcspResponseStatus::InternalError => "internalError",
        OcspResponseStatus::TryLater => "tryLater",
        OcspResponseStatus::SigRequired => "sigRequired",
        OcspResponseStatus::Unauthorized => "unauthorized",
    }
}

fn reason_name(r: x509_cert::ext::pkix::CrlReason) -> &'static str {
    use x509_cert::ext::pkix::CrlReason as R;
    match r {
        R::Unspecified => "unspecified",
        R::KeyCompromise => "keyCompromise",
        R::CaCompromise => "cACompromise",
        R::AffiliationChanged => "affiliationChanged",
        R::Superseded => "superseded",
        R::CessationOfOperation => "cessationOfOperation",
        R::CertificateHold => "certificateHold",
        R::RemoveFromCRL => "removeFromCRL",
        R::PrivilegeWithdrawn => "privilegeWithdrawn",
        R::AaCompromise => "aACompromise",
    }
}

/// Whether a SingleResponse is about the target: hash algorithm SHA-1 or SHA-256 (with
/// absent or NULL parameters), issuer name hash, issuer key hash, serial.
fn cert_id_matches(single: &SingleResponse, target: &OcspTarget) -> bool {
    let id = &single.cert_id;
    let Some(hash) = CertIdHash::from_oid(id.hash_algorithm.oid.as_bytes()) else {
        return false;
    };
    let params_ok = match &id.hash_algorithm.parameters {
        None => true,
        Some(p) => p.tag() == der::Tag::Null && p.value().is_empty(),
    };
    let ours = target.hashes(hash);
    params_ok
        && id.issuer_name_hash.as_bytes() == ours.name.as_slice()
        && id.issuer_key_hash.as_bytes() == ours.key.as_slice()
        && normalize_serial(id.serial_number.as_bytes()) == target.serial.as_slice()
}

/// Refuses critical extensions other than the nonce (RFC 6960 4.4 defines none that
/// must be critical; one we do not understand may change the meaning).
fn check_critical(
    exts: Option<&Vec<x509_cert::ext::Extension>>,
    where_: &str,
) -> Result<(), OcspError> {
    for ext in exts.into_iter().flatten() {
        if ext.critical && ext.extn_id.as_bytes() != oid::OCSP_NONCE {
            return Err(malformed(format!(
                "unsupported critical {where_} extension {}",
                ext.extn_id
            )));
        }
    }
    Ok(())
}

/// Whether the response's nonce extension value carries `nonce`: RFC 8954's OCTET
/// STRING around the value (what we send and OpenSSL echoes) or the bare value.
fn nonce_matches(data: &ResponseData, nonce: &[u8]) -> bool {
    let Some(ext) = data
        .response_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id.as_bytes() == oid::OCSP_NONCE)
    else {
        return false;
    };
    let value = ext.extn_value.as_bytes();
    value == nonce || value == tlv(0x04, nonce).as_slice()
}

/// Checks a DER OCSPResponse for `target` at `now` (Unix seconds).
///
/// `responder_anchors`: the role's `ocsp_ca_certificates`: a delegated responder
/// certificate that IS one of them, or that one of them signed and that has the
/// OCSPSigning EKU, is authorized too. `nonce`: what the request carried, if anything.
///
/// The signature is checked before the content is interpreted, so a forged or
/// corrupted response is [`OcspError::BadSignature`] / [`OcspError::UnauthorizedSigner`]
/// rather than a CertID, nonce or time error (see the module documentation for the
/// order). Delegated responder certificates are not checked for revocation, as if
/// they all carried id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1).
pub fn check_response(
    der: &[u8],
    target: &OcspTarget,
    responder_anchors: &[Arc<ParsedCert>],
    nonce: Option<&[u8]>,
    now: i64,
) -> Result<OcspAnswer, OcspError> {
    // 1. Envelope.
    let response =
        OcspResponse::from_der(der).map_err(|e| malformed(format!("not an OCSPResponse: {e}")))?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(OcspError::Unsuccessful(
            status_name(response.response_status).into(),
        ));
    }
    let bytes = response
        .response_bytes
        .ok_or_else(|| malformed("successful response without responseBytes"))?;
    if bytes.response_type.as_bytes() != oid::OCSP_BASIC {
        return Err(malformed(format!(
            "response type {} is not id-pkix-ocsp-basic",
            bytes.response_type
        )));
    }
    let basic = bytes.response.as_bytes();
    // Strict DER decoding of the whole structure (certificates included); the raw
    // slices then give the exact signed bytes and the certificates for x509-parser,
    // which alone is lenient about tags outside the signed parts.
    let data = BasicOcspResponse::from_der(basic)
        .map_err(|e| malformed(format!("unreadable BasicOCSPResponse: {e}")))?
        .tbs_response_data;
    let parts = split_basic(basic)?;
    let responder = responder_ref(parts.tbs)?;
    let mut certs = Vec::with_capacity(parts.certs.len());
    for der in &parts.certs {
        match X509Certificate::from_der(der) {
            Ok(([], cert)) => certs.push(RespCert { der, cert }),
            _ => return Err(malformed("unreadable certificate in certs")),
        }
    }

    // 2. Who signed, and does the signature verify.
    let signers = authorized_signers(responder, &certs, target, responder_anchors, now)?;
    let signer = verify_by_any(&parts, &signers)?;

    // From here on the content is authenticated.
    check_critical(data.response_extensions.as_ref(), "response")?;

    // 3. Our SingleResponse. Should a responder list our CertID twice, a revocation wins.
    let mut matching = data.responses.iter().filter(|s| cert_id_matches(s, target));
    let first = matching.next().ok_or(OcspError::CertIdMismatch)?;
    let single = std::iter::once(first)
        .chain(matching)
        .find(|s| matches!(s.cert_status, x509_ocsp::CertStatus::Revoked(_)))
        .unwrap_or(first);
    check_critical(single.single_extensions.as_ref(), "singleResponse")?;

    // 4. Nonce.
    if let Some(nonce) = nonce
        && !nonce_matches(&data, nonce)
    {
        return Err(OcspError::NonceMismatch);
    }

    // 5. Time window.
    let this_update = unix(&single.this_update);
    let next_update = single.next_update.as_ref().map(unix);
    if this_update > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(OcspError::ThisUpdateInFuture);
    }
    if next_update.is_some_and(|n| n < now) {
        return Err(OcspError::Expired);
    }

    // 6. Status.
    let status = match &single.cert_status {
        x509_ocsp::CertStatus::Good(_) => CertStatus::Good,
        x509_ocsp::CertStatus::Revoked(info) => CertStatus::Revoked {
            revoked_at: unix(&info.revocation_time),
            reason: info.revocation_reason.map(|r| reason_name(r).to_string()),
        },
        x509_ocsp::CertStatus::Unknown(_) => CertStatus::Unknown,
    };
    Ok(OcspAnswer {
        status,
        this_update,
        next_update,
        produced_at: unix(&data.produced_at),
        signer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;
    use rustls_pki_types::CertificateDer;

    /// A CA and a leaf, made with rcgen (a dev-dependency).
    fn pair() -> (ParsedCert, Vec<u8>) {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Unit CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign");
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let mut leaf_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        leaf_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "unit leaf");
        // High bit set: DER needs a leading zero, which the CertID must keep.
        leaf_params.serial_number =
            Some(rcgen::SerialNumber::from_slice(&[0x00, 0x9a, 0x01, 0x02]));
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).expect("sign");
        let parsed =
            ParsedCert::from_der(CertificateDer::from(leaf.der().to_vec())).expect("parse leaf");
        (parsed, ca_cert.der().to_vec())
    }

    #[test]
    fn get_url_appends_percent_encoded_base64() {
        // 0xfb 0xff 0xbf encodes to "+/+/" in standard base64; 0xff pads with "==".
        assert_eq!(
            get_url(
                "http://ocsp.example",
                &[0xfb, 0xff, 0xbf, 0xfb, 0xff, 0xbf, 0xff]
            ),
            "http://ocsp.example/%2B%2F%2B%2F%2B%2F%2B%2F%2Fw%3D%3D"
        );
        assert_eq!(get_url("http://o/x/", &[0x30, 0x00]), "http://o/x/MAA%3D");
        assert_eq!(get_url("http://o", &[]), "http://o/");
    }

    #[test]
    fn request_round_trips_through_x509_ocsp() {
        let (leaf, issuer_der) = pair();
        for hash in [CertIdHash::Sha1, CertIdHash::Sha256] {
            let target = OcspTarget::new(&leaf, &issuer_der, hash).expect("target");
            assert_eq!(target.serial, vec![0x9a, 0x01, 0x02]);

            let nonce = new_nonce();
            let der = request_der(&target, Some(&nonce));
            let req = x509_ocsp::OcspRequest::from_der(&der).expect("decodes");
            assert!(req.optional_signature.is_none());
            assert_eq!(req.tbs_request.request_list.len(), 1);
            let id = &req.tbs_request.request_list[0].req_cert;
            assert_eq!(id.to_der().expect("encode"), target.cert_id_der);
            assert_eq!(id.hash_algorithm.oid.as_bytes(), hash.oid());
            assert_eq!(id.serial_number.as_bytes(), &[0x00, 0x9a, 0x01, 0x02]);
            let (_, issuer) = X509Certificate::from_der(&issuer_der).expect("issuer");
            assert_eq!(
                id.issuer_name_hash.as_bytes(),
                digest(hash, issuer.subject().as_raw())
            );
            assert_eq!(
                id.issuer_key_hash.as_bytes(),
                digest(hash, &issuer.public_key().subject_public_key.data)
            );
            // RFC 8954: the extension value is an OCTET STRING holding the nonce.
            let ext = &req.tbs_request.request_extensions.as_ref().expect("exts")[0];
            assert_eq!(ext.extn_id.to_string(), "1.3.6.1.5.5.7.48.1.2");
            assert!(!ext.critical);
            assert_eq!(ext.extn_value.as_bytes(), tlv(0x04, &nonce));
            assert_eq!(req.nonce().expect("nonce").0.as_bytes(), nonce);
            // The request re-encodes to the same bytes (it is DER).
            assert_eq!(req.to_der().expect("encode"), der);

            let plain = request_der(&target, None);
            let req = x509_ocsp::OcspRequest::from_der(&plain).expect("decodes");
            assert!(req.tbs_request.request_extensions.is_none());
        }
    }

    #[test]
    fn target_refuses_the_wrong_issuer() {
        let (leaf, _) = pair();
        let (_, other_ca) = pair();
        // Same CN "Unit CA" in both pairs: only the name is checked, so this passes...
        assert!(OcspTarget::new(&leaf, &other_ca, CertIdHash::Sha1).is_ok());
        // ...but the leaf itself is not the issuer.
        let err = OcspTarget::new(&leaf, leaf.der.as_ref(), CertIdHash::Sha1).unwrap_err();
        assert!(err.contains("is not the issuer"), "{err}");
        assert!(OcspTarget::new(&leaf, b"junk", CertIdHash::Sha1).is_err());
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(new_nonce(), new_nonce());
    }

    #[test]
    fn error_codes() {
        assert_eq!(OcspError::Expired.code(), "expired");
        assert_eq!(OcspError::Malformed("x".into()).code(), "malformed");
        assert!(OcspError::ThisUpdateInFuture.to_string().contains("60 s"));
    }

    #[test]
    fn long_lengths_encode() {
        let long = tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(element_at(&long, 0).map(|e| e.contents), Some(4..304));
    }
}
