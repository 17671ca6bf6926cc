//! The ED/EP application (`pboc-spec.md` §2, §5.2, §5.4): GET BALANCE, INITIALIZE FOR LOAD →
//! CREDIT FOR LOAD, INITIALIZE FOR PURCHASE (or compound purchase, with UPDATE CAPP DATA
//! CACHE) → DEBIT FOR PURCHASE, and GET TRANSACTION PROVE.
//!
//! The card computes with its own keys: DLK (3F) and DPK (3E) chosen by the key index of
//! INITIALIZE, the TAC key DTK (34) of lowest ID. The profile follows the key: PBOC for DES and
//! 3DES keys (algorithm ID 00, or 01 for single DES), the ykt SM4 profile v1 for SM4 (04).

use crate::card::{Card, Fault, Pending, Reply, check_le, expect_len};
use crate::fs::{Body, Content, DataFile, Ef};
use crate::journal::Write;
use crate::keys::kind;
use crate::log::log_file;
use crate::persist::hex_bytes;
use crate::security::Protection;
use serde::{Deserialize, Serialize};
use ykt_apdu::LogRecord;
use ykt_apdu::{Command, Sw};
use ykt_crypto::epurse::transaction_type as tx;
use ykt_crypto::mac::verify;
use ykt_crypto::{Load, Profile, Purchase, SymmetricKey};

/// The highest balance a purse accepts (a load beyond it is refused with 6A80).
pub(crate) const MAX_BALANCE: u32 = 0x7FFF_FFFF;

/// An ED or EP file: header and values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Purse {
    /// Size field of the header.
    pub size: u16,
    /// Usage right: GET BALANCE, INITIALIZE.
    pub usage: u8,
    /// Header bytes 5 and 6 (kept as is).
    pub reserved: [u8; 2],
    /// SFI of the transaction log.
    pub log_sfi: u8,
    /// Balance in fen.
    pub balance: u32,
    /// Online (load) transaction serial.
    pub online_seq: u16,
    /// Offline (purchase) transaction serial.
    pub offline_seq: u16,
    /// Overdraft limit (3 bytes, reported in INITIALIZE FOR PURCHASE and the log).
    pub overdraft_limit: u32,
}

impl Purse {
    /// A new, empty purse from its CREATE FILE header.
    pub fn new(size: u16, usage: u8, reserved: [u8; 2], log_sfi: u8) -> Self {
        Self {
            size,
            usage,
            reserved,
            log_sfi,
            balance: 0,
            online_seq: 0,
            offline_seq: 0,
            overdraft_limit: 0,
        }
    }
}

/// What GET TRANSACTION PROVE returns for the last transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Prove {
    /// Transaction type.
    pub transaction_type: u8,
    /// The serial the transaction used (before its increment).
    pub serial: u16,
    /// MAC2 of the transaction (the host's for a load, the card's for a purchase).
    #[serde(with = "hex_bytes")]
    pub mac: Vec<u8>,
    /// TAC.
    #[serde(with = "hex_bytes")]
    pub tac: Vec<u8>,
}

/// A load between INITIALIZE and CREDIT.
pub(crate) struct LoadSession {
    fid: u16,
    load: Load,
    session_key: SymmetricKey,
}

/// A purchase between INITIALIZE and DEBIT.
pub(crate) struct PurchaseSession {
    fid: u16,
    purchase: Purchase,
    profile: Profile,
    dpk: SymmetricKey,
    /// Record updates cached by UPDATE CAPP DATA CACHE (compound purchase only).
    capp: Option<Vec<(u16, u8, Vec<u8>)>>,
}

/// 6F00 for an impossible cryptographic failure (keys of one chip share an algorithm family).
fn crypto<T>(result: ykt_crypto::Result<T>) -> Result<T, Sw> {
    result.map_err(|_| Sw::NoPreciseDiagnosis)
}

fn be32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0, |acc, &b| (acc << 8) | u32::from(b))
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

impl Card {
    /// The purse P2 names (01 ED, 02 EP) in the current DF, after its usage right.
    fn purse(&self, p2: u8) -> Result<(u16, &Purse), Sw> {
        let fid = match p2 {
            0x01 | 0x02 => u16::from(p2),
            _ => return Err(Sw::WrongP1P2),
        };
        match self.df()?.ef(fid) {
            Some(Ef {
                body: Body::Purse(purse),
                ..
            }) => {
                self.require(purse.usage)?;
                Ok((fid, purse))
            }
            _ => Err(Sw::FileNotFound),
        }
    }

