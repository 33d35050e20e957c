//! Reading what the function was invoked with.
use super::*;

#[test]
fn schedule_envelopes_and_bare_inputs_are_weekly_runs() {
    let envelope = serde_json::json!({
        "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "1", "time": "2026-11-22T07:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:1:rule/weekly"], "detail": {}
    });
    let weekly = Invocation::Recompute(RecomputeRequest::weekly());
    assert_eq!(parse_invocation(&envelope).unwrap(), weekly);
    assert_eq!(parse_invocation(&serde_json::json!({})).unwrap(), weekly);
    let push = serde_json::json!({"trigger": "push", "mode": "delta", "deliveryId": "d-1", "after": "abc"});
    let Ok(Invocation::Recompute(r)) = parse_invocation(&push) else {
        panic!("a push hand-off is a recompute");
    };
    assert_eq!(
        (
            r.trigger,
            r.mode,
            r.delivery_id.as_deref(),
            r.after.as_deref()
        ),
        (Trigger::Push, Mode::Delta, Some("d-1"), Some("abc"))
    );
    assert!(parse_invocation(&serde_json::json!({"trigger": "sometimes"})).is_err());
}

#[test]
fn the_freshness_check_is_not_a_recompute() {
    assert_eq!(
        parse_invocation(&serde_json::json!({"action": "check"})).unwrap(),
        Invocation::FreshnessCheck
    );
    let e = parse_invocation(&serde_json::json!({"action": "dance"})).unwrap_err();
    assert!(e.to_string().contains("dance"), "{e}");
}
