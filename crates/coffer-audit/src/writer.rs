//! The writer: appends entries, chains them, signs checkpoints, and fails closed.
//!
//! Every append is one `write` of whole lines followed by `fsync` (`sync_data`) before it
//! returns. If either fails, the file is cut back to its previous length and synced, and the
//! in-memory chain head is left as it was, so the caller (the HSM) can treat the error as
//! "the operation fails and nothing changes". If even the cut fails, the file may end in a
//! partial line: the writer then refuses every later append ([`AuditError::Poisoned`]) and a
//! reopen refuses the torn file until an operator has looked at it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use coffer_crypto::{Key, KeyType, Module, PrivateKey, SignMechanism};

use crate::audit_key::key_id;
use crate::chain::Chain;
use crate::entry::{Checkpoint, Entry, GENESIS_HASH, Line, MAX_LINE_LEN, signed_checkpoint_bytes};
use crate::error::{AuditError, VerifyError};
use crate::event::{Event, Opcode, UserType};
use crate::reverse::ReverseLines;
use crate::time::Timestamp;

/// Largest [`AuditConfig::checkpoint_every`]: with entries well under 600 bytes, the entries
/// between two checkpoints then stay far inside the end of the file a reopen reads back.
pub const MAX_CHECKPOINT_EVERY: u64 = 100_000;

/// Longest node id, in bytes.
pub const MAX_NODE_ID_LEN: usize = 256;

/// How far back from the end the writer looks for the last checkpoint when it continues a
/// log. A log its own writer wrote has one every [`AuditConfig::checkpoint_every`] entries.
const MAX_RESUME_BYTES: usize = 64 << 20;

/// When checkpoints are written. There is deliberately no setting that turns the log off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditConfig {
    /// Sign a checkpoint once this many entries are not covered by one (1 to
    /// [`MAX_CHECKPOINT_EVERY`]).
    pub checkpoint_every: u64,
    /// Sign a checkpoint when an append (or [`AuditLog::checkpoint_if_due`]) finds the last
    /// one older than this and entries not covered by it.
    pub checkpoint_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> AuditConfig {
        AuditConfig { checkpoint_every: 100, checkpoint_interval: Duration::from_secs(60) }
    }
}

/// The end of the chain: what the next entry continues from.
#[derive(Debug, Clone)]
struct Head {
    next_seq: u64,
    prev: String,
    reboot: u32,
    /// Entries written since the last checkpoint.
    unsigned: u64,
    last_checkpoint: Instant,
}

/// A node's audit log, open for appending. One writer per file (it holds an exclusive lock).
///
/// Dropping it writes the closing checkpoint, as [`AuditLog::close`] does, but can only ignore
/// a failure; call `close` to see it.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    node: String,
    module: Module,
    key: Key,
    key_id: String,
    config: AuditConfig,
    head: Head,
    /// Length of the file up to the last complete, synced write.
    len: u64,
    poisoned: bool,
    /// Closed, or not yet opened: nothing more is written, not even on drop.
    closed: bool,
    /// Makes the next write stop half way and fail, as on a disk that fills up mid-write.
    #[cfg(test)]
    short_write: bool,
}

impl AuditLog {
    /// Creates the log at `path`, or continues the one there.
    ///
    /// Continuing reads the end of the file back to the last checkpoint and verifies it (the
    /// checkpoint's signature with `audit_key`'s public half, the chain after it). A log that
    /// ends in a partial line ([`AuditError::TornTail`]), whose end does not verify
    /// ([`AuditError::TailInvalid`], including one signed with another key) or that belongs to
    /// another node ([`AuditError::NodeMismatch`]) is refused: nothing is chained onto a broken
    /// log. Entries a crashed run left unsigned are accepted; the next checkpoint covers them.
    ///
    /// Every open appends a `CN_AUDIT_LOG_OPENED` entry carrying the reboot counter (0 for a
    /// new log, the previous run's plus one otherwise), so that restarts stay in the chain.
    pub fn open(
        path: impl AsRef<Path>,
        node_id: &str,
        module: &Module,
        audit_key: PrivateKey,
        config: AuditConfig,
    ) -> Result<AuditLog, AuditError> {
        let path = path.as_ref().to_path_buf();
        check_config(&config)?;
        check_node_id(node_id)?;
        if audit_key.key_type() != KeyType::Ed25519 {
            return Err(AuditError::AuditKeyType(audit_key.key_type().ckk_name().into()));
        }
        let key_id = key_id(module, audit_key.public_key())?;
        let (mut file, len) = open_locked(&path)?;
        let head = if len == 0 {
            Head {
                next_seq: 0,
                prev: GENESIS_HASH.into(),
                reboot: 0,
                unsigned: 0,
                last_checkpoint: Instant::now(),
            }
        } else {
            resume(&path, &mut file, len, node_id, module, &audit_key)?
        };
        let mut log = AuditLog {
            path,
            file,
            node: node_id.to_string(),
            module: module.clone(),
            key: Key::Private(audit_key),
            key_id,
            config,
            head,
            len,
            poisoned: false,
            closed: true,
            #[cfg(test)]
            short_write: false,
        };
        log.write_events(&[opened_event()])?;
        log.closed = false;
        if len == 0 {
            sync_parent_dir(&log.path)?;
        }
        Ok(log)
    }

