//! Key blocks: a key exported under a key-encryption key (KEK) with its attributes in a clear,
//! authenticated header, modelled on ANSI X9.143 / ASC X9 TR-31 key block version D (the AES
//! key block binding method). The same format carries custody backups
//! ([`crate::Hsm::custody_split`]), told apart by their version ID.
//!
//! # Format
//!
//! A key block is 144 ASCII characters: a 16-character header, the encrypted key field in
//! upper-case hex (96 characters) and the MAC in upper-case hex (32 characters).
//!
//! ```text
//! offset  len  field                      ykt value
//!  0       1   version ID                 'D' (AES KEK), '1' (SM4 KEK), '2' (custody)
//!  1       4   key block length           "0144" (decimal, whole block)
//!  5       2   key usage                  see the table below
//!  7       1   algorithm                  see the table below
//!  8       1   mode of use                see the table below
//!  9       2   key version number         the version byte as two upper-case hex digits
//! 11       1   exportability              'E', 'N' or '1' (see below)
//! 12       2   number of optional blocks  "00" (ykt writes and accepts none)
//! 14       2   reserved                   "00"
//! ```
//!
//! # Mapping of ykt attributes onto header codes
//!
//! TR-31 codes are used where TR-31 has an equivalent; elsewhere ykt uses the numeric values
//! TR-31 reserves for proprietary use.
//!
//! | ykt attribute                 | header code | origin                                     |
//! |-------------------------------|-------------|--------------------------------------------|
//! | usage key encryption (KEK)    | `K0`        | TR-31 key encryption or wrapping           |
//! | usage purchase                | `01`        | proprietary                                |
//! | usage load                    | `02`        | proprietary                                |
//! | usage TAC                     | `03`        | proprietary                                |
//! | usage unload                  | `04`        | proprietary                                |
//! | usage overdraft               | `05`        | proprietary                                |
//! | usage maintenance             | `06`        | proprietary                                |
//! | usage PIN unblock             | `07`        | proprietary                                |
//! | usage PIN reload              | `08`        | proprietary                                |
//! | usage external auth           | `09`        | proprietary                                |
//! | usage application master      | `10`        | proprietary                                |
//! | usage signature (custody only)| `S0`        | TR-31 asymmetric key pair for signature    |
//! | algorithm AES-128 / AES-256   | `A`         | TR-31 AES (the length is in the key field) |
//! | algorithm 3DES (two-key)      | `T`         | TR-31 TDEA (128-bit key length)            |
//! | algorithm SM4                 | `1`         | proprietary                                |
//! | algorithm P-256 (custody only)| `E`         | TR-31 elliptic curve (256-bit key length)  |
//! | algorithm SM2 (custody only)  | `2`         | proprietary                                |
//! | mode derive                   | `X`         | TR-31 key used to derive other keys        |
//! | mode MAC                      | `C`         | TR-31 both generate and verify             |
//! | mode encrypt                  | `B`         | TR-31 both encrypt/wrap and decrypt/unwrap |
//! | modes derive + MAC            | `1`         | proprietary                                |
//! | modes derive + encrypt        | `2`         | proprietary                                |
//! | modes MAC + encrypt           | `3`         | proprietary                                |
//! | modes derive + MAC + encrypt  | `4`         | proprietary                                |
//! | mode sign (custody only)      | `S`         | TR-31 signature only                       |
//! | exportable under a KEK        | `E`         | TR-31 exportable under a trusted key       |
//! | not exportable                | `N`         | TR-31 non-exportable                       |
//! | only derived keys exportable  | `1`         | proprietary                                |
//!
//! Signature keys (SM2, P-256) are never exportable in ykt, so no export block carries them: a
//! block with version ID `D` or `1` and the signature usage, an asymmetric algorithm or the
//! sign mode is malformed. Only keys with [`Exportability::UnderKek`] are exported, so export
//! blocks made by ykt always carry `E`; the other two codes are read so that a block from
//! another issuer keeps its meaning.
//!
//! # Custody blocks
//!
//! A custody block holds a key backed up for its custodians, whatever its exportability and
//! including SM2 and P-256 private keys (the 32-byte scalar fills the key field as an AES-256
//! key does), under a one-time AES-256 custody KEK that exists outside the HSM only as Shamir
//! shares. It is a version D block in every respect but its version ID, the proprietary `2`,
//! and it carries the key's own exportability (`N` for most masters). The version ID is under
//! the MAC, so a custody block cannot pass for an export block or the reverse: import refuses
//! a custody block and custody recovery refuses an export block before any cryptography, and
//! a block whose version ID was edited fails its MAC.
//!
//! # Binding (TR-31 version D, and its SM4 counterpart)
//!
//! Two keys are derived from the KEK (the key block protection key) with the CMAC-based
//! counter-mode KDF of NIST SP 800-108, as TR-31 version D does: for each output block `i`,
//!
//! ```text
//! CMAC(KEK, i(1) || usage(2) || 00 || algorithm(2) || length in bits(2))
//! usage:     0000 for the encryption key, 0001 for the MAC key
//! algorithm: 0002 AES-128, 0004 AES-256 (TR-31), 8004 SM4 (ykt's value, outside TR-31's range)
//! ```
//!
//! giving an encryption key and a MAC key of the KEK's own algorithm and length (two CMAC
//! blocks for AES-256, one for AES-128 and SM4). An SM4 KEK uses SM4-CMAC and SM4 wherever
//! version D uses AES; its blocks carry the proprietary version ID `1` so that the binding
//! method is itself authenticated.
//!
//! The key field is `key length in bits(2) || key || random padding`, always 48 bytes: every
//! key is padded to the length of the longest one (TR-31's masked key length), so the block
//! does not reveal whether it holds a 128- or a 256-bit key. Then, as in version D:
//!
//! ```text
//! MAC        = CMAC(MAC key, header || clear key field)                  (16 bytes)
//! ciphertext = CBC(encryption key, IV = MAC, clear key field)
//! ```
//!
//! The MAC covers every header character, so a header edited in any field, a changed
//! ciphertext or MAC, or a wrong KEK makes the block fail verification on import; the MAC is
//! compared in constant time, and nothing of the key field (not even its length) is read
//! before it verifies.
//!
//! # Simplifications
//!
//! - No optional blocks (key set identifiers, KCV, time stamps...): the count is always `00`.
//! - The key version number carries ykt's version byte as two hex digits. TR-31 reads `00` as
//!   "no versioning" and a leading lower-case `c` as a key component; ykt writes upper-case
//!   hex only, so a version never looks like a component.
//! - Only AES-128, AES-256 and SM4 KEKs; TDES KEKs (TR-31 versions A, B, C) are refused.
//!   Custody blocks are bound to AES KEKs only.

