//! `ykt demo`: the whole story on embedded defaults, in a fresh data directory.
//!
//! 1. The KMS of a lab bureau (`ykt_issuer::lab`): in-process HSM, SQLite, three officers and
//!    a quorum of two, a region and two schools, the ten e-purse master keys in SM4 and in
//!    3DES generated under 2-of-3 custody (share files in `custody/`), the virtual card
//!    vendor's transport keys imported from their components.
//! 2. A PSAM per school: school 1 runs SM4 cards, school 2 3DES cards.
//! 3. Ten student cards from two rosters (`roster-SCHOOL.csv`), issued by batch.
//! 4. A load on every card, authorised online by the KMS; two purchases per card at its
//!    school's terminal.
//! 5. Clearing: the KMS verifies every purchase record's TAC; a forged copy is refused.
//! 6. The audit chain verified.
//!
//! The data directory stays behind: `ykt --data-dir DIR key list`, `ykt issue list`,
//! `ykt terminal balance --card SERIAL`, `ykt audit verify` and the rest work on it.

use crate::ceremony::{prepare_shares_dir, write_shares};
use crate::error::{CliError, Result};
use crate::output::{Output, Record, Report, Value};
use crate::terminal::{append_records, load_request, purchase, purse_aid, records_file};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;
use ykt_apdu::pboc::Date;
use ykt_apdu::{MemoryTransport, Transport};
use ykt_card_sim::Card;
use ykt_issuer::batch::{Silent, VirtualCards};
use ykt_issuer::lab::{LAB_OFFICERS, LAB_QUORUM, LAB_SCHOOLS, LabBureau};
use ykt_issuer::personalise::Station;
use ykt_issuer::profile::{Algorithm, Profile, ProfileKind};
use ykt_issuer::roster::read_roster;
use ykt_kms::Kms;
use ykt_kms::issuance::{CardRecord, TacVerdict};
use ykt_psam::PurchaseRecord;

/// Arguments of `ykt demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// An empty (or new) data directory to run in [default: a new temporary directory].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// The students of the demo rosters.
const STUDENTS: [&str; 10] = [
    "李明", "王芳", "张伟", "刘洋", "陈静", "杨帆", "赵磊", "黄婷", "周杰", "吴敏",
];

/// A resident ID number (GB 11643) for student `n` of a school in Xihu District, born in 2015.
fn id_number(school: &str, n: usize) -> String {
    let first17 = format!(
        "330106201509{:02}{}{:02}",
        1 + n % 28,
        &school[9..],
        n % 100
    );
    let check = ykt_issuer::roster::id_check_character(first17.as_bytes()) as char;
    format!("{first17}{check}")
}

/// The operator the demo's station acts as.
const OPERATOR: &str = "operator:demo";

/// What each step took.
struct Steps(Vec<Record>);

impl Steps {
    fn done(&mut self, step: &'static str, started: Instant, detail: String) {
        self.0.push(
            Record::new()
                .with("step", step)
                .with("ms", started.elapsed().as_secs_f64() * 1e3)
                .with("detail", detail),
        );
    }
}

fn fresh_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    std::env::temp_dir().join(format!("ykt-demo-{}-{nanos:x}", std::process::id()))
}

fn write_roster(dir: &Path, school: &str, students: &[&str]) -> Result<PathBuf> {
    let path = dir.join(format!("roster-{school}.csv"));
    let mut text = String::from("name,number,id_number,card_type,school\n");
    for (i, name) in students.iter().enumerate() {
        text.push_str(&format!(
            "{name},{}{:03},{},student,{school}\n",
            &school[6..],
            i + 1,
            id_number(school, i)
        ));
    }
    std::fs::write(&path, text).map_err(|source| CliError::Write {
        path: path.display().to_string(),
        source,
    })?;
    Ok(path)
}

fn powered(cards: &VirtualCards, record: &CardRecord) -> Result<MemoryTransport<Card>> {
    let mut transport = MemoryTransport::new(record.serial.to_string(), cards.open(record)?);
    transport.reset()?;
    Ok(transport)
}

/// One school of the demo: its PSAM and cards.
struct School {
    code: &'static str,
    algorithm: Algorithm,
    psam: CardRecord,
    cards: Vec<CardRecord>,
}

impl DemoArgs {
    /// Runs the demo.
    pub fn run(self) -> Result<Report> {
        let dir = self.data_dir.unwrap_or_else(fresh_dir);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(CliError::Runtime)?;
        runtime.block_on(story(&dir))
    }
}