    /// Appends one event; returns its sequence number once it is on disk. On error nothing was
    /// recorded, and the operation the event describes must fail.
    pub fn append(&mut self, event: &Event) -> Result<u64, AuditError> {
        self.append_batch(std::slice::from_ref(event)).map(|seqs| seqs.start)
    }

    /// Appends several events with one write and one `fsync`: all of them or none. Returns
    /// their sequence numbers. An empty batch writes nothing.
    pub fn append_batch(&mut self, events: &[Event]) -> Result<Range<u64>, AuditError> {
        if events.iter().any(|e| e.opcode == Opcode::CN_AUDIT_LOG_OPENED) {
            return Err(AuditError::ReservedOpcode);
        }
        self.write_events(events)
    }

    /// Signs a checkpoint now if any entry is not covered by one. Returns whether it wrote one.
    pub fn flush_checkpoint(&mut self) -> Result<bool, AuditError> {
        self.check_usable()?;
        if self.head.unsigned == 0 {
            return Ok(false);
        }
        self.write_checkpoint(false)?;
        Ok(true)
    }

    /// Signs a checkpoint if entries are uncovered and the last checkpoint is older than
    /// [`AuditConfig::checkpoint_interval`]: for a timer, so that a quiet node's last entries
    /// do not stay unsigned. Returns whether it wrote one.
    pub fn checkpoint_if_due(&mut self) -> Result<bool, AuditError> {
        self.check_usable()?;
        if self.head.unsigned == 0 || self.head.last_checkpoint.elapsed() < self.config.checkpoint_interval {
            return Ok(false);
        }
        self.write_checkpoint(false)?;
        Ok(true)
    }

    /// Writes the closing checkpoint, which marks a clean end of this run, and closes the log.
    pub fn close(mut self) -> Result<(), AuditError> {
        let result = self.check_usable().and_then(|()| self.write_checkpoint(true));
        self.closed = true;
        result
    }

