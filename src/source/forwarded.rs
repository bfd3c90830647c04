//! The caller's IP address: the immediate peer, or, when that peer is a trusted proxy
//! (`trusted_proxies` CIDRs), the right-most `X-Forwarded-For` hop that is not itself
//! a trusted proxy.
//!
//! Every proxy appends the address it received the request from, so the right end of
//! the header is written by the proxies nearest to us and the left end by whoever
//! sent the request first — possibly the client itself, forging hops. Walking from the
//! right and stopping at the first address we do not trust takes exactly as much of
//! the header as trusted proxies wrote, and nothing a client wrote. A header from an
//! untrusted peer is never read at all.

use std::net::{IpAddr, SocketAddr};

use super::SourcePolicy;

/// Hops examined at most. A longer chain of trusted proxies is not a real deployment;
/// past the limit the caller is unknown (fail closed) rather than a walk of an
/// attacker-sized header.
pub const MAX_FORWARDED_HOPS: usize = 32;

/// The caller IP for `token_bound_cidrs` and the audit log.
///
/// `None` when it cannot be known: no peer address, or a trusted peer forwarded a
/// hop that is not an IP address (or more than [`MAX_FORWARDED_HOPS`] trusted ones).
/// Roles bound to CIDRs deny such a request.
pub fn client_ip(
    policy: &SourcePolicy,
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
) -> Option<IpAddr> {
    let peer = peer?;
    if !policy.peer_is_trusted(Some(peer)) {
        return Some(peer);
    }
    let Some(header) = forwarded_for.filter(|h| !h.trim().is_empty()) else {
        // A trusted proxy that forwarded nothing (its own health check, say) is the caller.
        return Some(peer);
    };
    let mut leftmost = peer;
    for (seen, hop) in header.rsplit(',').enumerate() {
        if seen == MAX_FORWARDED_HOPS {
            return None;
        }
        let hop = parse_hop(hop)?;
        if !policy.peer_is_trusted(Some(hop)) {
            return Some(hop);
        }
        leftmost = hop;
    }
    // Every hop is a trusted proxy: the furthest one we know of is the caller.
    Some(leftmost)
}

/// One `X-Forwarded-For` entry: `192.0.2.1`, `2001:db8::1`, `192.0.2.1:443` or
/// `[2001:db8::1]:443` (some proxies add the port). IPv4-mapped IPv6 addresses are
/// taken as IPv4, as peer addresses are.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop
        .parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(trusted: &[&str]) -> SourcePolicy {
        let trusted: Vec<String> = trusted.iter().map(|s| s.to_string()).collect();
        SourcePolicy::new(true, true, false, &trusted).expect("policy")
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn untrusted_peer_is_the_caller_whatever_it_forwards() {
        let p = policy(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(&p, ip("203.0.113.9"), Some("198.51.100.1")),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(&p, ip("203.0.113.9"), None), ip("203.0.113.9"));
        // No trusted proxies at all: never read.
        assert_eq!(
            client_ip(&policy(&[]), ip("10.0.0.5"), Some("198.51.100.1")),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn trusted_peer_gives_the_rightmost_untrusted_hop() {
        let p = policy(&["10.0.0.0/8", "192.168.1.7"]);
        assert_eq!(
            client_ip(&p, ip("10.0.0.5"), Some("198.51.100.1")),
            ip("198.51.100.1")
        );
        // Envoy with use_remote_address appends the peer itself: skipped as trusted.
        assert_eq!(
            client_ip(&p, ip("10.0.0.5"), Some("198.51.100.1, 10.0.0.5")),
            ip("198.51.100.1")
        );
        // A client forging hops on the left gains nothing.
        assert_eq!(
            client_ip(
                &p,
                ip("10.0.0.5"),
                Some("10.1.1.1, 1.2.3.4, 198.51.100.1, 192.168.1.7,10.0.0.9")
            ),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn odd_hops() {
        let p = policy(&["10.0.0.0/8", "fd00::/8"]);
        assert_eq!(
            client_ip(&p, ip("10.0.0.5"), Some("198.51.100.1:4711")),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_ip(&p, ip("fd00::1"), Some("[2001:db8::1]:443, fd00::2")),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(&p, ip("10.0.0.5"), Some("::ffff:198.51.100.1")),
            ip("198.51.100.1")
        );
        // Every hop trusted: the furthest known proxy.
        assert_eq!(
            client_ip(&p, ip("10.0.0.5"), Some("10.0.0.7, 10.0.0.6")),
            ip("10.0.0.7")
        );
        // Trusted peer, nothing forwarded: the peer.
        assert_eq!(client_ip(&p, ip("10.0.0.5"), Some("  ")), ip("10.0.0.5"));
        // Garbage where a trusted proxy's hop should be: unknown, not guessed.
        assert_eq!(client_ip(&p, ip("10.0.0.5"), Some("unknown")), None);
        assert_eq!(client_ip(&p, ip("10.0.0.5"), Some("1.2.3.4, ")), None);
        // Garbage left of an untrusted hop is never reached.
        assert_eq!(
            client_ip(&p, ip("10.0.0.5"), Some("<script>, 198.51.100.1")),
            ip("198.51.100.1")
        );
        assert_eq!(client_ip(&p, None, Some("198.51.100.1")), None);
    }

    #[test]
    fn hop_walk_is_bounded() {
        let p = policy(&["10.0.0.0/8"]);
        let trusted_hops = vec!["10.0.0.1"; MAX_FORWARDED_HOPS + 1].join(",");
        assert_eq!(client_ip(&p, ip("10.0.0.5"), Some(&trusted_hops)), None);
        let deep = format!(
            "198.51.100.1,{}",
            vec!["10.0.0.1"; MAX_FORWARDED_HOPS - 1].join(",")
        );
        assert_eq!(
            client_ip(&p, ip("10.0.0.5"), Some(&deep)),
            ip("198.51.100.1")
        );
        // A huge header from a trusted proxy is read from the right, only as far as needed.
        let huge = format!("{}198.51.100.1", "x,".repeat(500_000));
        assert_eq!(
            client_ip(&p, ip("10.0.0.5"), Some(&huge)),
            ip("198.51.100.1")
        );
    }
}
