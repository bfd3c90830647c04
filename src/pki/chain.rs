//! Chain verification with rustls-webpki: path building from the presented leaf to one
//! of a role's anchors, through the presented and configured intermediates, for
//! `clientAuth` (no EKU = any usage), at the injected time, with SHA-1 refused (webpki
//! has no SHA-1 verifier). Revocation and the role's `revoked_cert_ids` run on every
//! candidate path through webpki's path callback, so a revoked path makes webpki try
//! the next candidate: if any chain has no revoked member, it may authenticate.

use std::cell::RefCell;

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage, VerifiedPath};

use crate::engine::Reason;

use super::der::normalize_serial;

/// One certificate of a candidate path, with what revocation checks need.
#[derive(Debug, Clone, Copy)]
pub struct PathCert<'a> {
    /// The certificate's DER (for an anchor: the role's anchor certificate).
    pub der: &'a [u8],
    /// Serial without leading zero octets.
    pub serial: &'a [u8],
    /// The issuer's Name contents (no outer tag).
    pub issuer_name: &'a [u8],
    /// The issuer's SubjectPublicKeyInfo DER (with the outer SEQUENCE).
    pub issuer_spki: &'a [u8],
    /// This is the trust anchor itself (self-issued).
    pub is_anchor: bool,
}

/// A role's trust anchors: webpki's view and the certificates they came from, index
/// for index (webpki's anchor has no serial or DER; revocation and pinning need them).
#[derive(Debug, Default)]
pub struct Anchors {
    /// What webpki builds paths to.
    pub anchors: Vec<TrustAnchor<'static>>,
    /// The same anchors as certificates.
    pub certs: Vec<AnchorCert>,
}

/// An anchor certificate's identifying values.
#[derive(Debug, Clone)]
pub struct AnchorCert {
    /// DER of the anchor certificate.
    pub der: Vec<u8>,
    /// Serial without leading zeros.
    pub serial: Vec<u8>,
    /// Name contents of the anchor's subject (it is self-issued or trusted as is).
    pub subject_name: Vec<u8>,
    /// SPKI DER (with the outer SEQUENCE).
    pub spki: Vec<u8>,
    /// The anchor's issuer Name contents (differs from the subject for a pinned
    /// intermediate, whose CRL comes from its parent).
    pub issuer_name: Vec<u8>,
    /// The key that signed the anchor: its own for a self-signed root; for an
    /// intermediate used as an anchor, its parent's when a configured CA is the parent
    /// (so the parent's CRL applies to it), else its own (no CRL can apply).
    pub issuer_spki: Vec<u8>,
}

/// The outcome of a successful verification.
#[derive(Debug, Clone)]
pub struct VerifiedChain {
    /// Latest notBefore on the path (the chain is usable from then on).
    pub not_before: i64,
    /// Earliest notAfter on the path (the chain is usable until then).
    pub not_after: i64,
    /// The leaf's issuer certificate DER (an intermediate or the anchor): OCSP CertIDs
    /// and responder authorization need it.
    pub issuer_der: Vec<u8>,
}

/// Verifies `leaf` to one of `anchors` through `intermediates`.
///
/// `check` runs on every complete candidate path (leaf first, anchor last); an `Err`
/// rejects that path and webpki backtracks. If every path was rejected by `check`, its
/// last reason is returned; otherwise webpki's error, mapped to a [`Reason`].
pub fn verify(
    anchors: &Anchors,
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: i64,
    check: &dyn Fn(&[PathCert<'_>]) -> Result<(), Reason>,
) -> Result<VerifiedChain, Reason> {
    let ee = EndEntityCert::try_from(leaf).map_err(|e| Reason::MalformedCertificate {
        detail: format!("{e:?}"),
    })?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(now).unwrap_or(0),
    ));
    let rejected: RefCell<Option<Reason>> = RefCell::new(None);
    // webpki stops at the first path the callback accepts, so the last accepted one is
    // the verified path: keep it instead of flattening it again afterwards.
    let accepted: RefCell<Vec<OwnedPathCert>> = RefCell::new(Vec::new());
    let callback = |path: &VerifiedPath<'_>| -> Result<(), webpki::Error> {
        let result = path_certs(anchors, path).and_then(|certs| {
            let view: Vec<PathCert<'_>> = certs.iter().map(OwnedPathCert::view).collect();
            check(&view)?;
            *accepted.borrow_mut() = certs;
            Ok(())
        });
        result.map_err(|reason| {
            *rejected.borrow_mut() = Some(reason);
            webpki::Error::CertRevoked
        })
    };
    if let Err(e) = ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors.anchors,
        intermediates,
        time,
        KeyUsage::client_auth(),
        None,
        Some(&callback),
    ) {
        return Err(rejected.into_inner().unwrap_or_else(|| map_error(&e)));
    }
    let certs = accepted.into_inner();
    let mut not_before = i64::MIN;
    let mut not_after = i64::MAX;
    for c in certs.iter().filter(|c| !c.is_anchor) {
        let (nb, na) = validity(&c.der)?;
        not_before = not_before.max(nb);
        not_after = not_after.min(na);
    }
    // The leaf's issuer: the first intermediate, or the anchor itself.
    let issuer_der = certs
        .get(1)
        .map(|c| c.der.clone())
        .ok_or_else(|| Reason::InvalidChain {
            detail: "verified path without an issuer".into(),
        })?;
    Ok(VerifiedChain {
        not_before,
        not_after,
        issuer_der,
    })
}

