//! OCSP messages against a real `openssl ocsp` responder, offline: our request
//! (`request_der`) goes to `openssl ocsp -index ... -reqin req.der -respout resp.der`,
//! and `check_response` judges what comes back. Fixtures are generated at test time.
//!
//! Where openssl cannot produce a case (two answers for one CertID, a bare nonce, an
//! unknown critical extension, an impostor key under the issuer's name), the response
//! is built with x509-ocsp and signed with the test CA's key.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use certgate::pki::cert::ParsedCert;
use certgate::revocation::ocsp::{
    CertIdHash, CertStatus, MAX_CLOCK_SKEW_SECS, OcspAnswer, OcspError, OcspTarget, check_response,
    get_url, new_nonce, request_der,
};
use common::ocsp_responder::{index_serial, utc_time};
use common::pki::*;
use der::{Decode, Encode};
use rcgen::SigningKey;
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

// === helpers ===

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn parsed(der: &[u8]) -> ParsedCert {
    ParsedCert::from_der(CertificateDer::from(der.to_vec())).expect("parse certificate")
}

fn anchor(der: &[u8]) -> Arc<ParsedCert> {
    Arc::new(parsed(der))
}

fn target(leaf: &Leaf, issuer: &Ca, hash: CertIdHash) -> OcspTarget {
    OcspTarget::new(&parsed(&leaf.cert_der), &issuer.cert_der, hash).expect("OCSP target")
}

/// One line of openssl's `index.txt`.
enum Entry<'a> {
    Valid(&'a Leaf),
    /// Revocation time and optional reason (`keyCompromise`, ...).
    Revoked(&'a Leaf, OffsetDateTime, Option<&'a str>),
}

fn index_txt(entries: &[Entry<'_>]) -> String {
    let mut out = String::new();
    for e in entries {
        let (flag, leaf, revoked) = match e {
            Entry::Valid(leaf) => ("V", leaf, String::new()),
            Entry::Revoked(leaf, at, reason) => (
                "R",
                leaf,
                match reason {
                    Some(r) => format!("{},{r}", utc_time(*at)),
                    None => utc_time(*at),
                },
            ),
        };
        let serial = index_serial(&leaf.serial);
        out.push_str(&format!(
            "{flag}\t491231235959Z\t{revoked}\t{serial}\tunknown\t/CN=x\n"
        ));
    }
    out
}

/// An `openssl ocsp` responder run once per request, in a fresh directory.
struct Openssl<'a> {
    dir: &'a Dir,
    /// CA certificates the responder answers for (`-CA`), PEM.
    ca_pem: String,
    /// Responder certificate and key (`-rsigner`, `-rkey`).
    signer_pem: String,
    signer_key: String,
    index: String,
}

static RUN: AtomicU32 = AtomicU32::new(0);

impl Openssl<'_> {
    /// `extra` replaces the default `-ndays 1` when it sets -ndays/-nmin itself.
    fn respond(&self, request: &[u8], extra: &[&str]) -> Vec<u8> {
        let run = RUN.fetch_add(1, Ordering::SeqCst);
        let sub = format!("run{run}");
        let path = |name: &str| -> PathBuf { self.dir.join(&format!("{sub}/{name}")) };
        self.dir.write(&format!("{sub}/ca.pem"), &self.ca_pem);
        self.dir
            .write(&format!("{sub}/rsigner.pem"), &self.signer_pem);
        self.dir.write(&format!("{sub}/rkey.pem"), &self.signer_key);
        self.dir.write(&format!("{sub}/index.txt"), &self.index);
        self.dir
            .write(&format!("{sub}/index.txt.attr"), "unique_subject = no\n");
        self.dir.write(&format!("{sub}/req.der"), request);
        let mut cmd = Command::new("openssl");
        cmd.arg("ocsp")
            .arg("-index")
            .arg(path("index.txt"))
            .arg("-rsigner")
            .arg(path("rsigner.pem"))
            .arg("-rkey")
            .arg(path("rkey.pem"))
            .arg("-CA")
            .arg(path("ca.pem"))
            .arg("-reqin")
            .arg(path("req.der"))
            .arg("-respout")
            .arg(path("resp.der"));
        if !extra
            .iter()
            .any(|a| *a == "-ndays" || *a == "-nmin" || *a == "-no-next")
        {
            cmd.args(["-ndays", "1"]);
        }
        cmd.args(extra.iter().filter(|a| **a != "-no-next"));
        let out = cmd.output().expect("run openssl ocsp");
        let resp = std::fs::read(path("resp.der")).unwrap_or_default();
        assert!(
            !resp.is_empty(),
            "openssl ocsp wrote no response: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        resp
    }
}

/// Root → issuing CA → leaf `alice` (and `bob`), the usual shape.
struct World {
    dir: Dir,
    root: Ca,
    issuer: Ca,
    alice: Leaf,
    bob: Leaf,
}

fn world() -> World {
    let root = Ca::root("OCSP Test Root");
    let issuer = root.intermediate("OCSP Test Issuing CA");
    let alice = issuer.leaf(LeafSpec::client("alice").ocsp("http://127.0.0.1:1/"));
    let bob = issuer.leaf(LeafSpec::client("bob").ocsp("http://127.0.0.1:1/"));
    World {
        dir: Dir::new(),
        root,
        issuer,
        alice,
        bob,
    }
}

