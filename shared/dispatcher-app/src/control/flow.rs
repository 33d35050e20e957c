//! The actions: plan, apply, approve, cancel, sweep, and what `status` and `list` show.

use dispatcher_core::overrides::{self, OverrideKind, OverrideSpec};
use dispatcher_core::{Plan, StoredInputs};
use serde::Serialize;

use super::book::{self, Book};
use super::types::{Approval, Override, PlanRecord, State};
use super::{Control, ControlError, IDEMPOTENCY, IDEMPOTENCY_TTL, MAX_PROPAGATION, PLAN, utc};
use crate::model::{Cause, Pointer};
use crate::publish::{self, Generation, PublishError, PublishOptions, Published, Release};

/// Attempts to publish the generation without an ended override when others publish
/// meanwhile.
const REPUBLISH_ATTEMPTS: usize = 3;

/// What `status` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// The generation serving (0: none).
    pub generation: u64,
    /// Why it was published.
    pub cause: Option<Cause>,
    /// When (RFC 3339).
    pub published_at: Option<String>,
    /// The overrides it applies.
    pub active: Vec<Override>,
    /// Overrides waiting for approvals.
    pub pending: Vec<Override>,
    /// The bound on the time from a publish to Prow acting on it, or why the write
    /// controls refuse.
    pub propagation: String,
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SweepReport {
    /// Overrides that ended.
    pub expired: Vec<String>,
    /// Pending overrides whose plan expired.
    pub rejected: Vec<String>,
    /// The generation published without the ended overrides.
    pub generation: Option<u64>,
}

/// The serving generation's inputs for planning an override.
pub(super) struct Base {
    pub(super) pointer: Pointer,
    pub(super) release_key: String,
    pub(super) release: StoredInputs,
    pub(super) baseline: Plan,
}

impl Control {
    /// Refuses write actions unless a publish reaches Prow within [`MAX_PROPAGATION`].
    fn propagation(&self) -> Result<std::time::Duration, ControlError> {
        let refresh = self.limits.lookup_refresh;
        let Some(cache) = self.limits.prow_cache else {
            return Err(ControlError::Propagation(
                "the write controls are off: set DISPATCHER_PROW_CACHE_TTL to Prow's scheduler.external.cache.entry_timeout_interval, so that the time from a publish to Prow acting on it is known".to_owned(),
            ));
        };
        let bound = refresh + cache;
        if bound > MAX_PROPAGATION {
            return Err(ControlError::Propagation(format!(
                "the write controls are off: a publish reaches Prow within {}s (lookup refresh {}s + Prow's cache {}s), over {}s; lower DISPATCHER_LOOKUP_REFRESH or Prow's scheduler.external.cache.entry_timeout_interval",
                bound.as_secs(),
                refresh.as_secs(),
                cache.as_secs(),
                MAX_PROPAGATION.as_secs()
            )));
        }
        Ok(bound)
    }

    /// The serving generation with its stored inputs and baseline plan.
    pub(super) async fn base(&self) -> Result<Base, ControlError> {
        let pointer = self.stores.serving().await?.ok_or_else(|| {
            ControlError::NoGeneration(
                "no generation is serving yet: run a recompute first".to_owned(),
            )
        })?;
        let release_key = pointer.applied.release.clone().ok_or_else(|| {
            ControlError::NoGeneration(format!(
                "generation {} was published by hand and keeps no inputs to plan on: run a recompute first",
                pointer.generation
            ))
        })?;
        let release = publish::load_release(&self.stores, &release_key).await?;
        let baseline = publish::load_baseline(&self.stores, &pointer).await?;
        Ok(Base {
            pointer,
            release_key,
            release,
            baseline,
        })
    }

