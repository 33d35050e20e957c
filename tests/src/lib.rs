#![warn(missing_docs)]
//! Shared helpers for the corpus tests and the benchmark programs.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The team corpus (`../shared/corpus` beside the repository, or `$DISPATCHER_CORPUS`).
/// `None` when it is absent: callers say so clearly and skip.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("DISPATCHER_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    };
    dir.join("release-7659af06.tar.gz").is_file().then_some(dir)
}

/// The corpus, or a loud note that a corpus-driven test is skipped.
pub fn corpus_or_skip(test: &str) -> Option<PathBuf> {
    let dir = corpus_dir();
    if dir.is_none() {
        // Straight to the process's stderr: the test harness captures `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: the corpus is absent (expected ../shared/corpus beside the repository, or set DISPATCHER_CORPUS)"
        );
    }
    dir
}

/// The bundled sample data (`tests/fixtures/sample`: a release checkout and run volumes).
pub fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample")
}

/// Copies the tree `from` into `to` (created), so that a test changes a copy of a fixture.
///
/// # Panics
/// On any I/O error: this is test support, and the test fails loudly.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a directory");
    for entry in std::fs::read_dir(from).expect("list a directory") {
        let entry = entry.expect("read a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// A job name carrying markup: job names come from public files, and every page and
/// message must show it as text.
pub const MARKUP_JOB: &str = "pull-ci-acme-widget-main-x<script>alert(1)</script>";

/// Adds [`MARKUP_JOB`] to a copy of the sample release at `release`: a second copy of
/// `pull-ci-acme-widget-main-unit` in the same file, under that name.
///
/// # Panics
/// When the file is not the sample's (test support).
pub fn add_markup_job(release: &Path) {
    let file = release.join("ci-operator/jobs/acme/widget/acme-widget-main-presubmits.yaml");
    let text = std::fs::read_to_string(&file).expect("the sample's widget presubmits");
    let odd = text.replacen(
        "name: pull-ci-acme-widget-main-unit",
        &format!("name: \"{MARKUP_JOB}\""),
        1,
    );
    let first_job = odd.find("  - ").expect("a job list");
    std::fs::write(&file, format!("{text}{}", &odd[first_job..])).expect("write the job file");
}

/// A recomputer of the release checkout at `release` with the sample's run volumes, on
/// `stores`, without GitHub: what the end-to-end tests publish their first generations with.
pub fn sample_recomputer(
    cfg: &dispatcher_config::RuntimeConfig,
    stores: dispatcher_app::Stores,
    release: PathBuf,
) -> dispatcher_app::recompute::Recomputer {
    recompute::recomputer_over(
        cfg,
        stores,
        std::sync::Arc::new(dispatcher_app::local::LocalRepo {
            path: release,
            clusters: None,
            limits: cfg.release_limits,
        }),
        std::sync::Arc::new(dispatcher_app::local::FileDemand {
            runs: sample().join("volumes.json"),
            durations: None,
            cpu: None,
            memory: None,
        }),
        None,
    )
}

/// A recomputer of the corpus tarball with its 2022 inventory and week-1 volumes, on
/// `stores`, without GitHub: what the benchmarks publish their first generation with.
pub fn corpus_recomputer(
    corpus: &Path,
    stores: dispatcher_app::Stores,
    settings: dispatcher_core::Settings,
) -> dispatcher_app::recompute::Recomputer {
    dispatcher_app::recompute::Recomputer {
        stores,
        repo: std::sync::Arc::new(dispatcher_app::local::LocalRepo {
            path: corpus.join("release-7659af06.tar.gz"),
            clusters: Some(corpus.join("clusters-2022.yaml")),
            limits: Default::default(),
        }),
        demand: std::sync::Arc::new(dispatcher_app::local::FileDemand {
            runs: corpus.join("volumes-7659af06.week1.json.gz"),
            durations: None,
            cpu: None,
            memory: None,
        }),
        fallback: None,
        settings,
        max_deleted: dispatcher_app::publish::MAX_DELETED,
        notifier: None,
        pull_requests: None,
    }
}

/// The files of a `.tar.gz`, with their paths, in archive order.
pub fn tar_members(tarball: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    use std::io::Read as _;
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(tarball)?);
    let mut out = Vec::new();
    for entry in tar::Archive::new(gz).entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        let mut buf = Vec::new();
        entry.read_to_end(&mut buf)?;
        out.push((path, buf));
    }
    Ok(out)
}

/// Lambda's asynchronous invoke, played by a test or a benchmark: each hand-off goes
/// through JSON into the recompute function's handler, on a task of its own, and the
/// handler's result (the invocation's outcome, or its error as text) is sent to `results`.
pub struct LambdaInvoke {
    /// The recompute function's recomputer.
    pub recomputer: std::sync::Arc<dispatcher_app::recompute::Recomputer>,
    /// Where each invocation's result goes.
    pub results: tokio::sync::mpsc::UnboundedSender<Result<serde_json::Value, String>>,
    /// The handler's clock (seconds since the epoch).
    pub now: fn() -> i64,
    /// Hand-offs submitted, counted as they are submitted (before their task runs).
    pub submitted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl dispatcher_app::ports::Handoff for LambdaInvoke {
    async fn submit(
        &self,
        request: &dispatcher_app::recompute::RecomputeRequest,
    ) -> Result<(), dispatcher_app::ports::SourceError> {
        let payload = serde_json::to_value(request).map_err(|e| {
            dispatcher_app::ports::SourceError::permanent("hand-off", "request").because(e)
        })?;
        self.submitted
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (recomputer, results, now) = (self.recomputer.clone(), self.results.clone(), self.now);
        tokio::spawn(async move {
            let event =
                lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default());
            let r = recompute::handle(&recomputer, event, now()).await;
            let _ = results.send(r.map_err(|e| e.to_string()));
        });
        Ok(())
    }
}

/// Removes from `cmd` (a `dispatcher serve`) the variables that would point it at AWS,
/// GitHub or Prometheus, or at another local store: a developer's environment must not
/// reach into a test. Call it before setting the variables the test wants.
pub fn local_only(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for var in [
        "DISPATCHER_TABLE",
        "DISPATCHER_BUCKET",
        "DISPATCHER_STORE",
        "DISPATCHER_LOCAL_DIR",
        "DISPATCHER_PROMETHEUS_URL",
        "DISPATCHER_GITHUB_API",
        "DISPATCHER_GITHUB_TOKEN",
        "DISPATCHER_WEBHOOK_SECRET",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// The first line of `child`'s stdout that contains `marker`, from just after it. The rest
/// of the output is drained on a thread, so the child never blocks on (or dies of) a full
/// or closed pipe.
///
/// # Panics
/// When the child's stdout is not piped, or no line holds the marker (test support).
pub fn line_after(child: &mut std::process::Child, marker: &str) -> String {
    use std::io::BufRead as _;
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("a piped stdout")).lines();
    let found = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.split_once(marker).map(|(_, a)| a.trim().to_owned()))
        .unwrap_or_else(|| panic!("no line with {marker:?}"));
    std::thread::spawn(move || lines.for_each(drop));
    found
}