    /// The TAC key: the DTK (34) of lowest ID.
    fn dtk(&self) -> Result<SymmetricKey, Sw> {
        self.key_file()?
            .first(kind::INTERNAL)
            .ok_or(Sw::ReferenceNotFound)?
            .secret
            .key(self.algorithm())
    }

    /// GET BALANCE (80 5C 00 P2 04).
    pub(crate) fn get_balance(&mut self, c: &Command) -> Reply {
        if c.p1 != 0 {
            return Err(Sw::WrongP1P2.into());
        }
        expect_len(c, 0)?;
        let (_, purse) = self.purse(c.p2)?;
        check_le(c, 4)?;
        Ok(purse.balance.to_be_bytes().to_vec())
    }

    /// INITIALIZE FOR LOAD (P1 00), FOR PURCHASE (01) or FOR CAPP PURCHASE (03):
    /// `80 50 P1 P2 0B keyIdx amount4 terminal6`.
    pub(crate) fn initialize(&mut self, c: &Command) -> Reply {
        expect_len(c, 11)?;
        let (fid, purse) = self.purse(c.p2)?;
        let purse = purse.clone();
        log_file(self.df()?, purse.log_sfi)?;
        let key_index = c.data[0];
        let amount = be32(&c.data[1..5]);
        let terminal_id = array(&c.data[5..11]);
        self.dtk()?;
        let ed = fid == 0x0001;
        match c.p1 {
            0x00 => {
                check_le(c, 16)?;
                if purse.online_seq == u16::MAX {
                    return Err(Sw::CounterAtMaximum.into());
                }
                if purse
                    .balance
                    .checked_add(amount)
                    .is_none_or(|b| b > MAX_BALANCE)
                {
                    return Err(Sw::WrongData.into());
                }
                let dlk = self
                    .key(kind::LOAD, key_index)
                    .map_err(|_| Sw::KeyIndexNotSupported)?;
                let version = dlk.p4;
                let dlk = dlk.secret.key(self.algorithm())?;
                let profile = crypto(Profile::for_algorithm(dlk.algorithm()))?;
                let algorithm_id = crypto(profile.algorithm_id(&dlk))?;
                let card_random = array(&self.random(4)?);
                let load = Load {
                    card_random,
                    online_seq: purse.online_seq,
                    old_balance: purse.balance,
                    amount,
                    transaction_type: if ed { tx::ED_LOAD } else { tx::EP_LOAD },
                    terminal_id,
                    date: [0; 4],
                    time: [0; 3],
                };
                let session_key = crypto(load.session_key(profile, &dlk))?;
                let mac1 = crypto(load.mac1(&session_key))?;
                let mut out = purse.balance.to_be_bytes().to_vec();
                out.extend_from_slice(&purse.online_seq.to_be_bytes());
                out.extend_from_slice(&[version, algorithm_id]);
                out.extend_from_slice(&card_random);
                out.extend_from_slice(&mac1);
                self.session.pending = Some(Pending::Load(LoadSession {
                    fid,
                    load,
                    session_key,
                }));
                Ok(out)
            }
            0x01 | 0x03 => {
                let compound = c.p1 == 0x03;
                check_le(c, 15)?;
                if purse.offline_seq == u16::MAX {
                    return Err(Sw::CounterAtMaximum.into());
                }
                if purse.balance < amount {
                    return Err(Sw::InsufficientBalance.into());
                }
                let dpk = self
                    .key(kind::PURCHASE, key_index)
                    .map_err(|_| Sw::KeyIndexNotSupported)?;
                let version = dpk.p4;
                let dpk = dpk.secret.key(self.algorithm())?;
                let profile = crypto(Profile::for_algorithm(dpk.algorithm()))?;
                let algorithm_id = crypto(profile.algorithm_id(&dpk))?;
                let card_random = array(&self.random(4)?);
                let transaction_type = match (compound, ed) {
                    (true, _) => tx::COMPOUND_PURCHASE,
                    (false, true) => tx::ED_PURCHASE,
                    (false, false) => tx::EP_PURCHASE,
                };
                let mut out = purse.balance.to_be_bytes().to_vec();
                out.extend_from_slice(&purse.offline_seq.to_be_bytes());
                out.extend_from_slice(&purse.overdraft_limit.to_be_bytes()[1..]);
                out.extend_from_slice(&[version, algorithm_id]);
                out.extend_from_slice(&card_random);
                self.session.pending = Some(Pending::Purchase(PurchaseSession {
                    fid,
                    purchase: Purchase {
                        card_random,
                        offline_seq: purse.offline_seq,
                        amount,
                        transaction_type,
                        terminal_id,
                        terminal_seq: 0,
                        date: [0; 4],
                        time: [0; 3],
                    },
                    profile,
                    dpk,
                    capp: compound.then(Vec::new),
                }));
                Ok(out)
            }
            _ => Err(Sw::WrongP1P2.into()),
        }
    }

