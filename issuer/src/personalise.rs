//! Online personalisation of one user card or PSAM through the KMS.
//!
//! Every key reaches the card as WRITE KEY under secure messaging (84 D4): the KMS's HSM makes
//! the cryptogram and MAC from the card's own challenge, under the key that protects the write
//! (the vendor's transport key, then the card master key, then the DF master key). The station
//! handles challenges and commands, never a key.
//!
//! A user card, from blank (40 APDUs with the built-in profiles):
//! 1. GET CHALLENGE, EXTERNAL AUTHENTICATE with the transport key: the MF is in state 1;
//! 2. GET CHALLENGE, 84 D4 39 00: the card master key replaces the transport key;
//! 3. CREATE FILE of the application DF and its key file; for each key GET CHALLENGE and
//!    84 D4 (the DF master key first, under the card master key; the others under it);
//!    WRITE KEY of the PIN; CREATE FILE of each file;
//! 4. UPDATE BINARY of the public information, holder information and the KMS-signed
//!    certificate;
//! 5. verification: SELECT of the application by AID (the FCI carries the public
//!    information back), READ BINARY of the holder information and the certificate (whose
//!    signature the KMS checks), GET CHALLENGE and EXTERNAL AUTHENTICATE with the new DF
//!    master key, GET BALANCE of the purse (zero).
//!
//! Only then does the KMS record the card issued. A PSAM goes the same way with its MF files
//! (serial, terminal ID, PSAM information) and its application keys.
//!
//! A card whose personalisation was interrupted (the record is `personalising` from an
//! earlier attempt) is recognised by its state: an existing application DF means the card
//! master key is already in place; otherwise the transport key is tried first and the card
//! master key second. The application DF is then erased and personalised again, so the card
//! keeps its serial and no other holder gets it.

use crate::card_data;
use crate::error::{IssueError, Result};
use crate::profile::{
    Content, FileSpec, KeyLevel, KeySpec, LoadedProfile, Profile, ProfileKind, Structure,
};
use std::ops::Range;
use std::time::Instant;
use ykt_apdu::script::{Entry, Event, Redacted, Transcript};
use ykt_apdu::{Command, Response, Session, Sw, exchange, tlv};
use ykt_kms::Kms;
use ykt_kms::issuance::{
    CARD_MASTER_TEMPLATE, CardKey, CardKeyWrite, CardRecord, DeviceKind, Serial,
};
use ykt_kms::station::CardAuthority;

/// What a personalisation did.
#[derive(Debug, Clone)]
pub struct Personalised {
    /// The card's record, now issued.
    pub record: CardRecord,
    /// APDUs exchanged (GET RESPONSE rounds included).
    pub apdus: u64,
    /// Every exchange, secrets redacted.
    pub transcript: Transcript,
}

/// Counts raw exchanges of a session.
struct Counting<'a> {
    inner: &'a mut dyn Session,
    count: u64,
}

impl Session for Counting<'_> {
    fn transmit(&mut self, command: &[u8]) -> ykt_apdu::Result<Vec<u8>> {
        self.count += 1;
        self.inner.transmit(command)
    }
}

/// The card link of one personalisation: exchanges, their count and the transcript.
struct Link<'a> {
    session: Counting<'a>,
    transcript: Transcript,
    channel: &'static str,
}

impl<'a> Link<'a> {
    fn new(session: &'a mut dyn Session, channel: &'static str) -> Self {
        Self {
            session: Counting {
                inner: session,
                count: 0,
            },
            transcript: Transcript::default(),
            channel,
        }
    }

    /// Sends `command`; the bytes of the encoded command in `secret` are redacted in the
    /// transcript.
    fn send(&mut self, command: &Command, secret: Range<usize>) -> Result<Response> {
        let started = Instant::now();
        let response = exchange(&mut self.session, command)?;
        let bytes = command.to_bytes()?;
        self.transcript.entries.push(Entry {
            line: self.transcript.entries.len() + 1,
            channel: self.channel.to_owned(),
            event: Event::Exchange {
                command: Redacted::masked(&bytes, secret),
                data: Redacted::masked(&response.data, 0..0),
                sw: response.sw,
            },
            elapsed: started.elapsed(),
        });
        Ok(response)
    }

