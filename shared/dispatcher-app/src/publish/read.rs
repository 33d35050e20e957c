//! Reading what is published, the way a lookup does: items resolved against the pointer.

use crate::model::Change;
use crate::store::{StoreError, Stores};

/// A job's answer now: the cluster and the generation it is served from.
pub async fn lookup(stores: &Stores, job: &str) -> Result<Option<(String, u64)>, StoreError> {
    let Some(pointer) = stores.serving().await? else {
        return Ok(None);
    };
    Ok(stores.table.job(job).await?.and_then(|i| {
        i.resolve(pointer.generation)
            .map(|c| (c.to_owned(), pointer.generation))
    }))
}

/// A job's changes up to the current generation.
pub async fn history(stores: &Stores, job: &str) -> Result<Vec<Change>, StoreError> {
    let current = stores.table.pointer().await?.map_or(0, |p| p.generation);
    Ok(stores
        .table
        .job(job)
        .await?
        .map(|i| {
            i.history
                .into_iter()
                .filter(|c| c.generation <= current)
                .collect()
        })
        .unwrap_or_default())
}
