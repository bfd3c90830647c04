//! Reading the global config, the role files and the CRL files from disk.
//!
//! Everything here is defensive about file content: files are size-capped before they are
//! read, YAML alias expansion is budgeted, and every problem becomes a [`ConfigError`]
//! (never a panic), so a bad ConfigMap can only ever be rejected.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_saphyr::MessageFormatter as _;

use super::error::{ConfigError, key_column_in_line, line_col_of_offset};
use super::schema::{GlobalConfig, RoleSpec};

/// Largest global config file read. Real configs are a few KiB; the cap keeps a wrong
/// path (a log file, a disk image) from being slurped into memory.
pub const CONFIG_FILE_LIMIT: u64 = 1 << 20;
/// Largest role file, or `certificate_file`, read. A bundle of a hundred CA certificates
/// is about 200 KiB.
pub const ROLE_FILE_LIMIT: u64 = 1 << 20;
/// Largest CRL file read. Big CAs publish CRLs of tens of MiB.
pub const CRL_FILE_LIMIT: u64 = 64 << 20;

/// Most YAML events that alias expansion may replay in one file: far above what any role
/// file needs and far below what a "billion laughs" file asks for, so such a file is
/// rejected in milliseconds instead of exhausting memory.
const YAML_MAX_ALIAS_REPLAY: usize = 20_000;

/// Deepest `[`/`{` nesting accepted in TOML and JSON. Role files nest two levels; the
/// parsers recurse per level, so a megabyte of `[` must not reach them.
const MAX_NESTING: usize = 64;

/// The global config, every role and every CRL, read and parsed but not yet interpreted.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The global settings (defaults for everything the file leaves out).
    pub global: GlobalConfig,
    /// The config file, if any (`certgate serve` with no file runs on defaults and `./roles`).
    pub config_path: Option<PathBuf>,
    /// Directory relative paths resolve against: the config file's directory, else the CWD.
    pub base_dir: PathBuf,
    /// Resolved `roles_dir` (absolute or base_dir-joined).
    pub roles_dir: PathBuf,
    /// Resolved `crls_dir` (absolute or base_dir-joined).
    pub crls_dir: PathBuf,
    /// Roles sorted by name.
    pub roles: Vec<LoadedRole>,
    /// CRL files sorted by name.
    pub crls: Vec<CrlFile>,
    /// SHA-256 over every path and content read (sorted), so a reload can tell "nothing changed".
    pub fingerprint: [u8; 32],
    /// The global file's text as read, kept to locate fields in semantic errors (the
    /// file may have changed since; re-reading it would point at the wrong line).
    pub config_text: Option<String>,
}

impl LoadedConfig {
    /// An error about a global field: the config file (or `<defaults>`), the field, and
    /// its line and column when the file names it.
    pub fn field_error(&self, field: &str, message: impl Into<String>) -> ConfigError {
        let file = self
            .config_path
            .clone()
            .unwrap_or_else(|| PathBuf::from("<defaults>"));
        let error = ConfigError::in_file(file, message).with_field(field);
        match &self.config_text {
            Some(text) => error.located_in(text, field),
            None => error,
        }
    }

    /// The configuration `certgate serve` runs on without a config file and without a
    /// roles directory: defaults everywhere, no roles, no CRLs, paths under `base_dir`.
    /// Useful for tests and for callers that build roles in memory.
    pub fn with_defaults(base_dir: PathBuf) -> LoadedConfig {
        let global = GlobalConfig::default();
        LoadedConfig {
            roles_dir: base_dir.join(&global.roles_dir),
            crls_dir: base_dir.join(&global.crls_dir),
            global,
            config_path: None,
            base_dir,
            roles: Vec::new(),
            crls: Vec::new(),
            fingerprint: Fingerprint::default().finish(),
            config_text: None,
        }
    }
}

/// One role file, parsed.
#[derive(Debug, Clone)]
pub struct LoadedRole {
    /// Lower-cased: `name` field or file stem.
    pub name: String,
    /// The file as found in roles_dir (for a ConfigMap mount: the symlink's path).
    pub path: PathBuf,
    /// The file's text, kept to locate fields in semantic errors.
    pub text: String,
    /// The parsed fields.
    pub spec: RoleSpec,
    /// The role's certificates as PEM text, from `certificate` (PEM, or base64 of PEM as
    /// Akeyless/OpenBao send it) or `certificate_file` (relative to the role file's
    /// directory; both set = error). Re-encoded from the parsed blocks, so it holds only
    /// `CERTIFICATE` blocks.
    pub certificate_pem: Option<String>,
    /// `ocsp_ca_certificates` the same way (PEM or base64 of PEM).
    pub ocsp_ca_pem: Option<String>,
}

