//! Items as DynamoDB attribute maps: the typed items serialise to JSON, and JSON maps onto
//! attribute values one to one, so the table stays readable in the console.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use dispatcher_app::StoreError;
use serde_json::{Map, Number, Value};

/// A JSON value as the attribute value of the same shape.
pub fn to_attr(v: &Value) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(a) => AttributeValue::L(a.iter().map(to_attr).collect()),
        Value::Object(o) => {
            AttributeValue::M(o.iter().map(|(k, v)| (k.clone(), to_attr(v))).collect())
        }
    }
}

/// An attribute value back to JSON; sets and binary values, which the items never hold,
/// are refused.
pub fn from_attr(a: &AttributeValue) -> Result<Value, String> {
    Ok(match a {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => {
            if let Ok(i) = n.parse::<i64>() {
                Value::Number(i.into())
            } else if let Ok(u) = n.parse::<u64>() {
                Value::Number(u.into())
            } else {
                let f: f64 = n.parse().map_err(|_| format!("bad number {n:?}"))?;
                Value::Number(Number::from_f64(f).ok_or_else(|| format!("bad number {n:?}"))?)
            }
        }
        AttributeValue::L(l) => Value::Array(l.iter().map(from_attr).collect::<Result<_, _>>()?),
        AttributeValue::M(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), from_attr(v)?)))
                .collect::<Result<Map<_, _>, String>>()?,
        ),
        other => return Err(format!("unsupported attribute {other:?}")),
    })
}

/// A typed item as an attribute map under key `pk`.
pub fn item<T: serde::Serialize>(
    pk: &str,
    value: &T,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut map = match serde_json::to_value(value) {
        Ok(Value::Object(o)) => o,
        Ok(other) => Map::from_iter([("value".to_owned(), other)]),
        Err(e) => return Err(StoreError::refused(format!("encoding {pk}"), e)),
    };
    map.insert("pk".to_owned(), Value::String(pk.to_owned()));
    Ok(map.iter().map(|(k, v)| (k.clone(), to_attr(v))).collect())
}

/// An attribute map back to its typed item.
pub fn typed<T: serde::de::DeserializeOwned>(
    pk: &str,
    attrs: &HashMap<String, AttributeValue>,
) -> Result<T, StoreError> {
    let corrupt = |cause: String| StoreError::corrupt(pk, cause);
    let mut map = Map::new();
    for (k, v) in attrs {
        if k != "pk" {
            map.insert(k.clone(), from_attr(v).map_err(corrupt)?);
        }
    }
    serde_json::from_value(Value::Object(map)).map_err(|e| corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_attributes() {
        let v = serde_json::json!({"a": 1, "b": [true, null, "x"], "c": {"d": 2.5, "e": 18446744073709551615u64}});
        let back = from_attr(&to_attr(&v)).unwrap();
        assert_eq!(back, v);
    }
}
