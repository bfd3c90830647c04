//! Live revocation: CRLs fetched from `crl_urls` and distribution points, and OCSP
//! answers. One [`LiveRevocation`] serves every request and outlives reloads.
//!
//! - **CRL sources** each have one task: it fetches, verifies and publishes the list,
//!   then sleeps until just before the list's nextUpdate (with jitter), or backs off
//!   after a failure while the last good list stays in use. A reload wakes the `crl_urls`
//!   tasks and SIGHUP every task
//!   (the operator's way to ask for a refresh now). Requests never fetch: a request that
//!   meets a distribution point for the first time starts its source and waits a
//!   bounded time for the first attempt, as does every concurrent request for it.
//! - **OCSP answers** live in a moka cache keyed by CertID (with the responder and the
//!   role's responder anchors), each until its nextUpdate (at most 24 h); concurrent
//!   misses for one key share one fetch, and a hot entry is refreshed in the background
//!   before it expires so steady traffic never waits on a responder.
//!
//! The engine sees all of it through [`View`], an in-memory [`LiveView`]: what it lacks
//! it records as wanted, [`LiveRevocation::decide`] fetches that and decides again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{Notify, watch};

use super::crl::{CrlEntry, CrlIndex};
use super::http::{FetchError, HttpClient};
use super::ocsp::{self, OcspAnswer, OcspError, OcspTarget};
use super::{LiveView, OcspKey, OcspLookup, OcspQuestion, OcspResponder};
use crate::config::schema::{CdpMode, CrlFetchConfig, CrlUrl};
use crate::pki::cert::ParsedCert;
use crate::snapshot::{OcspRole, Snapshot};

/// Longest an OCSP answer is kept, whatever its nextUpdate says.
const OCSP_MAX_TTL: i64 = 24 * 3600;
/// How long an answer without nextUpdate is kept.
const OCSP_NO_NEXT_UPDATE_TTL: i64 = 60;
/// How long a failed OCSP exchange is remembered, so that requests during a responder
/// outage get the role's verdict at once instead of each waiting for a timeout.
const OCSP_FAILURE_TTL: i64 = 5;
/// An answer is refreshed in the background once this fraction of its life is gone.
const OCSP_REFRESH_AHEAD: f64 = 0.75;
/// Shortest and longest wait before retrying a CRL source that failed.
const CRL_RETRY_MIN: Duration = Duration::from_secs(1);
const CRL_RETRY_MAX: Duration = Duration::from_secs(300);
/// Most passes of fetch-and-decide for one request: enough for a distribution point
/// and three responders tried in turn (each pass waits only for what is new).
const MAX_PASSES: usize = 4;
/// Most retries of one OCSP query, whatever a role asks for.
const OCSP_MAX_RETRIES: u32 = 10;
/// Accept header of CRL downloads.
const CRL_ACCEPT: &str =
    "application/pkix-crl, application/x-pkcs7-crl, application/octet-stream, */*";

/// Counters the metrics layer reads.
#[derive(Debug, Default)]
pub struct RevocationCounters {
    pub crl_fetches: AtomicU64,
    pub crl_fetch_failures: AtomicU64,
    pub ocsp_requests: AtomicU64,
    pub ocsp_failures: AtomicU64,
    pub ocsp_cache_hits: AtomicU64,
    pub ocsp_cache_misses: AtomicU64,
}

/// Settings taken from the serving snapshot.
#[derive(Debug, Clone)]
struct LiveConfig {
    crl_urls: Vec<CrlUrl>,
    cdp: CdpMode,
    fetch: CrlFetchConfig,
    ocsp_timeout: Duration,
    ocsp_nonce: bool,
    /// Every CA certificate of every role: fetched CRLs must verify with one named as
    /// their issuer, when there is one.
    known_cas: Vec<Arc<ParsedCert>>,
}

impl LiveConfig {
    fn from_snapshot(snapshot: &Snapshot) -> LiveConfig {
        let g = &snapshot.settings.global;
        LiveConfig {
            crl_urls: g.crl_urls.clone(),
            cdp: g.crl_distribution_points,
            fetch: g.crl_fetch.clone(),
            ocsp_timeout: g.ocsp.timeout.0,
            ocsp_nonce: g.ocsp.nonce,
            known_cas: snapshot.cas.clone(),
        }
    }
}

/// Where a CRL source came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceOrigin {
    /// `crl_urls`.
    Configured,
    /// A certificate's CRL distribution point.
    DistributionPoint,
}