/// A path certificate with owned bytes (webpki's path borrows from a short-lived value).
struct OwnedPathCert {
    der: Vec<u8>,
    serial: Vec<u8>,
    issuer_name: Vec<u8>,
    /// This certificate's own key: the issuer key of the certificate before it.
    spki: Vec<u8>,
    issuer_spki: Vec<u8>,
    is_anchor: bool,
}

impl OwnedPathCert {
    fn view(&self) -> PathCert<'_> {
        PathCert {
            der: &self.der,
            serial: &self.serial,
            issuer_name: &self.issuer_name,
            issuer_spki: &self.issuer_spki,
            is_anchor: self.is_anchor,
        }
    }
}

/// Flattens a webpki path into leaf, intermediates and the anchor certificate, each
/// with its issuer's key.
fn path_certs(anchors: &Anchors, path: &VerifiedPath<'_>) -> Result<Vec<OwnedPathCert>, Reason> {
    let anchor = anchors
        .anchors
        .iter()
        .position(|a| std::ptr::eq(a, path.anchor()))
        .and_then(|i| anchors.certs.get(i))
        .ok_or_else(|| Reason::InvalidChain {
            detail: "verified path ends at an unknown anchor".into(),
        })?;
    let ee: &webpki::Cert<'_> = path.end_entity();
    let mut certs: Vec<OwnedPathCert> = std::iter::once(ee)
        .chain(path.intermediate_certificates())
        .map(|c| OwnedPathCert {
            der: c.der().to_vec(),
            serial: normalize_serial(c.serial()).to_vec(),
            issuer_name: c.issuer().to_vec(),
            spki: c.subject_public_key_info().as_ref().to_vec(),
            issuer_spki: Vec::new(),
            is_anchor: false,
        })
        .collect();
    certs.push(OwnedPathCert {
        der: anchor.der.clone(),
        serial: anchor.serial.clone(),
        issuer_name: anchor.issuer_name.clone(),
        spki: anchor.spki.clone(),
        issuer_spki: anchor.issuer_spki.clone(),
        is_anchor: true,
    });
    // Each certificate was issued by the next one's key; the anchor's issuer key is set.
    for i in 1..certs.len() {
        let issuer_spki = certs[i].spki.clone();
        certs[i - 1].issuer_spki = issuer_spki;
    }
    Ok(certs)
}

fn validity(der: &[u8]) -> Result<(i64, i64), Reason> {
    use x509_parser::prelude::FromDer;
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(der).map_err(|e| {
        Reason::MalformedCertificate {
            detail: e.to_string(),
        }
    })?;
    Ok((
        c.validity().not_before.timestamp(),
        c.validity().not_after.timestamp(),
    ))
}

/// Maps webpki's error to our reason.
pub fn map_error(e: &webpki::Error) -> Reason {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => Reason::UntrustedIssuer,
        E::CertExpired { not_after, .. } => Reason::CertificateExpired {
            not_after: unix(*not_after),
        },
        E::CertNotValidYet { not_before, .. } => Reason::CertificateNotYetValid {
            not_before: unix(*not_before),
        },
        E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => Reason::InvalidKeyUsage,
        E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
        | E::SignatureAlgorithmMismatch => Reason::UnsupportedSignatureAlgorithm,
        E::InvalidSignatureForPublicKey => Reason::BadSignature,
        E::MaximumPathBuildCallsExceeded
        | E::MaximumPathDepthExceeded
        | E::MaximumSignatureChecksExceeded => Reason::ChainTooComplex,
        other => Reason::InvalidChain {
            detail: format!("{other:?}"),
        },
    }
}

fn unix(t: UnixTime) -> i64 {
    i64::try_from(t.as_secs()).unwrap_or(i64::MAX)
}
