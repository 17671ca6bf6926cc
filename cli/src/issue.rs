//! `ykt issue`: the issuing station of a card centre (`ykt_issuer`).
//!
//! - `ykt issue batch --roster FILE`: checks the roster (CSV or XLSX) entirely, then has the
//!   KMS allocate every holder's serial in one journal entry, then personalises the cards
//!   one after another with a progress bar;
//! - `ykt issue psam --count N --school S --vendor V`: PSAMs with registered terminal IDs;
//! - `ykt issue resume [BATCH]`: finishes interrupted batches (all open ones by default);
//! - `ykt issue list`, `ykt issue show BATCH`: the journal.
//!
//! Cards are virtual cards kept in `<data dir>/cards/SERIAL.card` unless `--reader NAME`
//! names a PC/SC reader; then the station asks for each card in turn (or, with
//! `--no-prompt`, takes whatever card a card feeder presents). Transcripts of every card,
//! secrets redacted, go to `--transcripts DIR`.
//!
//! With `--kms https://HOST:PORT` the station works through the KMS API on another machine
//! (role `issuer`, for the schools of its certificate) instead of the local KMS: the client
//! identity comes from `api-client.toml` ([`crate::api_client`]).

use crate::context::{Context, GroupCommand, Need};
use crate::error::{CliError, Result};
use crate::output::{Output, Record, Report, thousands};
use crate::time::format_ms;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use ykt_apdu::Transport;
use ykt_apdu::pboc::Date;
use ykt_issuer::batch::{BatchOutcome, CardSource, Progress, VirtualCards};
use ykt_issuer::personalise::{Personalised, Station};
use ykt_issuer::profile::{Algorithm, LoadedProfile, Profile, ProfileKind};
use ykt_issuer::roster::read_roster;
use ykt_kms::Kms;
use ykt_kms::issuance::{BatchInfo, CardRecord};
use ykt_kms::station::CardAuthority;

/// The issuing commands.
#[derive(Subcommand)]
pub enum IssueCommand {
    /// Issue the user cards of a roster (CSV or XLSX).
    Batch(BatchArgs),
    /// Issue PSAMs for a school's terminals.
    Psam(PsamArgs),
    /// Finish interrupted batches.
    Resume(ResumeArgs),
    /// The batches.
    List,
    /// The cards of one batch.
    Show(ShowArgs),
}

impl GroupCommand for IssueCommand {
    fn run(self, context: &mut Context) -> Result<Report> {
        match self {
            Self::Batch(args) => StationWork::run(&args, context),
            Self::Psam(args) => StationWork::run(&args, context),
            Self::Resume(args) => ResumeArgs::run(&args, context),
            Self::List => list(context),
            Self::Show(args) => args.run(context),
        }
    }
}

/// Where the cards come from, and who issues them.
#[derive(Args)]
pub struct StationArgs {
    /// A PC/SC reader (exact name or unique part of it) instead of virtual cards.
    #[arg(long, value_name = "NAME")]
    reader: Option<String>,
    /// With --reader: do not ask for each card (a card feeder presents them).
    #[arg(long, requires = "reader")]
    no_prompt: bool,
    /// Write each card's APDU transcript (secrets redacted) to DIR/SERIAL.txt.
    #[arg(long, value_name = "DIR")]
    transcripts: Option<PathBuf>,
    /// The card-centre operator, as audit records name them [default: $USER].
    #[arg(long, value_name = "NAME")]
    operator: Option<String>,
    /// Take over cards another station left half-personalised (that station is gone for
    /// good); each take-over is audited.
    #[arg(long)]
    take_over: bool,
    /// Issue through the KMS API at URL (`https://HOST:PORT`) instead of the local KMS.
    #[arg(long, value_name = "URL")]
    kms: Option<String>,
    /// The API client's configuration [default: DATA_DIR/api-client.toml].
    #[arg(long, value_name = "FILE", requires = "kms")]
    client_config: Option<PathBuf>,
}

/// A station command, run against whichever KMS the station arguments name.
trait StationWork {
    /// The station arguments.
    fn station_args(&self) -> &StationArgs;

    /// Runs against `kms`.
    fn run_at<A: CardAuthority>(&self, context: &Context, kms: &A) -> Result<Report>;

