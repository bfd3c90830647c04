//! Loading role files, the global config and CRLs from disk: the three formats, Vault,
//! OpenBao and Akeyless field names, positioned errors, and hostile file content.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use certgate::config::schema::{DurationValue, StringList, Timestamp};
use certgate::config::{ConfigError, LoadedConfig, load, locate_field};
use tempfile::TempDir;

// === helpers ===

struct Ca {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// One self-signed CA for the whole file (key generation is the slow part).
fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "certgate test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).expect("self-signed");
        Ca {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    })
}

fn ca_pem() -> &'static str {
    &ca().pem
}

/// The CA PEM as a YAML block scalar value, indented for a top-level key.
fn yaml_block(pem: &str) -> String {
    let mut out = String::from("|\n");
    for line in pem.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(&path, content).expect("write");
    path
}

/// A temp dir with `certgate.yaml` (roles in `roles/`, CRLs in `crls/`) and the given
/// role files.
fn setup(roles: &[(&str, &str)]) -> (TempDir, PathBuf) {
    let dir = TempDir::new().expect("tempdir");
    let config = write(
        dir.path(),
        "certgate.yaml",
        "roles_dir: roles\ncrls_dir: crls\n",
    );
    fs::create_dir_all(dir.path().join("roles")).expect("mkdir roles");
    for (name, text) in roles {
        write(&dir.path().join("roles"), name, text);
    }
    (dir, config)
}

fn load_ok(config: &Path) -> LoadedConfig {
    match load(Some(config)) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("load failed: {errors:#?}"),
    }
}

fn load_err(config: &Path) -> Vec<ConfigError> {
    match load(Some(config)) {
        Ok(loaded) => panic!("load succeeded with roles {:?}", names(&loaded)),
        Err(errors) => errors,
    }
}

fn names(loaded: &LoadedConfig) -> Vec<&str> {
    loaded.roles.iter().map(|r| r.name.as_str()).collect()
}

fn list(items: &[&str]) -> StringList {
    StringList(items.iter().map(|s| s.to_string()).collect())
}

fn single_error(errors: &[ConfigError]) -> &ConfigError {
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    &errors[0]
}

// === formats ===

#[test]
fn yaml_toml_and_json_roles_load_to_the_same_spec() {
    let pem = ca_pem();
    let yaml = format!(
        "display_name: Web\n\
         certificate: {}\
         allowed_common_names: [\"web.example.com\", \"*.web.example.com\"]\n\
         allowed_uri_sans:\n  - spiffe://cluster.local/ns/prod/sa/*\n\
         token_policies: [web, read]\n\
         token_bound_cidrs: [10.0.0.0/8]\n\
         token_ttl: 1h\n\
         ocsp_enabled: true\n\
         required_extensions: [\"1.2.3.4:prod-*\"]\n",
        yaml_block(pem)
    );
    let toml = format!(
        "display_name = \"Web\"\n\
         certificate = \"\"\"\n{pem}\"\"\"\n\
         allowed_common_names = [\"web.example.com\", \"*.web.example.com\"]\n\
         allowed_uri_sans = [\"spiffe://cluster.local/ns/prod/sa/*\"]\n\
         token_policies = [\"web\", \"read\"]\n\
         token_bound_cidrs = [\"10.0.0.0/8\"]\n\
         token_ttl = \"1h\"\n\
         ocsp_enabled = true\n\
         required_extensions = [\"1.2.3.4:prod-*\"]\n"
    );
    let json = serde_json::json!({
        "display_name": "Web",
        "certificate": pem,
        "allowed_common_names": ["web.example.com", "*.web.example.com"],
        "allowed_uri_sans": ["spiffe://cluster.local/ns/prod/sa/*"],
        "token_policies": ["web", "read"],
        "token_bound_cidrs": ["10.0.0.0/8"],
        "token_ttl": "1h",
        "ocsp_enabled": true,
        "required_extensions": ["1.2.3.4:prod-*"],
    })
    .to_string();
    let (_dir, config) = setup(&[("a.yaml", &yaml), ("b.toml", &toml), ("c.json", &json)]);
    let loaded = load_ok(&config);
    assert_eq!(names(&loaded), ["a", "b", "c"]);
    let specs: Vec<String> = loaded
        .roles
        .iter()
        .map(|r| format!("{:?}", r.spec))
        .collect();
    assert_eq!(specs[0], specs[1], "YAML vs TOML");
    assert_eq!(specs[0], specs[2], "YAML vs JSON");
    let spec = &loaded.roles[0].spec;
    assert_eq!(
        spec.allowed_common_names,
        list(&["web.example.com", "*.web.example.com"])
    );
    assert_eq!(
        spec.token_ttl,
        Some(DurationValue(Duration::from_secs(3600)))
    );
    assert!(spec.ocsp_enabled);
    for role in &loaded.roles {
        let cert = role.certificate_pem.as_deref().expect("certificate");
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        assert_eq!(
            pem::parse(cert).expect("pem").contents(),
            pem::parse(pem).expect("pem").contents()
        );
    }
    // The role keeps its text and path for later error locations.
    assert!(loaded.roles[0].path.ends_with("roles/a.yaml"));
    assert!(loaded.roles[0].text.contains("display_name: Web"));
}

