//! The audit chain: every state change of the KMS appends one record in the same database
//! transaction as the change, so a change without its record (or the reverse) cannot be
//! committed.
//!
//! Record `n` carries `hash_n = SM3(hash_{n-1} || encode(record_n))` with `hash_0` all zeros
//! ([`record_hash`] gives the encoding). The `audit_head` row holds the last sequence number
//! and hash; it is updated by every append, so its row lock orders concurrent appends and a
//! cut-off tail no longer matches it. After every committed act a checkpoint signs the head
//! with the KMS signing key (SM2,
//! signer ID `ykt-kms`, [`checkpoint_message`]): whoever can write the database can recompute
//! hashes, but cannot sign, so a rewritten stretch before a checkpoint is caught. Verification
//! takes the signing public keys from the HSM (which opens the stored wrapped keys), not from
//! the store alone.

use crate::error::{KmsError, Result};
use crate::kms::Kms;
use crate::store::{Backend, Store, now_ms};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection};

/// One act to record.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// The officers or services who acted, sorted.
    pub actors: Vec<String>,
    /// What was done (`ceremony.generate`, `key.suspend`, ...).
    pub act: String,
    /// What it was done to (`key:purchase-sm4`, `officer:alice`, ...).
    pub object: String,
    /// `ok`, or `refused: <why>`.
    pub result: String,
    /// Facts of the act (check values, versions, reasons): never key material.
    pub detail: serde_json::Value,
}

/// A stored record, as exported.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditEntry {
    /// Sequence number, from 1.
    pub seq: u64,
    /// When (Unix ms).
    pub at: i64,
    /// Actors, comma-separated.
    pub actors: String,
    /// Act.
    pub act: String,
    /// Object.
    pub object: String,
    /// Result.
    pub result: String,
    /// Detail (JSON text).
    pub detail: String,
    /// Hash of the previous record (hex).
    pub prev_hash: String,
    /// This record's hash (hex).
    pub hash: String,
}

/// Where verification first failed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditFault {
    /// The first record that cannot be trusted.
    pub seq: u64,
    /// Why.
    pub reason: String,
}

/// The outcome of verifying the chain.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditReport {
    /// Records read.
    pub records: u64,
    /// Checkpoints whose signature and hash were verified.
    pub checkpoints: u64,
    /// Sequence number of the last verified checkpoint (0: none).
    pub last_checkpoint: u64,
    /// The chain's hash at the last verified checkpoint (hex): the anchor officers note
    /// outside the KMS, to give to a later verification ([`Kms::verify_audit_anchored`]).
    pub last_checkpoint_hash: Option<String>,
    /// Records after the last checkpoint: hash-chained, not yet signed (the acts of a
    /// store-only KMS, until the next act with the HSM).
    pub unsigned: u64,
    /// The first fault, if any.
    pub fault: Option<AuditFault>,
}

impl AuditReport {
    /// True when the whole chain verified.
    pub fn is_intact(&self) -> bool {
        self.fault.is_none()
    }
}

const RECORD_DOMAIN: &[u8] = b"ykt-audit-v1";
const CHECKPOINT_DOMAIN: &[u8] = b"ykt-audit-checkpoint-v1";

