//! Splits a byte stream into newline-aligned chunks that can be decoded independently, in
//! parallel, and still report exact line numbers and byte offsets.
//!
//! Memory is bounded by `max(target_bytes, max_line_bytes) + READ_BLOCK`: a line longer than
//! `max_line_bytes` is never buffered whole; it is reported as a [`Piece::TooLong`] with its
//! first bytes and skipped up to its newline.

use std::io::{self, Read};

use crate::reject::{line_too_long, RejectKind, RejectedLine, RAW_PREFIX_BYTES};

/// How much more is read at a time while looking for the end of a line longer than a chunk.
const READ_BLOCK: usize = 256 * 1024;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A run of whole lines of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Index of the source in the conversion's input list.
    pub source: usize,
    /// The lines, each ending in `\n` except possibly the source's last one.
    pub data: Vec<u8>,
    /// 1-based number of the first line.
    pub first_line: u64,
    /// Byte offset of `data[0]` in the decompressed source.
    pub offset: u64,
    /// Whether this chunk ends the source (its last line may lack a newline).
    pub last: bool,
}

impl Chunk {
    /// Iterates over `(line_number, offset, line)` with the newline (and a `\r` before it)
    /// removed.
    pub fn lines(&self) -> impl Iterator<Item = (u64, u64, &[u8])> + '_ {
        let mut start = 0usize;
        let mut line_no = self.first_line;
        let data = &self.data[..];
        std::iter::from_fn(move || {
            if start >= data.len() {
                return None;
            }
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
            let mut line = &data[start..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            let item = (line_no, self.offset + start as u64, line);
            start = end + 1;
            line_no += 1;
            Some(item)
        })
    }
}

/// What the chunker yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Whole lines, to decode.
    Lines(Chunk),
    /// A line longer than the limit, already rejected.
    TooLong(RejectedLine),
}

/// Reads `reader` and yields [`Piece`]s of about `target_bytes` each.
pub struct Chunker<R> {
    reader: R,
    source: usize,
    target_bytes: usize,
    max_line_bytes: usize,
    /// Bytes read but not yet emitted; never contains a newline before `scanned`.
    buf: Vec<u8>,
    scanned: usize,
    next_line: u64,
    /// Offset of `buf[0]` in the decompressed stream.
    offset: u64,
    started: bool,
    eof: bool,
    done: bool,
    pool: Option<crossbeam_channel::Receiver<Vec<u8>>>,
}

impl<R: Read> Chunker<R> {
    /// A chunker for the source with index `source`.
    pub fn new(reader: R, source: usize, target_bytes: usize, max_line_bytes: usize) -> Self {
        Chunker {
            reader,
            source,
            target_bytes: target_bytes.max(1),
            max_line_bytes: max_line_bytes.max(1),
            buf: Vec::new(),
            scanned: 0,
            next_line: 1,
            offset: 0,
            started: false,
            eof: false,
            done: false,
            pool: None,
        }
    }

    /// Takes buffers for new chunks from `pool` (where consumers return [`Chunk::data`]).
    pub fn with_pool(mut self, pool: crossbeam_channel::Receiver<Vec<u8>>) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Bytes of decompressed input consumed so far.
    pub fn position(&self) -> u64 {
        self.offset + self.buf.len() as u64
    }

    /// Reads until `buf` holds at least `want` bytes or the input ends.
    fn fill_to(&mut self, want: usize) -> io::Result<()> {
        while self.buf.len() < want && !self.eof {
            let len = self.buf.len();
            let ask = want - len;
            self.buf.resize(len + ask, 0);
            let n = loop {
                match self.reader.read(&mut self.buf[len..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(len);
                        return Err(e);
                    }
                }
            };
            self.buf.truncate(len + n);
            if n == 0 {
                self.eof = true;
            }
        }
        if !self.started && (self.buf.len() >= UTF8_BOM.len() || self.eof) {
            self.started = true;
            // A BOM is not JSON; dropping it is the only change ever made to input bytes.
            if self.buf.starts_with(UTF8_BOM) {
                self.buf.drain(..UTF8_BOM.len());
                self.offset += UTF8_BOM.len() as u64;
            }
        }
        Ok(())
    }

    /// Emits `buf[..end]` as a chunk and keeps the rest.
    fn emit(&mut self, end: usize, last: bool) -> Piece {
        // The next buffer comes from the pool when a decoded chunk gave one back: reusing warm
        // memory saves the page faults of a fresh megabyte per chunk.
        let mut rest = self
            .pool
            .as_ref()
            .and_then(|pool| pool.try_recv().ok())
            .unwrap_or_default();
        rest.clear();
        rest.reserve(self.target_bytes.max(self.buf.len() - end));
        rest.extend_from_slice(&self.buf[end..]);
        let mut data = std::mem::replace(&mut self.buf, rest);
        data.truncate(end);
        let lines =
            memchr::memchr_iter(b'\n', &data).count() as u64 + u64::from(!data.ends_with(b"\n"));
        let chunk = Chunk {
            source: self.source,
            data,
            first_line: self.next_line,
            offset: self.offset,
            last,
        };
        self.next_line += lines;
        self.offset += end as u64;
        self.scanned = 0;
        Piece::Lines(chunk)
    }

