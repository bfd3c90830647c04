//! The immutable world one (re)load produces: compiled roles (anchors, pinned leaves,
//! glob sets, extension rules, CIDRs), the pool of configured intermediates, the CRL
//! index, the compiled global settings, a generation number, and the verified-chain
//! cache. Everything a request needs is prepared here once, never per request; the
//! cache lives and dies with the snapshot, so a reload invalidates it by construction.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use ipnet::IpNet;
use rustls_pki_types::CertificateDer;

use crate::config::schema::{DurationValue, GlobalConfig, StringList};
use crate::config::{ConfigError, LoadedConfig, LoadedRole};
use crate::engine::cache::ChainCache;
use crate::pki::cert::ParsedCert;
use crate::pki::chain::{AnchorCert, Anchors};
use crate::pki::der::normalize_serial;
use crate::pki::glob::GlobSet;
use crate::pki::pem::{MAX_BUNDLE_BYTES, MAX_BUNDLE_CERTIFICATES, decode_certificates_within};
use crate::revocation::{CrlEntry, CrlIndex};
use crate::source::SourcePolicy;

/// Everything a decision needs, compiled once per reload.
pub struct Snapshot {
    /// Increases by one on every successful reload.
    pub generation: u64,
    /// Content hash of every file read; equal hashes mean nothing changed.
    pub fingerprint: [u8; 32],
    /// Roles in the order they are tried: pinned-leaf roles first, then by name.
    pub roles: Vec<Arc<Role>>,
    /// Role name → index in `roles`.
    pub role_index: HashMap<String, usize>,
    /// Every CA certificate of every role: intermediates for path building (Envoy sends
    /// only the leaf, so a role's bundle is where intermediates usually come from).
    pub intermediates: Vec<CertificateDer<'static>>,
    /// The same CA certificates, parsed: CRL and OCSP issuers are looked up here.
    pub cas: Vec<Arc<ParsedCert>>,
    /// CRLs by issuer.
    pub crls: CrlIndex,
    /// Compiled global settings.
    pub settings: Settings,
    /// Verified chains by presented certificate bytes.
    pub cache: ChainCache,
    /// Where the files came from (for `validate`, the read API and the watcher).
    pub sources: Sources,
    /// Warnings found while compiling (ignored Vault fields, ...), for `validate`.
    pub warnings: Vec<String>,
}

/// Where this snapshot's files live.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The global config file, if any.
    pub config_path: Option<PathBuf>,
    /// The resolved roles directory.
    pub roles_dir: PathBuf,
    /// The resolved CRL directory.
    pub crls_dir: PathBuf,
}

/// Global settings in the form requests use them.
#[derive(Debug)]
pub struct Settings {
    /// The global config as written (validated): listen addresses, deny status and
    /// detail, CRL policy, logging. Only what requests need in another form follows.
    pub global: GlobalConfig,
    /// Certificate sources and XFCC trust.
    pub source: SourcePolicy,
    /// Identity header prefix, lower-case.
    pub header_prefix: String,
    /// `header_prefix` + each suffix of [`crate::engine::IDENTITY_FIELDS`], built once
    /// per reload so a request formats no header name.
    pub identity_headers: Vec<String>,
    /// `header_prefix` + `meta-`.
    pub meta_header_prefix: String,
}

