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

/// One EMF document: `metrics` under [`NAMESPACE`], with the function's name as the only
/// dimension (the same dimension name AWS/Lambda metrics use).
pub fn emf(function: &str, at_millis: i64, metrics: &[(&str, f64, &str)]) -> String {
    let mut doc = Map::new();
    doc.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": at_millis,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": metrics
                    .iter()
                    .map(|(name, _, unit)| json!({"Name": name, "Unit": unit}))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    doc.insert("FunctionName".to_owned(), Value::from(function));
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
}
