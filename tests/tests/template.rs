//! What `cfn-lint` and checkov do not check in `template.yaml`: that the schedules are valid
//! EventBridge expressions (cfn-lint accepts `cron(0 25 ? * SUN *)` and, in SAM events, even
//! five-field crons), that the weekly run fires on Sunday 07:00 UTC, that the routes,
//! timeouts and binaries match what the functions are, that the alarms can reach their
//! (encrypted) topic, that old snapshots age into cheaper storage without expiring, and that
//! the narrowed permissions name the keys the code uses.
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

/// The target of a `!Ref`, `None` for anything else (a literal, another intrinsic).
fn ref_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    match path.iter().try_fold(v, |v, k| v.get(*k))? {
        Value::Tagged(t) if t.tag == "Ref" => t.value.as_str(),
        _ => None,
    }
}

/// A string or a list of strings (IAM's `Action`, `Resource`, condition values).
fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::Sequence(s)) => s.iter().filter_map(Value::as_str).collect(),
        Some(v) => v.as_str().into_iter().collect(),
        None => Vec::new(),
    }
}

/// Every resource of a type, by logical id.
fn resources_of<'a>(t: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    t.get("Resources")
        .and_then(Value::as_mapping)
        .unwrap()
        .iter()
        .filter(|(_, r)| str_at(r, &["Type"]) == Some(kind))
        .map(|(k, r)| (k.as_str().unwrap(), r))
        .collect()
}

/// The policy statement `sid` of a function's inline policies.
fn statement<'a>(function: &'a Value, sid: &str) -> &'a Value {
    function
        .get("Properties")
        .and_then(|p| p.get("Policies"))
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("Statement").and_then(Value::as_sequence))
        .flatten()
        .find(|s| str_at(s, &["Sid"]) == Some(sid))
        .unwrap_or_else(|| panic!("no policy statement {sid}"))
}