#[test]
fn comma_separated_strings_equal_lists_and_null_is_empty() {
    let (_dir, config) = setup(&[
        (
            "commas.yaml",
            "allowed_dns_sans: \"a.example.com, b.example.com,,\"\ntoken_policies: web,read\n",
        ),
        (
            "lists.yaml",
            "allowed_dns_sans: [a.example.com, b.example.com]\ntoken_policies:\n  - web\n  - read\n",
        ),
        (
            "nulls.json",
            r#"{"allowed_dns_sans": null, "token_policies": "", "ocsp_servers_override": null, "display_name": null}"#,
        ),
        (
            "nulls2.yaml",
            "allowed_dns_sans: ~\ntoken_policies:\nallowed_uri_sans: []\n",
        ),
        (
            "commas2.toml",
            "allowed_dns_sans = \"a.example.com,b.example.com\"\ntoken_policies = \"web, read\"\n",
        ),
    ]);
    let loaded = load_ok(&config);
    let by_name = |n: &str| {
        &loaded
            .roles
            .iter()
            .find(|r| r.name == n)
            .unwrap_or_else(|| panic!("role {n}"))
            .spec
    };
    for n in ["commas", "lists", "commas2"] {
        assert_eq!(
            by_name(n).allowed_dns_sans,
            list(&["a.example.com", "b.example.com"]),
            "{n}"
        );
        assert_eq!(by_name(n).token_policies, list(&["web", "read"]), "{n}");
    }
    assert_eq!(
        by_name("commas").allowed_dns_sans,
        by_name("lists").allowed_dns_sans
    );
    for n in ["nulls", "nulls2"] {
        let spec = by_name(n);
        assert!(spec.allowed_dns_sans.is_empty());
        assert!(spec.token_policies.is_empty());
        assert!(spec.ocsp_servers_override.is_empty());
        assert!(spec.allowed_uri_sans.is_empty());
        assert_eq!(spec.display_name, None);
    }
}

