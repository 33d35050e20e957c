//! Properties of the placement on random worlds, and a brute-force oracle for balancing.

mod common;

use std::collections::BTreeSet;

use common::*;
use dispatcher_core::model::{Job, JobFile, labels};
use dispatcher_core::optimum::{self, DemandClass};
use dispatcher_core::rules::{Rule, is_cluster_upgrade_job};
use dispatcher_core::{Mode, Plan, Settings};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

const CLUSTERS: [&str; 5] = ["build01", "build02", "build03", "build04", "build05"];
const CAPS: [&str; 2] = ["arm64", "gpu"];

#[derive(Debug, Clone)]
struct ClusterSpec {
    gcp: bool,
    capacity: u32,
    caps: Vec<bool>,
    blocked: bool,
    reserved: bool,
    cordoned: bool,
}

#[derive(Debug, Clone)]
enum Kind {
    Plain,
    Cloud(bool),
    Capability(usize),
    Pin(usize),
    Kvm,
    Upgrade(usize),
}

#[derive(Debug, Clone)]
struct JobSpec {
    kind: Kind,
    static_cluster: Option<usize>,
    runs: u32,
}

fn cluster_spec() -> impl Strategy<Value = ClusterSpec> {
    (
        any::<bool>(),
        prop::sample::select(vec![20u32, 40, 60, 100]),
        prop::collection::vec(prop::bool::weighted(0.3), CAPS.len()),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(gcp, capacity, caps, blocked, reserved, cordoned)| ClusterSpec {
                gcp,
                capacity,
                caps,
                blocked,
                reserved,
                cordoned,
            },
        )
}

fn job_spec(n: usize) -> impl Strategy<Value = JobSpec> {
    let kind = prop_oneof![
        6 => Just(Kind::Plain),
        2 => any::<bool>().prop_map(Kind::Cloud),
        1 => (0..CAPS.len()).prop_map(Kind::Capability),
        1 => (0..n).prop_map(Kind::Pin),
        1 => Just(Kind::Kvm),
        1 => (0..n).prop_map(Kind::Upgrade),
    ];
    (kind, prop::option::of(0..n), 0u32..50).prop_map(|(kind, static_cluster, runs)| JobSpec {
        kind,
        static_cluster,
        runs,
    })
}

fn world_strategy() -> impl Strategy<Value = World> {
    (2usize..=5)
        .prop_flat_map(|n| {
            (
                prop::collection::vec(cluster_spec(), n),
                prop::collection::vec(prop::collection::vec(job_spec(n), 1..=4), 1..=10),
            )
        })
        .prop_map(|(clusters, files)| build_world(&clusters, &files))
}

fn build_world(clusters: &[ClusterSpec], files: &[Vec<JobSpec>]) -> World {
    let names: Vec<&str> = CLUSTERS[..clusters.len()].to_vec();
    let mut w = World::new(
        names[0],
        clusters
            .iter()
            .zip(&names)
            .map(|(s, n)| {
                let mut c = cluster(n, if s.gcp { "gcp" } else { "aws" }, s.capacity);
                c.capabilities = CAPS
                    .iter()
                    .zip(&s.caps)
                    .filter(|(_, on)| **on)
                    .map(|(c, _)| (*c).to_owned())
                    .collect();
                c.blocked = s.blocked;
                c.reserved = s.reserved;
                c.cordoned = s.cordoned;
                c
            })
            .collect(),
    );
    w.config.kvm = vec![names[names.len() - 1].to_owned()];
    w.config.build_farm.insert(
        "aws".into(),
        [(names[0].to_owned(), vec!["f0.yaml".to_owned()])]
            .into_iter()
            .collect(),
    );
    for (fi, jobs) in files.iter().enumerate() {
        let mut out = Vec::new();
        for (ji, spec) in jobs.iter().enumerate() {
            let name = match spec.kind {
                Kind::Upgrade(c) => format!("periodic-{}-upgrade", names[c]),
                _ => format!("job-{fi}-{ji}"),
            };
            let mut j = job(&name);
            match spec.kind {
                Kind::Plain => {}
                Kind::Cloud(gcp) => j = label(j, labels::CLOUD, if gcp { "gcp" } else { "aws" }),
                Kind::Capability(c) => j = label(j, &format!("capability/{}", CAPS[c]), CAPS[c]),
                Kind::Pin(c) | Kind::Upgrade(c) => j = label(j, labels::CLUSTER, names[c]),
                Kind::Kvm => j = label(j, labels::KVM, "1"),
            }
            j.cluster = spec.static_cluster.map(|c| names[c].to_owned());
            w.volumes.runs.insert(name, f64::from(spec.runs));
            out.push(j);
        }
        w.files
            .push(file(&format!("ci-operator/jobs/o/r{fi}/f{fi}.yaml"), out));
    }
    w
}