async fn story(dir: &Path) -> Result<Report> {
    let total = Instant::now();
    let mut steps = Steps(Vec::new());

    let started = Instant::now();
    let setup = LabBureau::create(dir).await?;
    let custody_dir = dir.join("custody");
    let planned: Vec<(String, String, u8)> = setup
        .masters
        .iter()
        .flat_map(|report| report.shares.iter())
        .map(|s| (s.officer.clone(), s.key_id.clone(), s.version))
        .collect();
    prepare_shares_dir(&custody_dir, &planned)?;
    let mut share_files = Vec::new();
    for report in &setup.masters {
        share_files.extend(write_shares(&custody_dir, &report.shares)?);
    }
    steps.done(
        "kms",
        started,
        format!(
            "{} officers, quorum {LAB_QUORUM}; {} master keys (SM4, 3DES) under {LAB_QUORUM}-of-{} \
             custody, {} share files; transport keys {}",
            LAB_OFFICERS.len(),
            setup.masters.len(),
            LAB_OFFICERS.len(),
            share_files.len(),
            setup
                .transport_keys
                .iter()
                .map(|(id, kcv)| format!("{id} (KCV {kcv})"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let kms = &setup.bureau.kms;
    let station = Station::new(kms, OPERATOR);
    let valid_from = Date::of_unix_ms(ykt_kms::store::now_ms());
    let cards = VirtualCards::new(&crate::issue::cards_dir(dir))?;

    let started = Instant::now();
    let mut schools = Vec::new();
    for ((code, _), algorithm) in LAB_SCHOOLS
        .iter()
        .zip([Algorithm::Sm4, Algorithm::TripleDes])
    {
        let profile = Profile::default_for(ProfileKind::Psam, algorithm);
        let batch = station
            .create_psam_batch(&profile, code, "demo-terminals", 1, valid_from)
            .await?;
        let mut source = cards.clone();
        station
            .run_batch(&batch.id, &profile, &mut source, None, &mut Silent)
            .await?;
        let psam = kms.batch_cards(&batch.id).await?.remove(0);
        schools.push(School {
            code,
            algorithm,
            psam,
            cards: Vec::new(),
        });
    }
    steps.done(
        "psams",
        started,
        schools
            .iter()
            .map(|s| {
                format!(
                    "{} terminal {} PSAM {} ({})",
                    s.code,
                    s.psam.terminal_id.clone().unwrap_or_default(),
                    s.psam.serial,
                    s.algorithm.name()
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    );

    let started = Instant::now();
    let mut apdus = Vec::new();
    for (school, students) in schools.iter_mut().zip(STUDENTS.chunks(5)) {
        let roster = write_roster(dir, school.code, students)?;
        let rows = read_roster(&roster)?;
        let profile = Profile::default_for(ProfileKind::UserCard, school.algorithm);
        let batch = station
            .create_card_batch(&profile, &rows, valid_from)
            .await?;
        let mut source = cards.clone();
        let outcome = station
            .run_batch(&batch.id, &profile, &mut source, None, &mut Silent)
            .await?;
        apdus.extend(outcome.apdus);
        school.cards = kms.batch_cards(&batch.id).await?;
    }
    steps.done(
        "cards",
        started,
        format!(
            "{} student cards in 2 batches, at most {} APDUs per card",
            apdus.len(),
            apdus.iter().max().copied().unwrap_or(0)
        ),
    );

    let started = Instant::now();
    let now = ykt_kms::store::now_ms();
    let mut records: Vec<PurchaseRecord> = Vec::new();
    let mut card_rows = Vec::new();
    for school in &schools {
        let mut psam = powered(&cards, &school.psam)?;
        let mut psam_session = psam.session()?;
        let terminal = crate::terminal::terminal_id(psam_session.as_mut())?;
        for card in &school.cards {
            let mut transport = powered(&cards, card)?;
            let mut session = transport.session()?;
            ykt_psam::select_purse_application(session.as_mut(), &purse_aid())?;
            let asn = ykt_psam::read_asn(session.as_mut())?;
            let actor = format!("terminal:{}", hex::encode_upper(terminal));
            ykt_issuer::host::load(
                kms,
                &actor,
                session.as_mut(),
                &load_request(10_000, terminal),
                &asn,
                now,
            )
            .await?;
            for (n, amount) in [1_250, 800].into_iter().enumerate() {
                records.push(purchase(
                    session.as_mut(),
                    psam_session.as_mut(),
                    &asn,
                    amount,
                    now + 60_000 * (n as i64 + 1),
                )?);
            }
            let balance = ykt_psam::balance(session.as_mut(), ykt_psam::Purse::Ep)?;
            card_rows.push(
                Record::new()
                    .with("serial", card.serial.to_string())
                    .with("school", school.code)
                    .with("holder", card.holder_name.clone().unwrap_or_default())
                    .with("algorithm", card.algorithm.clone())
                    .with("apdus", card.apdus.unwrap_or(0))
                    .with("balance_fen", u64::from(balance)),
            );
        }
    }
    append_records(&records_file(dir), &records)?;
    steps.done(
        "transactions",
        started,
        format!(
            "{} loads of 100.00 authorised by the KMS, {} purchases at both schools",
            card_rows.len(),
            records.len()
        ),
    );

    let started = Instant::now();
    let verdicts = kms.verify_purchase_records(&records).await?;
    let valid = verdicts.iter().filter(|v| **v == TacVerdict::Valid).count();
    let mut forged = records[0];
    forged.amount += 100;
    let forged_verdict = kms.verify_purchase_records(&[forged]).await?;
    steps.done(
        "clearing",
        started,
        format!(
            "{valid} of {} TACs verified by the KMS; a forged record is {:?}",
            records.len(),
            forged_verdict[0]
        ),
    );

    let started = Instant::now();
    let audit = kms.verify_audit().await?;
    let intact = audit.is_intact();
    steps.done(
        "audit",
        started,
        format!(
            "{} records, chain {}",
            audit.records,
            if intact { "intact" } else { "BROKEN" }
        ),
    );
    close(kms).await;

    let success = intact
        && valid == records.len()
        && forged_verdict == [TacVerdict::Invalid]
        && apdus.len() == STUDENTS.len();
    Ok(Report::with_status(
        Output::Record(
            Record::new()
                .with("data_dir", dir.display().to_string())
                .with("seconds", total.elapsed().as_secs_f64())
                .with("steps", Value::Records(steps.0))
                .with("cards", Value::Records(card_rows))
                .with("tacs_verified", valid as u64)
                .with("audit_records", audit.records)
                .with("audit_intact", intact),
        ),
        success,
    ))
}

/// Closes the store (an SQLite file is checkpointed, so the directory is complete).
async fn close(kms: &Kms) {
    kms.store().close().await;
}