impl LoadedRole {
    /// An error about `field` of this role, pointing at the line and column where the
    /// field is written (no position when it is not written, e.g. a defaulted field).
    pub fn field_error(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::in_file(&self.path, message)
            .with_field(field)
            .located_in(&self.text, field)
    }
}

/// One CRL file from `crls_dir`.
#[derive(Debug, Clone)]
pub struct CrlFile {
    /// The file stem: the CRL's name in listings and the read API.
    pub name: String,
    /// The file as found in crls_dir.
    pub path: PathBuf,
    /// DER; PEM files (one `X509 CRL` block) are decoded. Only the outer shape is checked
    /// here; signature and content are the revocation module's business.
    pub der: Vec<u8>,
}

/// Reads the global file (YAML `.yaml`/`.yml`, TOML `.toml`, JSON `.json`), every role
/// file in roles_dir (`*.yaml`, `*.yml`, `*.toml`, `*.json`, non-recursive, following
/// symlinks to regular files and skipping dotfiles, `..`-prefixed Kubernetes ConfigMap
/// internals and directories) and every CRL in crls_dir (`*.pem`, `*.crl`).
///
/// A missing crls_dir means no CRLs. A missing roles_dir is an error, except when no
/// config file was given and the default `./roles` is absent: then there are no roles.
/// All errors are collected, not just the first, so one run shows every mistake.
pub fn load(config_path: Option<&Path>) -> Result<LoadedConfig, Vec<ConfigError>> {
    load_with_fingerprint(config_path).0
}

/// [`load`], plus the fingerprint of whatever was read even when loading failed, so the
/// reloader can tell "the same broken files again" from a new problem.
pub(crate) fn load_with_fingerprint(
    config_path: Option<&Path>,
) -> (Result<LoadedConfig, Vec<ConfigError>>, [u8; 32]) {
    let mut loader = Loader::default();
    let loaded = loader.run(config_path);
    let fingerprint = loader.fingerprint.finish();
    match loaded {
        Some(mut loaded) if loader.errors.is_empty() => {
            loaded.fingerprint = fingerprint;
            (Ok(loaded), fingerprint)
        }
        _ => {
            if loader.errors.is_empty() {
                // Defensive: a failed load always explains itself.
                loader.errors.push(ConfigError::in_file(
                    config_path.unwrap_or(Path::new(".")),
                    "configuration could not be loaded",
                ));
            }
            (Err(loader.errors), fingerprint)
        }
    }
}

// === the loader ===

/// The three file formats, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Yaml,
    Toml,
    Json,
}

impl Format {
    /// The format of a role or config file, by its (case-insensitive) extension.
    fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// SHA-256 over (path, content digest) pairs, order-independent because the pairs are
/// sorted before hashing.
#[derive(Default)]
struct Fingerprint {
    entries: Vec<(Vec<u8>, Option<[u8; 32]>)>,
}

impl Fingerprint {
    /// Records a file's content, or its absence / unreadability (`None`).
    fn add(&mut self, path: &Path, content: Option<&[u8]>) {
        let digest = content.map(sha256);
        self.entries
            .push((path.as_os_str().as_encoded_bytes().to_vec(), digest));
    }