    /// The journal writes of a transaction on purse `fid`: record updates, new purse values,
    /// the log record, the proof.
    fn transaction_writes(
        &self,
        fid: u16,
        updates: &[(u16, u8, Vec<u8>)],
        values: (u32, u16, u16),
        entry: &LogRecord,
        prove: Prove,
    ) -> Result<Vec<Write>, Sw> {
        let path = self.session.df.clone();
        let mut scratch = self.df()?.clone();
        let purse = match scratch.ef(fid) {
            Some(Ef {
                body: Body::Purse(purse),
                ..
            }) => purse.clone(),
            _ => return Err(Sw::FileNotFound),
        };
        let log_fid = log_file(&scratch, purse.log_sfi)?;
        let mut writes = Vec::new();
        let mut records_write = |scratch: &mut crate::fs::Df,
                                 file: u16,
                                 change: &dyn Fn(&mut Content) -> Result<(), Sw>|
         -> Result<(), Sw> {
            let Some(Ef {
                body: Body::Data(DataFile { content, .. }),
                ..
            }) = scratch.ef_mut(file)
            else {
                return Err(Sw::FileNotFound);
            };
            change(content)?;
            let (Content::Fixed { records, .. }
            | Content::Variable { records, .. }
            | Content::Cyclic { records, .. }) = content
            else {
                return Err(Sw::IncompatibleFileStructure);
            };
            writes.push(Write::Records {
                df: path.clone(),
                fid: file,
                records: records.clone(),
            });
            Ok(())
        };
        for (file, number, data) in updates {
            records_write(&mut scratch, *file, &|content| {
                content.update_record(*number, data)
            })?;
        }
        let record = entry.to_bytes();
        records_write(&mut scratch, log_fid, &|content| {
            content.append_record(&record)
        })?;
        let (balance, online_seq, offline_seq) = values;
        writes.insert(
            writes.len() - 1,
            Write::Purse {
                df: path.clone(),
                fid,
                balance,
                online_seq,
                offline_seq,
            },
        );
        writes.push(Write::Prove { prove });
        Ok(writes)
    }

    /// Ends a financial command: FMCOS clears the DF's security state.
    fn end_transaction(&mut self) {
        let at_mf = self.at_mf();
        self.session.security.enter_df(at_mf);
    }

    /// CREDIT FOR LOAD (80 52 00 00 0B date4 time3 MAC2): checks MAC2 (9302, nothing
    /// changes), then commits balance, online serial, log and proof; answers the TAC.
    pub(crate) fn credit_for_load(&mut self, c: &Command, pending: Option<Pending>) -> Reply {
        if (c.p1, c.p2) != (0, 0) {
            return Err(Sw::WrongP1P2.into());
        }
        expect_len(c, 11)?;
        check_le(c, 4)?;
        let Some(Pending::Load(LoadSession {
            fid,
            mut load,
            session_key,
        })) = pending
        else {
            return Err(Sw::ConditionsNotSatisfied.into());
        };
        load.date = array(&c.data[..4]);
        load.time = array(&c.data[4..7]);
        let expected = crypto(load.mac2(&session_key))?;
        verify(&expected, &c.data[7..], "MAC2").map_err(|_| Sw::MacInvalid)?;
        let dtk = self.dtk()?;
        let profile = crypto(Profile::for_algorithm(dtk.algorithm()))?;
        let tac = crypto(load.tac(profile, &dtk))?;
        let new_balance = crypto(load.new_balance())?;
        let (_, purse) = self.purse(u8::try_from(fid).unwrap_or(0))?;
        let entry = LogRecord {
            serial: load.online_seq,
            overdraft_limit: purse.overdraft_limit,
            amount: load.amount,
            transaction_type: load.transaction_type,
            terminal_id: load.terminal_id,
            date: load.date,
            time: load.time,
        };
        let prove = Prove {
            transaction_type: load.transaction_type,
            serial: load.online_seq,
            mac: c.data[7..].to_vec(),
            tac: tac.to_vec(),
        };
        let values = (new_balance, load.online_seq + 1, purse.offline_seq);
        let writes = self.transaction_writes(fid, &[], values, &entry, prove)?;
        self.commit(writes)?;
        self.end_transaction();
        Ok(tac.to_vec())
    }

