//! The key file (type 3F) of a DF: FMCOS key records (`pboc-spec.md` §2.1) with their usage
//! and change rights, versions, next security states and error counters, and the PSAM's
//! application keys (`usage version algorithm key`, §6).

use crate::card::CardAlgorithm;
use crate::persist::hex_bytes;
use crate::security::Protection;
use serde::{Deserialize, Serialize};
use ykt_apdu::Sw;
use ykt_crypto::{SymmetricAlgorithm, SymmetricKey};
use zeroize::Zeroizing;

/// Base key types (the type byte without its protection bits).
pub(crate) mod kind {
    /// DES encryption key (INTERNAL AUTHENTICATE P1 = 00).
    pub const ENCRYPT: u8 = 0x30;
    /// DES decryption key (P1 = 01).
    pub const DECRYPT: u8 = 0x31;
    /// DES MAC key (P1 = 02).
    pub const MAC: u8 = 0x32;
    /// Internal key; on an ED/EP application the TAC key DTK.
    pub const INTERNAL: u8 = 0x34;
    /// Line-protection (maintenance) key.
    pub const LINE_PROTECTION: u8 = 0x36;
    /// PIN-unblock key.
    pub const PIN_UNBLOCK: u8 = 0x37;
    /// PIN-reload key.
    pub const PIN_RELOAD: u8 = 0x38;
    /// External-authentication key; ID 00 is the DF master key.
    pub const EXTERNAL: u8 = 0x39;
    /// Personal identification number.
    pub const PIN: u8 = 0x3A;
    /// Purchase key DPK.
    pub const PURCHASE: u8 = 0x3E;
    /// Load key DLK.
    pub const LOAD: u8 = 0x3F;

    /// Every base type a key record may have.
    pub const ALL: [u8; 15] = [
        0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x3C, 0x3D, 0x3E, 0x3F,
    ];
}

/// Clear key or PIN bytes: wiped on drop, hex in the state file, never shown by `Debug`.
#[derive(Clone)]
pub(crate) struct Secret(Zeroizing<Vec<u8>>);

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        hex_bytes::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        hex_bytes::deserialize(d).map(|bytes| Self(Zeroizing::new(bytes)))
    }
}

impl Secret {
    pub fn new(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The key for this card's algorithm: 8 bytes is single DES (3DES cards only), 16 bytes
    /// two-key 3DES or SM4.
    pub fn key(&self, algorithm: CardAlgorithm) -> Result<SymmetricKey, Sw> {
        let alg = match (self.0.len(), algorithm) {
            (8, CardAlgorithm::TripleDes) => SymmetricAlgorithm::Des,
            (16, CardAlgorithm::TripleDes) => SymmetricAlgorithm::TripleDes,
            (16, CardAlgorithm::Sm4) => SymmetricAlgorithm::Sm4,
            _ => return Err(Sw::FileInvalidated),
        };
        SymmetricKey::new(alg, &self.0).map_err(|_| Sw::FileInvalidated)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One key record: `type usage change p4 p5 secret`, where p4 is the version (group A), the
/// next security state (39, 3A) or FF, and p5 the algorithm ID (group A) or the error counter
/// (high nibble tries allowed, low nibble tries left).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    /// Type byte as written, protection bits included.
    pub type_byte: u8,
    /// Key ID (P2 of WRITE KEY).
    pub id: u8,
    /// Usage right (XY).
    pub usage: u8,
    /// Change right (XY).
    pub change: u8,
    /// Version, next state or FF.
    pub p4: u8,
    /// Algorithm ID or error counter.
    pub p5: u8,
    /// The key or PIN.
    pub secret: Secret,
}

impl KeyRecord {
    /// Parses WRITE KEY data for key `id`; 6A80 when it is not a key record.
    pub fn parse(id: u8, data: &[u8]) -> Result<Self, Sw> {
        let [type_byte, usage, change, p4, p5, secret @ ..] = data else {
            return Err(Sw::WrongData);
        };
        let base = type_byte & 0x3F;
        let secret_ok = if base == kind::PIN {
            (2..=8).contains(&secret.len())
        } else {
            matches!(secret.len(), 8 | 16)
        };
        if !kind::ALL.contains(&base) || !secret_ok {
            return Err(Sw::WrongData);
        }
        Ok(Self {
            type_byte: *type_byte,
            id,
            usage: *usage,
            change: *change,
            p4: *p4,
            p5: *p5,
            secret: Secret::new(secret),
        })
    }

    /// The base type (30..3F).
    pub fn base(&self) -> u8 {
        self.type_byte & 0x3F
    }

    /// How a modification of this key must be protected.
    pub fn protection(&self) -> Protection {
        Protection::of_type(self.type_byte)
    }

    /// Whether failed verifications count against this key (external authentication, PIN,
    /// PIN unblock and reload).
    pub fn counts_failures(&self) -> bool {
        matches!(
            self.base(),
            kind::PIN_UNBLOCK | kind::PIN_RELOAD | kind::EXTERNAL | kind::PIN
        )
    }

    /// Tries left (counting keys).
    pub fn tries_left(&self) -> u8 {
        self.p5 & 0x0F
    }

    /// Whether the key is blocked (a counting key with no tries left).
    pub fn blocked(&self) -> bool {
        self.counts_failures() && self.tries_left() == 0
    }

    /// Takes one try (before the verification).
    pub fn take_try(&mut self) {
        self.p5 = (self.p5 & 0xF0) | self.tries_left().saturating_sub(1);
    }

    /// Gives all tries back (after a successful verification).
    pub fn reset_tries(&mut self) {
        self.p5 = (self.p5 & 0xF0) | (self.p5 >> 4);
    }

    /// Storage the record takes in the key file.
    fn footprint(&self) -> usize {
        6 + self.secret.expose().len()
    }
}

/// A PSAM application key: usage byte `level << 5 | type`, version, algorithm ID and key (the
/// record of the B-psam WRITE KEY trace, `pboc-spec.md` §6).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PsamKey {
    /// `diversification level << 5 | type`.
    pub usage: u8,
    /// Key version (the card's purchase key version selects it).
    pub version: u8,
    /// Algorithm ID as written (00 3DES, 04 SM4).
    pub algorithm_id: u8,
    /// The key.
    pub secret: Secret,
}

/// PSAM key type codes (low 5 bits of the usage byte).
pub(crate) mod psam_type {
    /// Purchase master key.
    pub const PURCHASE: u8 = 2;
    /// MAC key (80FA P1 = 05).
    pub const MAC: u8 = 6;
    /// Encryption key (80FA P1 = 00).
    pub const ENCRYPT: u8 = 7;
    /// MAC and encryption key.
    pub const MAC_ENCRYPT: u8 = 8;
}

impl PsamKey {
    /// Parses `usage version algorithm key(8/16)`.
    pub fn parse(data: &[u8]) -> Result<Self, Sw> {
        match data {
            [usage, version, algorithm_id, key @ ..] if matches!(key.len(), 8 | 16) => Ok(Self {
                usage: *usage,
                version: *version,
                algorithm_id: *algorithm_id,
                secret: Secret::new(key),
            }),
            _ => Err(Sw::WrongData),
        }
    }

