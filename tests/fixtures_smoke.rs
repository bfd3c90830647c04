//! The test PKI in `tests/common/pki.rs` makes what it claims: checked with x509-parser
//! (and, for chains and CRLs, with rustls-webpki the way certgate uses it).

mod common;

use common::pki::*;
use rustls_pki_types::{CertificateDer, UnixTime};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::oid_registry::{OID_PKCS1_SHA1WITHRSA, OID_X509_EXT_CRL_DISTRIBUTION_POINTS, Oid};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der).expect("parse certificate");
    assert!(rest.is_empty());
    cert
}

fn parse_pem(pem: &str) -> Vec<u8> {
    pem::parse(pem).expect("PEM").into_contents()
}

fn strings<'a>(
    attrs: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) -> Vec<String> {
    attrs.map(|a| a.as_str().unwrap().to_string()).collect()
}

fn oid(arcs: &[u64]) -> Oid<'static> {
    Oid::from(arcs).unwrap()
}

#[test]
fn leaf_carries_names_sans_ous_orgs_extensions_cdp_and_serial() {
    let root = Ca::root("Smoke Root");
    let spec = LeafSpec::client("alice")
        .dns("alice.example.com")
        .dns("alt.example.com")
        .email("alice@example.com")
        .uri("spiffe://cluster.local/ns/prod/sa/alice")
        .ip("127.0.0.1")
        .ou("payments")
        .ou("platform")
        .ou("third")
        .org("Example Corp")
        .org("Example Holdings")
        .serial(vec![0x01, 0x02, 0x03, 0x04])
        .extension(&[1, 3, 6, 1, 4, 1, 99999, 1], der_utf8("prod-tenant"))
        .critical_extension(&[1, 3, 6, 1, 4, 1, 99999, 2], vec![0x04, 0x02, 0xab, 0xcd])
        .cdp("http://127.0.0.1:1/crl/root.crl")
        .ocsp("http://127.0.0.1:2/ocsp");
    let leaf = root.leaf(spec);
    let cert = parse(&leaf.cert_der);

    let subject = cert.subject();
    assert_eq!(strings(subject.iter_common_name()), ["alice"]);
    assert_eq!(
        strings(subject.iter_organizational_unit()),
        ["payments", "platform", "third"]
    );
    assert_eq!(
        strings(subject.iter_organization()),
        ["Example Corp", "Example Holdings"]
    );
    // DER order O, OU, CN; Envoy prints it reversed ("CN=alice,OU=third,...").
    assert_eq!(
        subject.to_string(),
        "O=Example Corp, O=Example Holdings, OU=payments, OU=platform, OU=third, CN=alice"
    );
    // The subject rewrite re-signed the certificate correctly.
    cert.verify_signature(Some(parse(&root.cert_der).public_key()))
        .expect("leaf signed by root");

    let san = cert.subject_alternative_name().unwrap().expect("SAN");
    let mut dns = vec![];
    let mut email = vec![];
    let mut uri = vec![];
    let mut ip = vec![];
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(s) => dns.push(s.to_string()),
            GeneralName::RFC822Name(s) => email.push(s.to_string()),
            GeneralName::URI(s) => uri.push(s.to_string()),
            GeneralName::IPAddress(b) => ip.push(b.to_vec()),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    assert_eq!(dns, ["alice.example.com", "alt.example.com"]);
    assert_eq!(email, ["alice@example.com"]);
    assert_eq!(uri, ["spiffe://cluster.local/ns/prod/sa/alice"]);
    assert_eq!(ip, [vec![127, 0, 0, 1]]);

    let custom = cert
        .get_extension_unique(&oid(&[1, 3, 6, 1, 4, 1, 99999, 1]))
        .unwrap()
        .expect("custom extension");
    assert_eq!(custom.value, der_utf8("prod-tenant"));
    assert!(!custom.critical);
    let critical = cert
        .get_extension_unique(&oid(&[1, 3, 6, 1, 4, 1, 99999, 2]))
        .unwrap()
        .expect("critical extension");
    assert_eq!(critical.value, [0x04, 0x02, 0xab, 0xcd]);
    assert!(critical.critical);

    let cdp = cert
        .get_extension_unique(&OID_X509_EXT_CRL_DISTRIBUTION_POINTS)
        .unwrap()
        .expect("CDP");
    let ParsedExtension::CRLDistributionPoints(points) = cdp.parsed_extension() else {
        panic!("CDP did not parse");
    };
    let Some(DistributionPointName::FullName(names)) = &points.points[0].distribution_point else {
        panic!("CDP has no full name");
    };
    assert!(matches!(
        &names[0],
        GeneralName::URI("http://127.0.0.1:1/crl/root.crl")
    ));

    let aia = cert
        .get_extension_unique(&oid(&[1, 3, 6, 1, 5, 5, 7, 1, 1]))
        .unwrap()
        .expect("AIA");
    let ParsedExtension::AuthorityInfoAccess(aia) = aia.parsed_extension() else {
        panic!("AIA did not parse");
    };
    assert_eq!(
        aia.accessdescs[0].access_method,
        oid(&[1, 3, 6, 1, 5, 5, 7, 48, 1])
    );
    assert!(matches!(
        aia.accessdescs[0].access_location,
        GeneralName::URI("http://127.0.0.1:2/ocsp")
    ));

    assert_eq!(cert.raw_serial(), [0x01, 0x02, 0x03, 0x04]);
    assert_eq!(leaf.serial, [0x01, 0x02, 0x03, 0x04]);
    assert_eq!(leaf.serial_hex(), "01020304");

    // basicConstraints CA:FALSE, digitalSignature.
    assert!(!cert.is_ca());
    assert!(cert.key_usage().unwrap().unwrap().value.digital_signature());
}