#[test]
fn vault_read_json_data_object_loads_unchanged() {
    // `vault read -format=json auth/cert/certs/web | jq .data`, Vault 1.17 / OpenBao 2.x.
    let data = serde_json::json!({
        "allowed_common_names": ["web.example.com"],
        "allowed_dns_sans": [],
        "allowed_email_sans": [],
        "allowed_metadata_extensions": ["1.3.6.1.4.1.1234.1"],
        "allowed_names": [],
        "allowed_organizational_units": ["platform"],
        "allowed_uri_sans": ["spiffe://cluster.local/ns/prod/sa/web"],
        "certificate": ca_pem(),
        "display_name": "web",
        "ocsp_ca_certificates": "",
        "ocsp_enabled": false,
        "ocsp_fail_open": false,
        "ocsp_max_retries": 4,
        "ocsp_query_all_servers": false,
        "ocsp_servers_override": null,
        "ocsp_this_update_max_age": 0,
        "required_extensions": [],
        "token_bound_cidrs": [],
        "token_explicit_max_ttl": 0,
        "token_max_ttl": 0,
        "token_no_default_policy": false,
        "token_num_uses": 0,
        "token_period": 0,
        "token_policies": ["web", "default-read"],
        "token_ttl": 0,
        "token_type": "default"
    });
    let text = serde_json::to_string_pretty(&data).expect("json");
    let (_dir, config) = setup(&[("web.json", &text)]);
    let loaded = load_ok(&config);
    let role = &loaded.roles[0];
    assert_eq!(role.name, "web");
    let spec = &role.spec;
    assert_eq!(spec.allowed_common_names, list(&["web.example.com"]));
    assert_eq!(spec.allowed_organizational_units, list(&["platform"]));
    assert_eq!(
        spec.allowed_metadata_extensions,
        list(&["1.3.6.1.4.1.1234.1"])
    );
    assert_eq!(spec.token_policies, list(&["web", "default-read"]));
    assert_eq!(spec.ocsp_ca_certificates, None);
    assert_eq!(role.ocsp_ca_pem, None);
    assert_eq!(spec.ocsp_max_retries, Some(4));
    assert_eq!(spec.token_ttl, Some(DurationValue(Duration::ZERO)));
    assert!(spec.ocsp_servers_override.is_empty());
    assert!(role.certificate_pem.is_some());
    let ignored = spec.ignored_fields();
    for field in [
        "token_type",
        "token_num_uses",
        "token_period",
        "token_explicit_max_ttl",
        "token_no_default_policy",
    ] {
        assert!(
            ignored.contains(&field),
            "{field} not reported: {ignored:?}"
        );
    }
    // `ocsp_servers_override: []` (newer Vault) works too.
    let mut data = data;
    data["ocsp_servers_override"] = serde_json::json!([]);
    let (_dir2, config2) = setup(&[("web.json", &data.to_string())]);
    assert!(
        load_ok(&config2).roles[0]
            .spec
            .ocsp_servers_override
            .is_empty()
    );
}

#[test]
fn akeyless_field_names_map_to_vault_names() {
    let b64 = base64::engine::general_purpose::STANDARD.encode(ca_pem());
    let text = format!(
        "name: payments\n\
         certificate_data: {b64}\n\
         bound_common_names: [pay.example.com]\n\
         bound_ips: 10.1.0.0/16, 192.168.0.0/24\n\
         audit_logs_claims: [sub, role]\n\
         allowed_cors: \"*.example.com\"\n\
         bound_uri_sans: spiffe://x/*\n\
         jwt_ttl: 3600\n"
    );
    let (_dir, config) = setup(&[("ak.yaml", &text)]);
    let loaded = load_ok(&config);
    let role = &loaded.roles[0];
    assert_eq!(role.name, "payments");
    let spec = &role.spec;
    assert_eq!(spec.allowed_common_names, list(&["pay.example.com"]));
    assert_eq!(
        spec.token_bound_cidrs,
        list(&["10.1.0.0/16", "192.168.0.0/24"])
    );
    assert_eq!(spec.audit_log_sub_claims, list(&["sub", "role"]));
    assert_eq!(spec.allowed_cors_domains, list(&["*.example.com"]));
    assert_eq!(spec.allowed_uri_sans, list(&["spiffe://x/*"]));
    assert!(spec.ignored_fields().contains(&"jwt_ttl"));
    // base64 of PEM is decoded into PEM.
    let cert = role.certificate_pem.as_deref().expect("certificate");
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        pem::parse(cert).expect("pem").contents(),
        pem::parse(ca_pem()).expect("pem").contents()
    );
}

// === errors with positions ===

#[test]
fn unknown_field_is_an_error_with_file_line_column_and_field_in_every_format() {
    let cases = [
        (
            "typo.yaml",
            "display_name: web\ntoken_ttl: 1h\nallowed_common_name: web.example.com\n",
            (3, 1),
        ),
        (
            "typo.toml",
            "display_name = \"web\"\ntoken_ttl = \"1h\"\nallowed_common_name = \"web.example.com\"\n",
            (3, 1),
        ),
        (
            "typo.json",
            "{\n  \"display_name\": \"web\",\n  \"allowed_common_name\": \"web.example.com\"\n}\n",
            (3, 3),
        ),
    ];
    for (file, text, (line, column)) in cases {
        let (_dir, config) = setup(&[(file, text)]);
        let errors = load_err(&config);
        let e = single_error(&errors);
        assert!(e.file.ends_with(Path::new("roles").join(file)), "{e}");
        assert_eq!(e.field.as_deref(), Some("allowed_common_name"), "{e}");
        assert_eq!((e.line, e.column), (Some(line), Some(column)), "{e}");
        assert!(e.message.contains("unknown field"), "{e}");
        assert!(
            e.message.contains("did you mean `allowed_common_names`"),
            "{e}"
        );
        let shown = e.to_string();
        assert!(
            shown.ends_with(&format!(
                "{file}:{line}:{column}: allowed_common_name: {}",
                e.message
            )),
            "{shown}"
        );
    }
}

