//! Batches: the KMS holds the journal (the batch and one record per card, in order, with its
//! status), the station works through it, and a batch interrupted at any point — the
//! process killed, the card pulled, power lost — is finished by running it again: issued
//! cards are skipped, the card of an interrupted attempt is recognised by its state and
//! personalised again under its own serial, and every other card is issued exactly once.
//!
//! Cards come from a [`CardSource`]: [`VirtualCards`] keeps every virtual card in its own
//! state file named by its serial (the card an interrupted attempt left is the one the next
//! attempt finds), a PC/SC reader source hands over the card in the reader.

use crate::error::{IssueError, Result, RowError};
use crate::personalise::{Personalised, Station};
use crate::profile::{LoadedProfile, ProfileKind};
use crate::roster::{CardType, RosterRow};
use std::path::{Path, PathBuf};
use ykt_apdu::pboc::Date;
use ykt_apdu::{MemoryTransport, Transport};
use ykt_card_sim::{Card, Chip, ChipKind};
use ykt_kms::issuance::{
    BatchInfo, BatchProfile, CardRecord, CardStatus, DeviceKind, NewCard, NewPsams, Serial,
};
use ykt_kms::station::CardAuthority;

/// The virtual chip a card record is personalised on.
pub fn chip_of(record: &CardRecord) -> Result<Chip> {
    Ok(Chip {
        algorithm: crate::lab::chip_algorithm(record.key_algorithm()?),
        kind: match record.kind {
            DeviceKind::Card => ChipKind::UserCard,
            DeviceKind::Psam => ChipKind::Psam,
        },
    })
}

/// The state file of the virtual card `serial` in the directory of virtual cards `dir`.
pub fn card_file(dir: &Path, serial: &Serial) -> PathBuf {
    dir.join(format!("{serial}.card"))
}

/// Where the cards of a batch come from.
pub trait CardSource {
    /// The card to personalise as `record`: a blank card, or the card an interrupted attempt
    /// at this record left.
    fn card(&mut self, record: &CardRecord) -> Result<Box<dyn Transport + '_>>;
}

/// Virtual cards of the virtual vendor ([`ykt_card_sim::vendor`]), one state file per card
/// in a directory: `SERIAL.card`, created blank on first use.
#[derive(Debug, Clone)]
pub struct VirtualCards {
    dir: PathBuf,
}

impl VirtualCards {
    /// Virtual cards kept in `dir` (created when missing).
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| IssueError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The state file of the card with `serial`.
    pub fn path(&self, serial: &Serial) -> PathBuf {
        card_file(&self.dir, serial)
    }

    /// Opens the card with `serial`, blank when it has no state file yet.
    pub fn open(&self, record: &CardRecord) -> Result<Card> {
        let path = self.path(&record.serial);
        if path.exists() {
            return Ok(Card::open(&path)?);
        }
        Ok(Card::blank_at(&path, chip_of(record)?)?)
    }
}

impl CardSource for VirtualCards {
    fn card(&mut self, record: &CardRecord) -> Result<Box<dyn Transport + '_>> {
        Ok(Box::new(MemoryTransport::new(
            format!("virtual {}", record.serial),
            self.open(record)?,
        )))
    }
}

/// What a station reports while it works through a batch.
pub trait Progress {
    /// `record` is about to be personalised (the `done`-th of `total`, from 0).
    fn starting(&mut self, _record: &CardRecord, _done: u64, _total: u64) {}

    /// A card was issued.
    fn issued(&mut self, _personalised: &Personalised) {}
}

/// A [`Progress`] that reports nothing.
pub struct Silent;

impl Progress for Silent {}

/// The outcome of a run through a batch.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    /// The batch after the run.
    pub batch: BatchInfo,
    /// Cards issued by this run.
    pub issued_now: u64,
    /// APDUs of each card issued by this run.
    pub apdus: Vec<u64>,
}

