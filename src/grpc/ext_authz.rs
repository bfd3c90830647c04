//! The ext_authz v3 adapter: `CheckRequest` in, `CheckResponse` out.
//!
//! It only translates: it pulls the certificate sources, peer address, route roles and
//! Origin out of Envoy's request, lets [`crate::source`] pick the client certificate and
//! [`crate::engine`] decide, and turns the decision into headers, dynamic metadata or a
//! denial. Identity headers are *set* (never appended) and every incoming header with
//! the prefix that we do not set is removed, so a client can never forge one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use envoy_types::ext_authz::v3::pb::{
    Address, Authorization, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction,
    HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;
use tonic::{Request, Response, Status};

use crate::audit::{AuditLog, AuditRecord};
use crate::engine::{self, AuthRequest, Decision, Grant, IDENTITY_FIELDS};
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::revocation::{LiveRevocation, LiveView};
use crate::snapshot::Snapshot;
use crate::source::{self, SourceInput};

/// The context extension a route uses to name roles.
pub const ROLES_CONTEXT_KEY: &str = "certgate_roles";
/// The XFCC header.
const XFCC: &str = "x-forwarded-client-cert";
/// The header proxies append the address they received a request from to.
const XFF: &str = "x-forwarded-for";

/// gRPC status codes Envoy reads from `CheckResponse.status`.
const GRPC_OK: i32 = 0;
const GRPC_PERMISSION_DENIED: i32 = 7;

/// The `envoy.service.auth.v3.Authorization` service.
pub struct ExtAuthz {
    reloader: Arc<Reloader>,
    live: Arc<LiveRevocation>,
    observers: Observers,
}

/// Who hears about every decision besides Envoy.
#[derive(Debug, Clone)]
pub struct Observers {
    /// Decisions, latency, ignored XFCC.
    pub metrics: Arc<Metrics>,
    /// One line per decision.
    pub audit: Arc<AuditLog>,
}

impl ExtAuthz {
    /// Serves decisions from whatever snapshot the reloader holds at each request, with
    /// fetched CRLs and OCSP from `live`, counted and audited by `observers`.
    pub fn new(reloader: Arc<Reloader>, live: Arc<LiveRevocation>, observers: Observers) -> Self {
        ExtAuthz {
            reloader,
            live,
            observers,
        }
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let started = Instant::now();
        let snapshot = self.reloader.current();
        let now = crate::clock::now();
        let request = request.into_inner();
        let inputs = Inputs::of(&snapshot, &request);
        if inputs.xfcc_ignored {
            self.observers.metrics.xfcc_ignored();
        }
        let decision = inputs.decide_live(&self.live, &snapshot, now).await;
        let response = inputs.respond(&snapshot, &decision);
        self.observers.metrics.observe(&decision, started.elapsed());
        if self.observers.audit.enabled() {
            self.observers
                .audit
                .record(inputs.audit_record(&snapshot, decision));
        }
        Ok(Response::new(response))
    }
}

/// What the adapter takes from a `CheckRequest`.
struct Inputs<'r> {
    headers: Option<&'r HashMap<String, String>>,
    source: SourceInput<'r>,
    /// The caller: the peer, or the X-Forwarded-For hop a trusted peer names.
    client_ip: Option<IpAddr>,
    /// An XFCC header came from a peer nobody trusts (counted, logged, audited).
    xfcc_ignored: bool,
    roles: Option<&'r str>,
}

impl<'r> Inputs<'r> {
    fn of(snapshot: &Snapshot, request: &'r CheckRequest) -> Inputs<'r> {
        let attrs = request.attributes.as_ref();
        let peer = attrs.and_then(|a| a.source.as_ref());
        let headers = attrs
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref())
            .map(|h| &h.headers);
        let peer_address = peer
            .and_then(|p| p.address.as_ref())
            .and_then(|a| a.address.as_ref())
            .and_then(|a| match a {
                Address::SocketAddress(s) => {
                    s.address.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
                }
                _ => None,
            });
        let client_ip = source::client_ip(
            &snapshot.settings.source,
            peer_address,
            headers.and_then(|h| h.get(XFF)).map(String::as_str),
        );
        let source = SourceInput {
            peer_certificate: peer.map(|p| p.certificate.as_str()),
            xfcc: headers.and_then(|h| h.get(XFCC)).map(String::as_str),
            peer_address,
        };
        Inputs {
            headers,
            client_ip,
            xfcc_ignored: source::xfcc_ignored(&snapshot.settings.source, &source),
            source,
            roles: attrs
                .and_then(|a| a.context_extensions.get(ROLES_CONTEXT_KEY))
                .map(String::as_str),
        }
    }