    /// Sends a command that must answer 9000; returns its data.
    fn ok(&mut self, step: &'static str, command: &Command) -> Result<Vec<u8>> {
        self.expect(step, command, 0..0)
    }

    fn expect(
        &mut self,
        step: &'static str,
        command: &Command,
        secret: Range<usize>,
    ) -> Result<Vec<u8>> {
        let response = self.send(command, secret)?;
        match response.sw {
            Sw::Ok => Ok(response.data),
            sw => Err(IssueError::Card { step, sw }),
        }
    }

    fn challenge(&mut self, len: u8) -> Result<Vec<u8>> {
        let data = self.ok(
            "GET CHALLENGE",
            &Command::new(0x00, 0x84, 0x00, 0x00).with_le(u32::from(len)),
        )?;
        if data.len() != usize::from(len) {
            return Err(IssueError::UnusableCard(
                "GET CHALLENGE answered a challenge of another length".into(),
            ));
        }
        Ok(data)
    }
}

fn select_mf() -> Command {
    Command::new(0x00, 0xA4, 0x00, 0x00).with_data([0x3F, 0x00])
}

fn select_aid(aid: &[u8]) -> Command {
    Command::new(0x00, 0xA4, 0x04, 0x00)
        .with_data(aid)
        .with_le(256)
}

fn read_sfi(sfi: u8, len: usize) -> Command {
    Command::new(0x00, 0xB0, 0x80 | sfi, 0x00).with_le(len as u32)
}

fn sfi_of(fid: u16) -> u8 {
    (fid & 0x1F) as u8
}

/// CREATE FILE data of an EF (`pboc-spec.md` §2.1).
fn create_ef(file: &FileSpec) -> Command {
    let [size_hi, size_lo] = file.size.unwrap_or(0).to_be_bytes();
    let data = match file.structure {
        Structure::Binary => vec![
            0x28 | file.protection.bits(),
            size_hi,
            size_lo,
            file.read_right,
            file.write_right,
            0xFF,
            file.access,
        ],
        Structure::Cyclic => vec![
            0x2E | file.protection.bits(),
            file.records.unwrap_or(0),
            file.record_len.unwrap_or(0),
            file.read_right,
            file.write_right,
            0xFF,
            file.access,
        ],
        Structure::Ed | Structure::Ep => vec![
            0x2F,
            0x02,
            0x08,
            file.read_right,
            0x00,
            0xFF,
            file.log_sfi.unwrap_or(0),
        ],
    };
    let [p1, p2] = file.fid.to_be_bytes();
    Command::new(0x80, 0xE0, p1, p2).with_data(data)
}

/// CREATE FILE of the application DF.
fn create_application(profile: &Profile) -> Command {
    let app = &profile.application;
    let [size_hi, size_lo] = app.size.to_be_bytes();
    let app_fid = app.fci_sfi.map_or(0x00, |sfi| 0x80 | sfi);
    let mut data = vec![
        0x38,
        size_hi,
        size_lo,
        app.create_right,
        app.erase_right,
        app_fid,
        0xFF,
        0xFF,
    ];
    data.extend_from_slice(&app.aid);
    let [p1, p2] = app.fid.to_be_bytes();
    Command::new(0x80, 0xE0, p1, p2).with_data(data)
}

/// CREATE FILE of the application's key file.
fn create_key_file(profile: &Profile) -> Command {
    let key_file = &profile.application.key_file;
    let [size_hi, size_lo] = key_file.size.to_be_bytes();
    let df_sfi = profile.application.fci_sfi.map_or(0x00, |sfi| 0x80 | sfi);
    Command::new(0x80, 0xE0, 0x00, 0x00).with_data([
        0x3F,
        size_hi,
        size_lo,
        df_sfi,
        key_file.add_right,
        0xFF,
        0xFF,
    ])
}

