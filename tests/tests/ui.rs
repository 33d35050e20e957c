//! The read-only pages over HTTP, on the sample release served by the lookup's router: this
//! generation with its chart, a job found by search and explained, the history, an
//! override; and a job whose name carries markup is shown as text.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, like the tests"
)]

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use dispatcher_app::control::{Control, PlanRequest};
use dispatcher_app::recompute::RecomputeRequest;
use dispatcher_config::RuntimeConfig;
use dispatcher_core::overrides::OverrideKind;
use dispatcher_tests::{add_markup_job, copy_tree, sample, sample_recomputer};
use http_body_util::BodyExt;
use tower::ServiceExt;

const T0: i64 = 1_800_000_000;

async fn get(router: &Router, uri: &str) -> (u16, String, String) {
    let r = router
        .clone()
        .oneshot(axum::http::Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = r.status().as_u16();
    let csp = r
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), csp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_show_the_generation_a_job_the_history_and_the_overrides() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let release = dir.path().join("release");
    copy_tree(&sample().join("release"), &release);
    // A job whose name carries markup (job names come from public files).
    add_markup_job(&release);
    let stores = dispatcher_app::local::open(&dir.path().join("store")).unwrap();
    let vars = BTreeMap::from([("DISPATCHER_PROW_CACHE_TTL", "10s".to_owned())]);
    let cfg = RuntimeConfig::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let recomputer = sample_recomputer(&cfg, stores.clone(), release);
    recomputer
        .run(&RecomputeRequest::weekly(), "w", T0)
        .await
        .unwrap();
    let control = Control {
        stores: stores.clone(),
        settings: cfg.engine.clone(),
        limits: cfg.controls.clone(),
        notifier: None,
    };
    let plan = control
        .plan(
            PlanRequest {
                kind: OverrideKind::Capacity,
                cluster: "build05".to_owned(),
                capability: None,
                capacity: Some(10),
                duration: "2h".to_owned(),
                reason: "slow <etcd>".to_owned(),
                incident_url: None,
                idempotency_key: "ui".to_owned(),
            },
            "alice",
            dispatcher_api::now(),
        )
        .await
        .unwrap();
    control
        .apply(&plan.id, "alice", false, dispatcher_api::now())
        .await
        .unwrap();
    let record = stores.table.generation(2).await.unwrap().unwrap();
    // A job the override moved off build05.
    let moved = dispatcher_app::publish::load_changes(&stores, 2, &record.plan_digest)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.from.as_deref() == Some("build05"))
        .unwrap()
        .job;
    let pages = dispatcher_app::pages::Pages {
        stores: stores.clone(),
        service: std::sync::Arc::new(dispatcher_app::LookupService::new(stores.clone())),
    };
    let router = lookup::router(&cfg, stores);

    let (status, overview, csp) = get(&router, "/ui").await;
    assert_eq!(status, 200);
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(overview.contains("<h1>Generation 2</h1>"), "{overview}");
    assert!(overview.contains("<svg"), "the chart");
    assert!(overview.contains("Overrides applied"), "{overview}");
    assert!(
        overview.contains("What this generation moved"),
        "{overview}"
    );

    let (status, found, _) = get(&router, "/ui/jobs?q=widget-main-UNIT").await;
    assert_eq!(status, 200);
    assert!(
        found.contains("href=\"/ui/jobs/pull-ci-acme-widget-main-unit\""),
        "{found}"
    );

    let (status, job, _) = get(&router, "/ui/jobs/pull-ci-acme-widget-main-unit").await;
    assert_eq!(status, 200);
    assert!(job.contains("<dt>Rule</dt>"), "{job}");
    assert!(job.contains("Its file's candidates"), "{job}");
    assert!(job.contains("Its moves"), "{job}");

    // Its page says the override moved it, and which override is in force there; a job
    // on a cluster no override touches shows none.
    let (status, page, _) = get(&router, &format!("/ui/jobs/{moved}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Moved by an override"), "{page}");
    assert!(
        page.contains("Overrides in force on its cluster")
            && page.contains("capacity of <strong>build05</strong> to 10 until"),
        "{page}"
    );
    assert!(!job.contains("Overrides in force"), "{job}");

    // Once the override ended, the page says where the lookup sends the job: its baseline
    // cluster, with no generation in between.
    let now = dispatcher_api::now();
    let during = pages.job(&moved, now).await.unwrap().unwrap();
    assert_ne!(during.cluster.as_deref(), Some("build05"));
    assert!(during.overridden.is_some() && during.override_ended.is_none());
    let after = pages.job(&moved, now + 3 * 3600).await.unwrap().unwrap();
    assert_eq!(after.cluster.as_deref(), Some("build05"), "{after:?}");
    assert!(after.overridden.is_none() && after.override_ended.is_some());
    assert!(
        after.affecting.is_empty(),
        "the override is over: {after:?}"
    );

    let (status, odd, _) = get(&router, "/ui/jobs?q=script").await;
    assert_eq!(status, 200);
    assert!(
        odd.contains("x&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{odd}"
    );
    assert!(!odd.contains("<script>alert"), "{odd}");

    let (status, history, _) = get(&router, "/ui/history").await;
    assert_eq!(status, 200);
    assert!(
        history.contains("href=\"/ui/generations/2\"")
            && history.contains("href=\"/ui/generations/1\""),
        "{history}"
    );
    assert!(
        history.contains("<td>override</td>"),
        "the cause: {history}"
    );
    // The override's generation moved demand off build05, and the history says how much.
    let off: Vec<_> = record
        .moved
        .iter()
        .filter(|m| m.from.as_deref() == Some("build05"))
        .collect();
    assert!(!off.is_empty() && record.moved_demand() > 0.0, "{record:?}");
    assert!(
        history.contains(&format!(
            "<td class=\"n\">{:.1}</td>",
            record.moved_demand()
        )),
        "{history}"
    );

    // A page per generation, from its record.
    let (status, second, _) = get(&router, "/ui/generations/2").await;
    assert_eq!(status, 200);
    assert!(second.contains("<h1>Generation 2</h1>"), "{second}");
    assert!(
        second.contains("<svg") && second.contains("It is serving now"),
        "{second}"
    );
    assert!(
        second.contains("href=\"/ui/generations/1\""),
        "its base: {second}"
    );
    assert!(
        second.contains(&format!(
            "<td>build05</td><td>{}</td><td class=\"n\">{}</td>",
            off[0].to.as_deref().unwrap_or("(none)"),
            off[0].jobs
        )),
        "{second}"
    );
    let (status, first, _) = get(&router, "/ui/generations/1").await;
    assert_eq!(status, 200);
    assert!(!first.contains("It is serving now"), "{first}");
    assert_eq!(get(&router, "/ui/generations/3").await.0, 404);
    assert_eq!(get(&router, "/ui/generations/0").await.0, 404);
    assert_eq!(get(&router, "/ui/generations/two").await.0, 404);

    let (status, overrides, _) = get(&router, "/ui/overrides").await;
    assert_eq!(status, 200);
    assert!(overrides.contains("capacity 10 for build05"), "{overrides}");
    assert!(overrides.contains("slow &lt;etcd&gt;"), "{overrides}");

    assert_eq!(get(&router, "/ui/jobs/nope").await.0, 404);
    let (status, css, _) = get(&router, "/ui/style.css").await;
    assert_eq!((status, css.contains("font")), (200, true));
    // The one script, allowed by the policy only from the pages' own origin.
    let (status, js, _) = get(&router, "/ui/filter.js").await;
    assert_eq!((status, js.contains("data-filter")), (200, true));
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(found.contains("<table data-filter=\"jobs\">"), "{found}");
}