    fn finish(&self) -> [u8; 32] {
        let mut entries: Vec<&(Vec<u8>, Option<[u8; 32]>)> = self.entries.iter().collect();
        entries.sort();
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for (path, digest) in entries {
            ctx.update(&(path.len() as u64).to_be_bytes());
            ctx.update(path);
            match digest {
                Some(d) => {
                    ctx.update(&[1]);
                    ctx.update(d);
                }
                None => ctx.update(&[0]),
            }
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    out
}

/// Accumulates errors and the fingerprint across one load.
#[derive(Default)]
struct Loader {
    errors: Vec<ConfigError>,
    fingerprint: Fingerprint,
}

/// Where a file came from, for error attribution.
struct Origin<'a> {
    file: &'a Path,
    text: &'a str,
    field: &'a str,
}

impl Loader {
    fn run(&mut self, config_path: Option<&Path>) -> Option<LoadedConfig> {
        let cwd = match std::env::current_dir() {
            Ok(cwd) => cwd,
            Err(e) => {
                self.errors.push(ConfigError::in_file(
                    ".",
                    format!("cannot determine the working directory: {e}"),
                ));
                return None;
            }
        };

        let (global, config_path, config_text, base_dir) = match config_path {
            Some(path) => {
                let path = cwd.join(path);
                let base_dir = path.parent().map_or_else(|| cwd.clone(), Path::to_path_buf);
                let global_text = self.read_global(&path)?;
                let global = match global_text.as_deref() {
                    None => GlobalConfig::default(),
                    Some(text) => {
                        let format = Format::of(&path)?;
                        match parse::<GlobalConfig>(&path, text, format) {
                            Ok(global) => global,
                            Err(e) => {
                                self.errors.push(e);
                                return None;
                            }
                        }
                    }
                };
                (global, Some(path), global_text, base_dir)
            }
            None => (GlobalConfig::default(), None, None, cwd),
        };

        let roles_dir = base_dir.join(&global.roles_dir);
        let crls_dir = base_dir.join(&global.crls_dir);
        let config_origin = config_path.as_deref().map(|file| Origin {
            file,
            text: config_text.as_deref().unwrap_or(""),
            field: "",
        });

        let roles_allowed_missing =
            config_path.is_none() && global.roles_dir == GlobalConfig::default().roles_dir;
        let roles = match self.list_dir(
            &roles_dir,
            &["yaml", "yml", "toml", "json"],
            roles_allowed_missing,
            config_origin.as_ref().map(|o| Origin {
                field: "roles_dir",
                ..*o
            }),
        ) {
            Some(files) => self.load_roles(&files),
            None => Vec::new(),
        };
        let crls = match self.list_dir(
            &crls_dir,
            &["pem", "crl"],
            true,
            config_origin.as_ref().map(|o| Origin {
                field: "crls_dir",
                ..*o
            }),
        ) {
            Some(files) => self.load_crls(&files),
            None => Vec::new(),
        };

        Some(LoadedConfig {
            global,
            config_path,
            base_dir,
            roles_dir,
            crls_dir,
            roles,
            crls,
            fingerprint: [0; 32],
            config_text,
        })
    }

    /// Reads the global config file; `Some(None)` when it holds nothing but comments
    /// (every field has a default, so that is a valid config).
    fn read_global(&mut self, path: &Path) -> Option<Option<String>> {
        if Format::of(path).is_none() {
            self.errors.push(ConfigError::in_file(
                path,
                "unsupported config file extension: use .yaml, .yml, .toml or .json",
            ));
            return None;
        }
        let text = match self.read_text(path, CONFIG_FILE_LIMIT) {
            Ok(text) => text,
            Err(e) => {
                self.errors.push(e);
                return None;
            }
        };
        let format = Format::of(path)?;
        Some((!is_effectively_empty(&text, format)).then_some(text))
    }

