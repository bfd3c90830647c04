//! The `certgate` command line: `serve`, `check` and `validate`.
//!
//! Exit codes are part of the interface, because CI pipelines and scripts branch on
//! them:
//!
//! | command    | 0                  | 1                    | 2                                |
//! |------------|--------------------|----------------------|----------------------------------|
//! | `serve`    | clean shutdown     | –                    | bad config, bind or runtime error |
//! | `check`    | allowed            | denied               | bad config, unreadable file, bad arguments, not a certificate |
//! | `validate` | valid              | invalid              | bad arguments                    |
//!
//! Errors in files are printed one per line as `file:line:column: field: message`, the
//! shape editors and CI logs turn into links.

use std::ffi::OsString;
use std::io::{IsTerminal as _, Read as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::schema::LogConfig;
use crate::config::{self, ConfigError};
use crate::explain::{self, ExplainInput, ExplainReport};
use crate::reload::Reloader;
use crate::snapshot::Snapshot;

/// Allowed, valid, clean shutdown.
const EXIT_OK: u8 = 0;
/// Denied (`check`), invalid (`validate`).
const EXIT_NO: u8 = 1;
/// Could not do what was asked: bad arguments, unreadable or broken input, server error.
const EXIT_ERROR: u8 = 2;

/// Environment variable that overrides the config's `log.level` (a tracing filter such
/// as `debug` or `certgate=trace,tonic=info`): turning up logging on one pod must not
/// need a config change that every other pod would pick up.
pub const LOG_ENV: &str = "CERTGATE_LOG";

/// How long the runtime waits for stray background tasks after the server returned.
const RUNTIME_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Envoy ext_authz service that authorizes mTLS requests by client X.509 certificate
/// against Vault-compatible role files.
#[derive(Debug, Parser)]
#[command(name = "certgate", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gRPC service (ext_authz v3, health, reflection, certgate.v1).
    ///
    /// Config, roles and CRLs are hot-reloaded; a bad edit keeps the last good config
    /// serving. SIGTERM or Ctrl-C stops accepting, drains in-flight checks and exits 0.
    /// Exit 2 when the initial config is invalid or the listener cannot be bound.
    Serve(ServeArgs),
    /// Explain what the server would decide for a certificate (exit 0 allow, 1 deny).
    ///
    /// Evaluates offline, with the same loader and engine as `serve`, every selected
    /// role, and prints the decision, each role's verdict with its reason code, and the
    /// identity the upstream would receive. Exit 2 on a bad config, an unreadable file,
    /// bad arguments or input that is not a certificate.
    Check(CheckArgs),
    /// Lint the config, every role file and every CRL for CI (exit 0 valid, 1 invalid).
    ///
    /// Prints every error as `file:line:column: field: message`, every warning (Vault
    /// fields that are accepted and ignored, no roles), and a summary of roles, anchors,
    /// pinned leaves and CRLs.
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Global config file (YAML, TOML or JSON); without it: defaults and ./roles.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Global config file (YAML, TOML or JSON).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Client certificate: PEM bundle (first = leaf, rest = intermediates) or one DER
    /// certificate.
    #[arg(long, value_name = "PEM_FILE")]
    cert: PathBuf,
    /// More intermediates (PEM), as an XFCC `Chain` would carry them.
    #[arg(long, value_name = "PEM_FILE")]
    chain: Option<PathBuf>,
    /// Only these roles, like the route's `certgate_roles` (comma-separated or repeated);
    /// default: every role.
    #[arg(long = "role", value_name = "NAME")]
    roles: Vec<String>,
    /// The client IP that `token_bound_cidrs` apply to; default: unknown, so roles with
    /// bound CIDRs deny.
    #[arg(long, value_name = "IP")]
    source_ip: Option<IpAddr>,
    /// The request's `Origin` header, for `allowed_cors_domains`.
    #[arg(long, value_name = "ORIGIN")]
    origin: Option<String>,
    /// Decide at this instant (RFC 3339 or Unix seconds) instead of now.
    #[arg(long, value_name = "RFC3339", value_parser = crate::clock::parse)]
    at: Option<i64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// Global config file (YAML, TOML or JSON).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
}

