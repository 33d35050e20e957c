//! The balanced strategy: capacity-normalised greedy placement of whole files, then a
//! budgeted local search that spends the movement budget on the moves that reduce
//! imbalance the most per unit of demand moved.
//!
//! Imbalance is `Φ = Σ load(c)² / capacity(c)`, which is minimal exactly when every load is
//! proportional to capacity; a move of `x` from `a` to `b` changes it by
//! `x·((2·load(a) − x)/cap(a) − (2·load(b) + x)/cap(b))`.

use std::collections::{BTreeMap, BTreeSet};

use crate::fnv::tie_hash;

/// The clusters balancing may use, in name order.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    pub names: Vec<String>,
    pub cap: Vec<f64>,
}

impl Pool {
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.binary_search_by(|n| n.as_str().cmp(name)).ok()
    }

    pub fn members(&self, mask: u128) -> impl Iterator<Item = usize> + '_ {
        (0..self.names.len()).filter(move |i| mask & (1u128 << i) != 0)
    }
}

/// Where a file starts before the local search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// New file: no previous cluster.
    Free,
    /// Stays on its previous cluster unless a budgeted move pays.
    Stay(usize),
    /// Its previous cluster is gone or no longer eligible: placed anew, not charged.
    Forced,
}

#[derive(Debug, Clone)]
pub(crate) struct BalFile<'a> {
    pub path: &'a str,
    /// Demand of the jobs that follow the file's cluster.
    pub demand: f64,
    /// Eligible clusters (bits over `Pool`); never empty.
    pub mask: u128,
    pub start: Start,
    /// Demand charged to the budget when the file leaves its previous cluster.
    pub cost: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    BestScore,
    Kept,
    Rebalanced,
    Forced,
}

#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub cluster: Vec<usize>,
    pub outcome: Vec<Outcome>,
    pub load: Vec<f64>,
}

/// Churn controls; `None` means a fresh placement (no previous plan).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Churn {
    pub hysteresis: f64,
    pub budget: f64,
}

