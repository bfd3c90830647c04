//! Test PKI, generated at test time so fixtures never expire.
//!
//! ```ignore
//! let root = Ca::root("Test Root");
//! let issuing = root.intermediate("Test Issuing CA");
//! let alice = issuing.leaf(LeafSpec::client("alice").uri("spiffe://cluster.local/ns/prod/sa/alice"));
//! let crl = issuing.crl(&[&alice.serial], time::Duration::hours(1));
//! let dir = Dir::new();
//! dir.write("roles/anchors.pem", bundle(&[&root.cert_pem]));
//! ```
//!
//! Keys are P-256 unless asked otherwise (cheap to generate). RSA keys and the SHA-1
//! leaf come from `openssl`, because rcgen's ring backend cannot generate RSA keys and
//! rcgen cannot sign with SHA-1 at all.
//!
//! Serial numbers are random (rcgen's default derives them from the public key, which
//! would give every certificate of a reused key the same serial).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber, SigningKey,
};
use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};

// === impl Ca ===

/// A certificate authority that can issue intermediates, leaves and CRLs.
#[derive(Clone, Debug)]
pub struct Ca {
    /// The subject common name, handy for file names and assertions.
    pub name: String,
    /// This CA's certificate (self-signed for a root, issued by the parent otherwise).
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    /// PKCS#8 private key, e.g. for `openssl ocsp -rkey` or `openssl ca`.
    pub key_pem: String,
    /// The signing key, e.g. to sign OCSP responses in tests.
    pub key: Arc<KeyPair>,
    /// The parameters the certificate was made from: rcgen's `Issuer` needs the subject
    /// name and key identifier method to sign anything below this CA.
    params: CertificateParams,
}

impl Ca {
    /// A self-signed P-256 root, valid from a day ago for ten years.
    pub fn root(cn: &str) -> Ca {
        Ca::self_signed(cn, new_p256_key())
    }

    /// A self-signed RSA-2048 root (sha256WithRSAEncryption), key made by `openssl`.
    pub fn root_rsa(cn: &str) -> Ca {
        Ca::self_signed(cn, rsa_key())
    }

    /// A CA certificate for `cn`, P-256, signed by `self`.
    pub fn intermediate(&self, cn: &str) -> Ca {
        self.intermediate_with(cn, |_| {})
    }

    /// Like [`Ca::intermediate`], with a hook to change the rcgen parameters before
    /// signing: validity (expired intermediates), `crl_distribution_points`,
    /// `is_ca` path length, `name_constraints`, ...
    pub fn intermediate_with(&self, cn: &str, tweak: impl FnOnce(&mut CertificateParams)) -> Ca {
        let key = new_p256_key();
        let mut params = ca_params(cn);
        params.not_after = now() + Duration::days(5 * 365);
        params.use_authority_key_identifier_extension = true;
        tweak(&mut params);
        let cert = params
            .signed_by(&*key, &self.issuer())
            .expect("sign intermediate");
        Ca::from_parts(cn, cert.der().to_vec(), key, params)
    }

