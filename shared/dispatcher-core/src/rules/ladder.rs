//! The rule ladder itself: per job, the first rule that matches decides (the Go dispatcher's
//! `DetermineClusterForJob`, and `sanitize-prow-jobs` before it).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::facts::FileFacts;
use super::reason::{CapabilityShortfall, ClusterShortfall, LadderError, LadderReason};
use super::{Decision, Rule, Rules};
use crate::model::{Job, labels};

/// What a set-based rule picks by: the length of the file's basename, and where the job
/// runs now (a cordoned cluster keeps the jobs it has).
#[derive(Debug, Clone, Copy)]
struct PickBy<'j> {
    basename_len: usize,
    incumbent: Option<&'j str>,
}

/// A rung of the ladder that may not match: `None` lets the next one try.
type Rung = Option<Result<Decision, LadderError>>;

impl Rules<'_> {
    /// The rule ladder (first match wins).
    ///
    /// `incumbent` is where the job runs now; it only matters for cordoned clusters, which
    /// keep what they have but receive nothing new.
    pub fn decide_in(
        &self,
        job: &Job,
        file: &FileFacts<'_, '_>,
        incumbent: Option<&str>,
    ) -> Result<Decision, LadderError> {
        // 0 (the sanitizer since cddfe66ae)
        if self.keep_static
            && let Some(c) = job.cluster.as_deref().filter(|c| self.keeps_static(c))
        {
            let detail = format!("static cluster {c} is a usable cluster: kept as it is");
            return Ok(self.fixed(c, Rule::StaticCluster, detail));
        }
        // 1
        if !job.is_kubernetes() {
            return Ok(Decision {
                cluster: None,
                relocatable: false,
                rule: Rule::NoClusterAgent,
                detail: format!("agent {:?} is not kubernetes", job.agent),
                set: Arc::clone(&self.no_set),
            });
        }
        // 1a (HEAD)
        if let Some(c) = job.cluster.as_deref()
            && self.is_manual(c)
        {
            let detail = format!("static cluster {c} is in manualClusters");
            return Ok(self.fixed(c, Rule::ManualCluster, detail));
        }
        // 2: an elastic vsphere job goes on down the ladder, and stays relocatable.
        let vsphere = job.name.contains("vsphere") && !job.is_applyconfig();
        let elastic_vsphere = vsphere
            && job
                .labels
                .get(labels::CLOUD_CLUSTER_PROFILE)
                .is_some_and(|p| p == labels::VSPHERE_ELASTIC_POC);
        if vsphere && !elastic_vsphere {
            let detail = "job name contains \"vsphere\"".to_owned();
            return Ok(self.fixed(&self.vsphere_cluster, Rule::Vsphere, detail));
        }
        // 3, 4
        if let Some(d) = self.by_pin_label(job) {
            return Ok(d);
        }
        let by = PickBy {
            basename_len: file.basename_len,
            incumbent,
        };
        // 5
        let required = job.capabilities();
        if !required.is_empty() {
            return self.by_capabilities(job, &required, by);
        }
        // 6, 7, 8
        let by_set = self
            .by_label_set(job, labels::KVM, &self.kvm, Rule::Kvm, by)
            .or_else(|| self.by_e2e_cloud(job, by))
            .or_else(|| {
                self.by_label_set(job, labels::NO_BUILDS, &self.no_builds, Rule::NoBuilds, by)
            });
        if let Some(decided) = by_set {
            return decided;
        }
        // 9, 10
        self.by_listing(job, file, elastic_vsphere)
    }

    /// A decision for `cluster` that balancing does not move.
    fn fixed(&self, cluster: &str, rule: Rule, detail: String) -> Decision {
        Decision {
            cluster: Some(cluster.to_owned()),
            relocatable: false,
            rule,
            detail,
            set: Arc::clone(&self.no_set),
        }
    }

    /// Rungs 3 and 4: the ssh-bastion label, then the cluster label.
    fn by_pin_label(&self, job: &Job) -> Option<Decision> {
        if job.labels.contains_key(labels::SSH_BASTION)
            && let Some(b) = self.config.ssh_bastion.as_deref().filter(|b| !b.is_empty())
        {
            let detail = format!("label {}", labels::SSH_BASTION);
            return Some(self.fixed(b, Rule::SshBastion, detail));
        }
        job.labels.get(labels::CLUSTER).map(|c| {
            let detail = format!("label {}={c}", labels::CLUSTER);
            self.fixed(c, Rule::LabelPin, detail)
        })
    }

    /// Rungs 6 and 8: a label that sends the job to a configured set of clusters.
    fn by_label_set(
        &self,
        job: &Job,
        label: &str,
        set: &Arc<[String]>,
        rule: Rule,
        by: PickBy<'_>,
    ) -> Rung {
        (job.labels.contains_key(label) && !set.is_empty())
            .then(|| self.pick(set, by, rule, format!("label {label}")))
    }

    /// Rung 7: with `determineE2EByJob`, the build-farm clusters of the job's mapped cloud.
    fn by_e2e_cloud(&self, job: &Job, by: PickBy<'_>) -> Rung {
        if !self.config.determine_e2e_by_job {
            return None;
        }
        let cloud = self.mapped_cloud(job)?;
        let set = self.farm_cloud.get(cloud).filter(|s| !s.is_empty())?;
        let raw = job.raw_cloud().unwrap_or_default();
        let detail = if raw == cloud {
            format!("e2e cloud {cloud}")
        } else {
            format!("e2e cloud {raw} mapped to {cloud}")
        };
        Some(self.pick(set, by, Rule::E2eCloud, detail))
    }

    /// Rungs 9 and 10: a group's job names, a group's path regexes, the `buildFarm` listing
    /// of the file, else `default`. A file claimed by several entries stops the ladder.
    fn by_listing(
        &self,
        job: &Job,
        file: &FileFacts<'_, '_>,
        elastic_vsphere: bool,
    ) -> Result<Decision, LadderError> {
        let by_name = self.group_jobs.get(job.name.as_str()).map(|c| {
            let mut d = self.fixed(c, Rule::GroupName, format!("listed in groups.{c}.jobs"));
            d.relocatable = elastic_vsphere;
            d
        });
        if file.is_contested() {
            return Err(LadderError {
                rule: Rule::GroupPath,
                reason: LadderReason::ClaimedBySeveral {
                    path: file.path.to_owned(),
                    claims: file.claims(),
                },
            });
        }
        if let Some(d) = by_name {
            return Ok(d);
        }
        if let Some((cluster, re)) = file.group_paths.first() {
            let detail = format!("path matches groups.{cluster}.paths {re:?}");
            let mut d = self.fixed(cluster, Rule::GroupPath, detail);
            d.relocatable = elastic_vsphere;
            return Ok(d);
        }
        let (cluster, rule, detail) = match file.farm.first() {
            Some((_, cluster)) => (
                *cluster,
                Rule::BuildFarm,
                format!("file listed in buildFarm under {cluster}"),
            ),
            None => (
                self.config.default.as_str(),
                Rule::Default,
                "no rule matched: default".to_owned(),
            ),
        };
        Ok(Decision {
            relocatable: true,
            ..self.fixed(cluster, rule, detail)
        })
    }

    /// Rung 5: the clusters that have every required capability, those of the job's cloud
    /// when there are any.
    fn by_capabilities(
        &self,
        job: &Job,
        required: &BTreeSet<String>,
        by: PickBy<'_>,
    ) -> Result<Decision, LadderError> {
        let capable: Vec<String> = self
            .inventory
            .clusters
            .values()
            .filter(|c| !c.blocked && required.is_subset(&c.capabilities))
            .map(|c| c.name.clone())
            .collect();
        if capable.is_empty() {
            return Err(LadderError {
                rule: Rule::Capability,
                reason: LadderReason::MissingCapabilities {
                    required: required.iter().cloned().collect(),
                    shortfall: self.capability_shortfall(required),
                },
            });
        }
        let wanted = required.iter().cloned().collect::<Vec<_>>().join(", ");
        let mut set = capable;
        let mut detail = format!("requires [{wanted}]");
        if self.config.determine_e2e_by_job
            && let Some(cloud) = self.mapped_cloud(job)
        {
            let same_cloud: Vec<String> = set
                .iter()
                .filter(|n| self.inventory.clusters[*n].provider == cloud)
                .cloned()
                .collect();
            if !same_cloud.is_empty() {
                set = same_cloud;
                detail.push_str(&format!(" on cloud {cloud}"));
            }
        }
        self.pick(&set.into(), by, Rule::Capability, detail)
    }

    /// Explains a capability miss: which clusters have the capabilities but are blocked,
    /// or what each usable cluster lacks.
    fn capability_shortfall(&self, required: &BTreeSet<String>) -> CapabilityShortfall {
        let clusters = self.inventory.clusters.values();
        let blocked: Vec<String> = clusters
            .clone()
            .filter(|c| c.blocked && required.is_subset(&c.capabilities))
            .map(|c| c.name.clone())
            .collect();
        if !blocked.is_empty() {
            return CapabilityShortfall::OnlyOnBlocked(blocked);
        }
        let missing: Vec<ClusterShortfall> = clusters
            .filter(|c| !c.blocked)
            .map(|c| ClusterShortfall {
                cluster: c.name.clone(),
                missing: required.difference(&c.capabilities).cloned().collect(),
            })
            .collect();
        if missing.is_empty() {
            CapabilityShortfall::NoUsableCluster
        } else {
            CapabilityShortfall::Missing(missing)
        }
    }

    /// `set[len(basename) mod n]`, avoiding a cordoned pick for a job that is not already
    /// there (the pick is then made among the set's other clusters, so that only the jobs
    /// that would newly land on the cordoned cluster change).
    fn pick(
        &self,
        set: &Arc<[String]>,
        by: PickBy<'_>,
        rule: Rule,
        detail: String,
    ) -> Result<Decision, LadderError> {
        let first = &set[by.basename_len % set.len()];
        let chosen = if self.inventory.is_cordoned(first) && by.incumbent != Some(first.as_str()) {
            let open: Vec<&String> = set
                .iter()
                .filter(|c| !self.inventory.is_cordoned(c))
                .collect();
            if open.is_empty() {
                return Err(LadderError {
                    rule,
                    reason: LadderReason::EveryCandidateCordoned {
                        detail,
                        candidates: Arc::clone(set),
                    },
                });
            }
            open[by.basename_len % open.len()].clone()
        } else {
            first.clone()
        };
        Ok(Decision {
            cluster: Some(chosen),
            relocatable: false,
            rule,
            detail,
            set: Arc::clone(set),
        })
    }
}
