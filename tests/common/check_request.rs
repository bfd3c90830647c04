//! `CheckRequest`s shaped like Envoy 1.40's, for tests that talk to the adapter or the
//! gRPC server directly.

use std::collections::HashMap;

use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};

/// A request from peer `peer_ip` with its certificate (URL-encoded PEM, "" for none)
/// and HTTP headers; no route roles.
pub fn check_request(
    peer_ip: &str,
    peer_certificate: &str,
    headers: &[(&str, &str)],
) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: peer_ip.into(),
                        ..Default::default()
                    })),
                }),
                certificate: peer_certificate.to_string(),
                ..Default::default()
            }),
            request: Some(Request {
                http: Some(HttpRequest {
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<HashMap<_, _>>(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}