    /// The files with one of `exts` directly in `dir`, sorted by name. `None` when the
    /// directory is missing (an error unless `missing_ok`) or unreadable.
    fn list_dir(
        &mut self,
        dir: &Path,
        exts: &[&str],
        missing_ok: bool,
        origin: Option<Origin<'_>>,
    ) -> Option<Vec<PathBuf>> {
        let dir_error = |message: String| match &origin {
            Some(o) => ConfigError::in_file(o.file, message)
                .with_field(o.field)
                .located_in(o.text, o.field),
            None => ConfigError::in_file(dir, message),
        };
        match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                self.errors
                    .push(dir_error(format!("{} is not a directory", dir.display())));
                return None;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The absence is part of the state: creating the directory is a change.
                self.fingerprint.add(dir, None);
                if !missing_ok {
                    self.errors.push(dir_error(format!(
                        "directory {} does not exist",
                        dir.display()
                    )));
                }
                return None;
            }
            Err(e) => {
                self.errors
                    .push(dir_error(format!("cannot read {}: {e}", dir.display())));
                return None;
            }
        }
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.errors
                    .push(dir_error(format!("cannot list {}: {e}", dir.display())));
                return None;
            }
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.errors
                        .push(dir_error(format!("cannot list {}: {e}", dir.display())));
                    continue;
                }
            };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Dotfiles are editor swap files and the like; `..data` and `..2026_...` are
            // a ConfigMap mount's internals, reached through the top-level symlinks.
            if name.starts_with('.') {
                continue;
            }
            let Some((_, ext)) = name.rsplit_once('.') else {
                continue;
            };
            if !exts.iter().any(|e| ext.eq_ignore_ascii_case(e)) {
                continue;
            }
            let path = entry.path();
            // `metadata` follows symlinks: a ConfigMap's `web.yaml -> ..data/web.yaml`
            // counts as the regular file it points to.
            match fs::metadata(&path) {
                Ok(meta) if meta.is_file() => files.push(path),
                Ok(_) => {} // directories, sockets, FIFOs (opening a FIFO would block)
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // A dangling symlink: in a ConfigMap mount this is the moment between
                    // the `..data` swap and the kubelet removing a deleted key's link.
                    tracing::debug!(path = %path.display(), "skipping dangling symlink");
                }
                Err(e) => self
                    .errors
                    .push(ConfigError::in_file(&path, format!("cannot read: {e}"))),
            }
        }
        files.sort();
        Some(files)
    }

    fn load_roles(&mut self, files: &[PathBuf]) -> Vec<LoadedRole> {
        let mut roles: Vec<LoadedRole> = Vec::new();
        let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in files {
            let Some(role) = self.load_role(path) else {
                continue;
            };
            if let Some(first) = by_name.get(&role.name) {
                let message = format!(
                    "role name `{}` is already used by {}; role names must be unique",
                    role.name,
                    first.display()
                );
                let error = if role.spec.name.is_some() {
                    role.field_error("name", message)
                } else {
                    ConfigError::in_file(&role.path, message)
                };
                self.errors.push(error);
                continue;
            }
            by_name.insert(role.name.clone(), role.path.clone());
            roles.push(role);
        }
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        roles
    }

    fn load_role(&mut self, path: &Path) -> Option<LoadedRole> {
        let format = Format::of(path)?;
        let text = match self.read_text(path, ROLE_FILE_LIMIT) {
            Ok(text) => text,
            Err(e) => {
                self.errors.push(e);
                return None;
            }
        };
        if is_effectively_empty(&text, format) {
            self.errors.push(ConfigError::in_file(
                path,
                "empty role file: a role needs at least a certificate",
            ));
            return None;
        }
        let spec = match parse::<RoleSpec>(path, &text, format) {
            Ok(spec) => spec,
            Err(e) => {
                self.errors.push(e);
                return None;
            }
        };

        let from_field: Option<String> = spec
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        let name = match &from_field {
            Some(name) => name.to_lowercase(),
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().to_lowercase())
                .unwrap_or_default(),
        };
        let mut role = LoadedRole {
            name,
            path: path.to_path_buf(),
            text,
            spec,
            certificate_pem: None,
            ocsp_ca_pem: None,
        };
        let mut ok = true;
        if !valid_role_name(&role.name) {
            let message = format!(
                "role name {:?} is not valid: after lower-casing it must match \
                 [a-z0-9][a-z0-9._-]* (it appears in headers and metrics)",
                role.name
            );
            self.errors.push(if from_field.is_some() {
                role.field_error("name", message)
            } else {
                ConfigError::in_file(
                    path,
                    format!("{message}; it comes from the file name (set `name` to override)"),
                )
            });
            ok = false;
        }

        match (&role.spec.certificate, &role.spec.certificate_file) {
            (Some(_), Some(_)) => {
                self.errors.push(role.field_error(
                    "certificate_file",
                    "set either `certificate` or `certificate_file`, not both",
                ));
                ok = false;
            }
            (Some(text), None) => match decode_certificates(text.as_bytes(), false) {
                Ok(pem) => role.certificate_pem = Some(pem),
                Err(msg) => {
                    let field = if locate_in(&role.text, "certificate_data") {
                        "certificate_data"
                    } else {
                        "certificate"
                    };
                    self.errors.push(role.field_error(field, msg));
                    ok = false;
                }
            },
            (None, Some(file)) => {
                let dir = path.parent().unwrap_or(Path::new("."));
                let cert_path = dir.join(file);
                let result = self
                    .read_bytes(&cert_path, ROLE_FILE_LIMIT)
                    .map_err(|e| format!("cannot read {}: {e}", cert_path.display()))
                    .and_then(|bytes| {
                        decode_certificates(&bytes, true)
                            .map_err(|e| format!("{}: {e}", cert_path.display()))
                    });
                match result {
                    Ok(pem) => role.certificate_pem = Some(pem),
                    Err(msg) => {
                        self.errors.push(role.field_error("certificate_file", msg));
                        ok = false;
                    }
                }
            }
            (None, None) => {}
        }

        if let Some(text) = &role.spec.ocsp_ca_certificates {
            match decode_certificates(text.as_bytes(), false) {
                Ok(pem) => role.ocsp_ca_pem = Some(pem),
                Err(msg) => {
                    self.errors
                        .push(role.field_error("ocsp_ca_certificates", msg));
                    ok = false;
                }
            }
        }
        ok.then_some(role)
    }

    fn load_crls(&mut self, files: &[PathBuf]) -> Vec<CrlFile> {
        let mut crls: Vec<CrlFile> = Vec::new();
        let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in files {
            let bytes = match self.read_bytes(path, CRL_FILE_LIMIT) {
                Ok(bytes) => bytes,
                Err(e) => {
                    self.errors.push(ConfigError::in_file(path, e));
                    continue;
                }
            };
            let der = match crate::revocation::crl::decode_crl(&bytes) {
                Ok(der) => der,
                Err(e) => {
                    self.errors.push(ConfigError::in_file(path, e));
                    continue;
                }
            };
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(first) = by_name.get(&name) {
                self.errors.push(ConfigError::in_file(
                    path,
                    format!(
                        "CRL name `{name}` is already used by {}; the file stem names the CRL",
                        first.display()
                    ),
                ));
                continue;
            }
            by_name.insert(name.clone(), path.clone());
            crls.push(CrlFile {
                name,
                path: path.clone(),
                der,
            });
        }
        crls.sort_by(|a, b| a.name.cmp(&b.name));
        crls
    }

    /// Reads a whole file of at most `limit` bytes, recording it in the fingerprint.
    fn read_bytes(&mut self, path: &Path, limit: u64) -> Result<Vec<u8>, String> {
        let result = read_capped(path, limit);
        self.fingerprint.add(path, result.as_deref().ok());
        result
    }

    /// [`Self::read_bytes`] for UTF-8 text (a leading byte-order mark is dropped).
    fn read_text(&mut self, path: &Path, limit: u64) -> Result<String, ConfigError> {
        let bytes = self
            .read_bytes(path, limit)
            .map_err(|e| ConfigError::in_file(path, e))?;
        let bytes = bytes
            .strip_prefix("\u{feff}".as_bytes())
            .map(<[u8]>::to_vec)
            .unwrap_or(bytes);
        String::from_utf8(bytes).map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]);
            let (line, column) = line_col_of_offset(&prefix, valid);
            ConfigError::in_file(path, "not UTF-8 text (a binary file?)").at(line, column)
        })
    }
}