    fn header(&self, name: &str) -> Option<&'r str> {
        self.headers.and_then(|h| h.get(name)).map(String::as_str)
    }

    fn request<'a>(
        &'a self,
        presented: &'a crate::source::Presented<'a>,
        now: i64,
        live: Option<&'a dyn LiveView>,
    ) -> AuthRequest<'a> {
        AuthRequest {
            presented,
            roles: self.roles,
            client_ip: self.client_ip,
            origin: self.header("origin"),
            now,
            live,
        }
    }

    /// Chooses the certificate and decides with the snapshot's CRLs only.
    fn decide(&self, snapshot: &Snapshot, now: i64) -> Decision {
        match source::select(&snapshot.settings.source, &self.source) {
            Ok(presented) => engine::decide(snapshot, &self.request(&presented, now, None)),
            Err(reason) => source_denial(reason),
        }
    }

    /// Chooses the certificate and decides with fetched CRLs and OCSP.
    async fn decide_live(&self, live: &LiveRevocation, snapshot: &Snapshot, now: i64) -> Decision {
        match source::select(&snapshot.settings.source, &self.source) {
            Ok(presented) => {
                live.decide(|view| {
                    engine::decide(snapshot, &self.request(&presented, now, Some(view)))
                })
                .await
            }
            Err(reason) => source_denial(reason),
        }
    }

    fn respond(&self, snapshot: &Snapshot, decision: &Decision) -> CheckResponse {
        log_decision(
            decision,
            self.header("x-request-id"),
            self.client_ip,
            self.roles,
            self.xfcc_ignored,
        );
        match decision {
            Decision::Allow(grant) => allow(snapshot, grant, self.headers),
            Decision::Deny(denial) => deny(snapshot, denial),
        }
    }

    /// The audit record of `decision`, which it takes over.
    fn audit_record(&self, snapshot: &Snapshot, decision: Decision) -> AuditRecord {
        let denied_role = match &decision {
            Decision::Deny(d) => d
                .role
                .as_deref()
                .and_then(|name| snapshot.role(name))
                .map(|(_, role)| Arc::clone(role)),
            Decision::Allow(_) => None,
        };
        AuditRecord {
            at: time::OffsetDateTime::now_utc(),
            request_id: self.header("x-request-id").map(str::to_string),
            roles_asked: self.roles.map(str::to_string),
            http: crate::audit::HttpSummary::of(
                self.header(":method"),
                self.header(":authority"),
                self.header(":path"),
            ),
            caller_ip: self.client_ip,
            peer_ip: self.source.peer_address,
            xfcc_ignored: self.xfcc_ignored,
            decision,
            denied_role,
        }
    }
}

fn source_denial(reason: engine::Reason) -> Decision {
    Decision::Deny(engine::Denial {
        reason,
        role: None,
        verdicts: Vec::new(),
        client: None,
    })
}

/// The request path for one `CheckRequest` against one snapshot at `now`, with the
/// snapshot's CRLs only (no fetching, no OCSP: roles with `ocsp_enabled` get
/// `ocsp_unavailable` unless they fail open). Benchmarks and offline tests use it.
pub fn check(snapshot: &Snapshot, request: &CheckRequest, now: i64) -> CheckResponse {
    let inputs = Inputs::of(snapshot, request);
    inputs.respond(snapshot, &inputs.decide(snapshot, now))
}

/// The whole request path but metrics and audit: like [`check`], with fetched CRLs
/// and OCSP from `live`.
pub async fn check_live(
    live: &LiveRevocation,
    snapshot: &Snapshot,
    request: &CheckRequest,
    now: i64,
) -> CheckResponse {
    let inputs = Inputs::of(snapshot, request);
    let decision = inputs.decide_live(live, snapshot, now).await;
    inputs.respond(snapshot, &decision)
}

fn log_decision(
    decision: &Decision,
    request_id: Option<&str>,
    caller: Option<IpAddr>,
    roles: Option<&str>,
    xfcc_ignored: bool,
) {
    match decision {
        Decision::Allow(g) => tracing::debug!(
            request_id,
            caller = %caller.map_or_else(|| "-".to_string(), |p| p.to_string()),
            roles,
            role = %g.role.name,
            sub = %g.sub,
            "allow"
        ),
        Decision::Deny(d) => tracing::info!(
            request_id,
            caller = %caller.map_or_else(|| "-".to_string(), |p| p.to_string()),
            roles,
            reason = d.reason.code(),
            detail = %d.reason,
            xfcc_ignored,
            per_role = %PerRole(&d.verdicts),
            "deny"
        ),
    }
}

/// Every role's verdict as one log field, formatted only if the event is logged (a
/// flood of denials must not pay for text nobody reads).
struct PerRole<'a>(&'a [engine::RoleVerdict]);

