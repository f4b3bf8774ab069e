//! The tenant_access_token, cached: fetched on first use, refreshed some minutes before it
//! expires, and dropped when an API call says it is invalid (codes 99991663..=99991668).

use std::time::{Duration, Instant};

/// Codes Feishu answers when the token is invalid or expired: refresh and retry.
pub const INVALID_TOKEN_CODES: std::ops::RangeInclusive<i64> = 99_991_663..=99_991_668;

/// Refreshed this long before it expires (tokens last two hours).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

#[derive(Clone)]
pub struct Token {
    value: String,
    /// When it should be replaced (expiry minus the margin).
    renew_at: Instant,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("value", &"<redacted>").field("renew_at", &self.renew_at).finish()
    }
}

impl Token {
    /// A token valid for `expire` (as Feishu reports it) from `now`. A short life is renewed
    /// at half of it, so even a token for a few minutes is used for a while.
    pub fn new(value: String, expire: Duration, now: Instant) -> Self {
        let keep = if expire > REFRESH_MARGIN * 2 { expire - REFRESH_MARGIN } else { expire / 2 };
        Token { value, renew_at: now + keep }
    }

    pub fn fresh(&self, now: Instant) -> bool {
        now < self.renew_at
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewed_before_expiry() {
        let now = Instant::now();
        let t = Token::new("t-1".into(), Duration::from_secs(7200), now);
        assert!(t.fresh(now + Duration::from_secs(6000)));
        assert!(!t.fresh(now + Duration::from_secs(6900)));
        let short = Token::new("t-2".into(), Duration::from_secs(60), now);
        assert!(short.fresh(now + Duration::from_secs(29)) && !short.fresh(now + Duration::from_secs(31)));
        assert!(!format!("{t:?}").contains("t-1"), "the token is never printed");
        assert!(INVALID_TOKEN_CODES.contains(&99_991_663) && INVALID_TOKEN_CODES.contains(&99_991_668));
    }
}
