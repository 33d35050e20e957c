//! Incident controls end to end, on the embedded store and on the emulator (DynamoDB and
//! S3 over HTTP): a drain planned, approved twice and applied moves its jobs; past its end
//! the lookup answers the baseline with nothing run; the sweep publishes the baseline and
//! the book shows every transition with its actor. Then every refusal, each changing
//! nothing, and the races: two applies on one generation, an apply against a recompute.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, like the tests"
)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::body::Body;
use dispatcher_api::{ControlAuth, ControlState, LookupState, control_router, lookup_router};
use dispatcher_app::control::{Control, State};
use dispatcher_app::local::LocalRepo;
use dispatcher_app::recompute::RecomputeRequest;
use dispatcher_app::{LookupService, Recomputer, Stores};
use dispatcher_config::RuntimeConfig;
use dispatcher_tests::{sample, sample_recomputer};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const TEMPLATE: &str = include_str!("../../template.yaml");
const TOKEN: &str = "control-t0ken";
/// A job of the sample that the weekly run puts on build03.
const JOB: &str = "pull-ci-acme-widget-main-unit";
const T0: i64 = 1_800_000_000;

#[derive(Clone, Copy, Debug)]
enum Backend {
    Local,
    Emulator,
}

/// One world: a store with the sample's weekly generation, the lookup and control
/// routers on a clock the test moves, and the recompute.
struct World {
    stores: Stores,
    router: Router,
    control: Control,
    recomputer: Recomputer,
    clock: &'static AtomicI64,
}

impl World {
    async fn new(backend: Backend, clock: &'static AtomicI64, now: fn() -> i64) -> Option<World> {
        let mut vars: BTreeMap<&str, String> = BTreeMap::from([
            ("DISPATCHER_LOOKUP_REFRESH", "0s".to_owned()),
            ("DISPATCHER_PROW_CACHE_TTL", "10s".to_owned()),
        ]);
        let stores = match backend {
            Backend::Local => {
                let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
                    .unwrap()
                    .keep();
                dispatcher_app::local::open(&dir).unwrap()
            }
            Backend::Emulator => {
                if std::env::var("AWS_ENDPOINT_URL").is_err() {
                    assert!(
                        std::env::var_os("DISPATCHER_REQUIRE_EMULATOR").is_none(),
                        "AWS_ENDPOINT_URL is required"
                    );
                    let _ = writeln!(
                        std::io::stderr(),
                        "SKIPPED control on the emulator: AWS_ENDPOINT_URL is unset; ./infra/test.sh starts it"
                    );
                    return None;
                }
                let clients = dispatcher_aws::Clients::from_env(true).await;
                let (stores, table, bucket) = dispatcher_aws::emulator::fresh(&clients, TEMPLATE)
                    .await
                    .unwrap();
                vars.insert("DISPATCHER_TABLE", table);
                vars.insert("DISPATCHER_BUCKET", bucket);
                stores
            }
        };
        let cfg = RuntimeConfig::from_lookup(|k| vars.get(k).cloned()).unwrap();
        let recomputer = sample_recomputer(&cfg, stores.clone(), sample().join("release"));
        clock.store(T0, Ordering::SeqCst);
        recomputer
            .run(&RecomputeRequest::weekly(), "weekly-1", T0)
            .await
            .unwrap();
        let control = Control {
            stores: stores.clone(),
            settings: cfg.engine.clone(),
            limits: cfg.controls.clone(),
            notifier: None,
        };
        let lookup = lookup_router(Arc::new(LookupState {
            service: Arc::new(LookupService::with_refresh(
                stores.clone(),
                cfg.lookup_refresh,
            )),
            now,
        }));
        let router = lookup.merge(control_router(Arc::new(ControlState {
            control: control.clone(),
            auth: ControlAuth::Bearer(TOKEN.to_owned()),
            now,
        })));
        Some(World {
            stores,
            router,
            control,
            recomputer,
            clock,
        })
    }

    fn at(&self, t: i64) {
        self.clock.store(t, Ordering::SeqCst);
    }

    async fn call(
        &self,
        verb: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut req = axum::http::Request::builder().method(verb).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let r = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = r.status().as_u16();
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body), Some(TOKEN)).await
    }

    async fn lookup(&self, job: &str) -> (String, String) {
        let (status, body) = self
            .call("POST", "/", Some(json!({"job": job})), None)
            .await;
        assert_eq!(status, 200, "{body}");
        (
            body["cluster"].as_str().unwrap().to_owned(),
            body["source"].as_str().unwrap().to_owned(),
        )
    }

    async fn generation(&self) -> u64 {
        self.stores
            .serving()
            .await
            .unwrap()
            .map_or(0, |p| p.generation)
    }

    async fn plan(&self, body: Value) -> Value {
        let (status, plan) = self.post("/control/v1/plans", body).await;
        assert_eq!(status, 201, "{plan}");
        plan
    }
}