/// Places every file on one eligible cluster.
pub(crate) fn place(
    pool: &Pool,
    fixed_load: &[f64],
    files: &[BalFile<'_>],
    churn: Option<Churn>,
) -> Placement {
    let mut load = fixed_load.to_vec();
    let mut cluster = vec![usize::MAX; files.len()];
    let mut outcome = vec![Outcome::BestScore; files.len()];
    for (i, f) in files.iter().enumerate() {
        if let Start::Stay(c) = f.start {
            cluster[i] = c;
            outcome[i] = Outcome::Kept;
            load[c] += f.demand;
        }
    }
    // Largest first: the classic LPT order keeps the final imbalance within the smallest
    // files' size. Ties by path keep the order independent of the input order.
    let mut order: Vec<usize> = (0..files.len())
        .filter(|&i| !matches!(files[i].start, Start::Stay(_)))
        .collect();
    order.sort_by(|&a, &b| {
        files[b]
            .demand
            .total_cmp(&files[a].demand)
            .then_with(|| files[a].path.cmp(files[b].path))
    });
    for i in order {
        let f = &files[i];
        let c = best_cluster(pool, &load, f, None);
        cluster[i] = c;
        outcome[i] = if f.start == Start::Forced {
            Outcome::Forced
        } else {
            Outcome::BestScore
        };
        load[c] += f.demand;
    }
    let (hysteresis, budget, movable): (f64, f64, Vec<bool>) = match churn {
        Some(ch) => (
            ch.hysteresis,
            ch.budget,
            files
                .iter()
                .map(|f| matches!(f.start, Start::Stay(_)))
                .collect(),
        ),
        None => (0.0, f64::INFINITY, vec![true; files.len()]),
    };
    improve(
        pool,
        files,
        &movable,
        hysteresis,
        budget,
        churn.is_some(),
        &mut cluster,
        &mut load,
        &mut outcome,
    );
    Placement {
        cluster,
        outcome,
        load,
    }
}

/// The eligible cluster with the lowest score `(load + demand) / capacity`; ties broken by
/// FNV-64a over (path, 0x00, cluster), then by name.
pub(crate) fn best_cluster(
    pool: &Pool,
    load: &[f64],
    f: &BalFile<'_>,
    exclude: Option<usize>,
) -> usize {
    // (score, cluster, tie hash once computed): hashing the path only on equal scores.
    let mut best: Option<(f64, usize, Option<u64>)> = None;
    for c in pool.members(f.mask) {
        if Some(c) == exclude {
            continue;
        }
        let score = (load[c] + f.demand) / pool.cap[c];
        best = match best {
            None => Some((score, c, None)),
            Some((bs, ..)) if score < bs => Some((score, c, None)),
            Some((bs, bc, bh)) if score == bs => {
                let bh = bh.unwrap_or_else(|| tie_hash(f.path, &pool.names[bc]));
                let h = tie_hash(f.path, &pool.names[c]);
                if (h, c) < (bh, bc) {
                    Some((score, c, Some(h)))
                } else {
                    Some((bs, bc, Some(bh)))
                }
            }
            keep => keep,
        };
    }
    best.map_or(usize::MAX, |b| b.1)
}

#[allow(clippy::too_many_arguments)]
fn improve(
    pool: &Pool,
    files: &[BalFile<'_>],
    movable: &[bool],
    hysteresis: f64,
    budget: f64,
    charged: bool,
    cluster: &mut [usize],
    load: &mut [f64],
    outcome: &mut [Outcome],
) {
    // Files grouped by (current cluster, eligibility); within a group the smallest file is
    // the best candidate for any target: both the hysteresis test and the gain per unit of
    // demand favour smaller files.
    let mut groups: BTreeMap<(usize, u128), BTreeSet<(u64, usize)>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        if movable[i] && f.demand > 0.0 && f.mask.count_ones() > 1 {
            groups
                .entry((cluster[i], f.mask))
                .or_default()
                .insert((f.demand.to_bits(), i));
        }
    }
    let scale: f64 = load.iter().sum::<f64>().max(1.0);
    let min_gain = 1e-12 * scale;
    let mut remaining = budget;
    // A bound that is never reached in practice; it keeps a pathological input finite.
    for _ in 0..2_000_000 {
        let mut best: Option<(f64, usize, usize, usize, u128)> = None;
        for (&(a, mask), set) in &groups {
            let Some(&(_, i)) = set.first() else { continue };
            let f = &files[i];
            let x = f.demand;
            // Only leaving the previous cluster is charged; a file already moved this run
            // was charged when it left.
            let cost = match f.start {
                Start::Stay(p) if charged && p == a => f.cost,
                _ => 0.0,
            };
            if cost > remaining + 1e-9 {
                continue;
            }
            let la = load[a] / pool.cap[a];
            for b in pool.members(mask) {
                if b == a {
                    continue;
                }
                let lb_after = (load[b] + x) / pool.cap[b];
                if la <= lb_after * (1.0 + hysteresis) {
                    continue;
                }
                let gain =
                    x * ((2.0 * load[a] - x) / pool.cap[a] - (2.0 * load[b] + x) / pool.cap[b]);
                if gain <= min_gain {
                    continue;
                }
                let ratio = gain / x;
                if best.is_none_or(|(r, ..)| ratio > r) {
                    best = Some((ratio, i, a, b, mask));
                }
            }
        }
        let Some((_, i, a, b, mask)) = best else {
            break;
        };
        let x = files[i].demand;
        if let Some(set) = groups.get_mut(&(a, mask)) {
            set.remove(&(x.to_bits(), i));
        }
        groups
            .entry((b, mask))
            .or_default()
            .insert((x.to_bits(), i));
        load[a] -= x;
        load[b] += x;
        cluster[i] = b;
        if charged {
            // A file that returns to its previous cluster gives its charge back.
            match files[i].start {
                Start::Stay(p) if p == b => {
                    remaining += files[i].cost;
                    outcome[i] = Outcome::Kept;
                }
                Start::Stay(p) if p == a => {
                    remaining -= files[i].cost;
                    outcome[i] = Outcome::Rebalanced;
                }
                _ => {}
            }
        }
    }
}
