//! certgate: an Envoy ext_authz gRPC service that authorizes every mTLS request by the
//! client's X.509 certificate against Vault-compatible role files.
//!
//! # Layout
//!
//! A request flows one way through these modules:
//!
//! - [`grpc`]: the ext_authz v3 adapter (`CheckRequest` in, `CheckResponse` out), the
//!   `certgate.v1` read API, health and the server with graceful shutdown.
//! - [`source`]: where the client certificate comes from: Envoy's own TLS peer
//!   certificate or the `x-forwarded-client-cert` header, believed hop by hop.
//! - [`engine`]: the pure decision: (request, snapshot, time) → [`engine::Decision`]
//!   with a typed [`engine::Reason`] for every denial. It touches no file and no socket.
//! - [`pki`]: certificate decoding and parsing, chain verification with rustls-webpki,
//!   go-glob name matching.
//! - [`revocation`]: CRLs indexed per issuer (name and key), checked on every candidate
//!   path so that any clean chain may authenticate.
//! - [`snapshot`]: the immutable world one (re)load produces: compiled roles, anchors,
//!   CRL index, a generation number and the verified-chain cache that dies with it.
//! - [`config`]: the file schema (global config and role files in YAML, TOML or JSON),
//!   loading and validation errors with file, line and column.
//! - [`reload`]: directory watch → load → compile → arc-swap; the last good snapshot
//!   keeps serving when an edit is bad.
//! - [`explain`]: one decision explained role by role, for `check` and the `Explain` RPC.
//! - [`clock`]: the wall clock (read only by the adapters) and RFC 3339 text.
//! - [`cli`]: `serve`, `check` and `validate`; `src/main.rs` only calls it.
#![forbid(unsafe_code)]

pub mod admin_http;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub mod explain;
pub mod grpc;
pub mod metrics;
pub mod pki;
pub mod reload;
pub mod revocation;
pub mod snapshot;
pub mod source;