impl World {
    /// A responder signing as the issuer itself.
    fn issuer_responder(&self, index: &[Entry<'_>]) -> Openssl<'_> {
        self.responder(&self.issuer.cert_pem, &self.issuer.key_pem, index)
    }

    fn responder(&self, signer_pem: &str, signer_key: &str, index: &[Entry<'_>]) -> Openssl<'_> {
        Openssl {
            dir: &self.dir,
            ca_pem: self.issuer.cert_pem.clone(),
            signer_pem: signer_pem.to_string(),
            signer_key: signer_key.to_string(),
            index: index_txt(index),
        }
    }

    fn alice_target(&self) -> OcspTarget {
        target(&self.alice, &self.issuer, CertIdHash::Sha1)
    }

    /// alice: good, bob: revoked an hour ago (keyCompromise).
    fn index(&self) -> Vec<Entry<'_>> {
        vec![
            Entry::Valid(&self.alice),
            Entry::Revoked(
                &self.bob,
                OffsetDateTime::now_utc() - Duration::hours(1),
                Some("keyCompromise"),
            ),
        ]
    }
}

fn check(resp: &[u8], t: &OcspTarget) -> Result<OcspAnswer, OcspError> {
    check_response(resp, t, &[], None, now())
}

fn assert_unauthorized(result: Result<OcspAnswer, OcspError>, needle: &str) {
    match result {
        Err(OcspError::UnauthorizedSigner(msg)) => {
            assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}")
        }
        other => panic!("expected UnauthorizedSigner, got {other:?}"),
    }
}

fn decode_basic(resp: &[u8]) -> x509_ocsp::BasicOcspResponse {
    let outer = x509_ocsp::OcspResponse::from_der(resp).expect("OCSPResponse");
    let bytes = outer.response_bytes.expect("responseBytes");
    x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("basic")
}

// === status ===

#[test]
fn good_signed_by_the_issuer_by_name() {
    let w = world();
    let t = w.alice_target();
    let before = now();
    let resp = w
        .issuer_responder(&w.index())
        .respond(&request_der(&t, None), &[]);
    let answer = check(&resp, &t).expect("good answer");
    assert_eq!(answer.status, CertStatus::Good);
    assert_eq!(answer.signer, "issuer");
    assert!((answer.this_update - before).abs() <= 5, "{answer:?}");
    assert!((answer.produced_at - before).abs() <= 5, "{answer:?}");
    let next = answer.next_update.expect("-ndays 1 sets nextUpdate");
    assert!(
        (next - answer.this_update - 86_400).abs() <= 5,
        "{answer:?}"
    );
    // openssl names the signer by Name unless told -resp_key_id.
    assert!(matches!(
        decode_basic(&resp).tbs_response_data.responder_id,
        x509_ocsp::ResponderId::ByName(_)
    ));
}

#[test]
fn good_signed_by_the_issuer_by_key_hash() {
    let w = world();
    let t = w.alice_target();
    let resp = w
        .issuer_responder(&w.index())
        .respond(&request_der(&t, None), &["-resp_key_id"]);
    assert!(matches!(
        decode_basic(&resp).tbs_response_data.responder_id,
        x509_ocsp::ResponderId::ByKey(_)
    ));
    let answer = check(&resp, &t).expect("good answer");
    assert_eq!(answer.status, CertStatus::Good);
    assert_eq!(answer.signer, "issuer");
}

#[test]
fn revoked_with_time_and_reason() {
    let w = world();
    let at = OffsetDateTime::now_utc().replace_nanosecond(0).expect("ns") - Duration::hours(3);
    let t = target(&w.bob, &w.issuer, CertIdHash::Sha1);
    let index = [Entry::Revoked(&w.bob, at, Some("keyCompromise"))];
    let resp = w
        .issuer_responder(&index)
        .respond(&request_der(&t, None), &[]);
    assert_eq!(
        check(&resp, &t).expect("answer").status,
        CertStatus::Revoked {
            revoked_at: at.unix_timestamp(),
            reason: Some("keyCompromise".into()),
        }
    );

    // Without a reason in the index, none in the answer.
    let index = [Entry::Revoked(&w.bob, at, None)];
    let resp = w
        .issuer_responder(&index)
        .respond(&request_der(&t, None), &[]);
    assert_eq!(
        check(&resp, &t).expect("answer").status,
        CertStatus::Revoked {
            revoked_at: at.unix_timestamp(),
            reason: None,
        }
    );
}

#[test]
fn unknown_when_the_serial_is_not_in_the_index() {
    let w = world();
    let t = w.alice_target();
    let resp = w
        .issuer_responder(&[Entry::Valid(&w.bob)])
        .respond(&request_der(&t, None), &[]);
    assert_eq!(
        check(&resp, &t).expect("answer").status,
        CertStatus::Unknown
    );
}

#[test]
fn rsa_issuer() {
    let root = Ca::root_rsa("RSA OCSP Root");
    let leaf = root.leaf(LeafSpec::client("rsa-client"));
    let dir = Dir::new();
    let responder = Openssl {
        dir: &dir,
        ca_pem: root.cert_pem.clone(),
        signer_pem: root.cert_pem.clone(),
        signer_key: root.key_pem.clone(),
        index: index_txt(&[Entry::Valid(&leaf)]),
    };
    let t = target(&leaf, &root, CertIdHash::Sha1);
    let resp = responder.respond(&request_der(&t, None), &[]);
    assert_eq!(
        decode_basic(&resp).signature_algorithm.oid.to_string(),
        "1.2.840.113549.1.1.11" // sha256WithRSAEncryption
    );
    let answer = check(&resp, &t).expect("good answer");
    assert_eq!(answer.status, CertStatus::Good);
    assert_eq!(answer.signer, "issuer");
}

// === delegated responders ===

#[test]
fn delegated_responder_with_ocsp_signing_is_accepted() {
    let w = world();
    let responder = w
        .issuer
        .leaf(LeafSpec::client("OCSP Responder").eku(Eku::OcspSigning));
    let t = w.alice_target();
    for extra in [&[][..], &["-resp_key_id"][..]] {
        let resp = w
            .responder(&responder.cert_pem, &responder.key_pem, &w.index())
            .respond(&request_der(&t, None), extra);
        let answer = check(&resp, &t).expect("delegated answer");
        assert_eq!(answer.status, CertStatus::Good);
        assert_eq!(answer.signer, "CN=OCSP Responder");
    }
}

#[test]
fn delegated_responder_without_ocsp_signing_is_refused() {
    let w = world();
    for eku in [Eku::Client, Eku::None, Eku::ClientAndServer] {
        let responder = w.issuer.leaf(LeafSpec::client("Not A Responder").eku(eku));
        let t = w.alice_target();
        let resp = w
            .responder(&responder.cert_pem, &responder.key_pem, &w.index())
            .respond(&request_der(&t, None), &[]);
        assert_unauthorized(check(&resp, &t), "lacks the OCSPSigning extended key usage");
    }
}

#[test]
fn expired_delegated_responder_is_refused() {
    let w = world();
    let responder = w.issuer.leaf(
        LeafSpec::client("Old Responder")
            .eku(Eku::OcspSigning)
            .expired(),
    );
    let t = w.alice_target();
    let resp = w
        .responder(&responder.cert_pem, &responder.key_pem, &w.index())
        .respond(&request_der(&t, None), &[]);
    assert_unauthorized(check(&resp, &t), "expired at");
}

#[test]
fn delegated_responder_missing_from_certs_is_refused() {
    let w = world();
    let responder = w
        .issuer
        .leaf(LeafSpec::client("OCSP Responder").eku(Eku::OcspSigning));
    let t = w.alice_target();
    let resp = w
        .responder(&responder.cert_pem, &responder.key_pem, &w.index())
        .respond(&request_der(&t, None), &["-resp_no_certs"]);
    assert_unauthorized(check(&resp, &t), "carries no certificate for it");
}

#[test]
fn responder_under_the_issuers_name_but_another_key_is_refused() {
    // An impostor CA with the issuer's exact subject (same root, same CN) signs a
    // responder with the OCSPSigning EKU: its issuer name matches, its signature not.
    let w = world();
    let impostor = w.root.intermediate("OCSP Test Issuing CA");
    let responder = impostor.leaf(LeafSpec::client("OCSP Responder").eku(Eku::OcspSigning));
    let t = w.alice_target();
    let resp = w
        .responder(&responder.cert_pem, &responder.key_pem, &w.index())
        .respond(&request_der(&t, None), &[]);
    assert_unauthorized(check(&resp, &t), "signature does not verify");
}

#[test]
fn responder_from_another_ca_needs_that_ca_as_anchor() {
    let w = world();
    let other = Ca::root("Dedicated OCSP CA");
    let responder = other.leaf(LeafSpec::client("Dedicated Responder").eku(Eku::OcspSigning));
    let t = w.alice_target();
    let resp = w
        .responder(&responder.cert_pem, &responder.key_pem, &w.index())
        .respond(&request_der(&t, None), &[]);

    assert_unauthorized(check(&resp, &t), "no OCSP CA certificates are configured");
    // An unrelated anchor does not help.
    let unrelated = anchor(&Ca::root("Unrelated").cert_der);
    assert_unauthorized(
        check_response(&resp, &t, std::slice::from_ref(&unrelated), None, now()),
        "neither one of the OCSP CA certificates nor issued by one",
    );
    // The issuing CA of the responder, configured as ocsp_ca_certificates: accepted.
    let answer = check_response(
        &resp,
        &t,
        &[unrelated, anchor(&other.cert_der)],
        None,
        now(),
    )
    .expect("anchored responder");
    assert_eq!(answer.status, CertStatus::Good);
    assert_eq!(answer.signer, "CN=Dedicated Responder");

    // Signed by the anchor, but without the OCSPSigning EKU: refused.
    let plain = other.leaf(LeafSpec::client("Plain").eku(Eku::Client));
    let resp = w
        .responder(&plain.cert_pem, &plain.key_pem, &w.index())
        .respond(&request_der(&t, None), &[]);
    assert_unauthorized(
        check_response(&resp, &t, &[anchor(&other.cert_der)], None, now()),
        "lacks the OCSPSigning extended key usage",
    );
}

#[test]
fn anchor_itself_may_sign() {
    let w = world();
    let other = Ca::root("Dedicated OCSP CA");
    // No OCSPSigning EKU needed: the operator pinned this very certificate.
    let pinned = other.leaf(LeafSpec::client("Pinned Responder").eku(Eku::None));
    let t = w.alice_target();
    for extra in [
        &[][..],
        &["-resp_no_certs"][..],
        &["-resp_no_certs", "-resp_key_id"][..],
    ] {
        let resp = w
            .responder(&pinned.cert_pem, &pinned.key_pem, &w.index())
            .respond(&request_der(&t, None), extra);
        let answer = check_response(&resp, &t, &[anchor(&pinned.cert_der)], None, now())
            .expect("pinned responder");
        assert_eq!(answer.signer, "CN=Pinned Responder");
        assert!(matches!(
            check(&resp, &t),
            Err(OcspError::UnauthorizedSigner(_))
        ));
    }
    // With no certificate in the response, the anchor's CA does not vouch for a
    // responder it has never seen.
    let delegated = other.leaf(LeafSpec::client("Delegated").eku(Eku::OcspSigning));
    let resp = w
        .responder(&delegated.cert_pem, &delegated.key_pem, &w.index())
        .respond(&request_der(&t, None), &["-resp_no_certs"]);
    assert_unauthorized(
        check_response(&resp, &t, &[anchor(&other.cert_der)], None, now()),
        "carries no certificate for it",
    );
}

// === CertID ===

#[test]
fn answer_for_another_leaf_is_a_cert_id_mismatch() {
    let w = world();
    let resp = w.issuer_responder(&w.index()).respond(
        &request_der(&target(&w.bob, &w.issuer, CertIdHash::Sha1), None),
        &[],
    );
    assert_eq!(
        check(&resp, &w.alice_target()),
        Err(OcspError::CertIdMismatch)
    );
}

#[test]
fn same_serial_from_another_issuer_is_a_cert_id_mismatch() {
    // The bug Vault once shipped: matching on the serial alone. A twin leaf with
    // alice's serial, issued by a CA with the same name but another key; the issuer's
    // responder answers "good" for it (openssl looks serials up in its index only).
    let w = world();
    let rekeyed = w.root.intermediate("OCSP Test Issuing CA");
    let serial = w.alice.serial.clone();
    let twin = rekeyed.leaf(LeafSpec::client("alice").serial(serial));
    assert_eq!(twin.serial, w.alice.serial);
    let twin_target = target(&twin, &rekeyed, CertIdHash::Sha1);
    let resp = w
        .issuer_responder(&w.index())
        .respond(&request_der(&twin_target, None), &[]);
    let basic = decode_basic(&resp);
    assert!(
        matches!(
            basic.tbs_response_data.responses[0].cert_status,
            x509_ocsp::CertStatus::Unknown(_)
        ),
        "openssl answers unknown for an issuer it does not serve"
    );
    assert_eq!(
        check(&resp, &w.alice_target()),
        Err(OcspError::CertIdMismatch)
    );
}

/// The offset of `needle` in `hay` (first occurrence).
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

#[test]
fn each_cert_id_field_is_compared() {
    // Alter one field of our own request; openssl copies the CertID into its answer and
    // signs it; the answer must not count for alice.
    let w = world();
    let t = w.alice_target();
    let t256 = target(&w.alice, &w.issuer, CertIdHash::Sha256);
    let responder = w.issuer_responder(&w.index());
    let request = request_der(&t, None);
    let id = &t.cert_id_der;
    // CertID: 30 len { 30 09 { 06 05 <sha1> 05 00 } 04 14 <name> 04 14 <key> 02 len <serial> }
    let id_at = find(&request, id);
    let name_at = id_at + 2 + 11 + 2;
    let key_at = name_at + 20 + 2;
    let serial_last = id_at + id.len() - 1;
    for (what, at) in [
        ("issuerNameHash", name_at),
        ("issuerKeyHash", key_at),
        ("serial", serial_last),
    ] {
        let mut altered = request.clone();
        altered[at] ^= 0x01;
        let resp = responder.respond(&altered, &[]);
        assert_eq!(check(&resp, &t), Err(OcspError::CertIdMismatch), "{what}");
    }
    // Another hash algorithm (SHA-384 OID with SHA-256-sized hashes): not a match.
    let request = request_der(&t256, None);
    let oid_sha256 = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    let mut altered = request.clone();
    altered[find(&request, &oid_sha256) + 8] = 0x02;
    let resp = responder.respond(&altered, &[]);
    assert_eq!(check(&resp, &t256), Err(OcspError::CertIdMismatch));
    // The unaltered request, for contrast.
    let resp = responder.respond(&request, &[]);
    assert_eq!(
        check(&resp, &t256).expect("answer").status,
        CertStatus::Good
    );
}

#[test]
fn sha256_cert_id() {
    let w = world();
    let t = target(&w.alice, &w.issuer, CertIdHash::Sha256);
    let resp = w
        .issuer_responder(&w.index())
        .respond(&request_der(&t, None), &[]);
    let basic = decode_basic(&resp);
    let id = &basic.tbs_response_data.responses[0].cert_id;
    assert_eq!(id.hash_algorithm.oid.to_string(), "2.16.840.1.101.3.4.2.1");
    assert_eq!(id.to_der().expect("encode"), t.cert_id_der);
    assert_eq!(check(&resp, &t).expect("answer").status, CertStatus::Good);
    // The response's algorithm decides: a SHA-1 target of the same leaf matches too.
    let t1 = w.alice_target();
    assert_eq!(check(&resp, &t1).expect("answer").status, CertStatus::Good);
}

#[test]
fn openssl_rcid_answers_serial_zero() {
    // `-rcid sha1` makes OpenSSL 3.0 answer with a CertID it builds from the CA alone:
    // serial 0. That is not an answer about alice.
    let w = world();
    let t = target(&w.alice, &w.issuer, CertIdHash::Sha256);
    let resp = w
        .issuer_responder(&w.index())
        .respond(&request_der(&t, None), &["-rcid", "sha1"]);
    let basic = decode_basic(&resp);
    let id = &basic.tbs_response_data.responses[0].cert_id;
    assert_eq!(id.hash_algorithm.oid.to_string(), "1.3.14.3.2.26");
    assert_eq!(id.serial_number.as_bytes(), &[0]);
    assert_eq!(check(&resp, &t), Err(OcspError::CertIdMismatch));
}

// === nonce ===

#[test]
fn nonce_is_echoed_and_checked() {
    let w = world();
    let t = w.alice_target();
    let responder = w.issuer_responder(&w.index());
    let n1 = new_nonce();
    let n2 = new_nonce();
    let resp = responder.respond(&request_der(&t, Some(&n1)), &[]);
    // openssl copies the request's extension verbatim: OCTET STRING in OCTET STRING.
    let basic = decode_basic(&resp);
    let ext = &basic
        .tbs_response_data
        .response_extensions
        .as_ref()
        .expect("exts")[0];
    assert_eq!(ext.extn_id.to_string(), "1.3.6.1.5.5.7.48.1.2");
    assert_eq!(ext.extn_value.as_bytes(), der_tlv(0x04, &n1));

    let answer = check_response(&resp, &t, &[], Some(&n1), now()).expect("echoed nonce");
    assert_eq!(answer.status, CertStatus::Good);
    // Not asking about the nonce is fine too.
    assert!(check(&resp, &t).is_ok());
    assert_eq!(
        check_response(&resp, &t, &[], Some(&n2), now()).unwrap_err(),
        OcspError::NonceMismatch
    );
    // A response made for another nonce, or for none.
    let other = responder.respond(&request_der(&t, Some(&n2)), &[]);
    assert_eq!(
        check_response(&other, &t, &[], Some(&n1), now()).unwrap_err(),
        OcspError::NonceMismatch
    );
    let none = responder.respond(&request_der(&t, None), &[]);
    assert!(
        decode_basic(&none)
            .tbs_response_data
            .response_extensions
            .is_none()
    );
    assert_eq!(
        check_response(&none, &t, &[], Some(&n1), now()).unwrap_err(),
        OcspError::NonceMismatch
    );
}

// === time ===

#[test]
fn expired_after_next_update() {
    let w = world();
    let t = w.alice_target();
    let responder = w.issuer_responder(&w.index());
    let resp = responder.respond(&request_der(&t, None), &["-ndays", "1"]);
    assert!(check_response(&resp, &t, &[], None, now() + 86_400 - 60).is_ok());
    assert_eq!(
        check_response(&resp, &t, &[], None, now() + 2 * 86_400).unwrap_err(),
        OcspError::Expired
    );
    let resp = responder.respond(&request_der(&t, None), &["-nmin", "1"]);
    assert_eq!(
        check_response(&resp, &t, &[], None, now() + 120).unwrap_err(),
        OcspError::Expired
    );
    // Without -ndays/-nmin there is no nextUpdate: never expired here (the caller
    // decides how long to believe it).
    let resp = responder.respond(&request_der(&t, None), &["-no-next"]);
    let answer = check_response(&resp, &t, &[], None, now() + 365 * 86_400).expect("answer");
    assert_eq!(answer.next_update, None);
}

#[test]
fn this_update_in_the_future() {
    let w = world();
    let t = w.alice_target();
    let resp = w
        .issuer_responder(&w.index())
        .respond(&request_der(&t, None), &[]);
    assert_eq!(
        check_response(&resp, &t, &[], None, now() - 3600).unwrap_err(),
        OcspError::ThisUpdateInFuture
    );
    // Within the allowed skew.
    assert!(check_response(&resp, &t, &[], None, now() - MAX_CLOCK_SKEW_SECS / 2).is_ok());
}

// === signatures and algorithms ===

#[test]
fn tampered_responses_are_bad_signatures() {
    let w = world();
    let t = w.alice_target();
    let responder = w.issuer_responder(&w.index());
    let resp = responder.respond(&request_der(&t, None), &["-resp_no_certs"]);
    assert!(check(&resp, &t).is_ok());

    // producedAt is the first GeneralizedTime: 18 0f "20YY...": change the year's last
    // digit (still a valid time, so only the signature can tell).
    let mut altered = resp.clone();
    let at = find(&resp, &[0x18, 0x0f, b'2', b'0']) + 5;
    altered[at] = if altered[at] == b'5' { b'4' } else { b'5' };
    assert!(matches!(
        check(&altered, &t),
        Err(OcspError::BadSignature(_))
    ));

    // The serial inside the signed CertID: the signature fails first, so this is not
    // reported as a CertID mismatch.
    let mut altered = resp.clone();
    let serial = &w.alice.serial;
    let at = find(&resp, serial) + serial.len() - 1;
    altered[at] ^= 0x01;
    assert!(matches!(
        check(&altered, &t),
        Err(OcspError::BadSignature(_))
    ));

    // The last byte of the signature (the end of the response without certs).
    let mut altered = resp.clone();
    let last = altered.len() - 1;
    altered[last] ^= 0x01;
    match check(&altered, &t) {
        Err(OcspError::BadSignature(msg)) => assert!(msg.contains("issuer"), "{msg}"),
        other => panic!("expected BadSignature, got {other:?}"),
    }

    // openssl's own corruption switch.
    let resp = responder.respond(&request_der(&t, None), &["-badsig"]);
    assert!(matches!(check(&resp, &t), Err(OcspError::BadSignature(_))));
}

#[test]
fn sha1_signature_is_refused() {
    let w = world();
    let t = w.alice_target();
    let resp = w
        .issuer_responder(&w.index())
        .respond(&request_der(&t, None), &["-rmd", "sha1"]);
    assert_eq!(
        decode_basic(&resp).signature_algorithm.oid.to_string(),
        "1.2.840.10045.4.1"
    );
    match check(&resp, &t) {
        Err(e @ OcspError::UnsupportedAlgorithm(_)) => {
            assert_eq!(e.code(), "unsupported_algorithm");
            assert!(e.to_string().contains("SHA-1"), "{e}");
        }
        other => panic!("expected UnsupportedAlgorithm, got {other:?}"),
    }
}

// === responseStatus ===

#[test]
fn unsuccessful_statuses() {
    let w = world();
    let t = w.alice_target();
    for (value, name) in [
        (1u8, "malformedRequest"),
        (2, "internalError"),
        (3, "tryLater"),
        (5, "sigRequired"),
        (6, "unauthorized"),
    ] {
        let err = check(&[0x30, 0x03, 0x0a, 0x01, value], &t).unwrap_err();
        assert_eq!(err, OcspError::Unsuccessful(name.into()));
        assert_eq!(err.code(), "unsuccessful");
        assert!(err.to_string().contains(name));
    }
    // openssl itself: a request listing no certificate is a malformedRequest.
    let resp = w
        .issuer_responder(&w.index())
        .respond(&[0x30, 0x04, 0x30, 0x02, 0x30, 0x00], &[]);
    assert_eq!(resp, [0x30, 0x03, 0x0a, 0x01, 0x01]);
    assert_eq!(
        check(&resp, &w.alice_target()),
        Err(OcspError::Unsuccessful("malformedRequest".into()))
    );
    // Status 4 is unassigned: not an OCSPResponse at all.
    assert!(matches!(
        check(&[0x30, 0x03, 0x0a, 0x01, 0x04], &w.alice_target()),
        Err(OcspError::Malformed(_))
    ));
    // "successful" without responseBytes.
    assert!(matches!(
        check(&[0x30, 0x03, 0x0a, 0x01, 0x00], &w.alice_target()),
        Err(OcspError::Malformed(_))
    ));
}

// === hostile input ===

#[test]
fn every_truncation_is_malformed() {
    let w = world();
    let t = w.alice_target();
    let responder = w
        .issuer
        .leaf(LeafSpec::client("OCSP Responder").eku(Eku::OcspSigning));
    let resp = w
        .responder(&responder.cert_pem, &responder.key_pem, &w.index())
        .respond(&request_der(&t, Some(&new_nonce())), &[]);
    for len in 0..resp.len() {
        match check(&resp[..len], &t) {
            Err(OcspError::Malformed(_)) => {}
            other => panic!("truncated to {len} of {}: {other:?}", resp.len()),
        }
    }
    // Trailing garbage is refused too.
    let mut longer = resp.clone();
    longer.push(0);
    assert!(matches!(check(&longer, &t), Err(OcspError::Malformed(_))));
}

#[test]
fn every_single_byte_change_is_refused() {
    let w = world();
    let t = w.alice_target();
    let delegated = w
        .issuer
        .leaf(LeafSpec::client("OCSP Responder").eku(Eku::OcspSigning));
    let by_issuer = w
        .issuer_responder(&w.index())
        .respond(&request_der(&t, None), &["-resp_no_certs"]);
    let by_delegate = w
        .responder(&delegated.cert_pem, &delegated.key_pem, &w.index())
        .respond(&request_der(&t, None), &[]);
    for resp in [by_issuer, by_delegate] {
        assert!(check(&resp, &t).is_ok());
        for at in 0..resp.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut altered = resp.clone();
                altered[at] ^= flip;
                if let Ok(answer) = check(&altered, &t) {
                    panic!("byte {at} ^ {flip:#04x} still accepted: {answer:?}");
                }
            }
        }
    }
}

