//! The fast job-file reader against the YAML library, on generated files in the shapes Prow
//! job files take: every answer of the fast path must be the library's, and on canonical
//! files (what ci-operator-prowgen writes) the fast path must answer at all.

use dispatcher_formats::jobs::{parse_job_file_fast_only, parse_job_file_full};
use dispatcher_formats::parse_job_file;
use proptest::prelude::*;

/// How a scalar is written.
#[derive(Debug, Clone)]
enum Style {
    Plain,
    Single,
    Double,
    /// Plain with a trailing comment.
    Commented,
}

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![
        4 => Just(Style::Plain),
        1 => Just(Style::Single),
        1 => Just(Style::Double),
        1 => Just(Style::Commented),
    ]
}

/// A value in a place the rules never read: always valid YAML there, since the fast path
/// does not look at it (errors in such places are what `Parse::Full` is for).
fn unread_scalar(text: &str, style: &Style) -> String {
    if text == "a: b" {
        scalar(text, &Style::Double)
    } else {
        scalar(text, style)
    }
}

fn scalar(text: &str, style: &Style) -> String {
    match style {
        Style::Plain => text.to_owned(),
        Style::Single => format!("'{}'", text.replace('\'', "''")),
        Style::Double => format!("\"{text}\""),
        Style::Commented => format!("{text} # note"),
    }
}

/// Values a field may hold: strings of several kinds, and things YAML types or that the
/// fast path leaves to the library.
fn value_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z][a-z0-9-]{0,12}",
        2 => "[a-z]{1,6}[:/.][a-z0-9.-]{1,8}",
        1 => Just("true".to_owned()),
        1 => Just("123".to_owned()),
        1 => Just("null".to_owned()),
        1 => Just("it's".to_owned()),
        1 => Just("a: b".to_owned()),
        1 => Just("x #y".to_owned()),
    ]
}

#[derive(Debug, Clone)]
struct Field {
    value: String,
    style: Style,
}

fn field() -> impl Strategy<Value = Field> {
    (value_text(), style()).prop_map(|(value, style)| Field { value, style })
}

#[derive(Debug, Clone)]
struct Container {
    image: Option<Field>,
    env: Vec<(String, Field)>,
    /// Skipped entries: args as a block list, a flow list or a block scalar.
    args: u8,
}

#[derive(Debug, Clone)]
struct JobSpec {
    name: Field,
    agent: Option<Field>,
    cluster: Option<Field>,
    labels: Vec<(String, Field)>,
    containers: Vec<Container>,
    /// Order of the job's keys: sorted (as generated) or shuffled.
    shuffle: u64,
    /// Skipped keys around the read ones.
    extras: u8,
}

fn label_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ci-operator.openshift.io/cloud".to_owned()),
        Just("ci-operator.openshift.io/cluster".to_owned()),
        Just("capability/arm64".to_owned()),
        Just("ci.openshift.io/no-builds".to_owned()),
        Just("pj-rehearse.openshift.io/can-be-rehearsed".to_owned()),
        Just("ci.openshift.io/generator".to_owned()),
    ]
}

fn container() -> impl Strategy<Value = Container> {
    (
        proptest::option::of(field()),
        proptest::collection::vec(
            (
                prop_oneof![Just("CLUSTER_TYPE".to_owned()), Just("OTHER".to_owned())],
                field(),
            ),
            0..3,
        ),
        0u8..4,
    )
        .prop_map(|(image, env, args)| Container { image, env, args })
}

fn job() -> impl Strategy<Value = JobSpec> {
    (
        ("pull-ci-[a-z]{1,8}-(vsphere-)?[a-z]{1,6}", style())
            .prop_map(|(value, style)| Field { value, style }),
        proptest::option::of(field()),
        proptest::option::of(field()),
        proptest::collection::vec((label_key(), field()), 0..4),
        proptest::collection::vec(container(), 0..3),
        any::<u64>(),
        0u8..8,
    )
        .prop_map(
            |(name, agent, cluster, labels, containers, shuffle, extras)| JobSpec {
                name,
                agent,
                cluster,
                labels,
                containers,
                shuffle,
                extras,
            },
        )
}