/// The key record header (everything before the key bytes) of `key` at `version`.
fn record_header(key: &KeySpec, version: u8, algorithm_id: u8) -> Vec<u8> {
    if let Some(usage) = key.psam_usage {
        return vec![usage, version, algorithm_id];
    }
    let key_type = key.key_type.unwrap_or_default();
    let (p4, p5) = match key_type {
        0x39 => (
            key.next_state.unwrap_or_default(),
            key.error_counter.unwrap_or_default(),
        ),
        0x36..=0x38 => (0xFF, key.error_counter.unwrap_or_default()),
        _ => (version, algorithm_id),
    };
    vec![
        key_type | key.protection.bits(),
        key.usage_right,
        key.change_right,
        p4,
        p5,
    ]
}

/// The card key a profile key names.
fn card_key(key: &KeySpec) -> CardKey<'_> {
    match key.level {
        KeyLevel::Card => CardKey::Card(&key.template),
        KeyLevel::School => CardKey::School(&key.template),
    }
}

/// The key 39/00 of the MF as the station found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MfMaster {
    Transport,
    CardMaster,
}

impl MfMaster {
    fn key(self) -> CardKey<'static> {
        match self {
            Self::Transport => CardKey::Transport,
            Self::CardMaster => CardKey::Card(CARD_MASTER_TEMPLATE),
        }
    }
}

/// An issuing station: personalises cards through the KMS, acting as `actor`.
pub struct Station<'k, A: CardAuthority = Kms> {
    kms: &'k A,
    actor: String,
    take_over: bool,
}

impl<'k, A: CardAuthority> Station<'k, A> {
    /// A station of `kms` (in process, or the API's client) run by `actor` (the operator,
    /// as audit records name them).
    pub fn new(kms: &'k A, actor: impl Into<String>) -> Self {
        Self {
            kms,
            actor: actor.into(),
            take_over: false,
        }
    }

    /// A station that takes over cards another station left being personalised (a station
    /// that is gone for good); each take-over is audited.
    pub fn taking_over(mut self) -> Self {
        self.take_over = true;
        self
    }

    /// The KMS.
    pub fn kms(&self) -> &'k A {
        self.kms
    }

    /// Who acts.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Personalises the card in `session` as the card `serial` with `profile`, verifies it
    /// and has the KMS record it issued. The card may be blank or a card of this serial whose
    /// personalisation was interrupted.
    pub async fn personalise(
        &self,
        session: &mut dyn Session,
        serial: &Serial,
        profile: &LoadedProfile,
    ) -> Result<Personalised> {
        let profile_ref = &profile.profile;
        let card = self.kms.card(serial).await?;
        let batch = self.kms.batch(&card.batch).await?;
        let expected_kind = match profile_ref.kind {
            ProfileKind::UserCard => DeviceKind::Card,
            ProfileKind::Psam => DeviceKind::Psam,
        };
        if card.kind != expected_kind
            || card.key_algorithm()? != profile_ref.algorithm.key_algorithm()
            || batch.profile_digest != profile.digest
        {
            return Err(IssueError::Profile {
                field: "profile".into(),
                reason: format!(
                    "{serial} belongs to batch {} made with profile {}; this is {}",
                    batch.id,
                    batch.profile,
                    profile.label()
                ),
            });
        }
        let record = self
            .kms
            .start_personalisation(&self.actor, serial, self.take_over)
            .await?;
        let channel = match record.kind {
            DeviceKind::Card => "card",
            DeviceKind::Psam => "psam",
        };
        let mut link = Link::new(session, channel);
        let run = Run {
            kms: self.kms,
            record: &record,
            profile: profile_ref,
        };
        let outcome = match record.kind {
            DeviceKind::Card => run.user_card(&mut link).await,
            DeviceKind::Psam => run.psam(&mut link).await,
        };
        if let Err(error) = outcome {
            tracing::warn!(serial = %serial, apdus = link.session.count, %error, "personalisation failed");
            return Err(error);
        }
        let apdus = link.session.count;
        let record = self
            .kms
            .finish_personalisation(&self.actor, &record.attempt(), apdus)
            .await?;
        Ok(Personalised {
            record,
            apdus,
            transcript: link.transcript,
        })
    }
}

