//! Benchmark of the placement engine on the real corpus. Prints figures measured in one run
//! (ratios, since the machines are shared and noisy); it is a program, not a timed test.
//!
//! `cargo run --release -p dispatcher-tests --bin bench-engine`

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dispatcher_core::{Plan, Settings, Strategy};
use dispatcher_formats::InputPaths;
use dispatcher_tests::corpus_dir;

// Placement allocates and frees many small strings, several threads at a time;
// mimalloc does that markedly faster than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 3;

fn best_of<T>(runs: usize, mut f: impl FnMut() -> Result<T>) -> Result<(Duration, T)> {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let v = f()?;
        best = best.min(t.elapsed());
        last = Some(v);
    }
    Ok((best, last.context("no run")?))
}

/// The floor: decompress the tarball and read every member into memory, nothing else.
fn untar(path: &Path) -> Result<usize> {
    let gz = flate2::read::GzDecoder::new(std::io::BufReader::with_capacity(
        1 << 16,
        std::fs::File::open(path)?,
    ));
    let mut archive = tar::Archive::new(gz);
    let mut bytes = 0;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let mut buf = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry.read_to_end(&mut buf)?;
        bytes += buf.len();
    }
    Ok(bytes)
}

fn settings(strategy: Strategy) -> Settings {
    Settings {
        strategy,
        vsphere_cluster: "vsphere".to_owned(),
        ..Settings::default()
    }
}

/// The whole `plan` pipeline in process: read and parse, place, serialise.
fn plan(
    release: &Path,
    clusters: &Path,
    volumes: &Path,
    previous: Option<&Path>,
    s: &Settings,
) -> Result<(Plan, usize)> {
    let loaded = dispatcher_formats::load(
        &InputPaths {
            release: release.to_owned(),
            clusters: Some(clusters.to_owned()),
            volumes: Some(volumes.to_owned()),
            previous: previous.map(Path::to_owned),
            ..InputPaths::default()
        },
        &|| {},
    )?;
    let plan = dispatcher_core::run(&loaded.inputs(), s).map_err(|e| anyhow::anyhow!("{e}"))?;
    let json = plan.to_json();
    Ok((plan, json.len()))
}

/// A corpus `copies` times larger: every job file again under `s<k>/`, with its basename
/// and job names suffixed so that nothing collides, and volumes to match.
fn synthesize(corpus: &Path, copies: usize, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let name_line = regex::Regex::new(r"(?m)^(\s*(?:- )?name: )([A-Za-z0-9_.\-]+)\s*$")?;
    let members = dispatcher_tests::tar_members(&corpus.join("release-7659af06.tar.gz"))?;
    let out = dir.join(format!("synthetic-x{copies}.tar.gz"));
    let gz =
        flate2::write::GzEncoder::new(std::fs::File::create(&out)?, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut append = |path: &str, data: &[u8]| -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, path, data)?;
        Ok(())
    };
    for (path, data) in &members {
        let Some(rest) = path.strip_prefix("ci-operator/jobs/") else {
            append(path, data)?;
            continue;
        };
        for k in 0..copies {
            if k == 0 {
                append(path, data)?;
                continue;
            }
            let text = String::from_utf8_lossy(data);
            let renamed = name_line.replace_all(&text, |c: &regex::Captures<'_>| {
                format!("{}{}-s{k}", &c[1], &c[2])
            });
            let (dirs, base) = rest.rsplit_once('/').unwrap_or(("", rest));
            append(
                &format!("ci-operator/jobs/s{k}/{dirs}/s{k}-{base}"),
                renamed.as_bytes(),
            )?;
        }
    }
    tar.into_inner()?.finish()?;

    let mut week1 = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(
        corpus.join("volumes-7659af06.week1.json.gz"),
    )?)
    .read_to_string(&mut week1)?;
    let mut v: serde_json::Value = serde_json::from_str(&week1)?;
    let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
    let mut all = Vec::new();
    for k in 0..copies {
        for s in &result {
            let mut s = s.clone();
            if k > 0 {
                let name = s["metric"]["job_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                s["metric"]["job_name"] = serde_json::Value::String(format!("{name}-s{k}"));
            }
            all.push(s);
        }
    }
    v["data"]["result"] = serde_json::Value::Array(all);
    let vols = dir.join(format!("synthetic-x{copies}.volumes.json"));
    std::fs::File::create(&vols)?.write_all(serde_json::to_string(&v)?.as_bytes())?;
    Ok((out, vols))
}