#[test]
fn two_ous_and_two_orgs_are_separate_attributes() {
    let root = Ca::root("Smoke Root");
    let leaf = root.leaf(LeafSpec::client("bob").ou("a").ou("b").org("x").org("y"));
    let cert = parse(&leaf.cert_der);
    assert_eq!(
        strings(cert.subject().iter_organizational_unit()),
        ["a", "b"]
    );
    assert_eq!(strings(cert.subject().iter_organization()), ["x", "y"]);
    // Each attribute is its own RDN.
    assert_eq!(cert.subject().iter().count(), 5);
}

#[test]
fn eku_variants() {
    let root = Ca::root("Smoke Root");
    let eku_of = |eku: Eku| {
        let leaf = root.leaf(LeafSpec::client("e").eku(eku));
        let cert = parse(&leaf.cert_der);
        cert.extended_key_usage().unwrap().map(|e| {
            (
                e.value.client_auth,
                e.value.server_auth,
                e.value.ocsp_signing,
            )
        })
    };
    assert_eq!(eku_of(Eku::Client), Some((true, false, false)));
    assert_eq!(eku_of(Eku::Server), Some((false, true, false)));
    assert_eq!(eku_of(Eku::ClientAndServer), Some((true, true, false)));
    assert_eq!(eku_of(Eku::OcspSigning), Some((false, false, true)));
    assert_eq!(eku_of(Eku::None), None);
    assert_eq!(LeafSpec::client("d").eku, Eku::Client);
}

#[test]
fn no_cn_leaf_has_empty_subject() {
    let root = Ca::root("Smoke Root");
    let leaf = root.leaf(LeafSpec::client("x").no_cn().uri("spiffe://td/x"));
    let cert = parse(&leaf.cert_der);
    assert_eq!(cert.subject().iter().count(), 0);
    assert!(cert.subject_alternative_name().unwrap().unwrap().critical);
}

#[test]
fn intermediate_is_a_ca_signed_by_the_root_and_chains_in_webpki() {
    let root = Ca::root("Smoke Root");
    let inter = root.intermediate("Smoke Issuing");
    let leaf = inter.leaf(LeafSpec::client("carol"));

    let root_cert = parse(&root.cert_der);
    let inter_cert = parse(&inter.cert_der);
    assert!(root_cert.is_ca());
    root_cert.verify_signature(None).expect("root self-signed");
    assert!(inter_cert.is_ca());
    assert_eq!(inter_cert.issuer(), root_cert.subject());
    assert_eq!(
        strings(inter_cert.subject().iter_common_name()),
        ["Smoke Issuing"]
    );
    inter_cert
        .verify_signature(Some(root_cert.public_key()))
        .expect("intermediate signed by root");
    assert!(
        inter_cert
            .verify_signature(Some(inter_cert.public_key()))
            .is_err()
    );
    let ku = inter_cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    parse(&leaf.cert_der)
        .verify_signature(Some(inter_cert.public_key()))
        .expect("leaf signed by intermediate");

    webpki_verify(&root, &[&inter.cert_der], &leaf.cert_der, None).expect("webpki chain");
}