#[test]
fn garbage_never_panics() {
    use ring::rand::{SecureRandom, SystemRandom};
    let w = world();
    let t = w.alice_target();
    let rng = SystemRandom::new();
    for len in 0..600 {
        let mut buf = vec![0u8; len % 300];
        rng.fill(&mut buf).expect("random");
        if len >= 300 && !buf.is_empty() {
            buf[0] = 0x30; // look like a SEQUENCE to get past the first byte
        }
        assert!(check(&buf, &t).is_err());
    }
    // Lengths that claim far more than is there, and a large buffer.
    for input in [
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x0a, 0x01, 0x00][..],
        &[0x30, 0x89, 1, 1, 1, 1, 1, 1, 1, 1, 1][..],
        &[0x30, 0x80, 0x0a, 0x01, 0x00, 0x00, 0x00][..], // BER indefinite length
    ] {
        assert!(matches!(check(input, &t), Err(OcspError::Malformed(_))));
    }
    let big = vec![0x30; 8 << 20];
    assert!(matches!(check(&big, &t), Err(OcspError::Malformed(_))));
}

// === hand-built responses (cases openssl does not produce) ===

/// Builds and signs a BasicOCSPResponse with `signer_key` (P-256, ecdsa-with-SHA256).
fn build_response(
    signer_key: &rcgen::KeyPair,
    responder_id: x509_ocsp::ResponderId,
    responses: Vec<x509_ocsp::SingleResponse>,
    extensions: Option<Vec<x509_cert::ext::Extension>>,
) -> Vec<u8> {
    let gt = |t: i64| {
        x509_ocsp::OcspGeneralizedTime(
            der::asn1::GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(
                t as u64,
            ))
            .expect("time"),
        )
    };
    let data = x509_ocsp::ResponseData {
        version: x509_ocsp::Version::V1,
        responder_id,
        produced_at: gt(now()),
        responses,
        response_extensions: extensions,
    };
    let tbs = data.to_der().expect("encode ResponseData");
    let signature = signer_key.sign(&tbs).expect("sign");
    let basic = x509_ocsp::BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
            oid: der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
            parameters: None,
        },
        signature: der::asn1::BitString::from_bytes(&signature).expect("bits"),
        certs: None,
    };
    x509_ocsp::OcspResponse::successful(basic)
        .expect("wrap")
        .to_der()
        .expect("encode OCSPResponse")
}

