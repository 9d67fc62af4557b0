//! The retry schedule shared by everything that calls Meta again after a failure: the
//! worker's lead fetches, the Graph pause after a rate limit, and the sync's next try.

use std::time::Duration;

/// The retry schedule: about `base`, 2×, 4×… with ±20% jitter, capped at `cap`.
pub fn backoff(attempt: i64, base: Duration, cap: Duration) -> Duration {
    let exp = attempt.clamp(1, 30) as u32 - 1;
    let raw = base.saturating_mul(2u32.saturating_pow(exp)).min(cap);
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let jitter = (u16::from_le_bytes(b) as f64 / u16::MAX as f64) * 0.4 + 0.8; // 0.8 ..= 1.2
    raw.mul_f64(jitter).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(300);
        for (attempt, nominal) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)] {
            let d = backoff(attempt, base, cap).as_secs_f64();
            assert!(
                d >= nominal * 0.8 - 1e-9 && d <= nominal * 1.2 + 1e-9,
                "{attempt}: {d}"
            );
        }
        assert!(backoff(30, base, cap) <= cap);
        assert!(backoff(1000, base, cap) <= cap);
    }
}
