//! Temporary overrides of the inventory: a drain (a cluster, or one capability on it, takes
//! no jobs) or a new capacity. An override changes the inputs of a run, never its rules:
//! the plan with overrides is the engine's plan of the same release with the overridden
//! inventory, following the baseline plan, so that every move it makes is one the engine
//! would make for a `_clusters.yaml` saying the same. A drain then moves only the jobs of
//! the drained cluster ([`confine`]): the set rules' `len(basename) mod n` would otherwise
//! reshuffle jobs of other clusters too, which no operator asked for during an incident.
//!
//! Pure, like the rest of the core: the caller passes the inputs, the baseline plan and
//! the time bounds are data.

mod confine;
mod impact;

use serde::{Deserialize, Serialize};

use crate::diag::{Diagnostic, FatalInputs};
use crate::engine::{Settings, StoredInputs};
use crate::model::Inventory;
use crate::plan::{Mode, Plan};

pub use confine::confine;
pub use impact::{Impact, PairMove, ShareChange, impact};

/// The pseudo-file override diagnostics name.
pub const OVERRIDES_FILE: &str = "overrides";

/// What an override does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverrideKind {
    /// The cluster (or the capability on it) takes no jobs; its jobs move now.
    Drain,
    /// The cluster's capacity (its desired share of the load) is another, 1..=100.
    Capacity,
}

impl OverrideKind {
    /// The kind as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideKind::Drain => "drain",
            OverrideKind::Capacity => "capacity",
        }
    }
}

/// One override as a run applies it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OverrideSpec {
    /// Its id.
    pub id: String,
    /// What it does.
    pub kind: OverrideKind,
    /// The cluster it changes.
    pub cluster: String,
    /// Only the jobs that need this capability (a drain only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// The new capacity (a capacity override only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// When it ends (seconds since the epoch).
    pub expires_at: i64,
}

/// The overrides of `applied` still in force at `now`, split into those `inventory` admits
/// and those it supersedes (the release blocks or drops their cluster, or the capability):
/// what a recompute keeps applying, and what ends with it. A pull request's plan splits
/// them the same way, so that it shows what the merge would do.
pub fn in_force(
    applied: &[OverrideSpec],
    inventory: &Inventory,
    now: i64,
) -> (Vec<OverrideSpec>, Vec<OverrideSpec>) {
    applied
        .iter()
        .filter(|o| o.expires_at > now)
        .cloned()
        .partition(|o| o.check(inventory).is_ok())
}

/// Why overrides cannot be applied to an inventory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// The inventory has no such cluster.
    #[error("unknown cluster {0:?}: it is not in the inventory")]
    UnknownCluster(String),
    /// The cluster does not offer the capability.
    #[error("cluster {cluster:?} has no capability {capability:?}")]
    UnknownCapability {
        /// The cluster.
        cluster: String,
        /// The capability asked for.
        capability: String,
    },
    /// The cluster already takes no jobs.
    #[error("cluster {0:?} is blocked in the inventory already")]
    Blocked(String),
    /// A capacity override without a capacity in 1..=100, or a drain with one.
    #[error("{0}")]
    Capacity(String),
    /// Two live overrides on one cluster: their effects would depend on their order.
    #[error("overrides {first} and {second} both change cluster {cluster:?}; cancel one first")]
    Overlap {
        /// The earlier override.
        first: String,
        /// The later one.
        second: String,
        /// The cluster.
        cluster: String,
    },
}