/// Reads at most `limit` bytes of a regular file; larger files are an error without
/// reading them (the length check happens first; the `take` guards files whose size
/// changes under us).
fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => "file not found".to_string(),
        _ => format!("cannot read: {e}"),
    })?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let too_large = || format!("file is larger than the limit of {limit} bytes");
    if meta.len() > limit {
        return Err(too_large());
    }
    let file = fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let capacity = usize::try_from(meta.len()).unwrap_or(0);
    let mut buf = Vec::with_capacity(capacity);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    if buf.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(buf)
}

/// Role names go into headers, metrics labels and log fields, so they are kept to a
/// boring alphabet.
fn valid_role_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// Nothing but whitespace, comments and YAML document markers: the file defines nothing.
fn is_effectively_empty(text: &str, format: Format) -> bool {
    text.lines().all(|line| {
        let t = line.trim();
        t.is_empty()
            || (format != Format::Json && t.starts_with('#'))
            || (format == Format::Yaml && (t == "---" || t == "..."))
    })
}

/// Whether `field` is written as a key in `text`.
fn locate_in(text: &str, field: &str) -> bool {
    super::error::locate_field(text, field).is_some()
}

// === certificates and CRLs ===

/// PEM as people and OpenSSL write it (the `pem` crate defaults to CRLF).
const PEM_LF: pem::EncodeConfig = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);

