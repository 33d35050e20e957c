//! Why a control action was refused or failed. Each refusal changes nothing and has a
//! stable code, which the control API and the chat commands answer with.

use dispatcher_core::overrides::{OverrideError, OverridePlanError};

use super::book::BookError;
use crate::StoreError;
use crate::publish::{PublishError, SnapshotError};

/// A refused or failed control action.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A field of the request is missing or out of bounds.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The override does not fit the inventory (unknown cluster or capability, ...).
    #[error(transparent)]
    Override(#[from] OverrideError),
    /// No plan or override of that id.
    #[error("{0}")]
    NotFound(String),
    /// The plan's validity ended.
    #[error("plan {id} expired at {at}; plan again")]
    PlanExpired {
        /// The plan.
        id: String,
        /// When it expired (RFC 3339).
        at: String,
    },
    /// The serving generation is not the one the plan previewed.
    #[error(
        "plan {id} was made on generation {planned}, but generation {serving} is serving; plan again"
    )]
    StaleGeneration {
        /// The plan.
        id: String,
        /// The generation it was made on.
        planned: u64,
        /// The one serving.
        serving: u64,
    },
    /// The override would leave jobs no cluster can run.
    #[error("{count} jobs would become unschedulable, for example {example}")]
    Unschedulable {
        /// How many.
        count: usize,
        /// The first, with why.
        example: String,
    },
    /// A drain whose moved jobs' static `cluster:` still names the drained cluster.
    #[error(
        "{count} moved jobs still name {cluster} in their static cluster: field, which Prow uses when a lookup fails; apply again with confirm_unprotected: true to accept that"
    )]
    Unprotected {
        /// How many.
        count: usize,
        /// The drained cluster.
        cluster: String,
    },
    /// The same person approving twice.
    #[error(
        "{actor} approved override {id} already; a second approval must come from someone else"
    )]
    DuplicateApproval {
        /// The override.
        id: String,
        /// Who.
        actor: String,
    },
    /// The override is not in a state the action applies to.
    #[error("override {id} is {state}; {action} needs it {wanted}")]
    WrongState {
        /// The override.
        id: String,
        /// Its state.
        state: &'static str,
        /// The action.
        action: &'static str,
        /// The state the action needs.
        wanted: &'static str,
    },
    /// An idempotency key used before with another request.
    #[error("idempotency key {0:?} was used with another request; choose a new key")]
    IdempotencyConflict(String),
    /// The time from a publish to Prow acting on it is unknown or too long.
    #[error("{0}")]
    Propagation(String),
    /// Nothing to plan on.
    #[error("{0}")]
    NoGeneration(String),
    /// The publish lost to another publisher for another reason than the generation.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// A snapshot object could not be read or written.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The table failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The override book failed.
    #[error(transparent)]
    Book(#[from] BookError),
    /// The engine refused the inputs.
    #[error("the stored inputs are unusable")]
    Inputs(#[source] OverridePlanError),
}

impl From<OverridePlanError> for ControlError {
    fn from(e: OverridePlanError) -> Self {
        match e {
            OverridePlanError::Override(o) => ControlError::Override(o),
            other => ControlError::Inputs(other),
        }
    }
}

impl ControlError {
    /// The stable code callers branch on.
    pub fn code(&self) -> &'static str {
        match self {
            ControlError::Invalid { .. } => "invalid_request",
            ControlError::Override(OverrideError::UnknownCluster(_)) => "unknown_cluster",
            ControlError::Override(OverrideError::UnknownCapability { .. }) => "unknown_capability",
            ControlError::Override(OverrideError::Overlap { .. }) => "overlapping_override",
            ControlError::Override(_) => "invalid_override",
            ControlError::NotFound(_) => "not_found",
            ControlError::PlanExpired { .. } => "plan_expired",
            ControlError::StaleGeneration { .. } => "stale_generation",
            ControlError::Unschedulable { .. } => "unschedulable_jobs",
            ControlError::Unprotected { .. } => "unprotected_jobs",
            ControlError::DuplicateApproval { .. } => "duplicate_approval",
            ControlError::WrongState { .. } => "wrong_state",
            ControlError::IdempotencyConflict(_) => "idempotency_conflict",
            ControlError::Propagation(_) => "propagation_bound",
            ControlError::NoGeneration(_) => "no_generation",
            ControlError::Publish(_)
            | ControlError::Snapshot(_)
            | ControlError::Store(_)
            | ControlError::Book(_)
            | ControlError::Inputs(_) => "unavailable",
        }
    }

    /// Whether the caller asked for something it may not have (a 4xx), rather than the
    /// service failing.
    pub fn is_refusal(&self) -> bool {
        self.code() != "unavailable"
    }
}