use crate::attributes::{Exportability, KeyAlgorithm, KeyAttributes, KeyUsage, Modes};
use crate::error::{HsmError, Result};
use std::fmt;
use ykt_crypto::mac::{cmac, verify};
use ykt_crypto::{BlockCipher, SymmetricAlgorithm, SymmetricKey};
use zeroize::Zeroizing;

const HEADER_LEN: usize = 16;
/// Length of the clear key field: 2-byte length, up to 32 key bytes, padding to 3 blocks.
const KEY_FIELD_LEN: usize = 48;
const MAC_LEN: usize = 16;
const BLOCK_LEN: usize = HEADER_LEN + 2 * (KEY_FIELD_LEN + MAC_LEN);
const BLOCK_LEN_TEXT: &[u8; 4] = b"0144";
const _: () = assert!(BLOCK_LEN == 144);

const USAGES: [(KeyUsage, &[u8; 2]); 12] = [
    (KeyUsage::KeyEncryption, b"K0"),
    (KeyUsage::Purchase, b"01"),
    (KeyUsage::Load, b"02"),
    (KeyUsage::Tac, b"03"),
    (KeyUsage::Unload, b"04"),
    (KeyUsage::Overdraft, b"05"),
    (KeyUsage::Maintenance, b"06"),
    (KeyUsage::PinUnblock, b"07"),
    (KeyUsage::PinReload, b"08"),
    (KeyUsage::ExternalAuth, b"09"),
    (KeyUsage::AppMaster, b"10"),
    (KeyUsage::Signature, b"S0"),
];

/// The mode-of-use codes.
fn modes_table() -> [(Modes, u8); 8] {
    [
        (Modes::DERIVE, b'X'),
        (Modes::MAC, b'C'),
        (Modes::ENCRYPT, b'B'),
        (Modes::DERIVE | Modes::MAC, b'1'),
        (Modes::DERIVE | Modes::ENCRYPT, b'2'),
        (Modes::MAC | Modes::ENCRYPT, b'3'),
        (Modes::DERIVE | Modes::MAC | Modes::ENCRYPT, b'4'),
        (Modes::SIGN, b'S'),
    ]
}

const fn exportability_code(exportability: Exportability) -> u8 {
    match exportability {
        Exportability::UnderKek => b'E',
        Exportability::None => b'N',
        Exportability::DerivedOnly => b'1',
    }
}

const fn exportability_from_code(code: u8) -> Option<Exportability> {
    match code {
        b'E' => Some(Exportability::UnderKek),
        b'N' => Some(Exportability::None),
        b'1' => Some(Exportability::DerivedOnly),
        _ => None,
    }
}

/// How a block is bound to its KEK: the version ID of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Binding {
    /// TR-31 version D: AES-128 or AES-256 KEK, AES-CMAC KDF and MAC, AES-CBC. Version ID `D`.
    Aes,
    /// The same construction with SM4: SM4 KEK, SM4-CMAC KDF and MAC, SM4-CBC. Version ID `1`
    /// (proprietary).
    Sm4,
}

/// What a block is for, also told by the version ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// A key exported under a KEK, to be imported by [`crate::Hsm::import_key`]. Version ID
    /// `D` or `1`.
    Export,
    /// A custody backup under a one-time KEK held as shares, to be recovered by
    /// [`crate::Hsm::custody_recover`]. Version ID `2`.
    Custody,
}

impl BlockKind {
    /// The command that opens a block of this kind.
    const fn operation(self) -> &'static str {
        match self {
            Self::Export => "key import",
            Self::Custody => "custody recovery",
        }
    }
}

/// The version IDs ykt writes and reads: binding method and kind of block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum VersionId {
    /// `D`: TR-31 version D export block.
    AesExport,
    /// `1`: the SM4 counterpart of version D, export block.
    Sm4Export,
    /// `2`: version D custody block.
    AesCustody,
}

impl VersionId {
    fn of(binding: Binding, kind: BlockKind) -> Result<Self> {
        match (binding, kind) {
            (Binding::Aes, BlockKind::Export) => Ok(Self::AesExport),
            (Binding::Sm4, BlockKind::Export) => Ok(Self::Sm4Export),
            (Binding::Aes, BlockKind::Custody) => Ok(Self::AesCustody),
            (Binding::Sm4, BlockKind::Custody) => Err(HsmError::Forbidden {
                operation: "custody split",
                reason: "custody blocks are bound to an AES KEK",
            }),
        }
    }

    const fn code(self) -> u8 {
        match self {
            Self::AesExport => b'D',
            Self::Sm4Export => b'1',
            Self::AesCustody => b'2',
        }
    }

    const fn from_code(code: u8) -> Option<Self> {
        match code {
            b'D' => Some(Self::AesExport),
            b'1' => Some(Self::Sm4Export),
            b'2' => Some(Self::AesCustody),
            _ => None,
        }
    }

    const fn binding(self) -> Binding {
        match self {
            Self::AesExport | Self::AesCustody => Binding::Aes,
            Self::Sm4Export => Binding::Sm4,
        }
    }

    const fn kind(self) -> BlockKind {
        match self {
            Self::AesExport | Self::Sm4Export => BlockKind::Export,
            Self::AesCustody => BlockKind::Custody,
        }
    }
}

/// The header's algorithm family: AES-128 and AES-256 share `A`, told apart by the key length
/// in the (authenticated) key field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Family {
    Aes,
    TripleDes,
    Sm4,
    P256,
    Sm2,
}

