//! Tests on the real openshift/release corpus in `../shared/corpus`. Each one says clearly
//! that it is skipped when the corpus is absent.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use dispatcher_core::rules::Rule;
use dispatcher_core::{Mode, Plan, Settings, Severity, Strategy};
use dispatcher_formats::writeback::{config_for_plan, job_file_for_plan, needs_rewrite};
use dispatcher_formats::{InputPaths, Loaded};
use dispatcher_tests::corpus_or_skip;

fn tarball(c: &Path) -> PathBuf {
    c.join("release-7659af06.tar.gz")
}

fn load(c: &Path, release: PathBuf, volumes: Option<&str>, previous: Option<PathBuf>) -> Loaded {
    dispatcher_formats::load(
        &InputPaths {
            release,
            clusters: Some(c.join("clusters-2022.yaml")),
            volumes: volumes.map(|v| c.join(v)),
            previous,
            ..InputPaths::default()
        },
        &|| {},
    )
    .expect("corpus loads")
}

fn settings(strategy: Strategy) -> Settings {
    Settings {
        strategy,
        vsphere_cluster: "vsphere".to_owned(),
        ..Settings::default()
    }
}

/// Per job occurrence: (file, name, static cluster).
fn static_clusters(loaded: &Loaded) -> Vec<(String, String, Option<String>)> {
    loaded
        .files
        .iter()
        .flat_map(|f| {
            f.jobs
                .iter()
                .map(move |j| (f.path.clone(), j.name.clone(), j.cluster.clone()))
        })
        .collect()
}

#[test]
fn resolve_reproduces_the_static_cluster_fields() {
    let Some(c) = corpus_or_skip("resolve_reproduces_the_static_cluster_fields") else {
        return;
    };
    let loaded = load(&c, tarball(&c), None, None);
    let all = static_clusters(&loaded);
    assert_eq!(all.len(), 40_126);
    // As the sanitizer runs today (usable static clusters kept), and through the rule
    // ladder alone: the ladder must explain every field by itself, not by keeping it.
    for keep in [true, false] {
        let s = Settings {
            keep_static_clusters: keep,
            ..settings(Strategy::Resolve)
        };
        let plan = dispatcher_core::run(&loaded.inputs(), &s).unwrap();
        let differ: Vec<_> = all
            .iter()
            .filter(|(_, name, stat)| plan.jobs[name].cluster != *stat)
            .collect();
        let share = 1.0 - differ.len() as f64 / all.len() as f64;
        eprintln!(
            "resolve (keeping static clusters: {keep}) reproduces {:.3}% of {} static cluster fields; differences: {differ:?}",
            share * 100.0,
            all.len()
        );
        // Every field, as the README says: not a share close to it.
        assert!(
            differ.is_empty(),
            "{} of {} differ",
            differ.len(),
            all.len()
        );
        let kept = plan
            .jobs
            .values()
            .filter(|e| e.rule == Rule::StaticCluster)
            .count();
        if keep {
            assert!(kept > 35_000, "{kept} kept");
        } else {
            assert_eq!(kept, 0);
        }
    }
}

#[test]
fn the_vsphere_cluster_flag_decides_the_name_rule() {
    let Some(c) = corpus_or_skip("the_vsphere_cluster_flag_decides_the_name_rule") else {
        return;
    };
    let loaded = load(&c, tarball(&c), None, None);
    let s = Settings {
        vsphere_cluster: "vsphere02".into(),
        ..settings(Strategy::Resolve)
    };
    let plan = dispatcher_core::run(&loaded.inputs(), &s).unwrap();
    let vsphere = plan
        .jobs
        .values()
        .filter(|e| e.rule == Rule::Vsphere)
        .count();
    assert!(vsphere > 700, "{vsphere}");
    assert!(
        plan.jobs
            .values()
            .filter(|e| e.rule == Rule::Vsphere)
            .all(|e| e.cluster.as_deref() == Some("vsphere02"))
    );
}

#[test]
fn plan_places_every_kubernetes_job_or_lists_it() {
    let Some(c) = corpus_or_skip("plan_places_every_kubernetes_job_or_lists_it") else {
        return;
    };
    let loaded = load(
        &c,
        tarball(&c),
        Some("volumes-7659af06.week1.json.gz"),
        None,
    );
    for strategy in [Strategy::Balanced, Strategy::Classic] {
        let plan = dispatcher_core::run(&loaded.inputs(), &settings(strategy)).unwrap();
        let unschedulable: Vec<&str> = plan.unschedulable.iter().map(|u| u.job.as_str()).collect();
        let mut kubernetes = 0;
        for f in &loaded.files {
            for j in f.jobs.iter().filter(|j| j.is_kubernetes()) {
                kubernetes += 1;
                let e = &plan.jobs[&j.name];
                assert!(
                    e.cluster.is_some() || unschedulable.contains(&j.name.as_str()),
                    "{} has no cluster",
                    j.name
                );
            }
        }
        assert!(kubernetes > 40_000);
        assert_eq!(
            plan.summary.placed_jobs + plan.summary.unschedulable_jobs,
            plan.summary.kubernetes_jobs
        );
        if strategy == Strategy::Balanced {
            assert!(
                plan.summary.max_deviation <= 0.02,
                "{}",
                plan.summary.max_deviation
            );
        }
    }
}