#[test]
fn unknown_field_in_the_global_config_is_an_error() {
    let dir = TempDir::new().expect("tempdir");
    fs::create_dir(dir.path().join("roles")).expect("mkdir");
    let config = write(
        dir.path(),
        "certgate.toml",
        "listen = \"0.0.0.0:9191\"\n\n[deny]\nstatus = 403\ndetial = true\n",
    );
    let errors = load_err(&config);
    let e = single_error(&errors);
    assert_eq!(e.file, config);
    assert_eq!(e.field.as_deref(), Some("detial"));
    assert_eq!((e.line, e.column), (Some(5), Some(1)));
}

#[test]
fn syntax_errors_have_line_and_column_in_every_format() {
    let cases = [
        (
            "bad.yaml",
            "display_name: web\nallowed_dns_sans: [a, b\ntoken_ttl: 1h\n",
        ),
        (
            "bad.toml",
            "display_name = \"web\"\nallowed_dns_sans = [\"a\",\ntoken_ttl = \n",
        ),
        (
            "bad.json",
            "{\n  \"display_name\": \"web\",\n  \"token_ttl\" \"1h\"\n}\n",
        ),
    ];
    for (file, text) in cases {
        let (_dir, config) = setup(&[(file, text)]);
        let errors = load_err(&config);
        let e = single_error(&errors);
        assert!(e.file.ends_with(file));
        let line = e.line.unwrap_or_else(|| panic!("no line: {e}"));
        assert!(e.column.is_some(), "no column: {e}");
        assert!((2..=4).contains(&line), "{e}");
    }
}

#[test]
fn bad_values_name_the_field() {
    let (_dir, config) = setup(&[(
        "web.yaml",
        "display_name: web\ntoken_ttl: 10 parsecs\nocsp_enabled: false\n",
    )]);
    let errors = load_err(&config);
    let e = single_error(&errors);
    assert_eq!(e.field.as_deref(), Some("token_ttl"), "{e}");
    assert_eq!(e.line, Some(2), "{e}");

    let (_dir, config) = setup(&[("web.json", "{\"ocsp_enabled\": \"maybe\"}")]);
    let errors = load_err(&config);
    let e = single_error(&errors);
    assert_eq!(e.field.as_deref(), Some("ocsp_enabled"), "{e}");
    assert_eq!(e.line, Some(1), "{e}");
}

#[test]
fn duplicate_yaml_keys_are_errors() {
    let (_dir, config) = setup(&[(
        "dup.yaml",
        "allowed_common_names: [a]\ndisplay_name: x\nallowed_common_names: ['*']\n",
    )]);
    let errors = load_err(&config);
    let e = single_error(&errors);
    assert_eq!(e.field.as_deref(), Some("allowed_common_names"), "{e}");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.message.contains("duplicate"), "{e}");

    // Vault's read output carries a legacy name and its token_* name together: equal
    // values load, different values are rejected when the role is compiled.
    let (_dir, config) = setup(&[(
        "dup.json",
        "{\"token_policies\": [\"a\"], \"policies\": [\"b\"]}",
    )]);
    let loaded = certgate::config::load(Some(&config)).expect("both names load");
    let errors = match certgate::snapshot::Snapshot::compile(loaded, 1) {
        Ok(_) => panic!("disagreeing policies and token_policies must be rejected"),
        Err(errors) => errors,
    };
    assert!(
        errors
            .iter()
            .any(|e| e.field.as_deref() == Some("token_policies") && e.message.contains("legacy")),
        "{errors:#?}"
    );
}

