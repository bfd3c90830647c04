//! Vault's glob semantics, ported from `github.com/ryanuber/go-glob`.
//!
//! Role files are copied from Vault and OpenBao, whose `allowed_*` fields are matched
//! with go-glob. A pattern that allows a name there must allow exactly the same names
//! here, so this is a literal port rather than a "better" glob:
//!
//! - only `*` is special; it matches any run of characters, including the empty run
//!   and `.`, `/` and `@` (so `*.example.com` also matches `a.b.example.com`);
//! - there is no escaping, no `?`, no character classes;
//! - matching is byte-wise and case-sensitive;
//! - the empty pattern matches only the empty value.
//!
//! go-glob never backtracks: each literal part is matched at its *first* occurrence
//! after the previous one, and only the last part is anchored at the end. That is
//! what Vault does, including its corner cases (`a*a` matches `aa` but not `a`), and
//! the property test at the bottom pins this against a transliteration of the Go code.

/// How one compiled pattern matches, decided once at construction so that matching
/// allocates nothing and skips the split on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// The pattern is exactly `*`: everything matches, including `""`.
    Any,
    /// No `*` at all (this includes the empty pattern): plain equality.
    Exact,
    /// At least one `*` and something else: the go-glob walk over the parts.
    Parts {
        /// The pattern split at every `*` (as Go's `strings.Split`), so there are
        /// always at least two parts; leading/trailing ones may be empty.
        parts: Box<[Box<str>]>,
        /// The pattern starts with `*`: the first part need not be at offset 0.
        leading: bool,
        /// The pattern ends with `*`: the last part need not be a suffix.
        trailing: bool,
    },
}

/// One compiled go-glob pattern.
///
/// Roles are compiled once per reload and matched on every request, so the pattern
/// is split here and [`Glob::matches`] only walks the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Box<str>,
    kind: Kind,
}

impl Glob {
    /// Compiles `pattern`. Every string is a valid pattern, so this cannot fail.
    pub fn new(pattern: &str) -> Glob {
        let kind = if pattern == "*" {
            Kind::Any
        } else if !pattern.contains('*') {
            Kind::Exact
        } else {
            Kind::Parts {
                parts: pattern.split('*').map(Box::from).collect(),
                leading: pattern.starts_with('*'),
                trailing: pattern.ends_with('*'),
            }
        };
        Glob {
            pattern: Box::from(pattern),
            kind,
        }
    }

    /// The pattern as written, for error messages, audit and the read API.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `value` matches, with exactly go-glob's result.
    pub fn matches(&self, value: &str) -> bool {
        match &self.kind {
            Kind::Any => true,
            Kind::Exact => value == &*self.pattern,
            Kind::Parts {
                parts,
                leading,
                trailing,
            } => match_parts(parts, *leading, *trailing, value),
        }
    }
}

impl std::fmt::Display for Glob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.pattern)
    }
}

/// The body of go-glob's loop. `parts` has at least two entries (the pattern has a
/// `*`); an empty `parts` cannot come from [`Glob::new`] and matches nothing.
fn match_parts(parts: &[Box<str>], leading: bool, trailing: bool, value: &str) -> bool {
    let Some((last, init)) = parts.split_last() else {
        return false;
    };
    let mut subj = value;
    for (i, part) in init.iter().enumerate() {
        let part: &str = part;
        // Go's strings.Index: the first occurrence, 0 for an empty part.
        let Some(idx) = subj.find(part) else {
            // idx == -1: in Go, case 0 without a leading glob fails on idx != 0,
            // and any later part fails on idx < 0. With a leading glob the first
            // part is "" and is always found, so every miss is a failure.
            return false;
        };
        if i == 0 && !leading && idx != 0 {
            return false;
        }
        // `find` returns a char boundary and `part` is a whole str, so this slice
        // is in bounds and on a boundary; `get` keeps it panic-free regardless.
        match subj.get(idx + part.len()..) {
            Some(rest) => subj = rest,
            None => return false,
        }
    }
    trailing || subj.ends_with(&**last)
}