    /// Sequence number the next entry will get.
    pub fn next_seq(&self) -> u64 {
        self.head.next_seq
    }
    /// Hash of the last entry written.
    pub fn last_hash(&self) -> &str {
        &self.head.prev
    }
    /// This run's reboot counter.
    pub fn reboot(&self) -> u32 {
        self.head.reboot
    }
    /// Entries not yet covered by a checkpoint.
    pub fn unsigned_entries(&self) -> u64 {
        self.head.unsigned
    }
    /// The node id in every entry.
    pub fn node_id(&self) -> &str {
        &self.node
    }
    /// The id of the audit key that signs the checkpoints.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Whether a failed write could not be undone, so that every append is refused.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    fn check_usable(&self) -> Result<(), AuditError> {
        if self.poisoned { Err(AuditError::Poisoned) } else { Ok(()) }
    }

    /// Writes `events`, and a checkpoint after them if one is due.
    fn write_events(&mut self, events: &[Event]) -> Result<Range<u64>, AuditError> {
        self.check_usable()?;
        let first = self.head.next_seq;
        if events.is_empty() {
            return Ok(first..first);
        }
        let mut head = self.head.clone();
        let now = Timestamp::now()?;
        let mut buf = Vec::new();
        for event in events {
            self.stage_entry(&mut head, &now, event, &mut buf)?;
        }
        let due = head.unsigned >= self.config.checkpoint_every
            || head.last_checkpoint.elapsed() >= self.config.checkpoint_interval;
        if due {
            self.stage_checkpoint(&mut head, false, &mut buf)?;
        }
        self.commit(&buf, head)?;
        Ok(first..self.head.next_seq)
    }

    fn write_checkpoint(&mut self, closing: bool) -> Result<(), AuditError> {
        let mut head = self.head.clone();
        let mut buf = Vec::new();
        self.stage_checkpoint(&mut head, closing, &mut buf)?;
        self.commit(&buf, head)
    }

    /// Adds the line of `event` to `buf` and advances `head` past it.
    fn stage_entry(
        &self,
        head: &mut Head,
        now: &Timestamp,
        event: &Event,
        buf: &mut Vec<u8>,
    ) -> Result<(), AuditError> {
        let mut entry = Entry {
            seq: head.next_seq,
            reboot: head.reboot,
            time: now.rfc3339.clone(),
            time_us: now.unix_us,
            node: self.node.clone(),
            session: event.session,
            user: event.user.clone(),
            user_type: event.user_type,
            target_user: event.target_user.clone(),
            opcode: event.opcode,
            objects: event.objects.clone(),
            response: event.response,
            response_text: event.response_text.clone(),
            prev: std::mem::take(&mut head.prev),
            hash: String::new(),
        };
        entry.hash = entry.compute_hash(&self.module)?;
        let line = entry.to_line();
        if line.len() > MAX_LINE_LEN {
            return Err(AuditError::EntryTooLong { len: line.len(), max: MAX_LINE_LEN });
        }
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        head.next_seq = head.next_seq.checked_add(1).ok_or(AuditError::Exhausted("sequence number"))?;
        head.prev = entry.hash;
        head.unsigned += 1;
        Ok(())
    }

    /// Adds a checkpoint over the last entry of `head` to `buf`.
    fn stage_checkpoint(&self, head: &mut Head, closing: bool, buf: &mut Vec<u8>) -> Result<(), AuditError> {
        // Every run starts with its log-opened entry, so there is always a last entry.
        let seq = head.next_seq.checked_sub(1).ok_or(AuditError::Invalid(VerifyError::Empty))?;
        let signed = signed_checkpoint_bytes(seq, &head.prev, closing, &self.node, &self.key_id);
        let signature = self.module.sign(&self.key, &SignMechanism::Eddsa, &signed)?;
        let checkpoint = Checkpoint {
            seq,
            hash: head.prev.clone(),
            closing,
            node: self.node.clone(),
            key_id: self.key_id.clone(),
            signature: hex::encode(signature),
        };
        buf.extend_from_slice(checkpoint.to_line().as_bytes());
        buf.push(b'\n');
        head.unsigned = 0;
        head.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Writes `buf` and syncs it; only then does `head` become the chain head. On failure the
    /// file is cut back to where it was.
    fn commit(&mut self, buf: &[u8], head: Head) -> Result<(), AuditError> {
        let written = match self.write_all(buf) {
            Ok(()) => self.file.sync_data().map_err(|e| ("sync", e)),
            Err(e) => Err(("write", e)),
        };
        match written {
            Ok(()) => {
                self.len += buf.len() as u64;
                self.head = head;
                Ok(())
            }
            Err((op, source)) => {
                self.roll_back();
                Err(AuditError::io(&self.path, op, source))
            }
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if std::mem::take(&mut self.short_write) {
            self.file.write_all(&buf[..buf.len() / 2])?;
            return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "injected short write"));
        }
        self.file.write_all(buf)
    }

    /// Cuts the file back to its last good length; if that fails too, refuses all later writes.
    fn roll_back(&mut self) {
        let undone = self.file.set_len(self.len).and_then(|()| self.file.sync_data());
        if undone.is_err() {
            self.poisoned = true;
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if !self.closed && !self.poisoned {
            // Nowhere to report a failure from here; the next open sees an unsigned tail and
            // the verifier reports this run as an unclean shutdown.
            let _ = self.write_checkpoint(true);
        }
    }
}

/// The entry that starts every run of the writer.
fn opened_event() -> Event {
    Event {
        opcode: Opcode::CN_AUDIT_LOG_OPENED,
        session: 0,
        user: None,
        user_type: UserType::CN_UNAUTHENTICATED,
        target_user: None,
        objects: Vec::new(),
        response: 0,
        response_text: "SUCCESS".into(),
    }
}

fn check_config(config: &AuditConfig) -> Result<(), AuditError> {
    if !(1..=MAX_CHECKPOINT_EVERY).contains(&config.checkpoint_every) {
        return Err(AuditError::Config(format!(
            "checkpoint_every must be 1 to {MAX_CHECKPOINT_EVERY}, not {}",
            config.checkpoint_every
        )));
    }
    Ok(())
}

