//! Custom metrics as CloudWatch embedded metric format (EMF) lines on stdout: Lambda ships
//! stdout to CloudWatch Logs, which extracts the metrics; no PutMetricData call, no extra
//! permission, no latency. The alarms in `template.yaml` read these names.

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every metric here; the alarms name it too.
pub const NAMESPACE: &str = "ProwDispatcher";
/// A successful recompute (1 per success).
pub const RECOMPUTE_SUCCEEDED: &str = "RecomputeSucceeded";
/// Assignments a successful recompute changed.
pub const CHANGED_ASSIGNMENTS: &str = "ChangedAssignments";
/// A recompute that failed for good (bad inputs): not retried, so not a Lambda error.
pub const RECOMPUTE_FAILED: &str = "RecomputeFailed";
/// Hours since a recompute last succeeded: 0 from a success, the age from the scheduled check.
pub const HOURS_SINCE_SUCCESS: &str = "HoursSinceSuccess";

/// A sweep ran (1 per sweep): the "sweep did not run" alarm reads it.
pub const SWEEP_RAN: &str = "SweepRan";
/// Overrides active after a sweep.
pub const OVERRIDES_ACTIVE: &str = "OverridesActive";
/// Overrides waiting for approvals after a sweep.
pub const OVERRIDES_PENDING: &str = "OverridesPending";
/// Overrides whose publish failed, as the book keeps them: the "override failed to apply"
/// alarm reads it.
pub const OVERRIDES_FAILED: &str = "OverridesFailed";

/// Lookups answered, by `Source` (generation, override, ephemeral, not-found) and by
/// `Cluster`, summed over a minute per instance.
pub const ANSWERS: &str = "Answers";
/// The generation a lookup instance serves.
pub const GENERATION_SERVED: &str = "GenerationServed";

/// One EMF document: `metrics` under [`NAMESPACE`], with the function's name as the only
/// dimension (the same dimension name AWS/Lambda metrics use).
pub fn emf(function: &str, at_millis: i64, metrics: &[(&str, f64, &str)]) -> String {
    emf_by(function, None, at_millis, metrics)
}

/// One EMF document with a second dimension beside the function's name.
fn emf_by(
    function: &str,
    dimension: Option<(&str, &str)>,
    at_millis: i64,
    metrics: &[(&str, f64, &str)],
) -> String {
    let mut names = vec!["FunctionName"];
    names.extend(dimension.map(|(name, _)| name));
    let mut doc = Map::new();
    doc.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": at_millis,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [names],
                "Metrics": metrics
                    .iter()
                    .map(|(name, _, unit)| json!({"Name": name, "Unit": unit}))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    doc.insert("FunctionName".to_owned(), Value::from(function));
    if let Some((name, value)) = dimension {
        doc.insert(name.to_owned(), Value::from(value));
    }
    for (name, value, _) in metrics {
        doc.insert((*name).to_owned(), json!(value));
    }
    Value::Object(doc).to_string()
}

/// Writes the document as its own stdout line (the format requires one JSON object per log
/// event, so it must not go through the tracing formatter).
pub fn put(function: &str, at_millis: i64, metrics: &[(&str, f64, &str)]) {
    println!("{}", emf(function, at_millis, metrics));
}

/// The lookup's answers, counted in memory and written as EMF at most once a minute per
/// instance (one line per request would cost more in logs than the lookup itself).
pub struct EmfAnswers {
    function: String,
    tally: std::sync::Mutex<Tally>,
}

#[derive(Default)]
struct Tally {
    since: i64,
    generation: u64,
    by_source: std::collections::BTreeMap<&'static str, u64>,
    by_cluster: std::collections::BTreeMap<String, u64>,
}

/// How often the counts are written, in seconds.
const FLUSH_EVERY: i64 = 60;

impl EmfAnswers {
    /// Counts for `function`.
    pub fn new(function: impl Into<String>) -> Self {
        Self {
            function: function.into(),
            tally: std::sync::Mutex::default(),
        }
    }

    /// The EMF lines of the counts since the last flush, if a minute passed by `now`; the
    /// counts start again (what an answer writes, for the tests to read).
    #[cfg(test)]
    fn due(&self, now: i64) -> Vec<String> {
        let done = match self.tally.lock() {
            Ok(mut t) => t.take_due(now),
            Err(_) => None,
        };
        done.map_or_else(Vec::new, |d| self.lines(&d, now))
    }

