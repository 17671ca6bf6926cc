//! A roster batch killed at many random points and resumed until done: every holder gets
//! exactly one card, every card works (load, purchase, clearing through the KMS), and the
//! audit chain holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use ykt_apdu::pboc::Date;
use ykt_apdu::{ApduError, MemoryTransport, Session, Transport};
use ykt_card_sim::Card;
use ykt_issuer::batch::{CardSource, Silent, VirtualCards};
use ykt_issuer::lab::{LAB_SCHOOLS, LabBureau};
use ykt_issuer::personalise::Station;
use ykt_issuer::profile::{Algorithm, Profile, ProfileKind};
use ykt_issuer::roster::{CardType, RosterRow};
use ykt_issuer::{IssueError, host};
use ykt_kms::issuance::{CardRecord, CardStatus, TacVerdict};
use ykt_psam::{LoadRequest, PurchaseRequest, Purse, Terminal};

/// A small deterministic generator (xorshift64*), seeded per run and printed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Virtual cards whose link dies after a number of exchanges (the station killed) and
/// whose chip may lose power at a write point (the card pulled).
struct Interrupting {
    cards: VirtualCards,
    exchanges_left: Arc<AtomicU64>,
    power_loss_at: Option<u32>,
}

struct CutTransport {
    inner: MemoryTransport<Card>,
    exchanges_left: Arc<AtomicU64>,
}

struct CutSession<'a> {
    inner: Box<dyn Session + 'a>,
    exchanges_left: Arc<AtomicU64>,
}

impl Session for CutSession<'_> {
    fn transmit(&mut self, command: &[u8]) -> ykt_apdu::Result<Vec<u8>> {
        let left = self.exchanges_left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(ApduError::Transport("the station stopped".into()));
        }
        self.exchanges_left.store(left - 1, Ordering::SeqCst);
        self.inner.transmit(command)
    }
}

impl Transport for CutTransport {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn reset(&mut self) -> ykt_apdu::Result<Vec<u8>> {
        self.inner.reset()
    }

    fn session(&mut self) -> ykt_apdu::Result<Box<dyn Session + '_>> {
        Ok(Box::new(CutSession {
            inner: self.inner.session()?,
            exchanges_left: self.exchanges_left.clone(),
        }))
    }
}

impl CardSource for Interrupting {
    fn card(&mut self, record: &CardRecord) -> ykt_issuer::Result<Box<dyn Transport + '_>> {
        let mut card = self.cards.open(record)?;
        if let Some(n) = self.power_loss_at.take() {
            card.lose_power_at_write(n);
        }
        Ok(Box::new(CutTransport {
            inner: MemoryTransport::new("interrupting", card),
            exchanges_left: self.exchanges_left.clone(),
        }))
    }
}

fn roster() -> Vec<RosterRow> {
    let names = [
        "李明", "王芳", "张伟", "刘洋", "陈静", "杨帆", "赵磊", "黄婷",
    ];
    names
        .iter()
        .enumerate()
        .map(|(i, name)| RosterRow {
            row: i + 2,
            name: (*name).into(),
            number: format!("2026{i:04}"),
            id_number: "11010519491231002X".into(),
            card_type: if i % 3 == 2 {
                CardType::Staff
            } else {
                CardType::Student
            },
            school: LAB_SCHOOLS[i % 2].0.into(),
            expiry: None,
        })
        .collect()
}