/// How sequences sit under their key: at the key's indentation (Prow's) or deeper.
fn render(jobs: &[JobSpec], section: u8, compact: bool, comments: bool) -> String {
    let dash = |indent: usize| {
        if compact { indent } else { indent + 2 }
    };
    let mut out = String::new();
    if comments {
        out.push_str("# generated\n");
    }
    let list_indent = match section {
        0 => {
            out.push_str("presubmits:\n  org/repo:\n");
            2
        }
        1 => {
            out.push_str("postsubmits:\n  org/repo:\n");
            2
        }
        _ => {
            out.push_str("periodics:\n");
            0
        }
    };
    for j in jobs {
        let d = dash(list_indent);
        let k = d + 2;
        let pad = " ".repeat(k);
        let mut entries: Vec<String> = Vec::new();
        entries.push(format!("name: {}\n", scalar(&j.name.value, &j.name.style)));
        if let Some(a) = &j.agent {
            entries.push(format!("agent: {}\n", scalar(&a.value, &a.style)));
        }
        if let Some(c) = &j.cluster {
            entries.push(format!("cluster: {}\n", scalar(&c.value, &c.style)));
        }
        if !j.labels.is_empty() {
            let mut e = "labels:\n".to_owned();
            let mut seen = std::collections::BTreeSet::new();
            for (key, v) in &j.labels {
                if seen.insert(key) {
                    let v = if dispatcher_core::model::labels::is_read(key) {
                        scalar(&v.value, &v.style)
                    } else {
                        unread_scalar(&v.value, &v.style)
                    };
                    e.push_str(&format!("{pad}  {key}: {v}\n"));
                }
            }
            entries.push(e);
        }
        let mut spec = "spec:\n".to_owned();
        if j.containers.is_empty() {
            spec = "spec: {}\n".to_owned();
        } else {
            spec.push_str(&format!("{pad}  containers:\n"));
            let cd = dash(k + 2);
            for c in &j.containers {
                let ck = " ".repeat(cd + 2);
                let mut first = true;
                let mut line = |text: String| {
                    if first {
                        spec.push_str(&format!("{}- {text}", " ".repeat(cd)));
                        first = false;
                    } else {
                        spec.push_str(&format!("{ck}{text}"));
                    }
                };
                match c.args {
                    0 => line(format!(
                        "args:\n{}- --target=e2e\n{}- \"--x: y\"\n",
                        " ".repeat(dash(cd + 2)),
                        " ".repeat(dash(cd + 2))
                    )),
                    1 => line("args: [--a, --b]\n".to_owned()),
                    2 => line(format!(
                        "command: |\n{ck}  set -e\n{ck}\n{ck}  name: not-a-key\n"
                    )),
                    _ => {}
                }
                if !c.env.is_empty() {
                    let mut e = "env:\n".to_owned();
                    let ed = dash(cd + 2);
                    for (name, v) in &c.env {
                        let v = if name == "CLUSTER_TYPE" {
                            scalar(&v.value, &v.style)
                        } else {
                            unread_scalar(&v.value, &v.style)
                        };
                        e.push_str(&format!(
                            "{}- name: {name}\n{}  value: {v}\n",
                            " ".repeat(ed),
                            " ".repeat(ed),
                        ));
                    }
                    line(e);
                }
                if let Some(i) = &c.image {
                    line(format!("image: {}\n", scalar(&i.value, &i.style)));
                }
                line(format!("resources:\n{ck}  requests:\n{ck}    cpu: 10m\n"));
            }
        }
        entries.push(spec);
        for x in 0..j.extras {
            entries.push(match x % 4 {
                0 => "always_run: true\n".to_owned(),
                1 => format!("branches:\n{}- ^main$\n", " ".repeat(dash(k))),
                2 => "rerun_command: /test e2e # re-run\n".to_owned(),
                _ => format!("decoration_config:\n{pad}  skip_cloning: true\n"),
            });
        }
        if j.shuffle % 3 != 0 {
            let n = entries.len();
            entries.rotate_left((j.shuffle as usize) % n);
        } else {
            entries.sort();
        }
        let mut first = true;
        for e in entries {
            if first {
                out.push_str(&format!("{}- {e}", " ".repeat(d)));
                first = false;
            } else {
                out.push_str(&format!("{pad}{e}"));
            }
            if comments {
                out.push_str(&format!("{pad}# between\n\n"));
            }
        }
    }
    out
}