#[test]
fn duplicate_role_names_across_files_name_both_files() {
    let (_dir, config) = setup(&[
        ("a.yaml", "name: Web\ndisplay_name: one\n"),
        ("web.toml", "display_name = \"two\"\n"),
        ("ok.yaml", "display_name: fine\n"),
    ]);
    let errors = load_err(&config);
    let e = single_error(&errors);
    let shown = e.to_string();
    assert!(shown.contains("web.toml"), "{shown}");
    assert!(shown.contains("a.yaml"), "{shown}");
    assert!(e.message.contains("`web`"), "{shown}");
}

#[test]
fn role_names_are_lower_cased_and_checked() {
    let (_dir, config) = setup(&[
        ("WEB-Admin.yaml", "display_name: x\n"),
        ("file.yaml", "name: Payments.V2\n"),
    ]);
    let loaded = load_ok(&config);
    assert_eq!(names(&loaded), ["payments.v2", "web-admin"]);

    let (_dir, config) = setup(&[("x.yaml", "display_name: x\nname: \"bad name\"\n")]);
    let errors = load_err(&config);
    let e = single_error(&errors);
    assert_eq!(e.field.as_deref(), Some("name"));
    assert_eq!((e.line, e.column), (Some(2), Some(1)));

    let (_dir, config) = setup(&[("_hidden.yaml", "display_name: x\n")]);
    let errors = load_err(&config);
    assert!(single_error(&errors).message.contains("file name"));
}

#[test]
fn empty_role_files_are_errors() {
    for (file, text) in [
        ("empty.yaml", ""),
        ("comments.yaml", "# nothing here\n---\n"),
        ("blank.toml", "\n  \n# x\n"),
        ("empty.json", "  \n"),
    ] {
        let (_dir, config) = setup(&[(file, text)]);
        let errors = load_err(&config);
        assert!(
            single_error(&errors).message.contains("empty role file"),
            "{file}: {errors:?}"
        );
    }
}

#[test]
fn errors_are_collected_across_files() {
    let (_dir, config) = setup(&[
        ("a.yaml", "allowed_common_name: x\n"),
        ("b.toml", "token_ttl = \"forever\"\n"),
        ("c.json", "{"),
        ("d.yaml", ""),
        ("e.yaml", "display_name: fine\n"),
    ]);
    let errors = load_err(&config);
    assert_eq!(errors.len(), 4, "{errors:#?}");
}

// === certificates ===

#[test]
fn certificate_and_certificate_file() {
    let dir = TempDir::new().expect("tempdir");
    let config = write(dir.path(), "certgate.yaml", "roles_dir: roles\n");
    let roles = dir.path().join("roles");
    write(&roles, "certs/ca.pem", ca_pem());
    let der = pem::parse(ca_pem()).expect("pem").into_contents();
    write(&roles, "certs/ca.der", &der);
    write(
        &roles,
        "inline.yaml",
        format!("certificate: {}", yaml_block(ca_pem())),
    );
    write(&roles, "file.yaml", "certificate_file: certs/ca.pem\n");
    write(&roles, "der.toml", "certificate_file = \"certs/ca.der\"\n");
    let loaded = load_ok(&config);
    let certs: Vec<&str> = loaded
        .roles
        .iter()
        .map(|r| r.certificate_pem.as_deref().expect("certificate"))
        .collect();
    assert_eq!(certs.len(), 3);
    assert!(certs.iter().all(|c| *c == certs[0]), "{certs:?}");

    // Both set: an error on `certificate_file`.
    write(
        &roles,
        "both.yaml",
        "certificate: x\ncertificate_file: certs/ca.pem\n",
    );
    let errors = load_err(&config);
    let e = single_error(&errors);
    assert_eq!(e.field.as_deref(), Some("certificate_file"));
    assert_eq!(e.line, Some(2));
    fs::remove_file(roles.join("both.yaml")).expect("rm");

    // Missing file, and not a certificate.
    write(&roles, "missing.yaml", "certificate_file: certs/nope.pem\n");
    write(
        &roles,
        "garbage.yaml",
        "certificate: \"not a certificate!\"\n",
    );
    let key = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n";
    write(
        &roles,
        "key.yaml",
        format!("certificate: {}", yaml_block(key)),
    );
    let errors = load_err(&config);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    for e in &errors {
        assert!(
            matches!(e.field.as_deref(), Some("certificate" | "certificate_file")),
            "{e}"
        );
        assert!(!e.message.contains("MC4CAQAw"), "key material echoed: {e}");
    }
}

