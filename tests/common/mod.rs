//! Shared test support: generated PKIs, a real Envoy, loopback servers.
//! Each integration test file uses a different subset, hence the allow.
#![allow(dead_code)]

pub mod check_request;
pub mod envoy;
pub mod front;
pub mod http_server;
pub mod live;
pub mod ocsp_responder;
pub mod pki;
pub mod scrape;
pub mod world;