/// Parses the process arguments and runs the command; `src/main.rs` only calls this.
pub fn main() -> ExitCode {
    run(std::env::args_os())
}

/// Runs `certgate` with `args` (the first one is the program name).
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap: 0 for --help/--version, 2 for usage errors.
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_ERROR));
        }
    };
    ExitCode::from(match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check(args) => check(&args),
        Command::Validate(args) => validate(&args),
    })
}

// === serve ===

fn serve(args: ServeArgs) -> u8 {
    let reloader = match Reloader::new(args.config) {
        Ok(r) => r,
        Err(errors) => {
            print_errors(&errors);
            return EXIT_ERROR;
        }
    };
    let snapshot = reloader.current();
    let config_label = config_label(snapshot.sources.config_path.as_deref());
    if let Err(e) = init_tracing(&snapshot.settings.global.log) {
        eprintln!("{e}");
        return EXIT_ERROR;
    }
    tracing::info!(
        config = %config_label,
        generation = snapshot.generation,
        roles = snapshot.roles.len(),
        crls = snapshot.crls.entries().len(),
        "configuration loaded"
    );
    for warning in &snapshot.warnings {
        tracing::warn!(warning = %warning, "configuration warning");
    }
    let audit_sink = crate::audit::AuditSink::from_config(
        &snapshot.settings.global.audit.sink,
        snapshot
            .sources
            .config_path
            .as_deref()
            .and_then(Path::parent),
    );
    let audit =
        match crate::audit::AuditLog::start(audit_sink.clone(), &snapshot.settings.global.audit) {
            Ok(audit) => Arc::new(audit),
            Err(e) => {
                tracing::error!(sink = ?audit_sink, error = %e, "cannot open the audit log");
                return EXIT_ERROR;
            }
        };
    tracing::info!(sink = ?audit_sink, "audit log");
    drop(snapshot);

    // Dropped (stopped and joined) when this function returns.
    let _watcher = reloader.spawn_watcher();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("certgate")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return EXIT_ERROR;
        }
    };
    let result = runtime.block_on(async move {
        // Registered before serving, so a SIGTERM during startup is not lost.
        let shutdown = shutdown_signal()?;
        crate::grpc::serve(reloader, audit, shutdown).await
    });
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            tracing::error!(error = %e, "certgate failed");
            EXIT_ERROR
        }
    }
}

/// Completes on the first SIGTERM (Kubernetes' stop signal) or SIGINT (Ctrl-C).
/// Registration errors surface before the server starts instead of leaving a server
/// that cannot be stopped gracefully.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested");
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!(signal = "ctrl-c", "shutdown requested");
    })
}

/// The log output the config's `log` section asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    /// One JSON object per line, for log pipelines.
    Json,
    /// One human-readable line per event.
    Pretty,
}

/// Checks `log.format` and `log.level` (or `CERTGATE_LOG` when set). `validate` runs
/// this too, so a config that `serve` would refuse never passes CI.
fn log_settings(
    log: &LogConfig,
    env: Option<&str>,
) -> Result<(LogFormat, EnvFilter), (&'static str, String)> {
    let format = match log.format.trim().to_ascii_lowercase().as_str() {
        "json" => LogFormat::Json,
        "pretty" | "text" => LogFormat::Pretty,
        other => {
            return Err((
                "format",
                format!("log format {other:?} is not json or pretty"),
            ));
        }
    };
    let filter = match env.map(str::trim).filter(|v| !v.is_empty()) {
        Some(directives) => EnvFilter::try_new(directives)
            .map_err(|e| ("level", format!("{LOG_ENV}={directives:?}: {e}")))?,
        None => EnvFilter::try_new(log.level.trim())
            .map_err(|e| ("level", format!("log level {:?}: {e}", log.level)))?,
    };
    Ok((format, filter))
}