impl OverrideSpec {
    /// Checks the override against the inventory it will change.
    pub fn check(&self, inventory: &Inventory) -> Result<(), OverrideError> {
        let cluster = inventory
            .clusters
            .get(&self.cluster)
            .ok_or_else(|| OverrideError::UnknownCluster(self.cluster.clone()))?;
        if cluster.blocked {
            return Err(OverrideError::Blocked(self.cluster.clone()));
        }
        if let Some(capability) = &self.capability
            && !cluster.capabilities.contains(capability)
        {
            return Err(OverrideError::UnknownCapability {
                cluster: self.cluster.clone(),
                capability: capability.clone(),
            });
        }
        match (self.kind, self.capacity, &self.capability) {
            (OverrideKind::Drain, None, _) => Ok(()),
            (OverrideKind::Drain, Some(_), _) => Err(OverrideError::Capacity(
                "a drain takes no capacity".to_owned(),
            )),
            (OverrideKind::Capacity, _, Some(_)) => Err(OverrideError::Capacity(
                "a capacity override applies to a whole cluster: jobs that need a capability are placed by the capability rule, which no capacity weighs; drain the capability instead".to_owned(),
            )),
            (OverrideKind::Capacity, Some(1..=100), None) => Ok(()),
            (OverrideKind::Capacity, other, None) => Err(OverrideError::Capacity(format!(
                "capacity must be 1..=100, not {}",
                other.map_or("nothing".to_owned(), |c| c.to_string())
            ))),
        }
    }

    /// A line for the plan's diagnostics, so that a generation says what it applied.
    fn diagnostic(&self) -> Diagnostic {
        let what = match (self.kind, &self.capability, self.capacity) {
            (OverrideKind::Drain, Some(c), _) => format!("drain of capability {c} on"),
            (OverrideKind::Drain, None, _) => "drain of".to_owned(),
            (OverrideKind::Capacity, _, n) => format!("capacity {} for", n.unwrap_or_default()),
        };
        Diagnostic::warning(
            OVERRIDES_FILE,
            &self.id,
            // Not its end: a plan is made before its override starts, and `Applied` in the
            // generation carries the end.
            format!("override {}: {what} cluster {}", self.id, self.cluster),
        )
    }
}

/// The inventory with `overrides` applied: a drain blocks the cluster or takes the
/// capability away from it, a capacity override sets its capacity.
pub fn apply(
    inventory: &Inventory,
    overrides: &[OverrideSpec],
) -> Result<Inventory, OverrideError> {
    let mut seen: Vec<&OverrideSpec> = Vec::new();
    for o in overrides {
        o.check(inventory)?;
        if let Some(first) = seen.iter().find(|s| s.cluster == o.cluster) {
            return Err(OverrideError::Overlap {
                first: first.id.clone(),
                second: o.id.clone(),
                cluster: o.cluster.clone(),
            });
        }
        seen.push(o);
    }
    let mut out = inventory.clone();
    for o in overrides {
        let Some(cluster) = out.clusters.get_mut(&o.cluster) else {
            continue;
        };
        match (o.kind, &o.capability) {
            (OverrideKind::Drain, None) => cluster.blocked = true,
            (OverrideKind::Drain, Some(c)) => {
                cluster.capabilities.remove(c);
            }
            (OverrideKind::Capacity, _) => {
                cluster.capacity = o.capacity.unwrap_or(cluster.capacity)
            }
        }
    }
    Ok(out)
}

/// Why a plan with overrides could not be made.
#[derive(Debug, thiserror::Error)]
pub enum OverridePlanError {
    /// An override does not fit the inventory.
    #[error(transparent)]
    Override(#[from] OverrideError),
    /// The engine refused the inputs.
    #[error("the inputs are unusable")]
    Inputs(#[source] FatalInputs),
}

/// The plan of `inputs` with `overrides` applied, following `baseline` (the plan of the
/// same inputs without them). No override: `baseline` itself.
pub fn plan(
    inputs: &StoredInputs,
    baseline: &Plan,
    settings: &Settings,
    overrides: &[OverrideSpec],
) -> Result<Plan, OverridePlanError> {
    if overrides.is_empty() {
        return Ok(baseline.clone());
    }
    let mut sorted = overrides.to_vec();
    sorted.sort();
    let inventory = apply(&inputs.inventory, &sorted)?;
    let mut run_inputs = inputs.inputs(Some(baseline));
    run_inputs.inventory = &inventory;
    run_inputs
        .diagnostics
        .extend(sorted.iter().map(OverrideSpec::diagnostic));
    let settings = Settings {
        mode: Mode::Full,
        ..settings.clone()
    };
    let effective = crate::run(&run_inputs, &settings).map_err(OverridePlanError::Inputs)?;
    Ok(confine(baseline, effective, &sorted))
}
