//! The pages in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! Debian's `chromium` and `chromium-driver`, which `./infra/test.sh` installs) against
//! `dispatcher serve` on the sample release with an override applied and a job whose name
//! carries markup. Search finds a job, its page shows its rule and candidates, the chart
//! and the history render, the override shows, the markup is text; a screenshot of each
//! view is written under the test's output folder.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, like the tests"
)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fantoccini::{ClientBuilder, Locator};

const ODD: &str = "pull-ci-acme-widget-main-x<script>alert(1)</script>";
const TOKEN: &str = "browser-t0ken";

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sample")
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Kills the child when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first line of `child`'s stdout that contains `marker`, from just after it. The rest
/// of the output is drained on a thread, so the child never blocks on (or dies of) a full
/// or closed pipe.
fn line_after(child: &mut Child, marker: &str) -> String {
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let found = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.split_once(marker).map(|(_, a)| a.trim().to_owned()))
        .unwrap_or_else(|| panic!("no line with {marker:?}"));
    std::thread::spawn(move || lines.for_each(drop));
    found
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_work_in_a_real_browser() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let release = work.path().join("release");
    copy(&sample().join("release"), &release);
    let file = release.join("ci-operator/jobs/acme/widget/acme-widget-main-presubmits.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let odd = text.replacen(
        "name: pull-ci-acme-widget-main-unit",
        &format!("name: \"{ODD}\""),
        1,
    );
    std::fs::write(
        &file,
        format!("{text}{}", &odd[odd.find("  - ").unwrap()..]),
    )
    .unwrap();

    let mut serve = Command::new(env!("CARGO_BIN_EXE_dispatcher"));
    serve
        .args(["serve", "--addr", "127.0.0.1:0", "--release"])
        .arg(&release)
        .arg("--volumes")
        .arg(sample().join("volumes.json"))
        .current_dir(work.path())
        .env("DISPATCHER_TRIGGER_TOKEN", TOKEN)
        .env("DISPATCHER_PROW_CACHE_TTL", "10s")
        .env("DISPATCHER_LOOKUP_REFRESH", "0s")
        .env("DISPATCHER_LOCAL_DIR", work.path().join("store"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for var in [
        "DISPATCHER_TABLE",
        "DISPATCHER_BUCKET",
        "DISPATCHER_STORE",
        "DISPATCHER_PROMETHEUS_URL",
        "DISPATCHER_GITHUB_API",
        "DISPATCHER_GITHUB_TOKEN",
        "DISPATCHER_WEBHOOK_SECRET",
    ] {
        serve.env_remove(var);
    }
    let mut serve = Killed(serve.spawn().unwrap());
    let addr = line_after(&mut serve.0, "serving on http://");
    // An override, through the control API.
    let api = format!("http://{addr}/control/v1");
    let cli = |args: &[&str]| {
        let mut all = vec![
            "override",
            "--api",
            api.as_str(),
            "--token",
            TOKEN,
            "--actor",
            "alice",
        ];
        all.extend_from_slice(args);
        let o = Command::new(env!("CARGO_BIN_EXE_dispatcher"))
            .args(&all)
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

    // chromedriver picks a free port itself and says which once it listens.
    let mut driver = Killed(
        Command::new(&driver)
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
        .await;
    let c = client.expect("a WebDriver session with headless Chromium");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = |name: &'static str| {
        let c = c.clone();
        let path = shots.join(format!("{name}.png"));
        async move {
            let png = c.screenshot().await.unwrap();
            assert!(png.starts_with(b"\x89PNG"), "{name}: a PNG");
            std::fs::write(path, png).unwrap();
        }
    };
    let base = format!("http://{addr}");

    // This generation: the chart renders, the override shows.
    c.goto(&format!("{base}/ui")).await.unwrap();
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
    shot("generation").await;

    // Search, typed and submitted like a person would, then the job's page.
    let input = c.find(Locator::Id("q")).await.unwrap();
    input.send_keys("widget-main-unit").await.unwrap();
    c.find(Locator::Css("form[role=search] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // A click does not wait for the page it leads to: wait for that page's address.
    let url = |path: &str| url::Url::parse(&format!("{base}{path}")).unwrap();
    c.wait()
        .for_url(&url("/ui/jobs?q=widget-main-unit"))
        .await
        .unwrap();
    let link = c
        .find(Locator::LinkText("pull-ci-acme-widget-main-unit"))
        .await
        .unwrap();
    shot("search").await;
    link.click().await.unwrap();
    c.wait()
        .for_url(&url("/ui/jobs/pull-ci-acme-widget-main-unit"))
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
    shot("job").await;

    // The markup in a job's name is text.
    c.goto(&format!("{base}/ui/jobs?q=script")).await.unwrap();
    let shown = c
        .find(Locator::Css("main table a"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(shown, ODD);
    assert!(
        c.find_all(Locator::Css("main script"))
            .await
            .unwrap()
            .is_empty()
    );
    shot("markup").await;

    // History and overrides.
    c.goto(&format!("{base}/ui/history")).await.unwrap();
    let rows = c.find_all(Locator::Css("main tbody tr")).await.unwrap();
    assert!(rows.len() >= 2, "two generations");
    shot("history").await;
    c.goto(&format!("{base}/ui/overrides")).await.unwrap();
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
    shot("overrides").await;
    c.close().await.unwrap();
}
