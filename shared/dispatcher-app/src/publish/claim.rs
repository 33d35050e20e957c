//! Step 2: claiming the next generation on the pointer item, conditionally on the
//! generation the plan was computed against, so that exactly one of racing publishers wins.

use crate::model::{Pending, Pointer};
use crate::store::{Claim, Stores};

use super::{LEASE_SECONDS, PublishError, PublishOptions};

/// Claims generation `base + 1` for the plan `digest`, whose changes are listed under
/// `changes`. Returns the claim as stored: a claim taken over inherits the change lists
/// of the claims it replaced.
pub(super) async fn claim(
    stores: &Stores,
    base: u64,
    digest: &str,
    changes: String,
    opts: &PublishOptions,
) -> Result<Pending, PublishError> {
    let generation = base + 1;
    let pending = Pending {
        generation,
        plan_digest: digest.to_owned(),
        owner: opts.owner.clone(),
        changes,
        inherited: Vec::new(),
        started_at: opts.now,
        lease_until: opts.now + LEASE_SECONDS,
    };
    // Taking over regardless of the lease: as if every lease had run out.
    let at = if opts.take_over { i64::MAX } else { opts.now };
    match stores.table.claim(base, &pending, at).await? {
        Claim::Won { stored } => Ok(stored),
        Claim::Lost(now) => Err(PublishError::Lost {
            generation,
            reason: why_lost(base, now.map(|p| *p)),
        }),
    }
}

/// Why a claim on `base` was lost, given the pointer as it is now.
fn why_lost(base: u64, now: Option<Pointer>) -> String {
    match now {
        Some(p) if p.generation != base => {
            format!("the pointer moved to generation {}", p.generation)
        }
        Some(Pointer {
            pending: Some(other),
            ..
        }) => format!(
            "the publish of {} started at {} holds it until {} (UTC); if its publisher is dead, take it over now with --take-over",
            other.plan_digest,
            crate::model::utc(other.started_at),
            crate::model::utc(other.lease_until)
        ),
        _ => "the claim failed".to_owned(),
    }
}
