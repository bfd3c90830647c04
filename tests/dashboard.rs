//! The Grafana dashboard (`deploy/grafana/certgate-dashboard.json`) and the Prometheus
//! alerting rules (`deploy/grafana/alerts.yaml`) only query metrics that certgate
//! serves, and are well-formed enough to import and load: every panel has a
//! datasource and a unique id, every query is filtered by the `job`/`instance`
//! variables and uses `$__rate_interval`, every alert has `expr`, `for`,
//! `labels.severity` and `annotations.summary`.
//!
//! Metric names are the tokens that start with `certgate_` or `process_` in every
//! PromQL expression, outside string literals; for a histogram, the `_bucket`, `_sum`
//! and `_count` series count as the histogram itself.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

/// Every metric name certgate's `/metrics` serves (histograms by their base name).
/// `known_metrics_are_what_a_live_certgate_serves` holds it equal to a real scrape.
const KNOWN_METRICS: &[&str] = &[
    "certgate_build_info",
    "certgate_decisions_total",
    "certgate_check_duration_seconds",
    "certgate_chain_cache_requests_total",
    "certgate_ocsp_cache_requests_total",
    "certgate_ocsp_requests_total",
    "certgate_crl_fetches_total",
    "certgate_crl_sources",
    "certgate_crl_next_update_timestamp_seconds",
    "certgate_config_reloads_total",
    "certgate_config_generation",
    "certgate_config_reload_failing",
    "certgate_config_roles",
    "certgate_xfcc_ignored_total",
    "certgate_audit_records_total",
    "certgate_ready",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_start_time_seconds",
];

/// The histograms among [`KNOWN_METRICS`]: queried as `<name>_bucket`, `_sum`, `_count`.
const HISTOGRAMS: &[&str] = &["certgate_check_duration_seconds"];

const DASHBOARD: &str = "deploy/grafana/certgate-dashboard.json";
const ALERTS: &str = "deploy/grafana/alerts.yaml";

/// The conditions the alert rules must cover, by the metric each one is about.
const ALERTED_METRICS: &[&str] = &[
    "certgate_config_reload_failing",
    "certgate_decisions_total",
    "certgate_audit_records_total",
    "certgate_crl_sources",
    "certgate_ocsp_requests_total",
    "certgate_ready",
    "certgate_check_duration_seconds",
];

fn read(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

fn alerts() -> Value {
    serde_saphyr::from_str::<Value>(&read(ALERTS)).unwrap_or_else(|e| panic!("{ALERTS}: {e}"))
}

/// One metric named in an expression, with its `{...}` selector when it has one.
#[derive(Debug, PartialEq, Eq)]
struct MetricUse {
    /// The series name as written (`certgate_check_duration_seconds_bucket`).
    series: String,
    /// The metric it belongs to (`certgate_check_duration_seconds`).
    metric: String,
    selector: Option<String>,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// The index just past the string literal that starts at `start` (a `"`, `'` or
/// backtick); backslash escapes inside `"` and `'` strings, none in raw strings.
fn skip_string(b: &[u8], start: usize) -> usize {
    let quote = b[start];
    let mut i = start + 1;
    while i < b.len() {
        if b[i] == b'\\' && quote != b'`' {
            i += 2;
            continue;
        }
        if b[i] == quote {
            return i + 1;
        }
        i += 1;
    }
    panic!(
        "unterminated string literal in {:?}",
        String::from_utf8_lossy(b)
    );
}

/// The index just past the `close` that ends the bracket opened at `start`, skipping
/// string literals.
fn bracket_end(b: &[u8], start: usize, close: u8) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = skip_string(b, i),
            c if c == close => return i + 1,
            _ => i += 1,
        }
    }
    panic!(
        "unclosed {:?} in {:?}",
        b[start] as char,
        String::from_utf8_lossy(b)
    );
}

/// The metric a series name belongs to: a histogram's `_bucket`/`_sum`/`_count`
/// series map to the histogram; every other name is its own metric.
fn metric_of(series: &str) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = series.strip_suffix(suffix)
            && HISTOGRAMS.contains(&base)
        {
            return base.to_string();
        }
    }
    series.to_string()
}