/// Certificates as normalized PEM text, from PEM, from base64 of PEM (Akeyless's
/// `certificate_data`, OpenBao's API) or from base64 of DER; with `raw_der`, also from
/// raw DER (a `certificate_file` in `.der`/`.cer` form; a text field never holds DER).
fn decode_certificates(input: &[u8], raw_der: bool) -> Result<String, String> {
    if contains(input, b"-----BEGIN") {
        return pem_certificates(input);
    }
    if raw_der && looks_like_der(input) {
        return Ok(pem::encode_config(
            &pem::Pem::new("CERTIFICATE", input.to_vec()),
            PEM_LF,
        ));
    }
    let compact: Vec<u8> = input
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
        .map_err(|_| {
            "not a certificate: expected PEM (-----BEGIN CERTIFICATE-----) or base64 of PEM"
                .to_string()
        })?;
    if contains(&decoded, b"-----BEGIN") {
        pem_certificates(&decoded)
    } else if looks_like_der(&decoded) {
        Ok(pem::encode_config(
            &pem::Pem::new("CERTIFICATE", decoded),
            PEM_LF,
        ))
    } else {
        Err("not a certificate: the base64 text decodes to neither PEM nor DER".into())
    }
}

/// A DER SEQUENCE with a long-form length, as every certificate is (they are all longer
/// than 127 bytes). Only the shape: parsing is the snapshot's job.
fn looks_like_der(bytes: &[u8]) -> bool {
    matches!(bytes, [0x30, 0x81..=0x84, ..])
}

