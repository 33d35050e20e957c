//! The fuzzing harness: mutations of seed documents, and a time-boxed runner that fails on
//! a panic or a slow input, saying which.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// Pieces that make documents interesting: structure, quoting, nesting, encodings.
const TOKENS: &[&[u8]] = &[
    b"[",
    b"{",
    b"]",
    b"}",
    b": ",
    b"- ",
    b"\n",
    b"  ",
    b"\t",
    b"\"",
    b"'",
    b"#",
    b"~",
    b"null",
    b"&a ",
    b"*a",
    b"!!str ",
    b"!!binary ",
    b"|\n",
    b">-\n",
    b"---\n",
    b"...\n",
    b"\xef\xbb\xbf",
    b"\0",
    b"\xff\xfe",
    b"%YAML 1.2\n",
    b"<<: *a\n",
    b"? ",
    b",",
    b"\\",
    b"\r\n",
    b"name: ~\n",
    b"cluster: x\n",
    b"labels:\n",
    b"1e999",
    b"-0",
    b"NaN",
    b".inf",
    b"job_name",
    b"\"value\":[1,\"",
    b"../",
    b"/",
    b"\x1f\x8b",
];

/// One edit of a document.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, usize),
    Delete(prop::sample::Index, usize),
    /// A slice copied in place `times` times: deep nesting, long lines, many keys.
    Repeat(prop::sample::Index, usize, usize),
    /// A token repeated: up to a hundred thousand brackets.
    Flood(prop::sample::Index, usize, usize),
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<prop::sample::Index>;
    prop_oneof![
        4 => (at(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        6 => (at(), 0..TOKENS.len()).prop_map(|(i, t)| Mutation::Insert(i, t)),
        3 => (at(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        2 => (at(), 1usize..80, 2usize..200).prop_map(|(i, n, k)| Mutation::Repeat(i, n, k)),
        1 => (at(), 0..TOKENS.len(), 2usize..100_000).prop_map(|(i, t, k)| Mutation::Flood(i, t, k)),
        1 => at().prop_map(Mutation::Truncate),
    ]
}

fn apply(mut doc: Vec<u8>, edits: &[Mutation]) -> Vec<u8> {
    for m in edits {
        let at = |i: &prop::sample::Index, doc: &Vec<u8>| i.index(doc.len() + 1);
        match m {
            Mutation::Flip(i, b) if !doc.is_empty() => {
                let k = i.index(doc.len());
                doc[k] ^= b | 1;
            }
            Mutation::Flip(..) => {}
            Mutation::Insert(i, t) => {
                let k = at(i, &doc);
                doc.splice(k..k, TOKENS[*t].iter().copied());
            }
            Mutation::Delete(i, n) => {
                let k = at(i, &doc);
                let end = (k + n).min(doc.len());
                doc.drain(k..end);
            }
            Mutation::Repeat(i, n, times) => {
                let k = at(i, &doc);
                let end = (k + n).min(doc.len());
                let piece = doc[k..end].to_vec();
                let copies: Vec<u8> = piece
                    .iter()
                    .copied()
                    .cycle()
                    .take(piece.len() * times)
                    .collect();
                doc.splice(k..k, copies);
            }
            Mutation::Flood(i, t, times) => {
                let k = at(i, &doc);
                let flood: Vec<u8> = TOKENS[*t]
                    .iter()
                    .copied()
                    .cycle()
                    .take(TOKENS[*t].len() * times)
                    .collect();
                doc.splice(k..k, flood);
            }
            Mutation::Truncate(i) => {
                let k = at(i, &doc);
                doc.truncate(k);
            }
        }
    }
    doc
}

/// A seed, edited by up to eight mutations (none: the seed itself must pass too).
pub fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(seeds),
        prop::collection::vec(mutation(), 0..8),
    )
        .prop_map(|(seed, edits)| apply(seed, &edits))
}

/// Every file under `dir`, as seeds.
pub fn seeds_of(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for entry in walkdir(dir) {
        out.push(std::fs::read(&entry).expect("read a seed"));
    }
    assert!(!out.is_empty(), "no seeds under {}", dir.display());
    out
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("list seeds")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A tar of every file under `dir`, under the top-level folder `root`.
pub fn tar_of_dir(dir: &Path, root: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for path in walkdir(dir) {
        let rel = path.strip_prefix(dir).expect("under dir");
        let data = std::fs::read(&path).expect("read");
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, Path::new(root).join(rel), data.as_slice())
            .expect("append");
    }
    b.into_inner().expect("tar")
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

/// One fuzz target: runs inputs until its budget is spent.
pub struct Target {
    name: &'static str,
    budget: Duration,
    limit: Duration,
}

impl Target {
    /// A target with the budget of `DISPATCHER_FUZZ_SECONDS` (3 s by default, what CI
    /// runs) and the one-second limit per input.
    pub fn new(name: &'static str) -> Self {
        let seconds = std::env::var("DISPATCHER_FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(3.0);
        Self {
            name,
            budget: Duration::from_secs_f64(seconds),
            limit: Duration::from_secs(1),
        }
    }

    pub fn budget(mut self, seconds: f64) -> Self {
        self.budget = Duration::from_secs_f64(seconds);
        self
    }

    pub fn limit(mut self, seconds: f64) -> Self {
        self.limit = Duration::from_secs_f64(seconds);
        self
    }

    /// Runs `check` on inputs of `strategy` until the budget is spent; panics (failing
    /// the test) on the first input that panics or takes longer than the limit, with the
    /// input, and prints the figures otherwise.
    pub fn run<S: Strategy<Value = Vec<u8>>>(self, strategy: S, check: impl Fn(Vec<u8>)) {
        let mut runner = TestRunner::default();
        let start = Instant::now();
        let (mut inputs, mut slowest, mut slowest_len) = (0u64, Duration::ZERO, 0);
        while start.elapsed() < self.budget {
            let input = strategy
                .new_tree(&mut runner)
                .expect("a strategy of byte vectors")
                .current();
            let len = input.len();
            let shown = describe(&input);
            let kept = input.clone();
            let began = Instant::now();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(input)));
            let took = began.elapsed();
            inputs += 1;
            if outcome.is_err() {
                let saved = save(self.name, &kept);
                panic!(
                    "fuzz {}: input {inputs} ({len} bytes, saved to {saved}) panicked: {shown}",
                    self.name
                );
            }
            if took >= self.limit {
                let saved = save(self.name, &kept);
                panic!(
                    "fuzz {}: input {inputs} ({len} bytes, saved to {saved}) took {took:?}, over {:?}: {shown}",
                    self.name, self.limit
                );
            }
            if took > slowest {
                (slowest, slowest_len) = (took, len);
            }
        }
        let _ = writeln!(
            std::io::stderr(),
            "fuzz {}: {inputs} inputs in {:.1} s, 0 panics, slowest {:.1} ms ({slowest_len} bytes)",
            self.name,
            start.elapsed().as_secs_f64(),
            slowest.as_secs_f64() * 1e3
        );
    }
}

/// Keeps a failing input under the system's temporary directory, to replay it.
fn save(target: &str, input: &[u8]) -> String {
    let path = std::env::temp_dir().join(format!(
        "dispatcher-fuzz-{}-{}.bin",
        target.replace(' ', "-"),
        std::process::id()
    ));
    match std::fs::write(&path, input) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("nowhere ({e})"),
    }
}