impl Family {
    const fn of(algorithm: KeyAlgorithm) -> Self {
        match algorithm {
            KeyAlgorithm::Aes128 | KeyAlgorithm::Aes256 => Self::Aes,
            KeyAlgorithm::TripleDes => Self::TripleDes,
            KeyAlgorithm::Sm4 => Self::Sm4,
            KeyAlgorithm::P256 => Self::P256,
            KeyAlgorithm::Sm2 => Self::Sm2,
        }
    }

    const fn code(self) -> u8 {
        match self {
            Self::Aes => b'A',
            Self::TripleDes => b'T',
            Self::Sm4 => b'1',
            Self::P256 => b'E',
            Self::Sm2 => b'2',
        }
    }

    const fn from_code(code: u8) -> Option<Self> {
        match code {
            b'A' => Some(Self::Aes),
            b'T' => Some(Self::TripleDes),
            b'1' => Some(Self::Sm4),
            b'E' => Some(Self::P256),
            b'2' => Some(Self::Sm2),
            _ => None,
        }
    }

    const fn is_asymmetric(self) -> bool {
        matches!(self, Self::P256 | Self::Sm2)
    }

    /// The algorithm of a key of this family and length in bits.
    const fn resolve(self, bits: u16) -> Option<KeyAlgorithm> {
        match (self, bits) {
            (Self::Aes, 128) => Some(KeyAlgorithm::Aes128),
            (Self::Aes, 256) => Some(KeyAlgorithm::Aes256),
            (Self::TripleDes, 128) => Some(KeyAlgorithm::TripleDes),
            (Self::Sm4, 128) => Some(KeyAlgorithm::Sm4),
            (Self::P256, 256) => Some(KeyAlgorithm::P256),
            (Self::Sm2, 256) => Some(KeyAlgorithm::Sm2),
            _ => None,
        }
    }
}

/// The decoded header of a key block. Its fields are authenticated only once the block is
/// imported under its KEK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyBlockHeader {
    id: VersionId,
    usage: KeyUsage,
    family: Family,
    modes: Modes,
    version: u8,
    exportability: Exportability,
}

impl KeyBlockHeader {
    fn new(attributes: &KeyAttributes, binding: Binding, kind: BlockKind) -> Result<Self> {
        let header = Self {
            id: VersionId::of(binding, kind)?,
            usage: attributes.usage(),
            family: Family::of(attributes.algorithm()),
            modes: attributes.modes(),
            version: attributes.version(),
            exportability: attributes.exportability(),
        };
        if header.is_asymmetric_export() {
            return Err(HsmError::Forbidden {
                operation: "key export",
                reason: "asymmetric keys travel only in custody blocks",
            });
        }
        Ok(header)
    }

    /// True for an export header with a signature usage, algorithm or mode.
    fn is_asymmetric_export(&self) -> bool {
        self.id.kind() == BlockKind::Export
            && (self.family.is_asymmetric()
                || self.usage == KeyUsage::Signature
                || self.modes.contains(Modes::SIGN))
    }

    /// How the block is bound to its KEK (from the version ID).
    pub fn binding(&self) -> Binding {
        self.id.binding()
    }

    /// Whether the block is an export or a custody block (from the version ID).
    pub fn kind(&self) -> BlockKind {
        self.id.kind()
    }

    /// The usage of the key carried.
    pub fn usage(&self) -> KeyUsage {
        self.usage
    }

    /// The modes of use of the key carried.
    pub fn modes(&self) -> Modes {
        self.modes
    }

    /// The key version byte.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The exportability the key keeps once imported.
    pub fn exportability(&self) -> Exportability {
        self.exportability
    }

    fn encode(&self) -> Result<[u8; HEADER_LEN]> {
        let unmapped = |reason| HsmError::Forbidden {
            operation: "key export",
            reason,
        };
        let usage = USAGES
            .iter()
            .find(|(u, _)| *u == self.usage)
            .ok_or(unmapped("the key's usage has no key block code"))?
            .1;
        let mode = modes_table()
            .into_iter()
            .find(|(m, _)| *m == self.modes)
            .ok_or(unmapped("the key's modes of use have no key block code"))?
            .1;
        let [version_hi, version_lo] = hex_pair(self.version);
        let mut header = [b'0'; HEADER_LEN];
        header[0] = self.id.code();
        header[1..5].copy_from_slice(BLOCK_LEN_TEXT);
        header[5..7].copy_from_slice(usage);
        header[7] = self.family.code();
        header[8] = mode;
        header[9] = version_hi;
        header[10] = version_lo;
        header[11] = exportability_code(self.exportability);
        Ok(header)
    }

    fn decode(header: &[u8; HEADER_LEN]) -> Result<Self> {
        let bad = HsmError::MalformedKeyBlock;
        let id = VersionId::from_code(header[0]).ok_or(bad("unsupported version ID"))?;
        if header[1..5] != BLOCK_LEN_TEXT[..] {
            return Err(bad("key block length field does not match"));
        }
        let usage = USAGES
            .iter()
            .find(|(_, c)| c[..] == header[5..7])
            .ok_or(bad("unknown key usage"))?
            .0;
        let family = Family::from_code(header[7]).ok_or(bad("unknown algorithm"))?;
        let modes = modes_table()
            .into_iter()
            .find(|(_, c)| *c == header[8])
            .ok_or(bad("unknown mode of use"))?
            .0;
        let version = match (hex_value(header[9]), hex_value(header[10])) {
            (Some(hi), Some(lo)) => (hi << 4) | lo,
            _ => return Err(bad("key version number is not two hex digits")),
        };
        let exportability =
            exportability_from_code(header[11]).ok_or(bad("unknown exportability"))?;
        if &header[12..14] != b"00" {
            return Err(bad("optional blocks are not supported"));
        }
        if &header[14..16] != b"00" {
            return Err(bad("reserved field is not 00"));
        }
        let decoded = Self {
            id,
            usage,
            family,
            modes,
            version,
            exportability,
        };
        if decoded.is_asymmetric_export() {
            return Err(bad("asymmetric keys travel only in custody blocks"));
        }
        Ok(decoded)
    }
}

