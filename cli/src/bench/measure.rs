//! The timing loop: a calibrated batch size so the clock is read rarely, then batches until
//! the time budget is spent.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// A batch lasts at least this fraction of the budget once calibrated.
const BATCHES_PER_BUDGET: u32 = 50;

/// Calls `op(0)`, `op(1)`, ... for about `seconds` on this thread and returns the calls per
/// second. The argument lets each call work on different input, so nothing can be hoisted out
/// of the loop; the first error stops the measurement. Calibration doubles as warm-up.
pub fn ops_per_second<E>(seconds: f64, mut op: impl FnMut(u64) -> Result<(), E>) -> Result<f64, E> {
    let budget = Duration::from_secs_f64(seconds);
    let mut counter = 0u64;
    let mut run_batch = |batch: u64| -> Result<Duration, E> {
        let start = Instant::now();
        for _ in 0..batch {
            op(black_box(counter))?;
            counter = counter.wrapping_add(1);
        }
        Ok(start.elapsed())
    };
    let mut batch = 1u64;
    while run_batch(batch)? < budget / BATCHES_PER_BUDGET {
        batch *= 2;
    }
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < budget {
        run_batch(batch)?;
        done += batch;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_calls_with_distinct_arguments() {
        let mut last = None;
        let rate = ops_per_second(0.01, |i| {
            assert_ne!(Some(i), last);
            last = Some(i);
            Ok::<_, ()>(())
        })
        .unwrap();
        assert!(rate > 1000.0);
    }

    #[test]
    fn an_error_stops_the_measurement() {
        let result = ops_per_second(0.01, |i| {
            if i == 3 {
                Err(ykt_crypto::CryptoError::Mismatch("TAC"))
            } else {
                Ok(())
            }
        });
        assert_eq!(result, Err(ykt_crypto::CryptoError::Mismatch("TAC")));
    }
}
