//! The inputs of one run, read together: the release (config, inventory, job files), the
//! inventory override, the volume vectors and the previous plan, with their digests.

use std::path::{Path, PathBuf};

use dispatcher_core::model::{DispatcherConfig, Inventory, JobFile, Volumes};
use dispatcher_core::plan::InputDigests;
use dispatcher_core::{Diagnostic, Inputs, Plan, Sources, StoredInputs};

use crate::release::{
    self, CLUSTERS_PATH, CONFIG_PATH, Limits, Parse, ReadOptions, Release, Source,
};
use crate::{digest, parse_config, parse_inventory, parse_vector, volumes, yaml};

/// Where a run's inputs come from.
#[derive(Debug, Clone, Default)]
pub struct InputPaths {
    /// The release: a checkout directory or a `.tar.gz` of one.
    pub release: PathBuf,
    /// Overrides the inventory inside the release.
    pub clusters: Option<PathBuf>,
    /// Prometheus run counts.
    pub volumes: Option<PathBuf>,
    /// Prometheus job seconds (optional second query), turned into job-hours.
    pub durations: Option<PathBuf>,
    /// Prometheus CPU seconds per job (optional), turned into CPU-hours.
    pub cpu: Option<PathBuf>,
    /// Prometheus memory byte-seconds per job (optional), turned into GiB-hours.
    pub memory: Option<PathBuf>,
    /// The plan this run follows (minimal churn, delta).
    pub previous: Option<PathBuf>,
    /// How thoroughly job files are parsed.
    pub parse: Parse,
    /// What the release may hold.
    pub limits: Limits,
}

/// Everything read for one run, owned; [`Loaded::inputs`] lends it to the core.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// `_config.yaml`, as far as it could be read.
    pub config: DispatcherConfig,
    /// `_clusters.yaml` or its override, as far as it could be read.
    pub inventory: Inventory,
    /// The job files that parsed, sorted by path.
    pub files: Vec<JobFile>,
    /// The demand terms, when volumes were given.
    pub volumes: Option<Volumes>,
    /// The previous plan, when given.
    pub previous: Option<Plan>,
    /// The `sha256:` digests of every input, for the plan's provenance.
    pub digests: InputDigests,
    /// Names of the config and inventory files, for diagnostics.
    pub sources: Sources,
    /// What was found wrong while reading, each naming its file and key.
    pub diagnostics: Vec<Diagnostic>,
    /// Bytes of `_config.yaml` as read (for writing `buildFarm` back).
    pub config_text: Vec<u8>,
    /// Job files' bytes, when the release was read with them.
    pub texts: std::collections::BTreeMap<String, Vec<u8>>,
}

