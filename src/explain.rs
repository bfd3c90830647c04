//! One explanation of a decision, shared by `certgate check` (offline, on a freshly
//! compiled snapshot) and the `certgate.v1.Admin/Explain` RPC (on the serving snapshot).
//!
//! Both must say what the server would do, so both go through the same engine call
//! ([`engine::explain`]) with the certificate presented the way Envoy's TLS peer
//! certificate is: the leaf, plus intermediates as an XFCC `Chain` would carry them.
//! The only difference from a real request is that every selected role is evaluated
//! (not just up to the first that passes), so an operator sees why each one did or did
//! not match.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::clock::rfc3339;
use crate::engine::{self, AuthRequest, Decision, RoleVerdict};
use crate::pki::cert::ParsedCert;
use crate::pki::pem::decode_certificates;
use crate::revocation::LiveView;
use crate::snapshot::Snapshot;
use crate::source::{CertOrigin, Presented};

/// What to explain: a certificate and the request context around it.
#[derive(Debug, Clone, Default)]
pub struct ExplainInput {
    /// PEM bundle: the first certificate is the leaf, the others intermediates.
    pub certificate_pem: String,
    /// More intermediates (PEM), like an XFCC `Chain`.
    pub chain_pem: Option<String>,
    /// Comma-separated role names, like the route's `certgate_roles`; `None`: all roles.
    pub roles: Option<String>,
    /// The client IP `token_bound_cidrs` apply to; `None`: unknown (bound roles deny).
    pub source_ip: Option<IpAddr>,
    /// The request's `Origin` header.
    pub origin: Option<String>,
    /// The instant to decide at, Unix seconds.
    pub at: i64,
}

/// The decision, every role's verdict, and who the caller is. Serialized as the JSON of
/// `certgate check --json`; the Explain RPC maps it field by field.
#[derive(Debug, Clone, Serialize)]
pub struct ExplainReport {
    /// Whether a role passed.
    pub allowed: bool,
    /// The role that passed.
    pub role: Option<String>,
    /// Stable reason code on deny (the same code a deny body carries).
    pub reason: Option<String>,
    /// The reason with its context on deny.
    pub detail: Option<String>,
    /// The instant decided at, RFC 3339.
    pub at: String,
    /// The client IP `token_bound_cidrs` were checked against (`None`: not given, so
    /// roles bound to CIDRs deny).
    pub source_ip: Option<String>,
    /// Every selected role in evaluation order (unknown requested roles included).
    pub verdicts: Vec<VerdictReport>,
    /// The caller's identity on allow: what the upstream would be told.
    pub identity: Option<IdentityReport>,
    /// The presented leaf.
    pub certificate: CertificateReport,
    /// Fetched CRL sources as they stood after deciding (`certgate check` fills it;
    /// the Explain RPC leaves it empty: `ListCrls` tells the same).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub crl_sources: Vec<CrlSourceSummary>,
}

/// One fetched CRL source.
#[derive(Debug, Clone, Serialize)]
pub struct CrlSourceSummary {
    pub name: String,
    pub url: String,
    /// `crl_urls` or `distribution_point`.
    pub origin: String,
    /// RFC 4514 issuer of the list held; empty when none is held.
    pub issuer: String,
    pub this_update: Option<String>,
    pub next_update: Option<String>,
    pub entries: usize,
    /// `ok`, or the last attempt's error (the last good list, if any, stays in use).
    pub last_fetch: String,
}

impl CrlSourceSummary {
    /// Summarizes a live source.
    pub fn of(s: &crate::revocation::live::CrlSourceReport) -> CrlSourceSummary {
        CrlSourceSummary {
            name: s.name.clone(),
            url: s.url.clone(),
            origin: s.origin.as_str().into(),
            issuer: s.crl.as_ref().map(|c| c.issuer.clone()).unwrap_or_default(),
            this_update: s.crl.as_ref().map(|c| rfc3339(c.this_update)),
            next_update: s.crl.as_ref().and_then(|c| c.next_update).map(rfc3339),
            entries: s.crl.as_ref().map_or(0, |c| c.len()),
            last_fetch: match (&s.last_error, s.last_attempt) {
                (Some(e), _) => format!("error: {e}"),
                (None, Some(_)) => "ok".into(),
                (None, None) => "not yet".into(),
            },
        }
    }
}