    /// The same subject and key as `self`, issued by `other`: an alternative path
    /// (cross-signing). Leaves issued by the returned `Ca` are interchangeable with
    /// leaves issued by `self`.
    pub fn cross_sign(&self, other: &Ca) -> Ca {
        let mut params = self.params.clone();
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&*self.key, &other.issuer())
            .expect("cross-sign");
        Ca::from_parts(&self.name, cert.der().to_vec(), self.key.clone(), params)
    }

    /// An end-entity certificate signed by this CA.
    pub fn leaf(&self, spec: LeafSpec) -> Leaf {
        let key = spec.key.clone().unwrap_or_else(new_p256_key);
        let params = spec.to_params(&key);
        let mut der = params
            .signed_by(&*key, &self.issuer())
            .expect("sign leaf")
            .der()
            .to_vec();
        if spec.ous.len() > 1 || spec.orgs.len() > 1 {
            der = restore_repeated_attributes(&der, &self.key);
        }
        let (_, x509) = x509_parser::parse_x509_certificate(&der).expect("parse own leaf");
        let serial = x509.raw_serial().to_vec();
        Leaf {
            cert_pem: pem_encode("CERTIFICATE", &der),
            key_pem: key.serialize_pem(),
            cert_der: der,
            key,
            serial,
        }
    }

    /// A CRL listing `revoked_serials`: thisUpdate a minute ago, nextUpdate
    /// `next_update_in` from now (must be more than -1 minute).
    pub fn crl(&self, revoked_serials: &[&[u8]], next_update_in: Duration) -> Crl {
        let now = now();
        self.crl_at(
            revoked_serials,
            now - Duration::minutes(1),
            now + next_update_in,
        )
    }

    /// A CRL with explicit thisUpdate/nextUpdate (nextUpdate must be after thisUpdate).
    pub fn crl_at(
        &self,
        revoked_serials: &[&[u8]],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Crl {
        let params = crl_params(revoked_serials, this_update, next_update);
        let crl = params.signed_by(&self.issuer()).expect("sign CRL");
        Crl::from_der(crl.der().to_vec())
    }

    /// A CRL that claims to come from this CA (same issuer name, same authority key
    /// identifier) but is signed by an unrelated key: its signature must not verify.
    pub fn crl_signed_by_wrong_key(&self, revoked_serials: &[&[u8]]) -> Crl {
        let now = now();
        let mut params = crl_params(
            revoked_serials,
            now - Duration::minutes(1),
            now + Duration::hours(1),
        );
        params.key_identifier_method = KeyIdMethod::PreSpecified(self.key_id());
        let wrong_key = new_p256_key();
        let impostor = Issuer::from_params(&self.params, &*wrong_key);
        let crl = params.signed_by(&impostor).expect("sign CRL");
        Crl::from_der(crl.der().to_vec())
    }

    /// The subject key identifier this CA's certificates carry.
    pub fn key_id(&self) -> Vec<u8> {
        self.params.key_identifier(&*self.key)
    }

    fn self_signed(cn: &str, key: Arc<KeyPair>) -> Ca {
        let params = ca_params(cn);
        let cert = params.self_signed(&*key).expect("self-sign root");
        Ca::from_parts(cn, cert.der().to_vec(), key, params)
    }

    fn from_parts(cn: &str, der: Vec<u8>, key: Arc<KeyPair>, params: CertificateParams) -> Ca {
        Ca {
            name: cn.to_string(),
            cert_pem: pem_encode("CERTIFICATE", &der),
            cert_der: der,
            key_pem: key.serialize_pem(),
            key,
            params,
        }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &*self.key)
    }
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now() - Duration::days(1);
    params.not_after = now() + Duration::days(10 * 365);
    params.serial_number = Some(random_serial());
    params
}

fn crl_params(
    revoked_serials: &[&[u8]],
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> CertificateRevocationListParams {
    // Increasing CRL numbers, so a re-issued CRL is recognisably newer.
    static CRL_NUMBER: AtomicU64 = AtomicU64::new(0);
    let number = (now().unix_timestamp() as u64) * 1000 + CRL_NUMBER.fetch_add(1, Ordering::SeqCst);
    CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: revoked_serials
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial),
                revocation_time: this_update,
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
}

// === impl LeafSpec ===

/// Which extended key usages a leaf carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Eku {
    #[default]
    Client,
    Server,
    ClientAndServer,
    /// No extendedKeyUsage extension at all.
    None,
    /// id-kp-OCSPSigning, for a delegated OCSP responder.
    OcspSigning,
}

/// A custom extension: OID arcs, the raw DER value (the extnValue contents), criticality.
#[derive(Clone, Debug)]
pub struct Extension {
    pub oid: Vec<u64>,
    pub value: Vec<u8>,
    pub critical: bool,
}

