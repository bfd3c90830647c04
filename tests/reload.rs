//! Hot reload: explicit reloads, the directory watcher (including the Kubernetes
//! ConfigMap `..data` symlink swap), the periodic fallback timer, and the rule that a
//! broken edit never replaces the last good snapshot.
//!
//! Nothing here asserts on speed: every wait polls for an outcome for up to 10 s.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use certgate::config::load;
use certgate::reload::{ReloadOutcome, Reloader};
use tempfile::TempDir;

const PATIENCE: Duration = Duration::from_secs(10);

/// A CA certificate for the roles (a role needs one to compile).
fn ca_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "certgate reload test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        params.self_signed(&key).expect("self-signed").pem()
    })
}

/// Another CA, for certificate changes.
fn other_ca_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "certgate reload test CA 2");
        params.self_signed(&key).expect("self-signed").pem()
    })
}

/// A valid role file whose content varies with `label`.
fn role(label: &str) -> String {
    let mut text = format!(
        "display_name: {label}\nallowed_common_names: [\"{label}.example.com\"]\ncertificate: |\n"
    );
    for line in ca_pem().lines() {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Writes like editors and the kubelet do: a temp file (a dotfile, so never loaded
/// half-written), then a rename over the target.
fn write_atomic(path: &Path, content: &str) {
    let dir = path.parent().expect("parent");
    fs::create_dir_all(dir).expect("mkdir");
    let name = path.file_name().expect("name").to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::write(&tmp, content).expect("write");
    fs::rename(&tmp, path).expect("rename");
}

/// A temp dir with `certgate.yaml` (`roles_dir: roles`, the given reload interval) and
/// one role `web`.
fn setup(interval: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new().expect("tempdir");
    let config = dir.path().join("certgate.yaml");
    write_atomic(
        &config,
        &format!("roles_dir: roles\ncrls_dir: crls\nreload:\n  interval: {interval}\n"),
    );
    write_atomic(&dir.path().join("roles/web.yaml"), &role("one"));
    (dir, config)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn fingerprint_on_disk(config: &Path) -> [u8; 32] {
    load(Some(config)).expect("files on disk load").fingerprint
}

#[test]
fn reload_now_swaps_rejects_keeps_the_last_good_snapshot_and_recovers() {
    let (dir, config) = setup("0");
    let reloader = Reloader::new(Some(config.clone())).expect("initial load");
    assert_eq!(reloader.current().generation, 1);
    assert_eq!(reloader.stats().generation, 1);
    assert_eq!(reloader.reload_now(), ReloadOutcome::Unchanged);

    let web = dir.path().join("roles/web.yaml");
    write_atomic(&web, &role("two"));
    assert_eq!(
        reloader.reload_now(),
        ReloadOutcome::Swapped { generation: 2 }
    );
    let good = reloader.current();
    assert_eq!(good.generation, 2);
    assert_eq!(good.fingerprint, fingerprint_on_disk(&config));

    // A broken edit: rejected, the old snapshot keeps serving, the failure is counted.
    write_atomic(
        &web,
        &format!("{}allowed_common_name: typo\n", role("three")),
    );
    let ReloadOutcome::Rejected(errors) = reloader.reload_now() else {
        panic!("a broken role must be rejected");
    };
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].field.as_deref(), Some("allowed_common_name"));
    assert!(Arc::ptr_eq(&good, &reloader.current()));
    let stats = reloader.stats();
    assert_eq!((stats.ok, stats.failed, stats.unchanged), (1, 1, 1));
    assert!(stats.failing);
    assert_eq!(stats.generation, 2);
    let last = stats.last_error.expect("last error");
    assert!(
        last.contains("web.yaml") && last.contains("allowed_common_name"),
        "{last}"
    );

    // The same broken files again: still rejected, counted again.
    assert!(matches!(reloader.reload_now(), ReloadOutcome::Rejected(_)));
    assert_eq!(reloader.stats().failed, 2);
    assert_eq!(reloader.current().generation, 2);

    // Fixed: swapped again.
    write_atomic(&web, &role("three"));
    assert_eq!(
        reloader.reload_now(),
        ReloadOutcome::Swapped { generation: 3 }
    );
    let stats = reloader.stats();
    assert_eq!((stats.ok, stats.failed, stats.generation), (2, 2, 3));
    assert!(!stats.failing);

    // Broken, then restored to exactly the served files: unchanged, and no longer failing.
    write_atomic(&web, "{{{");
    assert!(matches!(reloader.reload_now(), ReloadOutcome::Rejected(_)));
    write_atomic(&web, &role("three"));
    assert_eq!(reloader.reload_now(), ReloadOutcome::Unchanged);
    assert!(!reloader.stats().failing);
    assert_eq!(reloader.current().generation, 3);
}

#[test]
fn initial_load_must_succeed() {
    let (dir, config) = setup("0");
    write_atomic(
        &dir.path().join("roles/bad.yaml"),
        "allowed_common_name: x\n",
    );
    let errors = match Reloader::new(Some(config)) {
        Ok(_) => panic!("a broken role must fail the initial load"),
        Err(errors) => errors,
    };
    assert!(
        errors.iter().any(|e| e.file.ends_with("roles/bad.yaml")),
        "{errors:#?}"
    );
}

#[test]
fn global_config_edits_are_reloaded_and_can_move_roles_dir() {
    let (dir, config) = setup("0");
    let reloader = Reloader::new(Some(config.clone())).expect("initial load");
    let _watch = reloader.spawn_watcher();

    // Move roles_dir: the reload reads the directory from the new config...
    write_atomic(&dir.path().join("other/api.yaml"), &role("api"));
    write_atomic(
        &config,
        "roles_dir: other\ncrls_dir: crls\nreload:\n  interval: 0\n",
    );
    wait_until("the config edit is applied", || {
        reloader.current().generation == 2
    });
    assert_eq!(reloader.current().fingerprint, fingerprint_on_disk(&config));

    // ...and the watcher now watches that directory (there is no timer: interval 0).
    write_atomic(&dir.path().join("other/api.yaml"), &role("api2"));
    wait_until("an edit in the new roles_dir is applied", || {
        reloader.current().generation == 3
    });
    assert_eq!(reloader.current().fingerprint, fingerprint_on_disk(&config));
}

#[test]
fn watcher_applies_edits_and_survives_broken_ones() {
    let (dir, config) = setup("0");
    let reloader = Reloader::new(Some(config.clone())).expect("initial load");
    let watch = reloader.spawn_watcher();
    let web = dir.path().join("roles/web.yaml");

    write_atomic(&web, &role("two"));
    wait_until("edit applied", || reloader.current().generation == 2);

    write_atomic(&web, "display_name: [unclosed\n");
    wait_until("broken edit rejected", || reloader.stats().failed >= 1);
    assert_eq!(reloader.current().generation, 2);
    assert!(reloader.stats().failing);

    write_atomic(&web, &role("three"));
    wait_until("fix applied", || reloader.current().generation == 3);
    assert!(!reloader.stats().failing);
    assert_eq!(reloader.current().fingerprint, fingerprint_on_disk(&config));

    // A new role file and a removed one are changes too.
    write_atomic(&dir.path().join("roles/api.yaml"), &role("api"));
    wait_until("new file applied", || reloader.current().generation == 4);
    fs::remove_file(dir.path().join("roles/api.yaml")).expect("rm");
    wait_until("removal applied", || reloader.current().generation == 5);

    drop(watch);
}

/// The kubelet's ConfigMap update: files live in a timestamped directory, `..data`
/// points at it, and the visible names are symlinks through `..data`. An update writes
/// a new timestamped directory and atomically renames a new `..data` symlink over the
/// old one. Only a watch on the directory sees that.
#[test]
fn kubernetes_configmap_data_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;

    let dir = TempDir::new().expect("tempdir");
    let config = dir.path().join("certgate.yaml");
    write_atomic(&config, "roles_dir: roles\nreload:\n  interval: 0\n");
    let roles = dir.path().join("roles");
    let v1 = "..2026_11_23_00_00_00.1";
    write_atomic(&roles.join(v1).join("web.yaml"), &role("one"));
    symlink(v1, roles.join("..data")).expect("ln ..data");
    symlink("..data/web.yaml", roles.join("web.yaml")).expect("ln web.yaml");

    let reloader = Reloader::new(Some(config.clone())).expect("initial load");
    let first = reloader.current().fingerprint;
    let _watch = reloader.spawn_watcher();
    wait_until("the watcher's start-up re-read", || {
        reloader.stats().unchanged >= 1
    });

    let swap = |version: &str, label: &str| {
        write_atomic(&roles.join(version).join("web.yaml"), &role(label));
        symlink(version, roles.join("..data_tmp")).expect("ln ..data_tmp");
        fs::rename(roles.join("..data_tmp"), roles.join("..data")).expect("swap ..data");
    };

    swap("..2026_11_23_00_05_00.2", "two");
    wait_until("first ..data swap applied", || {
        reloader.current().generation == 2
    });
    let second = reloader.current().fingerprint;
    assert_ne!(first, second);
    assert_eq!(second, fingerprint_on_disk(&config));
    // The kubelet then deletes the old version's directory.
    fs::remove_dir_all(roles.join(v1)).expect("rm old version");

    // A watch on the file symlink would have gone silent by now; the directory watch
    // sees the second swap too.
    swap("..2026_11_23_00_10_00.3", "three");
    wait_until("second ..data swap applied", || {
        reloader.current().generation == 3
    });
    assert_eq!(reloader.current().fingerprint, fingerprint_on_disk(&config));
}

/// Events can be missed (NFS, some container runtimes, inotify queue overflow). Here the
/// change happens where no watch can see it: the role file is a symlink into a directory
/// nobody watches. Only the periodic re-read notices.
#[test]
fn periodic_timer_catches_changes_the_watcher_cannot_see() {
    let (dir, config) = setup("1s");
    let elsewhere = dir.path().join("elsewhere/api.yaml");
    write_atomic(&elsewhere, &role("api"));
    std::os::unix::fs::symlink(&elsewhere, dir.path().join("roles/api.yaml")).expect("ln");

    let reloader = Reloader::new(Some(config.clone())).expect("initial load");
    let _watch = reloader.spawn_watcher();
    // The watcher re-reads once when it starts; let that pass so that only the timer
    // can account for the change below.
    wait_until("the watcher's start-up re-read", || {
        reloader.stats().unchanged >= 1
    });

    fs::write(&elsewhere, role("api2")).expect("edit unwatched file");
    wait_until("timer reload applied", || {
        reloader.current().generation == 2
    });
    assert_eq!(reloader.current().fingerprint, fingerprint_on_disk(&config));
}

/// A directory that does not exist when the watcher starts is watched once it appears
/// (the watcher checks its directories every few seconds, with or without a timer).
#[test]
fn directory_created_later_is_watched() {
    let (_dir, config) = setup("0");
    // crls_dir outside the config directory, so creating it raises no event we watch.
    let outside = TempDir::new().expect("tempdir");
    let crls = outside.path().join("crls");
    write_atomic(
        &config,
        &format!(
            "roles_dir: roles\ncrls_dir: {}\nreload:\n  interval: 0\n",
            crls.display()
        ),
    );
    let reloader = Reloader::new(Some(config.clone())).expect("initial load");
    let _watch = reloader.spawn_watcher();
    wait_until("the watcher's start-up re-read", || {
        reloader.stats().unchanged >= 1
    });

    // The directory's appearance is itself a change (its absence is in the fingerprint).
    fs::create_dir(&crls).expect("mkdir crls");
    wait_until("the new directory is noticed", || {
        reloader.current().generation == 2
    });
    // Now a file in it raises an event: a CRL that is not one is rejected.
    fs::write(crls.join("bad.crl"), "not a CRL").expect("write");
    wait_until("an edit in the new directory is seen", || {
        reloader.stats().failed >= 1
    });
    assert_eq!(reloader.current().generation, 2);
    let last = reloader.stats().last_error.expect("error");
    assert!(last.contains("bad.crl"), "{last}");
}

/// A `certificate_file` in a subdirectory of roles_dir is watched too.
#[test]
fn certificate_file_edits_are_picked_up() {
    let (dir, config) = setup("0");
    let roles = dir.path().join("roles");
    write_atomic(&roles.join("certs/ca.pem"), ca_pem());
    write_atomic(
        &roles.join("web.yaml"),
        "certificate_file: certs/ca.pem\nallowed_common_names: [web]\n",
    );
    let reloader = Reloader::new(Some(config.clone())).expect("initial load");
    let _watch = reloader.spawn_watcher();
    wait_until("the watcher's start-up re-read", || {
        reloader.stats().unchanged >= 1
    });

    write_atomic(&roles.join("certs/ca.pem"), other_ca_pem());
    wait_until("the new certificate is applied", || {
        reloader.current().generation == 2
    });
    assert_eq!(reloader.current().fingerprint, fingerprint_on_disk(&config));
}

/// Readers never see a generation go backwards, and never block on a reload.
#[test]
fn readers_see_whole_snapshots_while_reloads_happen() {
    let (dir, config) = setup("0");
    let reloader = Reloader::new(Some(config)).expect("initial load");
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let reloader = Arc::clone(&reloader);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut last = 0;
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let snapshot = reloader.current();
                    assert!(snapshot.generation >= last);
                    last = snapshot.generation;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let web = dir.path().join("roles/web.yaml");
    for i in 0..10 {
        write_atomic(&web, &role(&format!("v{i}")));
        assert!(matches!(
            reloader.reload_now(),
            ReloadOutcome::Swapped { .. }
        ));
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().expect("reader") > 0);
    }
    assert_eq!(reloader.current().generation, 11);
    assert_eq!(reloader.stats().ok, 10);
}