fn canonical(j: &JobSpec) -> bool {
    // Plain words YAML may read as null, a boolean or a number are not canonical.
    const TYPED: [&str; 11] = [
        "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", "123",
    ];
    let plain_ok = |f: &Field| {
        !matches!(f.style, Style::Plain | Style::Commented)
            || !(TYPED.contains(&f.value.as_str()) || f.value == "a: b")
    };
    let fields = std::iter::once(&j.name)
        .chain(j.agent.iter())
        .chain(j.cluster.iter())
        .chain(j.labels.iter().map(|(_, f)| f))
        .chain(j.containers.iter().flat_map(|c| c.image.iter()))
        .chain(j.containers.iter().flat_map(|c| {
            c.env
                .iter()
                .filter(|(n, _)| n == "CLUSTER_TYPE")
                .map(|(_, f)| f)
        }));
    let mut ok = true;
    for f in fields {
        ok &= plain_ok(f) && !(matches!(f.style, Style::Double) && f.value.contains('"'));
    }
    ok
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_fast_answer_is_the_librarys(
        jobs in proptest::collection::vec(job(), 1..5),
        section in 0u8..3,
        compact: bool,
        comments: bool,
    ) {
        let text = render(&jobs, section, compact, comments);
        let full = parse_job_file_full(text.as_bytes());
        match parse_job_file_fast_only(&text) {
            Some(fast) => prop_assert_eq!(Ok(fast), full, "{}", text),
            None => prop_assert!(
                !jobs.iter().all(canonical) || full.is_err(),
                "a canonical file was left to the library:\n{}", text
            ),
        }
    }
}

#[test]
fn constructs_it_does_not_read_are_left_to_the_library() {
    let cases = [
        "periodics:\n- name: a\n  labels: &l\n    capability/x: x\n- name: b\n  labels: *l\n",
        "periodics:\n- name: a\n  cluster: !!str build01\n",
        "periodics:\n- name: a\n  cluster: >\n    build01\n",
        "periodics:\n- {name: a}\n",
        "periodics:\n- name: a\n  name: b\n",
        "periodics:\n- name: \"a\\u0041\"\n",
        "periodics:\n- name: a\n  cluster: build01\n    continued\n",
        "periodics:\n- name: a\n---\nperiodics:\n- name: b\n",
        "periodics:\n- name: a\n  <<: {cluster: x}\n",
        "presubmits:\n  org/repo:\n  - name: a\n  org/repo:\n  - name: b\n",
        // A lone carriage return is a line break to YAML (found by the fuzzer).
        "periodics:\n- name: a\n  agent: kubernetes\r  cluster: build01\n",
        "periodics:\n- name: a\n  labels:\n    x: y\r    capability/gpu: gpu\n",
        // A byte order mark before a line's indentation, which the library skips (found
        // by the fuzzer: the fast reader saw no container where the library saw one).
        "periodics:\n- name: a\n  spec:\n    containers:\n\u{feff}    - image: ci-operator:latest\n",
        "\u{feff}periodics:\n- name: a\n",
    ];
    for text in cases {
        assert_eq!(parse_job_file_fast_only(text), None, "{text}");
    }
}

#[test]
fn a_byte_order_mark_inside_a_file_reads_as_the_library_reads_it() {
    let text = "periodics:\n- name: a\n  spec:\n    containers:\n\u{feff}    - image: ci-operator:latest\n";
    assert_eq!(parse_job_file_fast_only(text), None, "left to the library");
    let jobs = parse_job_file(text.as_bytes()).expect("the library reads it");
    assert_eq!(jobs[0].containers.len(), 1, "the container is seen");
}