fn single(cert_id_der: &[u8], status: x509_ocsp::CertStatus) -> x509_ocsp::SingleResponse {
    let t = now();
    x509_ocsp::SingleResponse {
        cert_id: x509_ocsp::CertId::from_der(cert_id_der).expect("CertID"),
        cert_status: status,
        this_update: x509_ocsp::OcspGeneralizedTime(
            der::asn1::GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(
                t as u64,
            ))
            .expect("time"),
        ),
        next_update: None,
        single_extensions: None,
    }
}

fn key_hash(ca: &Ca) -> x509_ocsp::ResponderId {
    let (_, cert) = x509_parser::parse_x509_certificate(&ca.cert_der).expect("parse");
    let hash = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        &cert.public_key().subject_public_key.data,
    );
    x509_ocsp::ResponderId::ByKey(der::asn1::OctetString::new(hash.as_ref()).expect("octets"))
}

fn by_name(ca: &Ca) -> x509_ocsp::ResponderId {
    let (_, cert) = x509_parser::parse_x509_certificate(&ca.cert_der).expect("parse");
    x509_ocsp::ResponderId::ByName(
        x509_cert::name::Name::from_der(cert.subject().as_raw()).expect("name"),
    )
}

fn nonce_extension(value: &[u8], critical: bool) -> x509_cert::ext::Extension {
    x509_cert::ext::Extension {
        extn_id: der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2"),
        critical,
        extn_value: der::asn1::OctetString::new(value).expect("octets"),
    }
}

