//! A certificate parsed once into the values roles match against. Built on a cache
//! miss (or at reload for role certificates), never per request.

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_OCSP;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use super::der;
use super::pem::sha256;

/// The values of one certificate that roles, headers and audit records use.
#[derive(Debug, Clone)]
pub struct ParsedCert {
    /// The DER bytes, for pinning (exact equality) and chain building.
    pub der: CertificateDer<'static>,
    /// Subject as RFC 4514 text (`CN=web,OU=eng,O=Acme`), for headers and logs.
    pub subject: String,
    /// Issuer as RFC 4514 text.
    pub issuer: String,
    /// Subject Name without its outer SEQUENCE tag, as webpki holds names: finds the
    /// CRLs this certificate issues.
    pub subject_name: Vec<u8>,
    /// Issuer Name without its outer SEQUENCE tag: finds the CRL that covers us.
    pub issuer_name: Vec<u8>,
    /// SubjectPublicKeyInfo DER: which key signs what this certificate issues.
    pub spki: Vec<u8>,
    /// Every subject CN value.
    pub common_names: Vec<String>,
    /// Every subject OU value.
    pub organizational_units: Vec<String>,
    /// Every subject O value.
    pub organizations: Vec<String>,
    /// DNS SANs.
    pub dns_sans: Vec<String>,
    /// Email (rfc822) SANs.
    pub email_sans: Vec<String>,
    /// URI SANs, as written.
    pub uri_sans: Vec<String>,
    /// Serial without leading zero octets.
    pub serial: Vec<u8>,
    /// Serial as lower-case hex (no separators).
    pub serial_hex: String,
    /// SHA-256 of the DER.
    pub fingerprint: [u8; 32],
    /// `fingerprint` as lower-case hex.
    pub fingerprint_hex: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// basicConstraints CA=true: an anchor (in a role) rather than a pinned leaf.
    pub is_ca: bool,
    /// Every extension: dotted OID and raw extnValue contents.
    pub extensions: Vec<(String, Vec<u8>)>,
    /// CRL distribution point URIs.
    pub crl_distribution_points: Vec<String>,
    /// OCSP responder URIs from the AIA extension.
    pub ocsp_responders: Vec<String>,
    /// The extended key usage allows client authentication (no EKU extension, or
    /// `anyExtendedKeyUsage`, or `clientAuth`).
    pub client_auth: bool,
}

