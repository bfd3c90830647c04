//! The decision engine: a pure function of (request, snapshot, time) → [`Decision`].
//!
//! It reads the compiled [`Snapshot`] and the presented certificate; it touches no file,
//! socket or clock (the caller passes `now`). Per role, every check must hold and the
//! first failing one is the role's reason, in this order:
//! chain → names → extensions → revocation → client IP → expiry → origin.
//! Roles are tried pinned-leaf roles first, then by name; the first that passes wins.

pub mod cache;
mod reason;

use std::net::IpAddr;
use std::sync::Arc;

pub use cache::ClientCert;
pub use reason::Reason;

use crate::config::schema::{CdpMode, CertIdHashName, CrlExpiredPolicy};
use crate::pki::cert::ParsedCert;
use crate::pki::chain::{self, PathCert};
use crate::pki::der::asn1_string;
use crate::pki::pem::sha256;
use crate::revocation::ocsp::{CertIdHash, CertStatus, OcspTarget};
use crate::revocation::{CrlIndex, CrlStatus, LiveView, OcspLookup, OcspQuestion};
use crate::snapshot::{OcspRole, Role, Snapshot, UniqueIdentifier};
use crate::source::Presented;
use cache::RoleChain;

/// What the engine needs from a request.
#[derive(Debug, Clone)]
pub struct AuthRequest<'a> {
    /// The client certificate as presented (see [`crate::source::select`]).
    pub presented: &'a Presented<'a>,
    /// The route's `certgate_roles` (comma-separated); `None`: all roles.
    pub roles: Option<&'a str>,
    /// The client IP that `token_bound_cidrs` apply to.
    pub client_ip: Option<IpAddr>,
    /// The `Origin` header, if any.
    pub origin: Option<&'a str>,
    /// Unix seconds.
    pub now: i64,
    /// Fetched CRLs and OCSP answers; `None`: only the snapshot's CRLs count, OCSP is
    /// unavailable and distribution points are not consulted.
    pub live: Option<&'a dyn LiveView>,
}

/// The outcome.
#[derive(Debug)]
pub enum Decision {
    /// A role passed.
    Allow(Grant),
    /// No role passed.
    Deny(Denial),
}

/// An allow: who the caller is, by which role.
#[derive(Debug)]
pub struct Grant {
    /// The role that passed.
    pub role: Arc<Role>,
    /// The caller's certificate.
    pub client: Arc<ClientCert>,
    /// The `unique_identifier` value.
    pub sub: String,
    /// Metadata extensions: (dashed OID, value).
    pub meta: Vec<(String, String)>,
    /// Roles tried before this one, with their reasons.
    pub tried: Vec<RoleVerdict>,
}

/// A deny: the stable reason and every role's own.
#[derive(Debug)]
pub struct Denial {
    /// The reason reported: the only role's, or the one of the role that got furthest.
    pub reason: Reason,
    /// The role `reason` is from; `None` when no role was evaluated (no certificate,
    /// unknown role, no roles).
    pub role: Option<Arc<str>>,
    /// Each role tried, with its reason.
    pub verdicts: Vec<RoleVerdict>,
    /// The caller's certificate, when it could be parsed.
    pub client: Option<Arc<ClientCert>>,
}

/// One role's verdict.
#[derive(Debug, Clone)]
pub struct RoleVerdict {
    /// Role name.
    pub role: Arc<str>,
    /// `Ok` when it passed.
    pub outcome: Result<(), Reason>,
}

/// The identity an allow tells the upstream: (header suffix, dynamic-metadata key), in
/// the order of [`Grant::identity_values`].
pub const IDENTITY_FIELDS: [(&str, &str); 10] = [
    ("role", "role"),
    ("display-name", "display_name"),
    ("sub", "sub"),
    ("subject", "subject"),
    ("issuer", "issuer"),
    ("serial", "serial"),
    ("fingerprint-sha256", "fingerprint_sha256"),
    ("uri-sans", "uri_sans"),
    ("dns-sans", "dns_sans"),
    ("policies", "policies"),
];

impl Grant {
    /// The identity's values, index for index with [`IDENTITY_FIELDS`] (empty = absent).
    pub fn identity_values(&self) -> [&str; 10] {
        let leaf = &self.client.leaf;
        [
            &self.role.name,
            &self.role.display_name,
            &self.sub,
            &leaf.subject,
            &leaf.issuer,
            &leaf.serial_hex,
            &leaf.fingerprint_hex,
            &self.client.uri_sans_joined,
            &self.client.dns_sans_joined,
            &self.role.policies_joined,
        ]
    }
}

