//! The `x-forwarded-client-cert` (XFCC) header parser.
//!
//! Envoy's format: elements separated by `,` (the right-most added by the nearest
//! proxy); inside an element, `key=value` pairs separated by `;`; keys are
//! case-insensitive (`By`, `Hash`, `Cert`, `Chain`, `Subject`, `URI`, `DNS`); a value
//! containing `,`, `;` or `=` is double-quoted. Envoy writes `URI=` and `DNS=` without
//! quotes, so an unquoted value may contain `=` (a URI query) but not `,`/`;`.
//!
//! Inside quotes a backslash escapes the next character, so `\"` never ends the
//! value. `\"` reads as `"` and `\\` as `\`. Any other `\x` is kept verbatim: Envoy
//! copies the subject as OpenSSL prints it in RFC 2253 form, where `O=Acme\, Inc.`
//! is an ordinary (and common) subject, and rejecting it would deny real clients.
//!
//! The header reaches us from the network, so the parser is a single forward pass
//! (linear time, no recursion, no backtracking), bounded in size and element count,
//! borrows from the header whenever no unescaping is needed, and reports the byte
//! position of the first problem instead of guessing. Whether the header is believed
//! at all is decided by the caller ([`crate::source`]); this module only reads it.

use std::borrow::Cow;

/// Largest header accepted. Envoy's own element is 2.8–4.6 KB with `Cert` and
/// `Chain`; 64 KiB fits a dozen hops and keeps a 1 MB header a length check.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Most elements accepted. Each element is one proxy hop; real meshes have two or
/// three, and the cap bounds the work of walking the trust chain.
pub const MAX_ELEMENTS: usize = 16;

/// Why an XFCC header could not be read. A trusted header that fails here is denied
/// `malformed_xfcc` with this message as detail.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum XfccError {
    /// The header is longer than [`MAX_HEADER_BYTES`].
    #[error("x-forwarded-client-cert is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Length of the header received.
        len: usize,
        /// The limit, [`MAX_HEADER_BYTES`].
        max: usize,
    },
    /// The header has more than [`MAX_ELEMENTS`] elements.
    #[error("x-forwarded-client-cert has more than {max} elements")]
    TooManyElements {
        /// The limit, [`MAX_ELEMENTS`].
        max: usize,
    },
    /// The header is not in Envoy's format.
    #[error("x-forwarded-client-cert syntax error at byte {position}: {what}")]
    Syntax {
        /// Byte offset into the header where the problem was found.
        position: usize,
        /// What is wrong there.
        what: &'static str,
    },
}

/// One XFCC element: what one proxy hop says about the client that connected to it.
///
/// Values borrow from the header unless unescaping was needed. `Cert` and `Chain`
/// stay URL-encoded PEM exactly as received: decoding is [`crate::pki::pem`]'s job,
/// and the raw text doubles as a cache key. Empty values (`URI=`) are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XfccElement<'a> {
    /// `By`: the URI SAN(s) of the proxy that added this element.
    pub by: Vec<Cow<'a, str>>,
    /// `Hash`: hex SHA-256 of the client's leaf DER.
    pub hash: Option<Cow<'a, str>>,
    /// `Cert`: URL-encoded PEM of the client's leaf.
    pub cert: Option<Cow<'a, str>>,
    /// `Chain`: URL-encoded PEM of what the client sent, leaf first.
    pub chain: Option<Cow<'a, str>>,
    /// `Subject`: the client's subject DN (RFC 2253, as OpenSSL prints it).
    pub subject: Option<Cow<'a, str>>,
    /// `URI`: the client's URI SANs.
    pub uri: Vec<Cow<'a, str>>,
    /// `DNS`: the client's DNS SANs.
    pub dns: Vec<Cow<'a, str>>,
}

impl XfccElement<'_> {
    /// The identities this element claims for its client: URI SANs, DNS SANs, then
    /// the subject. These are what `trusted_proxies` identity globs are matched
    /// against when deciding whether this hop vouches for the element to its left.
    pub fn identities(&self) -> impl Iterator<Item = &str> {
        self.uri
            .iter()
            .chain(self.dns.iter())
            .chain(self.subject.iter())
            .map(|v| v.as_ref())
    }
}