/// One role's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct VerdictReport {
    /// Role name.
    pub role: String,
    /// Whether this role alone would allow.
    pub allowed: bool,
    /// Reason code when it denies.
    pub reason: Option<String>,
    /// The reason with its context when it denies.
    pub detail: Option<String>,
}

/// The identity an allow produces.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityReport {
    /// The role that passed.
    pub role: String,
    /// Its `display_name`.
    pub display_name: String,
    /// The `unique_identifier` value.
    pub sub: String,
    /// Leaf subject, RFC 4514.
    pub subject: String,
    /// Leaf issuer, RFC 4514.
    pub issuer: String,
    /// Leaf serial, lower-case hex.
    pub serial: String,
    /// SHA-256 of the leaf DER, lower-case hex.
    pub fingerprint_sha256: String,
    /// URI SANs.
    pub uri_sans: Vec<String>,
    /// DNS SANs.
    pub dns_sans: Vec<String>,
    /// The role's `token_policies`.
    pub policies: Vec<String>,
    /// Metadata extensions: dashed OID → value.
    pub metadata: BTreeMap<String, String>,
}

/// A certificate's fields an operator compares against role constraints.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateReport {
    /// RFC 4514 subject.
    pub subject: String,
    /// RFC 4514 issuer.
    pub issuer: String,
    /// Lower-case hex serial.
    pub serial: String,
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint_sha256: String,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
    /// basicConstraints CA=true.
    pub is_ca: bool,
    /// Subject CN values.
    pub common_names: Vec<String>,
    /// Subject OU values.
    pub organizational_units: Vec<String>,
    /// Subject O values.
    pub organizations: Vec<String>,
    /// DNS SANs.
    pub dns_sans: Vec<String>,
    /// URI SANs.
    pub uri_sans: Vec<String>,
    /// Email SANs.
    pub email_sans: Vec<String>,
    /// CRL distribution point URLs.
    pub crl_distribution_points: Vec<String>,
    /// Intermediates presented with the leaf.
    pub intermediates: usize,
}

impl CertificateReport {
    /// The report of one parsed certificate (`intermediates` is left 0).
    pub fn of(cert: &ParsedCert) -> CertificateReport {
        CertificateReport {
            subject: cert.subject.clone(),
            issuer: cert.issuer.clone(),
            serial: cert.serial_hex.clone(),
            fingerprint_sha256: cert.fingerprint_hex.clone(),
            not_before: rfc3339(cert.not_before),
            not_after: rfc3339(cert.not_after),
            is_ca: cert.is_ca,
            common_names: cert.common_names.clone(),
            organizational_units: cert.organizational_units.clone(),
            organizations: cert.organizations.clone(),
            dns_sans: cert.dns_sans.clone(),
            uri_sans: cert.uri_sans.clone(),
            email_sans: cert.email_sans.clone(),
            crl_distribution_points: cert.crl_distribution_points.clone(),
            intermediates: 0,
        }
    }
}