#[test]
fn hand_built_response_is_accepted() {
    // Sanity check of the builder itself.
    let w = world();
    let t = w.alice_target();
    let resp = build_response(
        &w.issuer.key,
        key_hash(&w.issuer),
        vec![single(&t.cert_id_der, x509_ocsp::CertStatus::good())],
        None,
    );
    let answer = check(&resp, &t).expect("answer");
    assert_eq!(answer.status, CertStatus::Good);
    assert_eq!(answer.next_update, None);
}

#[test]
fn bare_nonce_value_is_accepted() {
    // Some responders put the nonce bytes directly in extnValue (pre-RFC 8954).
    let w = world();
    let t = w.alice_target();
    let n = new_nonce();
    let resp = build_response(
        &w.issuer.key,
        key_hash(&w.issuer),
        vec![single(&t.cert_id_der, x509_ocsp::CertStatus::good())],
        Some(vec![nonce_extension(&n, false)]),
    );
    assert!(check_response(&resp, &t, &[], Some(&n), now()).is_ok());
    assert_eq!(
        check_response(&resp, &t, &[], Some(&new_nonce()), now()).unwrap_err(),
        OcspError::NonceMismatch
    );
    // A critical nonce is understood, hence fine.
    let resp = build_response(
        &w.issuer.key,
        key_hash(&w.issuer),
        vec![single(&t.cert_id_der, x509_ocsp::CertStatus::good())],
        Some(vec![nonce_extension(&der_tlv(0x04, &n), true)]),
    );
    assert!(check_response(&resp, &t, &[], Some(&n), now()).is_ok());
}

