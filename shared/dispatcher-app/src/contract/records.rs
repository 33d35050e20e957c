//! The checks of what the table keeps beside generations: remembered keys, markers,
//! counters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use crate::store::Stores;

/// Checks that remembered keys expire.
pub async fn remembered_keys_expire(stores: &Stores) {
    assert!(
        stores
            .table
            .remember("delivery#1", "x", 100, 10)
            .await
            .unwrap()
    );
    assert!(
        !stores
            .table
            .remember("delivery#1", "y", 200, 20)
            .await
            .unwrap(),
        "a replay"
    );
    assert_eq!(
        stores
            .table
            .recall("delivery#1", 50)
            .await
            .unwrap()
            .as_deref(),
        Some("x")
    );
    assert_eq!(
        stores.table.recall("delivery#1", 150).await.unwrap(),
        None,
        "expired"
    );
    assert!(
        stores
            .table
            .remember("delivery#1", "z", 300, 150)
            .await
            .unwrap(),
        "an expired key is new again"
    );
    stores.table.forget("delivery#1").await.unwrap();
    assert_eq!(stores.table.recall("delivery#1", 160).await.unwrap(), None);
}

/// Checks that markers are durable.
pub async fn markers_are_durable(stores: &Stores) {
    assert_eq!(stores.table.marker("inventory").await.unwrap(), None);
    stores
        .table
        .set_marker("inventory", "sha256:1")
        .await
        .unwrap();
    stores
        .table
        .set_marker("inventory", "sha256:2")
        .await
        .unwrap();
    assert_eq!(
        stores.table.marker("inventory").await.unwrap().as_deref(),
        Some("sha256:2")
    );
}

/// Checks that counters count under concurrency.
pub async fn counters_count_under_concurrency(stores: &Stores) {
    assert_eq!(stores.table.increment("rr").await.unwrap(), 1);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let stores = stores.clone();
        tasks.push(tokio::spawn(async move {
            stores.table.increment("rr").await.unwrap()
        }));
    }
    let mut seen = BTreeSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap());
    }
    assert_eq!(
        seen,
        (2..=9).collect::<BTreeSet<u64>>(),
        "every increment gets its own value"
    );
    assert_eq!(stores.table.increment("other").await.unwrap(), 1);
}
