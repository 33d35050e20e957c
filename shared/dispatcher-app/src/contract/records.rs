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

/// Checks that a marker swaps only from the value it holds, and that of racing swaps from
/// one value exactly one succeeds.
pub async fn markers_swap_from_what_they_hold(stores: &Stores) {
    let t = &stores.table;
    assert!(t.swap_marker("book", None, "v1").await.unwrap(), "unset");
    assert!(
        !t.swap_marker("book", None, "v0").await.unwrap(),
        "set already"
    );
    assert!(
        !t.swap_marker("book", Some("v0"), "v2").await.unwrap(),
        "stale"
    );
    assert_eq!(t.marker("book").await.unwrap().as_deref(), Some("v1"));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let stores = stores.clone();
        tasks.push(tokio::spawn(async move {
            let value = format!("racer-{i}");
            let won = stores
                .table
                .swap_marker("book", Some("v1"), &value)
                .await
                .unwrap();
            won.then_some(value)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        winners.extend(task.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(t.marker("book").await.unwrap(), winners.pop());
}