impl std::fmt::Display for PerRole<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match &v.outcome {
                Ok(()) => write!(f, "{}: allow", v.role)?,
                Err(r) => write!(f, "{}: {r}", v.role)?,
            }
        }
        Ok(())
    }
}

fn allow(
    snapshot: &Snapshot,
    grant: &Grant,
    incoming: Option<&HashMap<String, String>>,
) -> CheckResponse {
    let settings = &snapshot.settings;
    let values = grant.identity_values();
    let mut headers = Vec::with_capacity(values.len() + grant.meta.len());
    let mut metadata = Struct::default();
    for ((name, (_, key)), value) in settings
        .identity_headers
        .iter()
        .zip(IDENTITY_FIELDS)
        .zip(values)
        .filter(|(_, v)| !v.is_empty())
    {
        headers.push(set_header(name, value));
        metadata.fields.insert(key.to_string(), string_value(value));
    }
    let mut meta_names: Vec<String> = Vec::with_capacity(grant.meta.len());
    for (key, value) in grant.meta.iter().filter(|(_, v)| !v.is_empty()) {
        let name = format!("{}{key}", settings.meta_header_prefix);
        headers.push(set_header(&name, value));
        meta_names.push(name);
    }
    // Every incoming header with the prefix that we do not set ourselves goes; the ones
    // we set replace the client's (OverwriteIfExistsOrAdd).
    let headers_to_remove = incoming
        .map(|h| {
            h.keys()
                .filter(|k| {
                    k.starts_with(settings.header_prefix.as_str())
                        && !settings
                            .identity_headers
                            .iter()
                            .zip(values)
                            .any(|(n, v)| !v.is_empty() && n == *k)
                        && !meta_names.iter().any(|n| n == *k)
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();

    if !grant.meta.is_empty() {
        let meta = Struct {
            fields: grant
                .meta
                .iter()
                .map(|(k, v)| (k.clone(), string_value(v)))
                .collect(),
        };
        metadata.fields.insert(
            "meta".into(),
            Value {
                kind: Some(Kind::StructValue(meta)),
            },
        );
    }
    if !grant.role.policies.is_empty() {
        metadata.fields.insert(
            "policies".into(),
            Value {
                kind: Some(Kind::ListValue(ListValue {
                    values: grant
                        .role
                        .policies
                        .iter()
                        .map(|p| string_value(p))
                        .collect(),
                })),
            },
        );
    }
    CheckResponse {
        status: Some(rpc::Status {
            code: GRPC_OK,
            ..Default::default()
        }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove,
            ..Default::default()
        })),
        dynamic_metadata: Some(metadata),
    }
}

fn deny(snapshot: &Snapshot, denial: &engine::Denial) -> CheckResponse {
    let mut body = serde_json::json!({ "reason": denial.reason.code() });
    if snapshot.settings.global.deny.detail {
        body["detail"] = serde_json::Value::String(denial.reason.to_string());
        body["roles"] = denial
            .verdicts
            .iter()
            .map(|v| {
                let (reason, detail) = match &v.outcome {
                    Ok(()) => ("allow".to_string(), String::new()),
                    Err(r) => (r.code().to_string(), r.to_string()),
                };
                serde_json::json!({ "role": &*v.role, "reason": reason, "detail": detail })
            })
            .collect();
    }
    let mut metadata = Struct::default();
    metadata
        .fields
        .insert("reason".into(), string_value(denial.reason.code()));
    CheckResponse {
        status: Some(rpc::Status {
            code: GRPC_PERMISSION_DENIED,
            message: denial.reason.code().to_string(),
            ..Default::default()
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(snapshot.settings.global.deny.status),
            }),
            headers: vec![set_header("content-type", "application/json")],
            body: body.to_string(),
        })),
        dynamic_metadata: Some(metadata),
    }
}

/// A header that replaces any client-sent header of the same name.
fn set_header(name: &str, value: &str) -> HeaderValueOption {
    #[allow(deprecated)]
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_string(),
            value: header_safe(value),
            raw_value: Vec::new(),
        }),
        append: None,
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
        keep_empty_value: false,
    }
}

/// Certificate text can hold anything; a header value must not hold control characters
/// (Envoy would reject the response, or worse, a CR/LF would split headers). Control
/// characters and non-ASCII bytes are percent-escaped.
fn header_safe(value: &str) -> String {
    if value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'%')
    {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 8);
    for b in value.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn string_value(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::header_safe;

    #[test]
    fn header_values_cannot_split_headers() {
        assert_eq!(header_safe("CN=web,O=Acme"), "CN=web,O=Acme");
        assert_eq!(header_safe("a\r\nx-evil: 1"), "a%0D%0Ax-evil: 1");
        assert_eq!(header_safe("100%"), "100%25");
        assert_eq!(header_safe("é"), "%C3%A9");
    }
}
