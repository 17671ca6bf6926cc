//! The PSAM application (`pboc-spec.md` §6): INIT_SAM_FOR_PURCHASE (8070) makes MAC1 with the
//! purchase master key diversified by the card's factors, CREDIT_SAM_FOR_PURCHASE (8072)
//! checks MAC2, DELIVER KEY (801A) and CIPHER DATA (80FA) encrypt or MAC with a diversified
//! key. The terminal ID is the MF's EF 0016; the terminal sequence is persistent and advances
//! with every MAC1.
//!
//! PSAM issuance uses the user card's commands (80E0, 80D4, 84D4; application keys with
//! `84 D4 00 00`), a choice of this simulator: real PSAM COSes have vendor-specific ones.

use crate::card::{Card, Pending, Reply, check_le, expect_len};
use crate::fs::{Body, Content, DataFile, Ef};
use crate::keys::{PsamKey, psam_type};
use ykt_apdu::{Command, Sw};
use ykt_crypto::mac::verify;
use ykt_crypto::{BlockCipher, PbocMac, Profile, Purchase, SymmetricKey};

/// FID of the terminal ID file in the MF.
const TERMINAL_ID_FID: u16 = 0x0016;

/// A purchase between 8070 and 8072.
pub(crate) struct SamPurchase {
    purchase: Purchase,
    session_key: SymmetricKey,
}

/// A key delivered by 801A for 80FA.
pub(crate) struct DeliveredKey {
    key: SymmetricKey,
    key_type: u8,
}

/// 6F00 for an impossible cryptographic failure.
fn crypto<T>(result: ykt_crypto::Result<T>) -> Result<T, Sw> {
    result.map_err(|_| Sw::NoPreciseDiagnosis)
}

impl Card {
    /// The application key with `usage` and `version` of the current DF, diversified by
    /// `factors` as sent (card ASN first: the highest level is applied first). 6A88 when
    /// absent, 6700 when the number of factors is not the key's level.
    fn diversified(
        &self,
        usage: u8,
        version: u8,
        factors: &[u8],
    ) -> Result<(PsamKey, SymmetricKey), Sw> {
        let key = self
            .key_file()?
            .psam_key(usage, version)
            .ok_or(Sw::ReferenceNotFound)?
            .clone();
        if factors.len() != 8 * key.level() {
            return Err(Sw::WrongLength);
        }
        let master = key.secret.key(self.algorithm())?;
        let profile = crypto(Profile::for_algorithm(master.algorithm()))?;
        let path: Vec<[u8; 8]> = factors
            .chunks_exact(8)
            .rev()
            .map(|f| f.try_into().unwrap_or([0; 8]))
            .collect();
        let derived = crypto(profile.diversify_path(&master, &path))?;
        Ok((key, derived))
    }

    /// The terminal ID (first 6 bytes of the MF's binary EF 0016): 6985 when missing.
    fn terminal_id(&self) -> Result<[u8; 6], Sw> {
        match self.mf().ef(TERMINAL_ID_FID) {
            Some(Ef {
                body:
                    Body::Data(DataFile {
                        content: Content::Binary { data },
                        ..
                    }),
                ..
            }) if data.len() >= 6 => {
                let mut id = [0u8; 6];
                id.copy_from_slice(&data[..6]);
                Ok(id)
            }
            _ => Err(Sw::ConditionsNotSatisfied),
        }
    }

    /// INIT_SAM_FOR_PURCHASE (80 70 00 00 Lc rand4 offSeq2 amount4 type1 date4 time3 keyVer1
    /// algID1 factors(8 × 1..3)): answers terminalSeq4 ‖ MAC1 and advances the terminal
    /// sequence.
    pub(crate) fn init_sam_for_purchase(&mut self, c: &Command) -> Reply {
        if (c.p1, c.p2) != (0, 0) {
            return Err(Sw::WrongP1P2.into());
        }
        let levels = c.data.len().checked_sub(0x14).map(|n| (n / 8, n % 8));
        let Some((levels @ 1..=3, 0)) = levels else {
            return Err(Sw::WrongLength.into());
        };
        check_le(c, 8)?;
        let d = &c.data;
        let usage = ((levels as u8) << 5) | psam_type::PURCHASE;
        let (_, dpk) = self.diversified(usage, d[18], &d[0x14..])?;
        let profile = crypto(Profile::for_algorithm(dpk.algorithm()))?;
        if crypto(profile.algorithm_id(&dpk))? != d[19] {
            return Err(Sw::WrongData.into());
        }
        let terminal_seq = self.image().terminal_seq;
        if terminal_seq == u32::MAX {
            return Err(Sw::CounterAtMaximum.into());
        }
        let purchase = Purchase {
            card_random: [d[0], d[1], d[2], d[3]],
            offline_seq: u16::from_be_bytes([d[4], d[5]]),
            amount: u32::from_be_bytes([d[6], d[7], d[8], d[9]]),
            transaction_type: d[10],
            terminal_id: self.terminal_id()?,
            terminal_seq,
            date: [d[11], d[12], d[13], d[14]],
            time: [d[15], d[16], d[17]],
        };
        let session_key = crypto(purchase.session_key(profile, &dpk))?;
        let mac1 = crypto(purchase.mac1(&session_key))?;
        self.write(|image| {
            image.terminal_seq = terminal_seq + 1;
            Ok(())
        })?;
        self.session.pending = Some(Pending::SamPurchase(SamPurchase {
            purchase,
            session_key,
        }));
        Ok([terminal_seq.to_be_bytes(), mac1].concat())
    }

