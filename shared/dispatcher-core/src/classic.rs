//! The Go dispatcher's classic balancing (dispatcher-semantics.md §8) with deterministic
//! ties: files by size descending, 75% stickiness to the most used cluster, otherwise the
//! least raw volume among full-capacity clusters of the file's cloud. Kept as the baseline
//! we measure against and as a migration aid.

use std::collections::BTreeMap;

/// A build-farm cluster as classic sees it.
#[derive(Debug, Clone)]
pub(crate) struct FarmCluster {
    /// Its cloud.
    pub provider: String,
    /// Its capacity: only full-capacity clusters take files by least volume.
    pub capacity: u32,
    /// Cordoned clusters keep sticky files but take no others.
    pub cordoned: bool,
    /// Volume it should carry: capacity / Σ capacity × total.
    pub share: f64,
}

/// A file as classic sees it.
#[derive(Debug, Clone)]
pub(crate) struct ClassicFile<'a> {
    /// Its path, for a stable order among files of one size.
    pub path: &'a str,
    /// Its size in bytes: classic places the largest first.
    pub size: u64,
    /// The cloud its jobs share, if any.
    pub preference: Option<&'a str>,
    /// The cluster most of its jobs run on now.
    pub most_used: Option<String>,
    /// Demand of the jobs that follow the file's cluster.
    pub movable_demand: f64,
    /// Demand of the file's other jobs, by their (already known) cluster.
    pub fixed: Vec<(&'a str, f64)>,
}

/// How classic chose a file's cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClassicOutcome {
    /// Its most used cluster is below 75% of its share.
    Sticky,
    /// The least raw volume among full-capacity clusters of its cloud.
    LeastLoaded,
    /// No cluster qualifies.
    NoCluster,
}

/// Places every file: its cluster, if any, and how it was chosen.
pub(crate) fn place(
    farm: &BTreeMap<String, FarmCluster>,
    files: &[ClassicFile<'_>],
) -> Vec<(Option<String>, ClassicOutcome)> {
    let mut vol: BTreeMap<&str, f64> = farm.keys().map(|k| (k.as_str(), 0.0)).collect();
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by(|&a, &b| {
        files[b]
            .size
            .cmp(&files[a].size)
            .then_with(|| files[a].path.cmp(files[b].path))
    });
    let mut out = vec![(None, ClassicOutcome::NoCluster); files.len()];
    for i in order {
        let f = &files[i];
        let sticky = f.most_used.as_deref().filter(|m| {
            farm.get(*m)
                .is_some_and(|c| vol.get(m).copied().unwrap_or(0.0) < 0.75 * c.share)
        });
        let choice = if let Some(m) = sticky {
            Some((m.to_owned(), ClassicOutcome::Sticky))
        } else {
            // Providers and clusters in name order: the deterministic version of Go's
            // random map order, with the first strict minimum winning.
            let mut best: Option<(&str, f64)> = None;
            let mut names: Vec<(&str, &str)> = farm
                .iter()
                .filter(|(_, c)| c.capacity == 100 && !c.cordoned)
                .filter(|(_, c)| f.preference.is_none_or(|p| c.provider == p))
                .map(|(n, c)| (c.provider.as_str(), n.as_str()))
                .collect();
            names.sort();
            for (_, n) in names {
                let v = vol[n];
                if best.is_none_or(|(_, bv)| v < bv) {
                    best = Some((n, v));
                }
            }
            best.map(|(n, _)| (n.to_owned(), ClassicOutcome::LeastLoaded))
        };
        if let Some((c, _)) = &choice
            && let Some(v) = vol.get_mut(c.as_str())
        {
            *v += f.movable_demand;
        }
        for (c, d) in &f.fixed {
            if let Some(v) = vol.get_mut(c) {
                *v += d;
            }
        }
        out[i] = match choice {
            Some((c, o)) => (Some(c), o),
            None => (None, ClassicOutcome::NoCluster),
        };
    }
    out
}
