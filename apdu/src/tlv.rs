//! BER-TLV (ISO/IEC 7816-4 clause 5.2, X.690 definite lengths), as in FCI templates
//! (`6F` with `84` DF name, `A5` proprietary data, `88` SFI, `9F0C` issuer data).

use crate::error::{ApduError, Result};

/// A tag of one to three bytes, kept as its encoding (`0x6F`, `0x9F0C`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub u32);

impl Tag {
    /// The encoded bytes.
    pub fn to_bytes(self) -> Vec<u8> {
        let bytes = self.0.to_be_bytes();
        let first = bytes.iter().position(|&b| b != 0).unwrap_or(3);
        bytes[first..].to_vec()
    }

    /// Whether the value holds nested TLV objects (bit 6 of the first byte).
    pub fn is_constructed(self) -> bool {
        self.to_bytes()[0] & 0x20 != 0
    }
}

/// One TLV object with its raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    /// The tag.
    pub tag: Tag,
    /// The value bytes (for a constructed tag, the encoded children).
    pub value: Vec<u8>,
}

impl Tlv {
    /// A primitive object.
    pub fn new(tag: u32, value: impl Into<Vec<u8>>) -> Self {
        Self {
            tag: Tag(tag),
            value: value.into(),
        }
    }

    /// A constructed object from its children.
    pub fn constructed(tag: u32, children: &[Tlv]) -> Self {
        Self {
            tag: Tag(tag),
            value: children.iter().flat_map(Tlv::to_bytes).collect(),
        }
    }

    /// Parses the nested objects of a constructed value.
    pub fn children(&self) -> Result<Vec<Tlv>> {
        parse_all(&self.value)
    }

    /// The encoding: tag, definite length (short or long form), value.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.tag.to_bytes();
        let len = self.value.len();
        match len {
            0..=0x7F => out.push(len as u8),
            0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
            0x100..=0xFFFF => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
            _ => out.extend_from_slice(&[0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]),
        }
        out.extend_from_slice(&self.value);
        out
    }
}

/// Parses a sequence of TLV objects that fills `bytes` exactly.
pub fn parse_all(bytes: &[u8]) -> Result<Vec<Tlv>> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let (tlv, used) = parse_one(&bytes[offset..]).map_err(|e| match e {
            ApduError::MalformedTlv {
                offset: inner,
                reason,
            } => ApduError::MalformedTlv {
                offset: offset + inner,
                reason,
            },
            other => other,
        })?;
        out.push(tlv);
        offset += used;
    }
    Ok(out)
}

/// Finds the first object with `tag`, searching constructed objects depth first.
pub fn find(objects: &[Tlv], tag: u32) -> Option<Tlv> {
    objects.iter().find_map(|tlv| {
        if tlv.tag.0 == tag {
            Some(tlv.clone())
        } else if tlv.tag.is_constructed() {
            tlv.children()
                .ok()
                .and_then(|children| find(&children, tag))
        } else {
            None
        }
    })
}

fn malformed(offset: usize, reason: &'static str) -> ApduError {
    ApduError::MalformedTlv { offset, reason }
}

/// One object at the start of `bytes`, and the bytes it used.
fn parse_one(bytes: &[u8]) -> Result<(Tlv, usize)> {
    let first = *bytes.first().ok_or(malformed(0, "empty"))?;
    let mut tag = u32::from(first);
    let mut i = 1;
    if first & 0x1F == 0x1F {
        loop {
            let b = *bytes.get(i).ok_or(malformed(i, "truncated tag"))?;
            if i == 3 {
                return Err(malformed(i, "tag longer than 3 bytes"));
            }
            tag = (tag << 8) | u32::from(b);
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let len_byte = *bytes.get(i).ok_or(malformed(i, "missing length"))?;
    i += 1;
    let len = match len_byte {
        0..=0x7F => usize::from(len_byte),
        0x81..=0x83 => {
            let n = usize::from(len_byte & 0x7F);
            let field = bytes
                .get(i..i + n)
                .ok_or(malformed(i, "truncated length"))?;
            i += n;
            field
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        }
        0x80 => return Err(malformed(i - 1, "indefinite length")),
        _ => return Err(malformed(i - 1, "length field longer than 3 bytes")),
    };
    let value = bytes
        .get(i..i + len)
        .ok_or(malformed(i, "value runs past the end"))?;
    Ok((
        Tlv {
            tag: Tag(tag),
            value: value.to_vec(),
        },
        i + len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fci_round_trip_and_search() {
        let fci = Tlv::constructed(
            0x6F,
            &[
                Tlv::new(0x84, b"1PAY.SYS.DDF01".to_vec()),
                Tlv::constructed(0xA5, &[Tlv::new(0x88, [0x01]), Tlv::new(0x9F0C, [1, 2, 3])]),
            ],
        );
        let bytes = fci.to_bytes();
        assert_eq!(&bytes[..4], &[0x6F, 0x1B, 0x84, 0x0E]);
        let parsed = parse_all(&bytes).unwrap();
        assert_eq!(parsed, vec![fci]);
        assert_eq!(find(&parsed, 0x9F0C).unwrap().value, [1, 2, 3]);
        assert_eq!(find(&parsed, 0x88).unwrap().value, [1]);
        assert!(find(&parsed, 0x50).is_none());
    }

    #[test]
    fn long_lengths() {
        let big = Tlv::new(0x53, vec![7u8; 300]);
        let bytes = big.to_bytes();
        assert_eq!(&bytes[..4], &[0x53, 0x82, 0x01, 0x2C]);
        assert_eq!(parse_all(&bytes).unwrap(), vec![big]);
        assert_eq!(
            Tlv::new(0x53, vec![0; 200]).to_bytes()[..3],
            [0x53, 0x81, 0xC8]
        );
    }

    #[test]
    fn malformed_tlv_is_refused_with_its_offset() {
        let cases: [(&[u8], usize); 6] = [
            (&[0x9F], 1),
            (&[0x84], 1),
            (&[0x84, 0x05, 1, 2], 2),
            (&[0x84, 0x80], 1),
            (&[0x84, 0x84, 0, 0, 0, 1], 1),
            (&[0x84, 0x00, 0x9F, 0x81, 0x81, 0x01, 0x00], 5),
        ];
        for (bytes, offset) in cases {
            match parse_all(bytes) {
                Err(ApduError::MalformedTlv { offset: at, .. }) => {
                    assert_eq!(at, offset, "{bytes:02X?}")
                }
                other => panic!("{bytes:02X?}: {other:?}"),
            }
        }
    }
}