/// Installs the global tracing subscriber. Logs go to stderr: stdout belongs to the
/// audit sink (`audit.sink: stdout`), and mixing the two would break JSON-lines
/// consumers of either.
fn init_tracing(log: &LogConfig) -> Result<(), String> {
    let env = std::env::var(LOG_ENV).ok();
    let (format, filter) =
        log_settings(log, env.as_deref()).map_err(|(field, e)| format!("log.{field}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}

// === check ===

fn check(args: &CheckArgs) -> u8 {
    let snapshot = match compile(&args.config) {
        Ok(s) => s,
        Err(errors) => {
            print_errors(&errors);
            return EXIT_ERROR;
        }
    };
    let certificate_pem = match read_certificate_file(&args.cert) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{}: {e}", args.cert.display());
            return EXIT_ERROR;
        }
    };
    let chain_pem = match &args.chain {
        Some(path) => match read_certificate_file(path) {
            Ok(text) => Some(text),
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return EXIT_ERROR;
            }
        },
        None => None,
    };
    let roles = args
        .roles
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    let input = ExplainInput {
        certificate_pem,
        chain_pem,
        roles: (!roles.is_empty()).then_some(roles),
        source_ip: args.source_ip,
        origin: args.origin.clone(),
        at: args.at.unwrap_or_else(crate::clock::now),
    };
    // Decide exactly as the server would: fetch the configured CRLs first (the server
    // is serving with them by then), then distribution points and OCSP on demand.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return EXIT_ERROR;
        }
    };
    let decided = runtime.block_on(async {
        let live = crate::revocation::LiveRevocation::new(&snapshot);
        let wait = snapshot.settings.global.crl_fetch.timeout.0;
        live.wait_first_fetches(wait).await;
        let report = live
            .decide(|view| explain::explain(&snapshot, &input, Some(view)))
            .await;
        let sources: Vec<explain::CrlSourceSummary> = live
            .crl_sources()
            .iter()
            .map(explain::CrlSourceSummary::of)
            .collect();
        report.map(|mut r| {
            r.crl_sources = sources;
            r
        })
    });
    let report = match decided {
        Ok(r) => r,
        Err(e) => {
            let file = if e.starts_with("chain:") {
                args.chain.as_deref().unwrap_or(&args.cert)
            } else {
                &args.cert
            };
            eprintln!("{}: {e}", file.display());
            return EXIT_ERROR;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("cannot encode the report: {e}");
                return EXIT_ERROR;
            }
        }
    } else {
        print!("{}", human_report(&report));
    }
    if report.allowed { EXIT_OK } else { EXIT_NO }
}

/// Reads a certificate file as text; a DER file (it starts with a SEQUENCE tag) is
/// turned into PEM, since that is what `.der`/`.cer` files from CAs often are. Reads
/// at most one byte more than certificate decoding accepts, so a wrong path (a disk
/// image, a log) is refused without being slurped.
fn read_certificate_file(path: &Path) -> Result<String, String> {
    let limit = crate::pki::pem::MAX_INPUT_BYTES;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() > limit {
        return Err(format!("larger than {limit} bytes; not a certificate"));
    }
    if bytes.first() == Some(&0x30) {
        return Ok(pem::encode(&pem::Pem::new("CERTIFICATE", bytes)));
    }
    String::from_utf8(bytes).map_err(|_| "neither PEM text nor a DER certificate".to_string())
}