#[test]
fn ocsp_ca_certificates_accept_pem_and_base64() {
    let b64 = base64::engine::general_purpose::STANDARD.encode(ca_pem());
    let (_dir, config) = setup(&[
        (
            "a.yaml",
            &format!("ocsp_ca_certificates: {}", yaml_block(ca_pem())),
        ),
        (
            "b.json",
            &format!("{{\"ocsp_ca_certificates\": \"{b64}\"}}"),
        ),
    ]);
    let loaded = load_ok(&config);
    let a = loaded.roles[0].ocsp_ca_pem.as_deref().expect("a");
    let b = loaded.roles[1].ocsp_ca_pem.as_deref().expect("b");
    assert_eq!(a, b);
}

// === value types ===

#[test]
fn durations_in_every_spelling() {
    let (_dir, config) = setup(&[
        ("h.yaml", "token_ttl: 1h\ntoken_max_ttl: 1h30m\n"),
        ("secs.yaml", "token_ttl: 3600\ntoken_max_ttl: \"5400\"\n"),
        ("s.toml", "token_ttl = \"90s\"\ntoken_max_ttl = 0\n"),
        (
            "j.json",
            "{\"token_ttl\": 3600, \"ocsp_this_update_max_age\": \"15m\"}",
        ),
    ]);
    let loaded = load_ok(&config);
    let d = |s: u64| Some(DurationValue(Duration::from_secs(s)));
    let get = |n: &str| &loaded.roles.iter().find(|r| r.name == n).expect(n).spec;
    assert_eq!(get("h").token_ttl, d(3600));
    assert_eq!(get("h").token_max_ttl, d(5400));
    assert_eq!(get("secs").token_ttl, d(3600));
    assert_eq!(get("secs").token_max_ttl, d(5400));
    assert_eq!(get("s").token_ttl, d(90));
    assert_eq!(get("s").token_max_ttl, d(0));
    assert_eq!(get("j").token_ttl, d(3600));
    assert_eq!(get("j").ocsp_this_update_max_age, d(900));
}

#[test]
fn expires_at_rfc3339_unix_seconds_and_toml_datetime() {
    // 2027-01-01T00:00:00Z
    const T: i64 = 1_798_761_600;
    let (_dir, config) = setup(&[
        ("rfc.yaml", "expires_at: 2027-01-01T00:00:00Z\n"),
        ("offset.yaml", "expires_at: \"2027-01-01T01:00:00+01:00\"\n"),
        ("unix.yaml", "expires_at: 1798761600\n"),
        ("unixstr.json", "{\"expires_at\": \"1798761600\"}"),
        ("native.toml", "expires_at = 2027-01-01T00:00:00Z\n"),
        ("quoted.toml", "expires_at = \"2027-01-01T00:00:00Z\"\n"),
        ("akeyless.yaml", "expiration_date: 2027-01-01T00:00:00Z\n"),
    ]);
    let loaded = load_ok(&config);
    assert_eq!(loaded.roles.len(), 7);
    for role in &loaded.roles {
        assert_eq!(role.spec.expires_at, Some(Timestamp(T)), "{}", role.name);
    }

    // A TOML local datetime has no offset: ambiguous, so an error naming the field.
    let (_dir, config) = setup(&[("local.toml", "expires_at = 2027-01-01T00:00:00\n")]);
    let errors = load_err(&config);
    let e = single_error(&errors);
    assert_eq!(e.field.as_deref(), Some("expires_at"), "{e}");
    assert_eq!(e.line, Some(1));
}

// === hostile content ===

#[test]
fn billion_laughs_yaml_is_rejected_quickly() {
    // Anchors in fields that are accepted and ignored (deserialized with `IgnoredAny`,
    // which walks every replayed event): 9^10 events if aliases were expanded blindly.
    let fields = [
        "token_type",
        "token_num_uses",
        "token_period",
        "token_explicit_max_ttl",
        "token_no_default_policy",
        "token_strictly_bind_ip",
        "period",
        "max_ttl",
        "ttl",
        "gw_bound_ips",
    ];
    let mut text = format!("{}: &a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n", fields[0]);
    for (i, field) in fields.iter().enumerate().skip(1) {
        let refs = vec![format!("*a{}", i - 1); 9].join(",");
        text.push_str(&format!("{field}: &a{i} [{refs}]\n"));
    }
    let (_dir, config) = setup(&[("laughs.yaml", &text)]);
    let start = Instant::now();
    let errors = load_err(&config);
    assert!(start.elapsed() < Duration::from_secs(10));
    let e = single_error(&errors);
    assert!(e.message.contains("alias"), "{e}");
    assert!(e.line.is_some(), "{e}");
}

