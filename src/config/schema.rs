//! The file schema: serde types that mirror the global config and the role files field
//! for field. Nothing here is interpreted; [`crate::snapshot`] compiles these into the
//! structures the engine uses.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};

// === global config ===

/// `certgate.yaml` / `certgate.toml`. Every field is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    /// gRPC listener: ext_authz v3, grpc.health.v1, reflection, certgate.v1.
    pub listen: String,
    /// HTTP listener for /metrics, /healthz, /readyz.
    pub admin_listen: String,
    /// Directory of role files, relative to the config file.
    pub roles_dir: PathBuf,
    /// Directory of CRL files (`*.pem`, `*.crl`); a missing directory means no CRLs.
    pub crls_dir: PathBuf,
    /// CRLs fetched from URLs and refreshed at their nextUpdate.
    pub crl_urls: Vec<CrlUrl>,
    /// Whether CRLs named by certificates' CDP extension are fetched.
    pub crl_distribution_points: CdpMode,
    /// How CRLs are fetched (from `crl_urls` and distribution points).
    pub crl_fetch: CrlFetchConfig,
    /// What a CRL past its nextUpdate means; unset: deny for CDP-required roles, allow
    /// with a warning otherwise.
    pub crl_expired: Option<CrlExpiredPolicy>,
    /// Where client certificates may come from (`peer`, `xfcc`). A believed XFCC
    /// element is preferred over the peer certificate; see the XFCC trust model.
    pub certificate_sources: StringList,
    /// How the XFCC header in front of us is produced.
    pub xfcc: XfccConfig,
    /// CIDRs (immediate peers) and identity globs (XFCC hops) we believe.
    pub trusted_proxies: StringList,
    /// Identity headers sent upstream.
    pub headers: HeadersConfig,
    /// Denied responses.
    pub deny: DenyConfig,
    /// OCSP client settings shared by all roles.
    pub ocsp: OcspConfig,
    /// The verified-chain cache.
    pub cache: CacheConfig,
    /// Reload behaviour.
    pub reload: ReloadConfig,
    /// Audit records, one JSON line per decision.
    pub audit: AuditConfig,
    /// Service logs.
    pub log: LogConfig,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            listen: "0.0.0.0:9191".into(),
            admin_listen: "127.0.0.1:9192".into(),
            roles_dir: PathBuf::from("roles"),
            crls_dir: PathBuf::from("crls"),
            crl_urls: Vec::new(),
            crl_distribution_points: CdpMode::Fetch,
            crl_fetch: CrlFetchConfig::default(),
            crl_expired: None,
            certificate_sources: StringList(vec!["peer".into(), "xfcc".into()]),
            xfcc: XfccConfig::default(),
            trusted_proxies: StringList::default(),
            headers: HeadersConfig::default(),
            deny: DenyConfig::default(),
            ocsp: OcspConfig::default(),
            cache: CacheConfig::default(),
            reload: ReloadConfig::default(),
            audit: AuditConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// A named CRL source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrlUrl {
    /// The CRL's name in listings and the read API.
    pub name: String,
    /// `http://` or `https://` URL.
    pub url: String,
}

/// How CRLs are fetched.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrlFetchConfig {
    /// One download, connect to last byte.
    pub timeout: DurationValue,
    /// Largest CRL body accepted, in bytes (a 1,000,000-serial CRL is ~40 MB).
    pub max_size: u64,
    /// How long a request that meets a distribution point for the first time waits for
    /// its CRL before the role's policy decides without it (the fetch goes on).
    pub first_fetch_wait: DurationValue,
    /// Refresh period of a CRL that names no nextUpdate.
    pub refresh_interval: DurationValue,
    /// Distribution point URLs remembered at most (each is refreshed like `crl_urls`).
    pub max_distribution_points: usize,
}

impl Default for CrlFetchConfig {
    fn default() -> Self {
        CrlFetchConfig {
            timeout: DurationValue(std::time::Duration::from_secs(10)),
            max_size: 64 * 1024 * 1024,
            first_fetch_wait: DurationValue(std::time::Duration::from_secs(2)),
            refresh_interval: DurationValue(std::time::Duration::from_secs(3600)),
            max_distribution_points: 1000,
        }
    }
}

/// Whether certificates' CRL distribution points are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CdpMode {
    /// Fetch the CRLs that certificates name.
    #[default]
    Fetch,
    /// Never fetch; only configured CRLs count.
    Ignore,
}