    /// Runs against the KMS API of `--kms`, or the local KMS.
    fn run(&self, context: &Context) -> Result<Report> {
        let args = self.station_args();
        match &args.kms {
            Some(url) => {
                let config = args
                    .client_config
                    .clone()
                    .unwrap_or_else(|| context.data_dir().join(crate::api_client::CLIENT_CONFIG));
                let client = crate::api_client::ClientConfig::connect(&config, url)?;
                self.run_at(context, &client)
            }
            None => self.run_at(context, &context.open(Need::Hsm(&[]))?),
        }
    }
}

impl StationArgs {
    fn actor(&self) -> String {
        let name = self
            .operator
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "unknown".into());
        format!("operator:{name}")
    }

    /// The station these arguments describe.
    fn station<'k, A: CardAuthority>(&self, kms: &'k A) -> Station<'k, A> {
        let station = Station::new(kms, self.actor());
        if self.take_over {
            station.taking_over()
        } else {
            station
        }
    }

    /// Works through a batch with these cards; a failure names the batch to resume.
    fn run<A: CardAuthority>(
        &self,
        context: &Context,
        station: &Station<'_, A>,
        batch: &BatchInfo,
        profile: &LoadedProfile,
    ) -> Result<BatchOutcome> {
        let mut progress = Bar::new(batch);
        let outcome = match &self.reader {
            None => {
                let mut cards = VirtualCards::new(&cards_dir(context.data_dir()))?;
                context.block_on(station.run_batch(
                    &batch.id,
                    profile,
                    &mut cards,
                    self.transcripts.as_deref(),
                    &mut progress,
                ))
            }
            Some(name) => {
                let mut reader = ReaderCards {
                    transport: crate::script::reader::open(name)?,
                    prompt: !self.no_prompt,
                };
                context.block_on(station.run_batch(
                    &batch.id,
                    profile,
                    &mut reader,
                    self.transcripts.as_deref(),
                    &mut progress,
                ))
            }
        };
        progress.bar.finish_and_clear();
        outcome.map_err(|error| CliError::Batch {
            batch: batch.id.clone(),
            error,
        })
    }
}

/// The directory of the virtual cards of a data directory.
pub fn cards_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("cards")
}

/// The card in a PC/SC reader, asked for at each batch item unless a feeder presents them.
pub struct ReaderCards {
    /// The reader.
    pub transport: Box<dyn Transport>,
    /// Whether to ask the operator for each card.
    pub prompt: bool,
}

/// A borrowed transport, handed to the station for one card.
struct Borrowed<'a>(&'a mut dyn Transport);

impl Transport for Borrowed<'_> {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn reset(&mut self) -> ykt_apdu::Result<Vec<u8>> {
        self.0.reset()
    }

    fn session(&mut self) -> ykt_apdu::Result<Box<dyn ykt_apdu::Session + '_>> {
        self.0.session()
    }
}

impl CardSource for ReaderCards {
    fn card(&mut self, record: &CardRecord) -> ykt_issuer::Result<Box<dyn Transport + '_>> {
        if self.prompt {
            let holder = record
                .holder_name
                .clone()
                .or_else(|| record.terminal_id.clone().map(|t| format!("terminal {t}")))
                .unwrap_or_default();
            eprint!(
                "Place the card for {} ({holder}) on {} and press Enter: ",
                record.serial,
                self.transport.name()
            );
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|source| ykt_issuer::IssueError::Io {
                    path: PathBuf::from("<stdin>"),
                    source,
                })?;
        }
        Ok(Box::new(Borrowed(self.transport.as_mut())))
    }
}

/// The progress bar of a batch (hidden when standard error is not a terminal).
struct Bar {
    bar: indicatif::ProgressBar,
}

impl Bar {
    fn new(batch: &BatchInfo) -> Self {
        let bar = indicatif::ProgressBar::new(batch.total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:32}] {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .expect("a fixed template")
            .progress_chars("=> "),
        );
        bar.set_prefix(batch.id.clone());
        bar.set_position(batch.issued);
        Self { bar }
    }
}

impl Progress for Bar {
    fn starting(&mut self, record: &CardRecord, done: u64, _total: u64) {
        self.bar.set_position(done);
        self.bar.set_message(record.serial.to_string());
    }

    fn issued(&mut self, personalised: &Personalised) {
        self.bar.inc(1);
        self.bar
            .set_message(format!("{} APDUs", personalised.apdus));
    }
}

/// The profile of `--profile`: a built-in name or a file.
fn profile_arg(
    given: Option<&str>,
    kind: ProfileKind,
    algorithm: Algorithm,
) -> Result<LoadedProfile> {
    Ok(match given {
        Some(name_or_file) => Profile::named_or_file(name_or_file)?,
        None => Profile::default_for(kind, algorithm),
    })
}