    /// Reports the over-long line at the start of `buf` and skips past its newline.
    fn skip_long_line(&mut self) -> io::Result<Piece> {
        let raw = self.buf[..RAW_PREFIX_BYTES.min(self.buf.len())].to_vec();
        let line_offset = self.offset;
        let mut line_bytes = 0u64;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf) {
                line_bytes += i as u64;
                self.offset += i as u64 + 1;
                self.buf.drain(..=i);
                break;
            }
            line_bytes += self.buf.len() as u64;
            self.offset += self.buf.len() as u64;
            self.buf.clear();
            if self.eof {
                break;
            }
            self.fill_to(READ_BLOCK)?;
            if self.buf.is_empty() {
                break;
            }
        }
        let line = self.next_line;
        self.next_line += 1;
        self.scanned = 0;
        Ok(Piece::TooLong(RejectedLine {
            source: self.source,
            line,
            offset: line_offset,
            kind: RejectKind::LineTooLong,
            reason: line_too_long(line_bytes, self.max_line_bytes),
            raw,
            raw_truncated: true,
            line_bytes,
        }))
    }

    fn next_piece(&mut self) -> io::Result<Option<Piece>> {
        if self.done {
            return Ok(None);
        }
        let mut want = self.target_bytes;
        loop {
            self.fill_to(want)?;
            let tail_newline =
                memchr::memrchr(b'\n', &self.buf[self.scanned..]).map(|i| self.scanned + i);
            match tail_newline {
                Some(i) => return Ok(Some(self.emit(i + 1, false))),
                None => {
                    self.scanned = self.buf.len();
                    if self.buf.len() > self.max_line_bytes {
                        return self.skip_long_line().map(Some);
                    }
                    if self.eof {
                        self.done = true;
                        if self.buf.is_empty() {
                            return Ok(None);
                        }
                        let end = self.buf.len();
                        return Ok(Some(self.emit(end, true)));
                    }
                    // One line longer than the target: read on, up to the line limit.
                    want = self.buf.len()
                        + READ_BLOCK
                            .min(self.max_line_bytes + 1 - self.buf.len())
                            .max(1);
                }
            }
        }
    }
}

impl<R: Read> Iterator for Chunker<R> {
    type Item = io::Result<Piece>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_piece() {
            Ok(piece) => piece.map(Ok),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `step` bytes per call, like a pipe.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn collect(data: &[u8], step: usize, target: usize, max_line: usize) -> Vec<Piece> {
        Chunker::new(Trickle { data, step }, 0, target, max_line)
            .collect::<io::Result<Vec<_>>>()
            .unwrap()
    }

    /// Every line comes back exactly once with the right number and offset.
    fn lines_of(pieces: &[Piece]) -> Vec<(u64, u64, Vec<u8>)> {
        let mut out = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Lines(chunk) => {
                    out.extend(chunk.lines().map(|(n, o, l)| (n, o, l.to_vec())))
                }
                Piece::TooLong(r) => out.push((r.line, r.offset, b"<too long>".to_vec())),
            }
        }
        out
    }

    #[test]
    fn lines_keep_numbers_and_offsets_across_any_split() {
        let data = b"{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}";
        for step in [1, 2, 3, 7, 100] {
            for target in [1, 4, 9, 1000] {
                let got = lines_of(&collect(data, step, target, 1000));
                assert_eq!(
                    got,
                    vec![
                        (1, 0, b"{\"a\":1}".to_vec()),
                        (2, 8, b"".to_vec()),
                        (3, 9, b"{\"b\":2}".to_vec()),
                        (4, 18, b"{\"c\":3}".to_vec()),
                    ],
                    "step {step} target {target}"
                );
            }
        }
    }

    #[test]
    fn empty_input_yields_nothing() {
        assert!(collect(b"", 10, 10, 10).is_empty());
    }

    #[test]
    fn bom_is_dropped_and_offsets_stay_true() {
        let got = lines_of(&collect(b"\xEF\xBB\xBF{}\n{}\n", 1, 4, 100));
        assert_eq!(got, vec![(1, 3, b"{}".to_vec()), (2, 6, b"{}".to_vec())]);
    }

    #[test]
    fn too_long_lines_are_reported_and_skipped_with_bounded_buffering() {
        let mut data = b"{\"ok\":1}\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 10_000));
        data.extend(b"\n{\"ok\":2}\n");
        data.extend(std::iter::repeat_n(b'y', 5_000)); // too long and unterminated
        let pieces = collect(&data, 333, 64, 100);
        let got = lines_of(&pieces);
        assert_eq!(got[0], (1, 0, b"{\"ok\":1}".to_vec()));
        assert_eq!(got[1], (2, 9, b"<too long>".to_vec()));
        assert_eq!(got[2], (3, 10_010, b"{\"ok\":2}".to_vec()));
        assert_eq!(got[3], (4, 10_019, b"<too long>".to_vec()));
        assert_eq!(got.len(), 4);
        let too_long: Vec<&RejectedLine> = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::TooLong(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(too_long[0].line_bytes, 10_000);
        assert_eq!(too_long[1].line_bytes, 5_000);
        assert!(too_long[0].raw.len() <= RAW_PREFIX_BYTES);
        assert!(too_long[0].reason.contains("10000 bytes"));
        // No chunk ever held the long line.
        for p in &pieces {
            if let Piece::Lines(c) = p {
                assert!(c.data.len() < 1000);
            }
        }
    }

    #[test]
    fn a_line_longer_than_the_target_but_within_the_limit_is_kept_whole() {
        let mut data = vec![b'z'; 3000];
        data.push(b'\n');
        let got = lines_of(&collect(&data, 500, 100, 5000));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].2.len(), 3000);
    }

    #[test]
    fn read_errors_surface_once() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "corrupt deflate stream",
                ))
            }
        }
        let mut chunker = Chunker::new(Broken, 0, 10, 10);
        assert!(chunker.next().unwrap().is_err());
        assert!(chunker.next().is_none());
    }
}
