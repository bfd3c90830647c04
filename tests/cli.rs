//! The `certgate` binary as operators and CI run it: `validate`, `check` and `serve`
//! (with the `certgate.v1.Admin` API), with exit codes, messages and JSON asserted.
//!
//! Certificates are generated per test (tests/common/pki.rs), so nothing expires.

mod common;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use certgate::grpc::admin::pb;
use common::envoy::parse_grpc_addr;
use common::pki::{Ca, Dir, Leaf, LeafSpec, bundle};
use serde_json::Value;

const ALICE_URI: &str = "spiffe://cluster.local/ns/prod/sa/alice";

/// A root, an issuing intermediate, and leaves it issued; the directory holds the
/// config and whatever roles a test writes.
struct Pki {
    dir: Dir,
    root: Ca,
    issuing: Ca,
    /// CN alice, OU eng, URI SAN [`ALICE_URI`].
    alice: Leaf,
    /// CN bob, OU sales.
    bob: Leaf,
}

impl Pki {
    fn new() -> Pki {
        let root = Ca::root("CLI Test Root");
        let issuing = root.intermediate("CLI Test Issuing CA");
        let alice = issuing.leaf(LeafSpec::client("alice").ou("eng").uri(ALICE_URI));
        let bob = issuing.leaf(LeafSpec::client("bob").ou("sales"));
        let dir = Dir::new();
        dir.write(
            "certgate.yaml",
            "roles_dir: roles\ncrls_dir: crls\nlog: { format: json, level: info }\n",
        );
        Pki {
            dir,
            root,
            issuing,
            alice,
            bob,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.join("certgate.yaml")
    }

    /// Writes `roles/<name>.yaml` trusting the root, with `extra` YAML lines after the
    /// certificate. Returns the file's text.
    fn role(&self, name: &str, extra: &str) -> String {
        let text = format!("{}{extra}", certificate_field(&self.root.cert_pem));
        self.dir.write(&format!("roles/{name}.yaml"), &text);
        text
    }

    /// Writes `<name>.pem`: the leaf followed by the issuing intermediate, as clients
    /// present it. Returns the path.
    fn bundle_file(&self, name: &str, leaf: &Leaf) -> PathBuf {
        self.dir.write(
            &format!("{name}.pem"),
            bundle(&[&leaf.cert_pem, &self.issuing.cert_pem]),
        )
    }
}

/// `certificate: |` with the PEM indented as a YAML block scalar.
fn certificate_field(pem: &str) -> String {
    let mut out = String::from("certificate: |\n");
    for line in pem.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn certgate<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_certgate"))
        .args(args)
        .env_remove("CERTGATE_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run certgate");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// `certgate check --config C --cert CERT --json` plus `extra`.
fn check_json(pki: &Pki, cert: &Path, extra: &[&str]) -> Run {
    let config = pki.config();
    let mut args = vec!["check", "--config", p(&config), "--cert", p(cert), "--json"];
    args.extend_from_slice(extra);
    certgate(&args)
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("format time")
}

// === validate ===

#[test]
fn validate_accepts_a_good_config_and_summarizes_it() {
    let pki = Pki::new();
    pki.role(
        "web",
        "allowed_organizational_units: eng\ntoken_policies: web,read\n",
    );
    pki.role("ops", "allowed_organizational_units: ops\n");
    let run = certgate(&["validate", "--config", p(&pki.config())]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("role web: 1 anchor"), "{run}");
    assert!(run.stdout.contains("policies web,read"), "{run}");
    assert!(
        run.stdout
            .contains("valid: 2 roles, 2 anchors, 0 pinned leaves, 0 CRLs"),
        "{run}"
    );
    assert!(!run.stderr.contains("warning"), "{run}");
}

#[test]
fn validate_rejects_a_typo_with_file_line_column_and_field() {
    let pki = Pki::new();
    let text = pki.role("web", "allowed_organisational_units: eng\n");
    let line = text
        .lines()
        .position(|l| l.starts_with("allowed_organisational_units"))
        .expect("typo line")
        + 1;
    let run = certgate(&["validate", "--config", p(&pki.config())]);
    assert_eq!(run.code, 1, "{run}");
    let location = format!("web.yaml:{line}:1: ");
    let error = run
        .stderr
        .lines()
        .find(|l| l.contains(&location))
        .unwrap_or_else(|| panic!("no line with {location:?}\n{run}"));
    assert!(error.contains("allowed_organisational_units"), "{run}");
    assert!(!run.stdout.contains("valid:"), "{run}");
}

#[test]
fn validate_warns_about_ignored_vault_fields() {
    let pki = Pki::new();
    pki.role("web", "token_type: default\ntoken_num_uses: 0\n");
    let run = certgate(&["validate", "--config", p(&pki.config())]);
    assert_eq!(run.code, 0, "{run}");
    let warning = run
        .stderr
        .lines()
        .find(|l| l.starts_with("warning:") && l.contains("token_type"))
        .unwrap_or_else(|| panic!("no token_type warning\n{run}"));
    assert!(warning.contains("web.yaml"), "{run}");
    assert!(warning.contains("ignored"), "{run}");
    assert!(run.stdout.contains("2 warnings"), "{run}");
}

#[test]
fn validate_lists_crls_with_entry_counts() {
    let pki = Pki::new();
    pki.role("web", "");
    let crl = pki
        .issuing
        .crl(&[&pki.bob.serial], time::Duration::hours(1));
    pki.dir.write("crls/issuing.pem", &crl.pem);
    let run = certgate(&["validate", "--config", p(&pki.config())]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout
            .contains("crl issuing: 1 entry, issuer CN=CLI Test Issuing CA"),
        "{run}"
    );
    assert!(run.stdout.contains("1 CRL (1 entry)"), "{run}");
}

#[test]
fn validate_rejects_a_missing_config_file() {
    let pki = Pki::new();
    let run = certgate(&["validate", "--config", p(&pki.dir.join("nope.yaml"))]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("nope.yaml"), "{run}");
}

#[test]
fn validate_rejects_an_unknown_log_format() {
    let pki = Pki::new();
    pki.role("web", "");
    pki.dir.write(
        "certgate.yaml",
        "roles_dir: roles\nlog:\n  format: xml\n  level: info\n",
    );
    let run = certgate(&["validate", "--config", p(&pki.config())]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("certgate.yaml:3:3: log.format: "),
        "{run}"
    );
}

// === check ===

#[test]
fn check_allows_and_names_the_role_and_sub() {
    let pki = Pki::new();
    pki.role(
        "web",
        "allowed_organizational_units: eng\ntoken_policies: web,read\n",
    );
    pki.role("ops", "allowed_organizational_units: ops\n");
    let cert = pki.bundle_file("alice", &pki.alice);
    let run = check_json(&pki, &cert, &[]);
    assert_eq!(run.code, 0, "{run}");
    let report = run.json();
    assert_eq!(report["allowed"], true, "{run}");
    assert_eq!(report["role"], "web", "{run}");
    assert_eq!(report["reason"], Value::Null, "{run}");
    let identity = &report["identity"];
    assert_eq!(identity["sub"], "alice", "{run}");
    assert_eq!(identity["role"], "web", "{run}");
    assert_eq!(identity["uri_sans"][0], ALICE_URI, "{run}");
    assert_eq!(
        identity["policies"],
        serde_json::json!(["web", "read"]),
        "{run}"
    );
    assert_eq!(identity["serial"], pki.alice.serial_hex(), "{run}");
    assert_eq!(
        identity["fingerprint_sha256"],
        pki.alice.fingerprint_hex(),
        "{run}"
    );
    // Every role is explained, not only the winner.
    let verdicts = report["verdicts"].as_array().expect("verdicts");
    assert_eq!(verdicts.len(), 2, "{run}");
    let ops = verdicts
        .iter()
        .find(|v| v["role"] == "ops")
        .expect("ops verdict");
    assert_eq!(ops["allowed"], false, "{run}");
    assert_eq!(ops["reason"], "organizational_unit_not_allowed", "{run}");
    assert_eq!(report["certificate"]["intermediates"], 1, "{run}");
}

#[test]
fn check_denies_with_the_reason_code() {
    let pki = Pki::new();
    pki.role("web", "allowed_organizational_units: eng\n");
    let cert = pki.bundle_file("bob", &pki.bob);
    let run = check_json(&pki, &cert, &[]);
    assert_eq!(run.code, 1, "{run}");
    let report = run.json();
    assert_eq!(report["allowed"], false, "{run}");
    assert_eq!(report["reason"], "organizational_unit_not_allowed", "{run}");
    assert_eq!(report["identity"], Value::Null, "{run}");
    assert_eq!(report["certificate"]["organizational_units"][0], "sales");
}

#[test]
fn check_prints_a_human_report_with_every_role() {
    let pki = Pki::new();
    pki.role("web", "allowed_organizational_units: eng\n");
    pki.role("ops", "allowed_organizational_units: ops\n");
    let cert = pki.bundle_file("bob", &pki.bob);
    let config = pki.config();
    let run = certgate(&["check", "--config", p(&config), "--cert", p(&cert)]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stdout
            .starts_with("decision: deny (organizational_unit_not_allowed)"),
        "{run}"
    );
    for role in ["web", "ops"] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(role))
            .unwrap_or_else(|| panic!("no verdict line for {role}\n{run}"));
        assert!(line.contains("deny"), "{run}");
        assert!(line.contains("organizational_unit_not_allowed"), "{run}");
    }
    assert!(run.stdout.contains("subject: CN=bob,OU=sales"), "{run}");
}

