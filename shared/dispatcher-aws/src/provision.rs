//! Creating the table and bucket from `template.yaml` itself, so that the emulator the tests
//! run against has exactly what the stack deploys (one source of truth).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use yaml_serde::Value;

/// The DynamoDB table as the template defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// `AttributeDefinitions`: each attribute's name and type (`S`, `N`, `B`).
    pub attributes: Vec<(String, String)>,
    /// `KeySchema`: each key attribute's name and role (`HASH`, `RANGE`).
    pub keys: Vec<(String, String)>,
    /// `BillingMode`; `PROVISIONED` when the template leaves it out, as CloudFormation does.
    pub billing_mode: String,
    /// The TTL attribute, when the template enables TTL.
    pub ttl_attribute: Option<String>,
}

/// The S3 bucket as the template defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    /// Whether versioning is enabled.
    pub versioned: bool,
}

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The template does not define the table or bucket as expected.
    #[error("template.yaml: {0}")]
    Template(String),
    /// An AWS call (or building its request) failed.
    #[error("{0}")]
    Aws(String),
}

/// The `Properties` of the one resource of type `kind`.
fn resource<'a>(root: &'a Value, kind: &str) -> Result<&'a Value, ProvisionError> {
    let resources = root
        .get("Resources")
        .and_then(Value::as_mapping)
        .ok_or_else(|| ProvisionError::Template("no Resources".to_owned()))?;
    let mut found = resources
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind));
    match (found.next(), found.next()) {
        (Some((_, r)), None) => r
            .get("Properties")
            .ok_or_else(|| ProvisionError::Template(format!("{kind} has no Properties"))),
        (None, _) => Err(ProvisionError::Template(format!("no {kind} resource"))),
        (Some(_), Some(_)) => Err(ProvisionError::Template(format!(
            "more than one {kind} resource"
        ))),
    }
}

/// A list of maps as `(a, b)` pairs, e.g. `AttributeName`/`KeyType` entries.
fn pairs(v: Option<&Value>, a: &str, b: &str) -> Result<Vec<(String, String)>, ProvisionError> {
    let list = v
        .and_then(Value::as_sequence)
        .ok_or_else(|| ProvisionError::Template(format!("expected a list of {a}/{b}")))?;
    list.iter()
        .map(|e| {
            let get = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
            get(a)
                .zip(get(b))
                .ok_or_else(|| ProvisionError::Template(format!("an entry without {a} or {b}")))
        })
        .collect()
}

/// Reads the table and bucket definitions out of the SAM template.
pub fn specs_from_template(text: &str) -> Result<(TableSpec, BucketSpec), ProvisionError> {
    let root: Value =
        yaml_serde::from_str(text).map_err(|e| ProvisionError::Template(e.to_string()))?;
    let table = resource(&root, "AWS::DynamoDB::Table")?;
    let ttl = table.get("TimeToLiveSpecification");
    let spec = TableSpec {
        attributes: pairs(
            table.get("AttributeDefinitions"),
            "AttributeName",
            "AttributeType",
        )?,
        keys: pairs(table.get("KeySchema"), "AttributeName", "KeyType")?,
        billing_mode: table
            .get("BillingMode")
            .and_then(Value::as_str)
            .unwrap_or("PROVISIONED")
            .to_owned(),
        ttl_attribute: ttl
            .filter(|t| t.get("Enabled").and_then(Value::as_bool) == Some(true))
            .and_then(|t| t.get("AttributeName"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let bucket = resource(&root, "AWS::S3::Bucket")?;
    let versioned = bucket
        .get("VersioningConfiguration")
        .and_then(|v| v.get("Status"))
        .and_then(Value::as_str)
        == Some("Enabled");
    Ok((spec, BucketSpec { versioned }))
}

/// A failed AWS call `op`, with the SDK's whole error.
fn aws(op: &str, e: impl std::fmt::Debug) -> ProvisionError {
    ProvisionError::Aws(format!("{op}: {e:?}"))
}

/// Creates `table` and `bucket` as specified (for emulators and first deployments by hand).
pub async fn create(
    dynamo: &aws_sdk_dynamodb::Client,
    s3: &aws_sdk_s3::Client,
    table: &str,
    bucket: &str,
    specs: &(TableSpec, BucketSpec),
) -> Result<(), ProvisionError> {
    let (t, b) = specs;
    let mut create = dynamo
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::from(t.billing_mode.as_str()));
    for (name, kind) in &t.attributes {
        create = create.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
                .map_err(|e| aws("AttributeDefinition", e))?,
        );
    }
    for (name, kind) in &t.keys {
        create = create.key_schema(
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::from(kind.as_str()))
                .build()
                .map_err(|e| aws("KeySchemaElement", e))?,
        );
    }
    create.send().await.map_err(|e| aws("CreateTable", e))?;
    if let Some(attr) = &t.ttl_attribute {
        dynamo
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attr)
                    .enabled(true)
                    .build()
                    .map_err(|e| aws("TimeToLiveSpecification", e))?,
            )
            .send()
            .await
            .map_err(|e| aws("UpdateTimeToLive", e))?;
    }
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| aws("CreateBucket", e))?;
    if b.versioned {
        s3.put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws("PutBucketVersioning", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repository_template() {
        let text = include_str!("../../../template.yaml");
        let (t, b) = specs_from_template(text).unwrap();
        assert_eq!(t.keys, vec![("pk".to_owned(), "HASH".to_owned())]);
        assert_eq!(t.attributes, vec![("pk".to_owned(), "S".to_owned())]);
        assert_eq!(t.billing_mode, "PAY_PER_REQUEST");
        assert_eq!(t.ttl_attribute.as_deref(), Some("expires_at"));
        assert!(b.versioned);
    }
}
