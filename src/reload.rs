//! Hot reload: directory watch → load → compile → atomic swap.
//!
//! Requests read the current [`Snapshot`] through an [`ArcSwap`], so a reload never
//! blocks a request and a request never sees half of an old and half of a new config.
//! A load or compile failure keeps the last good snapshot serving; the failure is logged
//! and counted so that `/readyz`-style checks and metrics can surface it.
//!
//! Change detection is deliberately blunt: any file event in a watched directory
//! re-reads everything and compares content fingerprints. That is what makes Kubernetes
//! ConfigMap updates work: the kubelet swaps the `..data` symlink, which only a watch on
//! the *directory* sees (a watch on `web.yaml -> ..data/web.yaml` goes silent after the
//! first swap). A periodic re-read (`reload.interval`) backs up missed events, and
//! directories that did not exist yet, or were replaced, are (re-)armed on that timer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode};

use crate::config::{ConfigError, LoadedConfig, load_with_fingerprint};
use crate::snapshot::{CacheCounters, Snapshot};

/// Quiet period after the last file event before re-reading: editors and the kubelet
/// write several files and renames per change; one reload should see all of them.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// How often the watcher thread checks that its directories still exist and are the same
/// directories (a deleted and re-created directory needs a new watch), independent of
/// `reload.interval`.
const REARM_CHECK: Duration = Duration::from_secs(5);

/// What one [`Reloader::reload_now`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The files read are byte-for-byte what the current snapshot was built from.
    Unchanged,
    /// A new snapshot is live.
    Swapped {
        /// Its generation.
        generation: u64,
    },
    /// The files on disk are invalid; the previous snapshot keeps serving.
    Rejected(Vec<ConfigError>),
}

/// Reload counters, plain data so a metrics or health layer can copy them out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStats {
    /// Reloads that swapped in a new snapshot (the initial load is not counted).
    pub ok: u64,
    /// Reload attempts that were rejected (each attempt counts, also a repeated one of
    /// the same broken files).
    pub failed: u64,
    /// Reloads that found nothing changed.
    pub unchanged: u64,
    /// All errors of the most recent rejected attempt, one per line; kept after a later
    /// success for post-mortems (see [`ReloadStats::failing`] for "is it still broken").
    pub last_error: Option<String>,
    /// Whether the most recent attempt was rejected, i.e. the files on disk are not what
    /// is being served. Cleared by the next successful or unchanged reload.
    pub failing: bool,
    /// Generation of the snapshot being served.
    pub generation: u64,
}

/// What the watcher watches, taken from the last good load (never from a rejected one,
/// whose directories may be typos).
#[derive(Debug, Clone, PartialEq, Eq)]
struct WatchTargets {
    /// Directory holding the config file (not the file: see the module docs).
    config_dir: Option<PathBuf>,
    roles_dir: PathBuf,
    crls_dir: PathBuf,
    /// Directories of roles' `certificate_file`s (often `roles/certs/`, which the
    /// non-recursive roles_dir watch does not cover).
    cert_dirs: Vec<PathBuf>,
    /// `reload.interval`; zero disables the periodic re-read.
    interval: Duration,
    /// Files certgate writes itself (the audit file and its rotations): a change to
    /// them is no reason to re-read, and an audit file in a watched directory would
    /// otherwise trigger a reload per written line.
    own_files: Vec<PathBuf>,
}

impl WatchTargets {
    fn of(loaded: &LoadedConfig) -> WatchTargets {
        WatchTargets {
            config_dir: loaded
                .config_path
                .as_deref()
                .and_then(Path::parent)
                .map(Path::to_path_buf),
            roles_dir: loaded.roles_dir.clone(),
            crls_dir: loaded.crls_dir.clone(),
            cert_dirs: loaded
                .roles
                .iter()
                .filter_map(|role| {
                    let file = role.spec.certificate_file.as_deref()?;
                    let role_dir = role.path.parent()?;
                    Some(role_dir.join(file).parent()?.to_path_buf())
                })
                .collect(),
            interval: loaded.global.reload.interval.0,
            own_files: match crate::audit::AuditSink::from_config(
                &loaded.global.audit.sink,
                loaded.config_path.as_deref().and_then(Path::parent),
            ) {
                crate::audit::AuditSink::File(path) => vec![path],
                _ => Vec::new(),
            },
        }
    }

