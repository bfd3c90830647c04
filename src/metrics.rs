//! Prometheus metrics (spec §6), served as OpenMetrics text on the admin port.
//!
//! Two kinds live here. Per-request metrics — decisions by role, result and reason,
//! the check latency histogram, untrusted XFCC headers — are updated by the ext_authz
//! adapter as it answers. Everything else is read at scrape time from the counters the
//! components already keep (the reloader's [`ReloadStats`](crate::reload::ReloadStats)
//! and chain-cache counters, [`RevocationCounters`], the audit log's counters, the CRL
//! sources, `/proc/self`), so the request path pays nothing for them.
//!
//! Label values are bounded: `role` is a configured role's name (or ""), `reason` a
//! [`crate::engine::Reason`] code, `result` a fixed word.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::audit::AuditCounters;
use crate::engine::Decision;
use crate::reload::Reloader;
use crate::revocation::LiveRevocation;

/// Check latency buckets, seconds: a cached decision takes microseconds, a cold OCSP
/// or CRL fetch up to the 8 s Envoy deadline.
const LATENCY_BUCKETS: [f64; 18] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// `certgate_decisions_total` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    /// The matched role on allow; the role whose reason is reported on deny ("" when
    /// no role was reached).
    role: Arc<str>,
    result: &'static str,
    /// "ok" on allow, else the deny reason code.
    reason: &'static str,
}

/// `certgate_check_duration_seconds` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

type HistogramFamily = Family<ResultLabels, Histogram, fn() -> Histogram>;

/// The registry and the metrics the request path updates.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    check_duration: HistogramFamily,
    xfcc_ignored: Counter,
    /// The `role` label of a denial no role was reached for, allocated once.
    no_role: Arc<str>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Where scrape-time values come from.
#[derive(Debug, Clone)]
pub struct MetricSources {
    /// Reload counters, generation, roles and chain-cache counters.
    pub reloader: Arc<Reloader>,
    /// CRL/OCSP fetch counters, OCSP cache counters and CRL source states.
    pub live: Arc<LiveRevocation>,
    /// Audit records written, dropped and failed.
    pub audit: Arc<AuditCounters>,
    /// Whether the gRPC server is serving.
    pub ready: Arc<Readiness>,
}

/// Readiness: set once the gRPC server is serving, cleared when it starts draining.
#[derive(Debug, Default)]
pub struct Readiness {
    serving: AtomicBool,
}

impl Readiness {
    /// Marks the server serving (`true`) or not.
    pub fn set(&self, serving: bool) {
        self.serving.store(serving, Ordering::Release);
    }

    /// Whether the server is serving.
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }
}

