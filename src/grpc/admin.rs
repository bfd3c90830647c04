//! `certgate.v1.Admin`: the operator's read API of a running certgate (proto/
//! `certgate/v1/admin.proto`).
//!
//! Every call reads the snapshot that is serving at that moment
//! ([`Reloader::current`]), so what it shows is exactly what requests are decided
//! against, including after a hot reload. Nothing here can change state: the API is
//! safe to expose to on-call engineers and CI smoke tests.

use std::net::IpAddr;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::clock::{self, rfc3339};
use crate::explain::{self, CertificateReport, ExplainInput, ExplainReport};
use crate::pki::cert::ParsedCert;
use crate::reload::Reloader;
use crate::revocation::CrlEntry;
use crate::revocation::LiveRevocation;
use crate::revocation::live::CrlSourceReport;
use crate::snapshot::{Role, Snapshot};

/// Code generated from `proto/certgate/v1/admin.proto` (messages, client and server).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("certgate.v1");
}

/// The encoded `FileDescriptorSet` of the `certgate.v1` protos, for gRPC reflection
/// (so `grpcurl` can call the API without the .proto files).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("certgate_descriptor");

/// Largest certificate or chain text accepted by `Explain`, the same bound certificate
/// decoding enforces (a bigger input is refused before any work is done).
const MAX_PEM_BYTES: usize = crate::pki::pem::MAX_INPUT_BYTES;

/// The `Admin` service over the reloader's live snapshot.
#[derive(Clone)]
pub struct AdminService {
    reloader: Arc<Reloader>,
    live: Arc<LiveRevocation>,
}

impl AdminService {
    /// A service reading `reloader`'s current snapshot on every call.
    pub fn new(reloader: Arc<Reloader>, live: Arc<LiveRevocation>) -> AdminService {
        AdminService { reloader, live }
    }

    /// The service wrapped for `tonic::transport::Server::add_service`.
    pub fn into_server(self) -> pb::admin_server::AdminServer<AdminService> {
        pb::admin_server::AdminServer::new(self)
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn list_roles(
        &self,
        _request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let snapshot = self.reloader.current();
        let now = clock::now();
        Ok(Response::new(pb::ListRolesResponse {
            roles: snapshot
                .roles
                .iter()
                .map(|r| role_message(r, now))
                .collect(),
            generation: snapshot.generation,
        }))
    }

    async fn get_role(
        &self,
        request: Request<pb::GetRoleRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        let name = request.into_inner().name.trim().to_ascii_lowercase();
        let snapshot = self.reloader.current();
        match snapshot.role(&name) {
            Some((_, role)) => Ok(Response::new(role_message(role, clock::now()))),
            None => Err(Status::not_found(format!("no role named {name:?}"))),
        }
    }

    async fn list_crls(
        &self,
        _request: Request<pb::ListCrlsRequest>,
    ) -> Result<Response<pb::ListCrlsResponse>, Status> {
        let snapshot = self.reloader.current();
        let now = clock::now();
        let mut crls: Vec<pb::Crl> = snapshot
            .crls
            .entries()
            .iter()
            .map(|c| crl_message(c, now, false))
            .collect();
        crls.extend(
            self.live
                .crl_sources()
                .iter()
                .map(|s| source_message(s, now, false)),
        );
        Ok(Response::new(pb::ListCrlsResponse {
            crls,
            generation: snapshot.generation,
        }))
    }

    async fn get_crl(
        &self,
        request: Request<pb::GetCrlRequest>,
    ) -> Result<Response<pb::Crl>, Status> {
        let name = request.into_inner().name;
        let snapshot = self.reloader.current();
        if let Some(crl) = snapshot.crls.get(name.trim()) {
            return Ok(Response::new(crl_message(crl, clock::now(), true)));
        }
        match self
            .live
            .crl_sources()
            .iter()
            .find(|s| s.name == name.trim())
        {
            Some(source) => Ok(Response::new(source_message(source, clock::now(), true))),
            None => Err(Status::not_found(format!("no CRL named {name:?}"))),
        }
    }

    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let input = explain_input(request.into_inner())?;
        let snapshot = self.reloader.current();
        // Path building is CPU work of a few hundred microseconds: fine inline, like
        // the ext_authz Check it mirrors.
        let report = self
            .live
            .decide(|view| explain::explain(&snapshot, &input, Some(view)))
            .await
            .map_err(Status::invalid_argument)?;
        Ok(Response::new(explain_message(report, &snapshot)))
    }
}