    /// The EMF lines of a minute's counts, written at `now`.
    fn lines(&self, done: &Tally, now: i64) -> Vec<String> {
        let at = now * 1000;
        let mut lines = vec![emf(
            &self.function,
            at,
            &[(GENERATION_SERVED, done.generation as f64, "None")],
        )];
        for (source, n) in &done.by_source {
            lines.push(emf_by(
                &self.function,
                Some(("Source", source)),
                at,
                &[(ANSWERS, *n as f64, "Count")],
            ));
        }
        for (cluster, n) in &done.by_cluster {
            lines.push(emf_by(
                &self.function,
                Some(("Cluster", cluster)),
                at,
                &[(ANSWERS, *n as f64, "Count")],
            ));
        }
        lines
    }
}

impl Tally {
    /// The counts so far, if a minute passed by `now`; the counts start again (the
    /// generation served carries over).
    fn take_due(&mut self, now: i64) -> Option<Tally> {
        if self.since == 0 {
            self.since = now;
        }
        if now - self.since < FLUSH_EVERY {
            return None;
        }
        let done = std::mem::take(self);
        self.since = now;
        self.generation = done.generation;
        Some(done)
    }
}

impl dispatcher_app::ports::AnswerMetrics for EmfAnswers {
    fn answered(&self, source: &'static str, cluster: Option<&str>, generation: u64, now: i64) {
        // One lock per answer: count, and take the minute's counts if it is over; the lines
        // are formatted and written after the lock is released.
        let done = match self.tally.lock() {
            Ok(mut t) => {
                *t.by_source.entry(source).or_default() += 1;
                if let Some(c) = cluster {
                    match t.by_cluster.get_mut(c) {
                        Some(n) => *n += 1,
                        None => {
                            t.by_cluster.insert(c.to_owned(), 1);
                        }
                    }
                }
                t.generation = generation;
                t.take_due(now)
            }
            Err(_) => None,
        };
        for line in done.map_or_else(Vec::new, |d| self.lines(&d, now)) {
            println!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_follow_the_embedded_metric_format() {
        let line = emf(
            "dispatcher-recompute",
            1_700_000_000_000,
            &[
                (RECOMPUTE_SUCCEEDED, 1.0, "Count"),
                (HOURS_SINCE_SUCCESS, 0.0, "None"),
            ],
        );
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["FunctionName"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "RecomputeSucceeded", "Unit": "Count"}, {"Name": "HoursSinceSuccess", "Unit": "None"}])
        );
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        // Every metric and dimension named in the directive has a top-level value.
        assert_eq!(v["FunctionName"], "dispatcher-recompute");
        assert_eq!(v["RecomputeSucceeded"], 1.0);
        assert_eq!(v["HoursSinceSuccess"], 0.0);
    }

    #[test]
    fn answers_are_summed_and_written_once_a_minute_by_source_and_cluster() {
        use dispatcher_app::ports::AnswerMetrics as _;
        let m = EmfAnswers::new("dispatcher-lookup");
        m.answered("generation", Some("build01"), 7, 1_000);
        m.answered("override", Some("build02"), 7, 1_010);
        m.answered("generation", Some("build01"), 7, 1_020);
        m.answered("not-found", None, 7, 1_030);
        assert!(m.due(1_059).is_empty(), "not a minute yet");
        let lines: Vec<Value> = m
            .due(1_060)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["GenerationServed"], 7.0);
        let count = |dim: &str, value: &str| {
            lines
                .iter()
                .find(|l| l[dim] == value)
                .map(|l| l["Answers"].as_f64().unwrap())
        };
        assert_eq!(count("Source", "generation"), Some(2.0));
        assert_eq!(count("Source", "override"), Some(1.0));
        assert_eq!(count("Source", "not-found"), Some(1.0));
        assert_eq!(count("Cluster", "build01"), Some(2.0));
        assert_eq!(
            lines[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["FunctionName", "Source"]])
        );
        assert!(m.due(1_070).is_empty(), "counted again from zero");
    }
}