#[test]
fn cross_signed_cert_keeps_subject_and_key_but_changes_issuer() {
    let old_root = Ca::root("Old Root");
    let new_root = Ca::root("New Root");
    let inter = new_root.intermediate("Issuing");
    let cross = inter.cross_sign(&old_root);

    let inter_cert = parse(&inter.cert_der);
    let cross_cert = parse(&cross.cert_der);
    assert_eq!(cross_cert.subject(), inter_cert.subject());
    assert_eq!(cross_cert.public_key().raw, inter_cert.public_key().raw);
    assert_ne!(cross_cert.issuer(), inter_cert.issuer());
    assert_eq!(cross_cert.issuer(), parse(&old_root.cert_der).subject());
    assert_ne!(cross_cert.raw_serial(), inter_cert.raw_serial());
    assert!(cross_cert.is_ca());
    cross_cert
        .verify_signature(Some(parse(&old_root.cert_der).public_key()))
        .expect("cross cert signed by old root");

    // A leaf from either `Ca` chains through both intermediates.
    let leaf = cross.leaf(LeafSpec::client("dave"));
    webpki_verify(&old_root, &[&cross.cert_der], &leaf.cert_der, None).expect("via old root");
    webpki_verify(&new_root, &[&inter.cert_der], &leaf.cert_der, None).expect("via new root");
}

#[test]
fn crl_lists_serials_and_verifies_only_against_its_issuer() {
    let root = Ca::root("Smoke Root");
    let inter = root.intermediate("Smoke Issuing");
    let revoked = inter.leaf(LeafSpec::client("revoked"));
    let high_bit = inter.leaf(LeafSpec::client("high").serial(vec![0x80, 0x01]));
    let good = inter.leaf(LeafSpec::client("good"));
    assert_eq!(high_bit.serial, [0x00, 0x80, 0x01]);

    let crl = inter.crl(&[&revoked.serial, &high_bit.serial], Duration::hours(1));
    let (_, parsed) = CertificateRevocationList::from_der(&crl.der).expect("parse CRL");
    let listed: Vec<&[u8]> = parsed
        .iter_revoked_certificates()
        .map(|r| r.raw_serial())
        .collect();
    assert_eq!(
        listed,
        [revoked.serial.as_slice(), high_bit.serial.as_slice()]
    );
    let inter_cert = parse(&inter.cert_der);
    assert_eq!(parsed.issuer(), inter_cert.subject());
    parsed
        .verify_signature(inter_cert.public_key())
        .expect("CRL signed by its issuer");
    assert!(
        parsed
            .verify_signature(parse(&root.cert_der).public_key())
            .is_err()
    );
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let this_update = parsed.last_update().timestamp();
    let next_update = parsed.next_update().unwrap().timestamp();
    assert!((now - 65..=now - 55).contains(&this_update));
    assert!((now + 3595..=now + 3605).contains(&next_update));
    assert_eq!(parse_pem(&crl.pem), crl.der);

    let wrong = inter.crl_signed_by_wrong_key(&[&revoked.serial]);
    let (_, parsed_wrong) = CertificateRevocationList::from_der(&wrong.der).expect("parse");
    assert_eq!(parsed_wrong.issuer(), inter_cert.subject());
    assert!(
        parsed_wrong
            .verify_signature(inter_cert.public_key())
            .is_err()
    );

    // webpki agrees.
    assert!(webpki_verify(&root, &[&inter.cert_der], &revoked.cert_der, Some(&crl.der)).is_err());
    assert!(
        webpki_verify(
            &root,
            &[&inter.cert_der],
            &high_bit.cert_der,
            Some(&crl.der)
        )
        .is_err()
    );
    webpki_verify(&root, &[&inter.cert_der], &good.cert_der, Some(&crl.der)).expect("not revoked");
    assert!(webpki_verify(&root, &[&inter.cert_der], &good.cert_der, Some(&wrong.der)).is_err());

    // An already-expired CRL can be made.
    let now = OffsetDateTime::now_utc();
    let stale = inter.crl_at(&[], now - Duration::days(2), now - Duration::days(1));
    let (_, stale) = CertificateRevocationList::from_der(&stale.der).unwrap();
    assert!(stale.next_update().unwrap().timestamp() < now.unix_timestamp());
    assert_eq!(stale.iter_revoked_certificates().count(), 0);
}

