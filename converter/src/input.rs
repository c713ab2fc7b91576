//! Input sources and transparent decompression.
//!
//! A [`Source`] is something that can be opened for reading, possibly more than once (schema
//! inference may read a source before it is converted). Compression is detected from the
//! first bytes (gzip `1f 8b`, zstd `28 b5 2f fd`), never from the name alone, so a `.json`
//! that is really gzip, or a `.gz` that is really plain text, is read correctly.

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Contract: `open` returns a reader positioned at the start of the source's raw (possibly
/// compressed) bytes. When [`Source::can_reopen`] is true, every `open` yields the same bytes;
/// when false, `open` may be called at most twice and the second reader continues to yield
/// exactly the bytes the first one did, then the rest (see [`StdinSource`]).
pub trait Source: Send + Sync {
    /// Name used in messages, error records and metadata (a path, `-`, or a URL).
    fn name(&self) -> &str;
    /// Opens the raw bytes.
    fn open(&self) -> io::Result<Box<dyn Read + Send>>;
    /// Size of the raw bytes, when known (for progress reporting).
    fn size_hint(&self) -> Option<u64> {
        None
    }
    /// Whether the source can be read from the start any number of times.
    fn can_reopen(&self) -> bool {
        true
    }
}

/// A local file.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    name: String,
}

impl FileSource {
    /// A source reading `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        FileSource {
            name: path.display().to_string(),
            path,
        }
    }
}

impl Source for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(&self.path)?))
    }

    fn size_hint(&self) -> Option<u64> {
        std::fs::metadata(&self.path).ok().map(|m| m.len())
    }
}

/// Bytes held in memory (tests, small payloads, library users).
#[derive(Debug, Clone)]
pub struct MemorySource {
    name: String,
    bytes: Arc<[u8]>,
}

impl MemorySource {
    /// A source named `name` holding `bytes`.
    pub fn new(name: impl Into<String>, bytes: impl Into<Arc<[u8]>>) -> Self {
        MemorySource {
            name: name.into(),
            bytes: bytes.into(),
        }
    }
}

impl Source for MemorySource {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(Cursor::new(Arc::clone(&self.bytes))))
    }

    fn size_hint(&self) -> Option<u64> {
        Some(self.bytes.len() as u64)
    }
}

/// Standard input (`-`). It cannot be rewound, so the first reader records what it hands
/// out (up to `replay_limit` bytes) and the second replays that before continuing with the
/// unread rest. This is what lets `--infer-rows N` sample the head of a pipe.
pub struct StdinSource {
    state: Arc<Mutex<StdinState>>,
    replay_limit: usize,
}

enum StdinState {
    Unopened,
    Recording(Vec<u8>),
    Overflowed,
    Replaying,
}

impl StdinSource {
    /// A source for the process's standard input, recording at most `replay_limit` bytes.
    pub fn new(replay_limit: usize) -> Self {
        StdinSource {
            state: Arc::new(Mutex::new(StdinState::Unopened)),
            replay_limit,
        }
    }
}

impl Source for StdinSource {
    fn name(&self) -> &str {
        "-"
    }

    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        open_replayable(&self.state, self.replay_limit, io::stdin())
    }

    fn can_reopen(&self) -> bool {
        false
    }
}

fn open_replayable<R: Read + Send + 'static>(
    state: &Arc<Mutex<StdinState>>,
    limit: usize,
    inner: R,
) -> io::Result<Box<dyn Read + Send>> {
    let mut guard = state
        .lock()
        .expect("invariant: stdin state lock is never poisoned");
    match std::mem::replace(&mut *guard, StdinState::Replaying) {
        StdinState::Unopened => {
            *guard = StdinState::Recording(Vec::new());
            Ok(Box::new(RecordingReader {
                inner,
                state: Arc::clone(state),
                limit,
            }))
        }
        StdinState::Recording(head) => Ok(Box::new(Cursor::new(head).chain(inner))),
        StdinState::Overflowed => Err(io::Error::other(format!(
            "standard input cannot be rewound: more than {limit} bytes were read to infer the schema; pass --schema or a smaller --infer-rows"
        ))),
        StdinState::Replaying => Err(io::Error::other(
            "standard input can only be read once more after schema inference",
        )),
    }
}

struct RecordingReader<R> {
    inner: R,
    state: Arc<Mutex<StdinState>>,
    limit: usize,
}

impl<R: Read> Read for RecordingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut guard = self
            .state
            .lock()
            .expect("invariant: stdin state lock is never poisoned");
        if let StdinState::Recording(head) = &mut *guard {
            if head.len() + n > self.limit {
                *guard = StdinState::Overflowed;
            } else {
                head.extend_from_slice(&buf[..n]);
            }
        }
        Ok(n)
    }
}

/// Compression of a source, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputCompression {
    /// Plain text.
    None,
    /// gzip (one or more members).
    Gzip,
    /// Zstandard (one or more frames).
    Zstd,
}