impl Decision {
    /// The deny reason, if denied.
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Decision::Allow(_) => None,
            Decision::Deny(d) => Some(&d.reason),
        }
    }

    /// The role that passed, if allowed.
    pub fn role(&self) -> Option<&str> {
        match self {
            Decision::Allow(g) => Some(&g.role.name),
            Decision::Deny(_) => None,
        }
    }
}

/// Decides a request: roles are tried in order and the first that passes wins.
pub fn decide(snapshot: &Snapshot, request: &AuthRequest<'_>) -> Decision {
    match evaluate(snapshot, request, false) {
        Err(reason) => denial((reason, None), Vec::new(), None),
        Ok(Evaluated::Granted(grant, _)) => Decision::Allow(grant),
        Ok(Evaluated::Refused(verdicts, client)) => {
            denial(furthest(&verdicts), verdicts, Some(client))
        }
    }
}

/// Like [`decide`], but evaluates every selected role (for `certgate check` and the
/// `Explain` API) and returns every verdict.
pub fn explain(snapshot: &Snapshot, request: &AuthRequest<'_>) -> (Decision, Vec<RoleVerdict>) {
    match evaluate(snapshot, request, true) {
        Err(reason) => (denial((reason, None), Vec::new(), None), Vec::new()),
        Ok(Evaluated::Granted(grant, verdicts)) => (Decision::Allow(grant), verdicts),
        Ok(Evaluated::Refused(verdicts, client)) => (
            denial(furthest(&verdicts), verdicts.clone(), Some(client)),
            verdicts,
        ),
    }
}

fn denial(
    (reason, role): (Reason, Option<Arc<str>>),
    verdicts: Vec<RoleVerdict>,
    client: Option<Arc<ClientCert>>,
) -> Decision {
    Decision::Deny(Denial {
        reason,
        role,
        verdicts,
        client,
    })
}

/// The reason of the role that got furthest in the check order (ties: the first), and
/// that role.
fn furthest(verdicts: &[RoleVerdict]) -> (Reason, Option<Arc<str>>) {
    verdicts
        .iter()
        .filter_map(|v| v.outcome.as_ref().err().map(|r| (r, &v.role)))
        .fold(None::<(&Reason, &Arc<str>)>, |best, (r, role)| match best {
            Some((b, _)) if b.stage() >= r.stage() => best,
            _ => Some((r, role)),
        })
        .map_or((Reason::NoMatchingRole, None), |(r, role)| {
            (r.clone(), Some(Arc::clone(role)))
        })
}

/// What evaluating the selected roles produced.
enum Evaluated {
    /// A role passed; the verdicts evaluated (all of them when every role was asked).
    Granted(Grant, Vec<RoleVerdict>),
    /// No role passed.
    Refused(Vec<RoleVerdict>, Arc<ClientCert>),
}

/// Evaluates the selected roles in order, stopping at the first pass unless `all`.
/// `Err` when no role can be evaluated at all (no roles, unusable certificate).
fn evaluate(
    snapshot: &Snapshot,
    request: &AuthRequest<'_>,
    all: bool,
) -> Result<Evaluated, Reason> {
    if snapshot.roles.is_empty() {
        return Err(Reason::NoRoles);
    }
    let client = snapshot.cache.client(request.presented)?;

    let mut verdicts: Vec<RoleVerdict> = Vec::new();
    let mut grant: Option<Grant> = None;
    let mut order: Vec<usize> = Vec::new();
    match request.roles.map(str::trim).filter(|r| !r.is_empty()) {
        None => order.extend(0..snapshot.roles.len()),
        Some(list) => {
            // Requested roles, tried in the snapshot's order; unknown names are verdicts.
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let found = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                    snapshot.role(&name.to_ascii_lowercase())
                } else {
                    snapshot.role(name)
                };
                match found {
                    Some((i, _)) => order.push(i),
                    None => verdicts.push(RoleVerdict {
                        role: Arc::from(name),
                        outcome: Err(Reason::RoleNotFound {
                            role: name.to_string(),
                        }),
                    }),
                }
            }
            order.sort_unstable();
            order.dedup();
        }
    }
    for index in order {
        let Some(role) = snapshot.roles.get(index) else {
            continue;
        };
        match check_role(snapshot, index, role, &client, request) {
            Ok((sub, meta)) => {
                if grant.is_none() {
                    grant = Some(Grant {
                        role: Arc::clone(role),
                        client: Arc::clone(&client),
                        sub,
                        meta,
                        // Only `explain` goes on and needs the list afterwards.
                        tried: if all {
                            verdicts.clone()
                        } else {
                            std::mem::take(&mut verdicts)
                        },
                    });
                }
                if !all {
                    break;
                }
                verdicts.push(RoleVerdict {
                    role: Arc::clone(&role.name),
                    outcome: Ok(()),
                });
            }
            Err(reason) => verdicts.push(RoleVerdict {
                role: Arc::clone(&role.name),
                outcome: Err(reason),
            }),
        }
    }
    Ok(match grant {
        Some(grant) => Evaluated::Granted(grant, verdicts),
        None => Evaluated::Refused(verdicts, client),
    })
}