/// A compiled role.
#[derive(Debug)]
pub struct Role {
    /// Lower-case name.
    pub name: Arc<str>,
    /// `display_name`, default the name.
    pub display_name: Arc<str>,
    /// The file it came from.
    pub path: PathBuf,
    /// CA certificates of the role: path building ends at one of them.
    pub anchors: Anchors,
    /// Non-CA certificates: the presented leaf must equal one byte for byte.
    pub pinned: Vec<Arc<ParsedCert>>,
    /// For each pinned leaf, the key of the configured CA that issued it (so that CA's
    /// CRL applies to it, as Vault checks pinned certificates against CRLs too).
    pub pinned_issuer_spki: Vec<Option<Vec<u8>>>,
    /// For each pinned leaf, that issuing CA's certificate (OCSP requests name it).
    pub pinned_issuer_der: Vec<Option<Vec<u8>>>,
    /// Summaries of the role's certificates, for the read API.
    pub certificates: Vec<Arc<ParsedCert>>,
    /// Name constraints.
    pub names: NameRules,
    /// `required_extensions`.
    pub required_extensions: Vec<ExtensionRule>,
    /// `allowed_metadata_extensions`: (dotted OID, dashed key).
    pub metadata_extensions: Vec<(String, String)>,
    /// `token_policies`.
    pub policies: Vec<String>,
    /// `policies` joined with `,`, ready for the header.
    pub policies_joined: Arc<str>,
    /// `token_bound_cidrs`.
    pub bound_cidrs: Vec<IpNet>,
    /// Which value is `sub`.
    pub unique_identifier: UniqueIdentifier,
    /// `revoked_cert_ids`.
    pub revoked: RevokedIds,
    /// `expires_at`, Unix seconds.
    pub expires_at: Option<i64>,
    /// `allowed_cors_domains`.
    pub cors_domains: GlobSet,
    /// `audit_log_sub_claims`.
    pub audit_log_sub_claims: Vec<String>,
    /// `require_crl_distribution_points`.
    pub require_crl_distribution_points: bool,
    /// OCSP settings, for the revocation layer.
    pub ocsp: OcspRole,
    /// `token_ttl` / `token_max_ttl`, for the signed identity assertion.
    pub token_ttl: Option<DurationValue>,
    /// See `token_ttl`.
    pub token_max_ttl: Option<DurationValue>,
}

impl Role {
    /// Pinned-leaf roles are tried before CA roles.
    pub fn is_pinned(&self) -> bool {
        !self.pinned.is_empty()
    }
}

/// Glob constraints on names. An empty set constrains nothing.
#[derive(Debug, Default)]
pub struct NameRules {
    pub common_names: GlobSet,
    pub dns_sans: GlobSet,
    pub email_sans: GlobSet,
    pub uri_sans: GlobSet,
    pub organizational_units: GlobSet,
    pub organizations: GlobSet,
    /// Deprecated `allowed_names`: CN, DNS and email SANs.
    pub names: GlobSet,
}

/// One `required_extensions` entry.
#[derive(Debug, Clone)]
pub struct ExtensionRule {
    /// Dotted OID.
    pub oid: String,
    /// Compare the lower-case hex of the raw value instead of its ASN.1 string.
    pub hex: bool,
    /// The glob the value must match.
    pub glob: crate::pki::glob::Glob,
    /// The entry as written, for messages.
    pub text: String,
}

/// Which certificate value becomes the caller's `sub`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueIdentifier {
    CommonName,
    OrganizationalUnit,
    UriSan,
    DnsSan,
    EmailSan,
    SerialNumber,
    FingerprintSha256,
}

impl UniqueIdentifier {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "common_name" | "cn" => UniqueIdentifier::CommonName,
            "organizational_unit" | "ou" => UniqueIdentifier::OrganizationalUnit,
            "uri_san" | "uri_sans" => UniqueIdentifier::UriSan,
            "dns_san" | "dns_sans" => UniqueIdentifier::DnsSan,
            "email_san" | "email_sans" => UniqueIdentifier::EmailSan,
            "serial_number" | "serial" => UniqueIdentifier::SerialNumber,
            "fingerprint_sha256" | "fingerprint" => UniqueIdentifier::FingerprintSha256,
            _ => return None,
        })
    }

    /// The field's name in messages.
    pub fn field(self) -> &'static str {
        match self {
            UniqueIdentifier::CommonName => "common_name",
            UniqueIdentifier::OrganizationalUnit => "organizational_unit",
            UniqueIdentifier::UriSan => "uri_san",
            UniqueIdentifier::DnsSan => "dns_san",
            UniqueIdentifier::EmailSan => "email_san",
            UniqueIdentifier::SerialNumber => "serial_number",
            UniqueIdentifier::FingerprintSha256 => "fingerprint_sha256",
        }
    }
}

/// `revoked_cert_ids`: serials (normalized bytes) and SHA-256 fingerprints.
#[derive(Debug, Default)]
pub struct RevokedIds {
    pub serials: std::collections::HashSet<Vec<u8>>,
    pub fingerprints: std::collections::HashSet<[u8; 32]>,
}