fn put_var(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

/// `SM3(prev || "ykt-audit-v1" || seq u64 || at i64 || var(actors) || var(act) || var(object)
/// || var(result) || var(detail))`, `var` a `u32` big-endian length then the UTF-8 bytes.
pub fn record_hash(prev: &[u8], entry: &AuditEntry) -> [u8; 32] {
    let mut data = Vec::with_capacity(128 + entry.detail.len());
    data.extend_from_slice(prev);
    data.extend_from_slice(RECORD_DOMAIN);
    data.extend_from_slice(&entry.seq.to_be_bytes());
    data.extend_from_slice(&entry.at.to_be_bytes());
    for field in [
        &entry.actors,
        &entry.act,
        &entry.object,
        &entry.result,
        &entry.detail,
    ] {
        put_var(&mut data, field.as_bytes());
    }
    ykt_crypto::sm2::sm3(&data)
}

/// A signed point of the chain: a record's sequence number and hash.
pub type ChainPoint = (u64, [u8; 32]);

/// The bytes a checkpoint signs: `"ykt-audit-checkpoint-v1" || seq u64 || hash 32 ||
/// previous checkpoint's seq u64 || its hash 32 || var(signing key ID) || key version u64`.
/// The previous checkpoint is `(0, zeros)` for the first; naming it chains the checkpoints, so
/// a deleted one is noticed.
pub fn checkpoint_message(
    at: ChainPoint,
    previous: ChainPoint,
    key_id: &str,
    key_version: u8,
) -> Vec<u8> {
    let mut message = Vec::with_capacity(160);
    message.extend_from_slice(CHECKPOINT_DOMAIN);
    for (seq, hash) in [at, previous] {
        message.extend_from_slice(&seq.to_be_bytes());
        message.extend_from_slice(&hash);
    }
    put_var(&mut message, key_id.as_bytes());
    message.extend_from_slice(&u64::from(key_version).to_be_bytes());
    message
}

fn hash_of(bytes: &[u8]) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| KmsError::Corrupt("an audit hash is not 32 bytes"))
}

/// Checks that `entries` (ordered by seq) continue the chain from `from`: consecutive
/// sequence numbers, each linked to and hashed over its predecessor. Returns the hash of each
/// record, or the first record that breaks the chain and why.
fn chain_from(from: ChainPoint, entries: &[AuditEntry]) -> Result<Vec<[u8; 32]>, AuditFault> {
    let (mut seq, mut prev) = from;
    let mut hashes = Vec::with_capacity(entries.len());
    for entry in entries {
        seq += 1;
        let stored_prev = hex::decode(&entry.prev_hash).unwrap_or_default();
        let computed = record_hash(&prev, entry);
        let reason = if entry.seq != seq {
            Some(format!(
                "record {seq} is missing (the next record is {})",
                entry.seq
            ))
        } else if stored_prev != prev {
            Some("does not link to the previous record".to_owned())
        } else if hex::encode_upper(computed) != entry.hash {
            Some("content does not match its hash".to_owned())
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(AuditFault { seq, reason });
        }
        hashes.push(computed);
        prev = computed;
    }
    Ok(hashes)
}

fn seq_of(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| KmsError::Corrupt("negative audit sequence number"))
}

/// A value bound to a statement of a [`Trip`].
enum Param {
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// Statements sent together. On SQLite they go as one multi-statement text, in one trip to
/// the connection's thread (a trip costs a thread wake-up each way, which on a busy machine
/// is most of a small statement's time), with `?` parameters taken in order across the
/// statements (SQLite looks each `$N` up by name, a scan per parameter). PostgreSQL prepares
/// one statement at a time, so there they go one after the other, each numbering from `$1`.
struct Trip {
    one_text: bool,
    statements: Vec<(String, Vec<Param>)>,
}

/// The parameters of one statement being written.
struct Params {
    /// Whether the placeholders are `?` (SQLite) or `$N` (PostgreSQL).
    in_order: bool,
    values: Vec<Param>,
}

impl Params {
    /// Adds `value`; returns its placeholder.
    fn add(&mut self, value: Param) -> String {
        self.values.push(value);
        if self.in_order {
            "?".into()
        } else {
            format!("${}", self.values.len())
        }
    }
}

impl Trip {
    fn new(tx: &AnyConnection) -> Self {
        Self {
            one_text: tx.backend_name() == <sqlx::Sqlite as sqlx::Database>::NAME,
            statements: Vec::new(),
        }
    }

    /// Adds the statement `write` makes, given the means to add its parameters.
    fn push(&mut self, write: impl FnOnce(&mut Params) -> String) {
        let mut params = Params {
            in_order: self.one_text,
            values: Vec::new(),
        };
        let sql = write(&mut params);
        self.statements.push((sql, params.values));
    }

    /// The queries to run: one, or one per statement.
    fn queries(self) -> Vec<(String, Vec<Param>)> {
        if !self.one_text {
            return self.statements;
        }
        let (sql, values): (Vec<_>, Vec<_>) = self.statements.into_iter().unzip();
        vec![(sql.join(";\n"), values.into_iter().flatten().collect())]
    }