/// Every check of one role, in the spec's order. Returns `sub` and metadata on success.
fn check_role(
    snapshot: &Snapshot,
    index: usize,
    role: &Role,
    client: &ClientCert,
    request: &AuthRequest<'_>,
) -> Result<(String, Vec<(String, String)>), Reason> {
    let now = request.now;
    let leaf = &client.leaf;

    // 1. chain (revocation found while building paths is reported in its own place)
    let generation = request.live.map_or(0, |l| l.crl_generation());
    let chain = client.chain_for(index, now, generation, || {
        role_chain(snapshot, role, client, now, request.live)
    });
    let (chain, revoked) = match chain {
        Ok(c) => (Some(c), None),
        Err(r) if r.stage() == 5 => (None, Some(r)),
        Err(r) => return Err(r),
    };

    // 2. names
    let n = &role.names;
    let constrained = |set: &crate::pki::glob::GlobSet, values: &[String]| {
        set.is_empty() || set.matches_any(values.iter().map(String::as_str))
    };
    if !constrained(&n.common_names, &leaf.common_names) {
        return Err(Reason::CommonNameNotAllowed);
    }
    if !constrained(&n.dns_sans, &leaf.dns_sans) {
        return Err(Reason::DnsSanNotAllowed);
    }
    if !constrained(&n.email_sans, &leaf.email_sans) {
        return Err(Reason::EmailSanNotAllowed);
    }
    if !constrained(&n.uri_sans, &leaf.uri_sans) {
        return Err(Reason::UriSanNotAllowed);
    }
    if !constrained(&n.organizational_units, &leaf.organizational_units) {
        return Err(Reason::OrganizationalUnitNotAllowed);
    }
    if !constrained(&n.organizations, &leaf.organizations) {
        return Err(Reason::OrganizationNotAllowed);
    }
    if !n.names.is_empty()
        && !n.names.matches_any(
            leaf.common_names
                .iter()
                .chain(&leaf.dns_sans)
                .chain(&leaf.email_sans)
                .map(String::as_str),
        )
    {
        return Err(Reason::NameNotAllowed);
    }

    // 3. extensions
    for rule in &role.required_extensions {
        let matched = leaf.extension(&rule.oid).is_some_and(|value| {
            if rule.hex {
                rule.glob.matches(&hex::encode(value))
            } else {
                rule.glob.matches(&asn1_string(value).unwrap_or_default())
            }
        });
        if !matched {
            return Err(Reason::RequiredExtensionMismatch {
                oid: rule.oid.clone(),
            });
        }
    }

    // 4. revocation
    if let Some(reason) = revoked {
        return Err(reason);
    }
    if role.ocsp.enabled {
        ocsp(role, chain.as_deref(), request)?;
    }
    if role.require_crl_distribution_points {
        let checked = chain
            .as_ref()
            .is_some_and(|c| matches!(c.leaf_crl, CrlStatus::NotRevoked { .. }));
        if leaf.crl_distribution_points.is_empty() || !checked {
            return Err(Reason::CrlRequired);
        }
    }

    // 5. client IP
    if !role.bound_cidrs.is_empty() {
        // `::ffff:10.1.2.3` from a dual-stack listener is the IPv4 client 10.1.2.3.
        let inside = request
            .client_ip
            .map(|ip| ip.to_canonical())
            .is_some_and(|ip| role.bound_cidrs.iter().any(|net| net.contains(&ip)));
        if !inside {
            return Err(Reason::SourceIpNotAllowed);
        }
    }

    // 6. expiry
    if role.expires_at.is_some_and(|t| now > t) {
        return Err(Reason::RoleExpired);
    }

    // 7. origin
    if let Some(origin) = request.origin.filter(|_| !role.cors_domains.is_empty())
        && !role.cors_domains.matches(origin_host(origin))
    {
        return Err(Reason::OriginNotAllowed);
    }

    let sub = unique_identifier(role.unique_identifier, leaf).ok_or(Reason::IdentifierMissing {
        field: role.unique_identifier.field(),
    })?;
    let meta = role
        .metadata_extensions
        .iter()
        .filter_map(|(oid, key)| {
            let value = leaf.extension(oid)?;
            Some((
                key.clone(),
                asn1_string(value).unwrap_or_else(|| hex::encode(value)),
            ))
        })
        .collect();
    Ok((sub, meta))
}

