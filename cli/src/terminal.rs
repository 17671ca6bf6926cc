//! `ykt terminal`: a terminal of the e-purse (`ykt_psam`) against issued cards: balance and
//! log reads, online loads through the KMS, purchases through a PSAM, and clearing of the
//! purchase records by the KMS.
//!
//! Cards and PSAMs are the virtual ones issued into the data directory (`--card SERIAL`,
//! `--psam SERIAL`) or cards in PC/SC readers (`--card-reader`, `--psam-reader`). A purchase
//! appends its record, in the fixed 43-byte layout of `ykt_psam::PurchaseRecord` as one hex
//! line, to the records file (default `<data dir>/records/purchases.txt`) that
//! `ykt terminal clear` sends to the KMS.

use crate::context::{Context, GroupCommand, Need};
use crate::error::{CliError, Result};
use crate::issue::cards_dir;
use crate::output::{Output, Record, Report, Value};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use ykt_apdu::{MemoryTransport, Session, Transport};
use ykt_card_sim::Card;
use ykt_issuer::profile::{Algorithm, Profile, ProfileKind};
use ykt_psam::{
    FieldValue, LoadRecord, LoadRequest, PurchaseRecord, PurchaseRequest, Purse, Terminal,
};

/// The terminal commands.
#[derive(Subcommand)]
pub enum TerminalCommand {
    /// The purse balance of a card.
    Balance(CardArgs),
    /// The transaction log of a card, newest first.
    Log(CardArgs),
    /// Load money onto a card, authorised online by the KMS.
    Load(MoneyArgs),
    /// A purchase through a PSAM.
    Purchase(MoneyArgs),
    /// Send purchase records to the KMS to verify their TACs.
    Clear(ClearArgs),
}

impl GroupCommand for TerminalCommand {
    fn run(self, context: &mut Context) -> Result<Report> {
        match self {
            Self::Balance(args) => args.balance(context),
            Self::Log(args) => args.log(context),
            Self::Load(args) => args.load(context),
            Self::Purchase(args) => args.purchase(context),
            Self::Clear(args) => args.run(context),
        }
    }
}

/// The AID of the e-purse application of the built-in user-card profiles.
pub fn purse_aid() -> Vec<u8> {
    Profile::default_for(ProfileKind::UserCard, Algorithm::Sm4)
        .profile
        .application
        .aid
}

/// The AID of the PSAM application of the built-in PSAM profiles.
pub fn psam_aid() -> Vec<u8> {
    Profile::default_for(ProfileKind::Psam, Algorithm::Sm4)
        .profile
        .application
        .aid
}

/// A virtual card of the data directory, by serial, powered on.
pub fn virtual_card(data_dir: &Path, serial: &str) -> Result<MemoryTransport<Card>> {
    let serial = ykt_kms::issuance::Serial::parse(serial)?;
    let path = ykt_issuer::batch::card_file(&cards_dir(data_dir), &serial);
    if !path.exists() {
        return Err(CliError::Input {
            arg: "--card/--psam",
            reason: format!(
                "no virtual card {serial} in {}",
                cards_dir(data_dir).display()
            ),
        });
    }
    let mut transport = MemoryTransport::new(format!("virtual {serial}"), Card::open(&path)?);
    transport.reset()?;
    Ok(transport)
}

/// Which card: a virtual one by serial, or the card in a reader.
#[derive(Args)]
pub struct CardArgs {
    /// The serial of a virtual card of the data directory.
    #[arg(long, value_name = "SERIAL", required_unless_present = "card_reader")]
    card: Option<String>,
    /// A PC/SC reader holding the card.
    #[arg(long, value_name = "NAME", conflicts_with = "card")]
    card_reader: Option<String>,
}

impl CardArgs {
    fn open(&self, context: &Context) -> Result<Box<dyn Transport>> {
        match (&self.card, &self.card_reader) {
            (Some(serial), _) => Ok(Box::new(virtual_card(context.data_dir(), serial)?)),
            (None, Some(reader)) => {
                let mut transport = crate::script::reader::open(reader)?;
                transport.reset()?;
                Ok(transport)
            }
            (None, None) => Err(CliError::Usage("give --card or --card-reader".into())),
        }
    }