fn open(cards: &VirtualCards, record: &CardRecord) -> MemoryTransport<Card> {
    let mut transport = MemoryTransport::new("card", cards.open(record).unwrap());
    transport.reset().unwrap();
    transport
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_killed_anywhere_resumes_to_one_card_per_holder() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let dir = std::env::temp_dir().join(format!("ykt-issuer-resume-{seed}"));
    let setup = LabBureau::create(&dir).await.unwrap();
    let profile = Profile::default_for(ProfileKind::UserCard, Algorithm::Sm4);
    let valid_from = Date::new(2026, 9, 1).unwrap();
    let batch = Station::new(&setup.bureau.kms, "station:a")
        .create_card_batch(&profile, &roster(), valid_from)
        .await
        .unwrap();
    drop(setup);
    let cards_dir = dir.join("cards");

    let mut interruptions = 0;
    let mut finished = false;
    for _ in 0..400 {
        // A new process: the KMS reopened from its store, a fresh station.
        let bureau = LabBureau::open(&dir).await.unwrap();
        let station = Station::new(&bureau.kms, "station:a");
        let exchanges_left = Arc::new(AtomicU64::new(1 + rng.below(60)));
        let mut source = Interrupting {
            cards: VirtualCards::new(&cards_dir).unwrap(),
            exchanges_left,
            power_loss_at: (rng.below(3) == 0).then(|| 1 + rng.below(40) as u32),
        };
        match station
            .run_batch(&batch.id, &profile, &mut source, None, &mut Silent)
            .await
        {
            Ok(outcome) => {
                assert_eq!(outcome.batch.status, "done");
                finished = true;
                break;
            }
            Err(IssueError::Apdu(_) | IssueError::Card { .. }) => interruptions += 1,
            Err(other) => panic!("seed {seed}: {other}"),
        }
    }
    assert!(finished, "seed {seed}: the batch never finished");
    assert!(
        interruptions >= 5,
        "seed {seed}: only {interruptions} interruptions"
    );
    println!("{interruptions} interruptions");

    let bureau = LabBureau::open(&dir).await.unwrap();
    let kms = &bureau.kms;
    let records = kms.batch_cards(&batch.id).await.unwrap();
    assert_eq!(records.len(), 8);
    let mut serials: Vec<_> = records.iter().map(|r| r.serial).collect();
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), 8, "serials are distinct");
    // Serials per school are consecutive from 1, in roster order.
    assert!(
        records.iter().any(|r| r.attempts > 1),
        "seed {seed}: no card was resumed"
    );
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.status, CardStatus::Issued);
        let number = &record.serial.to_string()[15..];
        assert_eq!(
            number.parse::<usize>().unwrap(),
            i / 2 + 1,
            "{}",
            record.serial
        );
    }
    // Exactly one issue act per card in the audit chain, which verifies.
    let entries = kms.audit_entries(0).await.unwrap();
    for record in &records {
        let object = format!("card:{}", record.serial);
        let issued = entries
            .iter()
            .filter(|e| e.act == "card.issue" && e.object == object)
            .count();
        assert_eq!(issued, 1, "{object}");
    }
    assert!(kms.verify_audit().await.unwrap().is_intact());
    // No card file beyond the batch's.
    assert_eq!(std::fs::read_dir(&cards_dir).unwrap().count(), 8);

    // A PSAM per school, then a load and a purchase on every card, cleared by the KMS.
    let station = Station::new(kms, "station:a");
    let psam_profile = Profile::default_for(ProfileKind::Psam, Algorithm::Sm4);
    let cards = VirtualCards::new(&cards_dir).unwrap();
    let mut psams = Vec::new();
    for (school, _) in LAB_SCHOOLS {
        let psam_batch = station
            .create_psam_batch(&psam_profile, school, "acme", 1, valid_from)
            .await
            .unwrap();
        let mut source = VirtualCards::new(&dir.join("psams")).unwrap();
        station
            .run_batch(
                &psam_batch.id,
                &psam_profile,
                &mut source,
                None,
                &mut Silent,
            )
            .await
            .unwrap();
        let record = kms.batch_cards(&psam_batch.id).await.unwrap().remove(0);
        psams.push((school, record, source));
    }
    let mut purchases = Vec::new();
    for record in &records {
        let mut card = open(&cards, record);
        let mut card_session = card.session().unwrap();
        ykt_psam::select_purse_application(card_session.as_mut(), &profile.profile.application.aid)
            .unwrap();
        let asn = ykt_psam::read_asn(card_session.as_mut()).unwrap();
        assert_eq!(asn, record.serial.factor());
        let (_, psam, source) = psams.iter().find(|(s, _, _)| *s == record.school).unwrap();
        let mut psam_transport = open(source, psam);
        let mut psam_session = psam_transport.session().unwrap();
        let terminal =
            Terminal::open(psam_session.as_mut(), &psam_profile.profile.application.aid).unwrap();
        let request = LoadRequest {
            purse: Purse::Ep,
            amount: 10_000,
            transaction_type: 0x02,
            key_index: 1,
            terminal_id: terminal.terminal_id(),
        };
        let loaded = host::load(
            kms,
            "terminal:test",
            card_session.as_mut(),
            &request,
            &asn,
            1_790_000_000_000,
        )
        .await
        .unwrap();
        assert_eq!(loaded.balance_after(), 10_000);
        let purchase = terminal
            .purchase(
                card_session.as_mut(),
                psam_session.as_mut(),
                &PurchaseRequest {
                    purse: Purse::Ep,
                    amount: 1_250,
                    transaction_type: 0x06,
                    key_index: 1,
                    date: [0x20, 0x26, 0x09, 0x02],
                    time: [0x12, 0x00, 0x00],
                },
                &asn,
                &[],
            )
            .unwrap();
        assert_eq!(
            ykt_psam::balance(card_session.as_mut(), Purse::Ep).unwrap(),
            8_750
        );
        purchases.push(purchase);
    }
    let verdicts = kms.verify_purchase_records(&purchases).await.unwrap();
    assert!(
        verdicts.iter().all(|v| *v == TacVerdict::Valid),
        "{verdicts:?}"
    );
    let mut forged = purchases[0];
    forged.amount += 1;
    let mut unknown = purchases[1];
    unknown.asn[7] ^= 0x55;
    assert_eq!(
        kms.verify_purchase_records(&[forged, unknown])
            .await
            .unwrap(),
        [TacVerdict::Invalid, TacVerdict::UnknownCard]
    );
    assert!(kms.verify_audit().await.unwrap().is_intact());
    let _ = std::fs::remove_dir_all(&dir);
}
