//! Why a request was denied: one enum, one stable snake_case code per variant.
//!
//! Codes appear in deny bodies, metrics labels and audit lines; they never change
//! meaning once released. Tests assert on variants, not on messages.

use std::fmt;

use crate::clock::rfc3339;

/// A deny reason. Variants carry the context an operator needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    // --- where the certificate comes from ---
    /// No certificate from any configured source.
    NoClientCertificate,
    /// The certificate bytes could not be decoded or parsed.
    MalformedCertificate {
        detail: String,
    },
    /// A trusted XFCC header could not be parsed.
    MalformedXfcc {
        detail: String,
    },
    /// The right-most XFCC element does not describe the TLS peer's certificate.
    XfccMismatch,

    // --- role selection ---
    /// No roles are configured.
    NoRoles,
    /// The route asked for a role that does not exist.
    RoleNotFound {
        role: String,
    },

    // --- chain ---
    /// No path from the certificate to one of the role's trust anchors.
    UntrustedIssuer,
    /// The role pins leaf certificates and the presented one is none of them.
    LeafNotPinned,
    /// A certificate in the chain is past its notAfter.
    CertificateExpired {
        not_after: i64,
    },
    /// A certificate in the chain is before its notBefore.
    CertificateNotYetValid {
        not_before: i64,
    },
    /// The leaf's extended key usage does not allow client authentication.
    InvalidKeyUsage,
    /// A signature uses an algorithm we refuse (SHA-1, unknown).
    UnsupportedSignatureAlgorithm,
    /// A signature in the chain does not verify.
    BadSignature,
    /// Path building gave up (too many candidates, too deep).
    ChainTooComplex,
    /// Any other chain error from the verifier.
    InvalidChain {
        detail: String,
    },

    // --- names and extensions ---
    CommonNameNotAllowed,
    DnsSanNotAllowed,
    EmailSanNotAllowed,
    UriSanNotAllowed,
    OrganizationalUnitNotAllowed,
    OrganizationNotAllowed,
    /// The deprecated `allowed_names` matched none of CN, DNS and email SANs.
    NameNotAllowed,
    /// A `required_extensions` entry did not match (or the OID is absent).
    RequiredExtensionMismatch {
        oid: String,
    },

    // --- revocation ---
    /// A certificate in every candidate chain is listed on its issuer's CRL.
    RevokedCrl {
        serial: String,
    },
    /// A certificate in the chain is listed in the role's `revoked_cert_ids`.
    RevokedCertId {
        id: String,
    },
    /// OCSP says revoked.
    RevokedOcsp {
        serial: String,
    },
    /// OCSP gave no usable good answer and the role fails closed.
    OcspUnavailable {
        detail: String,
    },
    /// An OCSP response for the certificate failed its signature check: a forgery or a
    /// broken responder. Denies even with `ocsp_fail_open`.
    OcspInvalid {
        detail: String,
    },
    /// `require_crl_distribution_points`: no CDP or no CRL checked for it.
    CrlRequired,
    /// A CRL needed for the decision is past its nextUpdate and policy denies.
    CrlExpired,

    // --- request context ---
    /// The client IP is outside the role's bound CIDRs (or unknown).
    SourceIpNotAllowed,
    /// The role's `expires_at` has passed.
    RoleExpired,
    /// The Origin header's host matches none of `allowed_cors_domains`.
    OriginNotAllowed,
    /// The value chosen by `unique_identifier` is absent from the certificate.
    IdentifierMissing {
        field: &'static str,
    },

    /// The route's `certgate_roles` named no role at all (e.g. `","`).
    NoMatchingRole,
}