/// Path building and revocation for one role (a cache miss).
///
/// Also says whether the outcome may be cached: not when a distribution point's CRL
/// was wanted and not known yet (the decision is taken again once it is).
fn role_chain(
    snapshot: &Snapshot,
    role: &Role,
    client: &ClientCert,
    now: i64,
    live: Option<&dyn LiveView>,
) -> (Result<Arc<RoleChain>, Reason>, bool) {
    let complete = std::cell::Cell::new(true);
    let ctx = RevocationContext {
        snapshot,
        role,
        live,
        now,
        complete: &complete,
    };
    let outcome = role_chain_inner(&ctx, client);
    (outcome, complete.get())
}

/// What the revocation of one path certificate needs.
struct RevocationContext<'a> {
    snapshot: &'a Snapshot,
    role: &'a Role,
    live: Option<&'a dyn LiveView>,
    now: i64,
    /// Cleared when a wanted distribution point's CRL was not known yet.
    complete: &'a std::cell::Cell<bool>,
}

fn role_chain_inner(
    ctx: &RevocationContext<'_>,
    client: &ClientCert,
) -> Result<Arc<RoleChain>, Reason> {
    let RevocationContext {
        snapshot,
        role,
        now,
        ..
    } = *ctx;
    let leaf = &client.leaf;
    let stale_denies = match snapshot.settings.global.crl_expired {
        Some(CrlExpiredPolicy::Deny) => true,
        Some(CrlExpiredPolicy::Allow) => false,
        None => role.require_crl_distribution_points,
    };
    if role.is_pinned() {
        if let Some(i) = role.pinned.iter().position(|p| p.der == leaf.der) {
            leaf.valid_at(now)?;
            if !leaf.client_auth {
                return Err(Reason::InvalidKeyUsage);
            }
            // A pinned leaf's issuer is known only when it is a CA of some role; without
            // it no CRL can be verified for the leaf, only `revoked_cert_ids` apply.
            let issuer_spki = role.pinned_issuer_spki.get(i).and_then(Option::as_deref);
            let (leaf_crl, due) = revocation(
                ctx,
                &PathCert {
                    der: &leaf.der,
                    serial: &leaf.serial,
                    issuer_name: &leaf.issuer_name,
                    issuer_spki: issuer_spki.unwrap_or_default(),
                    is_anchor: false,
                },
                Some(leaf),
                stale_denies,
            )?;
            let issuer_der = role.pinned_issuer_der.get(i).cloned().flatten();
            return Ok(Arc::new(RoleChain {
                not_before: leaf.not_before,
                not_after: due.map_or(leaf.not_after, |d| d.min(leaf.not_after)),
                leaf_crl,
                ocsp: ocsp_question(snapshot, role, leaf, issuer_der.as_deref()),
                issuer_der,
            }));
        }
        if role.anchors.anchors.is_empty() {
            return Err(Reason::LeafNotPinned);
        }
    }
    if role.anchors.anchors.is_empty() {
        return Err(Reason::UntrustedIssuer);
    }

    let intermediates: Vec<rustls_pki_types::CertificateDer<'_>> = client
        .intermediates
        .iter()
        .chain(snapshot.intermediates.iter())
        .map(|d| rustls_pki_types::CertificateDer::from(d.as_ref()))
        .collect();
    let leaf_crl = std::cell::Cell::new(CrlStatus::NoCrl);
    // Earliest nextUpdate of the CRLs consulted on the path: the verdict holds until then.
    let crl_due = std::cell::Cell::new(i64::MAX);
    let check = |certs: &[PathCert<'_>]| -> Result<(), Reason> {
        crl_due.set(i64::MAX);
        for (i, cert) in certs.iter().enumerate() {
            let parsed = (i == 0).then_some(leaf);
            let (status, due) = revocation(ctx, cert, parsed, stale_denies)?;
            if let Some(due) = due {
                crl_due.set(crl_due.get().min(due));
            }
            if i == 0 {
                leaf_crl.set(status);
            }
        }
        Ok(())
    };
    let verified = chain::verify(&role.anchors, &leaf.der, &intermediates, now, &check)?;
    Ok(Arc::new(RoleChain {
        not_before: verified.not_before,
        not_after: verified.not_after.min(crl_due.get()),
        leaf_crl: leaf_crl.get(),
        ocsp: ocsp_question(snapshot, role, leaf, Some(&verified.issuer_der)),
        issuer_der: Some(verified.issuer_der),
    }))
}