    /// Opens the card and selects its purse application; returns the ASN.
    fn select(&self, session: &mut dyn Session) -> Result<[u8; 8]> {
        ykt_psam::select_purse_application(session, &purse_aid())?;
        Ok(ykt_psam::read_asn(session)?)
    }

    fn balance(self, context: &Context) -> Result<Report> {
        let mut transport = self.open(context)?;
        let mut session = transport.session()?;
        let asn = self.select(session.as_mut())?;
        let balance = ykt_psam::balance(session.as_mut(), Purse::Ep)?;
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("asn", asn)
                .with("balance_fen", u64::from(balance)),
        )))
    }

    fn log(self, context: &Context) -> Result<Report> {
        let mut transport = self.open(context)?;
        let mut session = transport.session()?;
        self.select(session.as_mut())?;
        let records = ykt_psam::read_log(session.as_mut())?;
        Ok(Report::ok(Output::List(
            records
                .iter()
                .map(|r| {
                    Record::new()
                        .with("serial", u64::from(r.serial))
                        .with("type", [r.transaction_type])
                        .with("amount_fen", u64::from(r.amount))
                        .with("terminal_id", r.terminal_id)
                        .with("date", r.date)
                        .with("time", r.time)
                })
                .collect(),
        )))
    }
}

/// A card, a PSAM and an amount.
#[derive(Args)]
pub struct MoneyArgs {
    #[command(flatten)]
    card: CardArgs,
    /// The serial of the terminal's virtual PSAM (its terminal ID enters the transaction).
    #[arg(long, value_name = "SERIAL", required_unless_present = "psam_reader")]
    psam: Option<String>,
    /// A PC/SC reader holding the terminal's PSAM.
    #[arg(long, value_name = "NAME", conflicts_with = "psam")]
    psam_reader: Option<String>,
    /// The amount in fen (1/100 yuan).
    #[arg(long, value_name = "FEN")]
    amount: u32,
    /// The records file purchases are appended to [default: <data dir>/records/purchases.txt].
    #[arg(long, value_name = "FILE")]
    records: Option<PathBuf>,
}

/// The default records file of a data directory.
pub fn records_file(data_dir: &Path) -> PathBuf {
    data_dir.join("records").join("purchases.txt")
}

/// Appends purchase records (one hex line each) to `path`.
pub fn append_records(path: &Path, records: &[PurchaseRecord]) -> Result<()> {
    let failed = |source| CliError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(failed)?;
    let text: String = records.iter().map(|r| r.to_hex() + "\n").collect();
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)
}

/// A purchase record as a record of the output.
pub fn purchase_output(record: &PurchaseRecord) -> Record {
    record
        .fields()
        .into_iter()
        .fold(Record::new(), |out, (name, value)| {
            out.with(
                name,
                match value {
                    FieldValue::Number(n) => Value::Count(u64::from(n)),
                    FieldValue::Hex(text) => Value::Text(text),
                },
            )
        })
        .with("record", record.to_hex())
}

/// A load record as a record of the output.
pub fn load_output(record: &LoadRecord) -> Record {
    Record::new()
        .with("asn", record.asn)
        .with("online_seq", u64::from(record.online_seq))
        .with("amount_fen", u64::from(record.amount))
        .with("terminal_id", record.terminal_id)
        .with("date", record.date)
        .with("time", record.time)
        .with("tac", record.tac)
        .with("balance_fen", u64::from(record.balance_after()))
        .with("tac_verified", true)
}

/// One EP purchase of `amount` fen at terminal time `now_ms` (UTC).
pub fn purchase(
    card: &mut dyn Session,
    psam: &mut dyn Session,
    asn: &[u8; 8],
    amount: u32,
    now_ms: i64,
) -> Result<PurchaseRecord> {
    let terminal = Terminal::open(psam, &psam_aid())?;
    let (date, time) = ykt_apdu::pboc::bcd_date_time(now_ms);
    let request = PurchaseRequest {
        purse: Purse::Ep,
        amount,
        transaction_type: 0x06,
        key_index: 1,
        date,
        time,
    };
    Ok(terminal.purchase(card, psam, &request, asn, &[])?)
}