impl<A: CardAuthority> Station<'_, A> {
    /// Works through batch `id` until every card is issued: cards already issued are
    /// skipped; the others are personalised in batch order with `profile`, which must be the
    /// profile the batch was created with (its digest is checked). Transcripts go to
    /// `transcripts/SERIAL.txt` when a directory is given. The first card that fails stops
    /// the run with its error; running again resumes there.
    pub async fn run_batch(
        &self,
        id: &str,
        profile: &LoadedProfile,
        source: &mut dyn CardSource,
        transcripts: Option<&Path>,
        progress: &mut dyn Progress,
    ) -> Result<BatchOutcome> {
        let batch = self.kms().batch(id).await?;
        if batch.profile_digest != profile.digest || batch.profile != profile.label() {
            return Err(IssueError::Profile {
                field: "profile".into(),
                reason: format!(
                    "batch {id} was created with profile {} ({}); this is {} ({})",
                    batch.profile,
                    batch
                        .profile_digest
                        .get(..16)
                        .unwrap_or(&batch.profile_digest),
                    profile.label(),
                    &profile.digest[..16]
                ),
            });
        }
        let kind = match profile.profile.kind {
            ProfileKind::UserCard => DeviceKind::Card,
            ProfileKind::Psam => DeviceKind::Psam,
        };
        if batch.kind != kind {
            return Err(IssueError::Profile {
                field: "kind".into(),
                reason: format!("batch {id} issues {}s", batch.kind.name()),
            });
        }
        if let Some(dir) = transcripts {
            std::fs::create_dir_all(dir).map_err(|source| IssueError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let cards = self.kms().batch_cards(id).await?;
        let (issued, pending): (Vec<&CardRecord>, Vec<&CardRecord>) =
            cards.iter().partition(|c| c.status == CardStatus::Issued);
        let mut apdus = Vec::new();
        for (done, record) in (issued.len() as u64..).zip(pending) {
            progress.starting(record, done, batch.total);
            let mut transport = source.card(record)?;
            transport.reset()?;
            let personalised = {
                let mut session = transport.session()?;
                self.personalise(session.as_mut(), &record.serial, profile)
                    .await?
            };
            if let Some(dir) = transcripts {
                let path = dir.join(format!("{}.txt", record.serial));
                std::fs::write(&path, personalised.transcript.to_string())
                    .map_err(|source| IssueError::Io { path, source })?;
            }
            progress.issued(&personalised);
            apdus.push(personalised.apdus);
        }
        Ok(BatchOutcome {
            batch: self.kms().batch(id).await?,
            issued_now: apdus.len() as u64,
            apdus,
        })
    }
}

/// The last valid day of a card of `card_type` first valid on `from`, by the profile's
/// validity periods.
fn expiry_of(profile: &LoadedProfile, card_type: CardType, from: Date) -> Date {
    let validity = &profile.profile.validity;
    let end = match card_type {
        CardType::Student => from.add_years(validity.student_years),
        CardType::Staff => from.add_years(validity.staff_years),
        CardType::Temporary => Some(from.add_days(i64::from(validity.temporary_days))),
    };
    end.unwrap_or(from).add_days(-1)
}

impl<A: CardAuthority> Station<'_, A> {
    fn batch_profile(&self, profile: &LoadedProfile, valid_from: Date) -> BatchProfile {
        BatchProfile {
            name: profile.label(),
            digest: profile.digest.clone(),
            algorithm: profile.profile.algorithm.key_algorithm(),
            templates: profile.profile.templates(),
            valid_from: valid_from.to_string(),
        }
    }

    /// Creates a batch of user cards from roster rows, first valid on `valid_from`. Every row
    /// is checked against the KMS before anything is recorded: a school it does not know, a
    /// holder who already has a card of that type, an expiry before `valid_from`. Any such
    /// row makes the whole roster [`IssueError::Roster`], listing them all.
    pub async fn create_card_batch(
        &self,
        profile: &LoadedProfile,
        rows: &[RosterRow],
        valid_from: Date,
    ) -> Result<BatchInfo> {
        if profile.profile.kind != ProfileKind::UserCard {
            return Err(IssueError::Profile {
                field: "kind".into(),
                reason: "a roster is issued with a user-card profile".into(),
            });
        }
        let mut errors = Vec::new();
        let mut cards = Vec::with_capacity(rows.len());
        let mut schools = std::collections::BTreeMap::new();
        for row in rows {
            let error = |column: &str, reason: String| RowError {
                row: row.row,
                column: Some(column.into()),
                reason,
            };
            if !schools.contains_key(&row.school) {
                let known = self.kms().knows_school(&row.school).await?;
                schools.insert(row.school.clone(), known);
            }
            if !schools[&row.school] {
                errors.push(error(
                    "school",
                    format!("no school {} in the KMS", row.school),
                ));
                continue;
            }
            let card_type = row.card_type.name();
            if let Some(card) = self
                .kms()
                .holder_card(&row.school, &row.number, card_type)
                .await?
            {
                errors.push(error(
                    "number",
                    format!(
                        "{} already has a {card_type} card ({}, {:?})",
                        row.number, card.serial, card.status
                    ),
                ));
                continue;
            }
            let expiry = match &row.expiry {
                Some(text) => match Date::parse(text) {
                    Some(date) => date,
                    None => {
                        errors.push(error("expiry", format!("`{text}` is not a date")));
                        continue;
                    }
                },
                None => expiry_of(profile, row.card_type, valid_from),
            };
            if expiry < valid_from {
                errors.push(error(
                    "expiry",
                    format!("{expiry} is before the first valid day {valid_from}"),
                ));
                continue;
            }
            cards.push(NewCard {
                school: row.school.clone(),
                card_type: card_type.into(),
                holder_name: row.name.clone(),
                holder_number: row.number.clone(),
                id_number: row.id_number.clone(),
                expiry: expiry.to_string(),
            });
        }
        if !errors.is_empty() {
            return Err(IssueError::Roster(errors));
        }
        Ok(self
            .kms()
            .create_card_batch(
                self.actor(),
                &self.batch_profile(profile, valid_from),
                &cards,
            )
            .await?)
    }

    /// Creates a batch of `count` PSAMs for the terminals of `school` from `vendor`, each
    /// with a registered terminal ID, first valid on `valid_from`.
    pub async fn create_psam_batch(
        &self,
        profile: &LoadedProfile,
        school: &str,
        vendor: &str,
        count: usize,
        valid_from: Date,
    ) -> Result<BatchInfo> {
        if profile.profile.kind != ProfileKind::Psam {
            return Err(IssueError::Profile {
                field: "kind".into(),
                reason: "PSAMs are issued with a PSAM profile".into(),
            });
        }
        let expiry = valid_from
            .add_years(profile.profile.validity.psam_years)
            .unwrap_or(valid_from)
            .add_days(-1);
        Ok(self
            .kms()
            .create_psam_batch(
                self.actor(),
                &self.batch_profile(profile, valid_from),
                &NewPsams {
                    school: school.into(),
                    vendor: vendor.into(),
                    count,
                    expiry: expiry.to_string(),
                },
            )
            .await?)
    }
}
