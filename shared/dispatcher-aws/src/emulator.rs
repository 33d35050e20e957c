//! Working against an AWS emulator (moto): detection, and fresh, uniquely named tables and
//! buckets provisioned from `template.yaml`.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use dispatcher_app::Stores;

use crate::Clients;
use crate::provision::{ProvisionError, create, specs_from_template};

/// The endpoint of the emulator the environment points at (`AWS_ENDPOINT_URL`), if any.
/// When `DISPATCHER_REQUIRE_EMULATOR` is set (the test command sets it), a missing
/// endpoint is an error rather than a skip.
pub fn endpoint(test: &str) -> Option<String> {
    match std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(e) => Some(e),
        None if std::env::var_os("DISPATCHER_REQUIRE_EMULATOR").is_some() => {
            panic!("{test}: DISPATCHER_REQUIRE_EMULATOR is set but AWS_ENDPOINT_URL is not")
        }
        None => {
            // Straight to the process's stderr: the test harness captures `eprintln!`.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: no AWS emulator (AWS_ENDPOINT_URL unset); ./infra/test.sh starts one"
            );
            None
        }
    }
}

/// A name nobody else in this emulator uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh table and bucket as `template` defines them, and stores over them.
pub async fn fresh(
    clients: &Clients,
    template: &str,
) -> Result<(Stores, String, String), ProvisionError> {
    let specs = specs_from_template(template)?;
    let table = unique("dispatcher");
    let bucket = unique("snapshots").to_lowercase();
    create(&clients.dynamo, &clients.s3, &table, &bucket, &specs).await?;
    Ok((clients.stores(&table, &bucket), table, bucket))
}
