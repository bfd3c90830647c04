//! Configuration errors that point at the exact spot an operator has to fix:
//! `file:line:column: field: message`, the shape editors and CI logs link to.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in one configuration file (global config, role file, certificate file or
/// CRL). A load collects all of them so that one `validate` run shows every mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in (as it was found, e.g. the `roles/web.yaml` symlink of a
    /// Kubernetes ConfigMap mount, not its `..data/` target: that is the name people know).
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column in characters, when known.
    pub column: Option<usize>,
    /// The field the problem is about, when there is one.
    pub field: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

impl ConfigError {
    /// An error about a whole file (unreadable, too large, duplicate role name, ...).
    pub fn in_file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.into(),
            line: None,
            column: None,
            field: None,
            message: message.into(),
        }
    }

    /// Names the field the error is about.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Sets the 1-based position; a `0` means unknown (some parsers use it that way).
    #[must_use]
    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.line = (line > 0).then_some(line);
        self.column = (line > 0 && column > 0).then_some(column);
        self
    }

    /// Sets the position from [`locate_field`] on `text`, leaving it unknown when the key
    /// is not written in the file (e.g. a role name that came from the file stem).
    #[must_use]
    pub fn located_in(self, text: &str, field: &str) -> Self {
        match locate_field(text, field) {
            Some((line, column)) => self.at(line, column),
            None => self,
        }
    }

    /// The file name as displayed.
    pub fn file(&self) -> &Path {
        &self.file
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The 1-based line and column of the first place `field` is written as a key in YAML
/// (`field:`), TOML (`field =`) or JSON (`"field":`) text, quoted or not.
///
/// Parsers only know positions while parsing; problems found afterwards (a bad glob, a
/// certificate that does not parse, a duplicate role name) use this to point at the key
/// anyway. It is a textual scan, so it finds the first key of that name at any depth,
/// skips comment lines and values that merely contain the word, and returns `None` when
/// the key is not in the text.
pub fn locate_field(text: &str, field: &str) -> Option<(usize, usize)> {
    if field.is_empty() {
        return None;
    }
    text.lines().enumerate().find_map(|(idx, line)| {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || trimmed.starts_with("//") {
            return None;
        }
        key_column_in_line(line, field).map(|col| (idx + 1, col))
    })
}

/// The 1-based column (in characters) of `field` written as a key on `line`, if it is.
/// For a quoted key the column is that of the opening quote.
pub(crate) fn key_column_in_line(line: &str, field: &str) -> Option<usize> {
    let mut search_from = 0;
    while let Some(rel) = line.get(search_from..).and_then(|rest| rest.find(field)) {
        let start = search_from + rel;
        let end = start + field.len();
        search_from = end;
        let before = &line[..start];
        let after = &line[end..];
        // An optional quote around the key; it must be closed right after the name.
        let (quote, key_start) = match before.chars().next_back() {
            Some(q @ ('"' | '\'')) => (Some(q), start - 1),
            _ => (None, start),
        };
        let after = match quote {
            Some(q) => match after.strip_prefix(q) {
                Some(rest) => rest,
                None => continue,
            },
            None => after,
        };
        // What precedes the key must end a token: line start, indentation, `- ` of a
        // YAML list item, or `{` / `,` of a flow mapping or inline table.
        let prefix = &line[..key_start];
        let preceded_ok = match prefix.chars().next_back() {
            None => true,
            Some(c) => c.is_whitespace() || c == '{' || c == ',',
        };
        if !preceded_ok {
            continue;
        }
        // No key characters may continue the name (`name` must not match `names:`).
        if quote.is_none()
            && after
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            continue;
        }
        let after = after.trim_start();
        let separator_ok = match after.chars().next() {
            Some(':') => {
                // YAML needs a space or the end after `:`; JSON allows anything.
                let rest = &after[1..];
                quote.is_some() || rest.is_empty() || rest.starts_with(char::is_whitespace)
            }
            Some('=') => !after[1..].starts_with('='),
            _ => false,
        };
        if separator_ok {
            return Some(line[..key_start].chars().count() + 1);
        }
    }
    None
}

/// Turns a byte offset in `text` into a 1-based (line, column-in-characters) pair.
pub(crate) fn line_col_of_offset(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_omits_absent_parts() {
        let e = ConfigError::in_file("roles/web.yaml", "bad");
        assert_eq!(e.to_string(), "roles/web.yaml: bad");
        let e = e.with_field("token_ttl").at(3, 12);
        assert_eq!(e.to_string(), "roles/web.yaml:3:12: token_ttl: bad");
        let e = ConfigError::in_file("a.toml", "x").at(0, 5);
        assert_eq!(e.to_string(), "a.toml: x");
    }

    #[test]
    fn locates_keys_in_all_formats() {
        let yaml = "# name: no\ndisplay_name: \"name: x\"\nnames: 1\n  name: web\n";
        assert_eq!(locate_field(yaml, "name"), Some((4, 3)));
        let toml = "a = 1\n  name = \"web\"\n";
        assert_eq!(locate_field(toml, "name"), Some((2, 3)));
        let json = "{\n  \"display_name\": \"x\",\n  \"name\": \"web\"\n}";
        assert_eq!(locate_field(json, "name"), Some((3, 3)));
        assert_eq!(locate_field("{\"name\":1}", "name"), Some((1, 2)));
        assert_eq!(locate_field("- name: a", "name"), Some((1, 3)));
        assert_eq!(locate_field("x: {name: a}", "name"), Some((1, 5)));
        assert_eq!(locate_field("url: http://name:80", "name"), None);
        assert_eq!(locate_field("a == name", "name"), None);
    }

    #[test]
    fn offsets_to_line_col() {
        let t = "ab\ncdé\nf";
        assert_eq!(line_col_of_offset(t, 0), (1, 1));
        assert_eq!(line_col_of_offset(t, 3), (2, 1));
        assert_eq!(line_col_of_offset(t, 8), (3, 1));
        assert_eq!(line_col_of_offset(t, 6), (2, 3));
        assert_eq!(line_col_of_offset(t, 100), (3, 2));
    }
}