/// A key block as text: header, encrypted key field and MAC. Parsing checks its syntax and
/// header codes only; the MAC is checked when the block is imported under its KEK.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyBlock {
    text: String,
    header: KeyBlockHeader,
}

impl KeyBlock {
    /// Parses a key block. Any text that is not one (wrong length, non-ASCII, unknown header
    /// code, bad hex) is refused with [`HsmError::MalformedKeyBlock`].
    pub fn parse(text: &str) -> Result<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != BLOCK_LEN {
            return Err(HsmError::MalformedKeyBlock("a key block is 144 characters"));
        }
        let (header, body) = bytes.split_at(HEADER_LEN);
        let header = KeyBlockHeader::decode(header.try_into().expect("16 bytes"))?;
        if !body.iter().all(|b| hex_value(*b).is_some()) {
            return Err(HsmError::MalformedKeyBlock(
                "key field and MAC must be upper-case hex",
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            header,
        })
    }

    /// The block text, to send or store.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The decoded header.
    pub fn header(&self) -> &KeyBlockHeader {
        &self.header
    }

    /// Builds the export block for `key` with `attributes` under `kek`. The caller has checked
    /// that both may take part in an export.
    pub(crate) fn seal(
        kek: &SymmetricKey,
        attributes: &KeyAttributes,
        key: &SymmetricKey,
    ) -> Result<Self> {
        Self::seal_as(BlockKind::Export, kek, attributes, key.expose_secret())
    }

    /// Builds the custody block for `secret` (a key or a private scalar of the algorithm's
    /// length) with `attributes` under the AES custody KEK `kek`.
    pub(crate) fn seal_custody(
        kek: &SymmetricKey,
        attributes: &KeyAttributes,
        secret: &[u8],
    ) -> Result<Self> {
        Self::seal_as(BlockKind::Custody, kek, attributes, secret)
    }

    fn seal_as(
        kind: BlockKind,
        kek: &SymmetricKey,
        attributes: &KeyAttributes,
        secret: &[u8],
    ) -> Result<Self> {
        if secret.len() != attributes.algorithm().secret_len() {
            return Err(HsmError::InvalidAttributes(
                "algorithm attribute differs from the key",
            ));
        }
        let header = KeyBlockHeader::new(attributes, binding_of(kek)?, kind)?;
        let header_text = header.encode()?;
        let mut field = Zeroizing::new([0u8; KEY_FIELD_LEN]);
        ykt_crypto::random::fill(&mut field[..])?;
        let bits = u16::try_from(secret.len() * 8).expect("keys are at most 32 bytes");
        field[..2].copy_from_slice(&bits.to_be_bytes());
        field[2..2 + secret.len()].copy_from_slice(secret);
        let (encryption, authentication) = derive_keys(kek)?;
        let mac = block_mac(&authentication, &header_text, &field[..]);
        cbc_encrypt(&encryption, &mac, &mut field[..])?;
        let mut text = String::with_capacity(BLOCK_LEN);
        text.extend(header_text.iter().map(|b| char::from(*b)));
        for byte in field.iter().chain(mac.iter()) {
            text.extend(hex_pair(*byte).map(char::from));
        }
        Ok(Self { text, header })
    }

    /// Verifies the export block under `kek` and returns the attributes of its header and the
    /// key. Any tampering or a wrong KEK is [`HsmError::KeyBlockRejected`]; a custody block is
    /// refused.
    pub(crate) fn open(&self, kek: &SymmetricKey) -> Result<(KeyAttributes, SymmetricKey)> {
        let (attributes, secret) = self.open_as(BlockKind::Export, kek)?;
        let symmetric = attributes
            .algorithm()
            .symmetric()
            .ok_or(HsmError::MalformedKeyBlock(
                "asymmetric keys travel only in custody blocks",
            ))?;
        Ok((attributes, SymmetricKey::new(symmetric, &secret)?))
    }

    /// Verifies the custody block under the custody KEK `kek` and returns the attributes of its
    /// header and the secret (key or private scalar). Any tampering or a wrong KEK is
    /// [`HsmError::KeyBlockRejected`]; an export block is refused.
    ///
    /// Besides [`crate::Hsm::custody_recover`], this is the disaster-recovery path for the
    /// holders of a quorum of shares when no HSM of this kind is left: whoever recombines the
    /// custody KEK from the shares holds the key in any case.
    pub fn open_custody(&self, kek: &SymmetricKey) -> Result<(KeyAttributes, Zeroizing<Vec<u8>>)> {
        self.open_as(BlockKind::Custody, kek)
    }

    fn open_as(
        &self,
        kind: BlockKind,
        kek: &SymmetricKey,
    ) -> Result<(KeyAttributes, Zeroizing<Vec<u8>>)> {
        let operation = kind.operation();
        if self.header.kind() != kind {
            return Err(HsmError::Forbidden {
                operation,
                reason: match kind {
                    BlockKind::Export => "a custody block is recovered with its shares",
                    BlockKind::Custody => "the block is not a custody block",
                },
            });
        }
        if binding_of(kek)? != self.header.binding() {
            return Err(HsmError::Forbidden {
                operation,
                reason: "the KEK's algorithm does not match the block's version ID",
            });
        }
        let bytes = self.text.as_bytes();
        let header_text: &[u8; HEADER_LEN] =
            bytes[..HEADER_LEN].try_into().expect("checked by parse");
        let mut field = Zeroizing::new([0u8; KEY_FIELD_LEN]);
        let mut mac = [0u8; MAC_LEN];
        let hex = &bytes[HEADER_LEN..];
        for (out, pair) in field
            .iter_mut()
            .chain(mac.iter_mut())
            .zip(hex.chunks_exact(2))
        {
            *out = match (hex_value(pair[0]), hex_value(pair[1])) {
                (Some(hi), Some(lo)) => (hi << 4) | lo,
                _ => return Err(HsmError::MalformedKeyBlock("bad hex")),
            };
        }
        let (encryption, authentication) = derive_keys(kek)?;
        cbc_decrypt(&encryption, &mac, &mut field[..])?;
        let expected = block_mac(&authentication, header_text, &field[..]);
        verify(&expected, &mac, "key block MAC").map_err(|_| HsmError::KeyBlockRejected)?;
        let bits = u16::from_be_bytes([field[0], field[1]]);
        let algorithm = self
            .header
            .family
            .resolve(bits)
            .ok_or(HsmError::MalformedKeyBlock(
                "key length does not fit the algorithm",
            ))?;
        let attributes = KeyAttributes::new(
            self.header.usage,
            algorithm,
            self.header.modes,
            self.header.exportability,
            self.header.version,
        )?;
        let secret = Zeroizing::new(field[2..2 + algorithm.secret_len()].to_vec());
        Ok((attributes, secret))
    }
}