/// Parses PEM, keeping only what a certificate field may hold. A private key pasted by
/// mistake is rejected (and never echoed into an error or kept in memory).
fn pem_certificates(input: &[u8]) -> Result<String, String> {
    let blocks = pem::parse_many(input).map_err(|e| format!("malformed PEM: {e}"))?;
    if blocks.is_empty() {
        return Err("no complete PEM block".into());
    }
    if let Some(bad) = blocks
        .iter()
        .find(|b| !matches!(b.tag(), "CERTIFICATE" | "TRUSTED CERTIFICATE"))
    {
        return Err(format!(
            "PEM block `{}` is not a CERTIFICATE",
            bad.tag().escape_debug()
        ));
    }
    let blocks: Vec<pem::Pem> = blocks
        .into_iter()
        .map(|b| pem::Pem::new("CERTIFICATE", b.into_contents()))
        .collect();
    Ok(pem::encode_many_config(&blocks, PEM_LF))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// === parsing ===

/// Parses one file into `T`, turning any failure into a positioned [`ConfigError`].
fn parse<T: DeserializeOwned>(path: &Path, text: &str, format: Format) -> Result<T, ConfigError> {
    match format {
        Format::Yaml => {
            let mut options = serde_saphyr::Options::default();
            options.with_snippet = false;
            options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
            options.alias_limits.max_total_replayed_events = YAML_MAX_ALIAS_REPLAY;
            serde_saphyr::from_str_with_options::<T>(text, options)
                .map_err(|e| yaml_error(path, text, &e))
        }
        Format::Toml => {
            check_nesting(path, text)?;
            toml::from_str::<T>(text).map_err(|e| {
                let (line, column) = e
                    .span()
                    .map_or((0, 0), |span| line_col_of_offset(text, span.start));
                positioned(path, text, line, column, e.message(), None)
            })
        }
        Format::Json => {
            check_nesting(path, text)?;
            if !text.trim_start().starts_with('{') {
                // serde would read a top-level array as the struct's fields in order,
                // which produces baffling messages.
                let (line, column) = line_col_of_offset(text, text.len() - text.trim_start().len());
                return Err(
                    ConfigError::in_file(path, "expected a JSON object `{...}`").at(line, column)
                );
            }
            serde_json::from_str::<T>(text).map_err(|e| {
                let full = e.to_string();
                let message = match full.rsplit_once(" at line ") {
                    Some((message, _)) => message.to_string(),
                    None => full,
                };
                positioned(path, text, e.line(), e.column(), &message, None)
            })
        }
    }
}

fn yaml_error(path: &Path, text: &str, error: &serde_saphyr::Error) -> ConfigError {
    let mut inner = error;
    while let serde_saphyr::Error::WithSnippet { error, .. }
    | serde_saphyr::Error::AliasError { error, .. } = inner
    {
        inner = error;
    }
    let (line, column) = error.location().map_or((0, 0), |l| {
        (
            usize::try_from(l.line()).unwrap_or(0),
            usize::try_from(l.column()).unwrap_or(0),
        )
    });
    let (message, field) = match inner {
        serde_saphyr::Error::SerdeUnknownField {
            field, expected, ..
        } => (unknown_field_message(field, expected), Some(field.clone())),
        serde_saphyr::Error::DuplicateMappingKey { key, .. } => (
            match key {
                Some(k) => format!("duplicate key `{k}`"),
                None => "duplicate key".into(),
            },
            key.clone(),
        ),
        other => (
            serde_saphyr::DefaultMessageFormatter
                .format_message(other)
                .into_owned(),
            None,
        ),
    };
    positioned(path, text, line, column, &message, field)
}

/// Builds the error for a parse failure at (line, column): names the field (from the
/// parser, from an "unknown field" message, or from the key written on that line) and
/// moves the column onto the key itself for key errors, so all three formats agree.
fn positioned(
    path: &Path,
    text: &str,
    line: usize,
    column: usize,
    message: &str,
    field: Option<String>,
) -> ConfigError {
    let mut message = sanitize(message);
    let mut field = field;
    let mut key_error = field.is_some();
    for prefix in ["unknown field `", "duplicate field `"] {
        if field.is_none()
            && let Some(rest) = message.strip_prefix(prefix)
            && let Some((name, tail)) = rest.split_once('`')
        {
            let name = name.to_string();
            if prefix.starts_with("unknown") {
                let expected: Vec<&str> = tail
                    .split_once("expected one of ")
                    .or_else(|| tail.split_once("expected "))
                    .map(|(_, list)| {
                        list.split(", ")
                            .map(|s| s.trim_matches(|c| c == '`' || c == ' '))
                            .collect()
                    })
                    .unwrap_or_default();
                message = unknown_field_message(&name, &expected);
            } else {
                message = format!("duplicate field `{name}` (an alias counts as the same field)");
            }
            field = Some(name);
            key_error = true;
        }
    }
    let mut error = ConfigError::in_file(path, message).at(line, column);
    if key_error && let (Some(name), Some(l)) = (&field, error.line) {
        // Point at the key, not wherever the parser stopped after it.
        if let Some(col) = text
            .lines()
            .nth(l - 1)
            .and_then(|line_text| key_column_in_line(line_text, name))
        {
            error.column = Some(col);
        }
    }
    if field.is_none() {
        field = error.line.and_then(|l| infer_field(text, l, error.column));
    }
    error.field = field.map(|f| sanitize(&f));
    error
}

/// Message for an unknown field: the serde list of 60 expected names helps nobody, a
/// near-miss suggestion does (`allowed_common_name` → `allowed_common_names`).
fn unknown_field_message<S: AsRef<str>>(field: &str, expected: &[S]) -> String {
    let best = expected
        .iter()
        .map(AsRef::as_ref)
        .filter(|e| !e.is_empty())
        .map(|e| (edit_distance(field, e), e))
        .min();
    let len = field.chars().count();
    let shown = sanitize(field);
    match best {
        Some((d, e)) if (d <= 2 || d <= len / 5) && d * 2 < len => {
            format!("unknown field `{shown}` (did you mean `{e}`?)")
        }
        _ => format!("unknown field `{shown}`"),
    }
}

/// Levenshtein distance, for typo suggestions on short field names.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(128).collect();
    let b: Vec<char> = b.chars().take(128).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Error text may quote file content; control characters must not reach a terminal or
/// break a log line.
fn sanitize(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars().take(1000) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The key an error at (line, column) is about: the last key written on that line
/// before the column, else the nearest less-indented key above (a list item's field).
fn infer_field(text: &str, line: usize, column: Option<usize>) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let idx = line.checked_sub(1)?;
    let here = *lines.get(idx)?;
    if let Some(key) = last_key_before(here, column) {
        return Some(key);
    }
    let indent = indentation(here);
    lines[..idx]
        .iter()
        .rev()
        .take(1000)
        .filter(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#') && indentation(l) < indent
        })
        .find_map(|l| last_key_before(l, None))
}

