//! Publishing through failures, against DynamoDB and S3 in the emulator: a failure between
//! every two steps of a publish, and the emulator killed mid-publish. Afterwards every job
//! answers its old cluster (the pointer did not move), and publishing again completes.

#[path = "../../../tests/support/proc.rs"]
mod proc;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dispatcher_app::lookup::{Answer, LookupService};

use async_trait::async_trait;
use dispatcher_app::Cause;
use dispatcher_app::contract::plan_of;
use dispatcher_app::model::{GenerationRecord, JobItem, Pending, Pointer};
use dispatcher_app::publish::{self, PublishOptions};
use dispatcher_app::store::{
    AssignmentStore, Claim, SnapshotStore, StoreError, Stores, WriteStats,
};
use dispatcher_core::Plan;

const TEMPLATE: &str = include_str!("../../../template.yaml");

/// Where a publish is made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Half of the snapshot objects written.
    Snapshot,
    /// Snapshot written, claim refused.
    Claim,
    /// Claim won, half of the item batches written.
    HalfItems,
    /// Every item written, the pointer not moved.
    Commit,
    /// The commit done, but its answer lost (a timeout after the write landed).
    CommitAnswerLost,
    /// Half of the item batches written, then `on_fail` (killing the emulator), then the
    /// rest sent for real.
    DieMidItems,
}

/// Passes calls through to the real store and fails once at `step`; `on_fail` runs first
/// (to kill the emulator, say).
struct Faulty {
    inner: Stores,
    step: Step,
    armed: AtomicBool,
    puts: AtomicUsize,
    on_fail: Box<dyn Fn() + Send + Sync>,
}

impl Faulty {
    fn new(inner: Stores, step: Step, on_fail: Box<dyn Fn() + Send + Sync>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            step,
            armed: AtomicBool::new(true),
            puts: AtomicUsize::new(0),
            on_fail,
        })
    }

    fn fires(&self, step: Step) -> bool {
        step == self.step && self.armed.swap(false, Ordering::SeqCst)
    }

    fn injected(&self) -> StoreError {
        (self.on_fail)();
        StoreError::unavailable("injected", format!("failure at {:?}", self.step))
    }

    fn stores(self: &Arc<Self>) -> Stores {
        Stores {
            table: self.clone(),
            snapshots: self.clone(),
        }
    }
}

#[async_trait]
impl SnapshotStore for Faulty {
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StoreError> {
        if self.puts.fetch_add(1, Ordering::SeqCst) == 3 && self.fires(Step::Snapshot) {
            return Err(self.injected());
        }
        self.inner.snapshots.put(key, body, content_type).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.snapshots.get(key).await
    }
}

#[async_trait]
impl AssignmentStore for Faulty {
    async fn pointer(&self) -> Result<Option<Pointer>, StoreError> {
        self.inner.table.pointer().await
    }
    async fn job(&self, name: &str) -> Result<Option<JobItem>, StoreError> {
        self.inner.table.job(name).await
    }
    async fn jobs(&self, names: &[String]) -> Result<Vec<JobItem>, StoreError> {
        self.inner.table.jobs(names).await
    }
    async fn write_jobs(&self, items: &[JobItem]) -> Result<WriteStats, StoreError> {
        // Whole batches of 25, half of them.
        let half = ((items.len() / 25 / 2).max(1) * 25).min(items.len());
        if self.fires(Step::HalfItems) {
            self.inner.table.write_jobs(&items[..half]).await?;
            return Err(self.injected());
        }
        if self.fires(Step::DieMidItems) {
            let mut stats = self.inner.table.write_jobs(&items[..half]).await?;
            (self.on_fail)();
            stats += self.inner.table.write_jobs(&items[half..]).await?;
            return Ok(stats);
        }
        self.inner.table.write_jobs(items).await
    }
    async fn claim(&self, base: u64, pending: &Pending, now: i64) -> Result<Claim, StoreError> {
        if self.fires(Step::Claim) {
            return Err(self.injected());
        }
        self.inner.table.claim(base, pending, now).await
    }
    async fn commit(
        &self,
        base: u64,
        owner: &str,
        pointer: &Pointer,
        record: &GenerationRecord,
    ) -> Result<(), StoreError> {
        if self.fires(Step::Commit) {
            return Err(self.injected());
        }
        self.inner
            .table
            .commit(base, owner, pointer, record)
            .await?;
        if self.fires(Step::CommitAnswerLost) {
            return Err(self.injected());
        }
        Ok(())
    }
    async fn generation(&self, n: u64) -> Result<Option<GenerationRecord>, StoreError> {
        self.inner.table.generation(n).await
    }
    async fn remember(
        &self,
        key: &str,
        value: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.inner.table.remember(key, value, expires_at, now).await
    }
    async fn recall(&self, key: &str, now: i64) -> Result<Option<String>, StoreError> {
        self.inner.table.recall(key, now).await
    }
    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        self.inner.table.forget(key).await
    }
    async fn increment(&self, name: &str) -> Result<u64, StoreError> {
        self.inner.table.increment(name).await
    }
    async fn marker(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.inner.table.marker(name).await
    }
    async fn set_marker(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.inner.table.set_marker(name, value).await
    }

    async fn swap_marker(
        &self,
        name: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, StoreError> {
        self.inner.table.swap_marker(name, expected, value).await
    }
}

