//! The chat commands (`/dispatch ...`): their grammar, and each run through the use case
//! with the chat user as the actor. Answers are plain text a chat client shows as is.

use dispatcher_core::overrides::OverrideKind;

use super::{Control, ControlError, Override, PlanRecord, PlanRequest, describe, utc};

/// What a chat user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `status`.
    Status,
    /// `explain JOB`.
    Explain(String),
    /// `drain CLUSTER DURATION REASON...`.
    Drain {
        /// The cluster.
        cluster: String,
        /// How long.
        duration: String,
        /// Why.
        reason: String,
    },
    /// `capacity CLUSTER N DURATION REASON...`.
    Capacity {
        /// The cluster.
        cluster: String,
        /// The new capacity.
        capacity: u32,
        /// How long.
        duration: String,
        /// Why.
        reason: String,
    },
    /// `apply PLAN [confirm]`.
    Apply {
        /// The plan.
        plan: String,
        /// Accept moved jobs whose static field names the drained cluster.
        confirm: bool,
    },
    /// `approve ID`.
    Approve(String),
    /// `cancel ID`.
    Cancel(String),
}

/// The commands, for an answer to anything else.
pub const USAGE: &str = "usage: /dispatch status | explain JOB | drain CLUSTER DURATION REASON | capacity CLUSTER N DURATION REASON | apply PLAN [confirm] | approve ID | cancel ID";

/// Reads a command's text; `Err` holds the answer to give.
pub fn parse(text: &str) -> Result<Command, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let rest = |from: usize| words.get(from..).map(|w| w.join(" ")).unwrap_or_default();
    let one = |i: usize| words.get(i).map(|w| (*w).to_owned());
    let command = match words.as_slice() {
        ["status"] => Command::Status,
        ["explain", job] => Command::Explain((*job).to_owned()),
        ["drain", cluster, duration, _, ..] => Command::Drain {
            cluster: (*cluster).to_owned(),
            duration: (*duration).to_owned(),
            reason: rest(3),
        },
        ["capacity", cluster, n, duration, _, ..] => Command::Capacity {
            cluster: (*cluster).to_owned(),
            capacity: n
                .parse()
                .map_err(|_| format!("{n:?} is not a capacity 1-100\n{USAGE}"))?,
            duration: (*duration).to_owned(),
            reason: rest(4),
        },
        ["apply", plan] => Command::Apply {
            plan: (*plan).to_owned(),
            confirm: false,
        },
        ["apply", plan, "confirm"] => Command::Apply {
            plan: (*plan).to_owned(),
            confirm: true,
        },
        ["approve", _] => Command::Approve(one(1).unwrap_or_default()),
        ["cancel", _] => Command::Cancel(one(1).unwrap_or_default()),
        _ => return Err(USAGE.to_owned()),
    };
    Ok(command)
}

/// Runs `command` for chat user `actor` from the request `key` (the idempotency key of a
/// plan: Slack's trigger id, so that a retried delivery plans once); answers the text to
/// post.
pub async fn run(control: &Control, command: Command, actor: &str, key: &str, now: i64) -> String {
    let answer = match command {
        Command::Status => status(control).await,
        Command::Explain(job) => explain(control, &job).await,
        Command::Drain {
            cluster,
            duration,
            reason,
        } => {
            let request = request(OverrideKind::Drain, cluster, None, duration, reason, key);
            control.plan(request, actor, now).await.map(|p| planned(&p))
        }
        Command::Capacity {
            cluster,
            capacity,
            duration,
            reason,
        } => {
            let request = request(
                OverrideKind::Capacity,
                cluster,
                Some(capacity),
                duration,
                reason,
                key,
            );
            control.plan(request, actor, now).await.map(|p| planned(&p))
        }
        Command::Apply { plan, confirm } => control
            .apply(&plan, actor, confirm, now)
            .await
            .map(|o| said(&o)),
        Command::Approve(id) => control.approve(&id, actor, now).await.map(|o| said(&o)),
        Command::Cancel(id) => control.cancel(&id, actor, now).await.map(|o| said(&o)),
    };
    answer.unwrap_or_else(|e| refused(&e))
}

/// Runs a queued chat request and posts its answer; a failure to post is logged.
pub async fn answer(
    control: &Control,
    reply: &dyn crate::ports::ChatReply,
    request: &crate::ports::ChatRequest,
    now: i64,
) {
    let text = match parse(&request.text) {
        Ok(command) => run(control, command, &request.user, &request.key, now).await,
        Err(usage) => usage,
    };
    if let Err(e) = reply.reply(&request.response_url, &text).await {
        tracing::warn!(error = %dispatcher_core::chain(&e), user = %request.user, "a chat answer was not posted");
    }
}

fn request(
    kind: OverrideKind,
    cluster: String,
    capacity: Option<u32>,
    duration: String,
    reason: String,
    key: &str,
) -> PlanRequest {
    PlanRequest {
        kind,
        cluster,
        capability: None,
        capacity,
        duration,
        reason,
        incident_url: None,
        idempotency_key: format!("chat-{key}"),
    }
}