/// `--valid-from`, or today (China Standard Time).
fn valid_from(given: Option<&str>) -> Result<Date> {
    match given {
        Some(text) => Date::parse(text).ok_or_else(|| CliError::Input {
            arg: "--valid-from",
            reason: "must be a date YYYY-MM-DD".into(),
        }),
        None => Ok(Date::of_unix_ms(ykt_kms::store::now_ms())),
    }
}

/// What a run through a batch did.
fn outcome_record(outcome: &BatchOutcome, elapsed: Duration) -> Record {
    let seconds = elapsed.as_secs_f64();
    let count = outcome.issued_now;
    let total_apdus: u64 = outcome.apdus.iter().sum();
    Record::new()
        .with("batch", outcome.batch.id.clone())
        .with("kind", outcome.batch.kind.name())
        .with("profile", outcome.batch.profile.clone())
        .with("cards", outcome.batch.total)
        .with("issued", outcome.batch.issued)
        .with("issued_now", count)
        .with("status", outcome.batch.status.clone())
        .with(
            "apdus_per_card",
            if count == 0 {
                0.0
            } else {
                total_apdus as f64 / count as f64
            },
        )
        .with(
            "max_apdus",
            outcome.apdus.iter().copied().max().unwrap_or(0),
        )
        .with("seconds", seconds)
        .with(
            "cards_per_min",
            if seconds > 0.0 {
                count as f64 * 60.0 / seconds
            } else {
                0.0
            },
        )
}

/// Arguments of `ykt issue batch`.
#[derive(Args)]
pub struct BatchArgs {
    /// The roster: CSV or XLSX with name, number, id_number, card_type, school [, expiry].
    #[arg(long, value_name = "FILE")]
    roster: PathBuf,
    /// Personalisation profile: a built-in name or a file [default: ykt-user-sm4].
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    /// First valid day of the cards [default: today, China Standard Time].
    #[arg(long, value_name = "YYYY-MM-DD")]
    valid_from: Option<String>,
    #[command(flatten)]
    station: StationArgs,
}

impl StationWork for BatchArgs {
    fn station_args(&self) -> &StationArgs {
        &self.station
    }

    fn run_at<A: CardAuthority>(&self, context: &Context, kms: &A) -> Result<Report> {
        let profile = profile_arg(
            self.profile.as_deref(),
            ProfileKind::UserCard,
            Algorithm::Sm4,
        )?;
        let rows = read_roster(&self.roster)?;
        let from = valid_from(self.valid_from.as_deref())?;
        let station = self.station.station(kms);
        let batch = context.block_on(station.create_card_batch(&profile, &rows, from))?;
        let started = Instant::now();
        let outcome = self.station.run(context, &station, &batch, &profile)?;
        Ok(Report::ok(Output::Record(outcome_record(
            &outcome,
            started.elapsed(),
        ))))
    }
}

/// Arguments of `ykt issue psam`.
#[derive(Args)]
pub struct PsamArgs {
    /// How many PSAMs.
    #[arg(long)]
    count: usize,
    /// The school whose terminals get them.
    #[arg(long, value_name = "CODE")]
    school: String,
    /// The terminal vendor.
    #[arg(long, value_name = "NAME")]
    vendor: String,
    /// Personalisation profile: a built-in name or a file [default: ykt-psam-sm4].
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    /// First valid day [default: today].
    #[arg(long, value_name = "YYYY-MM-DD")]
    valid_from: Option<String>,
    #[command(flatten)]
    station: StationArgs,
}

impl StationWork for PsamArgs {
    fn station_args(&self) -> &StationArgs {
        &self.station
    }

    fn run_at<A: CardAuthority>(&self, context: &Context, kms: &A) -> Result<Report> {
        let profile = profile_arg(self.profile.as_deref(), ProfileKind::Psam, Algorithm::Sm4)?;
        let from = valid_from(self.valid_from.as_deref())?;
        let station = self.station.station(kms);
        let batch = context.block_on(station.create_psam_batch(
            &profile,
            &self.school,
            &self.vendor,
            self.count,
            from,
        ))?;
        let started = Instant::now();
        let outcome = self.station.run(context, &station, &batch, &profile)?;
        let terminals: Vec<String> = context
            .block_on(kms.batch_cards(&batch.id))?
            .into_iter()
            .filter_map(|card| card.terminal_id)
            .collect();
        Ok(Report::ok(Output::Record(
            outcome_record(&outcome, started.elapsed())
                .with("terminals", crate::output::Value::list(terminals)),
        )))
    }
}

