//! Reading certgate's admin endpoints: fetch over plain HTTP/1.1 and parse the
//! OpenMetrics text into series.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// GET `path` from the admin listener (on 127.0.0.1): (status, body).
pub fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    assert!(
        addr.ip().is_loopback(),
        "tests listen on 127.0.0.1 only: {addr}"
    );
    super::envoy::http_get_local(addr.port(), path)
        .unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"))
}

/// One scrape: series (`name` + sorted labels) → value.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// The exposition text as served.
    pub text: String,
    series: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    /// Parses OpenMetrics / Prometheus text. Panics on a sample line it cannot read:
    /// the format is part of the contract.
    pub fn parse(text: &str) -> Scrape {
        let mut series = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (name_labels, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("sample line without value: {line:?}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            let (name, labels) = match name_labels.split_once('{') {
                Some((name, rest)) => (
                    name.to_string(),
                    parse_labels(rest.strip_suffix('}').unwrap_or_else(|| panic!("{line:?}"))),
                ),
                None => (name_labels.to_string(), BTreeMap::new()),
            };
            series.push((name, labels, value));
        }
        Scrape {
            text: text.to_string(),
            series,
        }
    }

    /// Fetches `/metrics` and parses it.
    pub fn fetch(addr: SocketAddr) -> Scrape {
        let (status, body) = admin_get(addr, "/metrics");
        assert_eq!(status, 200, "/metrics: {body}");
        Scrape::parse(&body)
    }

    /// The sum of every series named `name` whose labels include `labels` (0 when
    /// there is none: a counter that never moved is not exported yet).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Whether any series named `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.series.iter().any(|(n, _, _)| n == name)
    }

    /// Every metric family name (without `_bucket`/`_sum`/`_count`/`_total` suffixes
    /// removed: as exported).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.series.iter().map(|(n, _, _)| n.clone()).collect();
        names.sort();
        names.dedup();
        names
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("label key");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        value.push(match e {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_string(), value);
        rest = after[end..].trim_start_matches(',');
    }
    labels
}

/// Scrapes until `ok` holds or `timeout` passes; returns the last scrape and whether
/// it held.
pub fn scrape_until(
    addr: SocketAddr,
    timeout: Duration,
    ok: impl Fn(&Scrape) -> bool,
) -> (Scrape, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        let s = Scrape::fetch(addr);
        if ok(&s) {
            return (s, true);
        }
        if Instant::now() > deadline {
            return (s, false);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