#[test]
fn oversized_and_binary_files_are_rejected() {
    let (dir, config) = setup(&[]);
    let roles = dir.path().join("roles");
    let big = format!("display_name: \"{}\"\n", "x".repeat(8 << 20));
    write(&roles, "big.yaml", big);
    let mut garbage = vec![0u8; 4096];
    for (i, b) in garbage.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
    write(&roles, "garbage.json", &garbage);
    write(&roles, "nul.toml", "display_name = \"a\0b\"\n\0\0\0");
    write(&roles, "deep.json", "[".repeat(500_000));
    write(&roles, "deep.toml", format!("a = {}", "[".repeat(500_000)));
    write(&roles, "deep.yaml", format!("a: {}", "[".repeat(500_000)));
    let start = Instant::now();
    let errors = load_err(&config);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(errors.len(), 6, "{errors:#?}");
    let big_err = errors
        .iter()
        .find(|e| e.file.ends_with("big.yaml"))
        .expect("big");
    assert!(big_err.message.contains("larger than"), "{big_err}");

    // A config file that is not one of the formats is refused, not guessed.
    let odd = write(dir.path(), "certgate.conf", "roles_dir: roles\n");
    assert_eq!(load(Some(&odd)).unwrap_err().len(), 1);
}

// === CRLs ===

fn crl(number: u64) -> rcgen::CertificateRevocationList {
    let params = rcgen::CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2026, 1, 1),
        next_update: rcgen::date_time_ymd(2036, 1, 1),
        crl_number: rcgen::SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: vec![rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from(vec![0x01, 0x02]),
            revocation_time: rcgen::date_time_ymd(2026, 2, 1),
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    params.signed_by(&ca().issuer).expect("crl")
}

#[test]
fn crl_pem_and_der_files_load() {
    let (dir, config) = setup(&[]);
    let crls = dir.path().join("crls");
    let pem_crl = crl(1);
    let der_crl = crl(2);
    write(&crls, "root.pem", pem_crl.pem().expect("pem"));
    write(&crls, "other.crl", der_crl.der().as_ref());
    write(&crls, "notes.txt", "ignored");
    write(&crls, ".hidden.pem", "ignored");
    let loaded = load_ok(&config);
    let names: Vec<&str> = loaded.crls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["other", "root"]);
    assert_eq!(loaded.crls[0].der, der_crl.der().as_ref());
    assert_eq!(loaded.crls[1].der, pem_crl.der().as_ref());
    assert_eq!(loaded.crls_dir, dir.path().join("crls"));

    write(&crls, "bad.crl", "this is not a CRL");
    write(&crls, "root.crl", der_crl.der().as_ref());
    let errors = load_err(&config);
    assert_eq!(errors.len(), 2, "{errors:#?}");
}

#[test]
fn missing_directories() {
    // A missing crls_dir is fine; a missing roles_dir named by a config file is not.
    let dir = TempDir::new().expect("tempdir");
    let config = write(
        dir.path(),
        "certgate.yaml",
        "# defaults\nroles_dir: nowhere\n",
    );
    let errors = load_err(&config);
    let e = single_error(&errors);
    assert_eq!(e.field.as_deref(), Some("roles_dir"));
    assert_eq!((e.line, e.column), (Some(2), Some(1)));
    assert!(e.message.contains("does not exist"));

    fs::create_dir(dir.path().join("nowhere")).expect("mkdir");
    let loaded = load_ok(&config);
    assert!(loaded.roles.is_empty() && loaded.crls.is_empty());
    assert_eq!(loaded.base_dir, dir.path());
    assert_eq!(loaded.roles_dir, dir.path().join("nowhere"));
    assert_eq!(loaded.config_path.as_deref(), Some(config.as_path()));

    // Absolute directories are used as they are.
    let other = TempDir::new().expect("tempdir");
    let config = write(
        dir.path(),
        "abs.json",
        serde_json::json!({ "roles_dir": other.path(), "crls_dir": other.path().join("crls") })
            .to_string(),
    );
    assert_eq!(load_ok(&config).roles_dir, other.path());
}