/// The report for a terminal: decision first, then why (every role), then who.
fn human_report(r: &ExplainReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let or_dash = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(",")
        }
    };
    match (&r.role, &r.reason) {
        (Some(role), _) if r.allowed => {
            let _ = writeln!(out, "decision: allow (role {role})");
        }
        (_, Some(reason)) => {
            let _ = writeln!(out, "decision: deny ({reason})");
        }
        _ => {
            let _ = writeln!(out, "decision: deny");
        }
    }
    if let Some(detail) = r.detail.as_ref().filter(|d| Some(*d) != r.reason.as_ref()) {
        let _ = writeln!(out, "detail: {detail}");
    }
    let _ = writeln!(out, "at: {}", r.at);
    match &r.source_ip {
        Some(ip) => {
            let _ = writeln!(out, "source-ip: {ip}");
        }
        None => {
            let _ = writeln!(
                out,
                "source-ip: - (none given: roles with token_bound_cidrs deny; --source-ip IP)"
            );
        }
    }

    let c = &r.certificate;
    let _ = writeln!(out, "\ncertificate:");
    let _ = writeln!(out, "  subject: {}", c.subject);
    let _ = writeln!(out, "  issuer: {}", c.issuer);
    let _ = writeln!(out, "  serial: {}", c.serial);
    let _ = writeln!(out, "  fingerprint-sha256: {}", c.fingerprint_sha256);
    let _ = writeln!(out, "  valid: {} .. {}", c.not_before, c.not_after);
    let _ = writeln!(out, "  uri-sans: {}", or_dash(&c.uri_sans));
    let _ = writeln!(out, "  dns-sans: {}", or_dash(&c.dns_sans));
    if !c.email_sans.is_empty() {
        let _ = writeln!(out, "  email-sans: {}", c.email_sans.join(","));
    }
    let _ = writeln!(out, "  intermediates: {}", c.intermediates);

    let _ = writeln!(out, "\nroles (in evaluation order):");
    if r.verdicts.is_empty() {
        let _ = writeln!(out, "  (none evaluated)");
    }
    let width = r.verdicts.iter().map(|v| v.role.len()).max().unwrap_or(0);
    for v in &r.verdicts {
        if v.allowed {
            let _ = writeln!(out, "  {:width$}  allow", v.role);
        } else {
            let why = v.detail.as_deref().or(v.reason.as_deref()).unwrap_or("");
            let _ = writeln!(out, "  {:width$}  deny   {why}", v.role);
        }
    }

    if let Some(id) = &r.identity {
        let _ = writeln!(out, "\nidentity:");
        let _ = writeln!(out, "  role: {}", id.role);
        let _ = writeln!(out, "  display-name: {}", id.display_name);
        let _ = writeln!(out, "  sub: {}", id.sub);
        let _ = writeln!(out, "  subject: {}", id.subject);
        let _ = writeln!(out, "  issuer: {}", id.issuer);
        let _ = writeln!(out, "  serial: {}", id.serial);
        let _ = writeln!(out, "  fingerprint-sha256: {}", id.fingerprint_sha256);
        let _ = writeln!(out, "  uri-sans: {}", or_dash(&id.uri_sans));
        let _ = writeln!(out, "  dns-sans: {}", or_dash(&id.dns_sans));
        let _ = writeln!(out, "  policies: {}", or_dash(&id.policies));
        for (key, value) in &id.metadata {
            let _ = writeln!(out, "  meta-{key}: {value}");
        }
    }
    if !r.crl_sources.is_empty() {
        let _ = writeln!(out, "\nfetched CRLs:");
        for c in &r.crl_sources {
            let _ = writeln!(out, "  {} ({}, {})", c.name, c.origin, c.url);
            if !c.issuer.is_empty() {
                let _ = writeln!(
                    out,
                    "    issuer: {}\n    this update: {}\n    next update: {}\n    entries: {}",
                    c.issuer,
                    c.this_update.as_deref().unwrap_or("-"),
                    c.next_update.as_deref().unwrap_or("-"),
                    c.entries
                );
            }
            let _ = writeln!(out, "    last fetch: {}", c.last_fetch);
        }
    }
    out
}

// === validate ===