/// Parses an XFCC header into its elements, left-most first.
///
/// A blank header gives no elements. Errors: [`XfccError::TooLarge`],
/// [`XfccError::TooManyElements`], and [`XfccError::Syntax`] for an unterminated
/// quote, a pair without `=`, an empty key, a quote inside a key or an unquoted
/// value, a character after a closing quote, a dangling backslash, an empty element
/// (`a=1,,b=2` or a trailing `,`), and a repeated `Hash`/`Cert`/`Chain`/`Subject`
/// (two different answers to one question must not be resolved by guessing).
/// Spaces and tabs around separators are tolerated; an empty pair (`a=1;;b=2`, a
/// trailing `;`) is skipped.
pub fn parse(header: &str) -> Result<Vec<XfccElement<'_>>, XfccError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(XfccError::TooLarge {
            len: header.len(),
            max: MAX_HEADER_BYTES,
        });
    }
    let bytes = header.as_bytes();
    let mut elements = Vec::new();
    let mut pos = skip_ows(bytes, 0);
    if pos >= bytes.len() {
        return Ok(elements);
    }
    loop {
        if elements.len() == MAX_ELEMENTS {
            return Err(XfccError::TooManyElements { max: MAX_ELEMENTS });
        }
        let element_start = pos;
        let mut element = XfccElement::default();
        let mut seen = Seen::default();
        let mut any_pair = false;
        loop {
            pos = skip_ows(bytes, pos);
            match bytes.get(pos) {
                None | Some(b',') => break,
                Some(b';') => {
                    pos += 1;
                    continue;
                }
                Some(_) => {}
            }
            let pair = parse_pair(header, pos)?;
            any_pair = true;
            assign(&mut element, &mut seen, pair.key, pos, pair.value)?;
            pos = pair.next;
            if bytes.get(pos) == Some(&b';') {
                pos += 1;
            } else {
                break;
            }
        }
        if !any_pair {
            return Err(syntax(element_start, "empty element"));
        }
        elements.push(element);
        match bytes.get(pos) {
            None => return Ok(elements),
            Some(b',') => pos = skip_ows(bytes, pos + 1),
            Some(_) => return Err(syntax(pos, "expected ',' or ';'")),
        }
    }
}

/// Which single-valued keys an element has already set, to reject duplicates.
#[derive(Default)]
struct Seen {
    hash: bool,
    cert: bool,
    chain: bool,
    subject: bool,
}

/// One `key=value` pair and where parsing continues (at `;`, `,` or the end).
struct Pair<'a> {
    key: &'a str,
    value: Cow<'a, str>,
    next: usize,
}

fn syntax(position: usize, what: &'static str) -> XfccError {
    XfccError::Syntax { position, what }
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Skips spaces and tabs from `pos`.
fn skip_ows(bytes: &[u8], mut pos: usize) -> usize {
    while bytes.get(pos).copied().is_some_and(is_ows) {
        pos += 1;
    }
    pos
}

/// `s` without trailing spaces and tabs.
fn trim_ows_end(s: &str) -> &str {
    s.trim_end_matches([' ', '\t'])
}

/// Reads one pair starting at `start` (not at OWS, `;` or `,`). Every index used to
/// slice is the position of an ASCII delimiter, hence a char boundary; `get` keeps
/// the slicing panic-free anyway.
fn parse_pair(header: &str, start: usize) -> Result<Pair<'_>, XfccError> {
    let bytes = header.as_bytes();
    // Key: up to '='.
    let mut i = start;
    let eq = loop {
        match bytes.get(i) {
            None | Some(b';') | Some(b',') => return Err(syntax(start, "pair without '='")),
            Some(b'"') => return Err(syntax(i, "quote in a key")),
            Some(b'=') => break i,
            Some(_) => i += 1,
        }
    };
    let key = trim_ows_end(header.get(start..eq).unwrap_or(""));
    if key.is_empty() {
        return Err(syntax(start, "empty key"));
    }
    let vstart = skip_ows(bytes, eq + 1);
    if bytes.get(vstart) == Some(&b'"') {
        // Quoted value: up to the first unescaped quote.
        let mut j = vstart + 1;
        let mut escaped = false;
        let close = loop {
            match bytes.get(j) {
                None => return Err(syntax(vstart, "unterminated quote")),
                Some(b'\\') => match bytes.get(j + 1) {
                    None => return Err(syntax(j, "bad escape: backslash at the end")),
                    Some(b'"') | Some(b'\\') => {
                        escaped = true;
                        j += 2;
                    }
                    // Kept verbatim (RFC 2253 escapes like `\,`); the escaped
                    // byte may start a multi-byte char, but only ASCII is looked at.
                    Some(_) => j += 2,
                },
                Some(b'"') => break j,
                Some(_) => j += 1,
            }
        };
        let raw = header.get(vstart + 1..close).unwrap_or("");
        let next = skip_ows(bytes, close + 1);
        match bytes.get(next) {
            None | Some(b';') | Some(b',') => {}
            Some(_) => return Err(syntax(next, "unexpected character after a closing quote")),
        }
        let value = if escaped {
            Cow::Owned(unescape(raw))
        } else {
            Cow::Borrowed(raw)
        };
        Ok(Pair { key, value, next })
    } else {
        // Unquoted value: up to ';' or ','; no quotes allowed inside.
        let mut j = vstart;
        loop {
            match bytes.get(j) {
                None | Some(b';') | Some(b',') => break,
                Some(b'"') => return Err(syntax(j, "quote inside an unquoted value")),
                Some(_) => j += 1,
            }
        }
        let value = trim_ows_end(header.get(vstart..j).unwrap_or(""));
        Ok(Pair {
            key,
            value: Cow::Borrowed(value),
            next: j,
        })
    }
}