#[test]
fn validity_windows_are_as_set() {
    let root = Ca::root("Smoke Root");
    let now = OffsetDateTime::now_utc();
    let window = |leaf: &Leaf| {
        let cert = parse(&leaf.cert_der);
        let v = cert.validity();
        (v.not_before.timestamp(), v.not_after.timestamp())
    };
    let t = now.unix_timestamp();

    let (nb, na) = window(&root.leaf(LeafSpec::client("default")));
    assert!((t - 3605..=t - 3595).contains(&nb));
    assert!((t + 30 * 86400 - 5..=t + 30 * 86400 + 5).contains(&na));

    let expired = root.leaf(LeafSpec::client("expired").expired());
    let (_, na) = window(&expired);
    assert!(na < t);
    let future = root.leaf(LeafSpec::client("future").not_yet_valid());
    let (nb, _) = window(&future);
    assert!(nb > t);

    let nb = now - Duration::days(400);
    let na = now - Duration::days(300);
    let explicit = root.leaf(LeafSpec::client("explicit").validity(nb, na));
    assert_eq!(
        window(&explicit),
        (nb.unix_timestamp(), na.unix_timestamp())
    );
    assert!(webpki_verify(&root, &[], &expired.cert_der, None).is_err());
    assert!(webpki_verify(&root, &[], &future.cert_der, None).is_err());

    let root_cert = parse(&root.cert_der);
    let v = root_cert.validity();
    assert!(v.not_before.timestamp() <= t - 86395);
    assert!(v.not_after.timestamp() >= t + 9 * 365 * 86400);

    let expired_inter = root.intermediate_with("Expired Issuing", |p| {
        p.not_before = now - Duration::days(10);
        p.not_after = now - Duration::days(1);
    });
    assert!(
        parse(&expired_inter.cert_der)
            .validity()
            .not_after
            .timestamp()
            < t
    );
}

#[test]
fn sha1_leaf_is_signed_with_sha1() {
    let dir = Dir::new();
    let (ca_pem, leaf_pem) = sha1_signed_leaf(&dir.path);
    let ca_der = parse_pem(&ca_pem);
    let leaf_der = parse_pem(&leaf_pem);
    let leaf = parse(&leaf_der);
    assert_eq!(leaf.signature_algorithm.algorithm, OID_PKCS1_SHA1WITHRSA);
    assert_eq!(strings(leaf.subject().iter_common_name()), ["sha1-client"]);
    assert_eq!(leaf.issuer(), parse(&ca_der).subject());
    assert!(
        leaf.extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .client_auth
    );
    assert!(dir.join("leaf.key").exists());

    // And under one of our own (P-256) CAs: ecdsa-with-SHA1.
    let root = Ca::root("Smoke Root");
    let sub = Dir::new();
    let leaf_pem = sha1_signed_leaf_by(&root, &sub.path);
    let leaf_der = parse_pem(&leaf_pem);
    let leaf = parse(&leaf_der);
    let ecdsa_with_sha1 = oid(&[1, 2, 840, 10045, 4, 1]);
    assert_eq!(leaf.signature_algorithm.algorithm, ecdsa_with_sha1);
    assert_eq!(leaf.issuer(), parse(&root.cert_der).subject());
    let err = webpki_verify(&root, &[], &leaf_der, None).unwrap_err();
    assert!(
        matches!(err, webpki::Error::UnsupportedSignatureAlgorithmContext(_)),
        "{err:?}"
    );
}

#[test]
fn rsa_root_issues_verifiable_leaves() {
    let root = Ca::root_rsa("RSA Root");
    let root_cert = parse(&root.cert_der);
    assert_eq!(
        root_cert.public_key().algorithm.algorithm,
        x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION
    );
    let leaf = root.leaf(LeafSpec::client("rsa-leaf").rsa());
    let cert = parse(&leaf.cert_der);
    assert_eq!(
        cert.signature_algorithm.algorithm,
        x509_parser::oid_registry::OID_PKCS1_SHA256WITHRSA
    );
    assert!(cert.key_usage().unwrap().unwrap().value.key_encipherment());
    webpki_verify(&root, &[], &leaf.cert_der, None).expect("RSA chain");
}