/// Validates an `ExplainRequest` into the engine's input. Bad IPs and times are the
/// caller's mistake (INVALID_ARGUMENT), not a deny: a deny would hide the typo.
fn explain_input(req: pb::ExplainRequest) -> Result<ExplainInput, Status> {
    if req.certificate.len() > MAX_PEM_BYTES
        || req.chain.as_ref().is_some_and(|c| c.len() > MAX_PEM_BYTES)
    {
        return Err(Status::invalid_argument(format!(
            "certificate and chain are limited to {MAX_PEM_BYTES} bytes each"
        )));
    }
    if req.certificate.trim().is_empty() {
        return Err(Status::invalid_argument(
            "certificate: a PEM certificate (bundle) is required",
        ));
    }
    let nonempty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let source_ip = match nonempty(req.source_ip) {
        Some(ip) => Some(ip.trim().parse::<IpAddr>().map_err(|_| {
            Status::invalid_argument(format!("source_ip: {ip:?} is not an IP address"))
        })?),
        None => None,
    };
    let at = match nonempty(req.at) {
        Some(at) => clock::parse(&at).map_err(|e| Status::invalid_argument(format!("at: {e}")))?,
        None => clock::now(),
    };
    Ok(ExplainInput {
        certificate_pem: req.certificate,
        chain_pem: nonempty(req.chain),
        roles: nonempty(req.roles),
        source_ip,
        origin: nonempty(req.origin),
        at,
    })
}

fn explain_message(report: ExplainReport, snapshot: &Snapshot) -> pb::ExplainResponse {
    pb::ExplainResponse {
        allowed: report.allowed,
        role: report.role.unwrap_or_default(),
        reason: report.reason.unwrap_or_default(),
        detail: report.detail.unwrap_or_default(),
        verdicts: report
            .verdicts
            .into_iter()
            .map(|v| pb::RoleVerdict {
                role: v.role,
                allowed: v.allowed,
                reason: v.reason.unwrap_or_default(),
                detail: v.detail.unwrap_or_default(),
            })
            .collect(),
        identity: report.identity.map(|i| pb::Identity {
            role: i.role,
            display_name: i.display_name,
            sub: i.sub,
            subject: i.subject,
            issuer: i.issuer,
            serial: i.serial,
            fingerprint_sha256: i.fingerprint_sha256,
            uri_sans: i.uri_sans,
            dns_sans: i.dns_sans,
            policies: i.policies,
            metadata: i.metadata.into_iter().collect(),
        }),
        certificate: Some(certificate_message(report.certificate)),
        at: report.at,
        generation: snapshot.generation,
    }
}

fn certificate_message(c: CertificateReport) -> pb::CertificateSummary {
    pb::CertificateSummary {
        subject: c.subject,
        issuer: c.issuer,
        serial: c.serial,
        fingerprint_sha256: c.fingerprint_sha256,
        not_before: c.not_before,
        not_after: c.not_after,
        is_ca: c.is_ca,
        dns_sans: c.dns_sans,
        uri_sans: c.uri_sans,
        email_sans: c.email_sans,
        common_names: c.common_names,
        organizational_units: c.organizational_units,
        organizations: c.organizations,
    }
}

fn summary(cert: &ParsedCert) -> pb::CertificateSummary {
    certificate_message(CertificateReport::of(cert))
}

fn duration_text(d: Option<crate::config::schema::DurationValue>) -> String {
    d.map(|d| format!("{}s", d.0.as_secs())).unwrap_or_default()
}

