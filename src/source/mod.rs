//! Where the client certificate comes from (spec §1).
//!
//! Two sources exist: Envoy's own TLS peer certificate (`attributes.source.certificate`,
//! the leaf only) and the `x-forwarded-client-cert` (XFCC) header. The header is text a
//! client can send, so it is never believed by default. Trust is earned hop by hop:
//!
//! - the **right-most** element is believed only when the Envoy in front sets XFCC
//!   itself (`xfcc.envoy_sets`) or the immediate peer address is a trusted proxy CIDR;
//!   if a peer certificate is present, that element must describe it (its `Hash`, or
//!   else its `Cert`), which catches an Envoy that forwards client-sent XFCC;
//! - an element further **left** is believed only if the element to its right (the hop
//!   that added it) has a URI/DNS/Subject identity matching a trusted proxy glob.
//!
//! The client is the left-most believed element; with no believed XFCC, the peer.
//! Untrusted XFCC is ignored (and flagged for metrics), never an error by itself.

use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::engine::Reason;
use crate::pki::glob::GlobSet;
use crate::pki::pem::{decode_certificates, sha256};

pub mod forwarded;
pub mod xfcc;

pub use forwarded::client_ip;
use xfcc::XfccElement;

/// The certificate-source settings of the global config, compiled once per reload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePolicy {
    /// "peer" is in `certificate_sources`: Envoy's own TLS peer certificate may be the client.
    pub peer: bool,
    /// "xfcc" is in `certificate_sources`.
    pub xfcc: bool,
    /// `xfcc.envoy_sets`: the Envoy in front sanitizes and sets XFCC itself.
    pub envoy_sets: bool,
    /// `trusted_proxies` entries that are CIDRs (or bare IPs): immediate peers whose XFCC right-most element is believed.
    pub trusted_cidrs: Vec<IpNet>,
    /// `trusted_proxies` entries that are identity globs: an XFCC hop with a matching URI/DNS/Subject vouches for the element to its left.
    pub trusted_identities: GlobSet,
}

impl SourcePolicy {
    /// Splits `trusted_proxies` into CIDRs (anything that parses as an `IpNet` or
    /// `IpAddr`) and identity globs. Errors name the bad entry.
    ///
    /// An entry that is neither a valid network nor plausibly an identity is an error
    /// rather than a glob: `10.0.0.0/33` or `10.0.0.256` silently becoming an identity
    /// pattern would quietly disable the proxy trust the operator meant to grant (or,
    /// worse, be read as trusting a DNS name). Empty entries are errors for the same
    /// reason: a stray comma must not mean anything.
    pub fn new(
        peer: bool,
        xfcc: bool,
        envoy_sets: bool,
        trusted_proxies: &[String],
    ) -> Result<Self, String> {
        let mut trusted_cidrs = Vec::new();
        let mut identities = Vec::new();
        for raw in trusted_proxies {
            let entry = raw.trim();
            if entry.is_empty() {
                return Err("trusted_proxies: empty entry".to_string());
            }
            if let Ok(net) = entry.parse::<IpNet>() {
                trusted_cidrs.push(net.trunc());
            } else if let Ok(addr) = entry.parse::<IpAddr>() {
                trusted_cidrs.push(IpNet::from(addr));
            } else if looks_like_ip(entry) {
                return Err(format!(
                    "trusted_proxies: {entry:?} is neither a valid IP address or CIDR nor an identity"
                ));
            } else {
                identities.push(entry);
            }
        }
        Ok(SourcePolicy {
            peer,
            xfcc,
            envoy_sets,
            trusted_cidrs,
            trusted_identities: GlobSet::new(identities),
        })
    }

    /// Whether the immediate peer (`source.address`) is a trusted proxy. An unknown
    /// address is never trusted. An IPv4-mapped IPv6 address (what a dual-stack
    /// listener reports for IPv4 clients) is also checked as the IPv4 address, so
    /// `10.0.0.0/8` works whichever way Envoy listens.
    pub fn peer_is_trusted(&self, addr: Option<IpAddr>) -> bool {
        let Some(addr) = addr else {
            return false;
        };
        let mapped = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.trusted_cidrs
            .iter()
            .any(|net| net.contains(&addr) || mapped.is_some_and(|m| net.contains(&m)))
    }
}