impl fmt::Debug for KeyBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyBlock")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for KeyBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn binding_of(kek: &SymmetricKey) -> Result<Binding> {
    match kek.algorithm() {
        SymmetricAlgorithm::Aes128 | SymmetricAlgorithm::Aes256 => Ok(Binding::Aes),
        SymmetricAlgorithm::Sm4 => Ok(Binding::Sm4),
        SymmetricAlgorithm::Des | SymmetricAlgorithm::TripleDes => Err(HsmError::Forbidden {
            operation: "key block",
            reason: "the KEK must be AES or SM4",
        }),
    }
}

/// The SP 800-108 / TR-31 version D derivation of the encryption and MAC keys from `kek`.
fn derive_keys(kek: &SymmetricKey) -> Result<(SymmetricKey, SymmetricKey)> {
    let algorithm = kek.algorithm();
    let (indicator, bits): (u16, u16) = match algorithm {
        SymmetricAlgorithm::Aes128 => (0x0002, 128),
        SymmetricAlgorithm::Aes256 => (0x0004, 256),
        SymmetricAlgorithm::Sm4 => (0x8004, 128),
        SymmetricAlgorithm::Des | SymmetricAlgorithm::TripleDes => {
            return Err(HsmError::Forbidden {
                operation: "key block",
                reason: "the KEK must be AES or SM4",
            });
        }
    };
    let derive = |usage: u16| -> Result<SymmetricKey> {
        let mut out = Zeroizing::new(Vec::with_capacity(algorithm.key_len()));
        for counter in 1..=u8::try_from(algorithm.key_len() / 16).expect("1 or 2") {
            let [u0, u1] = usage.to_be_bytes();
            let [a0, a1] = indicator.to_be_bytes();
            let [l0, l1] = bits.to_be_bytes();
            let block = Zeroizing::new(cmac(kek, &[counter, u0, u1, 0x00, a0, a1, l0, l1]));
            out.extend_from_slice(&block);
        }
        Ok(SymmetricKey::new(algorithm, &out)?)
    };
    Ok((derive(0x0000)?, derive(0x0001)?))
}

fn block_mac(key: &SymmetricKey, header: &[u8; HEADER_LEN], field: &[u8]) -> [u8; MAC_LEN] {
    let mut data = Zeroizing::new([0u8; HEADER_LEN + KEY_FIELD_LEN]);
    data[..HEADER_LEN].copy_from_slice(header);
    data[HEADER_LEN..].copy_from_slice(field);
    cmac(key, &data[..])
        .try_into()
        .expect("AES and SM4 CMACs are 16 bytes")
}

fn cbc_encrypt(key: &SymmetricKey, iv: &[u8; MAC_LEN], data: &mut [u8]) -> Result<()> {
    let cipher = BlockCipher::new(key);
    let mut chain = *iv;
    for block in data.chunks_exact_mut(MAC_LEN) {
        block.iter_mut().zip(&chain).for_each(|(b, c)| *b ^= c);
        cipher.encrypt_block(block)?;
        chain.copy_from_slice(block);
    }
    Ok(())
}

fn cbc_decrypt(key: &SymmetricKey, iv: &[u8; MAC_LEN], data: &mut [u8]) -> Result<()> {
    let cipher = BlockCipher::new(key);
    let mut chain = *iv;
    for block in data.chunks_exact_mut(MAC_LEN) {
        let mut next = [0u8; MAC_LEN];
        next.copy_from_slice(block);
        cipher.decrypt_block(block)?;
        block.iter_mut().zip(&chain).for_each(|(b, c)| *b ^= c);
        chain = next;
    }
    Ok(())
}

/// The two upper-case hex digits of `byte`.
pub(crate) fn hex_pair(byte: u8) -> [u8; 2] {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    [
        DIGITS[usize::from(byte >> 4)],
        DIGITS[usize::from(byte & 0x0F)],
    ]
}

