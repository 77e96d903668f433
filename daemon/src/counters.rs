//! Counters that only grow, keyed by a few bounded label values (docs/metrics.md: channel
//! names come from bmsd.toml, outcomes are fixed words). They live as long as bmsd; Prometheus
//! reads a restart as a counter reset.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct LabelCounters {
    map: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl LabelCounters {
    /// Adds one to the counter of `labels` (created at 0 first).
    pub fn inc(&self, labels: &[&str]) {
        let key = labels.iter().map(|s| (*s).to_owned()).collect();
        let mut m = match self.map.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        *m.entry(key).or_insert(0) += 1;
    }

    /// Makes `labels` exist at 0 if it does not yet, so the family is served before anything
    /// happened.
    pub fn touch(&self, labels: &[&str]) {
        let key = labels.iter().map(|s| (*s).to_owned()).collect();
        let mut m = match self.map.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.entry(key).or_insert(0);
    }

    /// Every counter, ordered by its labels.
    pub fn snapshot(&self) -> Vec<(Vec<String>, u64)> {
        let m = match self.map.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_grow_per_label_set_and_touch_adds_nothing() {
        let c = LabelCounters::default();
        c.touch(&["mail", "sent"]);
        c.inc(&["mail", "failed"]);
        c.inc(&["mail", "failed"]);
        c.touch(&["mail", "failed"]);
        let s = c.snapshot();
        assert_eq!(
            s,
            vec![
                (vec!["mail".to_owned(), "failed".to_owned()], 2),
                (vec!["mail".to_owned(), "sent".to_owned()], 0),
            ]
        );
    }
}