#[test]
fn week_two_moves_little_and_delta_moves_nothing() {
    let Some(c) = corpus_or_skip("week_two_moves_little_and_delta_moves_nothing") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let week1 = load(
        &c,
        tarball(&c),
        Some("volumes-7659af06.week1.json.gz"),
        None,
    );
    let first = dispatcher_core::run(&week1.inputs(), &settings(Strategy::Balanced)).unwrap();
    let prev = dir.path().join("week1.json");
    std::fs::write(&prev, first.to_json()).unwrap();
    let week2 = load(
        &c,
        tarball(&c),
        Some("volumes-7659af06.week2.json.gz"),
        Some(prev),
    );
    let second = dispatcher_core::run(&week2.inputs(), &settings(Strategy::Balanced)).unwrap();
    let budget = second.summary.budget_demand.unwrap();
    assert!(second.summary.moved_demand <= budget);
    assert!(
        second.summary.max_deviation <= 0.10 + 1e-9,
        "hysteresis bounds the drift"
    );
    let delta = Settings {
        mode: Mode::Delta,
        ..settings(Strategy::Balanced)
    };
    let third = dispatcher_core::run(&week2.inputs(), &delta).unwrap();
    assert_eq!(third.summary.moved_jobs, 0);
    assert_eq!(third.jobs.len(), first.jobs.len());
}

#[test]
fn fast_parsing_agrees_with_full_parsing_on_every_file() {
    let Some(c) = corpus_or_skip("fast_parsing_agrees_with_full_parsing_on_every_file") else {
        return;
    };
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(tarball(&c)).unwrap());
    let mut archive = tar::Archive::new(gz);
    let mut checked = 0;
    let mut left_to_the_library = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if !path.starts_with("ci-operator/jobs/") || !path.ends_with(".yaml") {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        // The fast path alone, so that the fallback cannot hide a difference.
        let text = std::str::from_utf8(&bytes).unwrap();
        let full = dispatcher_formats::jobs::parse_job_file_full(&bytes);
        assert!(full.is_ok(), "{path}");
        match dispatcher_formats::jobs::parse_job_file_fast_only(text) {
            Some(fast) => assert_eq!(Ok(fast), full, "{path}"),
            None => left_to_the_library.push(path),
        }
        checked += 1;
    }
    assert_eq!(checked, 11_565);
    // The fast path is what makes a run fast: it must take nearly every real file.
    assert!(
        left_to_the_library.len() <= checked / 200,
        "{} files left to the library, e.g. {:?}",
        left_to_the_library.len(),
        &left_to_the_library[..left_to_the_library.len().min(5)]
    );
}

fn extract(c: &Path, into: &Path) {
    let gz = flate2::read::GzDecoder::new(
        std::fs::File::open(tarball(c)).expect("open the corpus tarball"),
    );
    tar::Archive::new(gz)
        .unpack(into)
        .expect("unpack the corpus tarball");
}

#[test]
fn a_directory_and_its_tarball_read_the_same() {
    let Some(c) = corpus_or_skip("a_directory_and_its_tarball_read_the_same") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    extract(&c, dir.path());
    let a = load(&c, tarball(&c), None, None);
    let b = load(&c, dir.path().to_owned(), None, None);
    assert_eq!(a.files, b.files);
    assert_eq!(a.digests, b.digests);
    assert_eq!(a.config, b.config);
}

/// A text without its `cluster:` values: what must survive a sanitize untouched. Whole
/// `cluster:` lines may be inserted; on `- cluster:` lines only the value may change.
fn without_cluster_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("cluster: "))
        .map(|l| match l.find("- cluster: ") {
            Some(i) if l[..i].trim().is_empty() => &l[..i + "- cluster:".len()],
            _ => l,
        })
        .collect()
}

fn after_build_farm(text: &str) -> &str {
    let i = text.find("\ndefault:").expect("default key");
    &text[i..]
}