/// An input as text a person can paste back: the start of it, escaped.
fn describe(input: &[u8]) -> String {
    let head: String = input
        .iter()
        .take(400)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if input.len() > 400 {
        format!("b\"{head}...\"")
    } else {
        format!("b\"{head}\"")
    }
}

/// `application/x-www-form-urlencoded` encoding of a value.
pub fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Takes every hand-off and does nothing with it.
struct Nowhere;

#[async_trait::async_trait]
impl dispatcher_app::Handoff for Nowhere {
    async fn submit(
        &self,
        _: &dispatcher_app::RecomputeRequest,
    ) -> Result<(), dispatcher_app::SourceError> {
        Ok(())
    }
}

/// The webhook's router over an empty local store, the sample release as repository.
pub async fn webhook_router(secret: &[u8]) -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let stores = dispatcher_app::local::open(dir.path()).expect("local store");
    let source = std::sync::Arc::new(dispatcher_app::local::LocalRepo {
        path: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample/release"),
        clusters: None,
        limits: Default::default(),
    });
    let state = dispatcher_api::WebhookState {
        secret: secret.to_vec(),
        repo: "acme/release".to_owned(),
        source,
        table: stores.table.clone(),
        handoff: std::sync::Arc::new(Nowhere),
        prs: None,
        now: || 1_000,
        deadline: dispatcher_api::webhook::DEADLINE,
    };
    (
        dispatcher_api::webhook_router(std::sync::Arc::new(state)),
        dir,
    )
}

/// A signed push delivery; its status.
pub async fn deliver(router: &axum::Router, secret: &[u8], body: &[u8], n: u64, form: bool) -> u16 {
    use hmac::{KeyInit, Mac};
    use tower::ServiceExt;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key");
    mac.update(body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let request = axum::http::Request::post("/github")
        .header("x-github-event", "push")
        .header("x-github-delivery", format!("fuzz-{n}"))
        .header("x-hub-signature-256", signature)
        .header(
            "content-type",
            if form {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            },
        )
        .body(axum::body::Body::from(body.to_vec()))
        .expect("request");
    router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible")
        .status()
        .as_u16()
}

/// The lookup's router over a local store with the sample release published.
pub async fn lookup_router(sample: &Path) -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let stores = dispatcher_app::local::open(dir.path()).expect("local store");
    let loaded = dispatcher_formats::load(
        &dispatcher_formats::InputPaths {
            release: sample.join("release"),
            volumes: Some(sample.join("volumes.json")),
            ..Default::default()
        },
        &|| {},
    )
    .expect("the sample loads");
    let plan = dispatcher_core::run(&loaded.inputs(), &dispatcher_core::Settings::default())
        .expect("the sample plans");
    dispatcher_app::publish::publish(
        &stores,
        &plan,
        &dispatcher_app::publish::PublishOptions::new(dispatcher_app::Cause::Manual, 1),
    )
    .await
    .expect("publish");
    let state = dispatcher_api::LookupState {
        service: std::sync::Arc::new(dispatcher_app::LookupService::new(stores)),
        now: || 1_000,
    };
    (
        dispatcher_api::lookup_router(std::sync::Arc::new(state)),
        dir,
    )
}

/// `POST path` with `body`; the status.
pub async fn post(router: &axum::Router, path: &str, body: Vec<u8>) -> u16 {
    use tower::ServiceExt;
    let request = axum::http::Request::post(path)
        .body(axum::body::Body::from(body))
        .expect("request");
    router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible")
        .status()
        .as_u16()
}