/// The terminal ID of a PSAM (MF EF 0016).
pub fn terminal_id(psam: &mut dyn Session) -> Result<[u8; 6]> {
    Ok(Terminal::open(psam, &psam_aid())?.terminal_id())
}

/// An EP load request for `amount` fen at terminal `terminal_id`.
pub fn load_request(amount: u32, terminal_id: [u8; 6]) -> LoadRequest {
    LoadRequest {
        purse: Purse::Ep,
        amount,
        transaction_type: 0x02,
        key_index: 1,
        terminal_id,
    }
}

impl MoneyArgs {
    fn open_psam(&self, context: &Context) -> Result<Box<dyn Transport>> {
        match (&self.psam, &self.psam_reader) {
            (Some(serial), _) => Ok(Box::new(virtual_card(context.data_dir(), serial)?)),
            (None, Some(reader)) => {
                let mut transport = crate::script::reader::open(reader)?;
                transport.reset()?;
                Ok(transport)
            }
            (None, None) => Err(CliError::Usage("give --psam or --psam-reader".into())),
        }
    }

    fn load(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Hsm(&[]))?;
        let mut psam = self.open_psam(context)?;
        let terminal = terminal_id(psam.session()?.as_mut())?;
        let mut card = self.card.open(context)?;
        let mut session = card.session()?;
        let asn = self.card.select(session.as_mut())?;
        let actor = format!("terminal:{}", hex::encode_upper(terminal));
        let record = context.block_on(ykt_issuer::host::load(
            &kms,
            &actor,
            session.as_mut(),
            &load_request(self.amount, terminal),
            &asn,
            ykt_kms::store::now_ms(),
        ))?;
        Ok(Report::ok(Output::Record(load_output(&record))))
    }

    fn purchase(self, context: &Context) -> Result<Report> {
        let mut psam = self.open_psam(context)?;
        let mut psam_session = psam.session()?;
        let mut card = self.card.open(context)?;
        let mut session = card.session()?;
        let asn = self.card.select(session.as_mut())?;
        let record = purchase(
            session.as_mut(),
            psam_session.as_mut(),
            &asn,
            self.amount,
            ykt_kms::store::now_ms(),
        )?;
        let file = self
            .records
            .clone()
            .unwrap_or_else(|| records_file(context.data_dir()));
        append_records(&file, &[record])?;
        Ok(Report::ok(Output::Record(
            purchase_output(&record).with("records_file", file.display().to_string()),
        )))
    }
}

/// Arguments of `ykt terminal clear`.
#[derive(Args)]
pub struct ClearArgs {
    /// The records file [default: <data dir>/records/purchases.txt].
    #[arg(long, value_name = "FILE")]
    records: Option<PathBuf>,
}

/// Reads a records file: one hex record per line (blank lines and `#` comments skipped).
pub fn read_records(path: &Path) -> Result<Vec<PurchaseRecord>> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.display().to_string(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|(n, line)| {
            PurchaseRecord::from_hex(line.trim()).map_err(|error| CliError::Input {
                arg: "--records",
                reason: format!("line {}: {error}", n + 1),
            })
        })
        .collect()
}

impl ClearArgs {
    fn run(self, context: &Context) -> Result<Report> {
        let file = self
            .records
            .unwrap_or_else(|| records_file(context.data_dir()));
        let records = read_records(&file)?;
        let kms = context.open(Need::Hsm(&[]))?;
        let verdicts = context.block_on(kms.verify_purchase_records(&records))?;
        let all_valid = verdicts
            .iter()
            .all(|v| *v == ykt_kms::issuance::TacVerdict::Valid);
        Ok(Report::with_status(
            Output::List(
                records
                    .iter()
                    .zip(&verdicts)
                    .map(|(record, verdict)| {
                        Record::new()
                            .with("asn", record.asn)
                            .with("terminal_id", record.terminal_id)
                            .with("terminal_seq", u64::from(record.terminal_seq))
                            .with("amount_fen", u64::from(record.amount))
                            .with("tac", record.tac)
                            .with(
                                "verdict",
                                serde_json::to_value(verdict)
                                    .ok()
                                    .and_then(|v| v.as_str().map(str::to_owned))
                                    .unwrap_or_default(),
                            )
                    })
                    .collect(),
            ),
            all_valid,
        ))
    }
}
