//! Decoding certificates as Envoy sends them.
//!
//! Envoy hands certificates over as text: `attributes.source.certificate` and the
//! XFCC `Cert`/`Chain` values are URL-encoded PEM (`%0A` for newlines, `%2B` for `+`,
//! ...), while role files and the CLI use plain PEM. Both arrive here. Everything that
//! reaches this module may come from a client, so the input is bounded before any
//! work is done, framing is checked by hand (a truncated block is an error, not a
//! silently shorter bundle), and every failure is a typed [`PemError`], never a panic.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use rustls_pki_types::CertificateDer;

/// Largest input accepted, in bytes (before URL-decoding). A leaf plus a few RSA
/// intermediates is under 20 KB; 256 KiB leaves room for odd bundles while keeping a
/// hostile 1 MB header from costing more than a length check.
pub const MAX_INPUT_BYTES: usize = 256 * 1024;

/// Most `CERTIFICATE` blocks accepted in one input. webpki uses at most 6
/// intermediates, so 16 covers any sane leaf + chain and bounds path-building input.
pub const MAX_CERTIFICATES: usize = 16;

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &str = "-----";
const CERTIFICATE: &str = "CERTIFICATE";

/// Why certificate text could not be decoded. Messages are written for operators:
/// they end up in `malformed_certificate` deny details and logs.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PemError {
    /// The input is larger than [`MAX_INPUT_BYTES`].
    #[error("certificate input is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Size of the input received.
        len: usize,
        /// The limit, [`MAX_INPUT_BYTES`].
        max: usize,
    },
    /// The input holds more than [`MAX_CERTIFICATES`] certificates.
    #[error("more than {max} certificates in one input")]
    TooMany {
        /// The limit, [`MAX_CERTIFICATES`].
        max: usize,
    },
    /// The input holds no `CERTIFICATE` block at all.
    #[error("no PEM CERTIFICATE block found")]
    NoCertificate,
    /// URL-decoding, PEM framing, base64 or the outer DER structure is broken.
    #[error("invalid certificate encoding: {0}")]
    Encoding(String),
}

/// Decodes URL-encoded or plain PEM into the DER of every `CERTIFICATE` block, in
/// order (in a bundle the first one is the leaf).
///
/// Other block types (keys, CRLs, parameters) are skipped so that a combined file
/// works, but they still have to be well framed. Each certificate's DER is checked to
/// be exactly one ASN.1 SEQUENCE, so truncation is caught here with a clear message
/// rather than deep inside the X.509 parser.
///
/// Only input containing `%` is URL-decoded: plain PEM never contains `%`, and a `+`
/// is always a literal plus (Envoy encodes it as `%2B`, never as a space).
pub fn decode_certificates(input: &str) -> Result<Vec<CertificateDer<'static>>, PemError> {
    decode_certificates_within(input, MAX_INPUT_BYTES, MAX_CERTIFICATES)
}

/// Limits for operator-supplied bundles (role `certificate`, `ocsp_ca_certificates`):
/// a role may trust many CAs, but a file read at every reload stays bounded.
pub const MAX_BUNDLE_BYTES: usize = 4 * 1024 * 1024;
/// See [`MAX_BUNDLE_BYTES`].
pub const MAX_BUNDLE_CERTIFICATES: usize = 1000;

/// [`decode_certificates`] with explicit limits on input size and certificate count.
pub fn decode_certificates_within(
    input: &str,
    max_bytes: usize,
    max_certificates: usize,
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    if input.len() > max_bytes {
        return Err(PemError::TooLarge {
            len: input.len(),
            max: max_bytes,
        });
    }
    let text: Cow<'_, str> = if input.contains('%') {
        percent_decode_str(input)
            .decode_utf8()
            .map_err(|e| PemError::Encoding(format!("URL-decoded text is not UTF-8: {e}")))?
    } else {
        Cow::Borrowed(input)
    };

    let mut certs = Vec::new();
    let mut rest: &str = &text;
    while let Some(block) = next_block(&mut rest)? {
        if block.label != CERTIFICATE {
            continue;
        }
        if certs.len() == max_certificates {
            return Err(PemError::TooMany {
                max: max_certificates,
            });
        }
        let der = pem::parse(block.text)
            .map_err(|e| PemError::Encoding(format!("certificate {}: {e}", certs.len() + 1)))?
            .into_contents();
        check_single_sequence(&der).map_err(|what| {
            PemError::Encoding(format!("certificate {}: {what}", certs.len() + 1))
        })?;
        certs.push(CertificateDer::from(der));
    }
    if certs.is_empty() {
        return Err(PemError::NoCertificate);
    }
    Ok(certs)
}

/// SHA-256 of `data`: certificate fingerprints, XFCC `Hash` comparison, cache keys.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    // SHA-256 output is always 32 bytes; zip keeps this panic-free regardless.
    for (o, d) in out.iter_mut().zip(digest.as_ref()) {
        *o = *d;
    }
    out
}

/// One framed PEM block: its label and its full text from `-----BEGIN` to the end
/// of the `-----END ...-----` line.
struct Block<'a> {
    label: &'a str,
    text: &'a str,
}