impl RevokedIds {
    /// The matching id as text, if `serial` or the certificate's SHA-256 is listed. The
    /// fingerprint is computed only when fingerprints are listed at all.
    pub fn find(&self, serial: &[u8], fingerprint: impl FnOnce() -> [u8; 32]) -> Option<String> {
        if self.serials.contains(normalize_serial(serial)) {
            return Some(format!("serial {}", hex::encode(normalize_serial(serial))));
        }
        if self.fingerprints.is_empty() {
            return None;
        }
        let fingerprint = fingerprint();
        self.fingerprints
            .contains(&fingerprint)
            .then(|| format!("sha256 {}", hex::encode(fingerprint)))
    }

    /// Nothing listed.
    pub fn is_empty(&self) -> bool {
        self.serials.is_empty() && self.fingerprints.is_empty()
    }
}

/// A role's OCSP settings (consumed by the revocation layer).
#[derive(Debug, Clone, Default)]
pub struct OcspRole {
    pub enabled: bool,
    pub ca_certificates: Vec<Arc<ParsedCert>>,
    pub servers_override: Vec<String>,
    pub fail_open: bool,
    pub query_all_servers: bool,
    pub this_update_max_age: Option<DurationValue>,
    pub max_retries: u32,
}

/// Counters the metrics layer reads.
#[derive(Debug, Default)]
pub struct CacheCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl Snapshot {
    /// Compiles loaded files into a snapshot; any semantic error rejects the whole load.
    pub fn compile(loaded: LoadedConfig, generation: u64) -> Result<Snapshot, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let settings = match compile_settings(&loaded.global) {
            Ok(s) => Some(s),
            Err(e) => {
                errors.extend(
                    e.into_iter()
                        .map(|(field, msg)| loaded.field_error(field, msg)),
                );
                None
            }
        };

        let mut compiled = Vec::with_capacity(loaded.roles.len());
        for role in &loaded.roles {
            for field in role.spec.ignored_fields() {
                warnings.push(format!(
                    "{}: field {field} is accepted for Vault/OpenBao compatibility and ignored",
                    role.path.display()
                ));
            }
            match compile_role(role) {
                Ok(r) => compiled.push(r),
                Err(e) => errors.extend(e),
            }
        }
        let mut url_names = std::collections::HashSet::new();
        for source in &loaded.global.crl_urls {
            let problem = if !(source.url.starts_with("http://")
                || source.url.starts_with("https://"))
                || source
                    .url
                    .parse::<hyper::Uri>()
                    .ok()
                    .is_none_or(|u| u.host().is_none())
            {
                Some(format!(
                    "crl_urls: {:?} is not an http:// or https:// URL",
                    source.url
                ))
            } else if source.name.is_empty() {
                Some(format!(
                    "crl_urls: the entry for {:?} has no name",
                    source.url
                ))
            } else if !url_names.insert(source.name.as_str()) {
                Some(format!(
                    "crl_urls: the name {:?} is used twice",
                    source.name
                ))
            } else if loaded.crls.iter().any(|f| f.name == source.name) {
                Some(format!(
                    "crl_urls: the name {:?} is already the name of a CRL file in crls_dir",
                    source.name
                ))
            } else {
                None
            };
            if let Some(message) = problem {
                errors.push(loaded.field_error("crl_urls", message));
            }
        }
        compiled.sort_by(|a, b| {
            b.is_pinned()
                .cmp(&a.is_pinned())
                .then_with(|| a.name.cmp(&b.name))
        });
        // Every CA certificate of every role, once, in role order.
        let mut cas: Vec<Arc<ParsedCert>> = Vec::new();
        for cert in compiled
            .iter()
            .flat_map(|r| r.certificates.iter().filter(|c| c.is_ca))
        {
            if !cas.iter().any(|c| c.der == cert.der) {
                cas.push(Arc::clone(cert));
            }
        }
        resolve_issuers(&mut compiled, &cas);
        let roles: Vec<Arc<Role>> = compiled.into_iter().map(Arc::new).collect();
        let intermediates: Vec<CertificateDer<'static>> =
            cas.iter().map(|c| c.der.clone()).collect();
        let known_cas: Vec<&ParsedCert> = cas.iter().map(|c| c.as_ref()).collect();