/// What a CRL past its nextUpdate means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrlExpiredPolicy {
    /// Deny certificates that need this CRL.
    Deny,
    /// Keep using the stale list, with a warning.
    Allow,
}

/// How the `x-forwarded-client-cert` header reaching us is produced.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XfccConfig {
    /// The Envoy in front sanitizes and sets XFCC itself (SANITIZE_SET, or APPEND_FORWARD
    /// with `set_current_client_cert_details`), so its right-most element is believed.
    pub envoy_sets: bool,
}

/// Identity headers sent upstream on allow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadersConfig {
    /// Prefix of every identity header; incoming headers with it are removed.
    pub prefix: String,
}

impl Default for HeadersConfig {
    fn default() -> Self {
        HeadersConfig {
            prefix: "x-certgate-".into(),
        }
    }
}

/// Denied responses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenyConfig {
    /// HTTP status of a denial.
    pub status: u16,
    /// Include per-role reasons in the body (they always go to logs and audit).
    pub detail: bool,
}

impl Default for DenyConfig {
    fn default() -> Self {
        DenyConfig {
            status: 403,
            detail: false,
        }
    }
}

/// OCSP client settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcspConfig {
    /// Entries in the OCSP response cache (OpenBao's `ocsp_cache_size`).
    pub cache_size: u64,
    /// One exchange with one responder (each retry gets its own).
    pub timeout: DurationValue,
    /// CertID hash algorithm of requests: `sha1` (RFC 5019, every responder) or
    /// `sha256`. Responses are matched with whichever algorithm they use.
    pub cert_id_hash: CertIdHashName,
    /// Send a nonce and require the response to echo it (replay protection). Turn it
    /// off for responders that serve pre-signed responses (RFC 5019, CDNs).
    pub nonce: bool,
}

/// A CertID hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CertIdHashName {
    /// SHA-1.
    #[default]
    Sha1,
    /// SHA-256.
    Sha256,
}

impl Default for OcspConfig {
    fn default() -> Self {
        OcspConfig {
            cache_size: 100,
            timeout: DurationValue(std::time::Duration::from_secs(2)),
            cert_id_hash: CertIdHashName::Sha1,
            nonce: true,
        }
    }
}

/// The verified-chain cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Distinct presented certificates (and chains) remembered.
    pub max_entries: u64,
    /// How long a verified chain is reused before it is verified again.
    pub ttl: DurationValue,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: 10_000,
            ttl: DurationValue(std::time::Duration::from_secs(300)),
        }
    }
}

/// Reload behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// Periodic re-read, a fallback for missed file events; 0 disables it.
    pub interval: DurationValue,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            interval: DurationValue(std::time::Duration::from_secs(30)),
        }
    }
}

/// Audit records.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// `stdout`, `none`, or a file path (relative to the config file's directory).
    pub sink: String,
    /// A file sink is rotated when the next record would take it past this many bytes.
    pub max_size: u64,
    /// Rotated files kept (`<path>.1` newest … `<path>.N`); 0 keeps none (truncate).
    pub max_files: u32,
    /// Records waiting for the writer at most; a record beyond it is dropped and
    /// counted, so a slow disk never delays a decision.
    pub queue: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            sink: "stdout".into(),
            max_size: 100 * 1024 * 1024,
            max_files: 5,
            queue: 10_000,
        }
    }
}

/// Service logs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `json` or `pretty`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `certgate=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "json".into(),
            level: "info".into(),
        }
    }
}

// === role files ===