#[test]
fn forged_twin_has_same_serial_and_key_but_other_der() {
    let root = Ca::root("Smoke Root");
    let original = root.leaf(LeafSpec::client("svc").uri("spiffe://td/svc"));
    let twin = root.leaf(
        LeafSpec::client("svc")
            .uri("spiffe://td/admin")
            .serial(original.serial.clone())
            .key(original.key.clone()),
    );
    assert_eq!(twin.serial, original.serial);
    assert_eq!(twin.key_pem, original.key_pem);
    assert_ne!(twin.cert_der, original.cert_der);
    assert_eq!(
        parse(&twin.cert_der).public_key().raw,
        parse(&original.cert_der).public_key().raw
    );
    // Random serials differ otherwise, even with a shared key.
    let other = root.leaf(LeafSpec::client("svc").key(original.key.clone()));
    assert_ne!(other.serial, original.serial);
}

#[test]
fn encodings_bundle_and_dir() {
    let root = Ca::root("Smoke Root");
    let leaf = root.leaf(LeafSpec::client("enc"));
    let encoded = leaf.url_encoded_pem();
    assert!(encoded.starts_with("-----BEGIN%20CERTIFICATE-----%0A"));
    assert!(encoded.ends_with("-----END%20CERTIFICATE-----%0A"));
    for c in ['\n', ' ', '+', '/', '='] {
        assert!(!encoded.contains(c), "{c:?} left in {encoded}");
    }
    let decoded = percent_encoding::percent_decode_str(&encoded)
        .decode_utf8()
        .unwrap();
    assert_eq!(decoded, leaf.cert_pem);
    assert_eq!(url_encode("a+b/c=d e\n"), "a%2Bb%2Fc%3Dd%20e%0A");

    let digest = ring::digest::digest(&ring::digest::SHA256, &leaf.cert_der);
    assert_eq!(leaf.fingerprint_hex(), hex::encode(digest));
    assert_eq!(leaf.fingerprint_hex().len(), 64);
    assert_eq!(parse_pem(&leaf.cert_pem), leaf.cert_der);
    assert!(leaf.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(root.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));

    let chain = bundle(&[&leaf.cert_pem, root.cert_pem.trim_end()]);
    let pems = pem::parse_many(&chain).unwrap();
    assert_eq!(pems.len(), 2);
    assert_eq!(pems[1].contents(), root.cert_der);
    assert!(chain.ends_with('\n'));

    let dir = Dir::new();
    let path = dir.write("roles/nested/anchors.pem", &chain);
    assert_eq!(path, dir.path.join("roles/nested/anchors.pem"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), chain);
    let kept = dir.path.clone();
    drop(dir);
    assert!(!kept.exists());
}

/// Path building as certgate does it: webpki, clientAuth, optional CRL (depth Chain,
/// unknown status denied).
fn webpki_verify(
    root: &Ca,
    intermediates: &[&[u8]],
    leaf: &[u8],
    crl: Option<&[u8]>,
) -> Result<(), webpki::Error> {
    let root_der = CertificateDer::from(root.cert_der.clone());
    let anchors = [webpki::anchor_from_trusted_cert(&root_der)?.to_owned()];
    let inters: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|d| CertificateDer::from(d.to_vec()))
        .collect();
    let leaf_der = CertificateDer::from(leaf.to_vec());
    let ee = webpki::EndEntityCert::try_from(&leaf_der)?;
    let crls: Vec<webpki::CertRevocationList<'_>> = crl
        .into_iter()
        .map(|d| webpki::BorrowedCertRevocationList::from_der(d).map(Into::into))
        .collect::<Result<_, _>>()?;
    let crl_refs: Vec<&webpki::CertRevocationList<'_>> = crls.iter().collect();
    let revocation = (!crl_refs.is_empty()).then(|| {
        webpki::RevocationOptionsBuilder::new(&crl_refs)
            .unwrap()
            .with_depth(webpki::RevocationCheckDepth::EndEntity)
            .build()
    });
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &inters,
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        revocation,
        None,
    )
    .map(|_| ())
}