/// Replaces `\"` with `"` and `\\` with `\`; any other backslash is kept.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(e @ ('"' | '\\')) => out.push(e),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            // Unreachable: the scanner rejects a trailing backslash.
            None => out.push('\\'),
        }
    }
    out
}

/// Stores one pair in `element`. Unknown keys are ignored (Envoy may add keys in
/// future versions); empty values mean absent.
fn assign<'a>(
    element: &mut XfccElement<'a>,
    seen: &mut Seen,
    key: &str,
    key_pos: usize,
    value: Cow<'a, str>,
) -> Result<(), XfccError> {
    fn single<'a>(
        flag: &mut bool,
        slot: &mut Option<Cow<'a, str>>,
        value: Option<Cow<'a, str>>,
        key_pos: usize,
    ) -> Result<(), XfccError> {
        if std::mem::replace(flag, true) {
            return Err(syntax(key_pos, "repeated single-valued key"));
        }
        *slot = value;
        Ok(())
    }
    let present = (!value.is_empty()).then_some(value);
    if key.eq_ignore_ascii_case("by") {
        element.by.extend(present);
    } else if key.eq_ignore_ascii_case("hash") {
        single(&mut seen.hash, &mut element.hash, present, key_pos)?;
    } else if key.eq_ignore_ascii_case("cert") {
        single(&mut seen.cert, &mut element.cert, present, key_pos)?;
    } else if key.eq_ignore_ascii_case("chain") {
        single(&mut seen.chain, &mut element.chain, present, key_pos)?;
    } else if key.eq_ignore_ascii_case("subject") {
        single(&mut seen.subject, &mut element.subject, present, key_pos)?;
    } else if key.eq_ignore_ascii_case("uri") {
        element.uri.extend(present);
    } else if key.eq_ignore_ascii_case("dns") {
        element.dns.extend(present);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const REAL: &str = "Hash=4f1c0a9b;Cert=\"-----BEGIN%20CERTIFICATE-----%0AMIIB%2Bx%2F%3D%0A-----END%20CERTIFICATE-----%0A\";Chain=\"-----BEGIN%20CERTIFICATE-----%0AMIIC%0A-----END%20CERTIFICATE-----%0A\";Subject=\"CN=web,OU=eng,O=Acme\";URI=spiffe://cluster.local/ns/prod/sa/web;DNS=a;DNS=b";

    fn syntax_at(header: &str) -> (usize, &'static str) {
        match parse(header) {
            Err(XfccError::Syntax { position, what }) => (position, what),
            other => panic!("{header:?}: expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn real_envoy_header() {
        let els = parse(REAL).expect("parse");
        assert_eq!(els.len(), 1);
        let e = &els[0];
        assert_eq!(e.hash.as_deref(), Some("4f1c0a9b"));
        assert_eq!(
            e.cert.as_deref(),
            Some("-----BEGIN%20CERTIFICATE-----%0AMIIB%2Bx%2F%3D%0A-----END%20CERTIFICATE-----%0A")
        );
        assert!(e.chain.as_deref().is_some_and(|c| c.contains("MIIC")));
        assert_eq!(e.subject.as_deref(), Some("CN=web,OU=eng,O=Acme"));
        assert_eq!(e.uri, vec!["spiffe://cluster.local/ns/prod/sa/web"]);
        assert_eq!(e.dns, vec!["a", "b"]);
        assert!(e.by.is_empty());
        // Nothing needed unescaping: everything borrows from the header.
        assert!(matches!(e.subject, Some(Cow::Borrowed(_))));
        assert!(matches!(e.cert, Some(Cow::Borrowed(_))));
        assert_eq!(
            e.identities().collect::<Vec<_>>(),
            vec![
                "spiffe://cluster.local/ns/prod/sa/web",
                "a",
                "b",
                "CN=web,OU=eng,O=Acme"
            ]
        );
    }

    #[test]
    fn several_elements_left_most_first() {
        let h = "By=spiffe://gw;Hash=aa;URI=spiffe://client,By=spiffe://envoy;Hash=bb;URI=spiffe://gw;Subject=\"\"";
        let els = parse(h).expect("parse");
        assert_eq!(els.len(), 2);
        assert_eq!(els[0].by, vec!["spiffe://gw"]);
        assert_eq!(els[0].hash.as_deref(), Some("aa"));
        assert_eq!(els[0].uri, vec!["spiffe://client"]);
        assert_eq!(els[1].by, vec!["spiffe://envoy"]);
        assert_eq!(els[1].hash.as_deref(), Some("bb"));
        assert_eq!(els[1].subject, None);
    }

    #[test]
    fn separators_inside_quotes() {
        let els = parse("Subject=\"CN=a,b;c=d\";URI=x,DNS=\"p;q,r=s\"").expect("parse");
        assert_eq!(els.len(), 2);
        assert_eq!(els[0].subject.as_deref(), Some("CN=a,b;c=d"));
        assert_eq!(els[0].uri, vec!["x"]);
        assert_eq!(els[1].dns, vec!["p;q,r=s"]);
    }

    #[test]
    fn escapes_inside_quotes() {
        let els = parse(r#"Subject="CN=say \"hi\",O=back\\slash";DNS=a"#).expect("parse");
        assert_eq!(
            els[0].subject.as_deref(),
            Some(r#"CN=say "hi",O=back\slash"#)
        );
        assert!(matches!(els[0].subject, Some(Cow::Owned(_))));
        assert_eq!(els[0].dns, vec!["a"]);
        // RFC 2253 escapes other than \" and \\ are kept verbatim and borrowed.
        let els = parse(r#"Subject="CN=web,O=Acme\, Inc.\+x";URI=u"#).expect("parse");
        assert_eq!(els[0].subject.as_deref(), Some(r"CN=web,O=Acme\, Inc.\+x"));
        assert!(matches!(els[0].subject, Some(Cow::Borrowed(_))));
        // An escaped quote right before the closing one.
        let els = parse(r#"Subject="a\"""#).expect("parse");
        assert_eq!(els[0].subject.as_deref(), Some("a\""));
        // Non-ASCII after a backslash.
        let els = parse("Subject=\"CN=caf\\é\"").expect("parse");
        assert_eq!(els[0].subject.as_deref(), Some("CN=caf\\é"));
    }

    #[test]
    fn empty_values_are_absent() {
        let els = parse("Hash=;Cert=\"\";URI=;DNS=;By=;Subject=\"\"").expect("parse");
        assert_eq!(els[0], XfccElement::default());
        assert_eq!(els[0].identities().count(), 0);
    }

    #[test]
    fn unknown_keys_and_case() {
        let els =
            parse("hAsH=ab;Future=\"x,y\";uri=u1;URI=u2;dns=d;by=b;SUBJECT=\"s\"").expect("parse");
        let e = &els[0];
        assert_eq!(e.hash.as_deref(), Some("ab"));
        assert_eq!(e.uri, vec!["u1", "u2"]);
        assert_eq!(e.dns, vec!["d"]);
        assert_eq!(e.by, vec!["b"]);
        assert_eq!(e.subject.as_deref(), Some("s"));
        // An element of only unknown keys is a valid, empty element.
        assert_eq!(parse("X=1").expect("parse"), vec![XfccElement::default()]);
    }

    #[test]
    fn unquoted_value_may_contain_equals() {
        let els = parse("URI=https://x/?a=b&c=d;DNS=e").expect("parse");
        assert_eq!(els[0].uri, vec!["https://x/?a=b&c=d"]);
    }

    #[test]
    fn whitespace_around_separators() {
        let els =
            parse("  Hash=aa ; URI=u1 ,\tHash=bb;\tDNS=\"d\"  ;Subject = \"s\" ").expect("parse");
        assert_eq!(els.len(), 2);
        assert_eq!(els[0].hash.as_deref(), Some("aa"));
        assert_eq!(els[0].uri, vec!["u1"]);
        assert_eq!(els[1].hash.as_deref(), Some("bb"));
        assert_eq!(els[1].dns, vec!["d"]);
        assert_eq!(els[1].subject.as_deref(), Some("s"));
    }

    #[test]
    fn blank_header_and_empty_pairs() {
        assert_eq!(parse("").expect("parse"), vec![]);
        assert_eq!(parse("  \t ").expect("parse"), vec![]);
        let els = parse("Hash=a;;URI=u;").expect("parse");
        assert_eq!(els[0].hash.as_deref(), Some("a"));
        assert_eq!(els[0].uri, vec!["u"]);
    }

    #[test]
    fn odd_quoting_is_an_error() {
        assert_eq!(syntax_at("Subject=\"CN=a"), (8, "unterminated quote"));
        assert_eq!(syntax_at("Subject=\"CN=a\\\""), (8, "unterminated quote"));
        assert_eq!(
            syntax_at("URI=ab\"c\""),
            (6, "quote inside an unquoted value")
        );
        assert_eq!(
            syntax_at("Subject=\"a\"b;URI=u"),
            (11, "unexpected character after a closing quote")
        );
        assert_eq!(
            syntax_at("Subject=\"a\" \"b\""),
            (12, "unexpected character after a closing quote")
        );
        assert_eq!(syntax_at("\"Hash\"=a"), (0, "quote in a key"));
        assert_eq!(
            syntax_at("Subject=\"a\\"),
            (10, "bad escape: backslash at the end")
        );
    }

    #[test]
    fn structural_errors() {
        assert_eq!(syntax_at("Hash"), (0, "pair without '='"));
        assert_eq!(syntax_at("Hash=a;URI"), (7, "pair without '='"));
        assert_eq!(syntax_at("Hash=a;URI,DNS=b"), (7, "pair without '='"));
        assert_eq!(syntax_at("=a"), (0, "empty key"));
        assert_eq!(syntax_at("Hash=a,,URI=b"), (7, "empty element"));
        assert_eq!(syntax_at("Hash=a,"), (7, "empty element"));
        assert_eq!(syntax_at(",Hash=a"), (0, "empty element"));
        assert_eq!(parse("Hash=a;;,URI=b").expect("parse").len(), 2);
        assert_eq!(
            syntax_at("Hash=a;Hash=b"),
            (7, "repeated single-valued key")
        );
        assert_eq!(
            syntax_at("Cert=\"\";cert=x"),
            (8, "repeated single-valued key")
        );
    }

    #[test]
    fn limits() {
        let big = format!("URI={}", "a".repeat(1024 * 1024));
        let t = Instant::now();
        assert_eq!(
            parse(&big),
            Err(XfccError::TooLarge {
                len: big.len(),
                max: MAX_HEADER_BYTES
            })
        );
        assert!(t.elapsed() < Duration::from_millis(50));

        let sixteen = vec!["Hash=a"; 16].join(",");
        assert_eq!(parse(&sixteen).expect("16 ok").len(), 16);
        let seventeen = vec!["Hash=a"; 17].join(",");
        assert_eq!(
            parse(&seventeen),
            Err(XfccError::TooManyElements { max: MAX_ELEMENTS })
        );
    }

    #[test]
    fn max_size_header_parses_in_linear_time() {
        // Worst cases near the limit: one huge quoted value full of escapes, and a
        // huge run of empty pairs.
        let escapes = format!("Subject=\"{}\"", "\\\"".repeat((MAX_HEADER_BYTES - 16) / 2));
        let semis = format!("Hash=a{}", ";".repeat(MAX_HEADER_BYTES - 16));
        let t = Instant::now();
        assert!(parse(&escapes).is_ok());
        assert!(parse(&semis).is_ok());
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // A small deterministic fuzz over the characters that matter.
        let alphabet = ['a', '=', ';', ',', '"', '\\', ' ', 'é', 'H'];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            let mut s = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            if let Ok(els) = parse(&s) {
                assert!(els.len() <= MAX_ELEMENTS);
            }
        }
    }

    #[test]
    fn errors_have_messages() {
        for e in [
            XfccError::TooLarge { len: 2, max: 1 },
            XfccError::TooManyElements { max: 16 },
            XfccError::Syntax {
                position: 3,
                what: "x",
            },
        ] {
            assert!(!e.to_string().is_empty());
        }
    }
}