/// What to put in a leaf. Start from [`LeafSpec::client`] or [`LeafSpec::server`]
/// and chain the builder methods.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    pub cn: Option<String>,
    pub dns: Vec<String>,
    pub email: Vec<String>,
    pub uri: Vec<String>,
    pub ip: Vec<IpAddr>,
    /// Every value becomes its own OU attribute, in order.
    pub ous: Vec<String>,
    /// Every value becomes its own O attribute, in order.
    pub orgs: Vec<String>,
    pub eku: Eku,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Explicit serial (big-endian, positive); random when `None`.
    pub serial: Option<Vec<u8>>,
    pub extensions: Vec<Extension>,
    /// One distribution point per URL.
    pub crl_distribution_points: Vec<String>,
    /// Authority Information Access, id-ad-ocsp.
    pub ocsp_responder: Option<String>,
    /// Reuse a key (a forged twin: same serial and key, other DER); fresh P-256 if `None`.
    pub key: Option<Arc<KeyPair>>,
}

impl LeafSpec {
    /// A client certificate: CN `cn`, clientAuth, valid from an hour ago for 30 days.
    pub fn client(cn: &str) -> Self {
        LeafSpec {
            cn: Some(cn.to_string()),
            dns: Vec::new(),
            email: Vec::new(),
            uri: Vec::new(),
            ip: Vec::new(),
            ous: Vec::new(),
            orgs: Vec::new(),
            eku: Eku::Client,
            not_before: now() - Duration::hours(1),
            not_after: now() + Duration::days(30),
            serial: None,
            extensions: Vec::new(),
            crl_distribution_points: Vec::new(),
            ocsp_responder: None,
            key: None,
        }
    }

    /// A server certificate: CN and DNS SAN `cn`, serverAuth. Add `.ip("127.0.0.1")`
    /// when clients connect by address.
    pub fn server(cn: &str) -> Self {
        LeafSpec::client(cn).dns(cn).eku(Eku::Server)
    }

    /// No subject CN at all.
    pub fn no_cn(mut self) -> Self {
        self.cn = None;
        self
    }
    pub fn dns(mut self, name: &str) -> Self {
        self.dns.push(name.to_string());
        self
    }
    pub fn email(mut self, address: &str) -> Self {
        self.email.push(address.to_string());
        self
    }
    pub fn uri(mut self, uri: &str) -> Self {
        self.uri.push(uri.to_string());
        self
    }
    pub fn ip(mut self, ip: &str) -> Self {
        self.ip.push(ip.parse().expect("IP address"));
        self
    }
    pub fn ou(mut self, ou: &str) -> Self {
        self.ous.push(ou.to_string());
        self
    }
    pub fn org(mut self, org: &str) -> Self {
        self.orgs.push(org.to_string());
        self
    }
    pub fn eku(mut self, eku: Eku) -> Self {
        self.eku = eku;
        self
    }
    pub fn validity(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }
    /// Valid from 30 days ago until yesterday.
    pub fn expired(self) -> Self {
        self.validity(now() - Duration::days(30), now() - Duration::days(1))
    }
    /// Valid from tomorrow for 30 days.
    pub fn not_yet_valid(self) -> Self {
        self.validity(now() + Duration::days(1), now() + Duration::days(31))
    }
    pub fn serial(mut self, serial: impl Into<Vec<u8>>) -> Self {
        self.serial = Some(serial.into());
        self
    }
    /// A non-critical extension; `der` is the extnValue contents (see [`der_utf8`]).
    pub fn extension(mut self, oid: &[u64], der: impl Into<Vec<u8>>) -> Self {
        self.extensions.push(Extension {
            oid: oid.to_vec(),
            value: der.into(),
            critical: false,
        });
        self
    }
    pub fn critical_extension(mut self, oid: &[u64], der: impl Into<Vec<u8>>) -> Self {
        self.extensions.push(Extension {
            oid: oid.to_vec(),
            value: der.into(),
            critical: true,
        });
        self
    }
    pub fn cdp(mut self, url: &str) -> Self {
        self.crl_distribution_points.push(url.to_string());
        self
    }
    pub fn ocsp(mut self, url: &str) -> Self {
        self.ocsp_responder = Some(url.to_string());
        self
    }
    pub fn key(mut self, key: Arc<KeyPair>) -> Self {
        self.key = Some(key);
        self
    }
    /// Use a fresh RSA-2048 key (made by `openssl`, ~0.1–0.5 s).
    pub fn rsa(self) -> Self {
        self.key(rsa_key())
    }

