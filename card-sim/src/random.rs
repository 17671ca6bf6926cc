//! Where the card's challenges and transaction randoms come from: the operating system, or a
//! deterministic source for tests (a seed, optionally preceded by scripted bytes).

use std::collections::VecDeque;
use ykt_apdu::Sw;

/// The card's random number source.
///
/// A real card draws from its hardware generator ([`RandomSource::os`]). Tests and trace
/// replays use [`RandomSource::seeded`], and [`RandomSource::push`] queues exact bytes that are
/// handed out before anything else (for example the random of a published trace).
#[derive(Debug, Clone)]
pub struct RandomSource {
    scripted: VecDeque<u8>,
    generator: Generator,
}

#[derive(Debug, Clone)]
enum Generator {
    Os,
    SplitMix(u64),
}

impl RandomSource {
    /// The operating system's CSPRNG.
    pub fn os() -> Self {
        Self {
            scripted: VecDeque::new(),
            generator: Generator::Os,
        }
    }

    /// A deterministic, reproducible stream (SplitMix64) from `seed`. Not for real cards.
    pub fn seeded(seed: u64) -> Self {
        Self {
            scripted: VecDeque::new(),
            generator: Generator::SplitMix(seed),
        }
    }

    /// Queues `bytes` to be returned, in order, before the generator is used again.
    pub fn push(&mut self, bytes: &[u8]) {
        self.scripted.extend(bytes);
    }

    /// `n` random bytes. Fails (6F00) only if the operating system's source fails.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Vec<u8>, Sw> {
        let from_script = n.min(self.scripted.len());
        let mut out: Vec<u8> = self.scripted.drain(..from_script).collect();
        let mut rest = vec![0u8; n - from_script];
        match &mut self.generator {
            Generator::Os => {
                ykt_crypto::random::fill(&mut rest).map_err(|_| Sw::NoPreciseDiagnosis)?;
            }
            Generator::SplitMix(state) => {
                for chunk in rest.chunks_mut(8) {
                    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let mut z = *state;
                    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                    z ^= z >> 31;
                    chunk.copy_from_slice(&z.to_be_bytes()[..chunk.len()]);
                }
            }
        }
        out.extend_from_slice(&rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_comes_first_then_the_seeded_stream_is_reproducible() {
        let mut a = RandomSource::seeded(7);
        a.push(&[1, 2, 3]);
        assert_eq!(a.bytes(2).unwrap(), [1, 2]);
        let mixed = a.bytes(4).unwrap();
        assert_eq!(mixed[0], 3);
        let mut b = RandomSource::seeded(7);
        assert_eq!(&b.bytes(3).unwrap(), &mixed[1..]);
        assert_eq!(RandomSource::os().bytes(8).unwrap().len(), 8);
    }
}
