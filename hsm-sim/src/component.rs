//! Clear key components, as security officers enter them: each is checked against the check
//! value its officer expects, and the components are combined by XOR so that no officer alone
//! knows anything of the key.

use crate::error::{HsmError, Result};
use std::fmt;
use ykt_crypto::{Kcv, SymmetricAlgorithm, SymmetricKey};
use zeroize::Zeroizing;

/// One clear key component with, optionally, the check value its officer read from the
/// component form. The bytes are wiped on drop and never shown by `Debug`.
#[derive(Clone)]
pub struct KeyComponent {
    bytes: Zeroizing<Vec<u8>>,
    expected_kcv: Option<Vec<u8>>,
}

impl KeyComponent {
    /// A component of clear bytes.
    pub fn new(bytes: &[u8]) -> Self {
        Self {
            bytes: Zeroizing::new(bytes.to_vec()),
            expected_kcv: None,
        }
    }

    /// The check value the component must have; forming a key refuses a component whose
    /// check value (default method of the algorithm) differs.
    pub fn with_expected_kcv(mut self, kcv: &[u8]) -> Self {
        self.expected_kcv = Some(kcv.to_vec());
        self
    }

    /// The component's check value with the default method of `algorithm`, shown to the
    /// officer who entered it.
    pub fn kcv(&self, algorithm: SymmetricAlgorithm) -> Result<Kcv> {
        Ok(Kcv::of(&self.as_key(algorithm, 1)?))
    }

    fn as_key(&self, algorithm: SymmetricAlgorithm, index: usize) -> Result<SymmetricKey> {
        if self.bytes.len() != algorithm.key_len() {
            return Err(HsmError::ComponentLength {
                index,
                expected: algorithm.key_len(),
                actual: self.bytes.len(),
            });
        }
        Ok(SymmetricKey::new(algorithm, &self.bytes)?)
    }
}

impl fmt::Debug for KeyComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyComponent")
            .field("bytes", &"<redacted>")
            .field("expected_kcv", &self.expected_kcv.is_some())
            .finish()
    }
}

/// The check values of a component ceremony: one per component, in the order entered, and the
/// one of the combined key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormedKcvs {
    /// Check value of each component.
    pub components: Vec<Kcv>,
    /// Check value of the combined key.
    pub combined: Kcv,
}

/// XORs 2 or 3 components of `algorithm`, checking each one's length and expected check value.
///
/// The clear result is for a key store's own import path (a PKCS#11 token's object creation);
/// the simulator seals it at once.
pub fn combine(
    algorithm: SymmetricAlgorithm,
    components: &[KeyComponent],
) -> Result<(SymmetricKey, FormedKcvs)> {
    if !(2..=3).contains(&components.len()) {
        return Err(HsmError::ComponentCount {
            actual: components.len(),
        });
    }
    let mut combined = Zeroizing::new([0u8; 32]);
    let mut kcvs = Vec::with_capacity(components.len());
    for (i, component) in components.iter().enumerate() {
        let key = component.as_key(algorithm, i + 1)?;
        let kcv = Kcv::of(&key);
        if let Some(expected) = &component.expected_kcv
            && kcv.value() != expected.as_slice()
        {
            return Err(HsmError::ComponentKcvMismatch { index: i + 1 });
        }
        for (out, b) in combined.iter_mut().zip(key.expose_secret()) {
            *out ^= b;
        }
        kcvs.push(kcv);
    }
    let key = SymmetricKey::new(algorithm, &combined[..algorithm.key_len()])?;
    let combined = Kcv::of(&key);
    Ok((
        key,
        FormedKcvs {
            components: kcvs,
            combined,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_xor_and_report_their_check_values() {
        let a = KeyComponent::new(&[0x0F; 16]);
        let b = KeyComponent::new(&[0xF1; 16]);
        let (key, kcvs) = combine(SymmetricAlgorithm::TripleDes, &[a.clone(), b]).unwrap();
        assert_eq!(key.expose_secret(), &[0xFE; 16]);
        assert_eq!(kcvs.components.len(), 2);
        assert_eq!(kcvs.combined, Kcv::of(&key));
        assert_eq!(
            kcvs.components[0],
            a.kcv(SymmetricAlgorithm::TripleDes).unwrap()
        );
    }

    #[test]
    fn bad_components_are_refused() {
        let a = KeyComponent::new(&[1; 16]);
        assert!(matches!(
            combine(SymmetricAlgorithm::Sm4, std::slice::from_ref(&a)),
            Err(HsmError::ComponentCount { actual: 1 })
        ));
        let short = KeyComponent::new(&[1; 8]);
        assert!(matches!(
            combine(SymmetricAlgorithm::Sm4, &[a.clone(), short]),
            Err(HsmError::ComponentLength { index: 2, .. })
        ));
        let wrong = KeyComponent::new(&[2; 16]).with_expected_kcv(&[0, 0, 0, 0, 0]);
        assert!(matches!(
            combine(SymmetricAlgorithm::Sm4, &[a, wrong]),
            Err(HsmError::ComponentKcvMismatch { index: 2 })
        ));
    }

    #[test]
    fn debug_never_shows_component_bytes() {
        let shown = format!("{:?}", KeyComponent::new(&[0xA5; 16]));
        assert!(shown.contains("redacted") && !shown.contains("165"));
    }
}