#[test]
fn unknown_critical_extension_is_refused() {
    let w = world();
    let t = w.alice_target();
    let ext = x509_cert::ext::Extension {
        extn_id: der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.55555.1"),
        critical: true,
        extn_value: der::asn1::OctetString::new(vec![0x05, 0x00]).expect("octets"),
    };
    let resp = build_response(
        &w.issuer.key,
        key_hash(&w.issuer),
        vec![single(&t.cert_id_der, x509_ocsp::CertStatus::good())],
        Some(vec![ext]),
    );
    match check(&resp, &t) {
        Err(OcspError::Malformed(msg)) => assert!(msg.contains("1.3.6.1.4.1.55555.1"), "{msg}"),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn revoked_wins_over_good_for_the_same_cert_id() {
    let w = world();
    let t = w.alice_target();
    let bob = target(&w.bob, &w.issuer, CertIdHash::Sha256);
    let revoked = x509_ocsp::CertStatus::revoked(x509_ocsp::RevokedInfo {
        revocation_time: single(&t.cert_id_der, x509_ocsp::CertStatus::good()).this_update,
        revocation_reason: Some(x509_cert::ext::pkix::CrlReason::Superseded),
    });
    let resp = build_response(
        &w.issuer.key,
        key_hash(&w.issuer),
        vec![
            single(&bob.cert_id_der, x509_ocsp::CertStatus::good()),
            single(&t.cert_id_der, x509_ocsp::CertStatus::good()),
            single(&t.cert_id_der, revoked),
        ],
        None,
    );
    let answer = check(&resp, &t).expect("answer");
    assert!(
        matches!(&answer.status, CertStatus::Revoked { reason: Some(r), .. } if r == "superseded"),
        "{answer:?}"
    );
}

#[test]
fn issuers_name_with_another_key_is_a_bad_signature() {
    // ResponderID byName names the issuer (authorized), but the key that signed is an
    // impostor's: the signature does not verify with the issuer's key.
    let w = world();
    let t = w.alice_target();
    let impostor = w.root.intermediate("OCSP Test Issuing CA");
    let resp = build_response(
        &impostor.key,
        by_name(&w.issuer),
        vec![single(&t.cert_id_der, x509_ocsp::CertStatus::good())],
        None,
    );
    match check(&resp, &t) {
        Err(e @ OcspError::BadSignature(_)) => assert_eq!(e.code(), "bad_signature"),
        other => panic!("expected BadSignature, got {other:?}"),
    }
    // byKey with the impostor's key hash: not the issuer at all.
    let resp = build_response(
        &impostor.key,
        key_hash(&impostor),
        vec![single(&t.cert_id_der, x509_ocsp::CertStatus::good())],
        None,
    );
    assert_unauthorized(check(&resp, &t), "responder with key hash");
}

// === request encoding against openssl's parser ===

#[test]
fn openssl_reads_our_request() {
    let w = world();
    let t = w.alice_target();
    let n = new_nonce();
    let req = request_der(&t, Some(&n));
    let path = w.dir.write("req.der", &req);
    let out = Command::new("openssl")
        .args(["ocsp", "-req_text", "-reqin"])
        .arg(&path)
        .output()
        .expect("openssl ocsp -req_text");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_uppercase();
    assert!(text.contains("HASH ALGORITHM: SHA1"), "{text}");
    assert!(
        text.contains(&w.alice.serial_hex().to_uppercase()),
        "{text}"
    );
    assert!(text.contains("OCSP NONCE"), "{text}");
    assert!(text.contains(&hex::encode_upper(n)), "{text}");
}

#[test]
fn get_url_for_a_real_request() {
    use base64::Engine;
    let w = world();
    let req = request_der(&w.alice_target(), Some(&new_nonce()));
    let url = get_url("http://127.0.0.1:1", &req);
    let encoded = url.strip_prefix("http://127.0.0.1:1/").expect("prefix");
    assert!(!encoded.contains(['+', '/', '=']), "{encoded}");
    let decoded = encoded
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(decoded)
            .expect("base64"),
        req
    );
}

#[test]
fn responder_certificate_with_unused_signature_bits_is_refused() {
    // The unused-bits count of the responder certificate's signature BIT STRING is not
    // covered by that signature: the same bytes with a count of 1 would still verify.
    let w = world();
    let t = w.alice_target();
    let delegated = w
        .issuer
        .leaf(LeafSpec::client("OCSP Responder").eku(Eku::OcspSigning));
    let resp = w
        .responder(&delegated.cert_pem, &delegated.key_pem, &w.index())
        .respond(&request_der(&t, None), &[]);
    assert!(
        resp.ends_with(&delegated.cert_der),
        "the certificate ends the response"
    );
    let (_, cert) = x509_parser::parse_x509_certificate(&delegated.cert_der).expect("parse");
    let at = resp.len() - cert.signature_value.data.len() - 1;
    assert_eq!(resp[at], 0, "unused-bits byte");
    for bits in [1u8, 7] {
        let mut altered = resp.clone();
        altered[at] = bits;
        // Malformed when the strict decoder notices non-zero padding bits, otherwise
        // refused as a signer.
        match check(&altered, &t) {
            Err(OcspError::Malformed(_) | OcspError::UnauthorizedSigner(_)) => {}
            other => panic!("unused bits {bits}: {other:?}"),
        }
    }
}