    /// Whether `path` is one of [`WatchTargets::own_files`] or a rotation of one
    /// (`<file>.N`).
    fn is_own_file(own: &[PathBuf], path: &Path) -> bool {
        own.iter().any(|f| {
            path == f
                || path
                    .as_os_str()
                    .to_str()
                    .zip(f.as_os_str().to_str())
                    .and_then(|(p, f)| p.strip_prefix(f)?.strip_prefix('.'))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    }

    /// The distinct directories to watch.
    fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.config_dir.iter().cloned().collect();
        for d in [&self.roles_dir, &self.crls_dir]
            .into_iter()
            .chain(&self.cert_dirs)
        {
            if !dirs.contains(d) {
                dirs.push(d.clone());
            }
        }
        dirs
    }
}

/// State only a reload touches; its mutex serializes reloads.
struct ReloadState {
    /// Fingerprint and errors of the last rejected attempt: the same broken files again
    /// are not compiled again and not logged again at warn level.
    last_failure: Option<([u8; 32], Vec<ConfigError>)>,
}

/// Owns the live snapshot and replaces it when the files change.
pub struct Reloader {
    /// Absolute, so a later `chdir` cannot change what is read.
    config_path: Option<PathBuf>,
    current: ArcSwap<Snapshot>,
    /// Shared by every snapshot's chain cache, so metrics count across reloads.
    cache_counters: Arc<CacheCounters>,
    reload: Mutex<ReloadState>,
    stats: Mutex<ReloadStats>,
    targets: Mutex<WatchTargets>,
    listeners: Mutex<Vec<SwapListener>>,
}

/// Called with each new snapshot after it is swapped in.
type SwapListener = Box<dyn Fn(&Snapshot) + Send + Sync>;

/// Locks a mutex even if a panicking thread poisoned it: the data behind these locks is
/// always left consistent, and a reload must keep working.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("config_path", &self.config_path)
            .field("generation", &self.current.load().generation)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// Initial load: must succeed (the caller exits with the errors otherwise). Generation 1.
    pub fn new(config_path: Option<PathBuf>) -> Result<Arc<Reloader>, Vec<ConfigError>> {
        let config_path = match config_path {
            Some(p) if p.is_relative() => match std::env::current_dir() {
                Ok(cwd) => Some(cwd.join(p)),
                Err(e) => {
                    return Err(vec![ConfigError::in_file(
                        p,
                        format!("cannot determine the working directory: {e}"),
                    )]);
                }
            },
            other => other,
        };
        let (loaded, _) = load_with_fingerprint(config_path.as_deref());
        let loaded = loaded?;
        let targets = WatchTargets::of(&loaded);
        let roles = loaded.roles.len();
        let snapshot = Snapshot::compile(loaded, 1)?;
        tracing::info!(generation = 1, roles, "configuration loaded");
        let cache_counters = Arc::clone(&snapshot.cache.counters);
        Ok(Arc::new(Reloader {
            config_path,
            cache_counters,
            current: ArcSwap::from_pointee(snapshot),
            reload: Mutex::new(ReloadState { last_failure: None }),
            stats: Mutex::new(ReloadStats {
                generation: 1,
                ..ReloadStats::default()
            }),
            targets: Mutex::new(targets),
            listeners: Mutex::new(Vec::new()),
        }))
    }

    /// Calls `listener` with every snapshot swapped in from now on (live revocation
    /// takes its new settings this way). Listeners run on the reloading thread.
    pub fn on_swap(&self, listener: impl Fn(&Snapshot) + Send + Sync + 'static) {
        lock(&self.listeners).push(Box::new(listener));
    }