fn check_node_id(node_id: &str) -> Result<(), AuditError> {
    if node_id.is_empty() || node_id.len() > MAX_NODE_ID_LEN {
        return Err(AuditError::NodeId(format!(
            "must be 1 to {MAX_NODE_ID_LEN} bytes, not {}",
            node_id.len()
        )));
    }
    if node_id.chars().any(char::is_control) {
        return Err(AuditError::NodeId("must not contain control characters".into()));
    }
    Ok(())
}

/// Opens (creating if needed) the file for appending and takes its lock. Returns its length.
fn open_locked(path: &Path) -> Result<(File, u64), AuditError> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| AuditError::io(path, "open", e))?;
    let metadata = file.metadata().map_err(|e| AuditError::io(path, "stat", e))?;
    // Only regular files are locked: a device such as /dev/full has no log to protect.
    if metadata.is_file() {
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(AuditError::Locked { path: path.to_path_buf() }),
            Err(TryLockError::Error(e)) => return Err(AuditError::io(path, "lock", e)),
        }
    }
    Ok((file, metadata.len()))
}

/// Makes a new file's directory entry durable.
fn sync_parent_dir(path: &Path) -> Result<(), AuditError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = File::open(parent).map_err(|e| AuditError::io(parent, "open directory", e))?;
    dir.sync_all().map_err(|e| AuditError::io(parent, "sync directory", e))
}

/// Reads the existing log back to its last checkpoint, verifies that part, and returns the
/// head to continue from (with the next reboot counter).
fn resume(
    path: &Path,
    file: &mut File,
    len: u64,
    node_id: &str,
    module: &Module,
    audit_key: &PrivateKey,
) -> Result<Head, AuditError> {
    let tail_invalid = |detail: String| AuditError::TailInvalid { path: path.to_path_buf(), detail };
    let (tail, anchored) = read_tail(path, file, len)?;
    let mut chain = Chain::new(module, audit_key.public_key())?;
    let mut lines = tail.into_iter();
    let mut line_no = 0u64;
    let checked = (|| {
        if anchored && let Some(Line::Entry(first)) = lines.next() {
            line_no += 1;
            chain.resume_after(line_no, first)?;
        }
        for line in lines {
            line_no += 1;
            chain.feed_line(line_no, line)?;
        }
        chain.finish(true)
    })();
    let report = checked.map_err(|e| match e {
        AuditError::Invalid(reason) if anchored => {
            tail_invalid(format!("{reason} (lines counted from the last checkpointed entry)"))
        }
        AuditError::Invalid(reason) => tail_invalid(reason.to_string()),
        other => other,
    })?;
    if report.node != node_id {
        return Err(AuditError::NodeMismatch {
            path: path.to_path_buf(),
            expected: node_id.to_string(),
            found: report.node,
        });
    }
    Ok(Head {
        next_seq: report.last_seq.checked_add(1).ok_or(AuditError::Exhausted("sequence number"))?,
        prev: report.last_hash,
        reboot: report.reboot.checked_add(1).ok_or(AuditError::Exhausted("reboot counter"))?,
        unsigned: report.open_tail.map_or(0, |t| t.unsigned_entries),
        last_checkpoint: Instant::now(),
    })
}