    fn to_params(&self, key: &KeyPair) -> CertificateParams {
        let mut params = CertificateParams::default();
        let dn = &mut params.distinguished_name;
        *dn = rcgen::DistinguishedName::new();
        // DER order O, OU, CN: Envoy prints it reversed as "CN=..,OU=..,O=..".
        // rcgen keeps one value per attribute type, so the second and later values
        // go in under placeholder types that `restore_repeated_attributes` renames.
        for (i, org) in self.orgs.iter().enumerate() {
            let ty = match i {
                0 => DnType::OrganizationName,
                _ => DnType::CustomDnType(vec![2, 5, 4, placeholder(O_PLACEHOLDERS, i)]),
            };
            dn.push(ty, org.as_str());
        }
        for (i, ou) in self.ous.iter().enumerate() {
            let ty = match i {
                0 => DnType::OrganizationalUnitName,
                _ => DnType::CustomDnType(vec![2, 5, 4, placeholder(OU_PLACEHOLDERS, i)]),
            };
            dn.push(ty, ou.as_str());
        }
        if let Some(cn) = &self.cn {
            dn.push(DnType::CommonName, cn.as_str());
        }

        let ia5 = |s: &String| s.clone().try_into().expect("IA5 string");
        params.subject_alt_names = (self.dns.iter().map(|s| SanType::DnsName(ia5(s))))
            .chain(self.email.iter().map(|s| SanType::Rfc822Name(ia5(s))))
            .chain(self.uri.iter().map(|s| SanType::URI(ia5(s))))
            .chain(self.ip.iter().map(|ip| SanType::IpAddress(*ip)))
            .collect();

        params.extended_key_usages = match self.eku {
            Eku::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Eku::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Eku::ClientAndServer => vec![
                ExtendedKeyUsagePurpose::ClientAuth,
                ExtendedKeyUsagePurpose::ServerAuth,
            ],
            Eku::None => Vec::new(),
            Eku::OcspSigning => vec![ExtendedKeyUsagePurpose::OcspSigning],
        };
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if key.algorithm() == &rcgen::PKCS_RSA_SHA256 {
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        // basicConstraints CA:FALSE (plus a subject key identifier), like Vault's leaves.
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.not_before = self.not_before;
        params.not_after = self.not_after;
        params.serial_number = Some(match &self.serial {
            Some(serial) => SerialNumber::from_slice(serial),
            None => random_serial(),
        });
        params.crl_distribution_points = self
            .crl_distribution_points
            .iter()
            .map(|url| CrlDistributionPoint {
                uris: vec![url.clone()],
            })
            .collect();
        if let Some(url) = &self.ocsp_responder {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    &[1, 3, 6, 1, 5, 5, 7, 1, 1],
                    authority_info_access_ocsp(url),
                ));
        }
        for ext in &self.extensions {
            let mut custom = CustomExtension::from_oid_content(&ext.oid, ext.value.clone());
            custom.set_criticality(ext.critical);
            params.custom_extensions.push(custom);
        }
        params
    }
}

/// Placeholder attribute types 2.5.4.100..=113 stand for extra OUs, 2.5.4.114..=127
/// for extra Os. Each encodes in three bytes like 2.5.4.11 / 2.5.4.10, so renaming
/// them in the DER changes no lengths.
const OU_PLACEHOLDERS: (u64, u8) = (100, 11);
const O_PLACEHOLDERS: (u64, u8) = (114, 10);
const PLACEHOLDERS_PER_TYPE: usize = 14;

fn placeholder((first, _): (u64, u8), i: usize) -> u64 {
    assert!(
        i <= PLACEHOLDERS_PER_TYPE,
        "at most {} OUs and {0} Os per leaf",
        PLACEHOLDERS_PER_TYPE + 1
    );
    first + i as u64 - 1
}