    /// The current snapshot: lock-free (arc-swap `load_full`), safe to call per request.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The config file this reloader reads (absolute), if any.
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// Re-reads everything; Unchanged when the fingerprint is equal; otherwise compiles
    /// and swaps atomically; a failure keeps the last good snapshot, logs each error with
    /// `tracing::warn` (once per distinct broken state) and counts it.
    ///
    /// Safe to call from anywhere (a SIGHUP handler, an admin endpoint): concurrent calls
    /// are serialized, and each one reads the files as they are when it runs.
    pub fn reload_now(&self) -> ReloadOutcome {
        let mut state = lock(&self.reload);
        let (loaded, fingerprint) = load_with_fingerprint(self.config_path.as_deref());
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(errors) => return self.reject(&mut state, fingerprint, errors),
        };
        let current = self.current.load_full();
        if loaded.fingerprint == current.fingerprint {
            // The files may have been broken and restored in between: remember the
            // directories anyway and clear the failure.
            *lock(&self.targets) = WatchTargets::of(&loaded);
            state.last_failure = None;
            let mut stats = lock(&self.stats);
            stats.unchanged += 1;
            stats.failing = false;
            return ReloadOutcome::Unchanged;
        }
        if let Some((failed_fp, errors)) = &state.last_failure
            && *failed_fp == fingerprint
        {
            // Exactly the files that failed to compile last time: same verdict, no need
            // to parse every certificate again.
            let errors = errors.clone();
            return self.reject(&mut state, fingerprint, errors);
        }
        let targets = WatchTargets::of(&loaded);
        let roles = loaded.roles.len();
        let generation = current.generation.saturating_add(1);
        match Snapshot::compile(loaded, generation) {
            Ok(mut snapshot) => {
                snapshot.cache.counters = Arc::clone(&self.cache_counters);
                let snapshot = Arc::new(snapshot);
                self.current.store(Arc::clone(&snapshot));
                for listener in lock(&self.listeners).iter() {
                    listener(&snapshot);
                }
                *lock(&self.targets) = targets;
                state.last_failure = None;
                let mut stats = lock(&self.stats);
                stats.ok += 1;
                stats.failing = false;
                stats.generation = generation;
                tracing::info!(generation, roles, "configuration reloaded");
                ReloadOutcome::Swapped { generation }
            }
            Err(errors) => self.reject(&mut state, fingerprint, errors),
        }
    }

    fn reject(
        &self,
        state: &mut ReloadState,
        fingerprint: [u8; 32],
        errors: Vec<ConfigError>,
    ) -> ReloadOutcome {
        let repeated = state
            .last_failure
            .as_ref()
            .is_some_and(|(fp, _)| *fp == fingerprint);
        let generation = self.current.load().generation;
        for error in &errors {
            if repeated {
                tracing::debug!(generation, error = %error, "configuration still rejected");
            } else {
                tracing::warn!(
                    generation,
                    error = %error,
                    "configuration rejected; still serving the previous one"
                );
            }
        }
        let text = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        {
            let mut stats = lock(&self.stats);
            stats.failed += 1;
            stats.failing = true;
            stats.last_error = Some(text);
        }
        state.last_failure = Some((fingerprint, errors.clone()));
        ReloadOutcome::Rejected(errors)
    }

    /// Verified-chain cache hits and misses over every snapshot this reloader served
    /// (each snapshot's cache dies with it; the counters carry over).
    pub fn cache_counters(&self) -> &Arc<CacheCounters> {
        &self.cache_counters
    }

    /// A copy of the counters.
    pub fn stats(&self) -> ReloadStats {
        lock(&self.stats).clone()
    }

    /// Watches the config file's directory, roles_dir, crls_dir and the directories of
    /// roles' `certificate_file`s (each non-recursive, debounced ~200 ms) and re-reads on
    /// any event; also re-reads every `global.reload.interval` of the last good config
    /// (0 = no timer). Runs on a
    /// dedicated std thread (no tokio needed); stops when the returned handle is dropped.
    /// Directories that appear later, or are replaced, are (re-)armed within a few
    /// seconds. If the OS refuses a watcher (e.g. the inotify limit is reached), the
    /// timer alone keeps reloading and a warning says so.
    ///
    /// The watches are armed before this returns, so a change made after the call is
    /// never missed; the thread re-reads once at start for changes made before it.
    pub fn spawn_watcher(self: &Arc<Self>) -> WatchHandle {
        let (tx, rx) = mpsc::channel::<Msg>();
        let targets = lock(&self.targets).clone();
        let own_files = Arc::new(Mutex::new(targets.own_files.clone()));
        let mut debouncer = make_debouncer(tx.clone(), Arc::clone(&own_files));
        let mut armed: BTreeMap<PathBuf, (u64, u64)> = BTreeMap::new();
        arm(&mut debouncer, &mut armed, &targets, true);
        let reloader = Arc::clone(self);
        let thread = std::thread::Builder::new()
            .name("certgate-reload".into())
            .spawn(move || {
                let watcher = Watcher {
                    debouncer,
                    armed,
                    targets,
                    own_files,
                };
                watch_loop(&reloader, &rx, watcher);
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the reload thread; hot reload is off");
                None
            }
        };
        WatchHandle { tx, thread }
    }
}