/// Why the inputs of a run could not be read. Each variant keeps its cause as a source;
/// print the whole chain with [`dispatcher_core::chain`] (or anyhow's `{:#}`).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The release could not be read whole.
    #[error(transparent)]
    Release(#[from] release::ReleaseError),
    /// A side input could not be read (or is larger than a document may be).
    #[error("cannot read {}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A volumes vector that cannot become demand.
    #[error("{}", .path.display())]
    Volumes {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: volumes::VolumeError,
    },
    /// The previous plan is not a plan.
    #[error("{}: not a plan", .path.display())]
    Plan {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

fn read_vector(
    path: &Path,
    diags: &mut Vec<Diagnostic>,
) -> Result<(volumes::Vector, String), LoadError> {
    let bytes = read(path)?;
    let mut v = parse_vector(&bytes).map_err(|source| LoadError::Volumes {
        path: path.to_owned(),
        source,
    })?;
    // Said here, under the file's name, rather than by the demand they end up in.
    for w in std::mem::take(&mut v.warnings) {
        diags.push(Diagnostic::warning(input_name(path), "warnings", w));
    }
    Ok((v, digest::sha256(&bytes)))
}

/// How a plan names a side input: by its file name alone, because a plan's bytes must
/// depend on what its inputs say, not on the directory they were read from (the same
/// inventory under two checkouts gives one plan).
fn input_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// Reads a side input (the inventory override, a volumes vector, a previous plan), refusing
/// one larger than a document may be before reading it.
fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > yaml::MAX_DOCUMENT_BYTES as u64 {
        return Err(io(std::io::Error::other(format!(
            "{size} bytes, more than the {} a document may have",
            yaml::MAX_DOCUMENT_BYTES
        ))));
    }
    std::fs::read(path).map_err(io)
}

/// Reads and parses every input of a run. Problems with the release's own files become
/// diagnostics (so that `validate` can list them all); unreadable side inputs are errors.
pub fn load(src: &InputPaths, progress: &(dyn Fn() + Sync)) -> Result<Loaded, LoadError> {
    // The side inputs do not depend on the release: they are read while it streams.
    let (release, side) = rayon::join(
        || {
            let opts = ReadOptions {
                parse: src.parse,
                limits: src.limits,
                ..ReadOptions::default()
            };
            release::read(Source::Path(src.release.clone()), opts, progress)
        },
        || read_side(src),
    );
    let (release, side) = (release?, side?);
    let mut loaded = assemble(release, side.clusters, &src.release.display().to_string());
    loaded.diagnostics.extend(side.diagnostics);
    if let Some(runs) = side.volumes {
        let demand = volumes::Demand::from_vectors(runs, side.durations, side.cpu, side.memory);
        loaded = loaded.with_demand(demand);
    }
    if let Some((plan, digest)) = side.previous {
        loaded = loaded.following(plan, digest);
    }
    Ok(loaded)
}

/// The inputs beside the release, each with its digest.
struct Side {
    clusters: Option<(String, Vec<u8>)>,
    volumes: Option<(volumes::Vector, String)>,
    durations: Option<(volumes::Vector, String)>,
    cpu: Option<(volumes::Vector, String)>,
    memory: Option<(volumes::Vector, String)>,
    previous: Option<(Plan, String)>,
    diagnostics: Vec<Diagnostic>,
}

fn read_side(src: &InputPaths) -> Result<Side, LoadError> {
    let mut diagnostics = Vec::new();
    let clusters = match &src.clusters {
        Some(p) => Some((input_name(p), read(p)?)),
        None => None,
    };
    let mut vector = |path: &Option<PathBuf>| match path {
        Some(p) => read_vector(p, &mut diagnostics).map(Some),
        None => Ok(None),
    };
    let volumes = vector(&src.volumes)?;
    let durations = vector(&src.durations)?;
    let cpu = vector(&src.cpu)?;
    let memory = vector(&src.memory)?;
    let previous = match &src.previous {
        Some(p) => {
            let bytes = read(p)?;
            let text = String::from_utf8_lossy(&bytes);
            let plan = Plan::from_json(&text).map_err(|source| LoadError::Plan {
                path: p.clone(),
                source,
            })?;
            Some((plan, digest::sha256(&bytes)))
        }
        None => None,
    };
    Ok(Side {
        clusters,
        volumes,
        durations,
        cpu,
        memory,
        previous,
        diagnostics,
    })
}

/// Parses the release's config and inventory (or the `clusters` override: name and bytes)
/// into a [`Loaded`] without volumes or previous plan. `origin` names the release in
/// diagnostics.
pub fn assemble(release: Release, clusters: Option<(String, Vec<u8>)>, origin: &str) -> Loaded {
    let mut diags = release.diagnostics;
    let config_text = release.config.unwrap_or_default();
    let (config, d) = if config_text.is_empty() {
        (
            DispatcherConfig::default(),
            vec![Diagnostic::fatal(
                CONFIG_PATH,
                "",
                format!("not found in {origin}"),
            )],
        )
    } else if let Some(parsed) = release.parsed_config {
        parsed
    } else {
        parse_config(&config_text, CONFIG_PATH)
    };
    diags.extend(d);
    let (inventory_name, inventory_bytes) = match clusters {
        Some((name, bytes)) => (name, Some(bytes)),
        None => (CLUSTERS_PATH.to_owned(), release.clusters),
    };
    let inventory = match &inventory_bytes {
        Some(b) => {
            let (inv, d) = parse_inventory(b, &inventory_name);
            diags.extend(d);
            inv
        }
        None => {
            diags.push(Diagnostic::fatal(
                inventory_name.clone(),
                "",
                format!("not found in {origin}; pass --clusters"),
            ));
            Inventory::default()
        }
    };
    let digests = InputDigests {
        config: digest::sha256(&config_text),
        // Canonical JSON of the parsed inventory: formatting-only edits keep the digest.
        inventory: inventory_digest(&inventory),
        jobs: release.jobs_digest,
        ..InputDigests::default()
    };
    Loaded {
        config,
        inventory,
        files: release.files,
        volumes: None,
        previous: None,
        digests,
        sources: Sources {
            config: CONFIG_PATH.to_owned(),
            inventory: inventory_name,
        },
        diagnostics: diags,
        config_text,
        texts: release.texts,
    }
}

/// `sha256:` of the canonical JSON of an inventory.
pub fn inventory_digest(inventory: &Inventory) -> String {
    digest::sha256(&serde_json::to_vec(inventory).unwrap_or_default())
}

impl Loaded {
    /// The same inputs with the demand measured; what the vectors held that was skipped
    /// becomes warnings.
    pub fn with_demand(mut self, demand: volumes::Demand) -> Self {
        self.digests.volumes = Some(demand.runs_digest);
        self.digests.durations = demand.durations_digest;
        self.digests.cpu = demand.cpu_digest;
        self.digests.memory = demand.memory_digest;
        self.volumes = Some(demand.volumes);
        self.diagnostics.extend(
            demand
                .warnings
                .into_iter()
                .map(|w| Diagnostic::warning("volumes", "warnings", w)),
        );
        self
    }

    /// The same inputs following `previous`, the plan serving now, whose document has
    /// `digest` (minimal churn, delta).
    pub fn following(mut self, previous: Plan, digest: String) -> Self {
        self.digests.previous = Some(digest);
        self.previous = Some(previous);
        self
    }

    /// The inputs without the previous plan, owned: what a generation keeps of its release.
    pub fn stored(&self) -> StoredInputs {
        StoredInputs {
            config: self.config.clone(),
            inventory: self.inventory.clone(),
            files: self.files.clone(),
            volumes: self.volumes.clone(),
            digests: self.digests.clone(),
            sources: self.sources.clone(),
            diagnostics: self.diagnostics.clone(),
        }
    }

    /// The inputs as the core takes them, borrowed.
    pub fn inputs(&self) -> Inputs<'_> {
        Inputs {
            config: &self.config,
            inventory: &self.inventory,
            files: &self.files,
            volumes: self.volumes.as_ref(),
            previous: self.previous.as_ref(),
            digests: self.digests.clone(),
            sources: self.sources.clone(),
            diagnostics: self.diagnostics.clone(),
        }
    }
}
