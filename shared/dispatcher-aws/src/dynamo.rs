//! The table role on DynamoDB: one table, partition key `pk`, TTL attribute `expires_at`.

use std::collections::HashMap;
use std::time::Duration;

use crate::sdk_error::{self, Codes};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, PutRequest, ReturnValue, TransactWriteItem,
    WriteRequest,
};
use dispatcher_app::keys;
use dispatcher_app::model::{GenerationRecord, JobItem, Pending, Pointer};
use dispatcher_app::store::{AssignmentStore, Claim, StoreError, WriteStats};

use crate::convert::{item, to_attr, typed};

/// BatchWriteItem takes at most 25 requests, BatchGetItem at most 100 keys.
const WRITE_BATCH: usize = 25;
const READ_BATCH: usize = 100;
/// Unprocessed items are retried with exponential backoff, this many times.
const RETRIES: u32 = 8;

fn key(pk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), AttributeValue::S(pk.to_owned()))])
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// DynamoDB's codes for failures that may pass, and for a failed condition.
const CODES: Codes = Codes {
    retryable: &[
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
    ],
    conflict: &["ConditionalCheckFailedException"],
};

/// A DynamoDB failure in the store's terms.
pub(crate) fn classify<E, R>(op: &str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    sdk_error::classify(op, e, &CODES)
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64 << attempt.min(6))
}

/// The table role on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: Client,
    table: String,
}

impl DynamoTable {
    /// The store over `table`, which must already exist with the template's key schema.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, pk: &str) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk)))
            // Readers resolve items against the pointer: both must be current.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        out.item.map(|i| typed(pk, &i)).transpose()
    }

    async fn put<T: serde::Serialize>(&self, pk: &str, value: &T) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(pk, value)?))
            .send()
            .await
            .map_err(|e| classify("PutItem", e))?;
        Ok(())
    }

    /// Sends write requests in batches, retrying what DynamoDB leaves unprocessed.
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<WriteStats, StoreError> {
        let mut stats = WriteStats::default();
        for chunk in requests.chunks(WRITE_BATCH) {
            let mut pending = chunk.to_vec();
            stats.items += pending.len();
            let mut attempt = 0;
            loop {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| classify("BatchWriteItem", e))?;
                stats.requests += 1;
                pending = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
                attempt += 1;
                if attempt > RETRIES {
                    return Err(StoreError::unavailable(
                        "BatchWriteItem",
                        format!(
                            "{} items still unprocessed after {RETRIES} retries",
                            pending.len()
                        ),
                    ));
                }
                stats.retries += 1;
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        Ok(stats)
    }

    fn pointer_condition(base: u64) -> &'static str {
        if base == 0 {
            "attribute_not_exists(generation)"
        } else {
            "generation = :base"
        }
    }
}

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::refused("building the request", e.to_string())
}

#[async_trait]
impl AssignmentStore for DynamoTable {
    async fn pointer(&self) -> Result<Option<Pointer>, StoreError> {
        self.get(keys::POINTER).await
    }

    async fn job(&self, name: &str) -> Result<Option<JobItem>, StoreError> {
        self.get(&keys::job(name)).await
    }

