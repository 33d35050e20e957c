//! The balanced strategy: capacity-normalised greedy placement of whole files, then a
//! budgeted local search that spends the movement budget on the moves that reduce
//! imbalance the most per unit of demand moved.
//!
//! Imbalance is `Φ = Σ load(c)² / capacity(c)`, which is minimal exactly when every load is
//! proportional to capacity; a move of `x` from `a` to `b` changes it by
//! `x·((2·load(a) − x)/cap(a) − (2·load(b) + x)/cap(b))`.

use std::collections::{BTreeMap, BTreeSet};

use crate::fnv::tie_hash;
use crate::model::Inventory;

/// The clusters balancing may use, in name order.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    /// Their names.
    pub names: Vec<String>,
    /// Their capacities, as weights.
    pub cap: Vec<f64>,
}

impl Pool {
    /// The inventory's clusters that take new files: usable, unreserved, uncordoned.
    pub fn of(inventory: &Inventory) -> Self {
        let (names, cap) = inventory
            .clusters
            .values()
            .filter(|c| !c.blocked && !c.reserved && !c.cordoned)
            .map(|c| (c.name.clone(), f64::from(c.capacity)))
            .unzip();
        Self { names, cap }
    }

    /// A cluster's position, which is its bit in eligibility masks.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.binary_search_by(|n| n.as_str().cmp(name)).ok()
    }

    /// The positions of the clusters in `mask`.
    pub fn members(&self, mask: u128) -> impl Iterator<Item = usize> + '_ {
        (0..self.names.len()).filter(move |i| mask & (1u128 << i) != 0)
    }

    /// Whether `name` is a pool cluster in `mask`.
    pub fn admits(&self, mask: u128, name: &str) -> bool {
        self.index(name).is_some_and(|i| mask & (1u128 << i) != 0)
    }

    /// The mask of every pool cluster.
    pub fn all(&self) -> u128 {
        (0..self.names.len()).fold(0, |m, i| m | (1u128 << i))
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

/// A file as the balancer sees it: its movable demand and where it may go.
#[derive(Debug, Clone)]
pub(crate) struct BalancedFile<'a> {
    /// Its path, for ties and a stable order.
    pub path: &'a str,
    /// Demand of the jobs that follow the file's cluster.
    pub demand: f64,
    /// Eligible clusters (bits over `Pool`); never empty.
    pub mask: u128,
    /// Where it starts.
    pub start: Start,
    /// Demand charged to the budget when the file leaves its previous cluster.
    pub cost: f64,
}

/// How a file came to its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Placed by the greedy pass on the best score.
    BestScore,
    /// Stayed on (or came back to) its previous cluster.
    Kept,
    /// Moved off its previous cluster by a budgeted move.
    Rebalanced,
    /// Its previous cluster could not keep it; placed anew.
    Forced,
}

/// Where the balancer put every file, and the loads that result.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    /// Per file: its pool position (`usize::MAX` when its mask is empty).
    pub cluster: Vec<usize>,
    /// Per file: how it got there.
    pub outcome: Vec<Outcome>,
    /// Per pool cluster: fixed load plus the files placed on it.
    pub load: Vec<f64>,
}

/// Churn controls; `None` means a fresh placement (no previous plan).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Churn {
    /// A file moves only when another cluster scores better by more than this fraction.
    pub hysteresis: f64,
    /// Demand that may move off previous clusters, forced moves aside.
    pub budget: f64,
}

/// Places every file on one eligible cluster.
pub(crate) fn place(
    pool: &Pool,
    fixed_load: &[f64],
    files: &[BalancedFile<'_>],
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
    let limits = match churn {
        Some(ch) => SearchLimits {
            movable: files
                .iter()
                .map(|f| matches!(f.start, Start::Stay(_)))
                .collect(),
            hysteresis: ch.hysteresis,
            budget: ch.budget,
            charged: true,
        },
        None => SearchLimits {
            movable: vec![true; files.len()],
            hysteresis: 0.0,
            budget: f64::INFINITY,
            charged: false,
        },
    };
    let mut placed = Placement {
        cluster,
        outcome,
        load,
    };
    improve(pool, files, &limits, &mut placed);
    placed
}

/// The eligible cluster with the lowest score `(load + demand) / capacity`; ties broken by
/// FNV-64a over (path, 0x00, cluster), then by name.
pub(crate) fn best_cluster(
    pool: &Pool,
    load: &[f64],
    f: &BalancedFile<'_>,
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

/// What the local search may do: which files it may move, how much better a move must make
/// the target's score, and how much demand it may move off previous clusters.
struct SearchLimits {
    /// Per file: whether the search may move it.
    movable: Vec<bool>,
    /// A move must lower the file's score by more than this fraction.
    hysteresis: f64,
    /// Demand that may leave its previous cluster.
    budget: f64,
    /// Whether moves are charged to the budget (there is a previous plan).
    charged: bool,
}

/// The budgeted local search: moves files, best first by imbalance reduction per unit of
/// demand moved, while a move pays and the budget lasts.
fn improve(pool: &Pool, files: &[BalancedFile<'_>], limits: &SearchLimits, placed: &mut Placement) {
    let (movable, hysteresis, charged) = (&limits.movable, limits.hysteresis, limits.charged);
    let Placement {
        cluster,
        outcome,
        load,
    } = placed;
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
    let mut remaining = limits.budget;
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