impl Reason {
    /// The stable code used in responses, metrics and audit lines.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::NoClientCertificate => "no_client_certificate",
            Reason::MalformedCertificate { .. } => "malformed_certificate",
            Reason::MalformedXfcc { .. } => "malformed_xfcc",
            Reason::XfccMismatch => "xfcc_mismatch",
            Reason::NoRoles => "no_roles",
            Reason::RoleNotFound { .. } => "role_not_found",
            Reason::UntrustedIssuer => "untrusted_issuer",
            Reason::LeafNotPinned => "leaf_not_pinned",
            Reason::CertificateExpired { .. } => "certificate_expired",
            Reason::CertificateNotYetValid { .. } => "certificate_not_yet_valid",
            Reason::InvalidKeyUsage => "invalid_key_usage",
            Reason::UnsupportedSignatureAlgorithm => "unsupported_signature_algorithm",
            Reason::BadSignature => "bad_signature",
            Reason::ChainTooComplex => "chain_too_complex",
            Reason::InvalidChain { .. } => "invalid_chain",
            Reason::CommonNameNotAllowed => "common_name_not_allowed",
            Reason::DnsSanNotAllowed => "dns_san_not_allowed",
            Reason::EmailSanNotAllowed => "email_san_not_allowed",
            Reason::UriSanNotAllowed => "uri_san_not_allowed",
            Reason::OrganizationalUnitNotAllowed => "organizational_unit_not_allowed",
            Reason::OrganizationNotAllowed => "organization_not_allowed",
            Reason::NameNotAllowed => "name_not_allowed",
            Reason::RequiredExtensionMismatch { .. } => "required_extension_mismatch",
            Reason::RevokedCrl { .. } => "revoked_crl",
            Reason::RevokedCertId { .. } => "revoked_cert_id",
            Reason::RevokedOcsp { .. } => "revoked_ocsp",
            Reason::OcspUnavailable { .. } => "ocsp_unavailable",
            Reason::OcspInvalid { .. } => "ocsp_invalid",
            Reason::CrlRequired => "crl_required",
            Reason::CrlExpired => "crl_expired",
            Reason::SourceIpNotAllowed => "source_ip_not_allowed",
            Reason::RoleExpired => "role_expired",
            Reason::OriginNotAllowed => "origin_not_allowed",
            Reason::IdentifierMissing { .. } => "identifier_missing",
            Reason::NoMatchingRole => "no_matching_role",
        }
    }

    /// How far along the per-role check order (chain → names → extensions →
    /// revocation → client IP → expiry → origin) this reason arises. When several
    /// roles fail, the reason of the role that got furthest is the most useful one.
    pub fn stage(&self) -> u8 {
        match self {
            Reason::NoClientCertificate
            | Reason::MalformedCertificate { .. }
            | Reason::MalformedXfcc { .. }
            | Reason::XfccMismatch
            | Reason::NoRoles
            | Reason::RoleNotFound { .. }
            | Reason::NoMatchingRole => 0,
            Reason::UntrustedIssuer
            | Reason::LeafNotPinned
            | Reason::UnsupportedSignatureAlgorithm
            | Reason::BadSignature
            | Reason::ChainTooComplex
            | Reason::InvalidChain { .. } => 1,
            Reason::CertificateExpired { .. }
            | Reason::CertificateNotYetValid { .. }
            | Reason::InvalidKeyUsage => 2,
            Reason::CommonNameNotAllowed
            | Reason::DnsSanNotAllowed
            | Reason::EmailSanNotAllowed
            | Reason::UriSanNotAllowed
            | Reason::OrganizationalUnitNotAllowed
            | Reason::OrganizationNotAllowed
            | Reason::NameNotAllowed => 3,
            Reason::RequiredExtensionMismatch { .. } => 4,
            Reason::RevokedCrl { .. }
            | Reason::RevokedCertId { .. }
            | Reason::RevokedOcsp { .. }
            | Reason::OcspUnavailable { .. }
            | Reason::OcspInvalid { .. }
            | Reason::CrlRequired
            | Reason::CrlExpired => 5,
            Reason::SourceIpNotAllowed => 6,
            Reason::RoleExpired => 7,
            Reason::OriginNotAllowed => 8,
            Reason::IdentifierMissing { .. } => 9,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::MalformedCertificate { detail }
            | Reason::MalformedXfcc { detail }
            | Reason::InvalidChain { detail }
            | Reason::OcspUnavailable { detail }
            | Reason::OcspInvalid { detail } => write!(f, "{}: {detail}", self.code()),
            Reason::RoleNotFound { role } => write!(f, "{}: {role}", self.code()),
            Reason::CertificateExpired { not_after } => {
                write!(f, "{}: notAfter {}", self.code(), rfc3339(*not_after))
            }
            Reason::CertificateNotYetValid { not_before } => {
                write!(f, "{}: notBefore {}", self.code(), rfc3339(*not_before))
            }
            Reason::RequiredExtensionMismatch { oid } => write!(f, "{}: {oid}", self.code()),
            Reason::RevokedCrl { serial } | Reason::RevokedOcsp { serial } => {
                write!(f, "{}: serial {serial}", self.code())
            }
            Reason::RevokedCertId { id } => write!(f, "{}: {id}", self.code()),
            Reason::IdentifierMissing { field } => write!(f, "{}: {field}", self.code()),
            _ => f.write_str(self.code()),
        }
    }
}
