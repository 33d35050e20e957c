//! The pages in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! Debian's `chromium` and `chromium-driver`, which `./infra/test.sh` installs) against
//! `dispatcher serve` with an override applied, on the sample release (with a job whose
//! name carries markup) and, where present, on the real corpus. Search finds a job, its
//! page shows its rule and candidates, the chart, the history and a generation's page
//! render, the override shows, the markup is text, the filter box filters; a screenshot of each view is written
//! under the test's output folder (`<site>-<view>.png`).
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, like the tests"
)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use dispatcher_tests::{MARKUP_JOB, add_markup_job, copy_tree, line_after, local_only, sample};
use fantoccini::{Client, ClientBuilder, Locator};

const TOKEN: &str = "browser-t0ken";

/// Kills the child when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> Option<String> {
    let found = ["chromedriver", "/usr/bin/chromedriver"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if found.is_none() {
        assert!(
            std::env::var_os("DISPATCHER_REQUIRE_BROWSER").is_none(),
            "chromedriver is required"
        );
        eprintln!(
            "SKIPPED the browser test: no chromedriver; ./infra/test.sh installs Debian's chromium-driver"
        );
    }
    found.map(str::to_owned)
}

/// A `dispatcher serve` planning `inputs` (its arguments after `serve`) into a fresh local
/// store under `work`, with a 2 h capacity override of build05 applied through the control
/// API by the CLI; the server and its address.
fn serve_with_override(work: &Path, inputs: &[OsString]) -> (Killed, String) {
    let mut serve = Command::new(env!("CARGO_BIN_EXE_dispatcher"));
    local_only(&mut serve)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(inputs)
        .current_dir(work)
        .env("DISPATCHER_TRIGGER_TOKEN", TOKEN)
        .env("DISPATCHER_PROW_CACHE_TTL", "10s")
        .env("DISPATCHER_LOOKUP_REFRESH", "0s")
        .env("DISPATCHER_LOCAL_DIR", work.join("store"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut serve = Killed(serve.spawn().unwrap());
    let addr = line_after(&mut serve.0, "serving on http://");
    let api = format!("http://{addr}/control/v1");
    let cli = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_dispatcher"))
            .args([
                "override", "--api", &api, "--token", TOKEN, "--actor", "alice",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let plan = cli(&[
        "plan",
        "--kind",
        "capacity",
        "--cluster",
        "build05",
        "--capacity",
        "10",
        "--duration",
        "2h",
        "--reason",
        "slow etcd",
    ]);
    cli(&["apply", plan["id"].as_str().unwrap()]);
    (serve, addr)
}

/// The sample release, with a second copy of a job whose name carries markup.
fn sample_with_markup(work: &Path) -> Vec<OsString> {
    let release = work.join("release");
    copy_tree(&sample().join("release"), &release);
    add_markup_job(&release);
    vec![
        "--release".into(),
        release.into(),
        "--volumes".into(),
        sample().join("volumes.json").into(),
    ]
}

/// A session of headless Chromium, and its chromedriver.
async fn browser(driver: &str) -> (Killed, Client) {
    // chromedriver picks a free port itself and says which once it listens.
    let mut driver = Killed(
        Command::new(driver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let port = line_after(&mut driver.0, "started successfully on port ");
    let port = port.trim_end_matches('.');
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1600"]}),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with headless Chromium");
    (driver, client)
}

/// Where a walk goes on one site, and what it calls its screenshots.
struct Site<'a> {
    name: &'a str,
    base: String,
    /// Typed into the search box.
    query: &'a str,
    /// The job the search must find.
    job: &'a str,
}

impl Site<'_> {
    fn url(&self, path: &str) -> url::Url {
        url::Url::parse(&format!("{}{path}", self.base)).unwrap()
    }

    async fn shot(&self, c: &Client, view: &str) {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{view}: a PNG");
        std::fs::write(dir.join(format!("{}-{view}.png", self.name)), png).unwrap();
    }
}

/// This generation, a search typed like a person would, the job's page, the history and
/// the overrides, on one site.
async fn walk(c: &Client, site: &Site<'_>) {
    // This generation: the chart renders, the override shows.
    c.goto(site.url("/ui").as_str()).await.unwrap();
    let h1 = c
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(h1.starts_with("Generation "), "{h1}");
    let chart = c.find(Locator::Css("figure svg")).await.unwrap();
    assert!(chart.is_displayed().await.unwrap());
    let bars = c.find_all(Locator::Css("figure svg rect")).await.unwrap();
    assert!(bars.len() >= 2, "bars drawn");
    let applied = c
        .find(Locator::Id("applied"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(applied, "Overrides applied");
    site.shot(c, "generation").await;

    // Search, then the job's page. A click does not wait for the page it leads to: wait
    // for that page's address.
    let input = c.find(Locator::Id("q")).await.unwrap();
    input.send_keys(site.query).await.unwrap();
    c.find(Locator::Css("form[role=search] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let query: String = url::form_urlencoded::byte_serialize(site.query.as_bytes()).collect();
    c.wait()
        .for_url(&site.url(&format!("/ui/jobs?q={query}")))
        .await
        .unwrap();
    let link = c.find(Locator::LinkText(site.job)).await.unwrap();
    site.shot(c, "search").await;
    link.click().await.unwrap();
    c.wait()
        .for_url(&site.url(&format!("/ui/jobs/{}", site.job)))
        .await
        .unwrap();
    let rule = c
        .find(Locator::XPath("//dt[.='Rule']/following-sibling::dd[1]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!rule.is_empty());
    let candidates = c
        .find(Locator::Id("candidates"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(candidates, "Its file's candidates");
    let scored = c
        .find_all(Locator::Css("section[aria-labelledby=candidates] tbody tr"))
        .await
        .unwrap();
    assert!(!scored.is_empty(), "{}: candidates listed", site.job);
    site.shot(c, "job").await;

    // History and overrides.
    c.goto(site.url("/ui/history").as_str()).await.unwrap();
    let rows = c.find_all(Locator::Css("main tbody tr")).await.unwrap();
    assert!(rows.len() >= 2, "two generations");
    site.shot(c, "history").await;
    // The override's generation, from its link: its chart and what it moved.
    c.find(Locator::LinkText("2"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_url(&site.url("/ui/generations/2"))
        .await
        .unwrap();
    let chart = c.find(Locator::Css("figure svg")).await.unwrap();
    assert!(chart.is_displayed().await.unwrap());
    let moves = c
        .find_all(Locator::Css("section[aria-labelledby=moved] tbody tr"))
        .await
        .unwrap();
    assert!(!moves.is_empty(), "the override's moves");
    site.shot(c, "generation-2").await;
    c.goto(site.url("/ui/overrides").as_str()).await.unwrap();
    let row = c
        .find(Locator::Css("main tbody tr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        row.contains("capacity 10 for build05") && row.contains("active"),
        "{row}"
    );
    site.shot(c, "overrides").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_work_in_a_real_browser() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let inputs = sample_with_markup(work.path());
    let (_serve, addr) = serve_with_override(work.path(), &inputs);
    let (_driver, c) = browser(&driver).await;
    let sample = Site {
        name: "sample",
        base: format!("http://{addr}"),
        query: "widget-main-unit",
        job: "pull-ci-acme-widget-main-unit",
    };
    walk(&c, &sample).await;

    // The markup in a job's name is text.
    c.goto(sample.url("/ui/jobs?q=script").as_str())
        .await
        .unwrap();
    let shown = c
        .find(Locator::Css("main table a"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(shown, MARKUP_JOB);
    assert!(
        c.find_all(Locator::Css("main script"))
            .await
            .unwrap()
            .is_empty()
    );
    sample.shot(&c, "markup").await;

    // The filter box (the one progressive enhancement) hides the rows without its text.
    c.goto(sample.url("/ui/jobs?q=widget").as_str())
        .await
        .unwrap();
    let rows = c.find_all(Locator::Css("main tbody tr")).await.unwrap();
    c.find(Locator::Css("label.filter input"))
        .await
        .unwrap()
        .send_keys("main-unit")
        .await
        .unwrap();
    let mut shown = Vec::new();
    for row in &rows {
        if row.is_displayed().await.unwrap() {
            shown.push(row.text().await.unwrap());
        }
    }
    assert!(
        !shown.is_empty() && shown.len() < rows.len(),
        "{} of {} rows shown",
        shown.len(),
        rows.len()
    );
    assert!(shown.iter().all(|r| r.contains("main-unit")), "{shown:?}");
    sample.shot(&c, "filter").await;

    // The same walk on the real corpus, where present.
    if let Some(corpus) =
        dispatcher_tests::corpus_or_skip("the_pages_work_in_a_real_browser (corpus part)")
    {
        let work = tempfile::tempdir().unwrap();
        let inputs: Vec<OsString> = vec![
            "--release".into(),
            corpus.join("release-7659af06.tar.gz").into(),
            "--volumes".into(),
            corpus.join("volumes-7659af06.week1.json.gz").into(),
            "--clusters".into(),
            corpus.join("clusters-2022.yaml").into(),
        ];
        let (_serve, addr) = serve_with_override(work.path(), &inputs);
        walk(
            &c,
            &Site {
                name: "corpus",
                base: format!("http://{addr}"),
                query: "installer-master-e2e-aws",
                job: "pull-ci-openshift-installer-master-e2e-aws",
            },
        )
        .await;
    }
    c.close().await.unwrap();
}