    fn query(
        sql: &str,
        values: Vec<Param>,
    ) -> sqlx::query::Query<'_, Any, sqlx::any::AnyArguments<'_>> {
        values
            .into_iter()
            .fold(sqlx::query(sql), |query, value| match value {
                Param::Int(v) => query.bind(v),
                Param::Text(v) => query.bind(v),
                Param::Blob(v) => query.bind(v),
            })
    }

    /// Runs the statements in `tx`.
    async fn execute(self, tx: &mut AnyConnection) -> Result<()> {
        for (sql, values) in self.queries() {
            Self::query(&sql, values).execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// Runs the statements in `tx` and returns the rows of all of them, in order.
    async fn fetch_all(self, tx: &mut AnyConnection) -> Result<Vec<AnyRow>> {
        let mut rows = Vec::new();
        for (sql, values) in self.queries() {
            rows.extend(Self::query(&sql, values).fetch_all(&mut *tx).await?);
        }
        Ok(rows)
    }
}

fn point_of(row: &AnyRow) -> Result<ChainPoint> {
    Ok((
        seq_of(row.try_get("seq")?)?,
        hash_of(&row.try_get::<Vec<u8>, _>("hash")?)?,
    ))
}

/// The chain as the transaction that holds the head's lock sees it.
struct Locked {
    /// The head; `None` before the first record.
    head: Option<ChainPoint>,
    /// The last checkpoint, `(0, zeros)` before the first (read only when asked).
    checkpoint: ChainPoint,
}

/// Takes the head's row lock (PostgreSQL: so appends and checkpoints are ordered; SQLite's
/// write transaction holds the whole file) and reads the head, then, when `checkpoint`, the
/// last checkpoint — after the lock, so that it is the one the last holder wrote.
async fn lock_head(tx: &mut AnyConnection, checkpoint: bool) -> Result<Locked> {
    let mut trip = Trip::new(tx);
    trip.push(|_| {
        "UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING 'head' AS point, seq, hash".into()
    });
    if checkpoint {
        trip.push(|_| {
            "SELECT 'checkpoint' AS point, seq, hash FROM audit_checkpoints \
             ORDER BY seq DESC LIMIT 1"
                .into()
        });
    }
    let mut locked = Locked {
        head: None,
        checkpoint: (0, [0; 32]),
    };
    for row in trip.fetch_all(tx).await? {
        let point = point_of(&row)?;
        match row.try_get::<String, _>("point")?.as_str() {
            "head" => locked.head = Some(point),
            _ => locked.checkpoint = point,
        }
    }
    Ok(locked)
}

/// Rows of one `INSERT` into the log: 9 parameters each, well under every backend's limit.
const INSERT_ROWS: usize = 128;

/// Adds to `trip` the records `records` after `head` and the move of the head; returns the new
/// head.
fn push_appends(trip: &mut Trip, head: Option<ChainPoint>, records: &[AuditRecord]) -> ChainPoint {
    let at = now_ms();
    let mut last = head.unwrap_or((0, [0; 32]));
    let mut entries = Vec::with_capacity(records.len());
    for record in records {
        let mut actors = record.actors.clone();
        actors.sort();
        actors.dedup();
        let entry = AuditEntry {
            seq: last.0 + 1,
            at,
            actors: actors.join(","),
            act: record.act.clone(),
            object: record.object.clone(),
            result: record.result.clone(),
            detail: record.detail.to_string(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let hash = record_hash(&last.1, &entry);
        // The log line carries what the record does but its detail: the chain is the full
        // account.
        tracing::info!(
            target: "ykt_kms::audit",
            seq = entry.seq,
            act = %entry.act,
            object = %entry.object,
            actors = %entry.actors,
            result = %entry.result,
            "audited"
        );
        entries.push((entry, last.1, hash));
        last = (last.0 + 1, hash);
    }
    for chunk in entries.chunks(INSERT_ROWS) {
        trip.push(|params| {
            let rows = chunk
                .iter()
                .map(|(entry, prev_hash, hash)| {
                    let values = [
                        params.add(Param::Int(entry.seq as i64)),
                        params.add(Param::Int(entry.at)),
                        params.add(Param::Text(entry.actors.clone())),
                        params.add(Param::Text(entry.act.clone())),
                        params.add(Param::Text(entry.object.clone())),
                        params.add(Param::Text(entry.result.clone())),
                        params.add(Param::Text(entry.detail.clone())),
                        params.add(Param::Blob(prev_hash.to_vec())),
                        params.add(Param::Blob(hash.to_vec())),
                    ];
                    format!("({})", values.join(", "))
                })
                .collect::<Vec<_>>();
            format!(
                "INSERT INTO audit_log (seq, at, actors, act, object, result, detail, \
                 prev_hash, hash) VALUES {}",
                rows.join(", ")
            )
        });
    }
    if !records.is_empty() {
        trip.push(|params| {
            let (seq, hash) = (
                params.add(Param::Int(last.0 as i64)),
                params.add(Param::Blob(last.1.to_vec())),
            );
            match head {
                None => format!("INSERT INTO audit_head (id, seq, hash) VALUES (1, {seq}, {hash})"),
                Some(_) => format!("UPDATE audit_head SET seq = {seq}, hash = {hash} WHERE id = 1"),
            }
        });
    }
    last
}

/// What signs checkpoints: a version of the KMS signing key, through the KMS's HSM.
pub(crate) struct CheckpointSigner<'a> {
    /// The KMS whose HSM signs.
    pub(crate) kms: &'a Kms,
    /// The signing key's ID.
    pub(crate) key_id: &'a str,
    /// Its version.
    pub(crate) key_version: u8,
    /// Its wrapped form.
    pub(crate) key: &'a crate::provider::WrappedKey,
}

/// Adds to `trip` a checkpoint at `head`, after `previous`, signed by `signer`, unless the
/// last checkpoint is already there; returns the sequence number signed. `stored` is the
/// head in the store: the records from `previous` to it are read and checked first, so a
/// chain altered since the last checkpoint is never signed (the records after `stored` are
/// the ones this transaction is appending, whose hashes it computed).
async fn push_checkpoint(
    tx: &mut AnyConnection,
    trip: &mut Trip,
    (head, previous, stored): (ChainPoint, ChainPoint, ChainPoint),
    signer: &CheckpointSigner<'_>,
) -> Result<Option<u64>> {
    if previous.0 == head.0 {
        return Ok(None);
    }
    if previous != stored {
        let since = entries(tx, "seq > $1", previous.0 as i64).await?;
        let hashes = chain_from(previous, &since).map_err(|fault| {
            tracing::error!(seq = fault.seq, reason = %fault.reason, "audit chain broken");
            KmsError::Corrupt(
                "the audit records since the last checkpoint do not chain (ykt audit verify)",
            )
        })?;
        if since.last().map(|e| e.seq) != Some(stored.0) || hashes.last() != Some(&stored.1) {
            return Err(KmsError::Corrupt(
                "the audit head does not match the last record (ykt audit verify)",
            ));
        }
    }
    let message = checkpoint_message(head, previous, signer.key_id, signer.key_version);
    let signature = signer.kms.sign_with(signer.key, &message)?;
    trip.push(|params| {
        let values = [
            params.add(Param::Int(head.0 as i64)),
            params.add(Param::Blob(head.1.to_vec())),
            params.add(Param::Text(signer.key_id.to_owned())),
            params.add(Param::Int(i64::from(signer.key_version))),
            params.add(Param::Blob(signature)),
            params.add(Param::Int(now_ms())),
        ];
        format!(
            "INSERT INTO audit_checkpoints (seq, hash, key_id, key_version, signature, at) \
             VALUES ({})",
            values.join(", ")
        )
    });
    Ok(Some(head.0))
}

/// What [`append_signed`] did.
pub(crate) struct Appended {
    /// The head after the records.
    pub(crate) head: ChainPoint,
    /// The checkpoint: the sequence number signed (`None`: the last checkpoint was already
    /// at the head), or why none could be signed (the records are appended all the same).
    pub(crate) checkpoint: Result<Option<u64>>,
}

/// Appends `records` inside `tx` (none: only a checkpoint) and, with `signer`, signs a
/// checkpoint at the new head; the writes go in one [`Trip`]. At most 1,024 records.
pub(crate) async fn append_signed(
    tx: &mut AnyConnection,
    records: &[AuditRecord],
    signer: Option<&CheckpointSigner<'_>>,
) -> Result<Appended> {
    let locked = lock_head(tx, signer.is_some()).await?;
    let mut trip = Trip::new(tx);
    let head = push_appends(&mut trip, locked.head, records);
    let checkpoint = match (signer, locked.head) {
        (Some(signer), Some(stored)) => {
            let points = (head, locked.checkpoint, stored);
            push_checkpoint(tx, &mut trip, points, signer).await
        }
        (Some(signer), None) if !records.is_empty() => {
            // The first records of the chain: nothing stored to check.
            let points = (head, locked.checkpoint, locked.checkpoint);
            push_checkpoint(tx, &mut trip, points, signer).await
        }
        _ => Ok(None),
    };
    trip.execute(tx).await?;
    Ok(Appended { head, checkpoint })
}

/// Appends `record` inside `tx` and moves the head; returns its sequence number.
pub(crate) async fn append(tx: &mut AnyConnection, record: &AuditRecord) -> Result<u64> {
    Ok(append_signed(tx, std::slice::from_ref(record), None)
        .await?
        .head
        .0)
}

/// Signs a checkpoint at the head, in a transaction of its own, unless the last checkpoint is
/// already there; returns the sequence number signed.
pub(crate) async fn checkpoint(
    store: &Store,
    signer: &CheckpointSigner<'_>,
) -> Result<Option<u64>> {
    let mut tx = store.begin().await?;
    let signed = append_signed(&mut tx, &[], Some(signer))
        .await?
        .checkpoint?;
    if signed.is_some() {
        tx.commit().await?;
    }
    Ok(signed)
}

/// The most records one group commit carries.
const MAX_GROUP: usize = 1024;

/// A record waiting for its group commit, and who waits for it.
type Pending = (
    AuditRecord,
    tokio::sync::oneshot::Sender<Result<(), String>>,
);

/// Group commit of the API's audit records: calls hand their record to one writer, which
/// takes every record waiting (up to [`MAX_GROUP`]), appends them and signs one checkpoint in
/// one transaction, commits, then answers each caller. Under load the records of the calls
/// that arrive while a group commits form the next group, so the commit and the checkpoint
/// signature are shared instead of paid per call; a lone call waits for no one. The writer
/// ([`start_writer`]) is started on first use, and again if it has stopped (its runtime
/// gone).
#[derive(Default)]
pub(crate) struct GroupCommit {
    writer: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<Pending>>>,
}

impl GroupCommit {
    /// Commits `record` with the next group; `kms` makes the writer's own KMS handle (same
    /// store and HSM) when a writer must be started.
    pub(crate) async fn record(&self, record: AuditRecord, kms: impl Fn() -> Kms) -> Result<()> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let mut pending = (record, answer);
        for _ in 0..2 {
            let sender = {
                let mut writer = self
                    .writer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match writer.as_ref() {
                    Some(sender) if !sender.is_closed() => sender.clone(),
                    _ => {
                        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
                        start_writer(kms(), receiver)?;
                        writer.insert(sender).clone()
                    }
                }
            };
            match sender.send(pending) {
                Ok(()) => {
                    return answered
                        .await
                        .map_err(|_| KmsError::Store("the audit writer stopped".into()))?
                        .map_err(KmsError::Store);
                }
                Err(returned) => pending = returned.0,
            }
        }
        Err(KmsError::Store("the audit writer cannot be started".into()))
    }
}

/// Starts the writer of `kms`'s group commits, reading `receiver`. On SQLite it runs on a
/// thread of its own: its turns between the steps of a group (each a wake-up from an SQLite
/// connection thread) then do not queue behind the calls on the API's runtime, which under
/// load made the commits — and every caller waiting on them — several times slower. A
/// PostgreSQL connection is a socket registered with the runtime that opened it, so there
/// the writer is a task of the caller's runtime.
fn start_writer(kms: Kms, receiver: tokio::sync::mpsc::UnboundedReceiver<Pending>) -> Result<()> {
    if kms.store().backend() == Backend::Postgres {
        tokio::spawn(write_groups(kms, receiver));
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| KmsError::Store(format!("the audit writer's runtime: {e}")))?;
    std::thread::Builder::new()
        .name("ykt-audit-writer".into())
        .spawn(move || runtime.block_on(write_groups(kms, receiver)))
        .map_err(|e| KmsError::Store(format!("the audit writer's thread: {e}")))?;
    Ok(())
}

/// How long the writer keeps its store connection with no record waiting.
const KEEP_CONNECTION: std::time::Duration = std::time::Duration::from_millis(100);

/// The writer task of [`GroupCommit`]. While records keep coming it keeps one store
/// connection of its own: a connection handed back to the pool goes back by a task of the
/// runtime, which under load waits behind the calls, so taking one for every group would
/// make each group wait for the last one's return. After [`KEEP_CONNECTION`] without a
/// record it hands the connection back (so that the store can close), and a failed group
/// drops it.
async fn write_groups(kms: Kms, mut receiver: tokio::sync::mpsc::UnboundedReceiver<Pending>) {
    let mut connection = None;
    loop {
        let first = if connection.is_some() {
            match tokio::time::timeout(KEEP_CONNECTION, receiver.recv()).await {
                Ok(first) => first,
                Err(_) => {
                    connection = None;
                    continue;
                }
            }
        } else {
            receiver.recv().await
        };
        let Some(first) = first else { break };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(pending) => group.push(pending),
                Err(_) => break,
            }
        }
        let (records, answers): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        let outcome = kms
            .commit_group(&mut connection, &records)
            .await
            .map_err(|e| e.to_string());
        if outcome.is_err() {
            connection = None;
        }
        for answer in answers {
            let _ = answer.send(outcome.clone());
        }
    }
}

/// The records matching `condition` on `$1 = value`, oldest first.
async fn entries(tx: &mut AnyConnection, condition: &str, value: i64) -> Result<Vec<AuditEntry>> {
    sqlx::query(&format!(
        "SELECT seq, at, actors, act, object, result, detail, prev_hash, hash \
         FROM audit_log WHERE {condition} ORDER BY seq"
    ))
    .bind(value)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(entry_of)
    .collect()
}

fn entry_of(row: &sqlx::any::AnyRow) -> Result<AuditEntry> {
    let prev: Vec<u8> = row.try_get("prev_hash")?;
    let hash: Vec<u8> = row.try_get("hash")?;
    Ok(AuditEntry {
        seq: seq_of(row.try_get("seq")?)?,
        at: row.try_get("at")?,
        actors: row.try_get("actors")?,
        act: row.try_get("act")?,
        object: row.try_get("object")?,
        result: row.try_get("result")?,
        detail: row.try_get("detail")?,
        prev_hash: hex::encode_upper(prev),
        hash: hex::encode_upper(hash),
    })
}

impl Kms {
    /// The records at or after `since` (Unix ms), oldest first.
    pub async fn audit_entries(&self, since: i64) -> Result<Vec<AuditEntry>> {
        let mut tx = self.store().begin_snapshot().await?;
        entries(&mut tx, "at >= $1", since).await
    }