    /// Applies plan `plan_id`: the override is made, with `actor`'s approval; with the
    /// approvals it needs it is published at once, otherwise it waits in `pending`.
    pub async fn apply(
        &self,
        plan_id: &str,
        actor: &str,
        confirm_unprotected: bool,
        now: i64,
    ) -> Result<Override, ControlError> {
        self.propagation()?;
        let record = self.plan_record(plan_id, now).await?;
        if let Some(existing) = book::read(self.stores.table.as_ref())
            .await?
            .get(&record.override_id)
        {
            // The same idempotency key: the same override, never a second one.
            return Ok(existing.clone());
        }
        let idem = format!("{IDEMPOTENCY}{}", record.request.idempotency_key);
        if !self
            .stores
            .table
            .remember(&idem, &record.request_digest, now + IDEMPOTENCY_TTL, now)
            .await?
            && self.stores.table.recall(&idem, now).await?.as_deref()
                != Some(&record.request_digest)
        {
            return Err(ControlError::IdempotencyConflict(
                record.request.idempotency_key,
            ));
        }
        let serving = self.serving_generation().await?;
        if serving != record.generation {
            return Err(stale(&record, serving));
        }
        if record.request.kind == OverrideKind::Drain
            && record.impact.unprotected_jobs > 0
            && !confirm_unprotected
        {
            return Err(ControlError::Unprotected {
                count: record.impact.unprotected_jobs,
                cluster: record.request.cluster.clone(),
            });
        }
        let mut o = new_override(&record, actor, now);
        if o.approvals.len() >= o.required_approvals {
            return self.activate(o, &record, actor, now).await;
        }
        o.enter(
            State::Pending,
            actor,
            now,
            Some(serving),
            format!(
                "applied by {actor}; needs {} approvals",
                o.required_approvals
            ),
        );
        let stored = book::update(self.stores.table.as_ref(), |b: &mut Book| {
            Ok::<_, ControlError>(match b.get(&o.id) {
                Some(existing) => existing.clone(),
                None => {
                    b.put(o.clone());
                    o.clone()
                }
            })
        })
        .await??;
        self.tell_override(&stored).await;
        Ok(stored)
    }