/// Finds the next block in `rest` and advances past it. Text between blocks is
/// ignored (PEM allows explanatory text). A BEGIN without a matching END, an END
/// with another label, or a BEGIN inside a block's body is an error: those are
/// truncated or spliced inputs, and guessing would hide them.
fn next_block<'a>(rest: &mut &'a str) -> Result<Option<Block<'a>>, PemError> {
    let Some(start) = rest.find(BEGIN) else {
        return Ok(None);
    };
    let after_begin = rest.get(start + BEGIN.len()..).unwrap_or("");
    let Some(label_len) = after_begin.find(DASHES) else {
        return Err(PemError::Encoding("unterminated BEGIN line".into()));
    };
    let label = after_begin.get(..label_len).unwrap_or("");
    if label.is_empty() || label.contains(['\n', '\r']) {
        return Err(PemError::Encoding("malformed BEGIN line".into()));
    }
    let body_and_more = after_begin.get(label_len + DASHES.len()..).unwrap_or("");
    let Some(end_at) = body_and_more.find(END) else {
        return Err(PemError::Encoding(format!(
            "{} block has no END line (truncated?)",
            shorten(label)
        )));
    };
    let body = body_and_more.get(..end_at).unwrap_or("");
    if body.contains(DASHES) {
        return Err(PemError::Encoding(format!(
            "{} block has no END line before the next BEGIN (truncated?)",
            shorten(label)
        )));
    }
    let after_end = body_and_more.get(end_at + END.len()..).unwrap_or("");
    let end_label_ok = after_end
        .strip_prefix(label)
        .is_some_and(|r| r.starts_with(DASHES));
    if !end_label_ok {
        return Err(PemError::Encoding(format!(
            "{} block ends with a different END label",
            shorten(label)
        )));
    }
    // Offsets of the block within `rest`: everything up to the END line's dashes.
    let block_len =
        BEGIN.len() + label_len + DASHES.len() + end_at + END.len() + label.len() + DASHES.len();
    let text = rest.get(start..start + block_len).unwrap_or("");
    *rest = rest.get(start + block_len..).unwrap_or("");
    Ok(Some(Block { label, text }))
}

/// A label for error messages: an attacker-chosen label could be 256 KiB long.
fn shorten(label: &str) -> String {
    let mut s: String = label.chars().take(32).collect();
    if s.len() < label.len() {
        s.push('…');
    }
    s
}