/// Every `certgate_*` / `process_*` metric an expression names, outside strings.
fn metric_uses(expr: &str) -> Vec<MetricUse> {
    let b = expr.as_bytes();
    let mut uses = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = skip_string(b, i),
            c if is_ident_start(c) && (i == 0 || !is_ident(b[i - 1])) => {
                let start = i;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                let word = &expr[start..i];
                if !(word.starts_with("certgate_") || word.starts_with("process_")) {
                    continue;
                }
                let mut j = i;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                let selector = (j < b.len() && b[j] == b'{').then(|| {
                    let end = bracket_end(b, j, b'}');
                    expr[j..end].to_string()
                });
                uses.push(MetricUse {
                    series: word.to_string(),
                    metric: metric_of(word),
                    selector,
                });
            }
            _ => i += 1,
        }
    }
    uses
}

/// The contents of every `[...]` range outside strings (`5m`, `$__rate_interval`).
fn ranges(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = skip_string(b, i),
            b'[' => {
                let end = bracket_end(b, i, b']');
                out.push(expr[i + 1..end - 1].trim().to_string());
                i = end;
            }
            _ => i += 1,
        }
    }
    out
}

/// `()`, `[]` and `{}` balance outside strings.
fn balanced(expr: &str) -> bool {
    let b = expr.as_bytes();
    let mut stack = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => {
                i = skip_string(b, i);
                continue;
            }
            c @ (b'(' | b'[' | b'{') => stack.push(c),
            c @ (b')' | b']' | b'}') => {
                let open = match c {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                if stack.pop() != Some(open) {
                    return false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    stack.is_empty()
}

/// Every panel, rows and the panels inside collapsed rows included.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in panels.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    assert!(!out.is_empty(), "{DASHBOARD}: no panels");
    out
}

fn title(panel: &Value) -> String {
    format!(
        "panel {} {:?}",
        panel["id"],
        panel["title"].as_str().unwrap_or("")
    )
}

/// (where, expression) for every panel query of the dashboard.
fn panel_exprs(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in all_panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: a target without expr", title(panel)));
            out.push((title(panel), expr.to_string()));
        }
    }
    out
}

/// (where, query) for every query variable of the dashboard.
fn variable_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"]
            .get("query")
            .or(Some(&var["query"]))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("variable {}: no query", var["name"]));
        out.push((format!("variable {}", var["name"]), query.to_string()));
    }
    out
}

