//! Volumes from a real Prometheus (started by the test command with backfilled
//! `prowjob_state_transitions`), queried with the dispatcher's PromQL; and its failures.

use std::io::Write as _;
use std::time::Duration;

use dispatcher_app::ports::DemandSource;
use dispatcher_prometheus::{Auth, PrometheusConfig, PrometheusDemand};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn config(url: &str) -> PrometheusConfig {
    PrometheusConfig {
        url: url.to_owned(),
        auth: Auth::None,
        timeout: Duration::from_secs(5),
        window: "7d".to_owned(),
        offset: Duration::ZERO,
        durations_query: None,
        runs_query: None,
    }
}

/// The backfilled Prometheus and its evaluation time.
fn real() -> Option<(String, i64)> {
    let url = std::env::var("DISPATCHER_TEST_PROMETHEUS_URL").ok();
    let time = std::env::var("DISPATCHER_TEST_PROMETHEUS_TIME")
        .ok()
        .and_then(|t| t.parse().ok());
    match (url, time) {
        (Some(u), Some(t)) => Some((u, t)),
        _ if std::env::var_os("DISPATCHER_REQUIRE_PROMETHEUS").is_some() => {
            panic!(
                "DISPATCHER_REQUIRE_PROMETHEUS is set but DISPATCHER_TEST_PROMETHEUS_URL/TIME are not"
            )
        }
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: no Prometheus (./infra/test.sh starts one)"
            );
            None
        }
    }
}

#[tokio::test]
async fn the_dispatchers_query_reads_run_counts() {
    let Some((url, time)) = real() else { return };
    let demand = PrometheusDemand::new(config(&url))
        .unwrap()
        .demand(time)
        .await
        .unwrap();
    let runs = &demand.volumes.runs;
    assert_eq!(runs.len(), 3, "{runs:?}");
    // The backfill adds 12, 3 and 1 runs an hour; the window is 168 hours.
    for (job, per_hour) in [
        ("pull-ci-acme-widget-main-unit", 12.0),
        ("pull-ci-acme-widget-main-e2e-aws", 3.0),
        ("periodic-acme-nightly", 1.0),
    ] {
        let got = runs[job];
        assert!((got - per_hour * 168.0).abs() < per_hour, "{job}: {got}");
    }
    assert!(demand.runs_digest.starts_with("sha256:"));
    // A shorter window counts less: the window is really configurable.
    let day = PrometheusConfig {
        window: "1d".to_owned(),
        ..config(&url)
    };
    let one_day = PrometheusDemand::new(day)
        .unwrap()
        .demand(time)
        .await
        .unwrap();
    assert!((one_day.volumes.runs["pull-ci-acme-widget-main-unit"] - 288.0).abs() < 12.0);
    // The durations query is weighed as hours.
    let with_durations = PrometheusConfig {
        durations_query: Some(
            r#"sum(increase(prowjob_state_transitions{state="pending"}[7d])) by (job_name) * 3600"#
                .to_owned(),
        ),
        ..config(&url)
    };
    let d = PrometheusDemand::new(with_durations)
        .unwrap()
        .demand(time)
        .await
        .unwrap();
    let hours = d.volumes.hours.unwrap();
    assert!((hours["periodic-acme-nightly"] - 168.0).abs() < 1.0);
}

#[tokio::test]
async fn an_error_response_is_not_retryable() {
    let Some((url, time)) = real() else { return };
    let bad = PrometheusConfig {
        runs_query: Some("sum(".to_owned()),
        ..config(&url)
    };
    let e = PrometheusDemand::new(bad)
        .unwrap()
        .demand(time)
        .await
        .unwrap_err();
    assert!(!e.retryable, "{e}");
    assert!(
        e.message.contains("bad_data") || e.message.contains("parse"),
        "{e}"
    );
    // Nothing in the window: an empty vector is suspicious, not "every job weighs zero".
    let empty = PrometheusConfig {
        runs_query: Some(r#"prowjob_state_transitions{state="nope"}"#.to_owned()),
        ..config(&url)
    };
    let e = PrometheusDemand::new(empty)
        .unwrap()
        .demand(time)
        .await
        .unwrap_err();
    assert!(e.message.contains("empty"), "{e}");
}

#[tokio::test]
async fn a_prometheus_that_is_down_is_retryable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The listener is dropped: nothing answers on that port.
    let e = PrometheusDemand::new(config(&format!("http://127.0.0.1:{port}")))
        .unwrap()
        .demand(0)
        .await
        .unwrap_err();
    assert!(e.retryable, "{e}");
    assert!(e.message.contains("cannot connect"), "{e}");
}

#[tokio::test]
async fn a_slow_prometheus_times_out_and_is_retryable() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let slow = PrometheusConfig {
        timeout: Duration::from_millis(300),
        ..config(&url)
    };
    let started = std::time::Instant::now();
    let e = PrometheusDemand::new(slow)
        .unwrap()
        .demand(0)
        .await
        .unwrap_err();
    assert!(e.retryable && e.message.contains("timed out"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    hold.abort();
}

#[tokio::test]
async fn credentials_are_sent_and_server_errors_are_retryable() {
    let server = MockServer::start().await;
    let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job_name":"a"},"value":[1,"2"]}]}}"#;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .and(header("authorization", "Bearer t0ken"))
        .and(query_param("time", "1000"))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .and(header("authorization", "Basic dXNlcjpwYXNz"))
        .respond_with(ResponseTemplate::new(503).set_body_string("overloaded"))
        .mount(&server)
        .await;
    let bearer = PrometheusConfig {
        auth: Auth::Bearer("t0ken".to_owned()),
        ..config(&server.uri())
    };
    let d = PrometheusDemand::new(bearer)
        .unwrap()
        .demand(1000)
        .await
        .unwrap();
    assert_eq!(d.volumes.runs["a"], 2.0);
    let basic = PrometheusConfig {
        auth: Auth::Basic {
            user: "user".to_owned(),
            password: "pass".to_owned(),
        },
        ..config(&server.uri())
    };
    let e = PrometheusDemand::new(basic)
        .unwrap()
        .demand(1000)
        .await
        .unwrap_err();
    assert!(e.retryable && e.message.contains("503"), "{e}");
    // The offset moves the evaluation time back.
    let offset = PrometheusConfig {
        auth: Auth::Bearer("t0ken".to_owned()),
        offset: Duration::from_secs(400),
        ..config(&server.uri())
    };
    assert!(
        PrometheusDemand::new(offset)
            .unwrap()
            .demand(1400)
            .await
            .is_ok()
    );
}