impl InputCompression {
    /// Detects the compression from the first bytes of a stream.
    pub fn detect(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            InputCompression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            InputCompression::Zstd
        } else {
            InputCompression::None
        }
    }
}

/// Counts bytes read through it into a shared counter (raw bytes, for progress and summary).
struct Counting<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Wraps a raw reader so that it yields decompressed bytes, counting raw bytes into
/// `raw_bytes`.
pub fn decompressed(
    raw: Box<dyn Read + Send>,
    raw_bytes: Arc<AtomicU64>,
) -> io::Result<(InputCompression, Box<dyn Read + Send>)> {
    let mut raw = Counting {
        inner: raw,
        counter: raw_bytes,
    };
    let mut head = [0u8; 4];
    let mut filled = 0;
    while filled < head.len() {
        match raw.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let compression = InputCompression::detect(&head[..filled]);
    let stream = Cursor::new(head[..filled].to_vec()).chain(raw);
    let reader: Box<dyn Read + Send> = match compression {
        InputCompression::None => Box::new(stream),
        InputCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::with_capacity(256 * 1024, stream),
        )),
        InputCompression::Zstd => Box::new(zstd::stream::read::Decoder::new(stream)?),
    };
    Ok((compression, reader))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(bytes: Vec<u8>) -> io::Result<(InputCompression, Vec<u8>)> {
        let counter = Arc::new(AtomicU64::new(0));
        let (c, mut r) = decompressed(Box::new(Cursor::new(bytes.clone())), Arc::clone(&counter))?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        assert_eq!(counter.load(Ordering::Relaxed), bytes.len() as u64);
        Ok((c, out))
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn detects_by_magic_bytes() {
        let text = b"{\"a\":1}\n".repeat(100);
        assert_eq!(
            read_all(text.clone()).unwrap(),
            (InputCompression::None, text.clone())
        );
        assert_eq!(
            read_all(gzip(&text)).unwrap(),
            (InputCompression::Gzip, text.clone())
        );
        let z = zstd::encode_all(&text[..], 3).unwrap();
        assert_eq!(read_all(z).unwrap(), (InputCompression::Zstd, text.clone()));
        assert_eq!(read_all(vec![]).unwrap(), (InputCompression::None, vec![]));
        assert_eq!(
            read_all(b"{".to_vec()).unwrap(),
            (InputCompression::None, b"{".to_vec())
        );
    }

    #[test]
    fn concatenated_gzip_members_and_zstd_frames_are_read_whole() {
        let mut both = gzip(b"{\"a\":1}\n");
        both.extend(gzip(b"{\"a\":2}\n"));
        assert_eq!(read_all(both).unwrap().1, b"{\"a\":1}\n{\"a\":2}\n");
        let mut frames = zstd::encode_all(&b"x\n"[..], 1).unwrap();
        frames.extend(zstd::encode_all(&b"y\n"[..], 1).unwrap());
        assert_eq!(read_all(frames).unwrap().1, b"x\ny\n");
    }

    #[test]
    fn truncated_or_corrupt_gzip_is_an_error() {
        let full = gzip(&b"{\"a\":1}\n".repeat(1000));
        assert!(read_all(full[..full.len() / 2].to_vec()).is_err());
        let mut corrupt = full.clone();
        for b in &mut corrupt[20..40] {
            *b ^= 0x5a;
        }
        assert!(read_all(corrupt).is_err());
    }

    #[test]
    fn replayable_source_hands_out_the_head_again() {
        let state = Arc::new(Mutex::new(StdinState::Unopened));
        let data = b"line1\nline2\nline3\n".to_vec();
        let shared = Arc::new(Mutex::new(Cursor::new(data)));
        struct SharedReader(Arc<Mutex<Cursor<Vec<u8>>>>);
        impl Read for SharedReader {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(6);
                self.0.lock().unwrap().read(&mut buf[..n])
            }
        }
        let mut first = open_replayable(&state, 100, SharedReader(Arc::clone(&shared))).unwrap();
        let mut head = [0u8; 6];
        first.read_exact(&mut head).unwrap();
        drop(first);
        let mut second = open_replayable(&state, 100, SharedReader(Arc::clone(&shared))).unwrap();
        let mut all = String::new();
        second.read_to_string(&mut all).unwrap();
        assert_eq!(all, "line1\nline2\nline3\n");
        assert!(open_replayable(&state, 100, SharedReader(shared)).is_err());
    }

    #[test]
    fn replay_beyond_the_limit_is_refused() {
        let state = Arc::new(Mutex::new(StdinState::Unopened));
        let mut first = open_replayable(&state, 4, Cursor::new(b"0123456789".to_vec())).unwrap();
        let mut buf = Vec::new();
        first.read_to_end(&mut buf).unwrap();
        drop(first);
        let err = open_replayable(&state, 4, Cursor::new(Vec::new()))
            .err()
            .unwrap();
        assert!(err.to_string().contains("cannot be rewound"));
    }
}
