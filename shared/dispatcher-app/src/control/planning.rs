//! Planning an override: the read-only preview of its effect on the serving generation,
//! stored for `apply` to take by its id.

use dispatcher_core::Plan;
use dispatcher_core::overrides::{self, OverrideKind, OverrideSpec};

use super::flow::{Base, secs};
use super::types::{PlanRecord, PlanRequest};
use super::{Control, ControlError, IDEMPOTENCY, PLAN, hashed};
use crate::model::Pointer;
use crate::publish;

/// How long a plan record stays readable after it expired, so that apply says "expired"
/// rather than "unknown".
const PLAN_KEPT: i64 = 24 * 3600;

impl Control {
    /// Previews `request` on the serving generation; nothing changes but the stored
    /// preview, which `apply` takes by its id for [`super::Limits::plan_validity`].
    pub async fn plan(
        &self,
        request: PlanRequest,
        actor: &str,
        now: i64,
    ) -> Result<PlanRecord, ControlError> {
        let duration = self.check(&request)?;
        let digest = request_digest(&request);
        let idem = format!("{IDEMPOTENCY}{}", request.idempotency_key);
        if let Some(first) = self.stores.table.recall(&idem, now).await?
            && first != digest
        {
            return Err(ControlError::IdempotencyConflict(request.idempotency_key));
        }
        let base = self.base().await?;
        let override_id = hashed("ovr-", &request.idempotency_key);
        let others: Vec<OverrideSpec> = live(&base.pointer, now)
            .filter(|o| o.id != override_id)
            .collect();
        let mut all = others.clone();
        all.push(OverrideSpec {
            id: override_id.clone(),
            kind: request.kind,
            cluster: request.cluster.clone(),
            capability: request.capability.clone(),
            capacity: request.capacity,
            expires_at: now + duration,
        });
        let answering = overrides::plan(&base.release, &base.baseline, &self.settings, &all)?;
        let serving = self.answering_plan(&base).await?;
        let mut impact = overrides::impact(&serving, &answering, &base.release.files);
        if let Some(first) = impact.unschedulable.first() {
            return Err(ControlError::Unschedulable {
                count: impact.unschedulable.len(),
                example: format!("{} ({})", first.job, first.reason),
            });
        }
        impact.unschedulable.clear();
        let snapshot = publish::snapshot_prefix(&publish::plan_digest(&answering.to_json()));
        publish::store_plan(&self.stores, &snapshot, &answering).await?;
        let required_approvals = match request.kind {
            OverrideKind::Drain => 2,
            OverrideKind::Capacity if impact.moved_share > self.limits.second_approval_share => 2,
            OverrideKind::Capacity => 1,
        };
        let record = PlanRecord {
            id: hashed(
                "plan-",
                &format!("{override_id}{now}{}", publish::fresh_owner(now)),
            ),
            override_id,
            request,
            request_digest: digest,
            duration_seconds: duration,
            generation: base.pointer.generation,
            valid_until: now + secs(self.limits.plan_validity),
            planned_by: actor.to_owned(),
            snapshot,
            others,
            required_approvals,
            impact,
        };
        let text = serde_json::to_string(&record)
            .map_err(|e| ControlError::Store(crate::StoreError::refused("encoding a plan", e)))?;
        let key = format!("{PLAN}{}", record.id);
        self.stores
            .table
            .remember(&key, &text, record.valid_until + PLAN_KEPT, now)
            .await?;
        tracing::info!(plan = %record.id, generation = record.generation, moved_jobs = record.impact.moved_jobs, "override planned");
        Ok(record)
    }

    /// The plan answering now (with the serving overrides applied).
    async fn answering_plan(&self, base: &Base) -> Result<Plan, ControlError> {
        if base.pointer.applied.baseline.is_none() {
            return Ok(base.baseline.clone());
        }
        Ok(publish::load_plan(&self.stores, &base.pointer.snapshot).await?)
    }

    /// Checks the request's fields; answers the duration in seconds.
    fn check(&self, r: &PlanRequest) -> Result<i64, ControlError> {
        let invalid = |field, message: &str| ControlError::Invalid {
            field,
            message: message.to_owned(),
        };
        bounded("cluster", &r.cluster, 253)?;
        bounded("reason", &r.reason, 500)?;
        bounded("idempotency_key", &r.idempotency_key, 128)?;
        if let Some(c) = &r.capability {
            bounded("capability", c, 253)?;
        }
        if let Some(url) = &r.incident_url
            && (url.len() > 2048 || !url.starts_with("https://"))
        {
            return Err(invalid(
                "incident_url",
                "an https:// URL of at most 2048 bytes",
            ));
        }
        let duration =
            humantime::parse_duration(r.duration.trim()).map_err(|e| ControlError::Invalid {
                field: "duration",
                message: format!("{:?} is not a duration like 1h or 30m: {e}", r.duration),
            })?;
        let max = match r.kind {
            OverrideKind::Drain => self.limits.max_drain.min(self.limits.max_duration),
            OverrideKind::Capacity => self.limits.max_duration,
        };
        if duration.is_zero() || duration > max {
            return Err(ControlError::Invalid {
                field: "duration",
                message: format!(
                    "{} is over the longest {} of {} (or zero)",
                    humantime::format_duration(duration),
                    r.kind.as_str(),
                    humantime::format_duration(max)
                ),
            });
        }
        Ok(secs(duration))
    }
}

/// The serving overrides that have not ended at `now`.
fn live(pointer: &Pointer, now: i64) -> impl Iterator<Item = OverrideSpec> + '_ {
    pointer
        .applied
        .overrides
        .iter()
        .filter(move |o| o.expires_at > now)
        .cloned()
}

fn bounded(field: &'static str, value: &str, max: usize) -> Result<(), ControlError> {
    if value.trim().is_empty() || value.len() > max {
        return Err(ControlError::Invalid {
            field,
            message: format!("must be 1 to {max} bytes"),
        });
    }
    Ok(())
}

/// The request as its canonical JSON, hashed: what an idempotency key is bound to.
fn request_digest(r: &PlanRequest) -> String {
    publish::plan_digest(&serde_json::to_string(r).unwrap_or_default())
}