impl SourceOrigin {
    /// As shown in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceOrigin::Configured => "crl_urls",
            SourceOrigin::DistributionPoint => "distribution_point",
        }
    }
}

/// One fetched CRL source.
struct Source {
    name: String,
    url: String,
    origin: SourceOrigin,
    state: Mutex<SourceState>,
    /// Wakes the task for a refresh now.
    wake: Notify,
    /// Attempts finished so far (waiters watch it).
    attempts: watch::Sender<u64>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

#[derive(Debug, Default, Clone)]
struct SourceState {
    entry: Option<Arc<CrlEntry>>,
    last_attempt: Option<i64>,
    last_success: Option<i64>,
    last_error: Option<String>,
    fetches: u64,
    failures: u64,
    next_refresh: Option<i64>,
    retry: Option<Duration>,
}

/// What a CRL source holds, for the read API and `certgate check`.
#[derive(Debug, Clone)]
pub struct CrlSourceReport {
    pub name: String,
    pub url: String,
    pub origin: SourceOrigin,
    /// The list in use (the last good one).
    pub crl: Option<Arc<CrlEntry>>,
    pub last_attempt: Option<i64>,
    pub last_success: Option<i64>,
    /// The last attempt's error; `None` when it succeeded.
    pub last_error: Option<String>,
    pub fetches: u64,
    pub failures: u64,
    pub next_refresh: Option<i64>,
}

/// The fetched CRLs as requests see them.
#[derive(Debug, Default)]
struct Published {
    index: CrlIndex,
    generation: u64,
    /// URLs whose first attempt has finished.
    tried: HashSet<String>,
    /// `crl_fetch.max_distribution_points` is reached: new ones are not fetched, so
    /// decisions do not wait for them (and may be cached).
    distribution_points_full: bool,
}

#[derive(Debug)]
enum OcspEntry {
    Answer {
        answer: Arc<OcspAnswer>,
        fetched_at: i64,
        expires_at: i64,
    },
    Failed {
        hard: bool,
        detail: String,
        expires_at: i64,
    },
}

impl OcspEntry {
    /// What a request learns from this entry.
    fn lookup(&self) -> OcspLookup {
        match self {
            OcspEntry::Answer { answer, .. } => OcspLookup::Answer(Arc::clone(answer)),
            OcspEntry::Failed { hard, detail, .. } => OcspLookup::Failed {
                hard: *hard,
                detail: detail.clone(),
            },
        }
    }

    /// A good answer still current at `now`: a failure must not replace it.
    fn holds_answer(&self, now: i64) -> bool {
        matches!(self, OcspEntry::Answer { expires_at, .. } if *expires_at > now)
    }

    fn failed(hard: bool, detail: String, now: i64) -> OcspEntry {
        OcspEntry::Failed {
            hard,
            detail,
            expires_at: now + OCSP_FAILURE_TTL,
        }
    }

    fn expires_at(&self) -> i64 {
        match self {
            OcspEntry::Answer { expires_at, .. } | OcspEntry::Failed { expires_at, .. } => {
                *expires_at
            }
        }
    }
}

struct OcspExpiry;

impl moka::Expiry<OcspKey, Arc<OcspEntry>> for OcspExpiry {
    fn expire_after_create(
        &self,
        _key: &OcspKey,
        value: &Arc<OcspEntry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        let left = value.expires_at() - crate::clock::now();
        Some(Duration::from_secs(left.clamp(0, OCSP_MAX_TTL) as u64))
    }

    fn expire_after_update(
        &self,
        key: &OcspKey,
        value: &Arc<OcspEntry>,
        updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, updated_at)
    }
}

/// One OCSP question a decision wants answered.
#[derive(Debug, Clone)]
struct OcspWant {
    key: OcspKey,
    target: Arc<OcspTarget>,
    responder: Arc<str>,
    anchors: Vec<Arc<ParsedCert>>,
    max_retries: u32,
    /// Answers cached at least this long ago are asked again rather than reused
    /// (`ocsp_this_update_max_age` made them too old).
    refetch_after: Option<i64>,
}

#[derive(Debug, Default)]
struct Wants {
    distribution_points: Vec<String>,
    ocsp: Vec<OcspWant>,
    refresh: Vec<OcspWant>,
}