/// Two plans over 300 jobs (12 batches) that differ for every job.
fn plans() -> (Plan, Plan) {
    let names: Vec<String> = (0..300).map(|i| format!("job-{i:03}")).collect();
    let a: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "build01")).collect();
    let b: Vec<(&str, &str)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), if i % 2 == 0 { "build02" } else { "build03" }))
        .collect();
    (plan_of(&a), plan_of(&b))
}

/// Every job answers the cluster `plan` gives it, through both readers: the items
/// resolved against the pointer, and the lookup function's service (the answer table of
/// the pointer's snapshot), fresh so that it reads the store now.
async fn assert_serves(stores: &Stores, plan: &Plan, when: &str) {
    let service = LookupService::with_refresh(stores.clone(), Duration::ZERO);
    let mut wrong = BTreeMap::new();
    for (job, e) in &plan.jobs {
        let item = publish::lookup(stores, job)
            .await
            .expect("lookup")
            .map(|(c, _)| c);
        let served = match service.answer(job, 0).await.expect("the lookup service") {
            Answer::Cluster { cluster, .. } => Some(cluster),
            Answer::NotFound => None,
        };
        if item != e.cluster || served != e.cluster {
            wrong.insert(job.clone(), (item, served, e.cluster.clone()));
        }
    }
    assert!(
        wrong.is_empty(),
        "{when}: {} jobs answer another generation (items, service, want), e.g. {:?}",
        wrong.len(),
        wrong.iter().next()
    );
}