impl Metrics {
    /// Registers every metric; `sources` are read at each scrape.
    pub fn new(sources: MetricSources) -> Metrics {
        let mut registry = Registry::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "certgate_decisions",
            "Decisions by role, result (allow/deny) and reason code",
            decisions.clone(),
        );
        let check_duration: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register_with_unit(
            "certgate_check_duration",
            "Time from CheckRequest to CheckResponse, including revocation fetches",
            Unit::Seconds,
            check_duration.clone(),
        );
        let xfcc_ignored = Counter::default();
        registry.register(
            "certgate_xfcc_ignored",
            "Requests whose x-forwarded-client-cert header was not believed (untrusted peer)",
            xfcc_ignored.clone(),
        );
        registry.register_collector(Box::new(Scraped(sources)));
        Metrics {
            registry,
            decisions,
            check_duration,
            xfcc_ignored,
            no_role: Arc::from(""),
        }
    }

    /// Counts one decision and its latency.
    pub fn observe(&self, decision: &Decision, elapsed: Duration) {
        let (role, result, reason) = match decision {
            Decision::Allow(grant) => (Arc::clone(&grant.role.name), "allow", "ok"),
            Decision::Deny(denial) => (
                denial
                    .role
                    .clone()
                    .unwrap_or_else(|| Arc::clone(&self.no_role)),
                "deny",
                denial.reason.code(),
            ),
        };
        self.decisions
            .get_or_create(&DecisionLabels {
                role,
                result,
                reason,
            })
            .inc();
        self.check_duration
            .get_or_create(&ResultLabels { result })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts an XFCC header that was not believed.
    pub fn xfcc_ignored(&self) {
        self.xfcc_ignored.inc();
    }

    /// The exposition text (OpenMetrics 1.0, which Prometheus scrapes natively).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// The scrape-time collector.
#[derive(Debug)]
struct Scraped(MetricSources);

/// Writes one metric with fixed label sets.
fn emit<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    series: &[(&[(&str, &str)], M)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, metric) in series {
        metric.encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// Writes one metric without labels.
fn emit_one<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: M,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn counter(v: u64) -> ConstCounter<u64> {
    ConstCounter::new(v)
}

fn gauge(v: i64) -> ConstGauge<i64> {
    ConstGauge::new(v)
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let e = &mut encoder;
        let version = env!("CARGO_PKG_VERSION");
        emit(
            e,
            "certgate_build_info",
            "Build information; always 1",
            MetricType::Gauge,
            &[(&[("version", version)], gauge(1))],
        )?;
        emit_one(
            e,
            "certgate_ready",
            "1 when a valid config is loaded and the gRPC server is serving",
            gauge(i64::from(s.ready.is_serving())),
        )?;

        let stats = s.reloader.stats();
        let snapshot = s.reloader.current();
        emit(
            e,
            "certgate_config_reloads",
            "Configuration reloads: ok (swapped in), failed (rejected, the previous one keeps serving), unchanged",
            MetricType::Counter,
            &[
                (&[("result", "ok")], counter(stats.ok)),
                (&[("result", "failed")], counter(stats.failed)),
                (&[("result", "unchanged")], counter(stats.unchanged)),
            ],
        )?;
        emit_one(
            e,
            "certgate_config_generation",
            "Generation of the configuration being served (1 at start, +1 per swap)",
            gauge(saturating_i64(snapshot.generation)),
        )?;
        emit_one(
            e,
            "certgate_config_reload_failing",
            "1 while the files on disk are rejected (the last good configuration is served)",
            gauge(i64::from(stats.failing)),
        )?;
        emit_one(
            e,
            "certgate_config_roles",
            "Roles in the configuration being served",
            gauge(saturating_i64(snapshot.roles.len() as u64)),
        )?;

        let cache = s.reloader.cache_counters();
        emit(
            e,
            "certgate_chain_cache_requests",
            "Verified-chain cache lookups by presented certificate",
            MetricType::Counter,
            &[
                (&[("result", "hit")], counter(load(&cache.hits))),
                (&[("result", "miss")], counter(load(&cache.misses))),
            ],
        )?;

        let rc = &s.live.counters;
        let ocsp_requests = load(&rc.ocsp_requests);
        let ocsp_failures = load(&rc.ocsp_failures);
        let crl_fetches = load(&rc.crl_fetches);
        let crl_failures = load(&rc.crl_fetch_failures);
        emit(
            e,
            "certgate_ocsp_cache_requests",
            "OCSP answer cache lookups",
            MetricType::Counter,
            &[
                (&[("result", "hit")], counter(load(&rc.ocsp_cache_hits))),
                (&[("result", "miss")], counter(load(&rc.ocsp_cache_misses))),
            ],
        )?;
        emit(
            e,
            "certgate_ocsp_requests",
            "OCSP exchanges with responders: ok (a verified answer) or failed",
            MetricType::Counter,
            &[
                (
                    &[("result", "ok")],
                    counter(ocsp_requests.saturating_sub(ocsp_failures)),
                ),
                (&[("result", "failed")], counter(ocsp_failures)),
            ],
        )?;
        emit(
            e,
            "certgate_crl_fetches",
            "CRL downloads: ok (fetched, verified, in use) or failed",
            MetricType::Counter,
            &[
                (
                    &[("result", "ok")],
                    counter(crl_fetches.saturating_sub(crl_failures)),
                ),
                (&[("result", "failed")], counter(crl_failures)),
            ],
        )?;
        let sources = s.live.crl_sources();
        let (mut ok, mut failing, mut pending) = (0, 0, 0);
        for source in &sources {
            if source.last_attempt.is_none() {
                pending += 1;
            } else if source.last_error.is_some() {
                failing += 1;
            } else {
                ok += 1;
            }
        }
        emit(
            e,
            "certgate_crl_sources",
            "Fetched CRL sources by state: ok, failing (last attempt failed; the last good list is kept), pending (never tried)",
            MetricType::Gauge,
            &[
                (&[("state", "ok")], gauge(ok)),
                (&[("state", "failing")], gauge(failing)),
                (&[("state", "pending")], gauge(pending)),
            ],
        )?;

        // Every CRL in use with a nextUpdate: files from crls_dir and fetched lists.
        // `... - time() < 0` is a stale list (denying or allowing per `crl_expired`).
        let mut next_updates: Vec<(&str, &str, i64)> = snapshot
            .crls
            .entries()
            .iter()
            .filter_map(|c| Some((c.name.as_str(), "file", c.next_update?)))
            .collect();
        for source in &sources {
            if let Some(next) = source.crl.as_ref().and_then(|c| c.next_update) {
                next_updates.push((source.name.as_str(), source.origin.as_str(), next));
            }
        }
        let mut family = e.encode_descriptor(
            "certgate_crl_next_update_timestamp_seconds",
            "nextUpdate of each CRL in use (crl: its name, or the URL of a fetched list; origin: file, crl_urls or distribution_point), Unix seconds",
            None,
            MetricType::Gauge,
        )?;
        for (crl, origin, next) in next_updates {
            gauge(next).encode(family.encode_family(&[("crl", crl), ("origin", origin)])?)?;
        }
        drop(snapshot);

        let audit = &s.audit;
        emit(
            e,
            "certgate_audit_records",
            "Audit records: written, dropped (queue full) or failed (write error)",
            MetricType::Counter,
            &[
                (&[("result", "written")], counter(load(&audit.written))),
                (&[("result", "dropped")], counter(load(&audit.dropped))),
                (&[("result", "failed")], counter(load(&audit.failed))),
            ],
        )?;
        encode_process(e)
    }
}

fn load(v: &std::sync::atomic::AtomicU64) -> u64 {
    v.load(Ordering::Relaxed)
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

// === process ===

/// Linux's USER_HZ, the unit of /proc/<pid>/stat times (100 on every architecture
/// Linux exports to user space).
const USER_HZ: f64 = 100.0;

/// The standard `process_*` metrics from /proc (absent where /proc is not Linux's).
fn encode_process(e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let Some(p) = ProcessStats::read() else {
        return Ok(());
    };
    emit_one(
        e,
        "process_cpu_seconds",
        "User and system CPU time spent, seconds",
        ConstCounter::new(p.cpu_seconds),
    )?;
    emit_one(
        e,
        "process_resident_memory_bytes",
        "Resident memory size, bytes",
        gauge(p.resident_bytes),
    )?;
    emit_one(
        e,
        "process_open_fds",
        "Open file descriptors",
        gauge(p.open_fds),
    )?;
    emit_one(
        e,
        "process_start_time_seconds",
        "Start time of the process, Unix seconds",
        ConstGauge::new(p.start_time_seconds),
    )
}

/// What /proc says about this process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// utime + stime.
    pub cpu_seconds: f64,
    /// VmRSS.
    pub resident_bytes: i64,
    /// Entries of /proc/self/fd.
    pub open_fds: i64,
    /// Boot time + start time after boot.
    pub start_time_seconds: f64,
}

impl ProcessStats {
    /// Reads /proc/self; `None` when it is not there or not understood.
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // man proc: utime is field 14, stime 15, starttime 22; `fields[0]` is field 3.
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let cpu_seconds = (field(14)? + field(15)?) as f64 / USER_HZ;
        let started_after_boot = field(22)? as f64 / USER_HZ;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
        let resident_bytes = std::fs::read_to_string("/proc/self/status")
            .ok()?
            .lines()
            .find_map(|l| {
                let kb = l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?;
                kb.trim().parse::<i64>().ok()
            })?
            .saturating_mul(1024);
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as i64;
        Some(ProcessStats {
            cpu_seconds,
            resident_bytes,
            open_fds,
            start_time_seconds: boot as f64 + started_after_boot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stats_are_plausible() {
        let Some(p) = ProcessStats::read() else {
            return; // not Linux
        };
        assert!(p.resident_bytes > 1024 * 1024, "{p:?}");
        assert!(p.open_fds >= 3, "{p:?}");
        let now = crate::clock::now() as f64;
        assert!(
            p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 86_400.0 * 365.0,
            "{p:?}"
        );
        assert!(p.cpu_seconds >= 0.0);
    }
}