fn alert_rules(alerts: &Value) -> Vec<&Value> {
    let groups = alerts["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("{ALERTS}: no `groups` list"));
    let mut rules = Vec::new();
    for group in groups {
        assert!(
            group["name"].as_str().is_some_and(|n| !n.is_empty()),
            "{ALERTS}: a group without a name"
        );
        let group_rules = group["rules"]
            .as_array()
            .unwrap_or_else(|| panic!("{ALERTS}: group {} has no rules", group["name"]));
        rules.extend(group_rules);
    }
    assert!(!rules.is_empty(), "{ALERTS}: no rules");
    rules
}

/// The metrics that `exprs` name that are not in [`KNOWN_METRICS`], with where.
fn unknown_metrics(exprs: &[(String, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let mut unknown: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (place, expr) in exprs {
        let uses = metric_uses(expr);
        assert!(
            !uses.is_empty(),
            "{place}: names no certgate metric: {expr}"
        );
        for u in uses {
            if !KNOWN_METRICS.contains(&u.metric.as_str()) {
                unknown.entry(u.series).or_default().insert(place.clone());
            }
        }
    }
    unknown
}

/// A Prometheus duration: one or more `<digits><unit>`, unit one of ms s m h d w y.
fn is_duration(text: &str) -> bool {
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "s", "m", "h", "d", "w", "y"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn metric_names_are_extracted_outside_strings_and_histograms_fold() {
    let uses = metric_uses(
        r#"histogram_quantile(0.99, sum by (le) (rate(certgate_check_duration_seconds_bucket{job=~"$job", reason="certgate_not_a_metric"}[$__rate_interval])))
           / on() group_left certgate_decisions_total + process_cpu_seconds_total offset 5m
           + xcertgate_nope + certgate_other_count"#,
    );
    let got: Vec<(&str, &str, bool)> = uses
        .iter()
        .map(|u| (u.series.as_str(), u.metric.as_str(), u.selector.is_some()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "certgate_check_duration_seconds_bucket",
                "certgate_check_duration_seconds",
                true
            ),
            (
                "certgate_decisions_total",
                "certgate_decisions_total",
                false
            ),
            (
                "process_cpu_seconds_total",
                "process_cpu_seconds_total",
                false
            ),
            // `_count` is stripped for histograms only.
            ("certgate_other_count", "certgate_other_count", false),
        ]
    );
    assert_eq!(
        uses[0].selector.as_deref(),
        Some(r#"{job=~"$job", reason="certgate_not_a_metric"}"#)
    );
    assert_eq!(
        ranges(r#"rate(a{x="[1m]"}[5m]) + rate(b[$__rate_interval])"#),
        ["5m", "$__rate_interval"]
    );
    assert!(balanced(r#"sum(rate(a{x=")"}[5m]))"#));
    assert!(!balanced("sum(rate(a[5m])"));
    assert!(is_duration("5m") && is_duration("1h30m") && is_duration("0m"));
    assert!(!is_duration("") && !is_duration("5") && !is_duration("m5"));
    for m in KNOWN_METRICS {
        assert!(
            m.starts_with("certgate_") || m.starts_with("process_"),
            "{m}: the extractor only finds certgate_* and process_* names"
        );
    }
}

#[test]
fn dashboard_queries_only_known_metrics() {
    let d = dashboard();
    let mut exprs = panel_exprs(&d);
    exprs.extend(variable_queries(&d));
    let unknown = unknown_metrics(&exprs);
    assert!(
        unknown.is_empty(),
        "{DASHBOARD}: metrics certgate does not serve: {unknown:#?}"
    );
}

#[test]
fn alerts_query_only_known_metrics() {
    let a = alerts();
    let exprs: Vec<(String, String)> = alert_rules(&a)
        .into_iter()
        .map(|r| {
            (
                format!("alert {}", r["alert"]),
                r["expr"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let unknown = unknown_metrics(&exprs);
    assert!(
        unknown.is_empty(),
        "{ALERTS}: metrics certgate does not serve: {unknown:#?}"
    );
}

#[test]
fn every_panel_has_a_datasource_and_a_unique_id() {
    let d = dashboard();
    let mut ids = BTreeSet::new();
    for panel in all_panels(&d) {
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: no numeric id", title(panel)));
        assert!(ids.insert(id), "{}: duplicate id {id}", title(panel));
        assert!(
            panel["title"].as_str().is_some_and(|t| !t.is_empty()),
            "panel {id}: no title"
        );
        for key in ["h", "w", "x", "y"] {
            assert!(
                panel["gridPos"][key].is_u64(),
                "{}: gridPos.{key} missing",
                title(panel)
            );
        }
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"],
            "${datasource}",
            "{}: datasource must be the $datasource variable",
            title(panel)
        );
        let targets = panel["targets"]
            .as_array()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| panic!("{}: no targets", title(panel)));
        let mut refs = BTreeSet::new();
        for target in targets {
            assert_eq!(
                target["datasource"]["uid"],
                "${datasource}",
                "{}: a target without the $datasource variable",
                title(panel)
            );
            let r = target["refId"].as_str().unwrap_or_default();
            assert!(
                !r.is_empty() && refs.insert(r),
                "{}: refId {r:?} missing or repeated",
                title(panel)
            );
        }
    }
}

#[test]
fn dashboard_has_variables_and_filters_every_query_by_them() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 39),
        "schemaVersion {} < 39",
        d["schemaVersion"]
    );
    assert!(
        d["uid"].as_str().is_some_and(|u| !u.is_empty()),
        "no dashboard uid"
    );
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    for name in ["job", "instance"] {
        assert_eq!(var(name)["type"], "query", "${name}");
        assert_eq!(var(name)["datasource"]["uid"], "${datasource}", "${name}");
    }

    for (place, expr) in panel_exprs(&d) {
        assert!(balanced(&expr), "{place}: unbalanced brackets: {expr}");
        for u in metric_uses(&expr) {
            let selector = u.selector.as_deref().unwrap_or("");
            assert!(
                selector.contains(r#"job=~"$job""#)
                    && selector.contains(r#"instance=~"$instance""#),
                "{place}: {} is not filtered by $job and $instance: {expr}",
                u.series
            );
        }
        for range in ranges(&expr) {
            assert!(
                range == "$__rate_interval" || range == "$__range",
                "{place}: range [{range}]: use [$__rate_interval] (or [$__range] for totals over the time range): {expr}"
            );
        }
    }
}

#[test]
fn every_alert_has_expr_for_severity_and_summary() {
    let a = alerts();
    let mut names = BTreeSet::new();
    let mut alerted = BTreeSet::new();
    for rule in alert_rules(&a) {
        let name = rule["alert"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| panic!("{ALERTS}: a rule without `alert`: {rule}"));
        assert!(names.insert(name), "alert {name}: defined twice");
        let expr = rule["expr"]
            .as_str()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| panic!("alert {name}: no expr"));
        assert!(balanced(expr), "alert {name}: unbalanced brackets: {expr}");
        for range in ranges(expr) {
            let range = range.split_once(':').map_or(range.as_str(), |(r, _)| r);
            assert!(is_duration(range), "alert {name}: range [{range}]");
        }
        alerted.extend(metric_uses(expr).into_iter().map(|u| u.metric));
        let for_ = rule["for"]
            .as_str()
            .unwrap_or_else(|| panic!("alert {name}: no `for`"));
        assert!(is_duration(for_), "alert {name}: for {for_:?}");
        let severity = rule["labels"]["severity"]
            .as_str()
            .unwrap_or_else(|| panic!("alert {name}: no labels.severity"));
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "alert {name}: severity {severity:?}"
        );
        assert!(
            rule["annotations"]["summary"]
                .as_str()
                .is_some_and(|s| !s.trim().is_empty()),
            "alert {name}: no annotations.summary"
        );
    }
    for metric in ALERTED_METRICS {
        assert!(alerted.contains(*metric), "no alert rule uses {metric}");
    }
}

/// [`KNOWN_METRICS`] is exactly what a running certgate exports: every family it
/// declares (`# TYPE` lines, present before any sample), counters with `_total`.
/// A metric renamed in the code fails here before a dashboard silently goes blank.
#[test]
fn known_metrics_are_what_a_live_certgate_serves() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("roles")).expect("roles dir");
    let config = dir.path().join("certgate.yaml");
    std::fs::write(
        &config,
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nroles_dir: roles\naudit: { sink: none }\n",
    )
    .expect("config");
    let certgate = common::envoy::Certgate::start(&config);
    let admin = certgate.admin_addr.expect("admin_addr announced");
    // One decision (an empty CheckRequest: no_client_certificate), so that the
    // per-request families have a sample and are declared.
    let grpc = certgate.grpc_addr;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async move {
            use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
            let mut client = AuthorizationClient::connect(format!("http://{grpc}"))
                .await
                .expect("connect to certgate");
            let response = client
                .check(envoy_types::ext_authz::v3::pb::CheckRequest::default())
                .await
                .expect("check");
            assert_eq!(response.into_inner().status.map(|s| s.code), Some(7));
        });
    let scrape = common::scrape::Scrape::fetch(admin);
    let served: BTreeSet<String> = scrape
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| match kind {
            "counter" => format!("{name}_total"),
            _ => name.to_string(),
        })
        .collect();
    let known: BTreeSet<String> = KNOWN_METRICS.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        served, known,
        "KNOWN_METRICS (and so the dashboard, alerts and docs/observability.md) out of step with /metrics:\n{}",
        scrape.text
    );
}