/// The `dynamodb:LeadingKeys` a statement is restricted to, under `operator`.
fn leading_keys<'a>(statement: &'a Value, operator: &str) -> Vec<&'a str> {
    strings(
        statement
            .get("Condition")
            .and_then(|c| c.get(operator))
            .and_then(|c| c.get("dynamodb:LeadingKeys")),
    )
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
    // No route waits longer than its function may run, nor longer than HTTP APIs allow;
    // Prow's POST / stays fast.
    for (function, path) in [
        ("LookupFunction", "/"),
        ("LookupFunction", "/healthz"),
        ("LookupFunction", "/explain/{job}"),
        ("LookupFunction", "/ui"),
        ("LookupFunction", "/ui/{proxy+}"),
        ("WebhookFunction", "/github"),
        ("ControlFunction", "/control/v1/{proxy+}"),
        ("ControlFunction", "/slack/commands"),
    ] {
        let ms = route(function, path).1;
        assert!(
            ms <= timeout(function) * 1000 && ms <= 30_000,
            "{function} {path}: {ms} ms"
        );
    }
    assert!(route("LookupFunction", "/").1 <= 5000);

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for (function, binary) in [
        ("LookupFunction", "lookup"),
        ("WebhookFunction", "webhook"),
        ("RecomputeFunction", "recompute"),
        ("ControlFunction", "control"),
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

#[test]
fn alarms_can_publish_to_their_encrypted_topic() {
    let t = template();
    // A customer-managed key: the AWS-managed alias/aws/sns does not let CloudWatch in.
    let key_id = ref_at(
        resource(&t, "AlarmTopic"),
        &["Properties", "KmsMasterKeyId"],
    )
    .expect("AlarmTopic's KmsMasterKeyId is a !Ref to the stack's own key");
    let key = resource(&t, key_id);
    assert_eq!(str_at(key, &["Type"]), Some("AWS::KMS::Key"));
    assert_eq!(
        key.get("Properties")
            .and_then(|p| p.get("EnableKeyRotation"))
            .and_then(Value::as_bool),
        Some(true)
    );
    let statements = key
        .get("Properties")
        .and_then(|p| p.get("KeyPolicy"))
        .and_then(|p| p.get("Statement"))
        .and_then(Value::as_sequence)
        .unwrap();
    let allows = |s: &&Value| str_at(s, &["Effect"]) == Some("Allow");
    let cloudwatch = statements
        .iter()
        .filter(allows)
        .find(|s| str_at(s, &["Principal", "Service"]) == Some("cloudwatch.amazonaws.com"))
        .expect("the key policy lets cloudwatch.amazonaws.com use the key");
    let actions = strings(cloudwatch.get("Action"));
    for needed in ["kms:Decrypt", "kms:GenerateDataKey*"] {
        assert!(actions.contains(&needed), "CloudWatch needs {needed}");
    }
    // Without a statement for the account the key would be unmanageable.
    assert!(statements.iter().filter(allows).any(|s| {
        str_at(s, &["Principal", "AWS"])
            .is_some_and(|p| p.ends_with(":iam::${AWS::AccountId}:root"))
            && strings(s.get("Action")) == ["kms:*"]
    }));

    // Every alarm notifies the topic.
    let alarms = resources_of(&t, "AWS::CloudWatch::Alarm");
    assert!(alarms.len() >= 6, "{}", alarms.len());
    for (name, alarm) in &alarms {
        let actions = alarm
            .get("Properties")
            .and_then(|p| p.get("AlarmActions"))
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{name} has no AlarmActions"));
        assert!(
            actions.iter().any(|a| ref_at(a, &[]) == Some("AlarmTopic")),
            "{name} does not notify AlarmTopic"
        );
    }
    // The lookup's own failures, apart from the whole API's 5xx (webhook included).
    let on_function = |metric: &str, function: &str| {
        alarms.iter().any(|(_, a)| {
            let p = a.get("Properties").unwrap();
            str_at(p, &["Namespace"]) == Some("AWS/Lambda")
                && str_at(p, &["MetricName"]) == Some(metric)
                && p.get("Dimensions")
                    .and_then(Value::as_sequence)
                    .is_some_and(|d| {
                        d.iter().any(|d| {
                            str_at(d, &["Name"]) == Some("FunctionName")
                                && ref_at(d, &["Value"]) == Some(function)
                        })
                    })
        })
    };
    assert!(
        on_function("Errors", "LookupFunction"),
        "no alarm on the lookup's Errors"
    );
    assert!(on_function("Errors", "RecomputeFunction"));
    assert!(on_function("Duration", "LookupFunction"));
}

#[test]
fn old_snapshots_move_to_cheaper_storage_and_never_expire() {
    let t = template();
    let rules = resource(&t, "SnapshotBucket")
        .get("Properties")
        .and_then(|p| p.get("LifecycleConfiguration"))
        .and_then(|l| l.get("Rules"))
        .and_then(Value::as_sequence)
        .unwrap();
    // The prefixes the publisher writes (the changes' key is private: generations/<n>/...).
    let snapshot =
        dispatcher_app::publish::snapshot_prefix(&dispatcher_app::publish::plan_digest("{}"));
    assert!(snapshot.starts_with("snapshots/"), "{snapshot}");
    for prefix in ["snapshots/", "generations/"] {
        let rule = rules
            .iter()
            .find(|r| str_at(r, &["Prefix"]) == Some(prefix))
            .unwrap_or_else(|| panic!("no lifecycle rule for {prefix}"));
        assert_eq!(str_at(rule, &["Status"]), Some("Enabled"));
        let transitions: Vec<(&str, i64)> = rule
            .get("Transitions")
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{prefix}: no Transitions"))
            .iter()
            .map(|tr| {
                (
                    str_at(tr, &["StorageClass"]).unwrap(),
                    int_at(tr, &["TransitionInDays"]).unwrap(),
                )
            })
            .collect();
        assert!(!transitions.is_empty());
        let mut last = 0;
        for (class, days) in &transitions {
            // Classes GetObject reads without a restore: a served or rolled-back-to
            // snapshot stays readable however old it is.
            assert!(
                ["STANDARD_IA", "GLACIER_IR", "INTELLIGENT_TIERING"].contains(class),
                "{prefix}: {class} needs a restore before a read"
            );
            // S3's minimum for STANDARD_IA, and an order S3 accepts.
            assert!(
                *days >= 30 && *days > last,
                "{prefix}: {class} after {days} days"
            );
            last = *days;
        }
    }
    // Current versions never expire; noncurrent ones do.
    for rule in rules {
        for expiry in [
            "ExpirationInDays",
            "ExpirationDate",
            "ExpiredObjectDeleteMarker",
        ] {
            assert!(rule.get(expiry).is_none(), "{expiry} in {rule:?}");
        }
    }
    assert!(rules.iter().any(|r| {
        str_at(r, &["Status"]) == Some("Enabled")
            && int_at(r, &["NoncurrentVersionExpiration", "NoncurrentDays"]).is_some()
    }));
}

#[test]
fn narrowed_permissions_name_the_keys_the_code_uses() {
    let t = template();
    use dispatcher_app::keys;
    let lookup = resource(&t, "LookupFunction");
    // Writes: the ephemeral choices and their one counter, under the keys the code uses.
    let choices = format!(
        "{}*",
        keys::remembered(dispatcher_app::records::EPHEMERAL_CHOICE)
    );
    assert_eq!(
        leading_keys(
            statement(lookup, "EphemeralChoices"),
            "ForAllValues:StringLike"
        ),
        [choices.as_str()]
    );
    assert_eq!(
        strings(statement(lookup, "RoundRobinCounter").get("Action")),
        ["dynamodb:UpdateItem"]
    );
    let counter = keys::counter(dispatcher_app::records::ROUND_ROBIN);
    assert_eq!(
        leading_keys(
            statement(lookup, "RoundRobinCounter"),
            "ForAllValues:StringEquals"
        ),
        [counter.as_str()]
    );
    // Reads: the snapshots and the change lists (the pages), never the stored releases.
    assert_eq!(
        strings(statement(lookup, "ReadSnapshots").get("Resource")),
        [
            "${SnapshotBucket.Arn}/snapshots/*",
            "${SnapshotBucket.Arn}/generations/*"
        ]
    );

    let webhook = resource(&t, "WebhookFunction");
    let marker = keys::marker(dispatcher_app::records::INVENTORY_BLOB);
    assert_eq!(
        leading_keys(
            statement(webhook, "ReadInventoryMarker"),
            "ForAllValues:StringEquals"
        ),
        [marker.as_str()]
    );
    let deliveries = format!("{}*", keys::remembered(dispatcher_app::records::DELIVERY));
    assert_eq!(
        leading_keys(
            statement(webhook, "DedupeDeliveries"),
            "ForAllValues:StringLike"
        ),
        [deliveries.as_str()]
    );
    // Its one GitHub call must answer well inside the function's timeout.
    let github = str_at(
        webhook,
        &[
            "Properties",
            "Environment",
            "Variables",
            "DISPATCHER_GITHUB_TIMEOUT",
        ],
    )
    .unwrap();
    let seconds: i64 = github.strip_suffix('s').unwrap().parse().unwrap();
    let function = int_at(webhook, &["Properties", "Timeout"]).unwrap();
    assert!(
        seconds * 2 <= function,
        "{github} against a {function} s function"
    );
}

#[test]
fn the_controls_are_iam_signed_slack_is_not_and_the_sweep_runs_every_minute() {
    let t = template();
    let control = resource(&t, "ControlFunction");
    let auth_of = |path: &str| {
        events(control)
            .into_iter()
            .find(|(_, e)| str_at(e, &["Properties", "Path"]) == Some(path))
            .and_then(|(_, e)| str_at(e, &["Properties", "Auth", "Authorizer"]).map(str::to_owned))
    };
    assert_eq!(auth_of("/control/v1/{proxy+}").as_deref(), Some("AWS_IAM"));
    // Slack signs its requests itself; the function checks the signature.
    assert_eq!(auth_of("/slack/commands"), None);
    assert_eq!(
        t.get("Resources")
            .and_then(|r| r.get("DispatcherApi"))
            .and_then(|a| a.get("Properties"))
            .and_then(|p| p.get("Auth"))
            .and_then(|a| a.get("EnableIamAuthorizer"))
            .and_then(Value::as_bool),
        Some(true)
    );
    let sweep = events(control)
        .into_iter()
        .find(|(name, _)| name == "Sweep")
        .map(|(_, e)| e)
        .expect("a Sweep schedule");
    assert_eq!(
        str_at(sweep, &["Properties", "Schedule"]),
        Some("rate(1 minute)")
    );
    let input: serde_json::Value =
        serde_json::from_str(str_at(sweep, &["Properties", "Input"]).unwrap()).unwrap();
    assert_eq!(input["action"], "sweep");
    // Writes only under the keys the controls and the publish use.
    use dispatcher_app::keys;
    let written = leading_keys(
        statement(control, "PublishAndControl"),
        "ForAllValues:StringLike",
    );
    let book = keys::marker(dispatcher_app::control::book::BOOK);
    for key in [
        keys::POINTER.to_owned(),
        keys::job("some-job"),
        keys::generation(7),
        book,
        keys::remembered(&format!("{}p", dispatcher_app::control::PLAN)),
        keys::remembered(&format!("{}k", dispatcher_app::control::IDEMPOTENCY)),
    ] {
        assert!(
            written
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => key.starts_with(prefix),
                    None => key == *pattern,
                }),
            "{key} is not writable by {written:?}"
        );
    }
    assert!(
        !written
            .iter()
            .any(|p| p.starts_with("mem#delivery") || p.starts_with("marker#inventory"))
    );
    // A publish puts the snapshot and the change list (`publish::snapshot`'s keys), never
    // a release.
    assert_eq!(
        strings(statement(control, "WriteSnapshots").get("Resource")),
        [
            "${SnapshotBucket.Arn}/snapshots/*",
            "${SnapshotBucket.Arn}/generations/*"
        ]
    );
    // The bound the write controls check needs Prow's cache interval from the operator.
    assert_eq!(
        ref_at(
            control,
            &[
                "Properties",
                "Environment",
                "Variables",
                "DISPATCHER_PROW_CACHE_TTL"
            ]
        ),
        Some("ProwCacheTtl")
    );
    let lookup_refresh = |f: &str| {
        str_at(
            resource(&t, f),
            &[
                "Properties",
                "Environment",
                "Variables",
                "DISPATCHER_LOOKUP_REFRESH",
            ],
        )
        .map(str::to_owned)
    };
    assert_eq!(
        lookup_refresh("ControlFunction"),
        lookup_refresh("LookupFunction")
    );
}
