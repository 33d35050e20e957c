//! DynamoDB may accept a batch only in part and name the rest `UnprocessedItems` (or
//! `UnprocessedKeys`). No emulator does that, so the SDK's own test utilities answer here:
//! the adapter must resend exactly what was left, back off, and give up after its retries.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, WriteRequest};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use dispatcher_app::model::JobItem;
use dispatcher_app::store::{AssignmentStore, StoreError};
use dispatcher_aws::DynamoTable;

const TABLE: &str = "dispatcher";

fn items(n: usize) -> Vec<JobItem> {
    (0..n)
        .map(|i| JobItem {
            job: format!("job-{i:02}"),
            cluster: Some("build01".to_owned()),
            generation: 1,
            rule: "label-pin".to_owned(),
            previous: None,
            history: vec![],
        })
        .collect()
}

fn requests_in(input: &BatchWriteItemInput) -> Vec<WriteRequest> {
    input
        .request_items()
        .and_then(|m| m.get(TABLE))
        .cloned()
        .unwrap_or_default()
}

fn job_of(r: &WriteRequest) -> String {
    match r.put_request().and_then(|p| p.item().get("pk")) {
        Some(AttributeValue::S(pk)) => pk.clone(),
        _ => String::new(),
    }
}

/// Answers the first `partial` `BatchWriteItem` calls by leaving (up to) their last `leave`
/// items unprocessed, accepts the rest, and records what each call sent.
struct Partial {
    calls: Arc<AtomicUsize>,
    sent: Arc<std::sync::Mutex<Vec<Vec<String>>>>,
}

fn partially_accepting(partial: usize, leave: usize) -> (Client, Partial) {
    let calls = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    // The answer cannot see the request, so the leftovers come from what the matcher
    // recorded of it.
    let (c2, s2, s3) = (calls.clone(), sent.clone(), sent.clone());
    let rule = mock!(Client::batch_write_item)
        .match_requests(move |input| {
            let jobs: Vec<String> = requests_in(input).iter().map(job_of).collect();
            s3.lock().expect("the record").push(jobs);
            true
        })
        .then_output(move || {
            let n = c2.fetch_add(1, Ordering::SeqCst);
            let last: Vec<String> = s2
                .lock()
                .expect("the record")
                .last()
                .cloned()
                .unwrap_or_default();
            let k = leave.min(last.len());
            if n >= partial || k == 0 {
                return BatchWriteItemOutput::builder().build();
            }
            let left: Vec<WriteRequest> = last[last.len() - k..]
                .iter()
                .map(|pk| {
                    WriteRequest::builder()
                        .put_request(
                            aws_sdk_dynamodb::types::PutRequest::builder()
                                .item("pk", AttributeValue::S(pk.clone()))
                                .build()
                                .expect("a put request with an item"),
                        )
                        .build()
                })
                .collect();
            BatchWriteItemOutput::builder()
                .unprocessed_items(TABLE, left)
                .build()
        });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
    (client, Partial { calls, sent })
}

#[tokio::test(start_paused = true)]
async fn unprocessed_items_are_resent_until_accepted() {
    // 30 items: a batch of 25 and one of 5. The first two calls leave 3 items each.
    let (client, partial) = partially_accepting(2, 3);
    let table = DynamoTable::new(client, TABLE);
    let stats = table.write_jobs(&items(30)).await.expect("written");
    assert_eq!(stats.items, 30);
    assert_eq!(stats.retries, 2, "{stats:?}");
    assert_eq!(stats.requests, 4, "25, its 3 left twice, then 5: {stats:?}");
    let sent = partial.sent.lock().unwrap().clone();
    assert_eq!(partial.calls.load(Ordering::SeqCst), 4);
    assert_eq!(sent[0].len(), 25);
    // Each retry sends exactly what was left, no more.
    assert_eq!(sent[1], sent[0][22..].to_vec());
    assert_eq!(sent[2], sent[1]);
    assert_eq!(sent[3].len(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_batch_that_is_never_accepted_fails_retryably_after_the_retries() {
    let (client, partial) = partially_accepting(usize::MAX, 1);
    let table = DynamoTable::new(client, TABLE);
    let started = tokio::time::Instant::now();
    let err = table.write_jobs(&items(2)).await.expect_err("gives up");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(
        dispatcher_core::chain(&err).contains("still unprocessed"),
        "{err}"
    );
    // The first call and 8 retries, with backoff between them (on the paused clock).
    assert_eq!(partial.calls.load(Ordering::SeqCst), 9);
    assert!(started.elapsed() >= std::time::Duration::from_millis(50 * (2 + 4 + 8 + 16)));
}

#[tokio::test(start_paused = true)]
async fn unprocessed_keys_of_a_batch_read_are_read_again() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let item = |pk: &str| {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
            (
                "job".to_owned(),
                AttributeValue::S(pk.trim_start_matches("job#").to_owned()),
            ),
            ("generation".to_owned(), AttributeValue::N("1".to_owned())),
        ])
    };
    let rule = mock!(Client::batch_get_item).then_output(move || {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            // One item now, the other left for later.
            BatchGetItemOutput::builder()
                .responses(TABLE, vec![item("job#a")])
                .unprocessed_keys(
                    TABLE,
                    KeysAndAttributes::builder()
                        .keys(HashMap::from([(
                            "pk".to_owned(),
                            AttributeValue::S("job#b".to_owned()),
                        )]))
                        .build()
                        .unwrap(),
                )
                .build()
        } else {
            BatchGetItemOutput::builder()
                .responses(TABLE, vec![item("job#b")])
                .build()
        }
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
    let table = DynamoTable::new(client, TABLE);
    let mut got: Vec<String> = table
        .jobs(&["a".to_owned(), "b".to_owned()])
        .await
        .expect("read")
        .into_iter()
        .map(|i| i.job)
        .collect();
    got.sort();
    assert_eq!(got, vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