#[test]
fn sanitize_writes_a_true_backup() {
    let Some(c) = corpus_or_skip("sanitize_writes_a_true_backup") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    extract(&c, dir.path());
    let loaded = load(
        &c,
        dir.path().to_owned(),
        Some("volumes-7659af06.week1.json.gz"),
        None,
    );
    let plan = dispatcher_core::run(&loaded.inputs(), &settings(Strategy::Balanced)).unwrap();
    let mut rewritten = 0;
    for f in &loaded.files {
        let path = dir.path().join(&f.path);
        let text = std::fs::read_to_string(&path).unwrap();
        if let Some((new, _)) = job_file_for_plan(&text, &plan).unwrap() {
            assert_eq!(
                without_cluster_lines(&text),
                without_cluster_lines(&new),
                "{}",
                f.path
            );
            std::fs::write(&path, new).unwrap();
            rewritten += 1;
        }
    }
    assert!(rewritten > 1000, "{rewritten}");
    let config_path = dir.path().join(dispatcher_formats::CONFIG_PATH);
    let text = std::fs::read_to_string(&config_path).unwrap();
    let new = config_for_plan(&text, &plan).expect("buildFarm changes");
    assert_eq!(
        after_build_farm(&text),
        after_build_farm(&new),
        "only buildFarm changes"
    );
    std::fs::write(&config_path, new).unwrap();

    // The Go sanitizer's rules on the written files give the plan's answer for every job.
    let sanitized = load(&c, dir.path().to_owned(), None, None);
    let resolved = dispatcher_core::run(&sanitized.inputs(), &settings(Strategy::Resolve)).unwrap();
    let mut mismatches = BTreeMap::new();
    for (name, e) in &plan.jobs {
        if e.cluster.is_some() && resolved.jobs[name].cluster != e.cluster {
            mismatches.insert(
                name.clone(),
                (e.cluster.clone(), resolved.jobs[name].cluster.clone()),
            );
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches, e.g. {:?}",
        mismatches.len(),
        mismatches.iter().next()
    );
    for (_, name, stat) in static_clusters(&sanitized) {
        if let Some(want) = plan.jobs[&name].cluster.as_ref() {
            assert_eq!(stat.as_ref(), Some(want), "{name}");
        }
    }
    // The sanitizer's rule applied to the written tree changes nothing: a fixed point, so
    // that `make jobs` and the backup PR do not rewrite each other's lines.
    let again: Vec<&str> = sanitized
        .files
        .iter()
        .filter(|f| needs_rewrite(f, &resolved))
        .map(|f| f.path.as_str())
        .collect();
    assert!(
        again.is_empty(),
        "{} files would change again, e.g. {:?}",
        again.len(),
        again.first()
    );
}

#[test]
fn validation_finds_the_real_configs_problems() {
    let Some(c) = corpus_or_skip("validation_finds_the_real_configs_problems") else {
        return;
    };
    let loaded = load(&c, tarball(&c), None, None);
    let diags = dispatcher_core::validate(&loaded.inputs(), &settings(Strategy::Resolve));
    let errors: Vec<_> = diags
        .iter()
        .filter(|d| d.severity <= Severity::Error)
        .collect();
    // The one duplicated group job (F4) and app.ci, which the 2022 config predates
    // manualClusters for.
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors.iter().any(|d| {
        d.key == "groups.build01.jobs"
            && d.message
                .contains("release-openshift-origin-installer-launch-metal")
    }));
    assert!(errors.iter().any(|d| d.key == "groups.app.ci"));
    let dups = diags
        .iter()
        .filter(|d| d.message.contains("also defined in"))
        .count();
    assert_eq!(dups, 7, "the corpus has 7 job names defined twice");
}

#[test]
fn modern_jobs_with_capabilities_land_on_capable_clusters() {
    let Some(c) = corpus_or_skip("modern_jobs_with_capabilities_land_on_capable_clusters") else {
        return;
    };
    let (config, d) = dispatcher_formats::parse_config(
        &std::fs::read(c.join("config-1f6433a1.nonbuildfarm.yaml")).unwrap(),
        "config",
    );
    assert!(d.iter().all(|d| d.severity == Severity::Warning), "{d:?}");
    assert!(config.determine_e2e_by_job);
    let (inventory, d) = dispatcher_formats::parse_inventory(
        &std::fs::read(c.join("clusters-f1af0c06.yaml")).unwrap(),
        "inv",
    );
    assert!(d.is_empty(), "{d:?}");
    assert!(inventory.clusters["build05"].blocked && inventory.clusters["build05"].capacity == 20);
    let mut files = Vec::new();
    for entry in walk(&c.join("modern-jobs")) {
        let rel = entry.to_string_lossy();
        let rel = &rel[rel.find("ci-operator/").unwrap()..];
        let bytes = std::fs::read(&entry).unwrap();
        files.push(dispatcher_core::model::JobFile {
            path: rel.to_owned(),
            size: bytes.len() as u64,
            jobs: dispatcher_formats::parse_job_file(&bytes).unwrap(),
        });
    }
    let inputs = dispatcher_core::Inputs {
        config: &config,
        inventory: &inventory,
        files: &files,
        volumes: None,
        previous: None,
        digests: Default::default(),
        sources: Default::default(),
        diagnostics: vec![],
    };
    let plan: Plan = dispatcher_core::run(&inputs, &Settings::default()).unwrap();
    let mut with_caps = 0;
    for f in &files {
        for j in &f.jobs {
            let caps = j.capabilities();
            let e = &plan.jobs[&j.name];
            if !caps.is_empty() && e.rule == Rule::Capability {
                with_caps += 1;
                let cluster = &inventory.clusters[e.cluster.as_deref().unwrap()];
                assert!(
                    caps.is_subset(&cluster.capabilities),
                    "{} on {}",
                    j.name,
                    cluster.name
                );
                assert!(!cluster.blocked);
            }
        }
    }
    assert!(with_caps > 0);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("list a corpus directory") {
        let p = e.expect("read a corpus directory").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}