        let mut crl_entries = Vec::new();
        for file in &loaded.crls {
            match CrlEntry::parse(
                &file.name,
                &file.path.display().to_string(),
                file.der.clone(),
            ) {
                Ok(c) => crl_entries.push(c),
                Err(msg) => errors.push(ConfigError::in_file(&file.path, msg)),
            }
        }
        let crls = match CrlIndex::build(crl_entries, &known_cas) {
            Ok(index) => {
                for crl in index.entries().iter().filter(|c| c.verified_by.is_none()) {
                    warnings.push(format!(
                        "{}: CRL issuer {} is not a CA in any role: its signature is verified when a request's chain reaches that issuer (a CRL that does not verify then is ignored)",
                        crl.source, crl.issuer
                    ));
                }
                index
            }
            Err(msgs) => {
                errors.extend(
                    msgs.into_iter()
                        .map(|m| ConfigError::in_file(&loaded.crls_dir, m)),
                );
                CrlIndex::default()
            }
        };

        let Some(settings) = settings else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let role_index = roles
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.to_string(), i))
            .collect();
        let cache = ChainCache::new(
            loaded.global.cache.max_entries,
            loaded.global.cache.ttl.0,
            roles.len(),
        );
        Ok(Snapshot {
            generation,
            fingerprint: loaded.fingerprint,
            roles,
            role_index,
            intermediates,
            cas,
            crls,
            settings,
            cache,
            sources: Sources {
                config_path: loaded.config_path.clone(),
                roles_dir: loaded.roles_dir.clone(),
                crls_dir: loaded.crls_dir.clone(),
            },
            warnings,
        })
    }

    /// A role by (lower-case) name.
    pub fn role(&self, name: &str) -> Option<(usize, &Arc<Role>)> {
        let i = *self.role_index.get(name)?;
        Some((i, self.roles.get(i)?))
    }
}

/// Finds, among every configured CA, the issuer of each anchor and pinned leaf, so the
/// issuer's CRL applies to them (the path ends at an anchor, whose issuer webpki never
/// sees). Runs once per reload, after every role is compiled.
fn resolve_issuers(roles: &mut [Role], cas: &[Arc<ParsedCert>]) {
    let issuer_ca = |der: &[u8], issuer_name: &[u8]| -> Option<Arc<ParsedCert>> {
        cas.iter()
            .filter(|ca| ca.subject_name == issuer_name && ca.der.as_ref() != der)
            .find(|ca| crate::pki::cert::signed_by(der, &ca.spki))
            .cloned()
    };
    let issuer_of = |der: &[u8], issuer_name: &[u8]| -> Option<Vec<u8>> {
        issuer_ca(der, issuer_name).map(|ca| ca.spki.clone())
    };
    for role in roles.iter_mut() {
        for anchor in &mut role.anchors.certs {
            if let Some(spki) = issuer_of(&anchor.der, &anchor.issuer_name) {
                anchor.issuer_spki = spki;
            }
        }
        role.pinned_issuer_spki = role
            .pinned
            .iter()
            .map(|leaf| issuer_of(&leaf.der, &leaf.issuer_name))
            .collect();
        role.pinned_issuer_der = role
            .pinned
            .iter()
            .map(|leaf| issuer_ca(&leaf.der, &leaf.issuer_name).map(|ca| ca.der.to_vec()))
            .collect();
    }
}

