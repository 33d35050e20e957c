//! The table's keys, one scheme for every adapter: the local store and DynamoDB hold the
//! same items under the same keys, and the deployed roles' IAM conditions
//! (`dynamodb:LeadingKeys` in `template.yaml`) name these prefixes.

/// The pointer to the current generation.
pub const POINTER: &str = "meta#pointer";

/// A job's assignment.
pub fn job(name: &str) -> String {
    format!("job#{name}")
}

/// A generation's record; zero-padded so that records sort by generation.
pub fn generation(n: u64) -> String {
    format!("gen#{n:010}")
}

/// A remembered value with an expiry ([`crate::AssignmentStore::remember`]).
pub fn remembered(key: &str) -> String {
    format!("mem#{key}")
}

/// A counter ([`crate::AssignmentStore::increment`]).
pub fn counter(name: &str) -> String {
    format!("counter#{name}")
}

/// A marker ([`crate::AssignmentStore::set_marker`]).
pub fn marker(name: &str) -> String {
    format!("marker#{name}")
}
