//! The balanced strategy over the files not chosen yet: each file's start (free, staying on
//! its previous cluster, or forced off it), the balancer's placement, and why each file
//! ended where it did.

use super::{FileChoice, balance_input};
use crate::balance::{self, BalancedFile, Churn, Outcome, Pool, Start};
use crate::engine::Run;
use crate::engine::files::FileState;
use crate::plan::FileReason;

impl Run<'_> {
    /// Chooses the files not chosen yet; `fixed_load` is the fixed load of each pool
    /// cluster.
    pub(super) fn choose_balanced(&self, chosen: &mut [Option<FileChoice>], fixed_load: &[f64]) {
        let churn = self.churn();
        let open: Vec<usize> = (0..chosen.len())
            .filter(|&fi| chosen[fi].is_none())
            .collect();
        let files: Vec<BalancedFile<'_>> = open
            .iter()
            .map(|&fi| self.balanced_file(&self.files[fi], churn))
            .collect();
        let placed = balance::place(&self.pool, fixed_load, &files, churn);
        for (k, &fi) in open.iter().enumerate() {
            let c = placed.cluster[k];
            let reason = match placed.outcome[k] {
                Outcome::BestScore => FileReason::BestScore,
                Outcome::Rebalanced => FileReason::Rebalanced,
                Outcome::Forced => FileReason::ForcedMove,
                Outcome::Kept => kept_reason(&self.pool, &placed.load, &files[k], c, churn),
            };
            chosen[fi] = Some(FileChoice {
                cluster: self.pool.names.get(c).cloned(),
                reason,
                balanced: true,
            });
        }
    }

    /// A file as the balancer sees it: with a previous plan, it stays on its previous
    /// cluster while that is eligible (leaving costs the demand of the jobs that were
    /// there), and is forced off it otherwise.
    fn balanced_file<'f>(&self, f: &'f FileState<'_>, churn: Option<Churn>) -> BalancedFile<'f> {
        let start = match (churn, f.previous.as_deref()) {
            (None, _) | (_, None) => Start::Free,
            (Some(_), Some(p)) => match self.pool.index(p) {
                Some(i) if f.mask & (1u128 << i) != 0 => Start::Stay(i),
                _ => Start::Forced,
            },
        };
        let cost: f64 = f
            .jobs
            .iter()
            .map(|&ji| &self.jobs[ji])
            .filter(|j| j.is_movable())
            .filter(|j| j.previous.is_some() && j.previous == f.previous.as_deref())
            .map(|j| j.demand)
            .sum();
        balance_input(f, start, cost)
    }
}

/// Why a file stayed: already best, within the hysteresis, or held by the budget.
fn kept_reason(
    pool: &Pool,
    load: &[f64],
    f: &BalancedFile<'_>,
    c: usize,
    churn: Option<Churn>,
) -> FileReason {
    let Some(ch) = churn else {
        return FileReason::BestScore;
    };
    let alt = balance::best_cluster(pool, load, f, Some(c));
    if alt == usize::MAX {
        return FileReason::Kept;
    }
    let here = load[c] / pool.cap[c];
    let there = (load[alt] + f.demand) / pool.cap[alt];
    if here > there * (1.0 + ch.hysteresis) {
        FileReason::BudgetExhausted
    } else if here > there {
        FileReason::Hysteresis
    } else {
        FileReason::Kept
    }
}