/// Rename the placeholder attribute types in the subject to OU / O, then re-sign.
fn restore_repeated_attributes(der: &[u8], signer: &KeyPair) -> Vec<u8> {
    let (_, x509) = x509_parser::parse_x509_certificate(der).expect("parse own leaf");
    let tbs = x509.tbs_certificate.as_ref();
    let subject = x509.subject().as_raw();
    let tbs_start = tbs.as_ptr() as usize - der.as_ptr() as usize;
    let subject_start = subject.as_ptr() as usize - tbs.as_ptr() as usize;

    let mut new_tbs = tbs.to_vec();
    let region = &mut new_tbs[subject_start..subject_start + subject.len()];
    for i in 0..region.len().saturating_sub(4) {
        if region[i..i + 4] == [0x06, 0x03, 0x55, 0x04] {
            let arc = u64::from(region[i + 4]);
            for (first, real) in [OU_PLACEHOLDERS, O_PLACEHOLDERS] {
                if (first..first + PLACEHOLDERS_PER_TYPE as u64).contains(&arc) {
                    region[i + 4] = real;
                }
            }
        }
    }

    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let after_tbs = &der[tbs_start + tbs.len()..];
    let alg_id = &after_tbs[..tlv_len(after_tbs)];
    let signature = signer.sign(&new_tbs).expect("re-sign leaf");
    let mut bits = vec![0u8]; // no unused bits
    bits.extend_from_slice(&signature);
    der_tlv(
        0x30,
        &[new_tbs.as_slice(), alg_id, &der_tlv(0x03, &bits)].concat(),
    )
}

/// AuthorityInfoAccessSyntax with one id-ad-ocsp AccessDescription.
fn authority_info_access_ocsp(url: &str) -> Vec<u8> {
    let id_ad_ocsp = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
    let location = der_tlv(0x86, url.as_bytes()); // [6] uniformResourceIdentifier
    let description = der_tlv(0x30, &[&id_ad_ocsp[..], &location].concat());
    der_tlv(0x30, &description)
}

// === impl Leaf ===

/// An issued end-entity certificate and its key.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    /// PKCS#8 private key (for TLS clients, or `openssl ocsp -rkey` for a responder).
    pub key_pem: String,
    pub key: Arc<KeyPair>,
    /// The serial as encoded in the certificate: the DER INTEGER contents, so a
    /// leading 0x00 is present when the first byte is >= 0x80 (x509-parser's
    /// `raw_serial`).
    pub serial: Vec<u8>,
}

impl Leaf {
    /// The PEM as Envoy sends it in `source.certificate` and XFCC `Cert=`.
    pub fn url_encoded_pem(&self) -> String {
        url_encode(&self.cert_pem)
    }

    /// SHA-256 of the DER, lower-case hex (XFCC `Hash=`).
    pub fn fingerprint_hex(&self) -> String {
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &self.cert_der))
    }

    /// The serial in lower-case hex without separators (leading zero byte dropped).
    pub fn serial_hex(&self) -> String {
        let trimmed = match self.serial.as_slice() {
            [0, rest @ ..] if !rest.is_empty() => rest,
            all => all,
        };
        hex::encode(trimmed)
    }
}

// === impl Crl ===

#[derive(Clone, Debug)]
pub struct Crl {
    pub pem: String,
    pub der: Vec<u8>,
}

impl Crl {
    fn from_der(der: Vec<u8>) -> Crl {
        Crl {
            pem: pem_encode("X509 CRL", &der),
            der,
        }
    }
}

// === SHA-1 ===

fn sha1_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fixtures/sha1-leaf.sh")
}