/// CRL fetching and OCSP, shared by every request.
pub struct LiveRevocation {
    http: HttpClient,
    runtime: tokio::runtime::Handle,
    this: Weak<LiveRevocation>,
    config: ArcSwap<LiveConfig>,
    sources: Mutex<HashMap<String, Arc<Source>>>,
    published: ArcSwap<Published>,
    /// Serializes publishing so generations only grow.
    publish_lock: Mutex<()>,
    ocsp_cache: ArcSwap<moka::sync::Cache<OcspKey, Arc<OcspEntry>>>,
    ocsp_capacity: AtomicU64,
    ocsp_inflight: Mutex<HashMap<OcspKey, watch::Receiver<Option<OcspLookup>>>>,
    dp_limit_warned: std::sync::atomic::AtomicBool,
    /// Counters for metrics.
    pub counters: RevocationCounters,
}

impl std::fmt::Debug for LiveRevocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRevocation")
            .field("generation", &self.published.load().generation)
            .finish()
    }
}

fn ocsp_cache(capacity: u64) -> moka::sync::Cache<OcspKey, Arc<OcspEntry>> {
    moka::sync::Cache::builder()
        .max_capacity(capacity.max(1))
        .expire_after(OcspExpiry)
        .build()
}

impl LiveRevocation {
    /// Starts live revocation for `snapshot`'s settings: every `crl_urls` source is
    /// fetched at once. Must be called within a Tokio runtime (its tasks run there).
    pub fn new(snapshot: &Snapshot) -> Arc<LiveRevocation> {
        let capacity = snapshot.settings.global.ocsp.cache_size;
        let live = Arc::new_cyclic(|this| LiveRevocation {
            http: HttpClient::new(),
            runtime: tokio::runtime::Handle::current(),
            this: this.clone(),
            config: ArcSwap::from_pointee(LiveConfig::from_snapshot(snapshot)),
            sources: Mutex::new(HashMap::new()),
            published: ArcSwap::from_pointee(Published::default()),
            publish_lock: Mutex::new(()),
            ocsp_cache: ArcSwap::from_pointee(ocsp_cache(capacity)),
            ocsp_capacity: AtomicU64::new(capacity),
            ocsp_inflight: Mutex::new(HashMap::new()),
            dp_limit_warned: std::sync::atomic::AtomicBool::new(false),
            counters: RevocationCounters::default(),
        });
        live.reconcile(false);
        live
    }

    /// Takes a new snapshot's settings: new `crl_urls` start, removed ones stop, and
    /// the remaining `crl_urls` are refreshed now (a reload is how an operator asks).
    /// Distribution points keep their schedule ([`LiveRevocation::refresh_all`], on
    /// SIGHUP, refreshes them too), so a role edit does not cause a burst of downloads.
    pub fn apply(&self, snapshot: &Snapshot) {
        let config = LiveConfig::from_snapshot(snapshot);
        let capacity = snapshot.settings.global.ocsp.cache_size;
        if self.ocsp_capacity.swap(capacity, Ordering::Relaxed) != capacity {
            self.ocsp_cache.store(Arc::new(ocsp_cache(capacity)));
        }
        self.config.store(Arc::new(config));
        self.reconcile(true);
    }

    /// Refreshes every CRL source now.
    pub fn refresh_all(&self) {
        for source in lock(&self.sources).values() {
            source.wake.notify_one();
        }
    }

    fn reconcile(&self, refresh: bool) {
        let config = self.config.load();
        let mut removed = Vec::new();
        {
            let mut sources = lock(&self.sources);
            sources.retain(|url, source| {
                let keep = match source.origin {
                    SourceOrigin::Configured => config.crl_urls.iter().any(|c| &c.url == url),
                    SourceOrigin::DistributionPoint => config.cdp == CdpMode::Fetch,
                };
                if !keep {
                    removed.push(Arc::clone(source));
                }
                keep
            });
            for crl_url in &config.crl_urls {
                match sources.get(&crl_url.url) {
                    Some(s) if s.origin == SourceOrigin::Configured && s.name == crl_url.name => {
                        if refresh {
                            s.wake.notify_one();
                        }
                    }
                    _ => {
                        if let Some(old) = sources.remove(&crl_url.url) {
                            removed.push(old);
                        }
                        let source = self.start_source(
                            &crl_url.name,
                            &crl_url.url,
                            SourceOrigin::Configured,
                        );
                        sources.insert(crl_url.url.clone(), source);
                    }
                }
            }
        }
        for source in removed {
            if let Some(task) = lock(&source.task).take() {
                task.abort();
            }
        }
        self.publish();
    }