/// Stops the watcher thread when dropped (and waits for a reload in progress to finish).
pub struct WatchHandle {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl WatchHandle {
    /// Stops the watcher; the same as dropping the handle.
    pub fn stop(self) {}
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Messages to the watcher thread.
enum Msg {
    /// Something changed in a watched directory.
    Changed,
    /// The handle was dropped.
    Stop,
}

type Debouncer = notify_debouncer_full::Debouncer<
    notify::RecommendedWatcher,
    notify_debouncer_full::RecommendedCache,
>;

/// Identity of a watched directory, to notice one that was deleted and re-created (its
/// old watch is dead) or a symlinked directory that now points elsewhere.
#[cfg(unix)]
fn dir_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_dir)
        .map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn dir_identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_dir)
        .map(|_| (0, 0))
}

/// The watcher thread's state.
struct Watcher {
    /// `None` when the OS refused a watcher: the timer alone reloads.
    debouncer: Option<Debouncer>,
    /// Watched directories and their identity when armed.
    armed: BTreeMap<PathBuf, (u64, u64)>,
    /// What was armed for.
    targets: WatchTargets,
    /// The event handler's copy of [`WatchTargets::own_files`].
    own_files: Arc<Mutex<Vec<PathBuf>>>,
}

/// The watcher thread: wait for an event, the timer or a stop, reload, re-arm if the
/// directories changed.
fn watch_loop(reloader: &Reloader, rx: &mpsc::Receiver<Msg>, mut w: Watcher) {
    // Anything that changed between the initial load and arming the watches.
    log_outcome(&reloader.reload_now(), "watcher start");
    let mut next_tick = tick_after(Instant::now(), w.targets.interval);
    let mut next_rearm = Instant::now() + REARM_CHECK;

    loop {
        let now = Instant::now();
        let wake = next_tick.map_or(next_rearm, |t| t.min(next_rearm));
        let mut reload = false;
        match rx.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(Msg::Changed) => {
                // Coalesce whatever else queued up while we slept.
                loop {
                    match rx.try_recv() {
                        Ok(Msg::Stop) => return,
                        Ok(Msg::Changed) => {}
                        Err(_) => break,
                    }
                }
                reload = true;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        if next_tick.is_some_and(|t| now >= t) {
            reload = true;
            next_tick = tick_after(now, w.targets.interval);
        }
        if reload {
            log_outcome(&reloader.reload_now(), "file change or timer");
        }
        // The directories come from the last good config: a reload may have moved them.
        let latest = lock(&reloader.targets).clone();
        if latest.interval != w.targets.interval {
            next_tick = tick_after(Instant::now(), latest.interval);
        }
        let dirs_changed = latest.dirs() != w.targets.dirs();
        if latest.own_files != w.targets.own_files {
            lock(&w.own_files).clone_from(&latest.own_files);
        }
        w.targets = latest;
        if dirs_changed || reload || Instant::now() >= next_rearm {
            next_rearm = Instant::now() + REARM_CHECK;
            if arm(&mut w.debouncer, &mut w.armed, &w.targets, false) {
                // Files created before the watch existed raised no event: look now.
                log_outcome(&reloader.reload_now(), "directory appeared");
            }
        }
    }
}

fn tick_after(now: Instant, interval: Duration) -> Option<Instant> {
    (!interval.is_zero()).then(|| now + interval)
}

fn log_outcome(outcome: &ReloadOutcome, cause: &str) {
    match outcome {
        ReloadOutcome::Unchanged => tracing::trace!(cause, "reload: unchanged"),
        ReloadOutcome::Swapped { generation } => {
            tracing::debug!(cause, generation, "reload: swapped");
        }
        ReloadOutcome::Rejected(errors) => {
            tracing::debug!(cause, errors = errors.len(), "reload: rejected");
        }
    }
}

/// Whether an event may mean different content. Opens and reads are not: inotify
/// reports our own reads (`OPEN`), which would otherwise make every reload trigger the
/// next one. A close after writing is (notify files `CLOSE_WRITE` under `Access`).
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// A debouncer that turns every batch with a change into one [`Msg::Changed`].
fn make_debouncer(events: Sender<Msg>, own_files: Arc<Mutex<Vec<PathBuf>>>) -> Option<Debouncer> {
    let handler = move |result: notify_debouncer_full::DebounceEventResult| match result {
        Ok(batch) => {
            let own = lock(&own_files);
            let ours = |e: &notify_debouncer_full::DebouncedEvent| {
                !e.event.paths.is_empty()
                    && e.event
                        .paths
                        .iter()
                        .all(|p| WatchTargets::is_own_file(&own, p))
            };
            if batch.iter().any(|e| is_change(&e.event.kind) && !ours(e)) {
                let _ = events.send(Msg::Changed);
            }
        }
        Err(errors) => {
            for error in &errors {
                tracing::warn!(error = %error, "file watch error; re-reading to be safe");
            }
            let _ = events.send(Msg::Changed);
        }
    };
    match notify_debouncer_full::new_debouncer(DEBOUNCE, None, handler) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(
                error = %e,
                "cannot watch files; relying on the periodic reload (reload.interval)"
            );
            None
        }
    }
}