fn refused(e: &ControlError) -> String {
    if e.is_refusal() {
        format!(":no_entry: refused ({}): {e}", e.code())
    } else {
        ":warning: the dispatcher could not do it now; nothing was changed. Try again in a minute."
            .to_owned()
    }
}

fn planned(p: &PlanRecord) -> String {
    let mut lines = vec![format!(
        "plan `{}` on generation {}: {} {} for {} moves {} jobs ({} demand, {:.1}% of all); needs {} approval(s); valid until {}",
        p.id,
        p.generation,
        p.request.kind.as_str(),
        p.request.cluster,
        p.request.duration,
        p.impact.moved_jobs,
        p.impact.moved_demand,
        p.impact.moved_share * 100.0,
        p.required_approvals,
        utc(p.valid_until)
    )];
    for m in &p.impact.moves {
        lines.push(format!(
            "  {} -> {}: {} jobs, {} demand",
            m.from,
            m.to.as_deref().unwrap_or("nowhere"),
            m.jobs,
            m.demand
        ));
    }
    if p.impact.unprotected_jobs > 0 {
        lines.push(format!(
            "  {} moved jobs still name {} in their static cluster: field; apply with `confirm` to accept",
            p.impact.unprotected_jobs, p.request.cluster
        ));
    }
    lines.push(format!("apply it: /dispatch apply {}", p.id));
    lines.join("\n")
}

fn said(o: &Override) -> String {
    let approvals: Vec<&str> = o.approvals.iter().map(|a| a.actor.as_str()).collect();
    let mut line = format!(
        "override `{}` ({}) is {}; approvals: {}",
        o.id,
        describe(o),
        o.state.as_str(),
        approvals.join(", ")
    );
    match o.state {
        super::State::Active => line.push_str(&format!("; ends {}", utc(o.expires_at))),
        super::State::Pending => line.push_str(&format!(
            "; needs {} more: /dispatch approve {}",
            o.required_approvals.saturating_sub(o.approvals.len()),
            o.id
        )),
        _ => {}
    }
    line
}

async fn status(control: &Control) -> Result<String, ControlError> {
    let s = control.status().await?;
    let mut lines = vec![format!(
        "generation {} ({}), published {}; {}",
        s.generation,
        s.cause.map_or("none", |c| c.as_str()),
        s.published_at.as_deref().unwrap_or("never"),
        s.propagation
    )];
    for o in s.active.iter().chain(&s.pending) {
        lines.push(format!("  {}", said(o)));
    }
    if s.active.is_empty() && s.pending.is_empty() {
        lines.push("  no override is active or pending".to_owned());
    }
    Ok(lines.join("\n"))
}

async fn explain(control: &Control, job: &str) -> Result<String, ControlError> {
    let Some(pointer) = control.stores.serving().await? else {
        return Ok("no generation is serving yet".to_owned());
    };
    let plan = crate::publish::load_plan(&control.stores, &pointer.snapshot).await?;
    let Some(entry) = plan.jobs.get(job) else {
        return Ok(format!(
            "generation {} has no job {job:?}",
            pointer.generation
        ));
    };
    let mut text = format!(
        "{job} runs on {} (generation {}): rule {}, file {}",
        entry.cluster.as_deref().unwrap_or("no cluster"),
        pointer.generation,
        entry.rule.as_str(),
        entry.file
    );
    if !entry.detail.is_empty() {
        text.push_str(&format!(" ({})", entry.detail));
    }
    let table = crate::publish::load_assignments(&control.stores, &pointer.snapshot).await?;
    if let Some(moved) = table.overridden.get(job) {
        text.push_str(&format!(
            "; moved by an override from {} until {}",
            moved.baseline.as_deref().unwrap_or("no cluster"),
            utc(moved.until)
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_as_written_and_anything_else_gets_the_usage() {
        assert_eq!(parse("status"), Ok(Command::Status));
        assert_eq!(
            parse("drain build03 1h nodes are failing"),
            Ok(Command::Drain {
                cluster: "build03".into(),
                duration: "1h".into(),
                reason: "nodes are failing".into()
            })
        );
        assert_eq!(
            parse("capacity build02 20 2h slow etcd"),
            Ok(Command::Capacity {
                cluster: "build02".into(),
                capacity: 20,
                duration: "2h".into(),
                reason: "slow etcd".into()
            })
        );
        assert_eq!(
            parse("apply plan-1 confirm"),
            Ok(Command::Apply {
                plan: "plan-1".into(),
                confirm: true
            })
        );
        assert_eq!(parse("approve ovr-1"), Ok(Command::Approve("ovr-1".into())));
        for bad in [
            "",
            "drain build03 1h",
            "capacity build02 lots 1h x",
            "rm -rf /",
            "approve",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