    fn start_source(&self, name: &str, url: &str, origin: SourceOrigin) -> Arc<Source> {
        let source = Arc::new(Source {
            name: name.to_string(),
            url: url.to_string(),
            origin,
            state: Mutex::new(SourceState::default()),
            wake: Notify::new(),
            attempts: watch::Sender::new(0),
            task: Mutex::new(None),
        });
        let this = self.this.clone();
        let task_source = Arc::clone(&source);
        let handle = self.runtime.spawn(async move {
            loop {
                let Some(live) = this.upgrade() else { return };
                let delay = live.fetch_crl(&task_source).await;
                drop(live);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = task_source.wake.notified() => {}
                }
            }
        });
        *lock(&source.task) = Some(handle.abort_handle());
        source
    }

    /// One attempt at a source: fetch, parse, verify, keep or refuse; publish. Returns
    /// how long to wait before the next attempt.
    async fn fetch_crl(&self, source: &Source) -> Duration {
        let config = self.config.load_full();
        let started = crate::clock::now();
        let max = usize::try_from(config.fetch.max_size).unwrap_or(usize::MAX);
        let fetched = self
            .http
            .get(&source.url, CRL_ACCEPT, config.fetch.timeout.0, max)
            .await
            .map_err(|e| e.to_string());
        let held = lock(&source.state).entry.clone();
        let result = match fetched {
            Err(e) => Err(e),
            Ok(body) => {
                // Parsing a large list takes a while: not on a runtime worker.
                let (name, url, origin) = (source.name.clone(), source.url.clone(), source.origin);
                let config = Arc::clone(&config);
                tokio::task::spawn_blocking(move || {
                    accept_crl(&name, &url, origin, &body, &config, held.as_deref())
                })
                .await
                .unwrap_or_else(|e| Err(format!("CRL parsing stopped: {e}")))
            }
        };
        let now = crate::clock::now();
        self.counters.crl_fetches.fetch_add(1, Ordering::Relaxed);
        let delay = {
            let mut state = lock(&source.state);
            state.fetches += 1;
            state.last_attempt = Some(started);
            let delay = match result {
                Ok(crl) => {
                    tracing::info!(
                        name = %source.name,
                        url = %source.url,
                        issuer = %crl.issuer,
                        entries = crl.len(),
                        next_update = crl.next_update.map(crate::clock::rfc3339).unwrap_or_default(),
                        "CRL fetched"
                    );
                    let delay = refresh_delay(&crl, now, &config.fetch, state.retry);
                    state.retry = if crl.next_update.is_some_and(|n| n <= now) {
                        Some(delay)
                    } else {
                        None
                    };
                    state.entry = Some(Arc::new(crl));
                    state.last_success = Some(now);
                    state.last_error = None;
                    delay
                }
                Err(error) => {
                    self.counters
                        .crl_fetch_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        name = %source.name,
                        url = %source.url,
                        %error,
                        keeping = state.entry.is_some(),
                        "CRL fetch failed; the last good list stays in use"
                    );
                    state.failures += 1;
                    state.last_error = Some(error);
                    let delay = state
                        .retry
                        .map_or(CRL_RETRY_MIN, |d| (d * 2).min(CRL_RETRY_MAX));
                    state.retry = Some(delay);
                    delay
                }
            };
            state.next_refresh = Some(now + delay.as_secs() as i64);
            delay
        };
        self.publish();
        source.attempts.send_modify(|n| *n += 1);
        delay
    }

    /// Rebuilds what requests see from every source's current list.
    fn publish(&self) {
        let _guard = lock(&self.publish_lock);
        let mut entries = Vec::new();
        let mut tried = HashSet::new();
        let config = self.config.load();
        let sources = lock(&self.sources);
        let distribution_points = sources
            .values()
            .filter(|s| s.origin == SourceOrigin::DistributionPoint)
            .count();
        let distribution_points_full = config.cdp == CdpMode::Fetch
            && distribution_points >= config.fetch.max_distribution_points;
        for (url, source) in sources.iter() {
            let state = lock(&source.state);
            if let Some(entry) = &state.entry {
                entries.push(Arc::clone(entry));
            }
            if state.last_attempt.is_some() {
                tried.insert(url.clone());
            }
        }
        drop(sources);
        let current = self.published.load();
        let same = current.tried == tried
            && current.distribution_points_full == distribution_points_full
            && current.index.entries().len() == entries.len()
            && current
                .index
                .entries()
                .iter()
                .zip(&entries)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        if same {
            return;
        }
        self.published.store(Arc::new(Published {
            index: CrlIndex::from_entries(entries),
            generation: current.generation + 1,
            tried,
            distribution_points_full,
        }));
    }

    /// Every fetched CRL source, by name.
    pub fn crl_sources(&self) -> Vec<CrlSourceReport> {
        let mut out: Vec<CrlSourceReport> = lock(&self.sources)
            .values()
            .map(|s| {
                let st = lock(&s.state).clone();
                CrlSourceReport {
                    name: s.name.clone(),
                    url: s.url.clone(),
                    origin: s.origin,
                    crl: st.entry,
                    last_attempt: st.last_attempt,
                    last_success: st.last_success,
                    last_error: st.last_error,
                    fetches: st.fetches,
                    failures: st.failures,
                    next_refresh: st.next_refresh,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Waits until every `crl_urls` source has finished its first attempt, at most
    /// `timeout` (startup readiness, `certgate check`).
    pub async fn wait_first_fetches(&self, timeout: Duration) {
        let receivers: Vec<watch::Receiver<u64>> = lock(&self.sources)
            .values()
            .map(|s| s.attempts.subscribe())
            .collect();
        let deadline = tokio::time::Instant::now() + timeout;
        for mut rx in receivers {
            let _ = tokio::time::timeout_at(deadline, rx.wait_for(|n| *n > 0)).await;
        }
    }

    /// Decides with live sources: runs `decide` against what is in memory, fetches what
    /// it wanted (bounded waits; one fetch per URL or CertID however many requests want
    /// it) and runs it again, up to four passes in all. Background refreshes it asked for are
    /// started and not waited for.
    pub async fn decide<R>(&self, decide: impl Fn(&dyn LiveView) -> R) -> R {
        let mut results: HashMap<OcspKey, OcspLookup> = HashMap::new();
        // Distribution points already waited for: a list still missing after one bounded
        // wait is decided without, not waited for again.
        let mut waited: HashSet<String> = HashSet::new();
        let mut pass = 1;
        loop {
            let (outcome, mut wants) = {
                let view = View::new(self, &results);
                let outcome = decide(&view);
                (outcome, view.into_wants())
            };
            for want in wants.refresh.drain(..) {
                self.ocsp_fetch(want, true);
            }
            wants
                .distribution_points
                .retain(|url| waited.insert(url.clone()));
            if pass >= MAX_PASSES || (wants.distribution_points.is_empty() && wants.ocsp.is_empty())
            {
                return outcome;
            }
            drop(outcome);
            self.fulfil(wants.distribution_points, wants.ocsp, &mut results)
                .await;
            pass += 1;
        }
    }

    async fn fulfil(
        &self,
        distribution_points: Vec<String>,
        ocsp: Vec<OcspWant>,
        results: &mut HashMap<OcspKey, OcspLookup>,
    ) {
        let config = self.config.load_full();
        // Start everything first, so that the fetches overlap and each wait is measured
        // from the same start.
        let start = tokio::time::Instant::now();
        let dp_waits: Vec<watch::Receiver<u64>> = distribution_points
            .iter()
            .filter_map(|url| self.distribution_point(url, &config))
            .collect();
        let ocsp_waits: Vec<(OcspKey, watch::Receiver<Option<OcspLookup>>)> = ocsp
            .into_iter()
            .map(|want| (want.key, self.ocsp_fetch(want, false)))
            .collect();
        let dp_deadline = start + config.fetch.first_fetch_wait.0;
        for mut rx in dp_waits {
            let _ = tokio::time::timeout_at(dp_deadline, rx.wait_for(|n| *n > 0)).await;
        }
        // One exchange's timeout plus a little for GET-then-POST and verification.
        let ocsp_deadline = start + config.ocsp_timeout + Duration::from_millis(250);
        for (key, mut rx) in ocsp_waits {
            let lookup =
                match tokio::time::timeout_at(ocsp_deadline, rx.wait_for(Option::is_some)).await {
                    Ok(Ok(value)) => value.clone().unwrap_or(OcspLookup::Pending),
                    _ => OcspLookup::Failed {
                        hard: false,
                        detail: format!(
                            "no answer within {:?} (the query goes on; its answer will be cached)",
                            config.ocsp_timeout
                        ),
                    },
                };
            results.insert(key, lookup);
        }
    }

    /// The source of a distribution point, started if new; `None` when distribution
    /// points are not fetched or too many are known.
    fn distribution_point(&self, url: &str, config: &LiveConfig) -> Option<watch::Receiver<u64>> {
        if config.cdp != CdpMode::Fetch {
            return None;
        }
        let mut sources = lock(&self.sources);
        if let Some(source) = sources.get(url) {
            return Some(source.attempts.subscribe());
        }
        let known = sources
            .values()
            .filter(|s| s.origin == SourceOrigin::DistributionPoint)
            .count();
        if known >= config.fetch.max_distribution_points {
            if !self.dp_limit_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    url,
                    known,
                    "distribution points beyond crl_fetch.max_distribution_points are not fetched (logged once)"
                );
            }
            drop(sources);
            self.publish();
            return None;
        }
        let source = self.start_source(url, url, SourceOrigin::DistributionPoint);
        let rx = source.attempts.subscribe();
        sources.insert(url.to_string(), source);
        Some(rx)
    }

    /// The in-flight fetch for `want`, started if there is none. Unless `refresh`, an
    /// answer cached since the caller looked is returned as is: a fetch finishing
    /// between a request's cache miss and this call must not cause a second one.
    fn ocsp_fetch(&self, want: OcspWant, refresh: bool) -> watch::Receiver<Option<OcspLookup>> {
        let mut inflight = lock(&self.ocsp_inflight);
        if let Some(rx) = inflight.get(&want.key) {
            return rx.clone();
        }
        if !refresh && let Some(entry) = self.ocsp_cache.load().get(&want.key) {
            let now = crate::clock::now();
            let current = now <= entry.expires_at()
                && match entry.as_ref() {
                    OcspEntry::Answer { fetched_at, .. } => want
                        .refetch_after
                        .is_none_or(|after| now - *fetched_at < after),
                    OcspEntry::Failed { .. } => true,
                };
            if current {
                return watch::channel(Some(entry.lookup())).1;
            }
        }
        let (tx, rx) = watch::channel(None);
        inflight.insert(want.key, rx.clone());
        drop(inflight);
        let this = self.this.clone();
        self.runtime.spawn(async move {
            let Some(live) = this.upgrade() else { return };
            let key = want.key;
            let entry = live.query_responder(&want, &tx).await;
            let lookup = entry.lookup();
            live.store_ocsp(key, entry);
            lock(&live.ocsp_inflight).remove(&key);
            let _ = tx.send(Some(lookup));
        });
        rx
    }

    /// Asks one responder, with retries: GET, then POST if GET gave nothing usable.
    /// Only what may pass is retried (no answer in time, connection failures, 5xx,
    /// `tryLater`/`internalError`); after the first failed attempt the failure is
    /// published to waiting requests, so they get the role's verdict at once while the
    /// retries go on.
    async fn query_responder(
        &self,
        want: &OcspWant,
        waiters: &watch::Sender<Option<OcspLookup>>,
    ) -> OcspEntry {
        let config = self.config.load_full();
        let nonce = config.ocsp_nonce.then(ocsp::new_nonce);
        let nonce_ref = nonce.as_ref().map(|n| &n[..]);
        let request = ocsp::request_der(&want.target, nonce_ref);
        let get_url = ocsp::get_url(&want.responder, &request);
        let mut last = String::from("no attempt");
        for attempt in 0..=want.max_retries.min(OCSP_MAX_RETRIES) {
            if attempt > 0 {
                let backoff = Duration::from_millis(100 << (attempt - 1).min(5));
                tokio::time::sleep(backoff).await;
            }
            let mut retry = false;
            // What each method said, so a GET answer for the wrong certificate is not
            // hidden by the POST that followed it.
            let mut said: Vec<String> = Vec::new();
            for method in ["GET", "POST"] {
                self.counters.ocsp_requests.fetch_add(1, Ordering::Relaxed);
                let body = if method == "GET" {
                    self.http
                        .get(
                            &get_url,
                            "application/ocsp-response",
                            config.ocsp_timeout,
                            1 << 20,
                        )
                        .await
                } else {
                    self.http
                        .post(
                            &want.responder,
                            "application/ocsp-request",
                            "application/ocsp-response",
                            request.clone(),
                            config.ocsp_timeout,
                            1 << 20,
                        )
                        .await
                };
                let now = crate::clock::now();
                let body = match body {
                    Ok(body) => body,
                    Err(e) => {
                        said.push(format!("{method}: {e}"));
                        match e {
                            // Not answering: asking again by POST would only wait again.
                            FetchError::Timeout(_) => {
                                retry = true;
                                break;
                            }
                            FetchError::Transport(_) => retry = true,
                            FetchError::Status(code) if code >= 500 => retry = true,
                            _ => {}
                        }
                        continue;
                    }
                };
                match ocsp::check_response(&body, &want.target, &want.anchors, nonce_ref, now) {
                    Ok(answer) => {
                        tracing::debug!(responder = %want.responder, status = ?answer.status, "OCSP answer");
                        let expires_at = answer
                            .next_update
                            .map_or(now + OCSP_NO_NEXT_UPDATE_TTL, |n| n.min(now + OCSP_MAX_TTL));
                        return OcspEntry::Answer {
                            answer: Arc::new(answer),
                            fetched_at: now,
                            expires_at,
                        };
                    }
                    Err(e @ OcspError::BadSignature(_)) => {
                        return self.ocsp_failed(want, true, format!("{method}: {e}"), now);
                    }
                    Err(OcspError::Unsuccessful(status))
                        if matches!(status.as_str(), "tryLater" | "internalError") =>
                    {
                        said.push(format!("{method}: responder answered {status}"));
                        retry = true;
                        break;
                    }
                    Err(e) => said.push(format!("{method}: {e}")),
                }
            }
            last = said.join("; ");
            if !retry {
                break;
            }
            if attempt == 0 && attempt < want.max_retries.min(OCSP_MAX_RETRIES) {
                let interim =
                    OcspEntry::failed(false, format!("{last} (retrying)"), crate::clock::now());
                waiters.send_if_modified(|v| {
                    let first = v.is_none();
                    if first {
                        *v = Some(interim.lookup());
                    }
                    first
                });
                self.store_ocsp(want.key, interim);
            }
        }
        self.ocsp_failed(want, false, last, crate::clock::now())
    }

    /// Caches an answer, or a failure briefly unless a current good answer is held
    /// (a failed refresh must not replace it).
    fn store_ocsp(&self, key: OcspKey, entry: OcspEntry) {
        let cache = self.ocsp_cache.load();
        if matches!(entry, OcspEntry::Failed { .. })
            && cache
                .get(&key)
                .is_some_and(|held| held.holds_answer(crate::clock::now()))
        {
            return;
        }
        cache.insert(key, Arc::new(entry));
    }

    fn ocsp_failed(&self, want: &OcspWant, hard: bool, detail: String, now: i64) -> OcspEntry {
        self.counters.ocsp_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(responder = %want.responder, serial = %hex::encode(&want.target.serial), %detail, "OCSP query failed");
        OcspEntry::failed(hard, detail, now)
    }

    /// Forgets every cached OCSP answer (the next check of each certificate asks its
    /// responder again).
    pub fn invalidate_ocsp(&self) {
        self.ocsp_cache.load().invalidate_all();
    }

    /// OCSP cache entries (approximate).
    pub fn ocsp_cache_len(&self) -> u64 {
        let cache = self.ocsp_cache.load();
        cache.run_pending_tasks();
        cache.entry_count()
    }
}

/// Parses and checks a downloaded list before it replaces `held`.
fn accept_crl(
    name: &str,
    url: &str,
    origin: SourceOrigin,
    body: &[u8],
    config: &LiveConfig,
    held: Option<&CrlEntry>,
) -> Result<CrlEntry, String> {
    let mut crl = CrlEntry::parse_any(name, url, body)?;
    let cas: Vec<&ParsedCert> = config.known_cas.iter().map(|c| c.as_ref()).collect();
    crl.verify_against(&cas)?;
    if let Some(held) = held {
        if held.issuer_name == crl.issuer_name && crl.this_update < held.this_update {
            return Err(format!(
                "refusing a list older (thisUpdate {}) than the one held ({})",
                crate::clock::rfc3339(crl.this_update),
                crate::clock::rfc3339(held.this_update)
            ));
        }
        if held.issuer_name != crl.issuer_name && origin == SourceOrigin::Configured {
            tracing::warn!(url, old = %held.issuer, new = %crl.issuer, "CRL source now serves another issuer's list");
        }
    }
    Ok(crl)
}

/// When to fetch a source again after a good list.
fn refresh_delay(
    crl: &CrlEntry,
    now: i64,
    fetch: &CrlFetchConfig,
    retry: Option<Duration>,
) -> Duration {
    match crl.next_update {
        None => fetch.refresh_interval.0.max(CRL_RETRY_MIN),
        // Already due: the server has nothing newer yet; back off.
        Some(next) if next <= now => retry.map_or(CRL_RETRY_MIN, |d| (d * 2).min(CRL_RETRY_MAX)),
        Some(next) => {
            let left = (next - now) as u64;
            // Refresh a little before nextUpdate, spread so that many instances do not
            // hit the server in the same second: up to 10% of the time left, 5 min at most.
            let spread = (left / 10).min(300);
            let jitter = if spread > 0 {
                random_u64() % (spread + 1)
            } else {
                0
            };
            Duration::from_secs(left.saturating_sub(jitter).max(1))
        }
    }
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    u64::from_le_bytes(bytes)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What one decision sees: in-memory state only, recording what it lacks.
#[derive(Debug)]
pub struct View<'a> {
    live: &'a LiveRevocation,
    published: Arc<Published>,
    cache: Arc<moka::sync::Cache<OcspKey, Arc<OcspEntry>>>,
    results: &'a HashMap<OcspKey, OcspLookup>,
    wants: Mutex<Wants>,
}

impl<'a> View<'a> {
    fn new(live: &'a LiveRevocation, results: &'a HashMap<OcspKey, OcspLookup>) -> View<'a> {
        View {
            live,
            published: live.published.load_full(),
            cache: live.ocsp_cache.load_full(),
            results,
            wants: Mutex::new(Wants::default()),
        }
    }

    fn into_wants(self) -> Wants {
        self.wants.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// `ocsp_this_update_max_age`: an answer produced too long ago is no answer.
fn too_old(answer: &OcspAnswer, role: &OcspRole, now: i64) -> Option<OcspLookup> {
    let max_age = role.this_update_max_age.map(|d| d.0.as_secs() as i64)?;
    (max_age > 0 && now - answer.this_update > max_age).then(|| OcspLookup::Failed {
        hard: false,
        detail: format!(
            "the answer's thisUpdate ({}) is older than ocsp_this_update_max_age ({max_age}s)",
            crate::clock::rfc3339(answer.this_update)
        ),
    })
}

impl LiveView for View<'_> {
    fn fetched_crls(&self) -> &CrlIndex {
        &self.published.index
    }

    fn crl_generation(&self) -> u64 {
        self.published.generation
    }

    fn distribution_point_known(&self, url: &str) -> bool {
        if self.published.tried.contains(url) || self.published.distribution_points_full {
            return true;
        }
        let mut wants = lock(&self.wants);
        if !wants.distribution_points.iter().any(|u| u == url) {
            wants.distribution_points.push(url.to_string());
        }
        false
    }

    fn ocsp(
        &self,
        question: &OcspQuestion,
        responder: &OcspResponder,
        role: &OcspRole,
        now: i64,
    ) -> OcspLookup {
        let key = responder.key;
        if let Some(found) = self.results.get(&key) {
            return match found {
                OcspLookup::Answer(answer) => match too_old(answer, role, now) {
                    Some(failed) => failed,
                    None => found.clone(),
                },
                other => other.clone(),
            };
        }
        let want = || OcspWant {
            key,
            target: Arc::clone(&question.target),
            responder: Arc::clone(&responder.url),
            anchors: role.ca_certificates.clone(),
            max_retries: role.max_retries,
            refetch_after: None,
        };
        let counters = &self.live.counters;
        match self.cache.get(&key).as_deref() {
            Some(OcspEntry::Answer {
                answer,
                fetched_at,
                expires_at,
            }) if now <= *expires_at && answer.next_update.is_none_or(|n| now <= n) => {
                counters.ocsp_cache_hits.fetch_add(1, Ordering::Relaxed);
                let life = (*expires_at - *fetched_at).max(1) as f64;
                let hot_and_aging = (now - *fetched_at) as f64 >= life * OCSP_REFRESH_AHEAD
                    && now - *fetched_at >= OCSP_FAILURE_TTL;
                if let Some(failed) = too_old(answer, role, now) {
                    // Too old for this role: ask again, like a miss, unless it was
                    // fetched moments ago (then the responder only has old answers,
                    // and asking on every request would not change that).
                    let max_age = role.this_update_max_age.map_or(0, |d| d.0.as_secs() as i64);
                    let refetch_after = max_age.clamp(1, OCSP_FAILURE_TTL);
                    if now - *fetched_at >= refetch_after {
                        lock(&self.wants).ocsp.push(OcspWant {
                            refetch_after: Some(refetch_after),
                            ..want()
                        });
                        return OcspLookup::Pending;
                    }
                    return failed;
                }
                if hot_and_aging {
                    lock(&self.wants).refresh.push(want());
                }
                OcspLookup::Answer(Arc::clone(answer))
            }
            Some(failed @ OcspEntry::Failed { expires_at, .. }) if now <= *expires_at => {
                counters.ocsp_cache_hits.fetch_add(1, Ordering::Relaxed);
                failed.lookup()
            }
            _ => {
                counters.ocsp_cache_misses.fetch_add(1, Ordering::Relaxed);
                lock(&self.wants).ocsp.push(want());
                OcspLookup::Pending
            }
        }
    }
}