/// Makes the armed watches match `targets`: drops watches of directories no longer
/// wanted, (re-)watches wanted directories that are new, re-created or re-pointed.
/// Returns whether a directory was armed after the `initial` call (its files may have
/// changed while nothing watched them).
fn arm(
    debouncer: &mut Option<Debouncer>,
    armed: &mut BTreeMap<PathBuf, (u64, u64)>,
    targets: &WatchTargets,
    initial: bool,
) -> bool {
    let Some(debouncer) = debouncer.as_mut() else {
        return false;
    };
    let wanted = targets.dirs();
    let stale: Vec<PathBuf> = armed
        .keys()
        .filter(|p| !wanted.contains(p))
        .cloned()
        .collect();
    for path in stale {
        let _ = debouncer.unwatch(&path);
        armed.remove(&path);
    }
    let mut newly_armed = false;
    for dir in wanted {
        let identity = dir_identity(&dir);
        match (armed.get(&dir).copied(), identity) {
            (Some(old), Some(new)) if old == new => {}
            (old, Some(new)) => {
                if old.is_some() {
                    let _ = debouncer.unwatch(&dir);
                }
                match debouncer.watch(&dir, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        tracing::debug!(dir = %dir.display(), "watching");
                        armed.insert(dir, new);
                        newly_armed = true;
                    }
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory");
                        armed.remove(&dir);
                    }
                }
            }
            (Some(_), None) => {
                // Gone: its watch died with it. Re-armed when it comes back.
                let _ = debouncer.unwatch(&dir);
                armed.remove(&dir);
            }
            (None, None) => {}
        }
    }
    newly_armed && !initial
}