    /// Verifies the whole chain, in one consistent snapshot: sequence without gaps, each
    /// record linked to and hashed over its predecessor, the head matching the last record,
    /// at least one checkpoint, and every checkpoint signed by the KMS signing key over the
    /// hash the chain has at its sequence number and over the checkpoint before it. Reports
    /// the first record that cannot be trusted, and how many records no checkpoint covers
    /// yet.
    pub async fn verify_audit(&self) -> Result<AuditReport> {
        self.verify_audit_anchored(None).await
    }

    /// [`Kms::verify_audit`], and the chain must still have the hash `anchor` names at its
    /// sequence number, under a verified checkpoint: an anchor noted outside the KMS (from an
    /// earlier report's last checkpoint) catches even a whole chain rewritten and signed anew
    /// by someone who could both write the store and make the KMS sign.
    pub async fn verify_audit_anchored(
        &self,
        anchor: Option<(u64, [u8; 32])>,
    ) -> Result<AuditReport> {
        let mut report = self.verify_chain().await?;
        if let (Some((seq, hash)), None) = (anchor, &report.fault) {
            let entries = self.audit_entries(i64::MIN).await?;
            let at = usize::try_from(seq)
                .ok()
                .and_then(|s| s.checked_sub(1))
                .and_then(|i| entries.get(i));
            let reason = match at {
                _ if seq > report.last_checkpoint => Some(format!(
                    "the anchor {seq} is past the last checkpoint {}",
                    report.last_checkpoint
                )),
                Some(entry) if entry.hash == hex::encode_upper(hash) => None,
                _ => Some(format!(
                    "the chain no longer has the anchored hash at {seq}: it was rewritten"
                )),
            };
            if let Some(reason) = reason {
                report.fault = Some(AuditFault { seq: 1, reason });
            }
        }
        Ok(report)
    }

