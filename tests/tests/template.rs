//! What `cfn-lint` and checkov do not check in `template.yaml`: that the schedules are valid
//! EventBridge expressions (cfn-lint accepts `cron(0 25 ? * SUN *)` and, in SAM events, even
//! five-field crons), that the weekly run fires on Sunday 07:00 UTC, and that the routes,
//! timeouts and binaries match what the functions are.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, like the tests"
)]

use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use yaml_serde::Value;

fn template() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    yaml_serde::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn resource<'a>(t: &'a Value, name: &str) -> &'a Value {
    t.get("Resources")
        .and_then(|r| r.get(name))
        .unwrap_or_else(|| panic!("template.yaml has no resource {name}"))
}

fn events(function: &Value) -> Vec<(String, &Value)> {
    function
        .get("Properties")
        .and_then(|p| p.get("Events"))
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_owned(), v))
                .collect()
        })
        .unwrap_or_default()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

fn int_at(v: &Value, path: &[&str]) -> Option<i64> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_i64()
}

/// An EventBridge rule's `cron(...)`: six fields (minutes hours day-of-month month
/// day-of-week year), `?` in exactly one of the two day fields, every value in range
/// (day-of-week 1-7 = SUN-SAT). The cron crate shares EventBridge's (Quartz's) field
/// meanings, so it checks ranges and computes fire times once a seconds field is prepended.
/// `L`, `W` and `#` are valid in EventBridge but not supported here: stricter than AWS.
fn eventbridge_cron(expr: &str) -> Result<cron::Schedule, String> {
    let inner = expr
        .strip_prefix("cron(")
        .and_then(|e| e.strip_suffix(')'))
        .ok_or_else(|| format!("{expr}: not cron(...)"))?;
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!(
            "{expr}: {} fields, EventBridge needs 6",
            fields.len()
        ));
    }
    match (fields[2] == "?", fields[4] == "?") {
        (true, false) | (false, true) => {}
        _ => {
            return Err(format!(
                "{expr}: exactly one of day-of-month and day-of-week must be ?"
            ));
        }
    }
    if fields.iter().any(|f| f.contains(['L', 'W', '#'])) {
        return Err(format!("{expr}: L, W and # are not checked here"));
    }
    cron::Schedule::from_str(&format!("0 {inner}")).map_err(|e| format!("{expr}: {e}"))
}