/// The audit file certgate writes into a watched directory (a relative `audit.sink`
/// lands next to the config file) is not a change: a reload per audit line would
/// re-read and hash every file for every request. Rotated files neither. A real edit in
/// the same directory still is.
#[test]
fn writing_the_audit_file_in_a_watched_directory_is_not_a_change() {
    let dir = TempDir::new().expect("tempdir");
    let config = dir.path().join("certgate.yaml");
    write_atomic(
        &config,
        "roles_dir: roles\ncrls_dir: crls\nreload: { interval: 0s }\naudit: { sink: audit.log }\n",
    );
    write_atomic(&dir.path().join("roles/web.yaml"), &role("one"));
    let reloader = Reloader::new(Some(config.clone())).expect("initial load");
    let _watch = reloader.spawn_watcher();
    wait_until("the watcher's start-up re-read", || {
        reloader.stats().unchanged >= 1
    });
    let baseline = reloader.stats();

    // What the audit writer does: append lines, rotate.
    let audit = dir.path().join("audit.log");
    for i in 0..20 {
        let mut line = fs::read_to_string(&audit).unwrap_or_default();
        line.push_str(&format!("{{\"n\":{i}}}\n"));
        fs::write(&audit, line).expect("append");
        if i == 10 {
            fs::rename(&audit, dir.path().join("audit.log.1")).expect("rotate");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // A real edit in the same directory: the watcher is alive and sees it.
    write_atomic(&dir.path().join("roles/web.yaml"), &role("two"));
    wait_until("the role edit applied", || {
        reloader.current().generation == 2
    });
    let after = reloader.stats();
    assert_eq!(
        after.unchanged, baseline.unchanged,
        "audit writes caused re-reads: {baseline:?} -> {after:?}"
    );
    assert_eq!(after.ok, baseline.ok + 1);
}
