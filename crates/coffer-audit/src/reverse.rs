//! Reading a log from its end: the writer resuming a log and `coffer audit tail` only need
//! the last lines, and a log can be large.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::entry::{Entry, Line, MAX_LINE_LEN};
use crate::error::{AuditError, MalformedLine};

/// How much is read from the file at a time.
const BLOCK: u64 = 1 << 16;

/// The lines of a file, last first, without their newlines.
#[derive(Debug)]
pub(crate) struct ReverseLines<'a> {
    file: &'a mut File,
    /// Offset in the file where `pending` starts.
    pos: u64,
    /// Bytes of the file from `pos` on that are not yet returned (the newline ending the
    /// last returned line excluded).
    pending: Vec<u8>,
    done: bool,
}

impl<'a> ReverseLines<'a> {
    /// Reads `file` of length `len` from its end. Also says whether the file ends with a
    /// newline: if not, the first line returned is a fragment.
    pub(crate) fn new(file: &'a mut File, len: u64) -> std::io::Result<(ReverseLines<'a>, bool)> {
        let mut reader = ReverseLines { file, pos: len, pending: Vec::new(), done: len == 0 };
        let mut ends_with_newline = false;
        if len > 0 {
            reader.read_block()?;
            if reader.pending.last() == Some(&b'\n') {
                reader.pending.pop();
                ends_with_newline = true;
            }
        }
        Ok((reader, ends_with_newline))
    }

    /// Prepends the block before `pos` to `pending`.
    fn read_block(&mut self) -> std::io::Result<()> {
        let start = self.pos.saturating_sub(BLOCK);
        // The block is at most BLOCK (64 KiB) long, so it fits in a usize.
        let mut block = vec![0u8; (self.pos - start) as usize];
        self.file.seek(SeekFrom::Start(start))?;
        self.file.read_exact(&mut block)?;
        block.extend_from_slice(&self.pending);
        self.pending = block;
        self.pos = start;
        Ok(())
    }
}

impl Iterator for ReverseLines<'_> {
    type Item = std::io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            if let Some(newline) = self.pending.iter().rposition(|&b| b == b'\n') {
                let line = self.pending.split_off(newline + 1);
                self.pending.pop();
                return Some(Ok(line));
            }
            if self.pos == 0 {
                self.done = true;
                return Some(Ok(std::mem::take(&mut self.pending)));
            }
            if self.pending.len() > MAX_LINE_LEN {
                self.done = true;
                let message = format!("a line longer than {MAX_LINE_LEN} bytes");
                return Some(Err(std::io::Error::new(std::io::ErrorKind::InvalidData, message)));
            }
            if let Err(e) = self.read_block() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

/// The last `n` entries of the log at `path`, oldest first (checkpoints are skipped). A
/// partial last line, as a reader can see while the writer is writing it, is ignored. Reads
/// only the end of the file; it does not verify anything (see [`crate::verify`]).
pub fn tail(path: &Path, n: usize) -> Result<Vec<Entry>, AuditError> {
    let mut file = File::open(path).map_err(|e| AuditError::io(path, "open", e))?;
    let len = file.metadata().map_err(|e| AuditError::io(path, "stat", e))?.len();
    let (lines, ends_with_newline) =
        ReverseLines::new(&mut file, len).map_err(|e| AuditError::io(path, "read", e))?;
    let mut entries = Vec::with_capacity(n.min(4096));
    for (index, line) in lines.enumerate() {
        if entries.len() == n {
            break;
        }
        let line = line.map_err(|e| AuditError::io(path, "read", e))?;
        if index == 0 && !ends_with_newline {
            continue;
        }
        let text = std::str::from_utf8(&line).map_err(|e| MalformedLine(format!("not UTF-8: {e}")))?;
        if let Line::Entry(entry) = Line::parse(text)? {
            entries.push(entry);
        }
    }
    entries.reverse();
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines_of(content: &[u8]) -> (Vec<Vec<u8>>, bool) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(content).unwrap();
        let (reader, nl) = ReverseLines::new(&mut file, content.len() as u64).unwrap();
        (reader.map(|l| l.unwrap()).collect(), nl)
    }

    #[test]
    fn reads_lines_backwards() {
        assert_eq!(lines_of(b""), (vec![], false));
        assert_eq!(lines_of(b"a\n"), (vec![b"a".to_vec()], true));
        assert_eq!(lines_of(b"a\nbc\n"), (vec![b"bc".to_vec(), b"a".to_vec()], true));
        assert_eq!(lines_of(b"a\nbc"), (vec![b"bc".to_vec(), b"a".to_vec()], false));
        assert_eq!(lines_of(b"\n\n"), (vec![b"".to_vec(), b"".to_vec()], true));
    }

    #[test]
    fn lines_spanning_blocks_are_whole() {
        let mut content = Vec::new();
        let mut expected = Vec::new();
        for i in 0..200usize {
            let line = vec![b'a' + (i % 26) as u8; 1 + i * 997 % 5000];
            content.extend_from_slice(&line);
            content.push(b'\n');
            expected.push(line);
        }
        expected.reverse();
        assert_eq!(lines_of(&content), (expected, true));
    }

    #[test]
    fn an_overlong_line_is_an_error_not_a_memory_sink() {
        let mut content = vec![b'x'; MAX_LINE_LEN + 2 * BLOCK as usize];
        content.push(b'\n');
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&content).unwrap();
        let (mut reader, _) = ReverseLines::new(&mut file, content.len() as u64).unwrap();
        assert!(reader.next().unwrap().is_err());
        assert!(reader.next().is_none());
    }
}