/// `rate(N unit)`: a positive N, the unit singular exactly when N is 1.
fn eventbridge_rate(expr: &str) -> Result<(), String> {
    let inner = expr
        .strip_prefix("rate(")
        .and_then(|e| e.strip_suffix(')'))
        .ok_or_else(|| format!("{expr}: not rate(...)"))?;
    let (n, unit) = inner
        .split_once(' ')
        .ok_or_else(|| format!("{expr}: expected rate(N unit)"))?;
    let n: u32 = n
        .parse()
        .map_err(|_| format!("{expr}: {n} is not a count"))?;
    let ok = match n {
        0 => false,
        1 => ["minute", "hour", "day"].contains(&unit),
        _ => ["minutes", "hours", "days"].contains(&unit),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{expr}: bad count or unit"))
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn the_checker_rejects_what_eventbridge_rejects() {
    // The reference's table of expressions cfn-lint lets through.
    for bad in [
        "cron(0 7 * * SUN *)",
        "cron(0 7 * * 0)",
        "cron(0 7 ? * SUN)",
        "cron(0 25 ? * SUN *)",
        "cron(0 7 ? * 8 *)",
        "cron(60 7 ? * SUN *)",
        "cron(0 7 32 * ? *)",
        "cron(0 7 ? 13 SUN *)",
        "cron(0 7 ? * ? *)",
        "0 7 ? * SUN *",
    ] {
        assert!(eventbridge_cron(bad).is_err(), "{bad} accepted");
    }
    for good in [
        "cron(0 7 ? * SUN *)",
        "cron(0 7 ? * 1 *)",
        "cron(15 10 * * ? *)",
        "cron(0/15 * ? * MON-FRI *)",
    ] {
        eventbridge_cron(good).unwrap();
    }
    for bad in [
        "rate(0 minutes)",
        "rate(1 hours)",
        "rate(5 minute)",
        "rate(5)",
    ] {
        assert!(eventbridge_rate(bad).is_err(), "{bad} accepted");
    }
    eventbridge_rate("rate(1 hour)").unwrap();
}

#[test]
fn the_weekly_recompute_fires_on_sunday_at_seven_utc() {
    let t = template();
    let recompute = resource(&t, "RecomputeFunction");
    let schedules: Vec<(String, &str)> = events(recompute)
        .into_iter()
        .filter(|(_, e)| str_at(e, &["Type"]) == Some("Schedule"))
        .map(|(name, e)| (name, str_at(e, &["Properties", "Schedule"]).unwrap()))
        .collect();
    let crons: Vec<&(String, &str)> = schedules
        .iter()
        .filter(|(_, s)| s.starts_with("cron("))
        .collect();
    assert_eq!(crons.len(), 1, "one weekly cron: {schedules:?}");
    let (name, expr) = crons[0];
    let weekly = eventbridge_cron(expr).unwrap();
    let weekly_event = events(recompute)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap()
        .1;
    // No Input: the function receives EventBridge's envelope, the weekly full run.
    assert!(
        weekly_event
            .get("Properties")
            .unwrap()
            .get("Input")
            .is_none()
    );

    // From a Tuesday, then from the fire time itself, then across a month end.
    let mut fires = weekly.after(&at("2026-11-24T01:00:00Z")).take(3);
    let first = fires.next().unwrap();
    assert_eq!(first, at("2026-11-29T07:00:00Z"));
    assert_eq!(fires.next().unwrap(), at("2026-12-06T07:00:00Z"));
    for fire in weekly.after(&at("2027-02-25T12:00:00Z")).take(10) {
        assert_eq!(fire.weekday(), Weekday::Sun, "{fire}");
        assert_eq!((fire.hour(), fire.minute(), fire.second()), (7, 0, 0));
    }
    let next = weekly.after(&first).next().unwrap();
    assert_eq!((next - first).num_days(), 7);

    // Every other schedule is a valid rate.
    for (name, expr) in &schedules {
        if !expr.starts_with("cron(") {
            eventbridge_rate(expr).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn routes_timeouts_and_binaries_match_the_functions() {
    let t = template();
    let route = |function: &str, path: &str| -> (String, i64) {
        let f = resource(&t, function);
        let (_, e) = events(f)
            .into_iter()
            .find(|(_, e)| str_at(e, &["Properties", "Path"]) == Some(path))
            .unwrap_or_else(|| panic!("{function} has no route {path}"));
        assert_eq!(str_at(e, &["Type"]), Some("HttpApi"));
        (
            str_at(e, &["Properties", "Method"]).unwrap().to_owned(),
            int_at(e, &["Properties", "TimeoutInMillis"]).unwrap(),
        )
    };
    // The lookup takes every method so that the contract's 405 is ours, not a gateway 404.
    assert_eq!(route("LookupFunction", "/").0, "ANY");
    let (method, webhook_ms) = route("WebhookFunction", "/github");
    assert_eq!(method, "POST");
    assert!(webhook_ms < 10_000, "GitHub gives up after 10 s");

    let timeout = |f: &str| int_at(resource(&t, f), &["Properties", "Timeout"]).unwrap();
    assert!(timeout("LookupFunction") <= 10);
    assert!(timeout("WebhookFunction") * 1000 <= webhook_ms);
    assert!((300..=900).contains(&timeout("RecomputeFunction")));

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for (function, binary) in [
        ("LookupFunction", "lookup"),
        ("WebhookFunction", "webhook"),
        ("RecomputeFunction", "recompute"),
    ] {
        let f = resource(&t, function);
        assert_eq!(
            str_at(f, &["Metadata", "BuildMethod"]),
            Some("rust-cargolambda")
        );
        assert_eq!(
            str_at(f, &["Metadata", "BuildProperties", "Binary"]),
            Some(binary)
        );
        let manifest =
            std::fs::read_to_string(root.join("functions").join(binary).join("Cargo.toml"))
                .unwrap_or_else(|e| panic!("{function}: functions/{binary}: {e}"));
        assert!(manifest.contains(&format!("name = \"{binary}\"")));
    }
    assert_eq!(
        str_at(&t, &["Globals", "Function", "LoggingConfig", "LogFormat"]),
        Some("JSON")
    );
    assert_eq!(
        str_at(&t, &["Globals", "Function", "Runtime"]),
        Some("provided.al2023")
    );
}

#[test]
fn parameter_files_set_what_the_template_declares() {
    let t = template();
    let declared = t.get("Parameters").and_then(Value::as_mapping).unwrap();
    let required: Vec<&str> = declared
        .iter()
        .filter(|(_, p)| p.get("Default").is_none())
        .map(|(k, _)| k.as_str().unwrap())
        .collect();
    assert!(required.contains(&"PrometheusUrl"));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/parameters");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let set: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let keys: Vec<&str> = set
            .iter()
            .map(|p| p["ParameterKey"].as_str().unwrap())
            .collect();
        for k in &keys {
            let p = declared
                .get(*k)
                .unwrap_or_else(|| panic!("{}: {k} is not a template parameter", path.display()));
            let value = set.iter().find(|e| e["ParameterKey"] == *k).unwrap()["ParameterValue"]
                .as_str()
                .unwrap();
            if let Some(allowed) = p.get("AllowedValues").and_then(Value::as_sequence) {
                assert!(
                    allowed.iter().any(|a| a.as_str() == Some(value)),
                    "{}: {k}={value} is not allowed",
                    path.display()
                );
            }
        }
        for r in &required {
            assert!(keys.contains(r), "{}: {r} is required", path.display());
        }
        files += 1;
    }
    assert!(files >= 1);
}