    /// DEBIT FOR PURCHASE / CAPP PURCHASE (80 54 01 00 0F terminalSeq4 date4 time3 MAC1):
    /// checks MAC1 (9302, nothing changes), then commits cached record updates, balance,
    /// offline serial, log and proof; answers TAC ‖ MAC2.
    pub(crate) fn debit_for_purchase(&mut self, c: &Command, pending: Option<Pending>) -> Reply {
        if (c.p1, c.p2) != (0x01, 0x00) {
            return Err(Sw::WrongP1P2.into());
        }
        expect_len(c, 15)?;
        check_le(c, 8)?;
        let Some(Pending::Purchase(PurchaseSession {
            fid,
            mut purchase,
            profile,
            dpk,
            capp,
        })) = pending
        else {
            return Err(Sw::ConditionsNotSatisfied.into());
        };
        purchase.terminal_seq = be32(&c.data[..4]);
        purchase.date = array(&c.data[4..8]);
        purchase.time = array(&c.data[8..11]);
        let session_key = crypto(purchase.session_key(profile, &dpk))?;
        let expected = crypto(purchase.mac1(&session_key))?;
        verify(&expected, &c.data[11..], "MAC1").map_err(|_| Sw::MacInvalid)?;
        let mac2 = crypto(purchase.mac2(&session_key))?;
        let dtk = self.dtk()?;
        let tac = crypto(purchase.tac(crypto(Profile::for_algorithm(dtk.algorithm()))?, &dtk))?;
        let (_, purse) = self.purse(u8::try_from(fid).unwrap_or(0))?;
        let new_balance = purse
            .balance
            .checked_sub(purchase.amount)
            .ok_or(Sw::InsufficientBalance)?;
        let entry = LogRecord {
            serial: purchase.offline_seq,
            overdraft_limit: purse.overdraft_limit,
            amount: purchase.amount,
            transaction_type: purchase.transaction_type,
            terminal_id: purchase.terminal_id,
            date: purchase.date,
            time: purchase.time,
        };
        let prove = Prove {
            transaction_type: purchase.transaction_type,
            serial: purchase.offline_seq,
            mac: mac2.to_vec(),
            tac: tac.to_vec(),
        };
        let values = (new_balance, purse.online_seq, purchase.offline_seq + 1);
        let updates = capp.unwrap_or_default();
        let writes = self.transaction_writes(fid, &updates, values, &entry, prove)?;
        self.commit(writes)?;
        self.end_transaction();
        Ok([tac, mac2].concat())
    }

    /// UPDATE CAPP DATA CACHE (80 DC record P2=SFI<<3|04 Lc data) after INITIALIZE FOR CAPP
    /// PURCHASE: checks the update against the record file and caches it for the DEBIT.
    pub(crate) fn update_capp_data_cache(
        &mut self,
        c: &Command,
        pending: Option<Pending>,
    ) -> Reply {
        let Some(Pending::Purchase(mut session)) = pending else {
            return Err(Sw::ConditionsNotSatisfied.into());
        };
        let Some(cache) = &mut session.capp else {
            return Err(Sw::ConditionsNotSatisfied.into());
        };
        let result = self.check_capp_update(c);
        if let Ok(fid) = result {
            cache.push((fid, c.p1, c.data.clone()));
        }
        self.session.pending = Some(Pending::Purchase(session));
        result.map(|_| Vec::new()).map_err(Fault::from)
    }

    fn check_capp_update(&self, c: &Command) -> Result<u16, Sw> {
        if c.p2 & 0x07 != 0x04 || c.p2 >> 3 == 0 {
            return Err(Sw::WrongP1P2);
        }
        let Some(Ef {
            fid,
            body: Body::Data(file),
        }) = self.df()?.ef_by_sfi(c.p2 >> 3)
        else {
            return Err(Sw::FileNotFound);
        };
        self.require(file.write)?;
        if Protection::of_type(file.type_byte) != Protection::Plain {
            return Err(Sw::ClaMismatchesProtection);
        }
        file.content.clone().update_record(c.p1, &c.data)?;
        Ok(*fid)
    }

    /// GET TRANSACTION PROVE (80 5A 00 type 02 serial2): MAC ‖ TAC of the last transaction
    /// when it has this type and serial, else 9406.
    pub(crate) fn get_transaction_prove(&mut self, c: &Command) -> Reply {
        if c.p1 != 0 {
            return Err(Sw::WrongP1P2.into());
        }
        expect_len(c, 2)?;
        check_le(c, 8)?;
        let serial = u16::from_be_bytes([c.data[0], c.data[1]]);
        match &self.image().last_transaction {
            Some(p) if p.transaction_type == c.p2 && p.serial == serial => {
                Ok([p.mac.as_slice(), &p.tac].concat())
            }
            _ => Err(Sw::MacNotAvailable.into()),
        }
    }
}