/// One role file. Field names follow Vault/OpenBao (so `vault read -format=json
/// auth/cert/certs/NAME`'s `data` object works unchanged); Akeyless names are aliases.
/// Unknown fields are an error: a typo must never silently widen access.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleSpec {
    /// Role name; default: the file stem. Lower-cased.
    pub name: Option<String>,
    /// PEM, one or more certificates: CA certs are anchors, a non-CA cert pins a leaf.
    /// Akeyless's `certificate_data` (base64 of the PEM) is accepted too.
    #[serde(alias = "certificate_data", deserialize_with = "opt_string")]
    pub certificate: Option<String>,
    /// The same, from a file relative to the role file.
    pub certificate_file: Option<PathBuf>,
    /// Globs vs the subject CN.
    #[serde(alias = "bound_common_names")]
    pub allowed_common_names: StringList,
    /// Globs vs DNS SANs.
    #[serde(alias = "bound_dns_sans")]
    pub allowed_dns_sans: StringList,
    /// Globs vs email SANs.
    #[serde(alias = "bound_email_sans")]
    pub allowed_email_sans: StringList,
    /// Globs vs URI SANs, as written.
    #[serde(alias = "bound_uri_sans")]
    pub allowed_uri_sans: StringList,
    /// Globs vs every OU value.
    #[serde(alias = "bound_organizational_units")]
    pub allowed_organizational_units: StringList,
    /// Globs vs every O value.
    #[serde(alias = "bound_organizations")]
    pub allowed_organizations: StringList,
    /// Deprecated: globs vs CN, DNS SANs and email SANs.
    pub allowed_names: StringList,
    /// `oid:glob` or `hex:oid:glob`; all must match.
    #[serde(alias = "bound_extensions")]
    pub required_extensions: StringList,
    /// OIDs copied into the identity as metadata.
    pub allowed_metadata_extensions: StringList,
    /// Check the leaf with OCSP.
    pub ocsp_enabled: bool,
    /// PEM certificates that may sign OCSP responses; never trust anchors.
    #[serde(deserialize_with = "opt_string")]
    pub ocsp_ca_certificates: Option<String>,
    /// Responders to ask instead of the leaf's AIA.
    pub ocsp_servers_override: StringList,
    /// Unknown status or no answer passes instead of failing.
    pub ocsp_fail_open: bool,
    /// Every responder must answer good.
    pub ocsp_query_all_servers: bool,
    /// A response whose thisUpdate is older than this is refused (0: no limit).
    pub ocsp_this_update_max_age: Option<DurationValue>,
    /// Retries per responder.
    pub ocsp_max_retries: Option<u32>,
    /// Shown upstream; default: the role name.
    #[serde(deserialize_with = "opt_string")]
    pub display_name: Option<String>,
    /// Opaque strings passed upstream.
    pub token_policies: StringList,
    /// Vault's legacy name of `token_policies`. Vault's read output carries both names
    /// with the same value, so both are accepted; different values are an error.
    pub policies: StringList,
    /// The client IP must be inside one of these (Akeyless: `bound_ips`).
    #[serde(alias = "bound_ips")]
    pub token_bound_cidrs: StringList,
    /// Vault's legacy name of `token_bound_cidrs`, handled like `policies`.
    pub bound_cidrs: StringList,
    /// Lifetime of a signed identity assertion, where enabled.
    pub token_ttl: Option<DurationValue>,
    /// Upper bound of that lifetime.
    pub token_max_ttl: Option<DurationValue>,
    /// Which certificate value is the caller's `sub`.
    #[serde(deserialize_with = "opt_string")]
    pub unique_identifier: Option<String>,
    /// Serial numbers or SHA-256 fingerprints; a match anywhere in the chain denies.
    pub revoked_cert_ids: StringList,
    /// After this instant the role matches nothing.
    #[serde(alias = "expiration_date")]
    pub expires_at: Option<Timestamp>,
    /// If set and the request has an Origin, its host must match one glob.
    #[serde(alias = "allowed_cors")]
    pub allowed_cors_domains: StringList,
    /// Identity fields written into audit records.
    #[serde(alias = "audit_logs_claims")]
    pub audit_log_sub_claims: StringList,
    /// The leaf must carry a CDP and its CRL must be checked.
    pub require_crl_distribution_points: bool,

    // Fields that mean something to Vault/OpenBao/Akeyless and nothing here: accepted so
    // that exported roles load unchanged, and reported by `validate` as ignored.
    pub token_type: Option<Ignored>,
    pub token_num_uses: Option<Ignored>,
    pub token_period: Option<Ignored>,
    pub token_explicit_max_ttl: Option<Ignored>,
    pub token_no_default_policy: Option<Ignored>,
    pub token_strictly_bind_ip: Option<Ignored>,
    pub period: Option<Ignored>,
    pub max_ttl: Option<Ignored>,
    pub ttl: Option<Ignored>,
    pub gw_bound_ips: Option<Ignored>,
    pub jwt_ttl: Option<Ignored>,
}