/// The OCSP question for a role with `ocsp_enabled`, once per verified chain: the
/// leaf's CertID and its responders (the override list, else the leaf's AIA).
fn ocsp_question(
    snapshot: &Snapshot,
    role: &Role,
    leaf: &ParsedCert,
    issuer_der: Option<&[u8]>,
) -> Option<Result<Arc<OcspQuestion>, String>> {
    if !role.ocsp.enabled {
        return None;
    }
    let hash = match snapshot.settings.global.ocsp.cert_id_hash {
        CertIdHashName::Sha1 => CertIdHash::Sha1,
        CertIdHashName::Sha256 => CertIdHash::Sha256,
    };
    let Some(issuer) = issuer_der else {
        return Some(Err(
            "the pinned leaf's issuer is in no role, so no OCSP request can name it".into(),
        ));
    };
    let target = match OcspTarget::new(leaf, issuer, hash) {
        Ok(target) => target,
        Err(e) => return Some(Err(e)),
    };
    let settings = &role.ocsp;
    let question = if settings.servers_override.is_empty() {
        let aia = leaf
            .ocsp_responders
            .iter()
            .map(String::as_str)
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"));
        OcspQuestion::new(target, aia, settings)
    } else {
        OcspQuestion::new(
            target,
            settings.servers_override.iter().map(String::as_str),
            settings,
        )
    };
    if question.responders.is_empty() {
        return Some(Err(
            "no responder: the certificate names no OCSP URL and ocsp_servers_override is empty"
                .into(),
        ));
    }
    Some(Ok(Arc::new(question)))
}

/// The OCSP step of a role: the leaf's status from the question's responders, in
/// order. Revoked always denies, and so does a response with a bad
/// signature; anything short of a good answer denies unless the role fails open.
fn ocsp(role: &Role, chain: Option<&RoleChain>, request: &AuthRequest<'_>) -> Result<(), Reason> {
    let settings: &OcspRole = &role.ocsp;
    let unavailable = |detail: String| {
        if settings.fail_open {
            Ok(())
        } else {
            Err(Reason::OcspUnavailable { detail })
        }
    };
    let question = match chain.and_then(|c| c.ocsp.as_ref()) {
        Some(Ok(question)) => question,
        Some(Err(why)) => return unavailable(why.clone()),
        None => return unavailable("no verified chain to take the issuer from".into()),
    };
    let Some(live) = request.live else {
        return unavailable("no OCSP client in this context".into());
    };
    let serial = || hex::encode(&question.target.serial);
    let mut problems: Vec<String> = Vec::new();
    for ask in &question.responders {
        let responder = &ask.url;
        match live.ocsp(question, ask, settings, request.now) {
            OcspLookup::Answer(answer) => match answer.status {
                CertStatus::Revoked { .. } => {
                    return Err(Reason::RevokedOcsp { serial: serial() });
                }
                CertStatus::Good if !settings.query_all_servers => return Ok(()),
                CertStatus::Good => {}
                CertStatus::Unknown => problems.push(format!("{responder}: status unknown")),
            },
            OcspLookup::Failed { hard: true, detail } => {
                return Err(Reason::OcspInvalid {
                    detail: format!("{responder}: {detail}"),
                });
            }
            OcspLookup::Failed {
                hard: false,
                detail,
            } => {
                problems.push(format!("{responder}: {detail}"));
            }
            OcspLookup::Pending => {
                problems.push(format!("{responder}: no answer yet"));
                if !settings.query_all_servers {
                    // The next responder is asked only if this one fails.
                    break;
                }
            }
        }
    }
    if problems.is_empty() {
        // query_all_servers and every responder said good.
        return Ok(());
    }
    unavailable(problems.join("; "))
}