#[test]
fn check_at_past_not_after_is_certificate_expired() {
    let pki = Pki::new();
    pki.role("web", "");
    let cert = pki.bundle_file("alice", &pki.alice);
    // The leaf is valid for 30 days.
    let later = rfc3339(time::OffsetDateTime::now_utc() + time::Duration::days(60));
    let run = check_json(&pki, &cert, &["--at", &later]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.json()["reason"], "certificate_expired", "{run}");
    // And now it passes: the same input, only the time differs.
    let run = check_json(&pki, &cert, &[]);
    assert_eq!(run.code, 0, "{run}");
}

#[test]
fn check_source_ip_outside_bound_cidrs() {
    let pki = Pki::new();
    pki.role("office", "token_bound_cidrs: 10.0.0.0/8,192.0.2.7\n");
    let cert = pki.bundle_file("alice", &pki.alice);
    let run = check_json(&pki, &cert, &["--source-ip", "198.51.100.1"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.json()["reason"], "source_ip_not_allowed", "{run}");
    // The IP checked is part of the verdict, so a wrong one is visible.
    assert_eq!(run.json()["source_ip"], "198.51.100.1", "{run}");
    // Unknown client IP: a bound role cannot pass.
    let run = check_json(&pki, &cert, &[]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.json()["reason"], "source_ip_not_allowed", "{run}");
    assert!(run.json()["source_ip"].is_null(), "{run}");
    let run = check_json(&pki, &cert, &["--source-ip", "10.1.2.3"]);
    assert_eq!(run.code, 0, "{run}");
    let run = check_json(&pki, &cert, &["--source-ip", "192.0.2.7"]);
    assert_eq!(run.code, 0, "{run}");
}

#[test]
fn check_role_selection_and_unknown_roles() {
    let pki = Pki::new();
    pki.role("web", "allowed_organizational_units: eng\n");
    pki.role("ops", "allowed_organizational_units: ops\n");
    let cert = pki.bundle_file("alice", &pki.alice);
    // Only ops is asked for: alice (eng) is denied although web would allow.
    let run = check_json(&pki, &cert, &["--role", "ops"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.json()["verdicts"].as_array().map(Vec::len), Some(1));
    let run = check_json(&pki, &cert, &["--role", "nope"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.json()["reason"], "role_not_found", "{run}");
    let run = check_json(&pki, &cert, &["--role", "nope,WEB"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["role"], "web", "{run}");
}

#[test]
fn check_chain_from_a_separate_file() {
    let pki = Pki::new();
    pki.role("web", "");
    let leaf_only = pki.dir.write("alice-leaf.pem", &pki.alice.cert_pem);
    let chain = pki.dir.write("chain.pem", &pki.issuing.cert_pem);
    // Without the intermediate there is no path to the root.
    let run = check_json(&pki, &leaf_only, &[]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.json()["reason"], "untrusted_issuer", "{run}");
    let run = check_json(&pki, &leaf_only, &["--chain", p(&chain)]);
    assert_eq!(run.code, 0, "{run}");
}

#[test]
fn check_revoked_by_crl() {
    let pki = Pki::new();
    pki.role("web", "");
    let crl = pki
        .issuing
        .crl(&[&pki.bob.serial], time::Duration::hours(1));
    pki.dir.write("crls/issuing.pem", &crl.pem);
    let run = check_json(&pki, &pki.bundle_file("bob", &pki.bob), &[]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.json()["reason"], "revoked_crl", "{run}");
    let run = check_json(&pki, &pki.bundle_file("alice", &pki.alice), &[]);
    assert_eq!(run.code, 0, "{run}");
}

#[test]
fn check_input_that_is_not_a_certificate_exits_2() {
    let pki = Pki::new();
    pki.role("web", "");
    let garbage = pki
        .dir
        .write("garbage.pem", "hello, I am not a certificate\n");
    let run = check_json(&pki, &garbage, &[]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("garbage.pem"), "{run}");
    assert!(run.stdout.is_empty(), "{run}");

    let truncated_pem: String = pki
        .alice
        .cert_pem
        .lines()
        .take(4)
        .collect::<Vec<_>>()
        .join("\n");
    let truncated = pki.dir.write("truncated.pem", truncated_pem);
    let run = check_json(&pki, &truncated, &[]);
    assert_eq!(run.code, 2, "{run}");

    let run = check_json(&pki, &pki.dir.join("missing.pem"), &[]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("missing.pem"), "{run}");

    let cert = pki.bundle_file("alice", &pki.alice);
    let run = check_json(&pki, &cert, &["--chain", p(&garbage)]);
    assert_eq!(run.code, 2, "{run}");
}

#[test]
fn check_accepts_a_der_certificate() {
    let pki = Pki::new();
    pki.role("web", "");
    let der = pki.dir.write("alice.der", &pki.alice.cert_der);
    let chain = pki.dir.write("chain.pem", &pki.issuing.cert_pem);
    let run = check_json(&pki, &der, &["--chain", p(&chain)]);
    assert_eq!(run.code, 0, "{run}");
}

#[test]
fn check_bad_arguments_and_bad_config_exit_2() {
    let pki = Pki::new();
    pki.role("web", "");
    let cert = pki.bundle_file("alice", &pki.alice);
    for extra in [
        &["--source-ip", "10.0.0.300"][..],
        &["--at", "next tuesday"][..],
        &["--no-such-flag"][..],
    ] {
        let run = check_json(&pki, &cert, extra);
        assert_eq!(run.code, 2, "{extra:?}: {run}");
        assert!(run.stdout.is_empty(), "{run}");
    }
    // --config and --cert are required.
    let run = certgate(&["check", "--cert", p(&cert)]);
    assert_eq!(run.code, 2, "{run}");

    pki.role("broken", "allowed_common_names: [unterminated\n");
    let run = check_json(&pki, &cert, &[]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("broken.yaml:"), "{run}");
}

// === serve ===

/// A `certgate serve` child whose stderr goes to a file; killed if a test fails.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(config: &Path, log: PathBuf) -> Server {
        let file = File::create(&log).expect("create log");
        let child = Command::new(env!("CARGO_BIN_EXE_certgate"))
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("CERTGATE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start certgate serve");
        Server { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn grpc_addr(&mut self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(addr) = self.log().lines().find_map(parse_grpc_addr) {
                return addr;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("certgate exited ({status}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "no grpc_addr:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn terminate(&mut self) -> i32 {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn serve_answers_the_admin_api_and_stops_cleanly_on_sigterm() {
    let pki = Pki::new();
    pki.role("web", "allowed_organizational_units: eng\ntoken_policies: web,read\ntoken_bound_cidrs: 10.0.0.0/8\n");
    let crl = pki
        .issuing
        .crl(&[&pki.bob.serial], time::Duration::hours(1));
    pki.dir.write("crls/issuing.pem", &crl.pem);
    pki.dir.write(
        "certgate.yaml",
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nroles_dir: roles\ncrls_dir: crls\n\
         audit: { sink: none }\nlog: { format: json, level: info }\n",
    );
    let mut server = Server::start(&pki.config(), pki.dir.join("serve.log"));
    let addr = server.grpc_addr();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let alice_bundle = bundle(&[&pki.alice.cert_pem, &pki.issuing.cert_pem]);
    let bob_serial = pki.bob.serial_hex();
    runtime.block_on(async move {
        let mut client = pb::admin_client::AdminClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");

        let roles = client
            .list_roles(pb::ListRolesRequest {})
            .await
            .expect("ListRoles")
            .into_inner();
        assert_eq!(roles.generation, 1);
        assert_eq!(roles.roles.len(), 1);
        let web = &roles.roles[0];
        assert_eq!(web.name, "web");
        assert_eq!(web.policies, ["web", "read"]);
        assert_eq!(web.allowed_organizational_units, ["eng"]);
        assert_eq!(web.bound_cidrs, ["10.0.0.0/8"]);
        assert_eq!(web.anchors.len(), 1);
        assert_eq!(web.anchors[0].subject, "CN=CLI Test Root");
        assert_eq!(web.unique_identifier, "common_name");

        let missing = client
            .get_role(pb::GetRoleRequest {
                name: "nope".into(),
            })
            .await
            .expect_err("unknown role");
        assert_eq!(missing.code(), tonic::Code::NotFound);
        let web = client
            .get_role(pb::GetRoleRequest { name: "WEB".into() })
            .await
            .expect("GetRole is case-insensitive")
            .into_inner();
        assert!(web.file.ends_with("web.yaml"), "{}", web.file);

        let crls = client
            .list_crls(pb::ListCrlsRequest {})
            .await
            .expect("ListCrls")
            .into_inner();
        assert_eq!(crls.crls.len(), 1);
        assert_eq!(crls.crls[0].name, "issuing");
        assert_eq!(crls.crls[0].entries, 1);
        assert!(crls.crls[0].revoked_serials.is_empty());
        assert!(!crls.crls[0].stale);
        let crl = client
            .get_crl(pb::GetCrlRequest {
                name: "issuing".into(),
            })
            .await
            .expect("GetCrl")
            .into_inner();
        assert_eq!(crl.revoked_serials, [bob_serial]);
        assert_eq!(crl.issuer, "CN=CLI Test Issuing CA");
        assert!(!crl.next_update.is_empty());
        let missing = client
            .get_crl(pb::GetCrlRequest {
                name: "nope".into(),
            })
            .await
            .expect_err("unknown CRL");
        assert_eq!(missing.code(), tonic::Code::NotFound);

        let allowed = client
            .explain(pb::ExplainRequest {
                certificate: alice_bundle.clone(),
                source_ip: Some("10.9.8.7".into()),
                ..Default::default()
            })
            .await
            .expect("Explain")
            .into_inner();
        assert!(allowed.allowed, "{allowed:?}");
        assert_eq!(allowed.role, "web");
        let identity = allowed.identity.expect("identity");
        assert_eq!(identity.sub, "alice");
        assert_eq!(identity.uri_sans, [ALICE_URI]);
        assert_eq!(identity.policies, ["web", "read"]);

        let denied = client
            .explain(pb::ExplainRequest {
                certificate: alice_bundle.clone(),
                source_ip: Some("192.168.1.1".into()),
                ..Default::default()
            })
            .await
            .expect("Explain")
            .into_inner();
        assert!(!denied.allowed);
        assert_eq!(denied.reason, "source_ip_not_allowed");
        assert_eq!(denied.verdicts.len(), 1);
        assert_eq!(denied.verdicts[0].reason, "source_ip_not_allowed");
        assert!(denied.identity.is_none());

        for bad in [
            pb::ExplainRequest {
                certificate: alice_bundle.clone(),
                source_ip: Some("not-an-ip".into()),
                ..Default::default()
            },
            pb::ExplainRequest {
                certificate: alice_bundle.clone(),
                at: Some("yesterday".into()),
                ..Default::default()
            },
            pb::ExplainRequest {
                certificate: "garbage".into(),
                ..Default::default()
            },
        ] {
            let status = client.explain(bad).await.expect_err("bad input");
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        }
    });
    drop(runtime);

    assert_eq!(server.terminate(), 0, "{}", server.log());
}

#[test]
fn serve_with_a_bad_config_exits_2_with_the_errors() {
    let pki = Pki::new();
    let text = pki.role("web", "allowed_organisational_units: eng\n");
    let line = text
        .lines()
        .position(|l| l.starts_with("allowed_organisational_units"))
        .expect("typo line")
        + 1;
    let mut server = Server::start(&pki.config(), pki.dir.join("serve.log"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status.code().unwrap_or(-1);
        }
        assert!(
            Instant::now() < deadline,
            "still running:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, 2, "{}", server.log());
    assert!(
        server.log().contains(&format!("web.yaml:{line}:1: ")),
        "{}",
        server.log()
    );
}

#[test]
fn check_fetches_crl_urls_as_the_server_would_and_shows_them() {
    let server = common::http_server::HttpServer::start();
    let pki = Pki::new();
    pki.role("web", "allowed_organizational_units: eng,sales\n");
    let crl = pki.issuing.crl(&[&pki.bob.serial], time::Duration::days(1));
    server.set("/issuing.crl", 200, crl.der.clone());
    pki.dir.write(
        "certgate.yaml",
        format!(
            "roles_dir: roles\ncrls_dir: crls\nlog: {{ format: json, level: warn }}\ncrl_urls:\n  - {{ name: issuing, url: \"{}\" }}\n  - {{ name: gone, url: \"{}\" }}\n",
            server.url("/issuing.crl"),
            server.url("/gone.crl")
        ),
    );

    let bob = check_json(&pki, &pki.bundle_file("bob", &pki.bob), &[]);
    assert_eq!(bob.code, 1, "{bob}");
    let report = bob.json();
    assert_eq!(report["reason"], "revoked_crl", "{bob}");
    let sources = report["crl_sources"].as_array().expect("crl_sources");
    let issuing = sources
        .iter()
        .find(|s| s["name"] == "issuing")
        .unwrap_or_else(|| panic!("{bob}"));
    assert_eq!(issuing["origin"], "crl_urls");
    assert_eq!(issuing["issuer"], "CN=CLI Test Issuing CA");
    assert_eq!(issuing["entries"], 1);
    assert_eq!(issuing["last_fetch"], "ok");
    assert!(issuing["next_update"].is_string());
    let gone = sources
        .iter()
        .find(|s| s["name"] == "gone")
        .unwrap_or_else(|| panic!("{bob}"));
    assert_eq!(gone["last_fetch"], "error: HTTP status 404", "{bob}");
    assert_eq!(gone["entries"], 0);

    let config = pki.config();
    let alice_file = pki.bundle_file("alice", &pki.alice);
    let alice = certgate(&["check", "--config", p(&config), "--cert", p(&alice_file)]);
    assert_eq!(alice.code, 0, "{alice}");
    assert!(alice.stdout.contains("fetched CRLs:"), "{alice}");
    assert!(alice.stdout.contains("last fetch: ok"), "{alice}");
    assert!(
        alice.stdout.contains("last fetch: error: HTTP status 404"),
        "{alice}"
    );
}

#[test]
fn the_admin_api_lists_fetched_crls_with_their_last_fetch() {
    let server = common::http_server::HttpServer::start();
    let pki = Pki::new();
    pki.role("web", "allowed_organizational_units: eng\n");
    let crl = pki.issuing.crl(&[&pki.bob.serial], time::Duration::days(1));
    server.set("/issuing.crl", 200, crl.pem.clone().into_bytes());
    pki.dir.write(
        "certgate.yaml",
        format!(
            "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nroles_dir: roles\ncrls_dir: crls\n\
             audit: {{ sink: none }}\nlog: {{ format: json, level: info }}\n\
             crl_urls: [{{ name: issuing, url: \"{}\" }}, {{ name: broken, url: \"{}\" }}]\n",
            server.url("/issuing.crl"),
            server.url("/broken.crl")
        ),
    );
    server.set("/broken.crl", 200, b"not a CRL".to_vec());
    let mut server_process = Server::start(&pki.config(), pki.dir.join("serve.log"));
    let addr = server_process.grpc_addr();
    let bob_serial = pki.bob.serial_hex();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let mut client = pb::admin_client::AdminClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
        let crls = client
            .list_crls(pb::ListCrlsRequest {})
            .await
            .expect("ListCrls")
            .into_inner()
            .crls;
        let issuing = crls.iter().find(|c| c.name == "issuing").expect("issuing");
        assert_eq!(issuing.origin, "crl_urls");
        assert_eq!(issuing.source, server.url("/issuing.crl"));
        assert_eq!(issuing.issuer, "CN=CLI Test Issuing CA");
        assert_eq!(issuing.entries, 1);
        assert!(issuing.has_list);
        assert!(!issuing.this_update.is_empty() && !issuing.next_update.is_empty());
        assert!(!issuing.last_success.is_empty() && issuing.last_error.is_empty());
        assert!(!issuing.next_refresh.is_empty());
        assert_eq!((issuing.fetches, issuing.failures), (1, 0));
        let broken = crls.iter().find(|c| c.name == "broken").expect("broken");
        assert!(!broken.has_list);
        assert_eq!(broken.failures, 1);
        assert!(
            broken.last_error.contains("PEM") || broken.last_error.contains("DER"),
            "{broken:?}"
        );
        let one = client
            .get_crl(pb::GetCrlRequest {
                name: "issuing".into(),
            })
            .await
            .expect("GetCrl")
            .into_inner();
        assert_eq!(one.revoked_serials, [bob_serial]);
    });
}
