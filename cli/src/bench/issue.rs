//! `ykt bench issue`: what issuing costs: user cards and PSAMs personalised through a lab KMS
//! (in-process HSM, SQLite) with the built-in profiles, cards per minute and APDUs per card,
//! on virtual cards in this process and, with `--pcsc`, through pcscd: a card feeder on vpcd's
//! first reader hands the station a fresh blank card at every reset, so every APDU crosses
//! pcscd and two TCP hops.
//!
//! Transports: `state files` (the station's default virtual cards, each persisting every
//! write to its state file), `memory` (blank virtual cards in memory: the cost of the station
//! and the KMS alone) and `pcsc`.
//!
//! Each item is one batch, timed from its creation in the KMS (serials allocated, journal
//! written) to its last card verified and recorded issued.

use crate::error::{CliError, Result};
use crate::output::{Output, Record, Report};
use clap::Args;
use std::path::Path;
use std::time::Instant;
use ykt_apdu::pboc::Date;
use ykt_issuer::batch::{CardSource, Silent, VirtualCards};
use ykt_issuer::lab::{LAB_SCHOOLS, LabBureau};
use ykt_issuer::personalise::Station;
use ykt_issuer::profile::{Algorithm, Profile, ProfileKind};
use ykt_issuer::roster::{CardType, RosterRow};

/// Arguments of `ykt bench issue`.
#[derive(Args)]
pub struct IssueArgs {
    /// User cards per algorithm, in process.
    #[arg(long, default_value_t = 200, value_name = "N")]
    cards: usize,
    /// PSAMs per algorithm, in process.
    #[arg(long, default_value_t = 20, value_name = "N")]
    psams: usize,
    /// Also issue through pcscd and vpcd (pcscd with vsmartcard's vpcd must run, e.g. from
    /// `scripts/pcscd`; the feeder takes the reader "Virtual PCD 00 00").
    #[cfg(feature = "pcsc")]
    #[arg(long)]
    pcsc: bool,
    /// User cards through pcscd.
    #[cfg(feature = "pcsc")]
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pcsc_cards: usize,
}

/// Blank virtual cards in memory: the station and the KMS without the cost of state files.
struct MemoryBlanks;

impl CardSource for MemoryBlanks {
    fn card(
        &mut self,
        record: &ykt_kms::issuance::CardRecord,
    ) -> ykt_issuer::Result<Box<dyn ykt_apdu::Transport + '_>> {
        let card = ykt_card_sim::Card::blank(ykt_issuer::batch::chip_of(record)?)?;
        Ok(Box::new(ykt_apdu::MemoryTransport::new("memory", card)))
    }
}

/// `count` holders, alternating between the lab schools.
fn roster(count: usize, tag: &str) -> Vec<RosterRow> {
    (0..count)
        .map(|i| RosterRow {
            row: i + 2,
            name: format!("Student {tag} {i}"),
            number: format!("{tag}{i:06}"),
            id_number: "11010519491231002X".into(),
            card_type: CardType::Student,
            school: LAB_SCHOOLS[i % 2].0.into(),
            expiry: None,
        })
        .collect()
}

/// One measured batch.
fn row(item: &str, algorithm: Algorithm, transport: &str, apdus: &[u64], seconds: f64) -> Record {
    let cards = apdus.len() as u64;
    let total: u64 = apdus.iter().sum();
    Record::new()
        .with("item", item)
        .with("algorithm", algorithm.name())
        .with("transport", transport)
        .with("cards", cards)
        .with("seconds", seconds)
        .with("cards_per_min", cards as f64 * 60.0 / seconds)
        .with("ms_per_card", seconds * 1e3 / cards as f64)
        .with("apdus_per_card", total as f64 / cards as f64)
        .with("max_apdus", apdus.iter().copied().max().unwrap_or(0))
}

/// Issues a batch (user cards from `rows`, else `psams` PSAMs) from `source`; the APDUs of
/// each card and the seconds from creation to the last card.
async fn issue(
    station: &Station<'_>,
    kind: ProfileKind,
    algorithm: Algorithm,
    count: usize,
    tag: &str,
    source: &mut dyn CardSource,
) -> Result<(Vec<u64>, f64)> {
    let profile = Profile::default_for(kind, algorithm);
    let from = Date::of_unix_ms(ykt_kms::store::now_ms());
    let started = Instant::now();
    let batch = match kind {
        ProfileKind::UserCard => {
            station
                .create_card_batch(&profile, &roster(count, tag), from)
                .await?
        }
        ProfileKind::Psam => {
            station
                .create_psam_batch(&profile, LAB_SCHOOLS[0].0, "bench", count, from)
                .await?
        }
    };
    let outcome = station
        .run_batch(&batch.id, &profile, source, None, &mut Silent)
        .await?;
    Ok((outcome.apdus, started.elapsed().as_secs_f64()))
}