    async fn verify_chain(&self) -> Result<AuditReport> {
        let mut tx = self.store().begin_snapshot().await?;
        let entries = entries(&mut tx, "seq >= $1", 0).await?;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?;
        let checkpoints = sqlx::query(
            "SELECT seq, hash, key_id, key_version, signature FROM audit_checkpoints ORDER BY seq",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        let last = entries.len() as u64;
        let mut report = AuditReport {
            records: last,
            checkpoints: 0,
            last_checkpoint: 0,
            last_checkpoint_hash: None,
            unsigned: last,
            fault: None,
        };
        let hashes = match chain_from((0, [0; 32]), &entries) {
            Ok(hashes) => hashes,
            Err(fault) => {
                report.fault = Some(fault);
                return Ok(report);
            }
        };
        let head = match head {
            Some(row) => Some((
                seq_of(row.try_get("seq")?)?,
                row.try_get::<Vec<u8>, _>("hash")?,
            )),
            None => None,
        };
        let head_ok = match &head {
            None => last == 0,
            Some((seq, hash)) => *seq == last && hashes.last().map(|h| &h[..]) == Some(&hash[..]),
        };
        if !head_ok {
            let said = head.as_ref().map_or(0, |(s, _)| *s);
            report.fault = Some(AuditFault {
                seq: said.min(last + 1).max(1),
                reason: format!(
                    "the chain ends at {last} but its head says {said}: records were cut off or \
                     the head was altered"
                ),
            });
            return Ok(report);
        }
        let mut previous: ChainPoint = (0, [0; 32]);
        for row in &checkpoints {
            let (seq, hash) = point_of(row)?;
            let key_id: String = row.try_get("key_id")?;
            let key_version = u8::try_from(row.try_get::<i64, _>("key_version")?)
                .map_err(|_| KmsError::Corrupt("signing key version"))?;
            let signature: Vec<u8> = row.try_get("signature")?;
            let chain_hash = usize::try_from(seq)
                .ok()
                .and_then(|s| s.checked_sub(1))
                .and_then(|i| hashes.get(i));
            let reason = match chain_hash {
                None => Some(format!("checkpoint {seq} is beyond the end of the chain")),
                Some(h) if *h != hash => Some(format!(
                    "records up to {seq} were rewritten: the chain no longer has the hash \
                     checkpoint {seq} signed"
                )),
                Some(_) => {
                    let message = checkpoint_message((seq, hash), previous, &key_id, key_version);
                    match self
                        .verify_kms_signature(&key_id, key_version, &message, &signature)
                        .await
                    {
                        Ok(()) => None,
                        Err(e) => Some(format!(
                            "checkpoint {seq}: signature refused ({e}); a checkpoint before it \
                             may have been removed"
                        )),
                    }
                }
            };
            if let Some(reason) = reason {
                report.fault = Some(AuditFault {
                    seq: previous.0 + 1,
                    reason,
                });
                return Ok(report);
            }
            report.checkpoints += 1;
            report.last_checkpoint = seq;
            report.last_checkpoint_hash = Some(hex::encode_upper(hash));
            previous = (seq, hash);
        }
        if last > 0 && report.checkpoints == 0 {
            report.fault = Some(AuditFault {
                seq: 1,
                reason: "no checkpoint signs the chain: the checkpoints were removed".into(),
            });
            return Ok(report);
        }
        report.unsigned = last - report.last_checkpoint;
        Ok(report)
    }
}