/// Whether a `trusted_proxies` entry that failed to parse as an address was meant as
/// one: only digits and dots (an IPv4 attempt; no DNS name is all-numeric), or only
/// hex digits and colons with a `:` or a `/` (an IPv6 attempt), or a `/` with only
/// address characters before it (a CIDR attempt). URIs, DNS names and subjects all
/// contain other characters, so they are never caught here.
fn looks_like_ip(entry: &str) -> bool {
    if entry.contains('*') {
        return false;
    }
    let ipv4ish = entry.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let ipv6ish = entry
        .bytes()
        .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        && entry.contains(':');
    let cidrish = entry.split_once('/').is_some_and(|(addr, _)| {
        !addr.is_empty()
            && addr
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    });
    ipv4ish || ipv6ish || cidrish
}

/// What one CheckRequest tells us about the client certificate.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceInput<'a> {
    /// `attributes.source.certificate` (URL-encoded PEM of the leaf; "" when absent).
    pub peer_certificate: Option<&'a str>,
    /// The `x-forwarded-client-cert` header.
    pub xfcc: Option<&'a str>,
    /// `attributes.source.address` IP.
    pub peer_address: Option<IpAddr>,
}

/// Where the chosen leaf came from, for logs, audit and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertOrigin {
    /// Envoy's TLS peer certificate (`source.certificate`). Also used when a believed
    /// XFCC chain ends at the right-most element, which describes that same peer: the
    /// leaf is then the peer certificate and the chain comes from the element.
    Peer,
    /// The `Cert` of XFCC element `element` (0 = left-most).
    Xfcc {
        /// Index of the element, left-most first.
        element: usize,
    },
}

/// The client certificate as presented, not yet decoded.
#[derive(Debug, Clone)]
pub struct Presented<'a> {
    /// The leaf exactly as received (URL-encoded or plain PEM): decoded later, and used as the verified-chain cache key.
    pub leaf: Cow<'a, str>,
    /// Intermediates as received (XFCC `Chain`), if any; may repeat the leaf first (Envoy puts what the client sent, leaf first).
    pub chain: Option<Cow<'a, str>>,
    /// Where `leaf` came from.
    pub origin: CertOrigin,
    /// An XFCC header was present but not believed (counted by metrics; never an error by itself).
    pub xfcc_ignored: bool,
}

/// Whether the request carries an XFCC header that `policy` does not believe at all
/// (counted by metrics: a client or proxy sending XFCC that nobody trusts).
pub fn xfcc_ignored(policy: &SourcePolicy, input: &SourceInput<'_>) -> bool {
    input.xfcc.is_some_and(|h| !h.trim().is_empty()) && !xfcc_believed(policy, input)
}

/// The right-most XFCC element may be believed (spec §1).
fn xfcc_believed(policy: &SourcePolicy, input: &SourceInput<'_>) -> bool {
    policy.xfcc && (policy.envoy_sets || policy.peer_is_trusted(input.peer_address))
}

/// Chooses the client certificate for one request under `policy` (spec §1).
///
/// Errors: [`Reason::MalformedXfcc`] for a believed header that does not parse,
/// [`Reason::XfccMismatch`] when the believed right-most element does not describe
/// the TLS peer's certificate, [`Reason::MalformedCertificate`] when the peer
/// certificate needed for that comparison cannot be decoded, and
/// [`Reason::NoClientCertificate`] when no usable certificate is left.
pub fn select<'a>(policy: &SourcePolicy, input: &SourceInput<'a>) -> Result<Presented<'a>, Reason> {
    let peer_cert = input.peer_certificate.filter(|s| !s.trim().is_empty());
    let header = input.xfcc.filter(|s| !s.trim().is_empty());
    match header {
        Some(header) if xfcc_believed(policy, input) => from_xfcc(policy, header, peer_cert),
        _ => from_peer(policy, peer_cert, header.is_some()),
    }
}