#[test]
fn no_config_file_runs_on_defaults_relative_to_the_working_directory() {
    // The only test that changes the working directory; every other test uses absolute
    // paths, so running in parallel is harmless.
    let dir = TempDir::new().expect("tempdir");
    let before = std::env::current_dir().expect("cwd");
    std::env::set_current_dir(dir.path()).expect("chdir");
    let cwd = std::env::current_dir().expect("cwd");
    let without_roles = load(None);
    fs::create_dir(dir.path().join("roles")).expect("mkdir");
    write(&dir.path().join("roles"), "web.yaml", "display_name: web\n");
    let with_roles = load(None);
    std::env::set_current_dir(before).expect("chdir back");

    let loaded = without_roles.expect("defaults load");
    assert!(loaded.roles.is_empty());
    assert_eq!(loaded.config_path, None);
    assert_eq!(loaded.base_dir, cwd);
    assert_eq!(loaded.roles_dir, cwd.join("roles"));
    assert_eq!(loaded.global.listen, "0.0.0.0:9191");
    let loaded = with_roles.expect("roles load");
    assert_eq!(names(&loaded), ["web"]);

    let defaults = LoadedConfig::with_defaults(cwd.clone());
    assert_eq!(defaults.roles_dir, cwd.join("roles"));
    assert!(defaults.roles.is_empty());
}

#[test]
fn kubernetes_configmap_layout_loads_through_symlinks() {
    let (dir, config) = setup(&[]);
    let roles = dir.path().join("roles");
    let ts = roles.join("..2026_11_23_00_00_00.1");
    write(&ts, "web.yaml", "display_name: web\n");
    write(&ts, "api.toml", "display_name = \"api\"\n");
    std::os::unix::fs::symlink("..2026_11_23_00_00_00.1", roles.join("..data")).expect("ln");
    std::os::unix::fs::symlink("..data/web.yaml", roles.join("web.yaml")).expect("ln");
    std::os::unix::fs::symlink("..data/api.toml", roles.join("api.toml")).expect("ln");
    // A key removed in the new version leaves a dangling link for a moment.
    std::os::unix::fs::symlink("..data/gone.yaml", roles.join("gone.yaml")).expect("ln");
    fs::create_dir(roles.join("subdir.yaml")).expect("mkdir");
    let loaded = load_ok(&config);
    assert_eq!(names(&loaded), ["api", "web"]);
    assert_eq!(loaded.roles[1].path, roles.join("web.yaml"));
}

#[test]
fn fingerprint_tracks_content() {
    let (dir, config) = setup(&[("web.yaml", "display_name: one\n")]);
    let a = load_ok(&config).fingerprint;
    assert_eq!(a, load_ok(&config).fingerprint);
    write(&dir.path().join("roles"), "web.yaml", "display_name: two\n");
    let b = load_ok(&config).fingerprint;
    assert_ne!(a, b);
    write(&dir.path().join("crls"), "x.crl", crl(1).der().as_ref());
    assert_ne!(b, load_ok(&config).fingerprint);
}

#[test]
fn field_errors_point_at_the_key() {
    let (_dir, config) = setup(&[(
        "web.yaml",
        "display_name: web\nallowed_dns_sans:\n  - a.example.com\ntoken_bound_cidrs: [bogus]\n",
    )]);
    let loaded = load_ok(&config);
    let e = loaded.roles[0].field_error("token_bound_cidrs", "invalid CIDR `bogus`");
    assert_eq!((e.line, e.column), (Some(4), Some(1)));
    assert!(
        e.to_string()
            .ends_with("web.yaml:4:1: token_bound_cidrs: invalid CIDR `bogus`")
    );
    let e = loaded.roles[0].field_error("certificate", "a role needs a certificate");
    assert_eq!((e.line, e.column), (None, None));
    assert_eq!(locate_field("{\"a\": {\"b\": 1}}", "b"), Some((1, 8)));
}