fn compile_settings(g: &GlobalConfig) -> Result<Settings, Vec<(&'static str, String)>> {
    let mut errors = Vec::new();
    let mut peer = false;
    let mut xfcc = false;
    for s in g.certificate_sources.iter() {
        match s {
            "peer" => peer = true,
            "xfcc" => xfcc = true,
            other => errors.push((
                "certificate_sources",
                format!("unknown certificate source {other:?} (expected peer or xfcc)"),
            )),
        }
    }
    let source = match SourcePolicy::new(peer, xfcc, g.xfcc.envoy_sets, &g.trusted_proxies.0) {
        Ok(p) => Some(p),
        Err(e) => {
            errors.push(("trusted_proxies", e));
            None
        }
    };
    let prefix = g.headers.prefix.to_ascii_lowercase();
    if prefix.is_empty()
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        errors.push((
            "prefix",
            format!("header prefix {prefix:?} must be non-empty letters, digits, '-' or '_'"),
        ));
    }
    if !(200..=599).contains(&g.deny.status) || (200..300).contains(&g.deny.status) {
        errors.push((
            "status",
            format!(
                "deny status {} must be an HTTP error status (300-599)",
                g.deny.status
            ),
        ));
    }
    for (field, addr) in [("listen", &g.listen), ("admin_listen", &g.admin_listen)] {
        if addr.parse::<std::net::SocketAddr>().is_err() {
            errors.push((field, format!("{addr:?} is not an address:port")));
        }
    }
    if g.audit.sink.trim().is_empty() {
        errors.push((
            "sink",
            "audit sink is empty (stdout, none or a file path)".into(),
        ));
    }
    if g.audit.queue == 0 {
        errors.push(("queue", "audit queue must hold at least 1 record".into()));
    }
    if g.audit.max_size < 4096 {
        errors.push((
            "max_size",
            format!("audit max_size {} is below 4096 bytes", g.audit.max_size),
        ));
    }
    match (source, errors.is_empty()) {
        (Some(source), true) => Ok(Settings {
            global: g.clone(),
            source,
            identity_headers: crate::engine::IDENTITY_FIELDS
                .iter()
                .map(|(suffix, _)| format!("{prefix}{suffix}"))
                .collect(),
            meta_header_prefix: format!("{prefix}meta-"),
            header_prefix: prefix,
        }),
        _ => Err(errors),
    }
}