    async fn jobs(&self, names: &[String]) -> Result<Vec<JobItem>, StoreError> {
        let mut out = Vec::new();
        for chunk in names.chunks(READ_BATCH) {
            let mut keys: Vec<HashMap<String, AttributeValue>> =
                chunk.iter().map(|n| key(&keys::job(n))).collect();
            let mut attempt = 0;
            while !keys.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(build_error)?;
                let resp = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| classify("BatchGetItem", e))?;
                for i in resp
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let pk = match i.get("pk") {
                        Some(AttributeValue::S(s)) => s.clone(),
                        _ => String::new(),
                    };
                    out.push(typed(&pk, &i)?);
                }
                keys = resp
                    .unprocessed_keys
                    .and_then(|mut m| m.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    attempt += 1;
                    if attempt > RETRIES {
                        return Err(StoreError::unavailable(
                            "BatchGetItem",
                            "keys still unprocessed",
                        ));
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
        Ok(out)
    }

    async fn write_jobs(&self, items: &[JobItem]) -> Result<WriteStats, StoreError> {
        let requests = items
            .iter()
            .map(|i| {
                Ok(WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item(&keys::job(&i.job), i)?))
                            .build()
                            .map_err(build_error)?,
                    )
                    .build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.batch_write(requests).await
    }

    async fn claim(&self, base: u64, pending: &Pending, now: i64) -> Result<Claim, StoreError> {
        // Read, decide, then write on the condition that nothing changed since the read:
        // of several racing claimers exactly one write succeeds.
        let current = self.pointer().await?;
        let Some(stored) = pending.claiming(current.as_ref(), base, now) else {
            return Ok(Claim::Lost(current.map(Box::new)));
        };
        let held = current.as_ref().and_then(|p| p.pending.as_ref());
        let mut values = HashMap::from([(
            ":pending".to_owned(),
            to_attr(
                &serde_json::to_value(&stored)
                    .map_err(|e| StoreError::refused("encoding the claim", e))?,
            ),
        )]);
        let unchanged = match &held {
            None => "attribute_not_exists(pending)".to_owned(),
            Some(h) => {
                values.insert(
                    ":held_changes".to_owned(),
                    AttributeValue::S(h.changes.clone()),
                );
                values.insert(":held_started".to_owned(), n(h.started_at));
                "pending.changes = :held_changes AND pending.started_at = :held_started".to_owned()
            }
        };
        if base > 0 {
            values.insert(":base".to_owned(), AttributeValue::N(base.to_string()));
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::POINTER)))
            .update_expression("SET pending = :pending")
            .condition_expression(format!("{} AND {unchanged}", Self::pointer_condition(base)))
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map_err(|e| classify("UpdateItem(claim)", e));
        match result {
            Ok(_) => Ok(Claim::Won { stored }),
            Err(StoreError::Conflict(_)) => Ok(Claim::Lost(self.pointer().await?.map(Box::new))),
            Err(e) => Err(e),
        }
    }

    async fn commit(
        &self,
        base: u64,
        owner: &str,
        pointer: &Pointer,
        record: &GenerationRecord,
    ) -> Result<(), StoreError> {
        let mut values = HashMap::from([
            (":owner".to_owned(), AttributeValue::S(owner.to_owned())),
            (
                ":gen".to_owned(),
                AttributeValue::N(pointer.generation.to_string()),
            ),
        ]);
        if base > 0 {
            values.insert(":base".to_owned(), AttributeValue::N(base.to_string()));
        }
        let move_pointer = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item(keys::POINTER, pointer)?))
            .condition_expression(format!(
                "{} AND pending.#owner = :owner AND pending.generation = :gen",
                Self::pointer_condition(base)
            ))
            // `owner` is one of DynamoDB's reserved words.
            .expression_attribute_names("#owner", "owner")
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)?;
        let write_record = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item(&keys::generation(record.generation), record)?))
            .build()
            .map_err(build_error)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(move_pointer).build())
            .transact_items(TransactWriteItem::builder().put(write_record).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se))
                if matches!(
                    se.err(),
                    TransactWriteItemsError::TransactionCanceledException(c)
                        if c.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
                ) =>
            {
                Err(StoreError::Conflict(format!(
                    "the claim on generation {} is no longer ours",
                    pointer.generation
                )))
            }
            Err(SdkError::ServiceError(se))
                if matches!(
                    se.err(),
                    TransactWriteItemsError::TransactionCanceledException(_)
                        | TransactWriteItemsError::TransactionInProgressException(_)
                ) =>
            {
                // Cancelled by a concurrent transaction, not by our condition: retryable.
                Err(StoreError::unavailable(
                    "TransactWriteItems(commit)",
                    DisplayErrorContext(&se.into_err()).to_string(),
                ))
            }
            Err(e) => Err(classify("TransactWriteItems(commit)", e)),
        }
    }

    async fn generation(&self, g: u64) -> Result<Option<GenerationRecord>, StoreError> {
        self.get(&keys::generation(g)).await
    }

    async fn remember(
        &self,
        key_: &str,
        value: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut attrs = item(
            &keys::remembered(key_),
            &serde_json::json!({ "value": value }),
        )?;
        attrs.insert("expires_at".to_owned(), n(expires_at));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(attrs))
            // DynamoDB deletes expired items lazily (up to days later): check the time too.
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now))
            .send()
            .await
            .map_err(|e| classify("PutItem(remember)", e));
        match result {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn recall(&self, key_: &str, now: i64) -> Result<Option<String>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Remembered {
            value: String,
            expires_at: Option<i64>,
        }
        let r: Option<Remembered> = self.get(&keys::remembered(key_)).await?;
        Ok(r.filter(|r| r.expires_at.is_none_or(|e| e > now))
            .map(|r| r.value))
    }

    async fn forget(&self, key_: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(&keys::remembered(key_))))
            .send()
            .await
            .map_err(|e| classify("DeleteItem", e))?;
        Ok(())
    }

    async fn increment(&self, name: &str) -> Result<u64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&keys::counter(name))))
            .update_expression("ADD #v :one")
            .expression_attribute_names("#v", "value")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| classify("UpdateItem(increment)", e))?;
        match out.attributes.as_ref().and_then(|a| a.get("value")) {
            Some(AttributeValue::N(v)) => v.parse().map_err(|_| {
                StoreError::corrupt(keys::counter(name), format!("not a counter: {v}"))
            }),
            _ => Err(StoreError::refused(
                "UpdateItem(increment)",
                "no value returned",
            )),
        }
    }

    async fn marker(&self, name: &str) -> Result<Option<String>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Marker {
            value: String,
        }
        Ok(self
            .get::<Marker>(&keys::marker(name))
            .await?
            .map(|m| m.value))
    }

    async fn set_marker(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.put(&keys::marker(name), &serde_json::json!({ "value": value }))
            .await
    }

    async fn swap_marker(
        &self,
        name: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(
                &keys::marker(name),
                &serde_json::json!({ "value": value }),
            )?));
        let put = match expected {
            None => put.condition_expression("attribute_not_exists(pk)"),
            // `value` is one of DynamoDB's reserved words.
            Some(old) => put
                .condition_expression("#value = :old")
                .expression_attribute_names("#value", "value")
                .expression_attribute_values(":old", AttributeValue::S(old.to_owned())),
        };
        match put
            .send()
            .await
            .map_err(|e| classify("PutItem(swap marker)", e))
        {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