/// No believed XFCC: the peer certificate is the client, if peer is a source.
fn from_peer<'a>(
    policy: &SourcePolicy,
    peer_cert: Option<&'a str>,
    xfcc_ignored: bool,
) -> Result<Presented<'a>, Reason> {
    match peer_cert {
        Some(leaf) if policy.peer => Ok(Presented {
            leaf: Cow::Borrowed(leaf),
            chain: None,
            origin: CertOrigin::Peer,
            xfcc_ignored,
        }),
        _ => Err(Reason::NoClientCertificate),
    }
}

/// A believed XFCC header: bind the right-most element to the peer, walk left
/// through trusted hops, and take the left-most believed element's certificate.
fn from_xfcc<'a>(
    policy: &SourcePolicy,
    header: &'a str,
    peer_cert: Option<&'a str>,
) -> Result<Presented<'a>, Reason> {
    let elements = xfcc::parse(header).map_err(|e| Reason::MalformedXfcc {
        detail: e.to_string(),
    })?;
    let Some(last) = elements.len().checked_sub(1) else {
        // Only reachable for a blank header, which `select` already treats as absent.
        return from_peer(policy, peer_cert, false);
    };
    if let (Some(peer), Some(element)) = (peer_cert, elements.get(last)) {
        check_describes_peer(element, peer)?;
    }

    // The right-most hop is the TLS peer. When Envoy gave us its certificate, the
    // names that may vouch for the element to its left are the certificate's own
    // (verified by the handshake), never the names the element claims: an Envoy that
    // wrongly forwards client-sent XFCC must not let a client claim a proxy identity.
    let peer_identities = match peer_cert {
        Some(peer) if last > 0 => Some(certificate_identities(peer)?),
        _ => None,
    };
    let mut client = last;
    while client > 0
        && elements
            .get(client)
            .is_some_and(|hop| match &peer_identities {
                Some(names) if client == last => policy
                    .trusted_identities
                    .matches_any(names.iter().map(String::as_str)),
                _ => policy.trusted_identities.matches_any(hop.identities()),
            })
    {
        client -= 1;
    }

    // Take the element out by value so its borrowed values keep the header's lifetime.
    let Some(element) = elements.into_iter().nth(client) else {
        return Err(Reason::NoClientCertificate);
    };
    let chain = element.chain;
    if client == last {
        // The right-most element describes the TLS peer itself. When the peer
        // certificate is known it is the leaf, even if the element also carries a
        // `Cert`: the peer certificate is what Envoy's handshake actually saw.
        if let Some(peer) = peer_cert {
            return Ok(Presented {
                leaf: Cow::Borrowed(peer),
                chain,
                origin: CertOrigin::Peer,
                xfcc_ignored: false,
            });
        }
    }
    match element.cert {
        Some(leaf) => Ok(Presented {
            leaf,
            chain,
            origin: CertOrigin::Xfcc { element: client },
            xfcc_ignored: false,
        }),
        None => Err(Reason::NoClientCertificate),
    }
}

/// The identities of a certificate as an XFCC hop: URI SANs, DNS SANs and the subject
/// (RFC 4514, as Envoy writes `Subject`).
fn certificate_identities(pem: &str) -> Result<Vec<String>, Reason> {
    let der = first_der(pem).map_err(|detail| Reason::MalformedCertificate { detail })?;
    let cert = crate::pki::cert::ParsedCert::from_der(der.into())
        .map_err(|detail| Reason::MalformedCertificate { detail })?;
    let mut names = cert.uri_sans;
    names.extend(cert.dns_sans);
    names.push(cert.subject);
    Ok(names)
}