fn run_sha1_script(args: &[&Path]) {
    let out = Command::new("bash")
        .arg(sha1_script())
        .args(args)
        .output()
        .expect("run scripts/fixtures/sha1-leaf.sh");
    assert!(
        out.status.success(),
        "sha1-leaf.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh RSA CA and a client leaf (CN `sha1-client`) it signed with
/// sha1WithRSAEncryption, made by `scripts/fixtures/sha1-leaf.sh` in `dir`.
/// Returns (CA PEM, leaf PEM); `dir` also holds ca.key and leaf.key.
pub fn sha1_signed_leaf(dir: &Path) -> (String, String) {
    run_sha1_script(&[dir]);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect(name);
    (read("ca.pem"), read("leaf.pem"))
}

/// A client leaf (CN `sha1-client`) that `ca` signed with SHA-1 (ecdsa-with-SHA1 for
/// a P-256 CA). Returns the leaf PEM; `dir` also holds leaf.key.
pub fn sha1_signed_leaf_by(ca: &Ca, dir: &Path) -> String {
    std::fs::create_dir_all(dir).expect("create dir");
    let ca_pem = dir.join("issuer.pem");
    let ca_key = dir.join("issuer.key");
    std::fs::write(&ca_pem, &ca.cert_pem).expect("write issuer.pem");
    std::fs::write(&ca_key, &ca.key_pem).expect("write issuer.key");
    run_sha1_script(&[dir, &ca_pem, &ca_key]);
    std::fs::read_to_string(dir.join("leaf.pem")).expect("leaf.pem")
}

// === keys, encodings ===

fn new_p256_key() -> Arc<KeyPair> {
    Arc::new(KeyPair::generate().expect("generate P-256 key"))
}

/// A fresh RSA-2048 key. rcgen's ring backend cannot generate RSA keys, so
/// `openssl genpkey` makes it (PKCS#8, which is what rcgen's ring backend reads).
pub fn rsa_key() -> Arc<KeyPair> {
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("run openssl genpkey");
    assert!(out.status.success(), "openssl genpkey failed");
    let pem = String::from_utf8(out.stdout).expect("PEM is ASCII");
    Arc::new(KeyPair::from_pem(&pem).expect("parse RSA key"))
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).expect("random");
    // Positive, no leading zero byte: the encoded serial is exactly these 16 bytes.
    bytes[0] = (bytes[0] & 0x7f).max(1);
    SerialNumber::from_slice(&bytes)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn pem_encode(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Percent-encode a PEM exactly as Envoy does (newline, space, `+`, `/`, `=`).
pub fn url_encode(pem: &str) -> String {
    let mut out = String::with_capacity(pem.len() + pem.len() / 8);
    for c in pem.chars() {
        match c {
            '\n' => out.push_str("%0A"),
            ' ' => out.push_str("%20"),
            '+' => out.push_str("%2B"),
            '/' => out.push_str("%2F"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
    out
}

/// Concatenate PEMs, one after the other, each ending in a newline.
pub fn bundle(pems: &[&str]) -> String {
    let mut out = String::new();
    for pem in pems {
        out.push_str(pem);
        if !pem.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// One DER TLV (tag, definite length, contents).
pub fn der_tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(contents);
    out
}

/// A DER UTF8String, e.g. the value of a custom extension read as a string.
pub fn der_utf8(s: &str) -> Vec<u8> {
    der_tlv(0x0c, s.as_bytes())
}

/// Total length (header + contents) of the DER TLV at the start of `der`.
fn tlv_len(der: &[u8]) -> usize {
    let first = der[1] as usize;
    if first < 0x80 {
        return 2 + first;
    }
    let n = first & 0x7f;
    let len = der[2..2 + n]
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | *b as usize);
    2 + n + len
}

// === impl Dir ===

/// A temporary directory, removed when dropped.
pub struct Dir {
    pub path: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        let tmp = tempfile::tempdir().expect("create temp dir");
        Dir {
            path: tmp.path().to_path_buf(),
            _tmp: tmp,
        }
    }

    /// The path of `rel` inside the directory (nothing is created).
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Write `contents` to `rel`, creating parent directories; returns the full path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent dirs");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }
}

impl Default for Dir {
    fn default() -> Self {
        Dir::new()
    }
}