impl IssueArgs {
    /// Sets up a lab bureau in a temporary directory and issues each item.
    pub fn run(self) -> Result<Report> {
        let dir = std::env::temp_dir().join(format!("ykt-bench-issue-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(CliError::Runtime)?;
        let result = runtime.block_on(self.measure(&dir));
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    async fn measure(&self, dir: &Path) -> Result<Report> {
        let setup = LabBureau::create(dir).await?;
        let station = Station::new(&setup.bureau.kms, "operator:bench");
        let mut rows = Vec::new();
        for algorithm in [Algorithm::Sm4, Algorithm::TripleDes] {
            let tag = match algorithm {
                Algorithm::Sm4 => "S",
                Algorithm::TripleDes => "D",
            };
            let mut cards = VirtualCards::new(&dir.join(format!("cards-{tag}")))?;
            let (apdus, seconds) = issue(
                &station,
                ProfileKind::UserCard,
                algorithm,
                self.cards,
                tag,
                &mut cards,
            )
            .await?;
            rows.push(row("user card", algorithm, "state files", &apdus, seconds));
            let (apdus, seconds) = issue(
                &station,
                ProfileKind::UserCard,
                algorithm,
                self.cards,
                &format!("M{tag}"),
                &mut MemoryBlanks,
            )
            .await?;
            rows.push(row("user card", algorithm, "memory", &apdus, seconds));
            let (apdus, seconds) = issue(
                &station,
                ProfileKind::Psam,
                algorithm,
                self.psams,
                tag,
                &mut cards,
            )
            .await?;
            rows.push(row("PSAM", algorithm, "state files", &apdus, seconds));
        }
        #[cfg(feature = "pcsc")]
        if self.pcsc {
            for algorithm in [Algorithm::Sm4, Algorithm::TripleDes] {
                let tag = match algorithm {
                    Algorithm::Sm4 => "PS",
                    Algorithm::TripleDes => "PD",
                };
                let (apdus, seconds) =
                    pcsc::issue(&station, algorithm, self.pcsc_cards, tag).await?;
                rows.push(row("user card", algorithm, "pcsc", &apdus, seconds));
            }
        }
        setup.bureau.kms.store().close().await;
        Ok(Report::ok(Output::List(rows)))
    }
}

/// Issuing through pcscd, from a card feeder on vpcd.
#[cfg(feature = "pcsc")]
mod pcsc {
    use crate::error::{CliError, Result};
    use crate::issue::ReaderCards;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    use ykt_apdu::pcsc::{PcscTransport, VpcdLink, wait_for_card};
    use ykt_card_sim::vendor::CardFeeder;
    use ykt_card_sim::{Chip, ChipKind};
    use ykt_issuer::personalise::Station;
    use ykt_issuer::profile::{Algorithm, ProfileKind};

    const VPCD: (&str, &str) = ("127.0.0.1:35963", "Virtual PCD 00 00");

    fn failed(context: &str) -> impl FnOnce(ykt_apdu::ApduError) -> CliError + '_ {
        move |source| CliError::Pcsc {
            context: context.to_string(),
            source,
        }
    }

    /// Waits until pcscd has finished powering the card it just saw inserted: until a reset
    /// succeeds (pcscd refuses one while its own power-up is under way).
    fn settle(transport: &mut PcscTransport) -> Result<()> {
        use ykt_apdu::Transport;
        let mut tries = 0;
        loop {
            match transport.reset() {
                Ok(_) => return Ok(()),
                Err(_) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => return Err(failed(VPCD.1)(error)),
            }
        }
    }

    /// Feeds blank cards on vpcd and issues `count` user cards through pcscd.
    pub async fn issue(
        station: &Station<'_>,
        algorithm: Algorithm,
        count: usize,
        tag: &str,
    ) -> Result<(Vec<u64>, f64)> {
        let chip = Chip {
            algorithm: ykt_issuer::lab::chip_algorithm(algorithm.key_algorithm()),
            kind: ChipKind::UserCard,
        };
        let link = VpcdLink::connect(VPCD.0).map_err(failed("cannot feed cards"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = stop.clone();
            std::thread::spawn(move || link.serve(&mut CardFeeder::new(chip, None), &stop))
        };
        let result = async {
            wait_for_card(VPCD.1, Duration::from_secs(5)).map_err(failed(VPCD.1))?;
            let mut transport = PcscTransport::connect(VPCD.1).map_err(failed(VPCD.1))?;
            settle(&mut transport)?;
            let mut reader = ReaderCards {
                transport: Box::new(transport),
                prompt: false,
            };
            super::issue(
                station,
                ProfileKind::UserCard,
                algorithm,
                count,
                tag,
                &mut reader,
            )
            .await
        }
        .await;
        stop.store(true, Ordering::Release);
        let served = server.join().unwrap_or_else(|_| {
            Err(ykt_apdu::ApduError::Transport(
                "the vpcd thread panicked".into(),
            ))
        });
        served.map_err(failed("cannot feed cards"))?;
        result
    }
}
