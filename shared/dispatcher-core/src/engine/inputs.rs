//! What a run reads, and how it is asked to place.

use serde::{Deserialize, Serialize};

use crate::diag::Diagnostic;
use crate::model::{DemandModel, DispatcherConfig, Inventory, JobFile, Volumes};
use crate::plan::{InputDigests, Mode, Plan, Strategy};

/// Names of the input files, for diagnostics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sources {
    /// The dispatcher config (`_config.yaml`).
    pub config: String,
    /// The cluster inventory (`_clusters.yaml`).
    pub inventory: String,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            config: "core-services/sanitize-prow-jobs/_config.yaml".to_owned(),
            inventory: "core-services/sanitize-prow-jobs/_clusters.yaml".to_owned(),
        }
    }
}

/// Everything a run reads. The core never touches files, the network or the clock.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The dispatcher config.
    pub config: &'a DispatcherConfig,
    /// The cluster inventory.
    pub inventory: &'a Inventory,
    /// Every job file of the release.
    pub files: &'a [JobFile],
    /// Job volumes; without them every job weighs the demand model's minimum.
    pub volumes: Option<&'a Volumes>,
    /// The plan this run follows: churn is measured, and limited, against it.
    pub previous: Option<&'a Plan>,
    /// Digests of the inputs, recorded in the plan.
    pub digests: InputDigests,
    /// Names of the input files, for diagnostics.
    pub sources: Sources,
    /// Findings of the parsers, carried into the plan.
    pub diagnostics: Vec<Diagnostic>,
}

/// The inputs of a run without the previous plan, owned: what a generation keeps of its
/// release so that an override is planned without reading the repository again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredInputs {
    /// The dispatcher config.
    pub config: DispatcherConfig,
    /// The cluster inventory, as the release has it (no override applied).
    pub inventory: Inventory,
    /// Every job file of the release.
    pub files: Vec<JobFile>,
    /// Job volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Volumes>,
    /// Digests of the inputs.
    pub digests: InputDigests,
    /// Names of the input files.
    pub sources: Sources,
    /// Findings of the parsers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
}

impl StoredInputs {
    /// Borrowed inputs of a run that follows `previous`.
    pub fn inputs<'a>(&'a self, previous: Option<&'a Plan>) -> Inputs<'a> {
        Inputs {
            config: &self.config,
            inventory: &self.inventory,
            files: &self.files,
            volumes: self.volumes.as_ref(),
            previous,
            digests: self.digests.clone(),
            sources: self.sources.clone(),
            diagnostics: self.diagnostics.clone(),
        }
    }
}

/// How a run places.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file-level strategy.
    pub strategy: Strategy,
    /// Place every job, or only the jobs absent from the previous plan.
    pub mode: Mode,
    /// Target of the name-based vsphere rule.
    pub vsphere_cluster: String,
    /// A file moves only when another cluster scores better by more than this percentage.
    pub hysteresis_percent: f64,
    /// Percentage of the total demand that balancing may move, forced moves aside.
    pub movement_budget_percent: f64,
    /// How volumes weigh into a job's demand.
    pub demand: DemandModel,
    /// Resolve only: keep a usable static `cluster:` as the sanitizer does
    /// ([`crate::rules::Rules::keeping_static_clusters`]); off, every job goes through the
    /// ladder.
    pub keep_static_clusters: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            strategy: Strategy::Balanced,
            mode: Mode::Full,
            vsphere_cluster: "vsphere02".to_owned(),
            hysteresis_percent: 10.0,
            movement_budget_percent: 10.0,
            demand: DemandModel::default(),
            keep_static_clusters: true,
        }
    }
}
