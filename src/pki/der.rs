//! The few DER reads x509-parser and webpki do not expose the way we need them:
//! element boundaries (to compare names the way webpki holds them and to find a CRL's
//! signed bytes) and Go's `asn1.Unmarshal(value, &string)` for `required_extensions`.
//! Every read is bounds-checked; malformed input yields `None`.

use std::ops::Range;

/// One DER element: its tag, the range of the whole element and of its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub tag: u8,
    pub whole: Range<usize>,
    pub contents: Range<usize>,
}

/// Reads the element starting at `offset` in `input` (single-byte tags only, definite
/// lengths only, as DER requires).
pub fn element_at(input: &[u8], offset: usize) -> Option<Element> {
    let tag = *input.get(offset)?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags do not occur where we look
    }
    let first = *input.get(offset + 1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *input.get(offset + 2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let start = offset.checked_add(header)?;
    let end = start.checked_add(len)?;
    if end > input.len() {
        return None;
    }
    Some(Element {
        tag,
        whole: offset..end,
        contents: start..end,
    })
}

/// The contents of a SEQUENCE (a Name's RDNs without the outer tag), which is how
/// webpki holds subject and issuer names.
pub fn sequence_contents(input: &[u8]) -> Option<&[u8]> {
    let e = element_at(input, 0)?;
    (e.tag == 0x30 && e.whole.end == input.len()).then(|| &input[e.contents])
}

/// The three parts of a signed structure (certificate or CRL):
/// `SEQUENCE { tbs, signatureAlgorithm, signatureValue BIT STRING }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedParts {
    /// The whole to-be-signed element.
    pub tbs: Range<usize>,
    /// The whole AlgorithmIdentifier element.
    pub algorithm: Range<usize>,
    /// The BIT STRING contents (first byte: unused bits).
    pub signature: Range<usize>,
}

/// Splits a signed structure into its parts.
pub fn signed_parts(input: &[u8]) -> Option<SignedParts> {
    let outer = element_at(input, 0)?;
    if outer.tag != 0x30 {
        return None;
    }
    let tbs = element_at(input, outer.contents.start)?;
    let alg = element_at(input, tbs.whole.end)?;
    let sig = element_at(input, alg.whole.end)?;
    if sig.tag != 0x03 || sig.whole.end != outer.contents.end {
        return None;
    }
    Some(SignedParts {
        tbs: tbs.whole,
        algorithm: alg.whole,
        signature: sig.contents,
    })
}

/// Go's `asn1.Unmarshal(ext.Value, &s)` into a string, as Vault does for
/// `required_extensions`: the value must start with one ASN.1 string (UTF8String,
/// PrintableString, IA5String, NumericString, T61String, GeneralString, BMPString);
/// anything else reads as `None` (Vault then compares against "").
pub fn asn1_string(value: &[u8]) -> Option<String> {
    let e = element_at(value, 0)?;
    let bytes = &value[e.contents];
    match e.tag {
        0x0c | 0x13 | 0x16 | 0x12 | 0x1b => std::str::from_utf8(bytes).ok().map(String::from),
        // T61String: Go reads it as Latin-1-ish bytes; accept what is valid UTF-8.
        0x14 => Some(bytes.iter().map(|&b| b as char).collect()),
        0x1e => {
            if !bytes.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// A serial number as bytes without leading zero octets (DER adds one to keep the
/// INTEGER positive), so that equal serials compare equal however they were encoded.
pub fn normalize_serial(serial: &[u8]) -> &[u8] {
    let first = serial.iter().position(|&b| b != 0).unwrap_or(serial.len());
    let s = &serial[first..];
    if s.is_empty() {
        &serial[serial.len().saturating_sub(1)..]
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let short = [0x04, 0x02, 0xaa, 0xbb];
        assert_eq!(element_at(&short, 0).map(|e| e.contents), Some(2..4));
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend(std::iter::repeat_n(0u8, 0x80));
        assert_eq!(element_at(&long, 0).map(|e| e.contents), Some(3..0x83));
    }

    #[test]
    fn truncated_input_is_none() {
        assert_eq!(element_at(&[0x04, 0x05, 1, 2], 0), None);
        assert_eq!(element_at(&[0x04], 0), None);
        assert_eq!(element_at(&[], 0), None);
        assert_eq!(element_at(&[0x04, 0x85, 1, 1, 1, 1, 1], 0), None);
        assert_eq!(signed_parts(&[0x30, 0x00]), None);
    }

    #[test]
    fn asn1_strings_like_go() {
        assert_eq!(
            asn1_string(&[0x0c, 0x02, b'h', b'i']).as_deref(),
            Some("hi")
        );
        assert_eq!(asn1_string(&[0x13, 0x01, b'A']).as_deref(), Some("A"));
        assert_eq!(asn1_string(&[0x16, 0x00]).as_deref(), Some(""));
        assert_eq!(asn1_string(&[0x1e, 0x02, 0x00, b'Z']).as_deref(), Some("Z"));
        // INTEGER and BOOLEAN are not strings
        assert_eq!(asn1_string(&[0x02, 0x01, 0x05]), None);
        assert_eq!(asn1_string(&[0x01, 0x01, 0xff]), None);
        // trailing data after the string is ignored, as Go's Unmarshal returns it as rest
        assert_eq!(asn1_string(&[0x0c, 0x01, b'x', 0x00]).as_deref(), Some("x"));
    }

    #[test]
    fn serial_normalization() {
        assert_eq!(normalize_serial(&[0x00, 0x80, 0x01]), &[0x80, 0x01]);
        assert_eq!(normalize_serial(&[0x05]), &[0x05]);
        assert_eq!(normalize_serial(&[0x00]), &[0x00]);
        assert_eq!(normalize_serial(&[]), &[] as &[u8]);
    }
}