/// The lines from the entry the last checkpoint covers to the end, in file order, and whether
/// such an anchor entry was found (if not, the lines are the whole file).
fn read_tail(path: &Path, file: &mut File, len: u64) -> Result<(Vec<Line>, bool), AuditError> {
    let tail_invalid = |detail: String| AuditError::TailInvalid { path: path.to_path_buf(), detail };
    let (reader, ends_with_newline) =
        ReverseLines::new(file, len).map_err(|e| AuditError::io(path, "read", e))?;
    if !ends_with_newline {
        return Err(AuditError::TornTail { path: path.to_path_buf() });
    }
    let mut tail = Vec::new();
    let (mut bytes, mut seen_checkpoint, mut anchored) = (0usize, false, false);
    for raw in reader {
        let raw = raw.map_err(|e| AuditError::io(path, "read", e))?;
        bytes += raw.len() + 1;
        if bytes > MAX_RESUME_BYTES {
            return Err(tail_invalid(format!("no checkpoint in the last {} MiB", MAX_RESUME_BYTES >> 20)));
        }
        let text =
            std::str::from_utf8(&raw).map_err(|e| tail_invalid(format!("a line is not UTF-8: {e}")))?;
        let line = Line::parse(text).map_err(|e| tail_invalid(e.to_string()))?;
        let is_entry = matches!(line, Line::Entry(_));
        tail.push(line);
        if !is_entry {
            seen_checkpoint = true;
        } else if seen_checkpoint {
            anchored = true;
            break;
        }
    }
    tail.reverse();
    Ok((tail, anchored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{VerifyOptions, verify_with};
    use coffer_crypto::KeySpec;

    fn event(n: u64) -> Event {
        Event {
            opcode: Opcode::CN_GENERATE_KEY,
            session: n,
            user: Some("alice".into()),
            user_type: UserType::CN_CRYPTO_USER,
            target_user: None,
            objects: vec![n],
            response: 0,
            response_text: "SUCCESS".into(),
        }
    }

    /// A write that fails for real, as root too: the writer's handle is swapped for one on
    /// /dev/full, where every write fails with ENOSPC (and truncation fails as well).
    #[test]
    fn a_failed_write_changes_nothing_and_poisons_the_writer() {
        let module = Module::power_on();
        let pair = module.generate_key_pair(&KeySpec::Ed25519).unwrap();
        let public = pair.public.clone();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let config = AuditConfig { checkpoint_every: 10, ..AuditConfig::default() };
        let mut log = AuditLog::open(&path, "node-1", &module, pair.private, config).unwrap();
        for n in 0..5 {
            log.append(&event(n)).unwrap();
        }
        let (seq, hash, len) = (log.next_seq(), log.last_hash().to_string(), log.len);
        let before = std::fs::read(&path).unwrap();

        let real =
            std::mem::replace(&mut log.file, OpenOptions::new().append(true).open("/dev/full").unwrap());
        assert!(matches!(log.append(&event(99)), Err(AuditError::Io { op: "write", .. })));
        assert_eq!((log.next_seq(), log.last_hash(), log.len), (seq, hash.as_str(), len));
        assert!(log.is_poisoned(), "/dev/full cannot be truncated, so the writer must refuse further writes");

        log.file = real;
        assert!(matches!(log.append(&event(100)), Err(AuditError::Poisoned)));
        assert!(matches!(log.flush_checkpoint(), Err(AuditError::Poisoned)));
        assert_eq!((log.next_seq(), log.last_hash()), (seq, hash.as_str()));
        assert!(matches!(log.close(), Err(AuditError::Poisoned)));
        assert_eq!(std::fs::read(&path).unwrap(), before, "the file must be exactly as before");

        // The file is a good log whose writer stopped without closing it.
        let report = verify_with(&module, &path, &public, VerifyOptions { allow_open_tail: true }).unwrap();
        assert_eq!(report.last_seq, seq - 1);
        assert_eq!(report.open_tail.unwrap().unsigned_entries, 6);
    }

    #[test]
    fn a_short_write_is_cut_back_and_the_next_append_continues_the_chain() {
        let module = Module::power_on();
        let pair = module.generate_key_pair(&KeySpec::Ed25519).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let config = AuditConfig { checkpoint_every: 3, ..AuditConfig::default() };
        let mut log = AuditLog::open(&path, "node-1", &module, pair.private, config).unwrap();
        log.append(&event(0)).unwrap();
        let (seq, hash, unsigned) = (log.next_seq(), log.last_hash().to_string(), log.unsigned_entries());
        let before = std::fs::read(&path).unwrap();

        // This batch would end with a checkpoint; half of it reaches the file, then the error.
        log.short_write = true;
        let failed = log.append_batch(&[event(1), event(2)]);
        assert!(matches!(failed, Err(AuditError::Io { op: "write", .. })), "{failed:?}");
        assert_eq!((log.next_seq(), log.last_hash(), log.unsigned_entries()), (seq, hash.as_str(), unsigned));
        assert!(!log.is_poisoned());
        assert_eq!(std::fs::read(&path).unwrap(), before, "the partial line must be cut off");

        assert_eq!(log.append_batch(&[event(1), event(2)]).unwrap(), seq..seq + 2);
        log.close().unwrap();
        let report = verify_with(&module, &path, &pair.public, VerifyOptions::default()).unwrap();
        assert_eq!(report.last_seq, seq + 1);
    }

    #[test]
    fn the_log_opened_opcode_is_reserved() {
        let module = Module::power_on();
        let pair = module.generate_key_pair(&KeySpec::Ed25519).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut log =
            AuditLog::open(dir.path().join("a.jsonl"), "n", &module, pair.private, AuditConfig::default())
                .unwrap();
        let seq = log.next_seq();
        assert!(matches!(log.append(&opened_event()), Err(AuditError::ReservedOpcode)));
        assert_eq!(log.next_seq(), seq);
        assert_eq!(log.append_batch(&[]).unwrap(), seq..seq);
        log.close().unwrap();
    }
}