    /// Adds `actor`'s approval to pending override `id`; with enough, publishes it.
    pub async fn approve(&self, id: &str, actor: &str, now: i64) -> Result<Override, ControlError> {
        self.propagation()?;
        let mut o = self.overriding(id).await?;
        if o.state != State::Pending {
            return Err(wrong_state(&o, "approve", "pending"));
        }
        if o.approvals.iter().any(|a| a.actor == actor) {
            return Err(ControlError::DuplicateApproval {
                id: id.to_owned(),
                actor: actor.to_owned(),
            });
        }
        let record = match self.plan_record(&o.plan_id, now).await {
            Ok(r) => r,
            Err(e @ ControlError::PlanExpired { .. }) => {
                self.end(
                    id,
                    State::Rejected,
                    actor,
                    now,
                    None,
                    "its plan expired before enough approvals",
                )
                .await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        o.approvals.push(Approval {
            actor: actor.to_owned(),
            at: now,
        });
        if o.approvals.len() >= o.required_approvals {
            return self.activate(o, &record, actor, now).await;
        }
        let message = format!("approved by {actor}");
        let updated = book::update(self.stores.table.as_ref(), |b: &mut Book| {
            let Some(slot) = b.get_mut(id).filter(|s| s.state == State::Pending) else {
                return Err(ControlError::NotFound(format!(
                    "override {id} is no longer pending"
                )));
            };
            if slot.approvals.iter().any(|a| a.actor == actor) {
                return Err(ControlError::DuplicateApproval {
                    id: id.to_owned(),
                    actor: actor.to_owned(),
                });
            }
            slot.approvals.push(Approval {
                actor: actor.to_owned(),
                at: now,
            });
            slot.enter(State::Pending, actor, now, None, message.clone());
            Ok(slot.clone())
        })
        .await??;
        Ok(updated)
    }

    /// Publishes `o` (approved) on the generation its plan was made on, then records it
    /// active. A generation that moved on rejects it; nothing serves it then.
    async fn activate(
        &self,
        mut o: Override,
        record: &PlanRecord,
        actor: &str,
        now: i64,
    ) -> Result<Override, ControlError> {
        o.starts_at = Some(now);
        o.expires_at = now + o.duration_seconds;
        let base = self.base().await?;
        if base.pointer.generation != record.generation {
            let why = stale(record, base.pointer.generation);
            return Err(self.reject(&o.id, actor, now, why).await);
        }
        let answering = publish::load_plan(&self.stores, &record.snapshot).await?;
        let mut specs = record.others.clone();
        specs.push(o.spec());
        let next = Generation {
            plan: &answering,
            baseline: &base.baseline,
            overrides: &specs,
            release: Release::Stored(&base.release_key),
        };
        let opts = PublishOptions::new(Cause::Override, now)
            .owned_by(format!("override-{}", o.id))
            .expecting(record.generation);
        let published = match publish::publish_generation(&self.stores, next, &opts).await {
            Ok(p) => p,
            Err(PublishError::Lost { .. }) => {
                let serving = self.serving_generation().await?;
                return Err(self.reject(&o.id, actor, now, stale(record, serving)).await);
            }
            Err(e) => {
                o.enter(
                    State::Failed,
                    actor,
                    now,
                    None,
                    format!("the publish failed: {}", dispatcher_core::chain(&e)),
                );
                self.record(o.clone()).await?;
                self.tell_override(&o).await;
                return Err(e.into());
            }
        };
        let message = format!(
            "active until {}: {} jobs ({} demand) moved",
            utc(o.expires_at),
            record.impact.moved_jobs,
            record.impact.moved_demand
        );
        o.enter(
            State::Active,
            actor,
            now,
            Some(published.generation),
            message,
        );
        self.record(o.clone()).await?;
        tracing::info!(id = %o.id, generation = published.generation, changed = published.changed, "override active");
        self.tell_override(&o).await;
        Ok(o)
    }

    /// Cancels override `id`: a pending one is revoked, an active one is revoked and the
    /// generation without it published.
    pub async fn cancel(&self, id: &str, actor: &str, now: i64) -> Result<Override, ControlError> {
        self.propagation()?;
        let o = self.overriding(id).await?;
        let generation = match o.state {
            State::Pending => None,
            State::Active => Some(
                self.republish(now, &format!("cancel-{id}"), |s| s.id != id)
                    .await?
                    .generation,
            ),
            _ => return Err(wrong_state(&o, "cancel", "pending or active")),
        };
        self.end(
            id,
            State::Revoked,
            actor,
            now,
            generation,
            &format!("cancelled by {actor}"),
        )
        .await
    }

    /// Ends the overrides whose time is up: publishes the generation without them, marks
    /// them expired, and rejects pending overrides whose plan expired.
    pub async fn sweep(&self, now: i64) -> Result<SweepReport, ControlError> {
        let mut report = SweepReport::default();
        if let Some(pointer) = self.stores.serving().await?
            && pointer
                .applied
                .overrides
                .iter()
                .any(|o| o.expires_at <= now)
        {
            let owner = format!("sweep-{}", pointer.generation);
            let published = self.republish(now, &owner, |s| s.expires_at > now).await?;
            report.generation = Some(published.generation);
        }
        let ended = book::update(self.stores.table.as_ref(), |b: &mut Book| {
            let mut ended = Vec::new();
            for o in &mut b.overrides {
                let (state, message) = match o.state {
                    State::Active if o.expires_at <= now => {
                        (State::Expired, format!("ended at {}", utc(o.expires_at)))
                    }
                    State::Pending if o.expires_at <= now => (
                        State::Rejected,
                        "its plan expired before enough approvals".to_owned(),
                    ),
                    _ => continue,
                };
                o.enter(state, "sweep", now, report.generation, message);
                ended.push(o.clone());
            }
            Ok::<_, ControlError>(ended)
        })
        .await??;
        for o in &ended {
            match o.state {
                State::Expired => report.expired.push(o.id.clone()),
                _ => report.rejected.push(o.id.clone()),
            }
            self.tell_override(o).await;
        }
        Ok(report)
    }

    /// Publishes the serving generation's baseline with the serving overrides that `keep`
    /// keeps, retrying when another publisher moves first.
    async fn republish(
        &self,
        now: i64,
        owner: &str,
        keep: impl Fn(&OverrideSpec) -> bool,
    ) -> Result<Published, ControlError> {
        let mut last = None;
        for _ in 0..REPUBLISH_ATTEMPTS {
            let base = self.base().await?;
            let kept: Vec<OverrideSpec> = base
                .pointer
                .applied
                .overrides
                .iter()
                .filter(|s| keep(s))
                .cloned()
                .collect();
            let answering = overrides::plan(&base.release, &base.baseline, &self.settings, &kept)?;
            let next = Generation {
                plan: &answering,
                baseline: &base.baseline,
                overrides: &kept,
                release: Release::Stored(&base.release_key),
            };
            let opts = PublishOptions::new(Cause::Override, now)
                .owned_by(format!("{owner}-{}", base.pointer.generation))
                .expecting(base.pointer.generation);
            match publish::publish_generation(&self.stores, next, &opts).await {
                Ok(p) => return Ok(p),
                Err(e @ PublishError::Lost { .. }) => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.map_or_else(
            || ControlError::NotFound("nothing to publish".to_owned()),
            ControlError::from,
        ))
    }

    /// Moves override `id` to a final `state`.
    async fn end(
        &self,
        id: &str,
        state: State,
        actor: &str,
        now: i64,
        generation: Option<u64>,
        message: &str,
    ) -> Result<Override, ControlError> {
        let ended = book::update(self.stores.table.as_ref(), |b: &mut Book| {
            let Some(o) = b.get_mut(id) else {
                return Ok(None);
            };
            if o.state.is_final() {
                return Err(wrong_state(o, state.as_str(), "pending or active"));
            }
            o.enter(state, actor, now, generation, message);
            Ok(Some(o.clone()))
        })
        .await??;
        let Some(o) = ended else {
            return Err(ControlError::NotFound(format!("no override {id}")));
        };
        self.tell_override(&o).await;
        Ok(o)
    }

    /// Rejects pending override `id` because of `why` (an override applied with all its
    /// approvals at once was never stored: nothing to reject), and answers `why`.
    async fn reject(&self, id: &str, actor: &str, now: i64, why: ControlError) -> ControlError {
        match self
            .end(id, State::Rejected, actor, now, None, &why.to_string())
            .await
        {
            Ok(_) | Err(ControlError::NotFound(_)) => why,
            Err(e) => e,
        }
    }

    /// Stores `o` as it is.
    async fn record(&self, o: Override) -> Result<(), ControlError> {
        book::update(self.stores.table.as_ref(), |b: &mut Book| {
            b.put(o.clone());
            Ok::<_, ControlError>(())
        })
        .await??;
        Ok(())
    }

    /// The override `id`, as the book holds it.
    async fn overriding(&self, id: &str) -> Result<Override, ControlError> {
        book::read(self.stores.table.as_ref())
            .await?
            .get(id)
            .cloned()
            .ok_or_else(|| ControlError::NotFound(format!("no override {id}")))
    }

    /// The stored plan `id`, refused once expired.
    async fn plan_record(&self, id: &str, now: i64) -> Result<PlanRecord, ControlError> {
        let text = self
            .stores
            .table
            .recall(&format!("{PLAN}{id}"), now)
            .await?
            .ok_or_else(|| ControlError::NotFound(format!("no plan {id}")))?;
        let record: PlanRecord = serde_json::from_str(&text).map_err(|e| {
            ControlError::Store(crate::StoreError::corrupt(format!("{PLAN}{id}"), e))
        })?;
        if record.valid_until <= now {
            return Err(ControlError::PlanExpired {
                id: id.to_owned(),
                at: utc(record.valid_until),
            });
        }
        Ok(record)
    }

    async fn serving_generation(&self) -> Result<u64, ControlError> {
        Ok(self.stores.serving().await?.map_or(0, |p| p.generation))
    }

    /// Every override the book keeps, newest first.
    pub async fn list(&self) -> Result<Vec<Override>, ControlError> {
        let mut all = book::read(self.stores.table.as_ref()).await?.overrides;
        all.reverse();
        Ok(all)
    }

    /// The serving generation, the active and pending overrides, and the propagation bound.
    pub async fn status(&self) -> Result<Status, ControlError> {
        let pointer = self.stores.serving().await?;
        let all = self.list().await?;
        let pick = |s: State| all.iter().filter(|o| o.state == s).cloned().collect();
        Ok(Status {
            generation: pointer.as_ref().map_or(0, |p| p.generation),
            cause: pointer.as_ref().map(|p| p.cause),
            published_at: pointer.as_ref().map(|p| utc(p.published_at)),
            active: pick(State::Active),
            pending: pick(State::Pending),
            propagation: match self.propagation() {
                Ok(bound) => format!("a publish reaches Prow within {}s", bound.as_secs()),
                Err(e) => e.to_string(),
            },
        })
    }
}

fn new_override(record: &PlanRecord, actor: &str, now: i64) -> Override {
    let r = &record.request;
    Override {
        id: record.override_id.clone(),
        plan_id: record.id.clone(),
        kind: r.kind,
        cluster: r.cluster.clone(),
        capability: r.capability.clone(),
        capacity: r.capacity,
        reason: r.reason.clone(),
        incident_url: r.incident_url.clone(),
        created_by: actor.to_owned(),
        created_at: now,
        duration_seconds: record.duration_seconds,
        starts_at: None,
        // While pending: when its plan stops being valid (the sweep rejects it then).
        expires_at: record.valid_until,
        idempotency_key: r.idempotency_key.clone(),
        required_approvals: record.required_approvals,
        approvals: vec![Approval {
            actor: actor.to_owned(),
            at: now,
        }],
        state: State::Pending,
        source_generation: record.generation,
        moved_jobs: record.impact.moved_jobs,
        moved_demand: record.impact.moved_demand,
        unprotected_jobs: record.impact.unprotected_jobs,
        history: Vec::new(),
    }
}

fn stale(record: &PlanRecord, serving: u64) -> ControlError {
    ControlError::StaleGeneration {
        id: record.id.clone(),
        planned: record.generation,
        serving,
    }
}

fn wrong_state(o: &Override, action: &'static str, wanted: &'static str) -> ControlError {
    ControlError::WrongState {
        id: o.id.clone(),
        state: o.state.as_str(),
        action,
        wanted,
    }
}

pub(super) fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