/// Checks that the right-most XFCC element describes the TLS peer certificate.
///
/// `Hash` (hex SHA-256 of the leaf DER, any case) must equal the peer's; `Cert`, when
/// present, must be the same certificate (identical text first, then the decoded DER,
/// since two encoders may escape differently). At least one of them must be present.
/// The peer certificate is decoded only when a comparison needs it.
fn check_describes_peer(element: &XfccElement<'_>, peer: &str) -> Result<(), Reason> {
    if element.hash.is_none() && element.cert.is_none() {
        return Err(Reason::XfccMismatch);
    }
    // Fast path (Envoy with `cert: true` writes the very string it puts in
    // `source.certificate`): an identical `Cert` binds the element to the peer without
    // decoding anything. Nothing else is taken from `Hash` afterwards (the leaf is the
    // peer certificate, the hop's names come from it, the chain is verified), so a
    // disagreeing `Hash` beside it cannot change the decision.
    if element.cert.as_deref() == Some(peer) {
        return Ok(());
    }
    // Decoded at most once, and only if a comparison below needs it.
    let mut peer_der: Option<Vec<u8>> = None;
    if let Some(hash) = element.hash.as_deref() {
        let der = peer_leaf(&mut peer_der, peer)?;
        if !hash.trim().eq_ignore_ascii_case(&hex::encode(sha256(der))) {
            return Err(Reason::XfccMismatch);
        }
    }
    if let Some(cert) = element.cert.as_deref()
        && cert != peer
    {
        let claimed = first_der(cert).map_err(|detail| Reason::MalformedXfcc {
            detail: format!("Cert: {detail}"),
        })?;
        if claimed != *peer_leaf(&mut peer_der, peer)? {
            return Err(Reason::XfccMismatch);
        }
    }
    Ok(())
}

/// The peer leaf's DER, decoded on first use and kept in `slot`.
fn peer_leaf<'s>(slot: &'s mut Option<Vec<u8>>, peer: &str) -> Result<&'s [u8], Reason> {
    if slot.is_none() {
        let der = first_der(peer).map_err(|detail| Reason::MalformedCertificate {
            detail: format!("peer certificate: {detail}"),
        })?;
        *slot = Some(der);
    }
    Ok(slot.as_deref().unwrap_or_default())
}

