//! Incident controls: temporary overrides of the inventory, planned (a read-only preview
//! tied to the serving generation), applied and approved, cancelled, and swept when they
//! end. Every change of placement goes through the publish protocol as a generation of
//! cause `override`; the book of overrides ([`book`]) changes by compare-and-swap only.
//!
//! An override's end does not depend on anything running: the generation records it and
//! the lookup answers a moved job's baseline once it ended ([`crate::model::Overridden`]);
//! the sweep then publishes the generation without it and marks it expired.

pub mod book;
pub mod chat;
mod error;
mod flow;
mod planning;
mod types;

use std::sync::Arc;

use dispatcher_core::Settings;
use sha2::{Digest, Sha256};

use crate::Stores;
use crate::ports::{Note, Notifier};

pub use book::{Book, BookError};
pub use error::ControlError;
pub use flow::{Status, SweepReport};
pub use types::{
    Approval, AuditEvent, Limits, MAX_PROPAGATION, Override, PlanRecord, PlanRequest, State,
};

/// Remembered keys of plans (kept a day, so that an expired plan is told from an unknown
/// one).
pub const PLAN: &str = "control-plan#";
/// Remembered keys of idempotency keys: the digest of the request each was first used
/// with.
pub const IDEMPOTENCY: &str = "control-idem#";
/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL: i64 = 7 * 24 * 3600;

/// The controls' use case: one per process.
#[derive(Clone)]
pub struct Control {
    /// Where generations and the book live.
    pub stores: Stores,
    /// The engine's settings (those of the recompute).
    pub settings: Settings,
    /// The operator's bounds.
    pub limits: Limits,
    /// Where transitions are announced.
    pub notifier: Option<Arc<dyn Notifier>>,
}

impl Control {
    /// Announces `note`; a failure is logged, never returned.
    async fn tell(&self, note: Note) {
        if let Some(n) = &self.notifier
            && let Err(e) = n.notify(&note).await
        {
            tracing::warn!(error = %dispatcher_core::chain(&e), "a notification was not sent");
        }
    }

    /// Announces that `o` entered its current state.
    async fn tell_override(&self, o: &Override) {
        let last = o.history.last();
        self.tell(Note::Override {
            id: o.id.clone(),
            state: o.state,
            actor: last.map(|e| e.actor.clone()).unwrap_or_default(),
            what: describe(o),
            generation: last.and_then(|e| e.generation),
        })
        .await;
    }
}

/// The override in a few words: `drain of build01`, `capacity 20 for build02`.
pub fn describe(o: &Override) -> String {
    match (&o.capability, o.capacity) {
        (Some(c), _) => format!("{} of capability {c} on {}", o.kind.as_str(), o.cluster),
        (None, Some(n)) => format!("capacity {n} for {}", o.cluster),
        (None, None) => format!("drain of {}", o.cluster),
    }
}

/// `prefix` and the first 16 hex digits of the SHA-256 of `text`.
fn hashed(prefix: &str, text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

pub use crate::model::utc;