/// Checks that `der` is exactly one DER SEQUENCE (tag 0x30, definite length that
/// covers the rest of the input). Catches truncated or padded certificates early.
fn check_single_sequence(der: &[u8]) -> Result<(), &'static str> {
    let (&tag, rest) = der.split_first().ok_or("empty certificate")?;
    if tag != 0x30 {
        return Err("DER does not start with a SEQUENCE");
    }
    let (&first, rest) = rest.split_first().ok_or("DER is truncated")?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err("DER length is indefinite or too large");
        }
        let bytes = rest.get(..n).ok_or("DER is truncated")?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest.get(n..).unwrap_or(&[]))
    };
    match rest.len().cmp(&len) {
        std::cmp::Ordering::Less => Err("DER is truncated"),
        std::cmp::Ordering::Greater => Err("trailing bytes after the DER certificate"),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    use std::time::{Duration, Instant};

    fn cert(name: &str) -> rcgen::CertifiedKey<rcgen::KeyPair> {
        rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen")
    }

    #[test]
    fn plain_pem() {
        let c = cert("a");
        let got = decode_certificates(&c.cert.pem()).expect("decode");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref(), c.cert.der().as_ref());
    }

    #[test]
    fn url_encoded_pem() {
        let c = cert("a");
        let encoded = utf8_percent_encode(&c.cert.pem(), NON_ALPHANUMERIC).to_string();
        assert!(encoded.contains("%0A"));
        let got = decode_certificates(&encoded).expect("decode");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref(), c.cert.der().as_ref());
    }

    #[test]
    fn envoy_style_encoding_keeps_plus_literal() {
        // Envoy encodes only what it must; base64 `+` and `/` may stay literal.
        let c = cert("a");
        let pem = c.cert.pem();
        let envoy = pem.replace(' ', "%20").replace('\n', "%0A");
        let got = decode_certificates(&envoy).expect("decode");
        assert_eq!(got[0].as_ref(), c.cert.der().as_ref());
    }

    #[test]
    fn crlf_and_surrounding_text() {
        let c = cert("a");
        let pem = format!(
            "subject=CN=a\r\n{}\r\ntrailing words\r\n",
            c.cert.pem().replace('\n', "\r\n")
        );
        let got = decode_certificates(&pem).expect("decode");
        assert_eq!(got[0].as_ref(), c.cert.der().as_ref());
    }

    #[test]
    fn bundle_of_three_in_order() {
        let cs = [cert("a"), cert("b"), cert("c")];
        let bundle: String = cs.iter().map(|c| c.cert.pem()).collect();
        let encoded = utf8_percent_encode(&bundle, NON_ALPHANUMERIC).to_string();
        for input in [bundle, encoded] {
            let got = decode_certificates(&input).expect("decode");
            assert_eq!(got.len(), 3);
            for (g, c) in got.iter().zip(&cs) {
                assert_eq!(g.as_ref(), c.cert.der().as_ref());
            }
        }
    }

    #[test]
    fn other_block_types_are_skipped() {
        let c = cert("a");
        let input = format!("{}{}", c.signing_key.serialize_pem(), c.cert.pem());
        let got = decode_certificates(&input).expect("decode");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref(), c.cert.der().as_ref());
        assert_eq!(
            decode_certificates(&c.signing_key.serialize_pem()),
            Err(PemError::NoCertificate)
        );
    }

    #[test]
    fn empty_and_garbage() {
        assert_eq!(decode_certificates(""), Err(PemError::NoCertificate));
        assert_eq!(
            decode_certificates("hello world"),
            Err(PemError::NoCertificate)
        );
        assert_eq!(decode_certificates("%%%zz%"), Err(PemError::NoCertificate));
        for bad in [
            "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END X509 CRL-----\n",
            "-----BEGIN CERTIFICATE",
            "-----BEGIN -----\nAAAA\n-----END -----\n",
            "-----BEGIN CERTIFICATE-----\nMIIB\n",
            "%C3%28-----BEGIN CERTIFICATE-----",
        ] {
            match decode_certificates(bad) {
                Err(PemError::Encoding(msg)) => assert!(!msg.is_empty()),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn truncated_base64_and_der() {
        let c = cert("a");
        let pem = c.cert.pem();
        let lines: Vec<&str> = pem.lines().collect();
        // Drop a middle line of base64: still valid base64 maybe, but not the DER.
        let mut cut = lines.clone();
        cut.remove(2);
        let cut = cut.join("\n");
        assert!(matches!(
            decode_certificates(&cut),
            Err(PemError::Encoding(_))
        ));
        // Chop characters off the last base64 line: invalid base64 length.
        let mut chopped: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        let n = chopped.len();
        let last_b64 = &mut chopped[n - 2];
        last_b64.truncate(last_b64.len().saturating_sub(3));
        assert!(matches!(
            decode_certificates(&chopped.join("\n")),
            Err(PemError::Encoding(_))
        ));
        // No END line at all.
        let half = &pem[..pem.len() / 2];
        assert!(matches!(
            decode_certificates(half),
            Err(PemError::Encoding(_))
        ));
        // A truncated first block followed by a good one is still an error.
        let spliced = format!("{half}\n{pem}");
        assert!(matches!(
            decode_certificates(&spliced),
            Err(PemError::Encoding(_))
        ));
    }

    #[test]
    fn der_checks() {
        assert!(check_single_sequence(&[0x30, 0x00]).is_ok());
        assert!(check_single_sequence(&[0x30, 0x81, 0x01, 0xff]).is_ok());
        assert!(check_single_sequence(&[]).is_err());
        assert!(check_single_sequence(&[0x31, 0x00]).is_err());
        assert!(check_single_sequence(&[0x30]).is_err());
        assert!(check_single_sequence(&[0x30, 0x80]).is_err());
        assert!(check_single_sequence(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_err());
        assert!(check_single_sequence(&[0x30, 0x82, 0x01]).is_err());
        assert!(check_single_sequence(&[0x30, 0x02, 0x00]).is_err());
        assert!(check_single_sequence(&[0x30, 0x00, 0x00]).is_err());
        assert!(check_single_sequence(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn one_mib_is_rejected_fast() {
        let input = "A".repeat(1024 * 1024);
        let t = Instant::now();
        assert_eq!(
            decode_certificates(&input),
            Err(PemError::TooLarge {
                len: 1024 * 1024,
                max: MAX_INPUT_BYTES
            })
        );
        assert!(t.elapsed() < Duration::from_millis(50));
        let just_over = "A".repeat(MAX_INPUT_BYTES + 1);
        assert!(matches!(
            decode_certificates(&just_over),
            Err(PemError::TooLarge { .. })
        ));
    }

    #[test]
    fn seventeen_certificates_are_too_many() {
        let c = cert("a");
        let pem = c.cert.pem();
        let sixteen = pem.repeat(16);
        assert_eq!(decode_certificates(&sixteen).expect("16 ok").len(), 16);
        let seventeen = pem.repeat(17);
        assert_eq!(
            decode_certificates(&seventeen),
            Err(PemError::TooMany {
                max: MAX_CERTIFICATES
            })
        );
    }

    #[test]
    fn many_begin_lines_do_not_hang() {
        let input = "-----BEGIN X-----".repeat(10_000);
        let t = Instant::now();
        assert!(decode_certificates(&input).is_err());
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn errors_have_messages() {
        for e in [
            PemError::TooLarge { len: 2, max: 1 },
            PemError::TooMany { max: 16 },
            PemError::NoCertificate,
            PemError::Encoding("x".into()),
        ] {
            assert!(!e.to_string().is_empty());
        }
    }
}