fn indentation(line: &str) -> usize {
    line.chars().take_while(|c| c.is_whitespace()).count()
}

/// Scans `line` for `key:` / `key =` / `"key":` and returns the last key that starts
/// before `column` (any key when `column` is `None`). Quoted strings are skipped whole,
/// so commas and colons inside values do not confuse it.
fn last_key_before(line: &str, column: Option<usize>) -> Option<String> {
    let chars: Vec<char> = line.chars().collect();
    let limit = column.map_or(chars.len(), |c| c.saturating_sub(1).min(chars.len()));
    let mut found = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '#' && (i == 0 || chars[i - 1].is_whitespace()) {
            break;
        }
        let start = i;
        let (key, next) = if c == '"' || c == '\'' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c {
                if chars[j] == '\\' && c == '"' {
                    j += 1;
                }
                j += 1;
            }
            if j >= chars.len() {
                break;
            }
            (chars[i + 1..j].iter().collect::<String>(), j + 1)
        } else if c.is_alphanumeric() || c == '_' {
            let mut j = i;
            while j < chars.len()
                && (chars[j].is_alphanumeric() || matches!(chars[j], '_' | '-' | '.'))
            {
                j += 1;
            }
            (chars[i..j].iter().collect::<String>(), j)
        } else {
            i += 1;
            continue;
        };
        let mut k = next;
        while k < chars.len() && (chars[k] == ' ' || chars[k] == '\t') {
            k += 1;
        }
        let is_key = match chars.get(k) {
            Some(':') => chars.get(k + 1).is_none_or(|c| c.is_whitespace()) || c == '"',
            Some('=') => chars.get(k + 1) != Some(&'='),
            _ => false,
        };
        if is_key && start < limit && !key.is_empty() {
            found = Some(key);
        }
        i = next.max(i + 1);
    }
    found
}

/// Rejects TOML/JSON nested deeper than [`MAX_NESTING`] before a recursive parser sees
/// it. Strings and `#` comments are skipped roughly (a string ends at its line's end),
/// which is exact for every file a person would write.
fn check_nesting(path: &Path, text: &str) -> Result<(), ConfigError> {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    let mut comment = false;
    for (offset, b) in text.bytes().enumerate() {
        if comment {
            comment = b != b'\n';
            continue;
        }
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if b == b'\\' && q == b'"' {
                escaped = true;
            } else if b == q || b == b'\n' {
                quote = None;
            }
            continue;
        }
        match b {
            b'"' | b'\'' => quote = Some(b),
            b'#' => comment = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    let (line, column) = line_col_of_offset(text, offset);
                    return Err(ConfigError::in_file(
                        path,
                        format!("nested deeper than {MAX_NESTING} levels"),
                    )
                    .at(line, column));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names() {
        for ok in ["web", "0", "a.b_c-d", "web2"] {
            assert!(valid_role_name(ok), "{ok}");
        }
        for bad in ["", "-web", ".x", "Web", "a b", "ä", "a/b", "_x"] {
            assert!(!valid_role_name(bad), "{bad}");
        }
    }

    #[test]
    fn keys_on_lines() {
        assert_eq!(
            last_key_before("  token_ttl: abc", Some(14)),
            Some("token_ttl".into())
        );
        assert_eq!(
            last_key_before(r#"{"a": "x,y: z", "b": 1}"#, Some(22)),
            Some("b".into())
        );
        assert_eq!(last_key_before("ttl = \"1x\"", Some(7)), Some("ttl".into()));
        assert_eq!(last_key_before("  - foo", None), None);
        assert_eq!(
            infer_field("a:\n  - 1\n  - x\n", 3, Some(5)),
            Some("a".into())
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            unknown_field_message("allowed_common_name", &["allowed_common_names", "name"]),
            "unknown field `allowed_common_name` (did you mean `allowed_common_names`?)"
        );
        assert_eq!(unknown_field_message("zz", &["name"]), "unknown field `zz`");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn nesting_limit() {
        let deep = "[".repeat(100_000);
        assert!(check_nesting(Path::new("x.json"), &deep).is_err());
        assert!(check_nesting(Path::new("x.json"), "{\"a\": [[1]]}").is_ok());
    }
}