/// A compiled role as the API shows it: every constraint as written.
fn role_message(role: &Role, now: i64) -> pb::Role {
    let globs = |set: &crate::pki::glob::GlobSet| set.patterns().map(String::from).collect();
    let n = &role.names;
    pb::Role {
        name: role.name.to_string(),
        display_name: role.display_name.to_string(),
        file: role.path.display().to_string(),
        anchors: role
            .certificates
            .iter()
            .filter(|c| c.is_ca)
            .map(|c| summary(c))
            .collect(),
        pinned_leaves: role.pinned.iter().map(|c| summary(c)).collect(),
        allowed_common_names: globs(&n.common_names),
        allowed_dns_sans: globs(&n.dns_sans),
        allowed_email_sans: globs(&n.email_sans),
        allowed_uri_sans: globs(&n.uri_sans),
        allowed_organizational_units: globs(&n.organizational_units),
        allowed_organizations: globs(&n.organizations),
        allowed_names: globs(&n.names),
        required_extensions: role
            .required_extensions
            .iter()
            .map(|r| r.text.clone())
            .collect(),
        allowed_metadata_extensions: role
            .metadata_extensions
            .iter()
            .map(|(oid, _)| oid.clone())
            .collect(),
        policies: role.policies.clone(),
        bound_cidrs: role.bound_cidrs.iter().map(ToString::to_string).collect(),
        unique_identifier: role.unique_identifier.field().to_string(),
        revoked_cert_ids: u32::try_from(
            role.revoked.serials.len() + role.revoked.fingerprints.len(),
        )
        .unwrap_or(u32::MAX),
        expires_at: role.expires_at.map(rfc3339).unwrap_or_default(),
        allowed_cors_domains: globs(&role.cors_domains),
        audit_log_sub_claims: role.audit_log_sub_claims.clone(),
        require_crl_distribution_points: role.require_crl_distribution_points,
        ocsp: Some(pb::OcspSettings {
            enabled: role.ocsp.enabled,
            ca_certificates: role
                .ocsp
                .ca_certificates
                .iter()
                .map(|c| summary(c))
                .collect(),
            servers_override: role.ocsp.servers_override.clone(),
            fail_open: role.ocsp.fail_open,
            query_all_servers: role.ocsp.query_all_servers,
            this_update_max_age: duration_text(role.ocsp.this_update_max_age),
            max_retries: role.ocsp.max_retries,
        }),
        token_ttl: duration_text(role.token_ttl),
        token_max_ttl: duration_text(role.token_max_ttl),
        pinned: role.is_pinned(),
        expired: role.expires_at.is_some_and(|t| now > t),
    }
}

/// A CRL as the API shows it; serials only when asked for one CRL (a big CA's list has
/// millions of entries).
fn crl_message(crl: &CrlEntry, now: i64, with_serials: bool) -> pb::Crl {
    pb::Crl {
        name: crl.name.clone(),
        source: crl.source.clone(),
        issuer: crl.issuer.clone(),
        this_update: rfc3339(crl.this_update),
        next_update: crl.next_update.map(rfc3339).unwrap_or_default(),
        entries: crl.len() as u64,
        verified_by: crl.verified_by.clone().unwrap_or_default(),
        stale: crl.is_stale(now),
        revoked_serials: if with_serials {
            crl.serials_hex()
        } else {
            Vec::new()
        },
        origin: "file".into(),
        has_list: true,
        ..Default::default()
    }
}

/// A fetched CRL source: its current list (if any) and how fetching goes.
fn source_message(source: &CrlSourceReport, now: i64, with_serials: bool) -> pb::Crl {
    let mut message = match &source.crl {
        Some(crl) => crl_message(crl, now, with_serials),
        None => pb::Crl::default(),
    };
    message.name = source.name.clone();
    message.source = source.url.clone();
    message.origin = source.origin.as_str().into();
    message.has_list = source.crl.is_some();
    message.last_attempt = source.last_attempt.map(rfc3339).unwrap_or_default();
    message.last_success = source.last_success.map(rfc3339).unwrap_or_default();
    message.last_error = source.last_error.clone().unwrap_or_default();
    message.next_refresh = source.next_refresh.map(rfc3339).unwrap_or_default();
    message.fetches = source.fetches;
    message.failures = source.failures;
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_input_validation() {
        let base = pb::ExplainRequest {
            certificate: "-----BEGIN CERTIFICATE-----".into(),
            ..pb::ExplainRequest::default()
        };
        let bad_ip = pb::ExplainRequest {
            source_ip: Some("10.0.0.300".into()),
            ..base.clone()
        };
        assert_eq!(
            explain_input(bad_ip).err().map(|s| s.code()),
            Some(tonic::Code::InvalidArgument)
        );
        let bad_at = pb::ExplainRequest {
            at: Some("tomorrow".into()),
            ..base.clone()
        };
        assert_eq!(
            explain_input(bad_at).err().map(|s| s.code()),
            Some(tonic::Code::InvalidArgument)
        );
        let ok = pb::ExplainRequest {
            source_ip: Some(" 10.0.0.1 ".into()),
            at: Some("2030-01-01T00:00:00Z".into()),
            roles: Some(String::new()),
            ..base
        };
        let input = explain_input(ok).unwrap_or_default();
        assert_eq!(input.source_ip, "10.0.0.1".parse().ok());
        assert_eq!(input.at, 1_893_456_000);
        assert_eq!(input.roles, None);
    }

    #[test]
    fn descriptor_set_is_embedded() {
        assert!(!FILE_DESCRIPTOR_SET.is_empty());
    }
}