/// Revocation of one certificate for one role: `revoked_cert_ids`, then the CRLs of
/// its issuer (files and fetched lists) under the stale-CRL policy. Returns the CRL
/// status and the nextUpdate after which it must be looked at again.
///
/// With distribution points fetched, a certificate's CDP URLs are consulted first: one
/// never tried is recorded as wanted (and the outcome is not cached). `parsed` is the
/// certificate when already parsed (the leaf); others are parsed here, off the hot path.
fn revocation(
    ctx: &RevocationContext<'_>,
    cert: &PathCert<'_>,
    parsed: Option<&ParsedCert>,
    stale_denies: bool,
) -> Result<(CrlStatus, Option<i64>), Reason> {
    let RevocationContext {
        snapshot,
        role,
        live,
        now,
        complete,
    } = *ctx;
    if let Some(id) = role.revoked.find(cert.serial, || sha256(cert.der)) {
        return Err(Reason::RevokedCertId { id });
    }
    let mut found = snapshot.crls.lookup(cert, now);
    if let Some(live) = live {
        if snapshot.settings.global.crl_distribution_points == CdpMode::Fetch && !cert.is_anchor {
            let owned;
            let points = match parsed {
                Some(p) => &p.crl_distribution_points,
                None => {
                    owned = ParsedCert::from_der(rustls_pki_types::CertificateDer::from(
                        cert.der.to_vec(),
                    ))
                    .map(|p| p.crl_distribution_points)
                    .unwrap_or_default();
                    &owned
                }
            };
            for url in points
                .iter()
                .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            {
                if !live.distribution_point_known(url) {
                    complete.set(false);
                }
            }
        }
        found = CrlIndex::merge(found, live.fetched_crls().lookup(cert, now));
    }
    let (status, due) = found;
    match status {
        CrlStatus::Revoked => Err(Reason::RevokedCrl {
            serial: hex::encode(cert.serial),
        }),
        CrlStatus::NotRevoked { stale: true } if stale_denies => Err(Reason::CrlExpired),
        _ => Ok((status, due)),
    }
}

/// The `unique_identifier` value of a certificate (the `sub` an allow reports).
pub fn unique_identifier(
    which: UniqueIdentifier,
    leaf: &crate::pki::cert::ParsedCert,
) -> Option<String> {
    let first = |v: &[String]| v.first().cloned();
    match which {
        UniqueIdentifier::CommonName => first(&leaf.common_names),
        UniqueIdentifier::OrganizationalUnit => first(&leaf.organizational_units),
        UniqueIdentifier::UriSan => first(&leaf.uri_sans),
        UniqueIdentifier::DnsSan => first(&leaf.dns_sans),
        UniqueIdentifier::EmailSan => first(&leaf.email_sans),
        UniqueIdentifier::SerialNumber => Some(leaf.serial_hex.clone()),
        UniqueIdentifier::FingerprintSha256 => Some(leaf.fingerprint_hex.clone()),
    }
}

/// The host of an Origin header value (`https://app.example.com:8443` → `app.example.com`).
pub fn origin_host(origin: &str) -> &str {
    let rest = origin.split_once("://").map_or(origin, |(_, r)| r);
    let rest = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = rest.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    rest.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(rest, |(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::origin_host;

    #[test]
    fn origin_hosts() {
        assert_eq!(origin_host("https://app.example.com"), "app.example.com");
        assert_eq!(
            origin_host("https://app.example.com:8443"),
            "app.example.com"
        );
        assert_eq!(origin_host("http://[::1]:80"), "::1");
        assert_eq!(origin_host("null"), "null");
        assert_eq!(origin_host("https://a.b/path"), "a.b");
    }
}