fn usable(w: &World) -> bool {
    w.inventory.clusters.values().any(|c| !c.blocked)
}

fn plan(w: &World, previous: Option<&Plan>) -> Plan {
    w.plan(&Settings::default(), previous)
}

fn all_jobs(w: &World) -> impl Iterator<Item = (&JobFile, &Job)> {
    w.files
        .iter()
        .flat_map(|f| f.jobs.iter().map(move |j| (f, j)))
}

/// Rules through which an operator names the cluster explicitly.
fn explicit(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::LabelPin
            | Rule::GroupName
            | Rule::GroupPath
            | Rule::SshBastion
            | Rule::ManualCluster
            | Rule::Vsphere
            | Rule::Kvm
            | Rule::NoBuilds
    )
}

fn moved_demand(old: &Plan, new: &Plan, keep: impl Fn(&str) -> bool) -> f64 {
    new.jobs
        .iter()
        .filter(|(name, e)| {
            old.jobs
                .get(*name)
                .is_some_and(|o| o.cluster.is_some() && o.cluster != e.cluster)
        })
        .filter(|(name, _)| keep(name))
        .map(|(_, e)| e.demand)
        .sum()
}

proptest! {
    #![proptest_config(config(192))]

    #[test]
    fn identical_inputs_give_identical_plans(w in world_strategy()) {
        prop_assume!(usable(&w));
        prop_assert_eq!(plan(&w, None).to_json(), plan(&w, None).to_json());
    }

    #[test]
    fn file_order_does_not_matter(w in world_strategy(), seed in any::<u64>()) {
        prop_assume!(usable(&w));
        let mut shuffled = w.clone();
        let n = shuffled.files.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % (i as u64 + 1)) as usize;
            shuffled.files.swap(i, j);
        }
        prop_assert_eq!(plan(&w, None).to_json(), plan(&shuffled, None).to_json());
    }

    #[test]
    fn placements_respect_capabilities_blocks_cordons_and_reservations(w in world_strategy()) {
        prop_assume!(usable(&w));
        let p = plan(&w, None);
        for (f, j) in all_jobs(&w) {
            let e = &p.jobs[&j.name];
            if e.file != f.path {
                continue; // a duplicate name: the other definition is placed
            }
            let Some(c) = e.cluster.as_deref() else { continue };
            let Some(info) = w.inventory.clusters.get(c) else { continue };
            let required = j.capabilities();
            if e.rule == Rule::Capability {
                prop_assert!(required.is_subset(&info.capabilities), "{} on {c} lacks {:?}", j.name, required);
            }
            if !required.is_empty() {
                prop_assert!(e.rule == Rule::Capability || explicit(e.rule) || e.rule == Rule::Unschedulable);
            }
            if info.blocked {
                prop_assert!(is_cluster_upgrade_job(&j.name), "{} placed on blocked {c}", j.name);
            }
            if info.cordoned && !info.blocked {
                let file_incumbents: BTreeSet<&str> = f.jobs.iter().filter_map(|x| x.cluster.as_deref()).collect();
                prop_assert!(
                    j.cluster.as_deref() == Some(c) || explicit(e.rule) || file_incumbents.contains(c),
                    "{} newly placed on cordoned {c} by {:?}", j.name, e.rule
                );
            }
            if info.reserved && !info.blocked {
                prop_assert!(
                    !required.is_disjoint(&info.capabilities) || explicit(e.rule),
                    "{} on reserved {c} does not need it", j.name
                );
            }
        }
    }

    #[test]
    fn routine_runs_move_at_most_the_budget(w in world_strategy(), factor in prop::collection::vec(0.2f64..5.0, 40)) {
        prop_assume!(usable(&w));
        let first = plan(&w, None);
        let mut w2 = w.clone();
        for (i, v) in w2.volumes.runs.values_mut().enumerate() {
            *v = (*v * factor[i % factor.len()]).round();
        }
        let second = plan(&w2, Some(&first));
        let budget = second.summary.budget_demand.unwrap();
        let moved = moved_demand(&first, &second, |_| true);
        prop_assert!(moved <= budget + 1e-6, "moved {moved} > budget {budget}");
        prop_assert_eq!(second.summary.forced_moved_jobs, 0);
    }

    #[test]
    fn blocking_a_cluster_forces_only_its_jobs(w in world_strategy(), pick in 0usize..5) {
        prop_assume!(usable(&w));
        let first = plan(&w, None);
        let mut w2 = w.clone();
        let names: Vec<String> = w2.inventory.clusters.keys().cloned().collect();
        let victim = names[pick % names.len()].clone();
        w2.cluster_mut(&victim).blocked = true;
        prop_assume!(usable(&w2));
        let second = plan(&w2, Some(&first));
        let budget = second.summary.budget_demand.unwrap();
        let unforced = moved_demand(&first, &second, |name| first.jobs[name].cluster.as_deref() != Some(victim.as_str()));
        prop_assert!(unforced <= budget + 1e-6, "moved {unforced} off usable clusters > budget {budget}");
        for (name, e) in &second.jobs {
            prop_assert!(
                e.cluster.as_deref() != Some(victim.as_str()) || e.rule == Rule::Unschedulable || is_cluster_upgrade_job(name),
                "{} still on blocked {}", name, victim
            );
        }
    }

    #[test]
    fn a_second_run_is_a_fixed_point(w in world_strategy()) {
        prop_assume!(usable(&w));
        let first = plan(&w, None);
        let second = plan(&w, Some(&first));
        prop_assert_eq!(second.summary.moved_jobs, 0);
    }

    #[test]
    fn delta_never_moves_an_existing_job(w in world_strategy(), extra in 1u32..30) {
        prop_assume!(usable(&w));
        let first = plan(&w, None);
        let mut w2 = w.clone();
        w2.files[0].jobs.push(job("added-to-existing"));
        w2.files.push(file("ci-operator/jobs/o/new/new.yaml", vec![job("added-new-file")]));
        for v in w2.volumes.runs.values_mut() {
            *v += f64::from(extra);
        }
        let delta = Settings { mode: Mode::Delta, ..Settings::default() };
        let second = w2.plan(&delta, Some(&first));
        for (name, e) in &first.jobs {
            prop_assert_eq!(&second.jobs[name].cluster, &e.cluster, "{} moved", name);
        }
        prop_assert!(second.jobs.contains_key("added-new-file"));
    }
}

