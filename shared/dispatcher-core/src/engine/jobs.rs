//! The jobs a run places: one definition per name, its entry in the previous plan, and its
//! demand. Both the jobs and the name-keyed maps are walked in name order, so that finding
//! a job's previous entry or volume is a merge, not a lookup per job.

use std::collections::BTreeMap;

use crate::diag::Diagnostic;
use crate::model::{DemandModel, DemandOverflow, Job, JobFile, Volumes};

/// The job files in path order, one per path.
pub(super) fn sorted_files(files: &[JobFile]) -> Vec<&JobFile> {
    let mut v: Vec<&JobFile> = files.iter().collect();
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v.dedup_by(|a, b| a.path == b.path);
    v
}

/// The jobs that are placed: the first definition of a job name (in path order) wins, and
/// later ones are reported.
pub(super) struct Winners<'a> {
    /// (file index, job), in path order and file order.
    pub jobs: Vec<(usize, &'a Job)>,
    /// Indices into `jobs`, sorted by job name: the order of the plan's `jobs` map.
    pub by_name: Vec<usize>,
    /// A warning per definition that lost.
    pub diagnostics: Vec<Diagnostic>,
}

impl<'a> Winners<'a> {
    /// The winning definitions of `files` (sorted by path).
    pub fn of(files: &[&'a JobFile]) -> Self {
        let all: Vec<(usize, &Job)> = files
            .iter()
            .enumerate()
            .flat_map(|(fi, f)| f.jobs.iter().map(move |j| (fi, j)))
            .collect();
        // One sort by (name, position) finds the duplicates and gives the plan's order. The
        // keys sit next to each other, so that comparing them does not chase pointers.
        let mut keyed: Vec<(&str, usize)> =
            all.iter().map(|(_, j)| j.name.as_str()).zip(0..).collect();
        keyed.sort_unstable();
        let order: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
        let mut keep = vec![false; all.len()];
        let mut diagnostics = Vec::new();
        let mut first = usize::MAX;
        for &i in &order {
            if first != usize::MAX && all[first].1.name == all[i].1.name {
                let (fi, job) = all[i];
                diagnostics.push(Diagnostic::warning(
                    files[fi].path.clone(),
                    job.name.clone(),
                    format!(
                        "job name is also defined in {}; that definition is placed and this one follows its answer",
                        files[all[first].0].path
                    ),
                ));
            } else {
                first = i;
                keep[i] = true;
            }
        }
        let mut index = vec![usize::MAX; all.len()];
        let mut jobs = Vec::with_capacity(all.len());
        for (i, &j) in all.iter().enumerate() {
            if keep[i] {
                index[i] = jobs.len();
                jobs.push(j);
            }
        }
        let by_name = order
            .into_iter()
            .filter(|&i| keep[i])
            .map(|i| index[i])
            .collect();
        Winners {
            jobs,
            by_name,
            diagnostics,
        }
    }

    /// The value of each winner's name in a name-keyed map, or `None`; indexed like `jobs`.
    /// Both sides are in name order, so one merge walk replaces a lookup per job.
    pub fn join_by_name<'m, V>(&self, map: &'m BTreeMap<String, V>) -> Vec<Option<&'m V>> {
        let mut out = vec![None; self.jobs.len()];
        let mut entries = map.iter().peekable();
        for &i in &self.by_name {
            let name = self.jobs[i].1.name.as_str();
            while entries.next_if(|(k, _)| k.as_str() < name).is_some() {}
            if let Some((_, v)) = entries.next_if(|(k, _)| k.as_str() == name) {
                out[i] = Some(v);
            }
        }
        out
    }

    /// Each winner's demand: its weighted volumes, floored (jobs without samples get the
    /// minimum, F14); without volumes every job weighs the minimum. A demand that is not
    /// finite is an error naming the job.
    pub fn demands(
        &self,
        volumes: Option<&Volumes>,
        model: DemandModel,
    ) -> Result<Vec<f64>, DemandOverflow> {
        let Some(v) = volumes else {
            return Ok(vec![model.minimum; self.jobs.len()]);
        };
        let terms = [
            Some(&v.runs),
            v.hours.as_ref(),
            v.cpu_hours.as_ref(),
            v.memory_gib_hours.as_ref(),
        ]
        .map(|m| match m {
            Some(m) => self.join_by_name(m),
            None => vec![None; self.jobs.len()],
        });
        (0..self.jobs.len())
            .map(|i| {
                let term = |t: usize| terms[t][i].copied().unwrap_or(0.0);
                model.combine(&self.jobs[i].1.name, [term(0), term(1), term(2), term(3)])
            })
            .collect()
    }
}