fn drain(cluster: &str, duration: &str, key: &str) -> Value {
    json!({"kind": "drain", "cluster": cluster, "duration": duration, "reason": "nodes failing",
           "incident_url": "https://issues.example/INC-1", "idempotency_key": key, "actor": "alice"})
}

fn capacity(cluster: &str, n: u32, key: &str) -> Value {
    json!({"kind": "capacity", "cluster": cluster, "capacity": n, "duration": "2h",
           "reason": "slow API server", "idempotency_key": key, "actor": "alice"})
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

async fn a_drain_lives_and_ends_on(backend: Backend, clock: &'static AtomicI64, now: fn() -> i64) {
    let Some(w) = World::new(backend, clock, now).await else {
        return;
    };
    assert_eq!(
        w.lookup(JOB).await,
        ("build03".to_owned(), "generation".to_owned())
    );
    let images_on_build03 = w.lookup("branch-ci-acme-widget-main-images").await.0 == "build03";

    let plan = w.plan(drain("build03", "1h", "inc-1-drain")).await;
    assert_eq!(plan["generation"], 1);
    assert_eq!(plan["required_approvals"], 2, "{plan}");
    assert!(plan["moved_jobs"].as_u64().unwrap() >= 1, "{plan}");
    assert_eq!(plan["shares"]["build03"]["after"], 0.0, "{plan}");
    // That job's static cluster: names build03: Prow would run it there on a failed lookup.
    assert_eq!(
        plan["unprotected_jobs"].as_u64().unwrap() >= 1,
        images_on_build03,
        "{plan}"
    );
    let id = plan["id"].as_str().unwrap();
    let apply = format!("/control/v1/plans/{id}/apply");

    w.at(T0 + 60);
    let mut o = w.post(&apply, json!({"actor": "alice"})).await;
    if images_on_build03 {
        assert_eq!((o.0, code(&o.1)), (409, "unprotected_jobs"), "{}", o.1);
        o = w
            .post(
                &apply,
                json!({"actor": "alice", "confirm_unprotected": true}),
            )
            .await;
    }
    assert_eq!(o.0, 200, "{}", o.1);
    assert_eq!(o.1["state"], "pending");
    let oid = o.1["id"].as_str().unwrap().to_owned();
    let approve = format!("/control/v1/overrides/{oid}/approve");
    let again = w.post(&approve, json!({"actor": "alice"})).await;
    assert_eq!(
        (again.0, code(&again.1)),
        (409, "duplicate_approval"),
        "{}",
        again.1
    );
    assert_eq!(w.generation().await, 1, "a pending drain changes nothing");

    w.at(T0 + 120);
    let (status, active) = w.post(&approve, json!({"actor": "bob"})).await;
    assert_eq!(status, 200, "{active}");
    assert_eq!(active["state"], "active");
    assert_eq!(active["expires_at"], T0 + 120 + 3600);
    assert_eq!(w.generation().await, 2);
    let (cluster, source) = w.lookup(JOB).await;
    assert_ne!(cluster, "build03");
    assert_eq!(source, "override");

    // Past its end, with nothing run: the baseline answers.
    w.at(T0 + 120 + 3600);
    assert_eq!(
        w.lookup(JOB).await,
        ("build03".to_owned(), "generation".to_owned())
    );
    let swept = w.control.sweep(T0 + 120 + 3600).await.unwrap();
    assert_eq!(swept.expired, std::slice::from_ref(&oid));
    assert_eq!(swept.generation, Some(3));
    let pointer = w.stores.serving().await.unwrap().unwrap();
    assert_eq!(pointer.cause.as_str(), "override");
    assert!(pointer.applied.overrides.is_empty());
    assert_eq!(
        w.lookup(JOB).await,
        ("build03".to_owned(), "generation".to_owned())
    );

    let (status, list) = w
        .call("GET", "/control/v1/overrides", None, Some(TOKEN))
        .await;
    assert_eq!(status, 200);
    let history: Vec<(String, String, Option<u64>)> = list["overrides"][0]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["state"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
                e["generation"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            ("pending".to_owned(), "alice".to_owned(), Some(1)),
            ("active".to_owned(), "bob".to_owned(), Some(2)),
            ("expired".to_owned(), "sweep".to_owned(), Some(3)),
        ]
    );
    let record = w.stores.table.generation(2).await.unwrap().unwrap();
    assert_eq!(record.applied.overrides.len(), 1);
    assert_eq!(record.applied.overrides[0].expires_at, T0 + 120 + 3600);
}

static CLOCK_LOCAL: AtomicI64 = AtomicI64::new(0);
fn now_local() -> i64 {
    CLOCK_LOCAL.load(Ordering::SeqCst)
}
static CLOCK_EMULATOR: AtomicI64 = AtomicI64::new(0);
fn now_emulator() -> i64 {
    CLOCK_EMULATOR.load(Ordering::SeqCst)
}
static CLOCK_REFUSALS: AtomicI64 = AtomicI64::new(0);
fn now_refusals() -> i64 {
    CLOCK_REFUSALS.load(Ordering::SeqCst)
}
static CLOCK_RACES: AtomicI64 = AtomicI64::new(0);
fn now_races() -> i64 {
    CLOCK_RACES.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_lives_and_ends_on_the_local_store() {
    a_drain_lives_and_ends_on(Backend::Local, &CLOCK_LOCAL, now_local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_lives_and_ends_on_the_emulator() {
    a_drain_lives_and_ends_on(Backend::Emulator, &CLOCK_EMULATOR, now_emulator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_says_why_and_changes_nothing() {
    let w = World::new(Backend::Local, &CLOCK_REFUSALS, now_refusals)
        .await
        .unwrap();
    let refused = |status: u16, want: &'static str| {
        move |(s, b): (u16, Value)| {
            assert_eq!((s, code(&b)), (status, want), "{b}");
            assert!(!b["error"]["message"].as_str().unwrap().is_empty());
        }
    };
    // Unauthenticated.
    let (s, b) = w
        .call(
            "POST",
            "/control/v1/plans",
            Some(drain("build03", "1h", "k")),
            None,
        )
        .await;
    refused(401, "unauthenticated")((s, b));
    let (s, b) = w
        .call("GET", "/control/v1/status", None, Some("wrong"))
        .await;
    refused(401, "unauthenticated")((s, b));
    // Bad requests.
    refused(400, "invalid_request")(
        w.post("/control/v1/plans", drain("build03", "3h", "k"))
            .await,
    );
    let mut over = capacity("build03", 50, "k");
    over["duration"] = json!("25h");
    refused(400, "invalid_request")(w.post("/control/v1/plans", over).await);
    refused(400, "unknown_cluster")(
        w.post("/control/v1/plans", drain("build99", "1h", "k"))
            .await,
    );
    let mut cap = drain("build03", "1h", "k");
    cap["capability"] = json!("gpu");
    refused(400, "unknown_capability")(w.post("/control/v1/plans", cap).await);
    let mut extra = drain("build03", "1h", "k");
    extra["force"] = json!(true);
    refused(400, "invalid_request")(w.post("/control/v1/plans", extra).await);
    // build01 is the only arm64 cluster.
    let (s, b) = w
        .post("/control/v1/plans", drain("build01", "1h", "k"))
        .await;
    let message = b["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    refused(409, "unschedulable_jobs")((s, b));
    assert!(message.contains("arm64"), "{message}");

    // An expired plan.
    let plan = w.plan(capacity("build05", 10, "late")).await;
    w.at(T0 + 15 * 60);
    let late = format!("/control/v1/plans/{}/apply", plan["id"].as_str().unwrap());
    refused(409, "plan_expired")(w.post(&late, json!({"actor": "alice"})).await);
    refused(404, "not_found")(
        w.post(
            "/control/v1/plans/plan-nope/apply",
            json!({"actor": "alice"}),
        )
        .await,
    );

    // A replayed idempotency key with another body.
    let first = w.plan(drain("build03", "1h", "same-key")).await;
    let path = format!("/control/v1/plans/{}/apply", first["id"].as_str().unwrap());
    let (s, pending) = w
        .post(
            &path,
            json!({"actor": "alice", "confirm_unprotected": true}),
        )
        .await;
    assert_eq!(s, 200, "{pending}");
    refused(409, "idempotency_conflict")(
        w.post("/control/v1/plans", drain("build03", "2h", "same-key"))
            .await,
    );
    // The same key and body: the same override, never a second.
    let again = w.plan(drain("build03", "1h", "same-key")).await;
    let (s, same) = w
        .post(
            &format!("/control/v1/plans/{}/apply", again["id"].as_str().unwrap()),
            json!({"actor": "carol", "confirm_unprotected": true}),
        )
        .await;
    assert_eq!(s, 200, "{same}");
    assert_eq!(same["id"], pending["id"]);
    assert_eq!(w.control.list().await.unwrap().len(), 1);
    assert_eq!(
        w.generation().await,
        1,
        "nothing refused or pending published"
    );

    // A stale generation: another override moves the generation on.
    let stale = w.plan(capacity("build04", 20, "stale")).await;
    let other = w.plan(capacity("build05", 20, "mover")).await;
    let (s, b) = w
        .post(
            &format!("/control/v1/plans/{}/apply", other["id"].as_str().unwrap()),
            json!({"actor": "dan"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["state"], "active", "{b}");
    assert_eq!(w.generation().await, 2);
    refused(409, "stale_generation")(
        w.post(
            &format!("/control/v1/plans/{}/apply", stale["id"].as_str().unwrap()),
            json!({"actor": "dan"}),
        )
        .await,
    );
    assert_eq!(w.generation().await, 2);

    // Cancelling the active one publishes the baseline again.
    let id = b["id"].as_str().unwrap();
    let (s, revoked) = w
        .post(
            &format!("/control/v1/overrides/{id}/cancel"),
            json!({"actor": "erin"}),
        )
        .await;
    assert_eq!(s, 200, "{revoked}");
    assert_eq!(revoked["state"], "revoked");
    assert_eq!(w.generation().await, 3);
    assert!(
        w.stores
            .serving()
            .await
            .unwrap()
            .unwrap()
            .applied
            .overrides
            .is_empty()
    );
    refused(409, "wrong_state")(
        w.post(
            &format!("/control/v1/overrides/{id}/cancel"),
            json!({"actor": "erin"}),
        )
        .await,
    );

    // Without a known propagation bound the write controls are off.
    let mut unsafe_control = w.control.clone();
    unsafe_control.limits.prow_cache = None;
    let e = unsafe_control
        .cancel(pending["id"].as_str().unwrap(), "erin", T0)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "propagation_bound");
    assert!(e.to_string().contains("DISPATCHER_PROW_CACHE_TTL"), "{e}");
    // The lookup refreshes at once here (0 s): 31 s of Prow's cache is over the 30 s bound.
    unsafe_control.limits.prow_cache = Some(std::time::Duration::from_secs(31));
    let e = unsafe_control
        .cancel(pending["id"].as_str().unwrap(), "erin", T0)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "propagation_bound");
    assert_eq!(w.control.list().await.unwrap()[1].state, State::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_applies_on_one_generation_one_wins_and_a_racing_recompute_keeps_the_winner() {
    let w = World::new(Backend::Local, &CLOCK_RACES, now_races)
        .await
        .unwrap();
    let a = w.plan(capacity("build04", 10, "race-a")).await;
    let b = w.plan(capacity("build05", 10, "race-b")).await;
    let apply = |p: &Value| format!("/control/v1/plans/{}/apply", p["id"].as_str().unwrap());
    let (path_a, path_b) = (apply(&a), apply(&b));
    let (ra, rb) = tokio::join!(
        w.post(&path_a, json!({"actor": "x"})),
        w.post(&path_b, json!({"actor": "y"}))
    );
    let mut outcomes = [
        (ra.0, code(&ra.1).to_owned()),
        (rb.0, code(&rb.1).to_owned()),
    ];
    outcomes.sort();
    assert_eq!(
        outcomes,
        [(200, String::new()), (409, "stale_generation".to_owned())],
        "{ra:?} {rb:?}"
    );
    assert_eq!(w.generation().await, 2);
    let winner = if ra.0 == 200 { ra.1 } else { rb.1 };

    // An apply racing a weekly recompute: whichever publishes first, no override is lost
    // and no generation mixes both.
    let c = w.plan(capacity("build02", 10, "race-c")).await;
    let (weekly, path_c) = (RecomputeRequest::weekly(), apply(&c));
    let (recomputed, applied) = tokio::join!(
        w.recomputer.run(&weekly, "weekly-2", T0 + 1),
        w.post(&path_c, json!({"actor": "z"}))
    );
    if let Err(e) = &recomputed {
        assert!(e.is_retryable(), "a lost publish is retried by Lambda: {e}");
        w.recomputer
            .run(&RecomputeRequest::weekly(), "weekly-2-retry", T0 + 2)
            .await
            .unwrap();
    }
    let pointer = w.stores.serving().await.unwrap().unwrap();
    let live: Vec<&str> = pointer
        .applied
        .overrides
        .iter()
        .map(|o| o.id.as_str())
        .collect();
    assert!(live.contains(&winner["id"].as_str().unwrap()), "{live:?}");
    match applied.0 {
        200 => assert!(
            live.contains(&applied.1["id"].as_str().unwrap()),
            "{live:?}"
        ),
        _ => assert_eq!(code(&applied.1), "stale_generation", "{}", applied.1),
    }
    // Every generation's answers are its baseline with exactly its overrides applied.
    let baseline = dispatcher_app::publish::load_baseline(&w.stores, &pointer)
        .await
        .unwrap();
    let answering = dispatcher_app::publish::load_plan(&w.stores, &pointer.snapshot)
        .await
        .unwrap();
    let release = dispatcher_app::publish::load_release(
        &w.stores,
        pointer.applied.release.as_deref().unwrap(),
    )
    .await
    .unwrap();
    let again = dispatcher_core::overrides::plan(
        &release,
        &baseline,
        &w.control.settings,
        &pointer.applied.overrides,
    )
    .unwrap();
    assert_eq!(again.to_json(), answering.to_json());
}

mod chat {
    use super::*;
    use dispatcher_api::{SlackState, slack_router};
    use dispatcher_app::local::LocalChatQueue;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const SIGNING: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const CHANNEL: &str = "C0INCIDENT";

    static CLOCK_CHAT: AtomicI64 = AtomicI64::new(0);
    fn now_chat() -> i64 {
        CLOCK_CHAT.load(Ordering::SeqCst)
    }

    /// A slash command's form body, as Slack sends it.
    fn form(text: &str, user: &str, channel: &str, slack: &MockServer, trigger: &str) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", "deprecated-verification-token")
            .append_pair("team_id", "T0001")
            .append_pair("team_domain", "example")
            .append_pair("channel_id", channel)
            .append_pair("channel_name", "ci-incidents")
            .append_pair("user_id", user)
            .append_pair("user_name", user)
            .append_pair("command", "/dispatch")
            .append_pair("text", text)
            .append_pair("api_app_id", "A0001")
            .append_pair("is_enterprise_install", "false")
            .append_pair(
                "response_url",
                &format!("{}/commands/T0001/1/abc", slack.uri()),
            )
            .append_pair("trigger_id", trigger)
            .finish()
    }

    fn signed(body: &str, at: i64, secret: &str) -> axum::http::Request<Body> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{at}:{body}").as_bytes());
        axum::http::Request::post("/slack/commands")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", at.to_string())
            .header(
                "x-slack-signature",
                format!("v0={}", hex::encode(mac.finalize().into_bytes())),
            )
            .body(Body::from(body.to_owned()))
            .unwrap()
    }

    async fn send(router: &Router, req: axum::http::Request<Body>) -> (u16, Value) {
        let r = router.clone().oneshot(req).await.unwrap();
        let status = r.status().as_u16();
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The texts Slack received on `route`.
    async fn posted(slack: &MockServer, route: &str) -> Vec<String> {
        slack
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == route)
            .map(|r| {
                serde_json::from_slice::<Value>(&r.body).unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_drain_from_slack_is_signed_answered_at_once_and_announced() {
        let w = World::new(Backend::Local, &CLOCK_CHAT, now_chat)
            .await
            .unwrap();
        let slack = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&slack)
            .await;
        let poster = Arc::new(
            dispatcher_slack::Slack::new(
                Some(format!("{}/services/notify", slack.uri())),
                &slack.uri(),
                std::time::Duration::from_secs(5),
            )
            .unwrap(),
        );
        let mut control = w.control.clone();
        control.notifier = Some(poster.clone());
        let queue = LocalChatQueue::new(control, poster, now_chat);
        let mut answered = queue.answered();
        let router = slack_router(Arc::new(SlackState {
            signing_secret: SIGNING.as_bytes().to_vec(),
            channel: CHANNEL.to_owned(),
            queue: Arc::new(queue),
            now: now_chat,
        }));
        let at = now_chat();
        let drain = form(
            "drain build03 1h nodes failing",
            "U0ALICE",
            CHANNEL,
            &slack,
            "t-1",
        );

        // Refused before anything is parsed or queued.
        assert_eq!(
            send(&router, signed(&drain, at, "not-the-secret")).await.0,
            401
        );
        assert_eq!(
            send(&router, signed(&drain, at - 301, SIGNING)).await.0,
            401,
            "an old timestamp"
        );
        let mut tampered = signed(&drain, at, SIGNING);
        *tampered.body_mut() = Body::from(drain.replace("build03", "build04"));
        assert_eq!(send(&router, tampered).await.0, 401);
        let elsewhere = form(
            "drain build03 1h nodes failing",
            "U0ALICE",
            "C0RANDOM",
            &slack,
            "t-0",
        );
        let (status, body) = send(&router, signed(&elsewhere, at, SIGNING)).await;
        assert_eq!(status, 200);
        assert!(body["text"].as_str().unwrap().contains("only in"), "{body}");
        assert!(
            slack.received_requests().await.unwrap().is_empty(),
            "nothing ran"
        );

        // Answered at once, the plan posted to the response URL afterwards.
        let (status, body) = send(&router, signed(&drain, at, SIGNING)).await;
        assert_eq!(status, 200);
        assert_eq!(body["response_type"], "ephemeral");
        assert!(
            body["text"].as_str().unwrap().starts_with("working on"),
            "{body}"
        );
        answered.wait_for(|n| *n == 1).await.unwrap();
        let replies = posted(&slack, "/commands/T0001/1/abc").await;
        assert_eq!(replies.len(), 1, "{replies:?}");
        assert!(replies[0].contains("needs 2 approval(s)"), "{}", replies[0]);
        let plan = replies[0].split('`').nth(1).unwrap().to_owned();
        assert!(plan.starts_with("plan-"), "{plan}");

        let apply = form(
            &format!("apply {plan} confirm"),
            "U0ALICE",
            CHANNEL,
            &slack,
            "t-2",
        );
        send(&router, signed(&apply, at, SIGNING)).await;
        answered.wait_for(|n| *n == 2).await.unwrap();
        let replies = posted(&slack, "/commands/T0001/1/abc").await;
        assert!(replies[1].contains("is pending"), "{}", replies[1]);
        let id = replies[1].split('`').nth(1).unwrap().to_owned();
        let approve = form(&format!("approve {id}"), "U0BOB", CHANNEL, &slack, "t-3");
        send(&router, signed(&approve, at, SIGNING)).await;
        answered.wait_for(|n| *n == 3).await.unwrap();
        let replies = posted(&slack, "/commands/T0001/1/abc").await;
        assert!(replies[2].contains("is active"), "{}", replies[2]);
        assert_ne!(w.lookup(JOB).await.0, "build03");
        let notes = posted(&slack, "/services/notify").await;
        assert!(
            notes
                .iter()
                .any(|n| n.contains(&id) && n.contains("is active by U0BOB")),
            "{notes:?}"
        );
    }
}

mod lambda {
    use super::*;
    use async_trait::async_trait;
    use dispatcher_app::SourceError;
    use dispatcher_app::ports::{ChatQueue, ChatRequest};

    static CLOCK_LAMBDA: AtomicI64 = AtomicI64::new(0);
    fn now_lambda() -> i64 {
        CLOCK_LAMBDA.load(Ordering::SeqCst)
    }

    struct NoChat;
    #[async_trait]
    impl ChatQueue for NoChat {
        async fn submit(&self, _: &ChatRequest) -> Result<(), SourceError> {
            Err(SourceError::permanent("chat", "not in this test"))
        }
    }

    /// A recorded HTTP API event of an IAM-signed call, with this route and body.
    fn event(verb: &str, route: &str, body: &Value, iam: bool) -> Value {
        let text = include_str!("../fixtures/events/apigw-v2-control-iam.json");
        let mut e: Value = serde_json::from_str(text).unwrap();
        e["routeKey"] = json!(format!("{verb} {route}"));
        e["rawPath"] = json!(route);
        e["requestContext"]["http"]["method"] = json!(verb);
        e["requestContext"]["http"]["path"] = json!(route);
        e["body"] = json!(body.to_string());
        if !iam {
            e["requestContext"]
                .as_object_mut()
                .unwrap()
                .remove("authorizer");
        }
        e
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_actor_on_aws_is_the_callers_iam_principal_not_the_bodys() {
        let w = World::new(Backend::Local, &CLOCK_LAMBDA, now_lambda)
            .await
            .unwrap();
        let vars = BTreeMap::from([("DISPATCHER_PROW_CACHE_TTL", "10s".to_owned())]);
        let cfg = RuntimeConfig::from_lookup(|k| vars.get(k).cloned()).unwrap();
        let aws = dispatcher_aws::Aws::default();
        let wiring = control::wiring(&cfg, &aws, w.stores.clone(), Arc::new(NoChat))
            .await
            .unwrap();
        let call =
            |e: Value| control::handle(&wiring, "dispatcher-control", e, dispatcher_api::now());

        let mut body = capacity("build05", 10, "iam-1");
        body["actor"] = json!("mallory");
        let unsigned = call(event("POST", "/control/v1/plans", &body, false))
            .await
            .unwrap();
        assert_eq!(unsigned["statusCode"], 401, "{unsigned}");
        let planned = call(event("POST", "/control/v1/plans", &body, true))
            .await
            .unwrap();
        assert_eq!(planned["statusCode"], 201, "{planned}");
        let plan: Value = serde_json::from_str(planned["body"].as_str().unwrap()).unwrap();
        let route = format!("/control/v1/plans/{}/apply", plan["id"].as_str().unwrap());
        let applied = call(event("POST", &route, &json!({"actor": "mallory"}), true))
            .await
            .unwrap();
        assert_eq!(applied["statusCode"], 200, "{applied}");
        let o: Value = serde_json::from_str(applied["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            o["created_by"],
            "arn:aws:sts::123456789012:assumed-role/oncall/alice"
        );
        assert_eq!(applied["headers"]["content-type"], "application/json");

        let swept = call(json!({"action": "sweep"})).await.unwrap();
        assert_eq!(swept["expired"], json!([]));
        assert!(call(json!({"action": "chat", "request": 1})).await.is_err());
    }
}

mod notes {
    use super::*;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    static CLOCK_NOTES: AtomicI64 = AtomicI64::new(0);
    fn now_notes() -> i64 {
        CLOCK_NOTES.load(Ordering::SeqCst)
    }

    async fn texts(slack: &MockServer) -> Vec<String> {
        slack
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| {
                serde_json::from_slice::<Value>(&r.body).unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publishes_failures_and_a_late_backup_pr_are_announced_once() {
        let w = World::new(Backend::Local, &CLOCK_NOTES, now_notes)
            .await
            .unwrap();
        let slack = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&slack)
            .await;
        let poster = dispatcher_slack::Slack::new(
            Some(format!("{}/services/notify", slack.uri())),
            &slack.uri(),
            std::time::Duration::from_secs(5),
        )
        .unwrap();
        let mut recomputer = w.recomputer.clone();
        recomputer.notifier = Some(Arc::new(poster));

        // The same inputs again: nothing published, nothing said.
        recomputer
            .run(&RecomputeRequest::weekly(), "again", T0 + 10)
            .await
            .unwrap();
        assert!(texts(&slack).await.is_empty());

        // A drain, then a recompute: it publishes (the baseline with the drain kept).
        let plan = w.plan(capacity("build05", 10, "notes")).await;
        let (s, b) = w
            .post(
                &format!("/control/v1/plans/{}/apply", plan["id"].as_str().unwrap()),
                json!({"actor": "ann"}),
            )
            .await;
        assert_eq!(s, 200, "{b}");

        // A release that cannot be read fails, and says where.
        let mut broken = recomputer.clone();
        broken.repo = Arc::new(LocalRepo {
            path: sample().join("no-such-release"),
            clusters: None,
            limits: Default::default(),
        });
        assert!(
            broken
                .run(&RecomputeRequest::weekly(), "broken", T0 + 20)
                .await
                .is_err()
        );
        let said = texts(&slack).await;
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("a recompute failed"), "{}", said[0]);

        // A release whose inventory blocks build03 and build05: a generation that moves
        // jobs, announced.
        let inventory = std::fs::read_to_string(
            sample().join("release/core-services/sanitize-prow-jobs/_clusters.yaml"),
        )
        .unwrap()
        .replace(
            "  - name: build05\n",
            "  - name: build05\n    blocked: true\n",
        )
        .replace(
            "  - name: build03\n",
            "  - name: build03\n    blocked: true\n",
        );
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        std::fs::write(dir.path().join("_clusters.yaml"), inventory).unwrap();
        let mut blocking = recomputer.clone();
        blocking.repo = Arc::new(LocalRepo {
            path: sample().join("release"),
            clusters: Some(dir.path().join("_clusters.yaml")),
            limits: Default::default(),
        });
        let outcome = blocking
            .run(&RecomputeRequest::weekly(), "blocking", T0 + 30)
            .await
            .unwrap();
        assert!(outcome.published.changed > 0, "{outcome:?}");
        // The release blocks the cluster the capacity override lowered: the release says
        // more, and the override ends with that generation.
        let book = w.control.list().await.unwrap();
        assert_eq!(book[0].state, State::Revoked);
        let last = book[0].history.last().unwrap();
        assert_eq!(
            (last.actor.as_str(), last.generation),
            ("recompute", Some(outcome.published.generation))
        );
        assert!(last.message.contains("blocked"), "{}", last.message);
        assert!(
            w.stores
                .serving()
                .await
                .unwrap()
                .unwrap()
                .applied
                .overrides
                .is_empty()
        );
        let said = texts(&slack).await;
        assert!(
            said[1].contains(&format!(
                "generation {} published (weekly)",
                outcome.published.generation
            )),
            "{said:?}"
        );

        // A backup PR pending for more than a day is announced once.
        let markers = dispatcher_app::records::Markers(w.stores.table.as_ref());
        markers.set_fallback_pending(2).await.unwrap();
        assert!(
            !recomputer.announce_late_backup_pr(T0 + 3600).await.unwrap(),
            "not a day yet"
        );
        assert!(
            recomputer
                .announce_late_backup_pr(T0 + 86_400 + 60)
                .await
                .unwrap()
        );
        assert!(
            !recomputer
                .announce_late_backup_pr(T0 + 86_400 + 120)
                .await
                .unwrap(),
            "once"
        );
        let said = texts(&slack).await;
        assert!(said[2].contains("backup PR of generation 2"), "{said:?}");
    }
}

mod noop {
    use super::*;

    static CLOCK_NOOP_LOCAL: AtomicI64 = AtomicI64::new(0);
    fn now_noop_local() -> i64 {
        CLOCK_NOOP_LOCAL.load(Ordering::SeqCst)
    }
    static CLOCK_NOOP_EMULATOR: AtomicI64 = AtomicI64::new(0);
    fn now_noop_emulator() -> i64 {
        CLOCK_NOOP_EMULATOR.load(Ordering::SeqCst)
    }

    /// A recompute whose placement answers as the serving generation does publishes
    /// nothing and records that it verified it; one that changes an answer publishes.
    async fn no_generation_for_a_no_op(
        backend: Backend,
        clock: &'static AtomicI64,
        now: fn() -> i64,
    ) {
        let Some(w) = World::new(backend, clock, now).await else {
            return;
        };
        let markers = dispatcher_app::records::Markers(w.stores.table.as_ref());
        let push = RecomputeRequest {
            trigger: dispatcher_app::Trigger::Push,
            mode: dispatcher_core::Mode::Full,
            delivery_id: Some("d-2".to_owned()),
            after: None,
            paths: vec!["ci-operator/jobs/acme/widget/acme-widget-main-presubmits.yaml".to_owned()],
            allow_deletions: false,
            pull_request: None,
        };
        let outcome = w.recomputer.run(&push, "push-2", T0 + 60).await.unwrap();
        assert!(outcome.published.unchanged, "{outcome:?}");
        assert_eq!(outcome.published.generation, 1);
        assert_eq!(w.generation().await, 1, "no generation for a no-op");
        assert_eq!(markers.last_verified().await.unwrap(), Some((1, T0 + 60)));
        assert!(w.stores.table.generation(2).await.unwrap().is_none());

        // The same inputs with a live override: the generation with the override answers
        // as the plan would, so a second recompute again publishes nothing.
        let plan = w.plan(capacity("build05", 10, "noop")).await;
        let (s, b) = w
            .post(
                &format!("/control/v1/plans/{}/apply", plan["id"].as_str().unwrap()),
                json!({"actor": "ann"}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(w.generation().await, 2);
        let again = w.recomputer.run(&push, "push-3", T0 + 120).await.unwrap();
        assert!(again.published.unchanged, "{again:?}");
        assert_eq!(w.generation().await, 2);
        // Past the override's end the plan differs from what the generation records: published.
        let after = w
            .recomputer
            .run(&push, "push-4", T0 + 3 * 3600)
            .await
            .unwrap();
        assert!(!after.published.unchanged, "{after:?}");
        assert_eq!(w.generation().await, 3);
        assert!(
            w.stores
                .serving()
                .await
                .unwrap()
                .unwrap()
                .applied
                .overrides
                .is_empty()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_generation_for_a_no_op_on_the_local_store() {
        no_generation_for_a_no_op(Backend::Local, &CLOCK_NOOP_LOCAL, now_noop_local).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_generation_for_a_no_op_on_the_emulator() {
        no_generation_for_a_no_op(Backend::Emulator, &CLOCK_NOOP_EMULATOR, now_noop_emulator).await;
    }
}