proptest! {
    #![proptest_config(config(192))]

    /// A new job of an existing file joins its siblings, whatever the `buildFarm` listing
    /// says: until the backup PR merges, that listing is stale (issue: delta never splits a
    /// file).
    #[test]
    fn delta_puts_a_new_job_with_its_siblings_despite_a_stale_build_farm(
        w in world_strategy(),
        which in any::<prop::sample::Index>(),
        stale in prop::collection::vec(any::<prop::sample::Index>(), 10),
    ) {
        prop_assume!(usable(&w));
        let first = plan(&w, None);
        let mut w2 = w.clone();
        // A listing that has nothing to do with the plan: every file under some cluster.
        let names: Vec<String> = w2.inventory.clusters.keys().cloned().collect();
        w2.config.build_farm.clear();
        for (i, f) in w2.files.iter().enumerate() {
            let c = stale[i % stale.len()].get(&names);
            let cloud = w2.inventory.clusters[c].provider.clone();
            w2.config.build_farm.entry(cloud).or_default().entry(c.clone()).or_default().push(f.basename().to_owned());
        }
        let k = which.index(w2.files.len());
        let path = w2.files[k].path.clone();
        w2.files[k].jobs.push(job("added-to-existing"));
        let delta = Settings { mode: Mode::Delta, ..Settings::default() };
        let second = w2.plan(&delta, Some(&first));
        let before = first.files[&path].cluster.clone();
        let added = &second.jobs["added-to-existing"];
        let open = |c: &str| w2.inventory.clusters.get(c).is_some_and(|x| !x.blocked && !x.reserved && !x.cordoned);
        if let Some(x) = before.as_deref().filter(|x| open(x)) && added.rule == Rule::Balanced {
            prop_assert_eq!(added.cluster.as_deref(), Some(x), "the new job left its file's cluster");
            prop_assert_eq!(second.files[&path].cluster.as_deref(), Some(x), "the file entry moved");
        }
        for (name, e) in &first.jobs {
            prop_assert_eq!(&second.jobs[name].cluster, &e.cluster, "{} moved", name);
        }
    }
}