/// Explains what the server would decide for `input` under `snapshot`.
///
/// Errors only when the input is not a certificate at all (no PEM certificate block,
/// broken encoding, a leaf that is not X.509, an unreadable chain): a tool asked to
/// explain a certificate has nothing to explain then, which is different from a deny.
/// Everything else (unknown roles, expired certificates, no roles configured) is a
/// deny with its reason, exactly as a request would get.
///
/// `live`: fetched CRLs and OCSP (see [`crate::revocation::LiveRevocation::decide`]);
/// `None` decides with the snapshot's CRL files only.
pub fn explain(
    snapshot: &Snapshot,
    input: &ExplainInput,
    live: Option<&dyn LiveView>,
) -> Result<ExplainReport, String> {
    let bundle =
        decode_certificates(&input.certificate_pem).map_err(|e| format!("certificate: {e}"))?;
    let Some((leaf_der, bundle_rest)) = bundle.split_first() else {
        return Err("certificate: no PEM CERTIFICATE block found".into());
    };
    let leaf = ParsedCert::from_der(leaf_der.clone()).map_err(|e| format!("certificate: {e}"))?;
    let mut intermediates: Vec<&[u8]> = bundle_rest.iter().map(|d| d.as_ref()).collect();
    let chain_ders = match input.chain_pem.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(chain) => decode_certificates(chain).map_err(|e| format!("chain: {e}"))?,
        None => Vec::new(),
    };
    intermediates.extend(chain_ders.iter().map(|d| d.as_ref()));

    // Canonical PEM, so that the same certificate explained twice hits the same
    // verified-chain cache entry whatever the input's line endings or comments were.
    let leaf_pem = pem_of(leaf_der.as_ref());
    let chain_pem: String = intermediates.iter().map(|d| pem_of(d)).collect();
    let presented = Presented {
        leaf: Cow::Owned(leaf_pem),
        chain: (!chain_pem.is_empty()).then_some(Cow::Owned(chain_pem)),
        origin: CertOrigin::Peer,
        xfcc_ignored: false,
    };
    let request = AuthRequest {
        presented: &presented,
        roles: input.roles.as_deref(),
        client_ip: input.source_ip,
        origin: input.origin.as_deref(),
        now: input.at,
        live,
    };
    let (decision, verdicts) = engine::explain(snapshot, &request);

    let mut certificate = CertificateReport::of(&leaf);
    certificate.intermediates = intermediates.len();
    let verdicts = verdicts.iter().map(verdict_report).collect();
    let at = rfc3339(input.at);
    Ok(match decision {
        Decision::Allow(grant) => {
            let cert = &grant.client.leaf;
            ExplainReport {
                allowed: true,
                role: Some(grant.role.name.to_string()),
                reason: None,
                detail: None,
                at,
                source_ip: input.source_ip.map(|ip| ip.to_string()),
                verdicts,
                identity: Some(IdentityReport {
                    role: grant.role.name.to_string(),
                    display_name: grant.role.display_name.to_string(),
                    sub: grant.sub.clone(),
                    subject: cert.subject.clone(),
                    issuer: cert.issuer.clone(),
                    serial: cert.serial_hex.clone(),
                    fingerprint_sha256: cert.fingerprint_hex.clone(),
                    uri_sans: cert.uri_sans.clone(),
                    dns_sans: cert.dns_sans.clone(),
                    policies: grant.role.policies.clone(),
                    metadata: grant.meta.iter().cloned().collect(),
                }),
                certificate,
                crl_sources: Vec::new(),
            }
        }
        Decision::Deny(denial) => ExplainReport {
            allowed: false,
            role: None,
            reason: Some(denial.reason.code().to_string()),
            detail: Some(denial.reason.to_string()),
            at,
            source_ip: input.source_ip.map(|ip| ip.to_string()),
            verdicts,
            identity: None,
            certificate,
            crl_sources: Vec::new(),
        },
    })
}

fn verdict_report(v: &RoleVerdict) -> VerdictReport {
    match &v.outcome {
        Ok(()) => VerdictReport {
            role: v.role.to_string(),
            allowed: true,
            reason: None,
            detail: None,
        },
        Err(reason) => VerdictReport {
            role: v.role.to_string(),
            allowed: false,
            reason: Some(reason.code().to_string()),
            detail: Some(reason.to_string()),
        },
    }
}

fn pem_of(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_deny() {
        let loaded = crate::config::LoadedConfig::with_defaults(std::env::temp_dir());
        let Ok(snapshot) = Snapshot::compile(loaded, 1) else {
            panic!("defaults compile");
        };
        let input = ExplainInput {
            certificate_pem: "not a certificate".into(),
            ..ExplainInput::default()
        };
        assert!(explain(&snapshot, &input, None).is_err());
        let input = ExplainInput {
            certificate_pem: "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n"
                .into(),
            ..ExplainInput::default()
        };
        assert!(explain(&snapshot, &input, None).is_err());
    }
}