/// One corpus measured: what the growth figures compare.
struct Point {
    jobs: usize,
    json: usize,
    floor: Duration,
    bytes: usize,
    time: Duration,
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// The peak resident set of this process so far (`VmHWM`), in MB.
fn peak_rss_mb() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .context("no VmHWM in /proc/self/status")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb / 1024.0)
}

/// The child side of the memory figures: one `plan` pipeline in a fresh process, then its
/// peak memory and how it ended, on one line.
fn peak_child(args: &[String]) -> Result<()> {
    let [release, clusters, volumes] = args else {
        anyhow::bail!("usage: bench-engine --peak RELEASE CLUSTERS VOLUMES");
    };
    let started = Instant::now();
    let result = plan(
        Path::new(release),
        Path::new(clusters),
        Path::new(volumes),
        None,
        &settings(Strategy::Balanced),
    );
    let outcome = match result {
        Ok((p, _)) => format!("placed {} jobs", p.summary.placed_jobs),
        Err(e) => format!(
            "refused: {}",
            format!("{e:#}").chars().take(160).collect::<String>()
        ),
    };
    println!(
        "{:.0}\t{:.2}\t{outcome}",
        peak_rss_mb()?,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A `.tar.gz` of `members`, one of them `bomb_size` bytes of spaces streamed in (never
/// held in memory): the archive stays a few megabytes.
fn bomb_tarball(out: &Path, members: &[(&str, &[u8])], bomb: Option<(&str, u64)>) -> Result<()> {
    let gz =
        flate2::write::GzEncoder::new(std::fs::File::create(out)?, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, path, *data)?;
    }
    if let Some((path, size)) = bomb {
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, path, std::io::repeat(b' ').take(size))?;
    }
    tar.into_inner()?.finish()?;
    Ok(())
}

/// `size` bytes of newlines, gzipped: a small file that decompresses to a huge one.
fn gzip_bomb(out: &Path, size: u64) -> Result<()> {
    let mut gz =
        flate2::write::GzEncoder::new(std::fs::File::create(out)?, flate2::Compression::fast());
    std::io::copy(&mut std::io::repeat(b'\n').take(size), &mut gz)?;
    gz.finish()?;
    Ok(())
}

/// Peak memory of `plan` on the real corpus and on bombs, each in a process of its own.
fn memory_figures(corpus: &Path, tmp: &Path) -> Result<()> {
    const GIB2: u64 = 2 << 30;
    let tarball = corpus.join("release-7659af06.tar.gz");
    let clusters = corpus.join("clusters-2022.yaml");
    let week1 = corpus.join("volumes-7659af06.week1.json.gz");
    let config = "core-services/sanitize-prow-jobs/_config.yaml";
    let job = "ci-operator/jobs/o/r/o-r-main-presubmits.yaml";
    let small_job: &[u8] = b"presubmits:\n  o/r:\n  - name: pull-a\n    agent: kubernetes\n";
    let member_bomb = tmp.join("member-bomb.tar.gz");
    bomb_tarball(
        &member_bomb,
        &[(config, b"default: build01\n"), (job, small_job)],
        Some(("ci-operator/jobs/o/r/o-r-main-periodics.yaml", GIB2)),
    )?;
    let config_gz = tmp.join("config-bomb.gz");
    gzip_bomb(&config_gz, GIB2)?;
    let config_bomb = tmp.join("config-bomb.tar.gz");
    bomb_tarball(
        &config_bomb,
        &[(config, &std::fs::read(&config_gz)?), (job, small_job)],
        None,
    )?;
    let volumes_bomb = tmp.join("volumes-bomb.json.gz");
    gzip_bomb(&volumes_bomb, GIB2)?;
    println!("### Peak memory of `plan` (each in a process of its own)\n");
    println!("| input | file size | peak RSS | time | outcome |");
    println!("|---|---:|---:|---:|---|");
    let mut corpus_peak = 0.0;
    for (label, release, volumes) in [
        ("the real corpus", &tarball, &week1),
        ("a 2 GiB job file in the tarball", &member_bomb, &week1),
        ("a 2 GiB gzip bomb as `_config.yaml`", &config_bomb, &week1),
        ("a 2 GiB gzip bomb as the volumes", &tarball, &volumes_bomb),
    ] {
        let bomb_file = if release == &tarball {
            volumes
        } else {
            release
        };
        let out = std::process::Command::new(std::env::current_exe()?)
            .arg("--peak")
            .args([release, &clusters, volumes])
            .output()?;
        let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let mut fields = line.splitn(3, '\t');
        let (peak, secs, outcome) = (
            fields
                .next()
                .unwrap_or_default()
                .parse::<f64>()
                .unwrap_or(f64::NAN),
            fields.next().unwrap_or_default().to_owned(),
            fields.next().unwrap_or_default().to_owned(),
        );
        if release == &tarball && volumes == &week1 {
            corpus_peak = peak;
        }
        println!(
            "| {label} | {:.1} MB | {peak:.0} MB ({:.2}x the corpus) | {secs} s | {outcome} |",
            std::fs::metadata(bomb_file)?.len() as f64 / 1e6,
            peak / corpus_peak,
        );
    }
    println!();
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--peak") {
        return peak_child(&args[1..]);
    }
    let Some(c) = corpus_dir() else {
        eprintln!(
            "bench-engine needs the corpus (../shared/corpus beside the repository, or DISPATCHER_CORPUS)"
        );
        std::process::exit(2);
    };
    let tarball = c.join("release-7659af06.tar.gz");
    let clusters = c.join("clusters-2022.yaml");
    let week1 = c.join("volumes-7659af06.week1.json.gz");
    let week2 = c.join("volumes-7659af06.week2.json.gz");
    let balanced = settings(Strategy::Balanced);
    let threads = rayon::current_num_threads();
    let single = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;

    println!("## Placement engine ({threads} threads; best of {RUNS} runs each)\n");
    memory_figures(&c, tempfile::tempdir()?.path())?;
    println!("### Cost against the floor of decompressing and untarring the same tarball\n");
    println!(
        "| corpus | job files | jobs | floor | plan | plan / floor | plan on 1 thread / floor |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let tmp = tempfile::tempdir()?;
    // The plan is returned apart, so that only the real corpus's stays alive for the
    // balance and churn figures and a synthetic one is freed before the next corpus.
    let measure = |label: &str, tarball: &Path, volumes: &Path| -> Result<(Point, Plan)> {
        let (floor, bytes) = best_of(RUNS, || untar(tarball))?;
        let (time, (placed, json)) =
            best_of(RUNS, || plan(tarball, &clusters, volumes, None, &balanced))?;
        let (single_time, _) = best_of(RUNS, || {
            single.install(|| plan(tarball, &clusters, volumes, None, &balanced))
        })?;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "| {label}, {:.1} MB | {} | {} | {:.0} ms | {:.0} ms | {:.2}x | {:.2}x |",
            bytes as f64 / 1e6,
            placed.summary.files,
            placed.summary.jobs,
            ms(floor),
            ms(time),
            time.as_secs_f64() / floor.as_secs_f64(),
            single_time.as_secs_f64() / floor.as_secs_f64(),
        );
        let point = Point {
            jobs: placed.summary.jobs,
            json,
            floor,
            bytes,
            time,
        };
        Ok((point, placed))
    };
    let (real, real_plan) = measure("1x (real)", &tarball, &week1)?;
    // The growth is measured between corpora written alike (the real one re-packed, and
    // copies of it), so that the tarball's encoding does not count as growth. The middle
    // point tells growth that only shows between the ends (a working set leaving the
    // caches) from growth at every step (a super-linear algorithm).
    let synthetic = |copies: usize, label: &str| -> Result<Point> {
        let (packed, volumes) = synthesize(&c, copies, tmp.path())?;
        Ok(measure(label, &packed, &volumes)?.0)
    };
    let one = synthetic(1, "1x (real, re-packed like the synthetic ones)")?;
    let two = synthetic(2, "2x (synthetic)")?;
    let five = synthetic(5, "5x (synthetic)")?;
    let (read, loaded) = best_of(RUNS, || {
        Ok(dispatcher_formats::load(
            &InputPaths {
                release: tarball.clone(),
                clusters: Some(clusters.clone()),
                volumes: Some(week1.clone()),
                ..InputPaths::default()
            },
            &|| {},
        )?)
    })?;
    let (place, placed) = best_of(RUNS, || {
        dispatcher_core::run(&loaded.inputs(), &balanced).map_err(|e| anyhow::anyhow!("{e}"))
    })?;
    let (write, _) = best_of(RUNS, || Ok(placed.to_json()))?;
    let share = |d: Duration| d.as_secs_f64() / (read + place + write).as_secs_f64() * 100.0;
    println!(
        "\nWhere the 1x time goes: read and parse {:.0} ms ({:.0}%), place {:.0} ms ({:.0}%), serialise {:.0} ms ({:.0}%).",
        read.as_secs_f64() * 1e3,
        share(read),
        place.as_secs_f64() * 1e3,
        share(place),
        write.as_secs_f64() * 1e3,
        share(write),
    );
    let job_ratio = five.jobs as f64 / one.jobs as f64;
    let cost_ratio = five.time.as_secs_f64() / one.time.as_secs_f64();
    let floor_ratio = five.floor.as_secs_f64() / one.floor.as_secs_f64();
    println!(
        "Growth (re-packed 1x to 5x): {job_ratio:.2}x the jobs cost {cost_ratio:.2}x the time ({:.2}x per job; 1.00 is linear), while untarring {:.2}x the bytes cost {floor_ratio:.2}x. Plan JSON: {:.1} MB for the real corpus.",
        cost_ratio / job_ratio,
        five.bytes as f64 / one.bytes as f64,
        real.json as f64 / 1e6
    );
    let per_job = |a: &Point, b: &Point| {
        (b.time.as_secs_f64() / b.jobs as f64) / (a.time.as_secs_f64() / a.jobs as f64)
    };
    let per_byte = |a: &Point, b: &Point| {
        (b.floor.as_secs_f64() / b.bytes as f64) / (a.floor.as_secs_f64() / a.bytes as f64)
    };
    println!(
        "Per job, 1x to 2x: {:.2}x; 2x to 5x: {:.2}x (floor per byte: {:.2}x and {:.2}x).\n",
        per_job(&one, &two),
        per_job(&two, &five),
        per_byte(&one, &two),
        per_byte(&two, &five),
    );

    println!(
        "### Balance with week-1 volumes (max relative deviation of a balanced cluster from its capacity target)\n"
    );
    println!("| strategy | max deviation | fractional optimum | gap |");
    println!("|---|---:|---:|---:|");
    let classic = settings(Strategy::Classic);
    let (_, (c1, _)) = best_of(1, || plan(&tarball, &clusters, &week1, None, &classic))?;
    for (name, p) in [("balanced", &real_plan), ("classic", &c1)] {
        println!(
            "| {name} | {} | {} | {:.2} points |",
            pct(p.summary.max_deviation),
            pct(p.summary.fractional_optimum_deviation),
            (p.summary.max_deviation - p.summary.fractional_optimum_deviation) * 100.0
        );
    }

    println!("\n### Churn: week-2 volumes planned with the week-1 plan as previous\n");
    println!("| strategy | moved jobs | moved demand | of total | forced | max deviation after |");
    println!("|---|---:|---:|---:|---:|---:|");
    let no_hysteresis = Settings {
        hysteresis_percent: 0.0,
        ..settings(Strategy::Balanced)
    };
    for (name, first, s) in [
        (
            "balanced (10% hysteresis, 10% budget)",
            &real_plan,
            &balanced,
        ),
        (
            "balanced (0% hysteresis, 10% budget)",
            &real_plan,
            &no_hysteresis,
        ),
        ("classic", &c1, &classic),
    ] {
        let prev = tmp.path().join("previous.json");
        std::fs::write(&prev, first.to_json())?;
        let (_, (p2, _)) = best_of(1, || plan(&tarball, &clusters, &week2, Some(&prev), s))?;
        let m = &p2.summary;
        println!(
            "| {name} | {} | {:.0} | {} | {} | {} |",
            m.moved_jobs,
            m.moved_demand,
            pct(m.moved_demand / m.total_demand),
            m.forced_moved_jobs,
            pct(m.max_deviation)
        );
    }
    Ok(())
}