// The oracle: tiny all-relocatable instances against every possible assignment.
proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn balancing_is_near_the_brute_force_optimum(
        caps_ in prop::collection::vec(prop::sample::select(vec![25u32, 50, 100]), 2..=3),
        sizes in prop::collection::vec(1u32..=20, 2..=7),
    ) {
        let names = &CLUSTERS[..caps_.len()];
        let mut w = World::new(names[0], names.iter().zip(&caps_).map(|(n, c)| cluster(n, "aws", *c)).collect());
        for (i, s) in sizes.iter().enumerate() {
            let name = format!("j{i}");
            w.files.push(file(&format!("ci-operator/jobs/o/f{i}.yaml"), vec![job(&name)]));
            w.volumes.runs.insert(name, f64::from(*s));
        }
        let p = plan(&w, None);
        let cap: Vec<f64> = caps_.iter().map(|c| f64::from(*c)).collect();
        let load: Vec<f64> = names.iter().map(|n| p.clusters[*n].demand).collect();
        let ours = load.iter().zip(&cap).map(|(l, c)| l / c).fold(0.0, f64::max);

        // Every assignment of files to clusters.
        let k = cap.len();
        let n = sizes.len();
        let (mut best_max, mut best_dev) = (f64::INFINITY, f64::INFINITY);
        for code in 0..k.pow(n as u32) {
            let mut l = vec![0.0; k];
            let mut c = code;
            for s in &sizes {
                l[c % k] += f64::from(*s);
                c /= k;
            }
            best_max = best_max.min(l.iter().zip(&cap).map(|(x, c)| x / c).fold(0.0, f64::max));
            best_dev = best_dev.min(optimum::max_deviation(&cap, &l));
        }
        let x_max = f64::from(*sizes.iter().max().unwrap());
        let cap_min = cap.iter().copied().fold(f64::INFINITY, f64::min);
        prop_assert!(ours >= best_max - 1e-9, "the oracle is not optimal");
        // No single file can move to improve the balance: the max normalised load is
        // within one file of the optimum.
        prop_assert!(ours <= best_max + x_max / cap_min + 1e-9, "ours {ours} vs optimum {best_max}");
        // The fractional optimum is a true lower bound of every integral placement.
        let total: f64 = sizes.iter().map(|s| f64::from(*s)).sum();
        let frac = optimum::fractional_optimum(&cap, &vec![0.0; k], &[DemandClass { mask: (1 << k) - 1, demand: total }]);
        prop_assert!(frac <= best_dev + 1e-6, "fractional {frac} above integral optimum {best_dev}");
        prop_assert!(p.summary.max_deviation + 1e-6 >= best_dev, "ours beats the optimum?");
    }
}

/// `PROPTEST_CASES` raises the number of cases for a longer local run; failures are kept
/// beside this file, in `properties.regressions`, and replayed first.
fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        max_global_rejects: cases.saturating_mul(4),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    }
}