impl ParsedCert {
    /// Parses DER. The error says what is wrong, for a `malformed_certificate` reason.
    pub fn from_der(der: CertificateDer<'static>) -> Result<ParsedCert, String> {
        let (rest, cert) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        if !rest.is_empty() {
            return Err("trailing bytes after the certificate".into());
        }
        let subject_name = der::sequence_contents(cert.subject().as_raw())
            .ok_or("malformed subject name")?
            .to_vec();
        let issuer_name = der::sequence_contents(cert.issuer().as_raw())
            .ok_or("malformed issuer name")?
            .to_vec();
        let strings = |it: &mut dyn Iterator<
            Item = &x509_parser::x509::AttributeTypeAndValue<'_>,
        >| { it.filter_map(|a| attribute_text(a)).collect::<Vec<_>>() };
        let common_names = strings(&mut cert.subject().iter_common_name());
        let organizational_units = strings(&mut cert.subject().iter_organizational_unit());
        let organizations = strings(&mut cert.subject().iter_organization());

        let mut dns_sans = Vec::new();
        let mut email_sans = Vec::new();
        let mut uri_sans = Vec::new();
        let mut crl_distribution_points = Vec::new();
        let mut ocsp_responders = Vec::new();
        let mut client_auth = true;
        let mut extensions = Vec::with_capacity(cert.extensions().len());
        for ext in cert.extensions() {
            extensions.push((ext.oid.to_id_string(), ext.value.to_vec()));
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        match name {
                            GeneralName::DNSName(s) => dns_sans.push((*s).to_string()),
                            GeneralName::RFC822Name(s) => email_sans.push((*s).to_string()),
                            GeneralName::URI(s) => uri_sans.push((*s).to_string()),
                            _ => {}
                        }
                    }
                }
                ParsedExtension::CRLDistributionPoints(cdps) => {
                    for point in cdps.iter() {
                        if let Some(DistributionPointName::FullName(names)) =
                            &point.distribution_point
                        {
                            for name in names {
                                if let GeneralName::URI(u) = name {
                                    crl_distribution_points.push((*u).to_string());
                                }
                            }
                        }
                    }
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    client_auth = eku.any || eku.client_auth;
                }
                ParsedExtension::AuthorityInfoAccess(aia) => {
                    for desc in &aia.accessdescs {
                        if desc.access_method == OID_PKIX_ACCESS_DESCRIPTOR_OCSP
                            && let GeneralName::URI(u) = &desc.access_location
                        {
                            ocsp_responders.push((*u).to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        let serial = der::normalize_serial(cert.raw_serial()).to_vec();
        let fingerprint = sha256(der.as_ref());
        Ok(ParsedCert {
            subject: rfc4514(cert.subject()),
            issuer: rfc4514(cert.issuer()),
            subject_name,
            issuer_name,
            spki: cert.public_key().raw.to_vec(),
            common_names,
            organizational_units,
            organizations,
            dns_sans,
            email_sans,
            uri_sans,
            serial_hex: hex::encode(&serial),
            serial,
            fingerprint_hex: hex::encode(fingerprint),
            fingerprint,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            is_ca: cert.is_ca(),
            extensions,
            crl_distribution_points,
            ocsp_responders,
            client_auth,
            der,
        })
    }

    /// The raw value of an extension, if present.
    pub fn extension(&self, oid: &str) -> Option<&[u8]> {
        self.extensions
            .iter()
            .find(|(o, _)| o == oid)
            .map(|(_, v)| v.as_slice())
    }

    /// Whether `now` (Unix seconds) is inside the validity window.
    pub fn valid_at(&self, now: i64) -> Result<(), crate::engine::Reason> {
        if now < self.not_before {
            Err(crate::engine::Reason::CertificateNotYetValid {
                not_before: self.not_before,
            })
        } else if now > self.not_after {
            Err(crate::engine::Reason::CertificateExpired {
                not_after: self.not_after,
            })
        } else {
            Ok(())
        }
    }
}

/// Whether the certificate `der` carries a signature that verifies with `spki_der`
/// (a SubjectPublicKeyInfo with its SEQUENCE): finds which configured CA issued a
/// certificate, so its CRL can be applied.
pub fn signed_by(der: &[u8], spki_der: &[u8]) -> bool {
    use x509_parser::prelude::SubjectPublicKeyInfo;
    let (Ok((_, cert)), Ok((_, spki))) = (
        X509Certificate::from_der(der),
        SubjectPublicKeyInfo::from_der(spki_der),
    ) else {
        return false;
    };
    cert.verify_signature(Some(&spki)).is_ok()
}

/// An attribute's value as text; non-string values are skipped.
fn attribute_text(a: &x509_parser::x509::AttributeTypeAndValue<'_>) -> Option<String> {
    a.as_str().ok().map(String::from)
}

/// RFC 4514 text of a Name: RDNs in reverse order, `,` between them, `+` inside one.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            out.push_str(short_name(&oid).unwrap_or(&oid));
            out.push('=');
            match attr.as_str() {
                Ok(v) => escape_rfc4514(v, &mut out),
                Err(_) => {
                    out.push('#');
                    out.push_str(&hex::encode::<&[u8]>(attr.attr_value().data));
                }
            }
        }
    }
    out
}

fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.11" => "OU",
        "2.5.4.10" => "O",
        "2.5.4.6" => "C",
        "2.5.4.8" => "ST",
        "2.5.4.7" => "L",
        "2.5.4.9" => "STREET",
        "2.5.4.5" => "SERIALNUMBER",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

fn escape_rfc4514(v: &str, out: &mut String) {
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
            out.push(c);
        } else if c.is_control() {
            out.push_str(&format!("\\{:02X}", c as u32 & 0xff));
        } else {
            out.push(c);
        }
    }
}