    /// Diversification levels (usage bits 8..6).
    pub fn level(&self) -> usize {
        usize::from(self.usage >> 5)
    }

    /// Key type (usage bits 5..1).
    pub fn key_type(&self) -> u8 {
        self.usage & 0x1F
    }

    fn footprint(&self) -> usize {
        3 + self.secret.expose().len()
    }
}

/// A key file: its header and records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyFile {
    /// Space for records.
    pub size: u16,
    /// The DF short identifier byte of the header (kept as is).
    pub df_sfi: u8,
    /// Right to add keys.
    pub add_right: u8,
    /// FMCOS key records.
    pub keys: Vec<KeyRecord>,
    /// PSAM application keys.
    pub psam_keys: Vec<PsamKey>,
}

impl KeyFile {
    /// The key of base type `base` with `id`.
    pub fn find(&self, base: u8, id: u8) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| k.base() == base && k.id == id)
    }

    /// The same, mutably.
    pub fn find_mut(&mut self, base: u8, id: u8) -> Option<&mut KeyRecord> {
        self.keys
            .iter_mut()
            .find(|k| k.base() == base && k.id == id)
    }

    /// The key of base type `base` with the lowest ID (the TAC, PIN-unblock and PIN-reload keys
    /// are used this way).
    pub fn first(&self, base: u8) -> Option<&KeyRecord> {
        self.keys
            .iter()
            .filter(|k| k.base() == base)
            .min_by_key(|k| k.id)
    }

    /// The PSAM key with `usage` and `version`.
    pub fn psam_key(&self, usage: u8, version: u8) -> Option<&PsamKey> {
        self.psam_keys
            .iter()
            .find(|k| k.usage == usage && k.version == version)
    }

    /// Whether `extra` more bytes of records fit.
    pub fn fits(&self, extra: usize) -> bool {
        let used: usize = self.keys.iter().map(KeyRecord::footprint).sum::<usize>()
            + self.psam_keys.iter().map(PsamKey::footprint).sum::<usize>();
        used + extra <= usize::from(self.size)
    }

    /// Adds `key`: 6A84 when the file is full.
    pub fn add(&mut self, key: KeyRecord) -> Result<(), Sw> {
        if !self.fits(key.footprint()) {
            return Err(Sw::NotEnoughSpace);
        }
        self.keys.push(key);
        Ok(())
    }

    /// Adds or replaces the PSAM key with the same usage and version.
    pub fn put_psam_key(&mut self, key: PsamKey) -> Result<(), Sw> {
        self.psam_keys
            .retain(|k| (k.usage, k.version) != (key.usage, key.version));
        if !self.fits(key.footprint()) {
            return Err(Sw::NotEnoughSpace);
        }
        self.psam_keys.push(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_and_count() {
        let mut k =
            KeyRecord::parse(0, &hex::decode("39F0F0AA33FFFFFFFFFFFFFFFF").unwrap()).unwrap();
        assert_eq!((k.base(), k.tries_left(), k.blocked()), (0x39, 3, false));
        k.take_try();
        k.take_try();
        k.take_try();
        assert!(k.blocked());
        k.reset_tries();
        assert_eq!(k.tries_left(), 3);
        assert_eq!(format!("{:?}", k.secret), "<redacted>");
        assert_eq!(
            KeyRecord::parse(0, &[0x3B, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap_err(),
            Sw::WrongData
        );
        assert!(KeyRecord::parse(0, &[0x3A, 0xF0, 0xEF, 0x01, 0x33, 0x12]).is_err());
        assert!(KeyRecord::parse(0, &[0x3A, 0xF0, 0xEF, 0x01, 0x33, 0x12, 0x34]).is_ok());
        assert_eq!(
            PsamKey::parse(&hex::decode("420000112233445566778899AABBCCDDEEFF00").unwrap())
                .unwrap()
                .level(),
            2
        );
    }
}