/// Arguments of `ykt issue resume`.
#[derive(Args)]
pub struct ResumeArgs {
    /// The batch [default: every open batch].
    batch: Option<String>,
    /// The profile file the batch was created with, when it is not a built-in one.
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    #[command(flatten)]
    station: StationArgs,
}

/// The profile a batch was created with: `--profile`, or the built-in of its name.
fn batch_profile(batch: &BatchInfo, given: Option<&str>) -> Result<LoadedProfile> {
    let name = batch.profile.split('@').next().unwrap_or_default();
    let profile = match given {
        Some(name_or_file) => Profile::named_or_file(name_or_file)?,
        None => Profile::builtin(name).map_err(|_| CliError::Input {
            arg: "--profile",
            reason: format!(
                "batch {} was made with profile {}, which is not built in: give its file",
                batch.id, batch.profile
            ),
        })?,
    };
    Ok(profile)
}

impl StationWork for ResumeArgs {
    fn station_args(&self) -> &StationArgs {
        &self.station
    }

    fn run_at<A: CardAuthority>(&self, context: &Context, kms: &A) -> Result<Report> {
        let Some(id) = &self.batch else {
            return Err(CliError::Input {
                arg: "BATCH",
                reason: "name the batch to resume through the API".into(),
            });
        };
        let batch = context.block_on(kms.batch(id))?;
        self.resume(context, kms, vec![batch])
    }
}

impl ResumeArgs {
    /// Resumes the batch named, or every open batch of the local KMS.
    fn run(&self, context: &Context) -> Result<Report> {
        if self.batch.is_some() || self.station.kms.is_some() {
            return StationWork::run(self, context);
        }
        let kms = context.open(Need::Hsm(&[]))?;
        let open = context
            .block_on(kms.batches())?
            .into_iter()
            .filter(|b| b.status == "open")
            .collect();
        self.resume(context, &kms, open)
    }

    fn resume<A: CardAuthority>(
        &self,
        context: &Context,
        kms: &A,
        batches: Vec<BatchInfo>,
    ) -> Result<Report> {
        let station = self.station.station(kms);
        let mut records = Vec::new();
        for batch in &batches {
            let profile = batch_profile(batch, self.profile.as_deref())?;
            let started = Instant::now();
            let outcome = self.station.run(context, &station, batch, &profile)?;
            records.push(outcome_record(&outcome, started.elapsed()));
        }
        Ok(Report::ok(Output::List(records)))
    }
}

fn batch_record(batch: &BatchInfo) -> Record {
    Record::new()
        .with("batch", batch.id.clone())
        .with("kind", batch.kind.name())
        .with("profile", batch.profile.clone())
        .with("cards", batch.total)
        .with("issued", batch.issued)
        .with("status", batch.status.clone())
        .with("created_by", batch.created_by.clone())
        .with("created_at", format_ms(batch.created_at))
}

fn list(context: &Context) -> Result<Report> {
    let kms: Kms = context.open(Need::Store)?;
    let batches = context.block_on(kms.batches())?;
    Ok(Report::ok(Output::List(
        batches.iter().map(batch_record).collect(),
    )))
}

/// Arguments of `ykt issue show`.
#[derive(Args)]
pub struct ShowArgs {
    /// The batch.
    batch: String,
}

/// A card as listed.
pub fn card_record(card: &CardRecord) -> Record {
    Record::new()
        .with("item", card.item)
        .with("serial", card.serial.to_string())
        .with("school", card.school.clone())
        .with("holder", card.holder_name.clone().unwrap_or_default())
        .with("number", card.holder_number.clone().unwrap_or_default())
        .with("terminal_id", card.terminal_id.clone().unwrap_or_default())
        .with("expiry", card.expiry.clone())
        .with("status", card.status.name())
        .with("attempts", card.attempts)
        .with(
            "apdus",
            card.apdus.map(thousands).unwrap_or_else(|| "-".into()),
        )
}

impl ShowArgs {
    fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Store)?;
        let cards = context.block_on(kms.batch_cards(&self.batch))?;
        Ok(Report::ok(Output::List(
            cards.iter().map(card_record).collect(),
        )))
    }
}