/// The value of an upper-case hex digit.
pub(crate) fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Hsm, KeyCheck};
    use crate::lmk::Lmk;
    use ykt_crypto::KcvMethod;

    fn attributes(
        usage: KeyUsage,
        algorithm: KeyAlgorithm,
        modes: Modes,
        exportability: Exportability,
    ) -> KeyAttributes {
        KeyAttributes::new(usage, algorithm, modes, exportability, 0x2C).unwrap()
    }

    fn kek(hsm: &Hsm, algorithm: KeyAlgorithm) -> crate::KeyBlob {
        hsm.generate_key(attributes(
            KeyUsage::KeyEncryption,
            algorithm,
            Modes::ENCRYPT,
            Exportability::None,
        ))
        .unwrap()
        .blob
    }

    /// Exportable keys of every symmetric algorithm, with their check values.
    fn exportable_keys(hsm: &Hsm) -> Vec<(crate::KeyBlob, ykt_crypto::Kcv)> {
        [
            (KeyUsage::Purchase, KeyAlgorithm::Sm4, Modes::DERIVE),
            (
                KeyUsage::Load,
                KeyAlgorithm::TripleDes,
                Modes::DERIVE | Modes::MAC,
            ),
            (
                KeyUsage::KeyEncryption,
                KeyAlgorithm::Aes128,
                Modes::ENCRYPT,
            ),
            (
                KeyUsage::KeyEncryption,
                KeyAlgorithm::Aes256,
                Modes::DERIVE | Modes::ENCRYPT,
            ),
        ]
        .into_iter()
        .map(|(usage, algorithm, modes)| {
            let generated = hsm
                .generate_key(attributes(usage, algorithm, modes, Exportability::UnderKek))
                .unwrap();
            let KeyCheck::Kcv(kcv) = generated.check else {
                panic!("symmetric keys have a check value")
            };
            (generated.blob, kcv)
        })
        .collect()
    }

    fn kcv(hsm: &Hsm, blob: &crate::KeyBlob) -> ykt_crypto::Kcv {
        let algorithm = blob.attributes().algorithm().symmetric().unwrap();
        hsm.kcv(blob, KcvMethod::default_for(algorithm)).unwrap()
    }

    #[test]
    fn round_trip_under_aes_and_sm4_keks() {
        let hsm = Hsm::new(Lmk::generate().unwrap());
        for (kek_algorithm, version_id) in [
            (KeyAlgorithm::Aes256, 'D'),
            (KeyAlgorithm::Aes128, 'D'),
            (KeyAlgorithm::Sm4, '1'),
        ] {
            let kek = kek(&hsm, kek_algorithm);
            for (key, expected) in exportable_keys(&hsm) {
                let algorithm = key.attributes().algorithm();
                if algorithm.secret_len() > kek_algorithm.secret_len() {
                    assert!(matches!(
                        hsm.export_key(&key, &kek),
                        Err(HsmError::Forbidden { .. })
                    ));
                    continue;
                }
                let block = hsm.export_key(&key, &kek).unwrap();
                let text = block.as_str();
                assert_eq!(text.len(), 144);
                assert!(text.starts_with(&format!("{version_id}0144")));
                assert_eq!(&text[9..12], "2CE");
                let parsed = KeyBlock::parse(text).unwrap();
                assert_eq!(parsed, block);
                let imported = hsm.import_key(&parsed, &kek).unwrap();
                assert_eq!(imported.attributes(), key.attributes(), "{algorithm}");
                assert_eq!(kcv(&hsm, &imported), expected, "{algorithm}");
                assert_ne!(imported.as_bytes(), key.as_bytes());
            }
        }
    }

    #[test]
    fn header_codes_follow_the_mapping() {
        let hsm = Hsm::new(Lmk::generate().unwrap());
        let kek = kek(&hsm, KeyAlgorithm::Aes256);
        let keys = exportable_keys(&hsm);
        let headers: Vec<String> = keys
            .iter()
            .map(|(key, _)| hsm.export_key(key, &kek).unwrap().as_str()[..16].to_owned())
            .collect();
        assert_eq!(
            headers,
            [
                "D0144011X2CE0000",
                "D014402T12CE0000",
                "D0144K0AB2CE0000",
                "D0144K0A22CE0000"
            ]
        );
    }

    #[test]
    fn every_edited_header_character_and_payload_digit_is_refused() {
        let hsm = Hsm::new(Lmk::generate().unwrap());
        for kek_algorithm in [KeyAlgorithm::Aes256, KeyAlgorithm::Sm4] {
            let kek = kek(&hsm, kek_algorithm);
            let (key, _) = exportable_keys(&hsm).remove(0);
            let block = hsm.export_key(&key, &kek).unwrap();
            let original = block.as_str().as_bytes().to_vec();
            for position in 0..original.len() {
                let replacements: Vec<u8> = if position < HEADER_LEN {
                    (b' '..=b'~').filter(|c| *c != original[position]).collect()
                } else {
                    b"0123456789ABCDEF"
                        .iter()
                        .copied()
                        .filter(|c| *c != original[position])
                        .collect()
                };
                for replacement in replacements {
                    let mut edited = original.clone();
                    edited[position] = replacement;
                    let text = String::from_utf8(edited).unwrap();
                    let outcome = KeyBlock::parse(&text).and_then(|b| hsm.import_key(&b, &kek));
                    match outcome {
                        Err(HsmError::MalformedKeyBlock(_))
                        | Err(HsmError::KeyBlockRejected)
                        | Err(HsmError::Forbidden { .. }) => {}
                        other => panic!("position {position}: {other:?}"),
                    }
                    if position >= HEADER_LEN {
                        assert!(matches!(outcome, Err(HsmError::KeyBlockRejected)));
                    }
                }
            }
        }
    }

    #[test]
    fn edited_header_fields_that_still_parse_fail_the_mac() {
        let hsm = Hsm::new(Lmk::generate().unwrap());
        let kek = kek(&hsm, KeyAlgorithm::Aes256);
        let (key, _) = exportable_keys(&hsm).remove(1);
        let text = hsm.export_key(&key, &kek).unwrap().as_str().to_owned();
        // Usage, algorithm, mode, version and exportability, each changed to another valid
        // code.
        for (range, replacement) in [
            (5..7, "01"),
            (7..8, "1"),
            (8..9, "X"),
            (9..11, "2D"),
            (11..12, "N"),
        ] {
            let mut edited = text.clone();
            edited.replace_range(range.clone(), replacement);
            let block = KeyBlock::parse(&edited).unwrap();
            assert!(
                matches!(
                    hsm.import_key(&block, &kek),
                    Err(HsmError::KeyBlockRejected)
                ),
                "{range:?}"
            );
        }
    }

    #[test]
    fn wrong_kek_and_wrong_binding_are_refused() {
        let hsm = Hsm::new(Lmk::generate().unwrap());
        let (key, _) = exportable_keys(&hsm).remove(0);
        let aes = kek(&hsm, KeyAlgorithm::Aes256);
        let other_aes = kek(&hsm, KeyAlgorithm::Aes256);
        let sm4 = kek(&hsm, KeyAlgorithm::Sm4);
        let other_sm4 = kek(&hsm, KeyAlgorithm::Sm4);
        let block = hsm.export_key(&key, &aes).unwrap();
        assert!(matches!(
            hsm.import_key(&block, &other_aes),
            Err(HsmError::KeyBlockRejected)
        ));
        assert!(matches!(
            hsm.import_key(&block, &sm4),
            Err(HsmError::Forbidden { .. })
        ));
        let block = hsm.export_key(&key, &sm4).unwrap();
        assert!(matches!(
            hsm.import_key(&block, &other_sm4),
            Err(HsmError::KeyBlockRejected)
        ));
        // A block under a different LMK's HSM with the same KEK blob does not help either:
        // the KEK blob does not open.
        let other_hsm = Hsm::new(Lmk::generate().unwrap());
        assert!(matches!(
            other_hsm.import_key(&block, &sm4),
            Err(HsmError::BlobRejected)
        ));
    }

    #[test]
    fn attributes_refuse_export_and_import() {
        let hsm = Hsm::new(Lmk::generate().unwrap());
        let kek = kek(&hsm, KeyAlgorithm::Aes256);
        for exportability in [Exportability::None, Exportability::DerivedOnly] {
            let key = hsm
                .generate_key(attributes(
                    KeyUsage::Tac,
                    KeyAlgorithm::Sm4,
                    Modes::DERIVE,
                    exportability,
                ))
                .unwrap()
                .blob;
            assert!(matches!(
                hsm.export_key(&key, &kek),
                Err(HsmError::Forbidden { .. })
            ));
        }
        let (key, _) = exportable_keys(&hsm).remove(0);
        let block = hsm.export_key(&key, &kek).unwrap();
        let not_keks = [
            // A key-encryption key without the encrypt mode.
            hsm.generate_key(attributes(
                KeyUsage::KeyEncryption,
                KeyAlgorithm::Aes256,
                Modes::DERIVE,
                Exportability::None,
            ))
            .unwrap()
            .blob,
            // An encrypting key of another usage.
            hsm.generate_key(attributes(
                KeyUsage::AppMaster,
                KeyAlgorithm::Sm4,
                Modes::ENCRYPT,
                Exportability::None,
            ))
            .unwrap()
            .blob,
            // A 3DES key-encryption key (TR-31 versions A to C are not supported).
            hsm.generate_key(attributes(
                KeyUsage::KeyEncryption,
                KeyAlgorithm::TripleDes,
                Modes::ENCRYPT,
                Exportability::None,
            ))
            .unwrap()
            .blob,
        ];
        for not_kek in &not_keks {
            assert!(matches!(
                hsm.export_key(&key, not_kek),
                Err(HsmError::Forbidden { .. })
            ));
            assert!(matches!(
                hsm.import_key(&block, not_kek),
                Err(HsmError::Forbidden { .. })
            ));
        }
        let exportable_kek = hsm
            .generate_key(attributes(
                KeyUsage::KeyEncryption,
                KeyAlgorithm::Aes256,
                Modes::ENCRYPT,
                Exportability::UnderKek,
            ))
            .unwrap()
            .blob;
        assert!(matches!(
            hsm.export_key(&exportable_kek, &exportable_kek),
            Err(HsmError::Forbidden { .. })
        ));
    }

    #[test]
    fn arbitrary_text_never_panics() {
        let mut seed = [0u8; 4096];
        ykt_crypto::random::fill(&mut seed).unwrap();
        let header_alphabet = b"D1ATKXCBEN0123456789ABCDEF ";
        for (i, chunk) in seed.chunks(160).enumerate() {
            let _ = KeyBlock::parse(&String::from_utf8_lossy(chunk));
            let _ = KeyBlock::parse(&String::from_utf8_lossy(&chunk[..chunk.len() % 150]));
            let text: String = chunk
                .iter()
                .take(BLOCK_LEN)
                .map(|b| char::from(header_alphabet[usize::from(*b) % header_alphabet.len()]))
                .collect();
            let _ = KeyBlock::parse(&text);
            let mut prefixed = String::from("D0144K0A");
            prefixed.push(char::from(b"XCB1234"[i % 7]));
            prefixed.push_str(&text[9..]);
            let _ = KeyBlock::parse(&prefixed);
        }
        // Multi-byte characters whose byte length is 144.
        let wide = "\u{00E9}".repeat(72);
        assert!(matches!(
            KeyBlock::parse(&wide),
            Err(HsmError::MalformedKeyBlock(_))
        ));
        assert!(matches!(
            KeyBlock::parse(""),
            Err(HsmError::MalformedKeyBlock(_))
        ));
    }

    /// Custody blocks: version ID `2`, the key's own exportability, asymmetric keys carried;
    /// neither kind opens as the other, and an edited version ID fails the MAC.
    #[test]
    fn custody_blocks_are_marked_and_kept_apart_from_export_blocks() {
        let kek = test_key(SymmetricAlgorithm::Aes256, 0x42);
        let tac = attributes(
            KeyUsage::Tac,
            KeyAlgorithm::Sm4,
            Modes::DERIVE,
            Exportability::None,
        );
        let sm2 = attributes(
            KeyUsage::Signature,
            KeyAlgorithm::Sm2,
            Modes::SIGN,
            Exportability::None,
        );
        let p256 = attributes(
            KeyUsage::Signature,
            KeyAlgorithm::P256,
            Modes::SIGN,
            Exportability::None,
        );
        let scalar = [0x5Au8; 32];
        for (attributes, secret, header) in [
            (tac, &scalar[..16], "20144031X2CN0000"),
            (sm2, &scalar[..], "20144S02S2CN0000"),
            (p256, &scalar[..], "20144S0ES2CN0000"),
        ] {
            let block = KeyBlock::seal_custody(&kek, &attributes, secret).unwrap();
            assert_eq!(&block.as_str()[..HEADER_LEN], header);
            let parsed = KeyBlock::parse(block.as_str()).unwrap();
            assert_eq!(parsed.header().kind(), BlockKind::Custody);
            let (opened_attributes, opened) = parsed.open_custody(&kek).unwrap();
            assert_eq!(opened_attributes, attributes);
            assert_eq!(&opened[..], secret);
            assert!(matches!(
                parsed.open(&kek),
                Err(HsmError::Forbidden {
                    operation: "key import",
                    ..
                })
            ));
        }
        // The version ID is authenticated: '2' edited to 'D' parses, then fails the MAC.
        let block = KeyBlock::seal_custody(&kek, &tac, &scalar[..16]).unwrap();
        let edited = KeyBlock::parse(&block.as_str().replacen('2', "D", 1)).unwrap();
        assert_eq!(edited.header().kind(), BlockKind::Export);
        assert!(matches!(edited.open(&kek), Err(HsmError::KeyBlockRejected)));
        // An asymmetric custody header edited to an export version ID does not even parse.
        let block = KeyBlock::seal_custody(&kek, &sm2, &scalar).unwrap();
        assert!(matches!(
            KeyBlock::parse(&block.as_str().replacen('2', "D", 1)),
            Err(HsmError::MalformedKeyBlock(_))
        ));
        // And the reverse: an export block is no custody block, before or after an edit.
        let export = attributes(
            KeyUsage::Purchase,
            KeyAlgorithm::Sm4,
            Modes::DERIVE,
            Exportability::UnderKek,
        );
        let key = test_key(SymmetricAlgorithm::Sm4, 0x17);
        let block = KeyBlock::seal(&kek, &export, &key).unwrap();
        assert_eq!(block.header().kind(), BlockKind::Export);
        assert!(matches!(
            block.open_custody(&kek),
            Err(HsmError::Forbidden {
                operation: "custody recovery",
                ..
            })
        ));
        let edited = KeyBlock::parse(&block.as_str().replacen('D', "2", 1)).unwrap();
        assert!(matches!(
            edited.open_custody(&kek),
            Err(HsmError::KeyBlockRejected)
        ));
        // Export blocks refuse asymmetric keys; custody blocks need an AES KEK.
        assert!(matches!(
            KeyBlock::seal_as(BlockKind::Export, &kek, &sm2, &scalar),
            Err(HsmError::Forbidden { .. })
        ));
        let sm4_kek = test_key(SymmetricAlgorithm::Sm4, 0x99);
        assert!(matches!(
            KeyBlock::seal_custody(&sm4_kek, &tac, &scalar[..16]),
            Err(HsmError::Forbidden { .. })
        ));
    }

    fn test_key(algorithm: SymmetricAlgorithm, seed: u8) -> SymmetricKey {
        let bytes: Vec<u8> = (0..algorithm.key_len())
            .map(|i| seed ^ u8::try_from(i).unwrap().wrapping_mul(17))
            .collect();
        SymmetricKey::new(algorithm, &bytes).unwrap()
    }

    /// The KDF step against CMAC computed here from its SP 800-108 / TR-31 inputs.
    #[test]
    fn kdf_matches_cmac_of_the_tr31_derivation_data() {
        for (algorithm, indicator, length) in [
            (SymmetricAlgorithm::Aes256, [0x00, 0x04], [0x01, 0x00]),
            (SymmetricAlgorithm::Aes128, [0x00, 0x02], [0x00, 0x80]),
            (SymmetricAlgorithm::Sm4, [0x80, 0x04], [0x00, 0x80]),
        ] {
            let kek = test_key(algorithm, 0x5A);
            let expected = |usage: u8| -> Vec<u8> {
                (1..=u8::try_from(algorithm.key_len() / 16).unwrap())
                    .flat_map(|counter| {
                        cmac(
                            &kek,
                            &[
                                counter,
                                0x00,
                                usage,
                                0x00,
                                indicator[0],
                                indicator[1],
                                length[0],
                                length[1],
                            ],
                        )
                    })
                    .collect()
            };
            let (encryption, authentication) = derive_keys(&kek).unwrap();
            assert_eq!(encryption.algorithm(), algorithm);
            assert_eq!(encryption.expose_secret(), expected(0x00).as_slice());
            assert_eq!(authentication.expose_secret(), expected(0x01).as_slice());
            assert_ne!(encryption.expose_secret(), authentication.expose_secret());
        }
        // The first derivation block of an AES-256 KEK, written out in full.
        let kek = test_key(SymmetricAlgorithm::Aes256, 0x00);
        let (encryption, _) = derive_keys(&kek).unwrap();
        assert_eq!(
            encryption.expose_secret()[..16],
            cmac(&kek, &[0x01, 0x00, 0x00, 0x00, 0x00, 0x04, 0x01, 0x00])[..]
        );
    }

    /// Decodes a block with ECB and XOR only, and checks the version D layout: CBC with the
    /// MAC as IV, a 48-byte key field `bits || key || padding`, CMAC over header and field.
    #[test]
    fn block_layout_is_tr31_version_d() {
        let kek = test_key(SymmetricAlgorithm::Aes256, 0x33);
        let key = test_key(SymmetricAlgorithm::Sm4, 0xC4);
        let attributes = attributes(
            KeyUsage::Purchase,
            KeyAlgorithm::Sm4,
            Modes::DERIVE,
            Exportability::UnderKek,
        );
        let block = KeyBlock::seal(&kek, &attributes, &key).unwrap();
        let text = block.as_str().as_bytes();
        let bytes: Vec<u8> = text[HEADER_LEN..]
            .chunks_exact(2)
            .map(|p| (hex_value(p[0]).unwrap() << 4) | hex_value(p[1]).unwrap())
            .collect();
        let (ciphertext, mac) = bytes.split_at(KEY_FIELD_LEN);
        let (kbek, kbak) = derive_keys(&kek).unwrap();
        let mut field = ciphertext.to_vec();
        BlockCipher::new(&kbek).decrypt_ecb(&mut field).unwrap();
        let previous: Vec<u8> = [mac, &ciphertext[..32]].concat();
        field.iter_mut().zip(&previous).for_each(|(f, p)| *f ^= p);
        assert_eq!(field[..2], [0x00, 0x80]);
        assert_eq!(&field[2..18], key.expose_secret());
        let mut data = text[..HEADER_LEN].to_vec();
        data.extend_from_slice(&field);
        assert_eq!(cmac(&kbak, &data), mac);
        let (opened_attributes, opened) = block.open(&kek).unwrap();
        assert_eq!(opened_attributes, attributes);
        assert_eq!(opened.expose_secret(), key.expose_secret());
        // Padding is random: the same key exported twice gives two different blocks.
        let again = KeyBlock::seal(&kek, &attributes, &key).unwrap();
        assert_ne!(again.as_str(), block.as_str());
        assert!(!format!("{block:?}").contains(&block.as_str()[HEADER_LEN..]));
    }
}