fn validate(args: &ValidateArgs) -> u8 {
    let snapshot = match compile(&args.config) {
        Ok(s) => s,
        Err(errors) => {
            print_errors(&errors);
            eprintln!(
                "invalid: {} error{}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            return EXIT_NO;
        }
    };
    let mut warnings = snapshot.warnings.clone();
    if snapshot.roles.is_empty() {
        warnings.push(format!(
            "{}: no roles: every request will be denied (no_roles)",
            snapshot.sources.roles_dir.display()
        ));
    }
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }

    println!(
        "config: {}",
        config_label(snapshot.sources.config_path.as_deref())
    );
    println!("roles_dir: {}", snapshot.sources.roles_dir.display());
    println!("crls_dir: {}", snapshot.sources.crls_dir.display());
    let mut anchors = 0;
    let mut pinned = 0;
    for role in &snapshot.roles {
        anchors += role.anchors.anchors.len();
        pinned += role.pinned.len();
        println!(
            "role {}: {} anchor{}, {} pinned lea{}, policies {}, file {}",
            role.name,
            role.anchors.anchors.len(),
            plural(role.anchors.anchors.len()),
            role.pinned.len(),
            if role.pinned.len() == 1 { "f" } else { "ves" },
            if role.policies.is_empty() {
                "-".to_string()
            } else {
                role.policies.join(",")
            },
            role.path.display()
        );
    }
    let now = crate::clock::now();
    let mut entries = 0;
    for crl in snapshot.crls.entries() {
        entries += crl.len();
        println!(
            "crl {}: {} entr{}, issuer {}, next update {}{}{}",
            crl.name,
            crl.len(),
            if crl.len() == 1 { "y" } else { "ies" },
            crl.issuer,
            crl.next_update
                .map(crate::clock::rfc3339)
                .unwrap_or_else(|| "-".into()),
            crl.verified_by
                .as_deref()
                .map(|by| format!(", verified by {by}"))
                .unwrap_or_default(),
            if crl.is_stale(now) { " (stale)" } else { "" },
        );
    }
    for url in &snapshot.settings.global.crl_urls {
        println!(
            "crl_url {}: {} (fetched by the server; `certgate check` fetches it too)",
            url.name, url.url
        );
    }
    let roles = snapshot.roles.len();
    let crls = snapshot.crls.entries().len();
    println!(
        "valid: {roles} role{}, {anchors} anchor{}, {pinned} pinned lea{}, {crls} CRL{} ({entries} entr{}), {} warning{}",
        plural(roles),
        plural(anchors),
        if pinned == 1 { "f" } else { "ves" },
        plural(crls),
        if entries == 1 { "y" } else { "ies" },
        warnings.len(),
        plural(warnings.len()),
    );
    EXIT_OK
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

// === shared ===

/// Loads and compiles like the server's initial load does (same loader, same
/// compiler), plus the `log` checks `serve` applies, so `check` and `validate` judge
/// exactly the configuration `serve` would run.
fn compile(config_path: &Path) -> Result<Snapshot, Vec<ConfigError>> {
    let loaded = config::load(Some(config_path))?;
    let log_error = log_settings(&loaded.global.log, None)
        .err()
        .map(|(field, msg)| {
            let mut error = loaded.field_error(field, msg);
            error.field = Some(format!("log.{field}"));
            error
        });
    match (Snapshot::compile(loaded, 1), log_error) {
        (Ok(snapshot), None) => Ok(snapshot),
        (Ok(_), Some(e)) => Err(vec![e]),
        (Err(mut errors), e) => {
            errors.extend(e);
            Err(errors)
        }
    }
}

fn print_errors(errors: &[ConfigError]) {
    for e in errors {
        eprintln!("{e}");
    }
}

fn config_label(path: Option<&Path>) -> String {
    path.map_or_else(
        || "(none: defaults)".to_string(),
        |p| p.display().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn log_settings_are_checked() {
        let mut log = LogConfig::default();
        assert!(log_settings(&log, None).is_ok());
        log.format = "xml".into();
        assert_eq!(log_settings(&log, None).err().map(|e| e.0), Some("format"));
        log.format = "pretty".into();
        log.level = "certgate=[".into();
        assert_eq!(log_settings(&log, None).err().map(|e| e.0), Some("level"));
        // The environment wins over a bad config level.
        assert!(log_settings(&log, Some("debug")).is_ok());
    }
}