/// Compiles one role file; every problem is reported with the field it concerns.
pub fn compile_role(role: &LoadedRole) -> Result<Role, Vec<ConfigError>> {
    let spec = &role.spec;
    let mut errors = Vec::new();
    let mut err = |field: &str, msg: String| errors.push(role.field_error(field, msg));

    // Certificates: CA → anchor, otherwise a pinned leaf.
    let mut anchors = Anchors::default();
    let mut pinned = Vec::new();
    let mut certificates = Vec::new();
    match &role.certificate_pem {
        None => err(
            "certificate",
            "a role needs `certificate` or `certificate_file` (PEM): a CA to trust or a leaf to pin"
                .into(),
        ),
        Some(pem) => match decode_certificates_within(pem, MAX_BUNDLE_BYTES, MAX_BUNDLE_CERTIFICATES) {
            Err(e) => err("certificate", format!("not PEM certificates: {e}")),
            Ok(ders) => {
                for der in ders {
                    let parsed = match ParsedCert::from_der(der.clone()) {
                        Ok(p) => Arc::new(p),
                        Err(e) => {
                            err("certificate", e);
                            continue;
                        }
                    };
                    if parsed.is_ca {
                        match webpki::anchor_from_trusted_cert(&der) {
                            Ok(anchor) => {
                                anchors.anchors.push(anchor.to_owned());
                                anchors.certs.push(AnchorCert {
                                    der: der.to_vec(),
                                    serial: parsed.serial.clone(),
                                    subject_name: parsed.subject_name.clone(),
                                    spki: parsed.spki.clone(),
                                    issuer_name: parsed.issuer_name.clone(),
                                    issuer_spki: parsed.spki.clone(),
                                });
                            }
                            Err(e) => err(
                                "certificate",
                                format!("{} cannot be a trust anchor: {e:?}", parsed.subject),
                            ),
                        }
                    } else {
                        pinned.push(Arc::clone(&parsed));
                    }
                    certificates.push(parsed);
                }
            }
        },
    }

    let globs = |list: &crate::config::schema::StringList| GlobSet::new(list.iter());
    let names = NameRules {
        common_names: globs(&spec.allowed_common_names),
        dns_sans: globs(&spec.allowed_dns_sans),
        email_sans: globs(&spec.allowed_email_sans),
        uri_sans: globs(&spec.allowed_uri_sans),
        organizational_units: globs(&spec.allowed_organizational_units),
        organizations: globs(&spec.allowed_organizations),
        names: globs(&spec.allowed_names),
    };

    let mut required_extensions = Vec::new();
    for entry in spec.required_extensions.iter() {
        let (hex, rest) = match entry.strip_prefix("hex:") {
            Some(rest) => (true, rest),
            None => (false, entry),
        };
        match rest.split_once(':') {
            Some((oid, glob)) if is_oid(oid) => required_extensions.push(ExtensionRule {
                oid: oid.to_string(),
                hex,
                glob: crate::pki::glob::Glob::new(glob),
                text: entry.to_string(),
            }),
            _ => err(
                "required_extensions",
                format!("{entry:?} is not `oid:glob` or `hex:oid:glob`"),
            ),
        }
    }

    let mut metadata_extensions = Vec::new();
    for oid in spec.allowed_metadata_extensions.iter() {
        if is_oid(oid) {
            metadata_extensions.push((oid.to_string(), oid.replace('.', "-")));
        } else {
            err(
                "allowed_metadata_extensions",
                format!("{oid:?} is not a dotted OID"),
            );
        }
    }

    let mut legacy = |field: &str, new: &StringList, old: &StringList| -> Vec<String> {
        let sorted = |l: &StringList| {
            let mut v = l.0.clone();
            v.sort();
            v
        };
        if !new.is_empty() && !old.is_empty() && sorted(new) != sorted(old) {
            err(
                field,
                format!("`{field}` and its legacy name disagree; keep one of them"),
            );
        }
        if new.is_empty() {
            old.0.clone()
        } else {
            new.0.clone()
        }
    };
    let policies = legacy("token_policies", &spec.token_policies, &spec.policies);
    let cidrs = legacy(
        "token_bound_cidrs",
        &spec.token_bound_cidrs,
        &spec.bound_cidrs,
    );

    let mut bound_cidrs = Vec::new();
    for c in &cidrs {
        match c
            .parse::<IpNet>()
            .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
        {
            Ok(net) => bound_cidrs.push(net.trunc()),
            Err(_) => err(
                "token_bound_cidrs",
                format!("{c:?} is not a CIDR block or IP address"),
            ),
        }
    }

    let unique_identifier = match spec.unique_identifier.as_deref() {
        None => UniqueIdentifier::CommonName,
        Some(s) => UniqueIdentifier::parse(&s.to_ascii_lowercase()).unwrap_or_else(|| {
            err(
                "unique_identifier",
                format!(
                    "{s:?} is not one of common_name, organizational_unit, uri_san, dns_san, email_san, serial_number, fingerprint_sha256"
                ),
            );
            UniqueIdentifier::CommonName
        }),
    };

    let mut revoked = RevokedIds::default();
    for id in spec.revoked_cert_ids.iter() {
        if let Err(msg) = add_revoked_id(&mut revoked, id) {
            err("revoked_cert_ids", msg);
        }
    }

    const CLAIMS: [&str; 11] = [
        "role",
        "display_name",
        "sub",
        "subject",
        "issuer",
        "serial",
        "fingerprint_sha256",
        "common_name",
        "uri_sans",
        "dns_sans",
        "email_sans",
    ];
    for claim in spec.audit_log_sub_claims.iter() {
        if !CLAIMS.contains(&claim) && !claim.starts_with("meta-") {
            err(
                "audit_log_sub_claims",
                format!("{claim:?} is not an identity field ({})", CLAIMS.join(", ")),
            );
        }
    }

    let mut ocsp_ca = Vec::new();
    if let Some(pem) = &role.ocsp_ca_pem {
        match decode_certificates_within(pem, MAX_BUNDLE_BYTES, MAX_BUNDLE_CERTIFICATES) {
            Ok(ders) => {
                for der in ders {
                    match ParsedCert::from_der(der) {
                        Ok(p) => ocsp_ca.push(Arc::new(p)),
                        Err(e) => err("ocsp_ca_certificates", e),
                    }
                }
            }
            Err(e) => err("ocsp_ca_certificates", format!("not PEM certificates: {e}")),
        }
    }
    for url in spec.ocsp_servers_override.iter() {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            err(
                "ocsp_servers_override",
                format!("{url:?} is not an http(s) URL"),
            );
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    let name: Arc<str> = Arc::from(role.name.as_str());
    Ok(Role {
        display_name: spec
            .display_name
            .as_deref()
            .map(Arc::from)
            .unwrap_or_else(|| Arc::clone(&name)),
        name,
        path: role.path.clone(),
        anchors,
        pinned_issuer_spki: vec![None; pinned.len()],
        pinned_issuer_der: vec![None; pinned.len()],
        pinned,
        certificates,
        names,
        required_extensions,
        metadata_extensions,
        policies_joined: Arc::from(policies.join(",")),
        policies,
        bound_cidrs,
        unique_identifier,
        revoked,
        expires_at: spec.expires_at.map(|t| t.0),
        cors_domains: GlobSet::new(spec.allowed_cors_domains.iter()),
        audit_log_sub_claims: spec.audit_log_sub_claims.0.clone(),
        require_crl_distribution_points: spec.require_crl_distribution_points,
        ocsp: OcspRole {
            enabled: spec.ocsp_enabled,
            ca_certificates: ocsp_ca,
            servers_override: spec.ocsp_servers_override.0.clone(),
            fail_open: spec.ocsp_fail_open,
            query_all_servers: spec.ocsp_query_all_servers,
            this_update_max_age: spec.ocsp_this_update_max_age,
            max_retries: spec.ocsp_max_retries.unwrap_or(4),
        },
        token_ttl: spec.token_ttl,
        token_max_ttl: spec.token_max_ttl,
    })
}

fn is_oid(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').count() >= 2
        && s.split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()))
}