/// The DER of the first certificate in `text` (URL-encoded or plain PEM).
fn first_der(text: &str) -> Result<Vec<u8>, String> {
    let mut certs = decode_certificates(text).map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate".to_string());
    }
    Ok(certs.swap_remove(0).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    use rcgen::{CertificateParams, KeyPair, SanType};

    /// A test certificate: its URL-encoded PEM (as Envoy sends it) and its hash.
    struct TestCert {
        encoded: String,
        plain: String,
        hash: String,
    }

    fn make(uri: &str) -> TestCert {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![SanType::URI(uri.try_into().expect("ia5"))];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let plain = cert.pem();
        TestCert {
            encoded: utf8_percent_encode(&plain, NON_ALPHANUMERIC).to_string(),
            hash: hex::encode(sha256(cert.der())),
            plain,
        }
    }

    fn policy(envoy_sets: bool, proxies: &[&str]) -> SourcePolicy {
        let proxies: Vec<String> = proxies.iter().map(|s| s.to_string()).collect();
        SourcePolicy::new(true, true, envoy_sets, &proxies).expect("policy")
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    /// An Envoy-style element for `c`, claiming `uri`.
    fn element(c: &TestCert, uri: &str) -> String {
        format!(
            "Hash={};Cert=\"{}\";Subject=\"CN=x\";URI={uri}",
            c.hash, c.encoded
        )
    }

    /// What `select` chose, owned, so tests can pass temporaries as input.
    #[derive(Debug)]
    struct Got {
        leaf: String,
        chain: Option<String>,
        origin: CertOrigin,
        xfcc_ignored: bool,
    }

    fn run(
        policy: &SourcePolicy,
        peer_certificate: Option<&str>,
        xfcc: Option<&str>,
        peer_address: Option<IpAddr>,
    ) -> Result<Got, Reason> {
        let p = select(
            policy,
            &SourceInput {
                peer_certificate,
                xfcc,
                peer_address,
            },
        )?;
        Ok(Got {
            leaf: p.leaf.into_owned(),
            chain: p.chain.map(Cow::into_owned),
            origin: p.origin,
            xfcc_ignored: p.xfcc_ignored,
        })
    }

    const GW: &str = "spiffe://cluster.local/ns/istio-system/sa/gw";
    const WEB: &str = "spiffe://cluster.local/ns/prod/sa/web";
    const ISTIO_GLOB: &str = "spiffe://cluster.local/ns/istio-system/sa/*";

    #[test]
    fn policy_splits_trusted_proxies() {
        let p = SourcePolicy::new(
            true,
            true,
            false,
            &[
                "10.0.0.0/8".into(),
                " 192.168.1.7 ".into(),
                "fd00::/8".into(),
                "::1".into(),
                "10.1.2.3/16".into(),
                ISTIO_GLOB.into(),
                "*.proxy.internal".into(),
                "CN=edge,O=Acme".into(),
                "cafe.be".into(),
            ],
        )
        .expect("policy");
        assert_eq!(p.trusted_cidrs.len(), 5);
        assert_eq!(
            p.trusted_cidrs[4],
            "10.1.0.0/16".parse::<IpNet>().expect("net")
        );
        assert_eq!(p.trusted_identities.len(), 4);
        assert!(p.trusted_identities.matches(GW));
        assert!(p.peer_is_trusted(ip("10.9.9.9")));
        assert!(p.peer_is_trusted(ip("192.168.1.7")));
        assert!(!p.peer_is_trusted(ip("192.168.1.8")));
        assert!(p.peer_is_trusted(ip("fd12::1")));
        assert!(p.peer_is_trusted(ip("::1")));
        assert!(p.peer_is_trusted(ip("::ffff:10.0.0.1")));
        assert!(!p.peer_is_trusted(ip("11.0.0.1")));
        assert!(!p.peer_is_trusted(None));
    }

    #[test]
    fn policy_rejects_bad_entries() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0.256",
            "1.2.3",
            "fe80:::1",
            "::1/129",
            "",
            "  ",
        ] {
            let err = SourcePolicy::new(true, true, false, &[bad.to_string()]).expect_err(bad);
            assert!(err.contains("trusted_proxies"), "{err}");
            if !bad.trim().is_empty() {
                assert!(err.contains(bad), "{err} should name {bad}");
            }
        }
    }

    #[test]
    fn peer_only_without_xfcc() {
        let c = make(WEB);
        let p = policy(false, &[]);
        let got = run(&p, Some(&c.encoded), None, ip("10.0.0.1")).expect("select");
        assert_eq!(got.leaf, c.encoded);
        assert_eq!(got.chain, None);
        assert_eq!(got.origin, CertOrigin::Peer);
        assert!(!got.xfcc_ignored);
    }

    #[test]
    fn nothing_at_all() {
        let p = policy(true, &["10.0.0.0/8"]);
        for (peer, xfcc) in [(None, None), (Some(""), Some("")), (Some(" "), Some("  "))] {
            let got = run(&p, peer, xfcc, ip("10.0.0.1"));
            assert_eq!(got.err(), Some(Reason::NoClientCertificate));
        }
    }

    #[test]
    fn client_forged_xfcc_is_ignored_without_trust() {
        let peer = make(WEB);
        let forged = make("spiffe://cluster.local/ns/prod/sa/admin");
        let p = policy(false, &["10.0.0.0/8", ISTIO_GLOB]);
        let got = run(
            &p,
            Some(&peer.encoded),
            Some(&element(&forged, GW)),
            ip("203.0.113.9"),
        )
        .expect("select");
        assert_eq!(got.leaf, peer.encoded);
        assert_eq!(got.origin, CertOrigin::Peer);
        assert!(got.xfcc_ignored);
    }

    #[test]
    fn untrusted_xfcc_alone_is_no_certificate() {
        let forged = make(WEB);
        let p = policy(false, &["10.0.0.0/8"]);
        let got = run(&p, None, Some(&element(&forged, WEB)), None);
        assert_eq!(got.err(), Some(Reason::NoClientCertificate));
    }

    #[test]
    fn malformed_header_without_trust_is_ignored() {
        let peer = make(WEB);
        let p = policy(false, &[]);
        let got = run(
            &p,
            Some(&peer.encoded),
            Some("Subject=\"unterminated"),
            ip("10.0.0.1"),
        )
        .expect("select");
        assert_eq!(got.origin, CertOrigin::Peer);
        assert!(got.xfcc_ignored);
    }

    #[test]
    fn malformed_header_with_trust_is_denied() {
        let peer = make(WEB);
        for p in [policy(true, &[]), policy(false, &["10.0.0.0/8"])] {
            let got = run(
                &p,
                Some(&peer.encoded),
                Some("Subject=\"unterminated"),
                ip("10.0.0.1"),
            );
            assert!(
                matches!(got, Err(Reason::MalformedXfcc { ref detail }) if detail.contains("unterminated")),
                "{got:?}"
            );
        }
    }

    #[test]
    fn envoy_sets_with_matching_hash() {
        let c = make(WEB);
        let header = format!(
            "Hash={};Chain=\"{}\";Subject=\"CN=web\";URI={WEB}",
            c.hash.to_uppercase(),
            c.encoded
        );
        let got = run(&policy(true, &[]), Some(&c.encoded), Some(&header), None).expect("select");
        assert_eq!(got.leaf, c.encoded);
        assert_eq!(got.chain.as_deref(), Some(c.encoded.as_str()));
        assert_eq!(got.origin, CertOrigin::Peer);
        assert!(!got.xfcc_ignored);
    }

    #[test]
    fn trusted_cidr_with_matching_hash() {
        let c = make(WEB);
        let got = run(
            &policy(false, &["10.0.0.0/8"]),
            Some(&c.encoded),
            Some(&element(&c, WEB)),
            ip("10.1.1.1"),
        )
        .expect("select");
        assert_eq!(got.leaf, c.encoded);
        assert!(!got.xfcc_ignored);
    }

    #[test]
    fn mismatching_hash_is_denied() {
        let peer = make(WEB);
        let other = make(WEB);
        for p in [policy(true, &[]), policy(false, &["10.0.0.0/8"])] {
            let got = run(
                &p,
                Some(&peer.encoded),
                Some(&element(&other, WEB)),
                ip("10.0.0.1"),
            );
            assert_eq!(got.err(), Some(Reason::XfccMismatch));
        }
    }

    #[test]
    fn identical_cert_binds_without_decoding() {
        // A peer "certificate" that is not even decodable: binding by identical `Cert`
        // must not need to decode it (the engine decides about the bytes later).
        let header = "Hash=00;Cert=\"not-a-pem\"";
        let got = run(&policy(true, &[]), Some("not-a-pem"), Some(header), None).expect("bound");
        assert_eq!(got.leaf, "not-a-pem");
        assert_eq!(got.origin, CertOrigin::Peer);
    }

    #[test]
    fn hash_right_but_cert_wrong_is_denied() {
        // A forwarded, client-crafted element that copies the peer's hash but
        // carries someone else's certificate must not pass the binding.
        let peer = make(WEB);
        let victim = make("spiffe://cluster.local/ns/prod/sa/admin");
        let header = format!("Hash={};Cert=\"{}\"", peer.hash, victim.encoded);
        let got = run(&policy(true, &[]), Some(&peer.encoded), Some(&header), None);
        assert_eq!(got.err(), Some(Reason::XfccMismatch));
    }

    #[test]
    fn no_hash_no_cert_is_a_mismatch_when_peer_present() {
        let peer = make(WEB);
        let got = run(
            &policy(true, &[]),
            Some(&peer.encoded),
            Some(&format!("URI={WEB}")),
            None,
        );
        assert_eq!(got.err(), Some(Reason::XfccMismatch));
    }

    #[test]
    fn cert_without_hash_binds_by_der() {
        let c = make(WEB);
        let p = policy(true, &[]);
        // Identical text: fast path.
        let same = format!("Cert=\"{}\"", c.encoded);
        // Same certificate, different encoding (plain PEM, quoted): decoded compare.
        let plain = format!("Cert=\"{}\"", c.plain.replace('\n', "%0A"));
        for header in [same, plain] {
            let got = run(&p, Some(&c.encoded), Some(&header), None).expect("select");
            assert_eq!(got.leaf, c.encoded);
        }
        let other = make(WEB);
        let got = run(
            &p,
            Some(&c.encoded),
            Some(&format!("Cert=\"{}\"", other.encoded)),
            None,
        );
        assert_eq!(got.err(), Some(Reason::XfccMismatch));
        let got = run(&p, Some(&c.encoded), Some("Cert=\"garbage\""), None);
        assert!(matches!(got, Err(Reason::MalformedXfcc { .. })), "{got:?}");
    }

    #[test]
    fn undecodable_peer_is_malformed_certificate() {
        let got = run(
            &policy(true, &[]),
            Some("-----BEGIN%20CERTIFICATE-----%0AAAA"),
            Some("Hash=00"),
            None,
        );
        assert!(
            matches!(got, Err(Reason::MalformedCertificate { .. })),
            "{got:?}"
        );
    }

    #[test]
    fn trusted_hop_identity_selects_left_element() {
        // Istio-like: client -> gateway (adds the client's element) -> Envoy (adds
        // the gateway's element, describing its TLS peer, the gateway).
        let client = make(WEB);
        let gateway = make(GW);
        let header = format!(
            "Hash={};Cert=\"{}\";Chain=\"{}\";URI={WEB},{}",
            client.hash,
            client.encoded,
            client.encoded,
            element(&gateway, GW)
        );
        let got = run(
            &policy(true, &[ISTIO_GLOB]),
            Some(&gateway.encoded),
            Some(&header),
            None,
        )
        .expect("select");
        assert_eq!(got.leaf, client.encoded);
        assert_eq!(got.chain.as_deref(), Some(client.encoded.as_str()));
        assert_eq!(got.origin, CertOrigin::Xfcc { element: 0 });
        assert!(!got.xfcc_ignored);
    }

    #[test]
    fn untrusted_hop_keeps_right_most() {
        let client = make(WEB);
        let gateway = make(GW);
        let header = format!("{},{}", element(&client, WEB), element(&gateway, GW));
        let got = run(
            &policy(true, &["spiffe://cluster.local/ns/other/sa/*"]),
            Some(&gateway.encoded),
            Some(&header),
            None,
        )
        .expect("select");
        assert_eq!(got.leaf, gateway.encoded);
        assert_eq!(got.origin, CertOrigin::Peer);
    }

    #[test]
    fn only_last_hop_trusted_selects_middle() {
        let a = make("spiffe://cluster.local/ns/prod/sa/a");
        let b = make("spiffe://cluster.local/ns/prod/sa/b");
        let gw = make(GW);
        let header = format!(
            "{},{},{}",
            element(&a, "spiffe://cluster.local/ns/prod/sa/a"),
            element(&b, "spiffe://cluster.local/ns/prod/sa/b"),
            element(&gw, GW)
        );
        // Istio's (Istio-only) relay: no peer certificate, envoy_sets.
        let got = run(
            &SourcePolicy {
                peer: false,
                ..policy(true, &[ISTIO_GLOB])
            },
            None,
            Some(&header),
            None,
        )
        .expect("select");
        assert_eq!(got.leaf, b.encoded);
        assert_eq!(got.origin, CertOrigin::Xfcc { element: 1 });

        // With every hop trusted the walk reaches the left-most element.
        let got = run(
            &policy(true, &[ISTIO_GLOB, "spiffe://cluster.local/ns/prod/sa/b"]),
            Some(&gw.encoded),
            Some(&header),
            None,
        )
        .expect("select");
        assert_eq!(got.leaf, a.encoded);
        assert_eq!(got.origin, CertOrigin::Xfcc { element: 0 });
    }

    #[test]
    fn subject_and_dns_identities_vouch_too() {
        let client = make(WEB);
        let gw = make(GW);
        let header = format!(
            "{},Hash={};Subject=\"CN=edge,O=Acme\";DNS=edge.internal",
            element(&client, WEB),
            gw.hash
        );
        // No peer certificate (Istio's CUSTOM provider): the element's claims are what
        // the Envoy that set XFCC wrote, and they vouch.
        for glob in ["CN=edge,O=*", "*.internal"] {
            let got = run(&policy(true, &[glob]), None, Some(&header), None).expect("select");
            assert_eq!(got.leaf, client.encoded, "{glob}");
        }
    }

    #[test]
    fn right_most_hop_vouches_only_with_its_real_certificate_names() {
        // The peer (an ordinary client, URI WEB) sends an element with its own real hash
        // that *claims* the gateway's URI, to get a forged element on its left believed.
        let victim = make("spiffe://cluster.local/ns/prod/sa/payments");
        let attacker = make(WEB);
        let header = format!(
            "{},Hash={};URI={GW}",
            element(&victim, "spiffe://cluster.local/ns/prod/sa/payments"),
            attacker.hash
        );
        let got = run(
            &policy(true, &[ISTIO_GLOB]),
            Some(&attacker.encoded),
            Some(&header),
            None,
        )
        .expect("select");
        assert_eq!(got.leaf, attacker.encoded, "claimed names must not vouch");
        assert_eq!(got.origin, CertOrigin::Peer);

        // The real gateway certificate does vouch.
        let gw = make(GW);
        let header = format!("{},Hash={}", element(&victim, "x"), gw.hash);
        let got = run(
            &policy(true, &[ISTIO_GLOB]),
            Some(&gw.encoded),
            Some(&header),
            None,
        )
        .expect("select");
        assert_eq!(got.leaf, victim.encoded);
    }

    #[test]
    fn missing_cert_in_chosen_element() {
        let gw = make(GW);
        // Left element believed but has no Cert.
        let header = format!("URI={WEB};Hash=ab,{}", element(&gw, GW));
        let got = run(
            &policy(true, &[ISTIO_GLOB]),
            Some(&gw.encoded),
            Some(&header),
            None,
        );
        assert_eq!(got.err(), Some(Reason::NoClientCertificate));

        // Right-most element without Cert and no peer certificate.
        let got = run(
            &policy(true, &[]),
            None,
            Some(&format!("Hash={};URI={WEB}", gw.hash)),
            None,
        );
        assert_eq!(got.err(), Some(Reason::NoClientCertificate));

        // Right-most element without Cert: the peer certificate is the leaf, with
        // the element's chain, even when "peer" is not a configured source.
        let header = format!("Hash={};Chain=\"{}\"", gw.hash, gw.encoded);
        let got = run(
            &SourcePolicy {
                peer: false,
                ..policy(true, &[])
            },
            Some(&gw.encoded),
            Some(&header),
            None,
        )
        .expect("select");
        assert_eq!(got.leaf, gw.encoded);
        assert_eq!(got.chain.as_deref(), Some(gw.encoded.as_str()));
        assert_eq!(got.origin, CertOrigin::Peer);
    }

    #[test]
    fn xfcc_disabled_ignores_header() {
        let peer = make(WEB);
        let other = make(WEB);
        let p = SourcePolicy {
            xfcc: false,
            ..policy(true, &["10.0.0.0/8"])
        };
        let got = run(
            &p,
            Some(&peer.encoded),
            Some(&element(&other, WEB)),
            ip("10.0.0.1"),
        )
        .expect("select");
        assert_eq!(got.leaf, peer.encoded);
        assert!(got.xfcc_ignored);
    }

    #[test]
    fn peer_disabled_with_only_xfcc() {
        let client = make(WEB);
        let p = SourcePolicy {
            peer: false,
            ..policy(true, &[])
        };
        let got = run(&p, None, Some(&element(&client, WEB)), None).expect("select");
        assert_eq!(got.leaf, client.encoded);
        assert_eq!(got.origin, CertOrigin::Xfcc { element: 0 });

        // Peer disabled and XFCC not believed: the peer certificate is not used.
        let p = SourcePolicy {
            peer: false,
            ..policy(false, &[])
        };
        let got = run(
            &p,
            Some(&client.encoded),
            Some(&element(&client, WEB)),
            ip("10.0.0.1"),
        );
        assert_eq!(got.err(), Some(Reason::NoClientCertificate));
    }

    #[test]
    fn empty_header_is_absent() {
        let peer = make(WEB);
        let got = run(&policy(true, &[]), Some(&peer.encoded), Some(""), None).expect("select");
        assert_eq!(got.origin, CertOrigin::Peer);
        assert!(!got.xfcc_ignored);
    }

    #[test]
    fn envoy_sets_off_and_untrusted_peer_address() {
        let client = make(WEB);
        let p = SourcePolicy {
            peer: false,
            ..policy(false, &["10.0.0.0/8"])
        };
        for addr in [ip("192.0.2.1"), None] {
            let got = run(&p, None, Some(&element(&client, WEB)), addr);
            assert_eq!(got.err(), Some(Reason::NoClientCertificate));
        }
        let got = run(&p, None, Some(&element(&client, WEB)), ip("10.2.3.4")).expect("select");
        assert_eq!(got.leaf, client.encoded);
    }
}