/// One personalisation in progress.
struct Run<'r, A: CardAuthority> {
    kms: &'r A,
    record: &'r CardRecord,
    profile: &'r Profile,
}

impl<A: CardAuthority> Run<'_, A> {
    fn serial(&self) -> &Serial {
        &self.record.serial
    }

    async fn external_auth(&self, link: &mut Link<'_>, key: CardKey<'_>, key_id: u8) -> Result<Sw> {
        let challenge = link.challenge(self.profile.algorithm.challenge_len())?;
        let cryptogram = self
            .kms
            .card_external_auth(&self.record.attempt(), key, &challenge)
            .await?;
        let command = Command::new(0x00, 0x82, 0x00, key_id).with_data(cryptogram);
        Ok(link.send(&command, 5..usize::MAX)?.sw)
    }

    /// External authentication to the MF with `master`: its status word.
    async fn authenticate_with(&self, link: &mut Link<'_>, master: MfMaster) -> Result<Sw> {
        self.external_auth(link, master.key(), 0).await
    }

    /// Authenticates to the MF: with the transport key on a blank card. On a card of an
    /// interrupted attempt: with the card master key when the application exists (it is
    /// created only after the card master key); else with both keys in turn, the card master
    /// key first when the KMS already made its write (the card most likely holds it), so
    /// that a wrong guess costs a try of the transport key rather than of the card master.
    /// Leaves the MF selected.
    async fn authenticate_mf(&self, link: &mut Link<'_>) -> Result<MfMaster> {
        let resumed = self.record.attempts > 1;
        let refused = |master: MfMaster, sw: Sw| IssueError::Card {
            step: match master {
                MfMaster::Transport => "EXTERNAL AUTHENTICATE (transport key)",
                MfMaster::CardMaster => "EXTERNAL AUTHENTICATE (card master key)",
            },
            sw,
        };
        if resumed {
            let probe = link.send(&select_aid(&self.profile.application.aid), 0..0)?;
            if probe.sw == Sw::Ok {
                link.ok("SELECT MF", &select_mf())?;
                return match self.authenticate_with(link, MfMaster::CardMaster).await? {
                    Sw::Ok => Ok(MfMaster::CardMaster),
                    sw => Err(refused(MfMaster::CardMaster, sw)),
                };
            }
        }
        let (first, second) = if resumed && self.record.card_master_sent {
            (MfMaster::CardMaster, MfMaster::Transport)
        } else {
            (MfMaster::Transport, MfMaster::CardMaster)
        };
        match self.authenticate_with(link, first).await? {
            Sw::Ok => Ok(first),
            Sw::TriesLeft(_) if resumed => match self.authenticate_with(link, second).await? {
                Sw::Ok => Ok(second),
                sw => Err(refused(second, sw)),
            },
            Sw::TriesLeft(n) => Err(IssueError::UnusableCard(format!(
                "its MF key is not this vendor's transport key (63C{n:X}): not a blank card"
            ))),
            sw => Err(refused(first, sw)),
        }
    }

    async fn write_key(
        &self,
        link: &mut Link<'_>,
        key: &KeySpec,
        under: CardKey<'_>,
        modify: Option<u8>,
    ) -> Result<()> {
        let version = self.record.key_version(&key.template)?;
        let header = record_header(key, version, self.profile.algorithm.id());
        let (p1, p2) = match (key.psam_usage, modify) {
            (Some(_), _) => (0x00, 0x00),
            (None, Some(old_type)) => (old_type, key.id),
            (None, None) => (0x01, key.id),
        };
        let challenge = link.challenge(4)?;
        let apdu = self
            .kms
            .card_write_key(
                &self.record.attempt(),
                &CardKeyWrite {
                    key: card_key(key),
                    under,
                    challenge: &challenge,
                    p1,
                    p2,
                    record_header: &header,
                },
            )
            .await?;
        let command = Command::parse(&apdu)?;
        if (command.cla, command.ins, command.p1, command.p2) != (0x84, 0xD4, p1, p2) {
            return Err(IssueError::Verification(
                "the KMS answered another command than the WRITE KEY asked for".into(),
            ));
        }
        link.expect("WRITE KEY", &command, 5..usize::MAX)?;
        Ok(())
    }

    /// Replaces the transport key with the card master key, when it is still there.
    async fn install_card_master(&self, link: &mut Link<'_>, found: MfMaster) -> Result<()> {
        if found == MfMaster::Transport {
            self.write_key(
                link,
                &self.profile.mf.master,
                CardKey::Transport,
                Some(0x39),
            )
            .await?;
        }
        Ok(())
    }

    /// Creates the application DF (erasing what an interrupted attempt left in it) with its
    /// key file and keys; the DF is current afterwards.
    async fn build_application(&self, link: &mut Link<'_>) -> Result<()> {
        let existing = self.record.attempts > 1
            && link
                .send(&select_aid(&self.profile.application.aid), 0..0)?
                .sw
                == Sw::Ok;
        if existing {
            link.ok("ERASE DF", &Command::new(0x80, 0x0E, 0x00, 0x00))?;
        } else {
            link.ok(
                "CREATE FILE (application)",
                &create_application(self.profile),
            )?;
        }
        link.ok("CREATE FILE (key file)", &create_key_file(self.profile))?;
        let mut under = MfMaster::CardMaster.key();
        for key in &self.profile.application.keys {
            self.write_key(link, key, under, None).await?;
            if key.key_type == Some(0x39) && key.id == 0 {
                under = CardKey::Card(&key.template);
            }
        }
        if let Some(pin) = &self.profile.application.pin {
            let digits = hex::decode(&pin.initial).map_err(|_| IssueError::Profile {
                field: "application.pin.initial".into(),
                reason: "digits".into(),
            })?;
            let mut data = vec![
                0x3A,
                pin.usage_right,
                0xEF,
                pin.next_state,
                pin.error_counter,
            ];
            data.extend_from_slice(&digits);
            let command = Command::new(0x80, 0xD4, 0x01, pin.id).with_data(data);
            link.expect("WRITE KEY (PIN)", &command, 10..usize::MAX)?;
        }
        Ok(())
    }

    /// Creates each of `files` in the current DF; in a re-run, files left by an earlier
    /// attempt in the MF are kept (their content is written again).
    fn create_files(&self, link: &mut Link<'_>, files: &[FileSpec], may_exist: bool) -> Result<()> {
        for file in files {
            let response = link.send(&create_ef(file), 0..0)?;
            match response.sw {
                Sw::Ok => {}
                Sw::AlreadyExists if may_exist => {}
                sw => {
                    return Err(IssueError::Card {
                        step: "CREATE FILE",
                        sw,
                    });
                }
            }
        }
        Ok(())
    }

    fn update(&self, link: &mut Link<'_>, content: Content, data: &[u8]) -> Result<()> {
        let file = self
            .profile
            .file_with(content)
            .expect("checked profiles hold every content");
        let command = Command::new(0x00, 0xD6, 0x80 | sfi_of(file.fid), 0x00).with_data(data);
        link.ok("UPDATE BINARY", &command)?;
        Ok(())
    }

    fn read_back(&self, link: &mut Link<'_>, content: Content, expected: &[u8]) -> Result<()> {
        let file = self
            .profile
            .file_with(content)
            .expect("checked profiles hold every content");
        let data = link.ok("READ BINARY", &read_sfi(sfi_of(file.fid), expected.len()))?;
        if data != expected {
            return Err(IssueError::Verification(format!(
                "file {:04X} reads back other bytes than were written",
                file.fid
            )));
        }
        Ok(())
    }

    async fn user_card(&self, link: &mut Link<'_>) -> Result<()> {
        let found = self.authenticate_mf(link).await?;
        self.install_card_master(link, found).await?;
        self.build_application(link).await?;
        self.create_files(link, &self.profile.application.files, false)?;

        let public = card_data::public_info(self.record, self.profile.version)?;
        let holder = card_data::holder_info(self.record)?;
        let signed = [public.as_slice(), holder.as_slice()].concat();
        let (algorithm, version, signature) = self
            .kms
            .sign_card_data(&self.record.attempt(), &signed)
            .await?;
        let certificate = card_data::certificate(algorithm, version, &signature)?;
        self.update(link, Content::PublicInfo, &public)?;
        self.update(link, Content::HolderInfo, &holder)?;
        self.update(link, Content::Certificate, &certificate)?;

        // Verification.
        let fci = link.ok(
            "SELECT (application)",
            &select_aid(&self.profile.application.aid),
        )?;
        self.check_fci(&fci, &public)?;
        self.read_back(link, Content::HolderInfo, &holder)?;
        self.read_back(link, Content::Certificate, &certificate)?;
        let (_, version, signature) = card_data::parse_certificate(&certificate)?;
        self.kms
            .verify_card_data(self.serial(), &signed, version, signature)
            .await?;
        self.verify_application_key(link).await?;
        let balance = link.ok(
            "GET BALANCE",
            &Command::new(0x80, 0x5C, 0x00, 0x02).with_le(4),
        )?;
        if balance != [0; 4] {
            return Err(IssueError::Verification(format!(
                "the purse holds {} instead of zero",
                hex::encode_upper(&balance)
            )));
        }
        Ok(())
    }

    /// The FCI names the application and carries the public information back.
    fn check_fci(&self, fci: &[u8], public: &[u8]) -> Result<()> {
        let mismatch = |what: &str| IssueError::Verification(format!("the FCI {what}"));
        let objects = tlv::parse_all(fci).map_err(|_| mismatch("is malformed"))?;
        let name = tlv::find(&objects, 0x84).map(|t| t.value);
        if name.as_deref() != Some(self.profile.application.aid.as_slice()) {
            return Err(mismatch("names another application"));
        }
        let issuer_data = tlv::find(&objects, 0x9F0C).map(|t| t.value);
        if self.profile.application.fci_sfi.is_some() && issuer_data.as_deref() != Some(public) {
            return Err(mismatch("does not carry the public information written"));
        }
        Ok(())
    }

    /// External authentication with the new DF master key.
    async fn verify_application_key(&self, link: &mut Link<'_>) -> Result<()> {
        let master = &self.profile.application.keys[0];
        match self.external_auth(link, card_key(master), 0).await? {
            Sw::Ok => Ok(()),
            sw => Err(IssueError::Verification(format!(
                "the new DF master key does not authenticate ({sw})"
            ))),
        }
    }

    async fn psam(&self, link: &mut Link<'_>) -> Result<()> {
        let found = self.authenticate_mf(link).await?;
        self.install_card_master(link, found).await?;
        let resumed = self.record.attempts > 1;
        self.create_files(link, &self.profile.mf.files, resumed)?;
        let serial = card_data::psam_serial(self.serial(), self.profile.version);
        let terminal = self
            .record
            .terminal_id_bytes()
            .ok_or_else(|| IssueError::Verification("the PSAM has no terminal ID".into()))?;
        let info = card_data::psam_info(self.record)?;
        self.update(link, Content::PsamSerial, &serial)?;
        self.update(link, Content::TerminalId, &terminal)?;
        self.update(link, Content::PsamInfo, &info)?;
        self.build_application(link).await?;
        self.create_files(link, &self.profile.application.files, false)?;

        // Verification.
        link.ok("SELECT MF", &select_mf())?;
        self.read_back(link, Content::PsamSerial, &serial)?;
        self.read_back(link, Content::TerminalId, &terminal)?;
        self.read_back(link, Content::PsamInfo, &info)?;
        link.ok(
            "SELECT (application)",
            &select_aid(&self.profile.application.aid),
        )?;
        self.verify_application_key(link).await
    }
}