/// Adds one `revoked_cert_ids` entry. Accepted forms: `aa:bb:cc` (hex serial),
/// 64 hex digits with or without colons (a SHA-256 fingerprint, also tried as a serial),
/// hex with letters (serial), and plain digits. Plain digits are ambiguous (Vault prints
/// serials as hex, Akeyless as decimal), so they are listed both ways: a revocation
/// list errs on the side of denying.
fn add_revoked_id(ids: &mut RevokedIds, id: &str) -> Result<(), String> {
    let id = id.trim();
    let compact: String = id.chars().filter(|&c| c != ':' && c != ' ').collect();
    if compact.is_empty() || !compact.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{id:?} is neither a serial number (decimal or hex) nor a SHA-256 fingerprint"
        ));
    }
    let padded = if !compact.len().is_multiple_of(2) {
        format!("0{compact}")
    } else {
        compact.clone()
    };
    let bytes = hex::decode(&padded).map_err(|e| format!("{id:?}: {e}"))?;
    if bytes.len() == 32 {
        let mut fp = [0u8; 32];
        fp.copy_from_slice(&bytes);
        ids.fingerprints.insert(fp);
    }
    ids.serials.insert(normalize_serial(&bytes).to_vec());
    if !id.contains(':') && compact.bytes().all(|b| b.is_ascii_digit()) {
        ids.serials
            .insert(normalize_serial(&decimal_to_bytes(&compact)).to_vec());
    }
    Ok(())
}

/// Big-endian bytes of a decimal number of any length.
fn decimal_to_bytes(digits: &str) -> Vec<u8> {
    let mut out: Vec<u8> = vec![0];
    for d in digits.bytes() {
        let mut carry = u32::from(d - b'0');
        for byte in out.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            out.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_serials_convert() {
        assert_eq!(decimal_to_bytes("0"), vec![0]);
        assert_eq!(decimal_to_bytes("255"), vec![0xff]);
        assert_eq!(decimal_to_bytes("256"), vec![0x01, 0x00]);
        assert_eq!(
            normalize_serial(&decimal_to_bytes("18446744073709551616")),
            &[1, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn revoked_id_forms() {
        let mut ids = RevokedIds::default();
        add_revoked_id(&mut ids, "0a:1b").unwrap();
        assert!(ids.serials.contains(&vec![0x0a, 0x1b]));
        add_revoked_id(&mut ids, "10").unwrap(); // hex 0x10 and decimal 10
        assert!(ids.serials.contains(&vec![0x10]));
        assert!(ids.serials.contains(&vec![0x0a]));
        let fp = "ab".repeat(32);
        add_revoked_id(&mut ids, &fp).unwrap();
        assert!(ids.fingerprints.contains(&[0xab; 32]));
        assert!(add_revoked_id(&mut ids, "not-hex").is_err());
        assert!(add_revoked_id(&mut ids, "").is_err());
    }

    #[test]
    fn oids() {
        assert!(is_oid("1.2.3.4"));
        assert!(!is_oid("1"));
        assert!(!is_oid("1..2"));
        assert!(!is_oid("a.b"));
    }
}