    /// CREDIT_SAM_FOR_PURCHASE (80 72 00 00 04 MAC2): 9302 when MAC2 is wrong.
    pub(crate) fn credit_sam_for_purchase(
        &mut self,
        c: &Command,
        pending: Option<Pending>,
    ) -> Reply {
        if (c.p1, c.p2) != (0, 0) {
            return Err(Sw::WrongP1P2.into());
        }
        expect_len(c, 4)?;
        let Some(Pending::SamPurchase(SamPurchase {
            purchase,
            session_key,
        })) = pending
        else {
            return Err(Sw::ConditionsNotSatisfied.into());
        };
        let expected = crypto(purchase.mac2(&session_key))?;
        verify(&expected, &c.data, "MAC2").map_err(|_| Sw::MacInvalid)?;
        Ok(Vec::new())
    }

    /// DELIVER KEY (80 1A usage version Lc factors): diversifies an encryption or MAC key
    /// (types 6, 7, 8) for the following CIPHER DATA commands.
    pub(crate) fn deliver_key(&mut self, c: &Command) -> Reply {
        let (key, derived) = self.diversified(c.p1, c.p2, &c.data)?;
        if !matches!(
            key.key_type(),
            psam_type::MAC | psam_type::ENCRYPT | psam_type::MAC_ENCRYPT
        ) {
            return Err(Sw::ConditionsNotSatisfied.into());
        }
        self.session.pending = Some(Pending::DeliveredKey(DeliveredKey {
            key: derived,
            key_type: key.key_type(),
        }));
        Ok(Vec::new())
    }

    /// CIPHER DATA (80 FA P1 00 Lc data) with the delivered key: P1 00 encrypts whole blocks
    /// (ECB); P1 05 MACs, the data being `IV (one block) ‖ message` (PBOC MAC, `80` padding
    /// added by the PSAM), answering 4 bytes.
    pub(crate) fn cipher_data(&mut self, c: &Command, pending: Option<Pending>) -> Reply {
        let Some(Pending::DeliveredKey(delivered)) = pending else {
            return Err(Sw::ConditionsNotSatisfied.into());
        };
        let result = cipher(&delivered, c);
        self.session.pending = Some(Pending::DeliveredKey(delivered));
        let out = result?;
        check_le(c, out.len())?;
        Ok(out)
    }
}

fn cipher(delivered: &DeliveredKey, c: &Command) -> Result<Vec<u8>, Sw> {
    if c.p2 != 0 {
        return Err(Sw::WrongP1P2);
    }
    let cipher = BlockCipher::new(&delivered.key);
    let n = cipher.block_len();
    match (c.p1, delivered.key_type) {
        (0x00, psam_type::ENCRYPT | psam_type::MAC_ENCRYPT) => {
            if c.data.is_empty() || !c.data.len().is_multiple_of(n) {
                return Err(Sw::WrongLength);
            }
            let mut data = c.data.clone();
            crypto(cipher.encrypt_ecb(&mut data))?;
            Ok(data)
        }
        (0x05, psam_type::MAC | psam_type::MAC_ENCRYPT) => {
            if c.data.len() < n {
                return Err(Sw::WrongLength);
            }
            let (iv, message) = c.data.split_at(n);
            let mac = crypto(PbocMac::new(&delivered.key))?;
            Ok(crypto(mac.compute_with_iv(iv, message))?.first4().to_vec())
        }
        (0x00 | 0x05, _) => Err(Sw::ConditionsNotSatisfied),
        _ => Err(Sw::WrongP1P2),
    }
}