/// Whether `value` matches `pattern` under go-glob semantics.
///
/// Convenience for one-off checks; compile a [`Glob`] or [`GlobSet`] for anything
/// matched per request.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    Glob::new(pattern).matches(value)
}

/// The patterns of one role field (`allowed_dns_sans`, `trusted_proxies`, ...).
///
/// Vault's rule for a field is "any pattern matches any value"; an empty set matches
/// nothing, and it is the caller's job to treat an empty list as "unconstrained"
/// (spec §2), because that decision belongs to the field, not to the matcher.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobSet {
    globs: Vec<Glob>,
}

impl GlobSet {
    /// Compiles every pattern, keeping their order (for display and audit).
    pub fn new<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        GlobSet {
            globs: patterns
                .into_iter()
                .map(|p| Glob::new(p.as_ref()))
                .collect(),
        }
    }

    /// True when the set has no pattern (the field is unconstrained).
    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    /// The number of patterns.
    pub fn len(&self) -> usize {
        self.globs.len()
    }

    /// Whether any pattern matches `value`. An empty set matches nothing.
    pub fn matches(&self, value: &str) -> bool {
        self.globs.iter().any(|g| g.matches(value))
    }

    /// Whether any pattern matches any of `values` (Vault's per-field rule: one SAN
    /// that fits one pattern is enough). An empty set matches nothing.
    pub fn matches_any<'a>(&self, values: impl IntoIterator<Item = &'a str>) -> bool {
        if self.globs.is_empty() {
            return false;
        }
        values.into_iter().any(|v| self.matches(v))
    }

    /// The patterns as written, in order.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.globs.iter().map(Glob::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            // Vault's documented wildcard behaviour.
            ("*.example.com", "example.com", false),
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "a.b.example.com", true),
            ("*.example.com", "valid@example.com", false),
            ("*.example.com", "x@a.example.com", true),
            ("*ample.com", "example.com", true),
            ("eng*", "engineering", true),
            ("eng*", "eng", true),
            ("eng*", "en", false),
            ("eng*", "xeng", false),
            // Empty pattern and empty value.
            ("", "", true),
            ("", "a", false),
            ("a", "", false),
            ("a*", "", false),
            ("*a", "", false),
            // `*` alone.
            ("*", "", true),
            ("*", "anything at all", true),
            ("*", "spiffe://x/y@z", true),
            // Case-sensitive.
            ("*.Example.com", "a.example.com", false),
            ("*.example.com", "A.EXAMPLE.COM", false),
            ("CN", "cn", false),
            // `*` crosses `.`, `/` and `@`.
            (
                "spiffe://cluster.local/ns/*",
                "spiffe://cluster.local/ns/prod/sa/web",
                true,
            ),
            (
                "spiffe://cluster.local/ns/*/sa/web",
                "spiffe://cluster.local/ns/prod/sa/web",
                true,
            ),
            (
                "spiffe://cluster.local/ns/*/sa/web",
                "spiffe://cluster.local/ns/prod/sa/api",
                false,
            ),
            ("*@example.com", "user@example.com", true),
            ("user@*", "user@a.b.c", true),
            // Several stars.
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("a*b*c", "acb", false),
            ("a*b*c", "abcabc", true),
            ("*a*", "bab", true),
            ("*a*", "bbb", false),
            ("**", "", true),
            ("a**b", "ab", true),
            ("*.*.*", "a.b.c", true),
            ("*.*.*", "a.b", false),
            // go-glob's first-occurrence walk: the last part is anchored at the end
            // of what remains after the earlier parts.
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("a*ab", "aab", true),
            ("*ab*b", "abab", true),
            // No star: equality.
            ("example.com", "example.com", true),
            ("example.com", "example.co", false),
            ("example.com", "www.example.com", false),
            // Non-ASCII values never panic and match byte-wise.
            ("*é", "café", true),
            ("ca*", "café", true),
            ("*ü*", "café", false),
        ];
        for &(pattern, value, want) in cases {
            assert_eq!(
                glob_match(pattern, value),
                want,
                "glob_match({pattern:?}, {value:?})"
            );
        }
    }

    #[test]
    fn glob_accessors() {
        let g = Glob::new("*.example.com");
        assert_eq!(g.as_str(), "*.example.com");
        assert_eq!(g.to_string(), "*.example.com");
        assert!(g.matches("a.example.com"));
        assert_eq!(Glob::new(""), Glob::new(""));
    }

    #[test]
    fn glob_set() {
        let empty = GlobSet::default();
        assert!(empty.is_empty());
        assert_eq!(empty.len(), 0);
        assert!(!empty.matches(""));
        assert!(!empty.matches_any(["a", ""]));

        let set = GlobSet::new(["*.example.com", "spiffe://cluster.local/ns/*"]);
        assert!(!set.is_empty());
        assert_eq!(set.len(), 2);
        assert_eq!(
            set.patterns().collect::<Vec<_>>(),
            vec!["*.example.com", "spiffe://cluster.local/ns/*"]
        );
        assert!(set.matches("a.example.com"));
        assert!(set.matches("spiffe://cluster.local/ns/prod/sa/web"));
        assert!(!set.matches("example.com"));
        assert!(set.matches_any(["nope", "b.example.com"]));
        assert!(!set.matches_any(["nope", "example.com"]));
        assert!(!set.matches_any(std::iter::empty::<&str>()));

        let owned = GlobSet::new(vec![String::from("eng*")]);
        assert!(owned.matches("engineering"));
    }

    /// A literal transliteration of go-glob's `Glob`, with Go's `int` indexes, kept
    /// deliberately naive so that it can be read side by side with the Go source.
    fn reference(pattern: &str, subj: &str) -> bool {
        fn index(s: &str, sub: &str) -> i64 {
            match s.find(sub) {
                Some(i) => i64::try_from(i).unwrap_or(i64::MAX),
                None => -1,
            }
        }
        if pattern.is_empty() {
            return subj == pattern;
        }
        if pattern == "*" {
            return true;
        }
        let parts: Vec<&str> = pattern.split('*').collect();
        if parts.len() == 1 {
            return subj == pattern;
        }
        let leading_glob = pattern.starts_with('*');
        let trailing_glob = pattern.ends_with('*');
        let end = parts.len() - 1;
        let mut subj = subj;
        for (i, part) in parts.iter().enumerate().take(end) {
            let idx = index(subj, part);
            match i {
                0 => {
                    if !leading_glob && idx != 0 {
                        return false;
                    }
                }
                _ => {
                    if idx < 0 {
                        return false;
                    }
                }
            }
            let from = usize::try_from(idx).expect("idx >= 0 here") + part.len();
            subj = &subj[from..];
        }
        trailing_glob || subj.ends_with(parts[end])
    }

    /// xorshift64*: deterministic, dependency-free, good enough to spread cases.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn string(&mut self, alphabet: &[u8], max_len: u64) -> String {
            let len = self.below(max_len + 1);
            (0..len)
                .map(|_| {
                    let i = usize::try_from(self.below(alphabet.len() as u64)).unwrap_or(0);
                    char::from(alphabet[i])
                })
                .collect()
        }
    }

    #[test]
    fn matches_go_reference_on_random_inputs() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut matched = 0usize;
        for _ in 0..20_000 {
            let pattern = rng.string(b"ab.*", 6);
            let value = rng.string(b"ab.*", 8);
            let want = reference(&pattern, &value);
            assert_eq!(
                glob_match(&pattern, &value),
                want,
                "pattern {pattern:?} value {value:?}"
            );
            assert_eq!(Glob::new(&pattern).matches(&value), want);
            matched += usize::from(want);
        }
        // Both outcomes must be well represented, or the test proves little.
        assert!(matched > 1_000, "only {matched} matches");
        assert!(matched < 19_000, "{matched} matches");
    }
}