/// Fresh table and bucket, with `plan` published as generation 1.
async fn at_generation_1(clients: &dispatcher_aws::Clients, plan: &Plan) -> Stores {
    let (real, ..) = dispatcher_aws::emulator::fresh(clients, TEMPLATE)
        .await
        .expect("provision");
    publish::publish(&real, plan, &PublishOptions::new(Cause::Weekly, 1))
        .await
        .expect("first generation");
    real
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_between_any_two_steps_leaves_the_old_generation_serving() {
    if dispatcher_aws::emulator::endpoint("faults").is_none() {
        return;
    }
    let clients = dispatcher_aws::Clients::from_env(true).await;
    let (a, b) = plans();
    for step in [Step::Snapshot, Step::Claim, Step::HalfItems, Step::Commit] {
        let real = at_generation_1(&clients, &a).await;
        let faulty = Faulty::new(real.clone(), step, Box::new(|| {}));
        let attempt = PublishOptions::new(Cause::Push, 2).expecting(1);
        let err = publish::publish(&faulty.stores(), &b, &attempt)
            .await
            .expect_err("the injected failure surfaces");
        assert!(err.is_retryable(), "{step:?}: {err}");
        assert_eq!(
            real.table.pointer().await.unwrap().unwrap().generation,
            1,
            "{step:?}"
        );
        assert_serves(&real, &a, &format!("after a failure at {step:?}")).await;
        // Another publisher cannot slip in while the failed attempt's claim holds.
        if matches!(step, Step::HalfItems | Step::Commit) {
            let other = publish::publish(&real, &a, &PublishOptions::new(Cause::Manual, 3))
                .await
                .expect("the current plan is already served");
            assert!(other.unchanged, "{step:?}");
            let err = publish::publish(&real, &plans_c(), &PublishOptions::new(Cause::Manual, 3))
                .await
                .expect_err("the lease holds");
            assert!(
                matches!(err, publish::PublishError::Lost { .. }),
                "{step:?}: {err}"
            );
        }
        // The same publisher, retrying, completes it.
        let retry = PublishOptions { now: 3, ..attempt };
        let done = publish::publish(&real, &b, &retry).await.expect("retry");
        assert_eq!(done.generation, 2, "{step:?}");
        assert_serves(&real, &b, &format!("after retrying {step:?}")).await;
        let record = real.table.generation(2).await.unwrap().unwrap();
        assert_eq!(record.changed, 300);
    }
}

/// A third plan, different from both of [`plans`].
fn plans_c() -> Plan {
    let names: Vec<String> = (0..300).map(|i| format!("job-{i:03}")).collect();
    let c: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "build03")).collect();
    plan_of(&c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_is_lost_is_found_done_by_the_retry() {
    if dispatcher_aws::emulator::endpoint("commit_answer_lost").is_none() {
        return;
    }
    let clients = dispatcher_aws::Clients::from_env(true).await;
    let (a, b) = plans();
    let real = at_generation_1(&clients, &a).await;
    let faulty = Faulty::new(real.clone(), Step::CommitAnswerLost, Box::new(|| {}));
    let attempt = PublishOptions::new(Cause::Push, 2).expecting(1);
    let err = publish::publish(&faulty.stores(), &b, &attempt)
        .await
        .expect_err("the lost answer surfaces");
    assert!(err.is_retryable(), "{err}");
    // The write landed: generation 2 serves, with its record.
    assert_serves(&real, &b, "after the commit landed").await;
    assert_eq!(
        real.table.generation(2).await.unwrap().unwrap().changed,
        300
    );
    let retry = publish::publish(&real, &b, &PublishOptions { now: 3, ..attempt })
        .await
        .expect("retry");
    assert!(retry.unchanged, "the retry finds its plan current");
    assert_eq!(retry.generation, 2);
}

/// A moto server of our own, recording every request so that it can come back with its
/// state after being killed, like a real service would. Stopped when dropped, also when a
/// test fails.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start(bin: &Path, dir: &Path, port: u16) -> Self {
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let moto = Self { child, port };
        moto.wait_ready();
        moto
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn wait_ready(&self) {
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("moto did not start on port {}", self.port);
    }

    fn post(&self, path: &str) {
        let status = Command::new("curl")
            .args(["-sf", "-X", "POST", &self.url(path)])
            .stdout(Stdio::null())
            .status()
            .expect("curl");
        assert!(status.success(), "POST {path}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_emulator_mid_publish_loses_nothing() {
    if dispatcher_aws::emulator::endpoint("killing_the_emulator_mid_publish_loses_nothing")
        .is_none()
    {
        return;
    }
    let Some(bin) = std::env::var_os("DISPATCHER_MOTO_BIN").map(PathBuf::from) else {
        panic!(
            "DISPATCHER_MOTO_BIN is not set: ./infra/test.sh sets it to the moto_server it installed"
        );
    };
    let dir = std::env::temp_dir().join(dispatcher_aws::emulator::unique("moto-kill"));
    std::fs::create_dir_all(&dir).expect("moto directory");
    let port = free_port();
    let moto = Moto::start(&bin, &dir, port);
    moto.post("/moto-api/recorder/start-recording");

    // Clients of our own, pointed at this moto, with few retries: it is about to die.
    let config = dispatcher_aws::sdk_loader()
        .endpoint_url(moto.url(""))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
        .load()
        .await;
    let clients = dispatcher_aws::Clients {
        dynamo: aws_sdk_dynamodb::Client::new(&config),
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        ),
    };
    let (a, b) = plans();
    let real = at_generation_1(&clients, &a).await;

    let pid = moto.child.id();
    let faulty = Faulty::new(
        real.clone(),
        Step::DieMidItems,
        Box::new(move || {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            // The next batch must find moto dead: a zombie (our unreaped child) or gone.
            let dead =
                proc::wait_until(pid, |states| states.iter().all(|s| matches!(s, 'Z' | 'X')));
            assert!(dead, "moto survived kill -9 for 5 s");
        }),
    );
    let attempt = PublishOptions::new(Cause::Push, 2);
    let err = publish::publish(&faulty.stores(), &b, &attempt)
        .await
        .expect_err("the publish dies with the emulator");
    assert!(err.is_retryable(), "{err}");
    // A further call reaches nobody: the emulator is really gone.
    let down = real.table.pointer().await.expect_err("moto is down");
    assert!(down.is_retryable(), "{down}");

    // It comes back with what it had durably accepted.
    drop(moto);
    let moto = Moto::start(&bin, &dir, port);
    moto.post("/moto-api/recorder/replay-recording");
    assert_eq!(real.table.pointer().await.unwrap().unwrap().generation, 1);
    let half_written = real
        .table
        .jobs(&b.jobs.keys().cloned().collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(
        half_written.iter().any(|i| i.generation == 2),
        "the kill happened after some batches were written"
    );
    assert_serves(&real, &a, "after the emulator came back").await;

    let done = publish::publish(&real, &b, &PublishOptions { now: 3, ..attempt })
        .await
        .expect("retry");
    assert_eq!(done.generation, 2);
    assert_serves(&real, &b, "after the retry").await;
    drop(moto);
    let _ = std::fs::remove_dir_all(&dir);
}
