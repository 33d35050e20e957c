//! What the controls keep and say: overrides with their approvals and audit trail, plan
//! requests and their previews, and the limits an operator configures.

use std::time::Duration;

use dispatcher_core::overrides::{Impact, OverrideKind, OverrideSpec};
use serde::{Deserialize, Serialize};

/// Where an override stands. `pending -> active -> expired | revoked`; `rejected` (its
/// plan expired before enough approvals, or the generation moved on) and `failed` (its
/// publish failed) end it without effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for approvals.
    Pending,
    /// Applied to the serving generation.
    Active,
    /// Ended at its time.
    Expired,
    /// Cancelled by an operator.
    Revoked,
    /// Never applied.
    Rejected,
    /// Its publish failed.
    Failed,
}

impl State {
    /// The state as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Active => "active",
            State::Expired => "expired",
            State::Revoked => "revoked",
            State::Rejected => "rejected",
            State::Failed => "failed",
        }
    }

    /// Whether nothing can happen to it any more.
    pub fn is_final(self) -> bool {
        !matches!(self, State::Pending | State::Active)
    }
}

/// One person's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who.
    pub actor: String,
    /// When (seconds since the epoch).
    pub at: i64,
}

/// One transition of an override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When (seconds since the epoch).
    pub at: i64,
    /// The state entered (or kept, for an approval).
    pub state: State,
    /// Who made it happen (`sweep` for an expiry).
    pub actor: String,
    /// The generation serving after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// What happened.
    pub message: String,
}

/// What an operator asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRequest {
    /// Drain or capacity.
    pub kind: OverrideKind,
    /// The cluster.
    pub cluster: String,
    /// Only the jobs that need this capability (a drain only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// The new capacity (a capacity override only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// How long it holds once applied (`1h`, `30m`).
    pub duration: String,
    /// Why.
    pub reason: String,
    /// The incident it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_url: Option<String>,
    /// The same key twice makes one override, never two.
    pub idempotency_key: String,
}

/// An override: a durable, temporary overlay on the baseline generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    /// Its id (derived from the idempotency key).
    pub id: String,
    /// The plan it was applied from.
    pub plan_id: String,
    /// What it does.
    pub kind: OverrideKind,
    /// The cluster.
    pub cluster: String,
    /// The capability, for a drain of one capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// The new capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// Why.
    pub reason: String,
    /// The incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_url: Option<String>,
    /// Who applied it.
    pub created_by: String,
    /// When it was applied (seconds since the epoch).
    pub created_at: i64,
    /// How long it holds once active (seconds).
    pub duration_seconds: i64,
    /// When it became active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<i64>,
    /// When it ends (once active), or when its plan stops being valid (while pending).
    pub expires_at: i64,
    /// The caller's key.
    pub idempotency_key: String,
    /// Approvals it needs before it is applied.
    pub required_approvals: usize,
    /// Approvals it has (applying is the first).
    pub approvals: Vec<Approval>,
    /// Where it stands.
    pub state: State,
    /// The generation it was planned on.
    pub source_generation: u64,
    /// Jobs it moves.
    pub moved_jobs: usize,
    /// Their demand.
    pub moved_demand: f64,
    /// Moved jobs whose static `cluster:` names the cluster they leave (confirmed).
    pub unprotected_jobs: usize,
    /// Every transition, oldest first.
    pub history: Vec<AuditEvent>,
}

impl Override {
    /// The override as the engine applies it, ending `expires_at`.
    pub fn spec(&self) -> OverrideSpec {
        OverrideSpec {
            id: self.id.clone(),
            kind: self.kind,
            cluster: self.cluster.clone(),
            capability: self.capability.clone(),
            capacity: self.capacity,
            expires_at: self.expires_at,
        }
    }

    /// Enters `state`, recording who, when, on which generation, and why.
    pub(crate) fn enter(
        &mut self,
        state: State,
        actor: &str,
        at: i64,
        generation: Option<u64>,
        message: impl Into<String>,
    ) {
        self.state = state;
        self.history.push(AuditEvent {
            at,
            state,
            actor: actor.to_owned(),
            generation,
            message: message.into(),
        });
    }
}

/// A plan: an immutable preview of one override on one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    /// Its id.
    pub id: String,
    /// The override it would make.
    pub override_id: String,
    /// What was asked.
    pub request: PlanRequest,
    /// The digest of the request, for the idempotency check.
    pub request_digest: String,
    /// How long the override holds (seconds).
    pub duration_seconds: i64,
    /// The generation it was planned on: apply refuses on any other.
    pub generation: u64,
    /// Until when it may be applied (seconds since the epoch).
    pub valid_until: i64,
    /// Who planned it.
    pub planned_by: String,
    /// The snapshot of the plan that would answer.
    pub snapshot: String,
    /// The overrides already active, which stay applied.
    pub others: Vec<OverrideSpec>,
    /// Approvals needed.
    pub required_approvals: usize,
    /// What it would change.
    pub impact: Impact,
}

/// The operator's bounds on the controls.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The longest override.
    pub max_duration: Duration,
    /// The longest drain.
    pub max_drain: Duration,
    /// How long a plan may be applied.
    pub plan_validity: Duration,
    /// An override that moves more than this share of the placed demand needs a second
    /// approver.
    pub second_approval_share: f64,
    /// The lookup's refresh interval.
    pub lookup_refresh: Duration,
    /// Prow's `scheduler.external.cache.entry_timeout_interval`, as configured (`None`:
    /// not given, and the write controls refuse).
    pub prow_cache: Option<Duration>,
}

/// The longest time between a publish and Prow acting on it that the write controls
/// accept.
pub const MAX_PROPAGATION: Duration = Duration::from_secs(30);

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_duration: Duration::from_secs(24 * 3600),
            max_drain: Duration::from_secs(2 * 3600),
            plan_validity: Duration::from_secs(15 * 60),
            second_approval_share: 0.10,
            lookup_refresh: crate::lookup::REFRESH,
            prow_cache: None,
        }
    }
}
