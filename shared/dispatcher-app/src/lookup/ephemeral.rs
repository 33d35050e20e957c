//! The bound on new ephemeral choices: each writes to the store, so one instance makes
//! them at most so fast.

/// How fast one lookup instance makes new ephemeral choices, each of which writes to the
/// store: a token bucket of `burst` tokens refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EphemeralLimit {
    /// Tokens added per second (a fraction allowed).
    pub per_second: f64,
    /// The most new choices at once, after a quiet spell.
    pub burst: u32,
}

impl Default for EphemeralLimit {
    /// 20 a second with a burst of 100: openshift/release starts a few ephemeral cluster
    /// jobs a minute, so only a flood of made-up names meets the limit.
    fn default() -> Self {
        Self {
            per_second: 20.0,
            burst: 100,
        }
    }
}

/// A token bucket on the caller's clock (seconds since the epoch). Whole seconds are fine
/// grained enough: the bucket then refills in steps of `per_second`, never past `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    limit: EphemeralLimit,
    tokens: f64,
    /// The latest time seen; `None` before the first take (the bucket starts full).
    at: Option<i64>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: EphemeralLimit) -> Self {
        Self {
            limit,
            tokens: f64::from(limit.burst),
            at: None,
        }
    }

    /// Takes one token at `now`; `false` (and nothing taken) when the bucket is empty.
    pub fn take(&mut self, now: i64) -> bool {
        if let Some(at) = self.at {
            // A clock that steps back adds nothing, and the bucket keeps the later time.
            let elapsed = now.saturating_sub(at).max(0) as f64;
            self.tokens =
                (self.tokens + elapsed * self.limit.per_second).min(f64::from(self.limit.burst));
        }
        self.at = Some(self.at.map_or(now, |at| at.max(now)));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