impl RoleSpec {
    /// Names of the accepted-but-ignored fields present in this file.
    pub fn ignored_fields(&self) -> Vec<&'static str> {
        let fields: [(&'static str, bool); 11] = [
            ("token_type", self.token_type.is_some()),
            ("token_num_uses", self.token_num_uses.is_some()),
            ("token_period", self.token_period.is_some()),
            (
                "token_explicit_max_ttl",
                self.token_explicit_max_ttl.is_some(),
            ),
            (
                "token_no_default_policy",
                self.token_no_default_policy.is_some(),
            ),
            (
                "token_strictly_bind_ip",
                self.token_strictly_bind_ip.is_some(),
            ),
            ("period", self.period.is_some()),
            ("max_ttl", self.max_ttl.is_some()),
            ("ttl", self.ttl.is_some()),
            ("gw_bound_ips", self.gw_bound_ips.is_some()),
            ("jwt_ttl", self.jwt_ttl.is_some()),
        ];
        fields
            .into_iter()
            .filter_map(|(name, present)| present.then_some(name))
            .collect()
    }
}

// === value types ===

/// A field whose value is accepted and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ignored;

impl<'de> Deserialize<'de> for Ignored {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Ignored)
    }
}

/// A list given as a YAML/JSON/TOML list or as a comma-separated string (as Vault
/// accepts); `null` and `""` are the empty list. Items are trimmed, empty items dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringList(pub Vec<String>);

impl StringList {
    /// The items.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
    /// No items: the field constrains nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings or a comma-separated string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StringList, E> {
                Ok(StringList(
                    s.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                ))
            }
            fn visit_unit<E: de::Error>(self) -> Result<StringList, E> {
                Ok(StringList::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<StringList, E> {
                Ok(StringList::default())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<StringList, D::Error> {
                d.deserialize_any(V)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    let item = item.trim();
                    if !item.is_empty() {
                        out.push(item.to_string());
                    }
                }
                Ok(StringList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `null` or `""` reads as absent.
fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    Ok(s.filter(|s| !s.trim().is_empty()))
}

/// A duration: integer seconds (Vault's `3600`) or a string with a unit (`90s`, `15m`,
/// `1h`, `1h30m`, `2d`, `500ms`); `0` and `""` are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurationValue(pub std::time::Duration);

impl DurationValue {
    /// Parses the string form.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(DurationValue::default());
        }
        if let Ok(secs) = s.parse::<u64>() {
            return Ok(DurationValue(std::time::Duration::from_secs(secs)));
        }
        let mut total = std::time::Duration::ZERO;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(|| format!("{s:?}: missing unit (s, m, h, d or ms)"))?;
            if digits == 0 {
                return Err(format!("{s:?}: expected a number"));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("{s:?}: number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let step = match unit {
                "ms" => std::time::Duration::from_millis(n),
                "s" => std::time::Duration::from_secs(n),
                "m" => std::time::Duration::from_secs(n.saturating_mul(60)),
                "h" => std::time::Duration::from_secs(n.saturating_mul(3600)),
                "d" => std::time::Duration::from_secs(n.saturating_mul(86_400)),
                other => return Err(format!("{s:?}: unknown unit {other:?}")),
            };
            total = total.saturating_add(step);
        }
        Ok(DurationValue(total))
    }
}

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds or a duration such as \"90s\", \"15m\", \"1h\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationValue, E> {
                Ok(DurationValue(std::time::Duration::from_secs(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationValue, E> {
                u64::try_from(v)
                    .map(|v| DurationValue(std::time::Duration::from_secs(v)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<DurationValue, E> {
                DurationValue::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// An instant: RFC 3339 text or Unix seconds. Stored as Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Parses RFC 3339 or decimal Unix seconds.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(secs) = s.parse::<i64>() {
            return Ok(Timestamp(secs));
        }
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(|t| Timestamp(t.unix_timestamp()))
            .map_err(|e| format!("{s:?} is neither RFC 3339 nor Unix seconds: {e}"))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time or Unix seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v)
                    .map(Timestamp)
                    .map_err(|_| E::custom("timestamp out of range"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Timestamp, E> {
                Timestamp::parse(s).map_err(E::custom)
            }
            /// The toml crate hands a native TOML datetime (`expires_at = 2027-01-01T00:00:00Z`)
            /// to serde as a one-entry map under this private key; without this, TOML roles
            /// could only write the time as a string.
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Timestamp, A::Error> {
                const TOML_DATETIME: &str = "$__toml_private_datetime";
                match map.next_key::<String>()? {
                    Some(key) if key == TOML_DATETIME => {
                        let text: String = map.next_value()?;
                        Timestamp::parse(&text).map_err(|_| {
                            de::Error::custom(format!(
                                "{text:?} needs a date, a time and an offset (e.g. 2027-01-01T00:00:00Z)"
                            ))
                        })
                    }
                    _ => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}
