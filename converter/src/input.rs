//! Input sources and transparent decompression.
//!
//! A [`Source`] is something that can be opened for reading, possibly more than once (schema
//! inference may read a source before it is converted). Compression is detected from the
//! first bytes (gzip `1f 8b`, zstd `28 b5 2f fd` or a skippable frame), never from the name
//! alone, so a `.json` that is really gzip, or a `.gz` that is really plain text, is read
//! correctly. Input is read as the tools that write it do: gzip members may be followed by zero
//! padding, as `gzip -d` accepts; zstd may start with skippable frames, as `pzstd` writes. xz
//! and bzip2 are recognised and refused with what to do (they are not worth their build time
//! for input that is rare and one `xz -dc` away).

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Contract: `open` returns a reader positioned at the start of the source's raw (possibly
/// compressed) bytes. When [`Source::can_reopen`] is true, every `open` yields the same bytes;
/// when false, `open` may be called at most twice and the second reader continues to yield
/// exactly the bytes the first one did, then the rest (see [`StreamSource`]).
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

/// Whether `path` is a regular file, i.e. can be read from the start again. FIFOs, process
/// substitutions and devices cannot, and must be read through a [`StreamSource`].
pub fn is_regular_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
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

/// A stream (standard input) copied into a temporary file, so that it can be read any number
/// of times, like a file. The file has no name: it is unlinked as soon as it is created, so
/// it disappears when the process ends, however it ends (a signal, a crash, `kill -9`).
#[derive(Debug)]
pub struct SpooledSource {
    name: String,
    file: Arc<File>,
    len: u64,
}

impl SpooledSource {
    /// Copies all of `reader` into a temporary file in `dir`; the source is named `name`.
    pub fn spool(name: impl Into<String>, reader: &mut dyn Read, dir: &Path) -> io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = dir.join(format!(
            ".ndjson-parquet-spool-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        std::fs::remove_file(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let len = io::copy(reader, &mut file)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        Ok(SpooledSource {
            name: name.into(),
            file: Arc::new(file),
            len,
        })
    }
}

impl Source for SpooledSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(PositionalReader {
            file: Arc::clone(&self.file),
            position: 0,
            len: self.len,
        }))
    }

    fn size_hint(&self) -> Option<u64> {
        Some(self.len)
    }
}

/// Reads a shared file from its start with positional reads (each reader its own position).
struct PositionalReader {
    file: Arc<File>,
    position: u64,
    len: u64,
}

impl Read for PositionalReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let left = usize::try_from(self.len - self.position).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.position)?;
        self.position += n as u64;
        Ok(n)
    }
}

/// Opens the underlying stream of a [`StreamSource`], once.
type StreamOpener = Box<dyn FnOnce() -> io::Result<Box<dyn Read + Send>> + Send>;

/// A stream that cannot be rewound: standard input (`-`), a named pipe, a process
/// substitution (`<(zcat …)`). The first reader records what it hands out (up to
/// `replay_limit` bytes); the second replays that, then continues with the same stream. This
/// is what lets `--infer-rows N` sample the head of a pipe and still convert all of it.
pub struct StreamSource {
    name: String,
    state: Arc<Mutex<StreamState>>,
    replay_limit: usize,
}

enum StreamState {
    Unopened(StreamOpener),
    /// The first reader is out (`rest` is `None`) or was dropped (`rest` holds the stream).
    Recording {
        head: Vec<u8>,
        rest: Option<Box<dyn Read + Send>>,
    },
    Overflowed,
    Replayed,
}

impl StreamSource {
    /// Standard input, named `-`; up to `replay_limit` bytes of its head can be read twice.
    pub fn stdin(replay_limit: usize) -> Self {
        Self::from_opener(
            "-",
            replay_limit,
            Box::new(|| Ok(Box::new(io::stdin()) as Box<dyn Read + Send>)),
        )
    }

    /// A path that is not a regular file (a FIFO, a character device, `/dev/fd/N`).
    pub fn from_path(path: impl Into<PathBuf>, replay_limit: usize) -> Self {
        let path = path.into();
        let name = path.display().to_string();
        Self::from_opener(
            name,
            replay_limit,
            Box::new(move || Ok(Box::new(File::open(path)?) as Box<dyn Read + Send>)),
        )
    }

    /// A reader already open (a network body, a child's stdout), named `name` in messages;
    /// like any stream, up to `replay_limit` bytes of its head can be read twice.
    pub fn from_reader(
        name: impl Into<String>,
        reader: impl Read + Send + 'static,
        replay_limit: usize,
    ) -> Self {
        Self::from_opener(
            name,
            replay_limit,
            Box::new(move || Ok(Box::new(reader) as Box<dyn Read + Send>)),
        )
    }

    fn from_opener(name: impl Into<String>, replay_limit: usize, opener: StreamOpener) -> Self {
        StreamSource {
            name: name.into(),
            state: Arc::new(Mutex::new(StreamState::Unopened(opener))),
            replay_limit,
        }
    }
}

impl Source for StreamSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        let mut guard = self
            .state
            .lock()
            .expect("invariant: stream state lock is never poisoned");
        match std::mem::replace(&mut *guard, StreamState::Replayed) {
            StreamState::Unopened(opener) => {
                let inner = match opener() {
                    Ok(inner) => inner,
                    Err(e) => {
                        *guard = StreamState::Overflowed;
                        return Err(e);
                    }
                };
                *guard = StreamState::Recording {
                    head: Vec::new(),
                    rest: None,
                };
                Ok(Box::new(RecordingReader {
                    inner: Some(inner),
                    state: Arc::clone(&self.state),
                    limit: self.replay_limit,
                }))
            }
            StreamState::Recording { head, rest: Some(rest) } => Ok(Box::new(Cursor::new(head).chain(rest))),
            StreamState::Recording { rest: None, .. } => Err(io::Error::other(format!(
                "{} is still being read by its first reader",
                self.name
            ))),
            StreamState::Overflowed => Err(io::Error::other(format!(
                "{} cannot be rewound: more than {} bytes were read to infer the schema; pass --schema or a smaller --infer-rows",
                self.name, self.replay_limit
            ))),
            StreamState::Replayed => Err(io::Error::other(format!(
                "{} can only be read once more after schema inference",
                self.name
            ))),
        }
    }

    fn can_reopen(&self) -> bool {
        false
    }
}

struct RecordingReader {
    inner: Option<Box<dyn Read + Send>>,
    state: Arc<Mutex<StreamState>>,
    limit: usize,
}

impl Read for RecordingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .as_mut()
            .expect("invariant: the stream is held until drop")
            .read(buf)?;
        let mut guard = self
            .state
            .lock()
            .expect("invariant: stream state lock is never poisoned");
        if let StreamState::Recording { head, .. } = &mut *guard {
            if head.len() + n > self.limit {
                *guard = StreamState::Overflowed;
            } else {
                head.extend_from_slice(&buf[..n]);
            }
        }
        Ok(n)
    }
}

impl Drop for RecordingReader {
    /// Hands the stream back, so the second reader continues where this one stopped.
    fn drop(&mut self) {
        if let Ok(mut guard) = self.state.lock() {
            if let StreamState::Recording { rest, .. } = &mut *guard {
                *rest = self.inner.take();
            }
        }
    }
}

/// Compression of a source, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputCompression {
    /// No known magic bytes: the bytes are read as they are.
    None,
    /// gzip (one or more members, possibly followed by zero padding).
    Gzip,
    /// Zstandard (one or more frames, skippable frames included).
    Zstd,
    /// xz: recognised, not read (see [`unsupported_compression`]).
    Xz,
    /// bzip2: recognised, not read (see [`unsupported_compression`]).
    Bzip2,
}

/// Bytes [`InputCompression::detect`] looks at.
const HEAD_BYTES: usize = 10;

impl InputCompression {
    /// Detects the compression from the first bytes of a stream (up to 10 are looked at).
    pub fn detect(head: &[u8]) -> Self {
        const BZIP2_BLOCK: [u8; 6] = [0x31, 0x41, 0x59, 0x26, 0x53, 0x59];
        const BZIP2_END: [u8; 6] = [0x17, 0x72, 0x45, 0x38, 0x50, 0x90];
        if head.starts_with(&[0x1f, 0x8b]) {
            InputCompression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            InputCompression::Zstd
        } else if let [low, 0x2a, 0x4d, 0x18, ..] = head {
            // A skippable frame, magic 0x184D2A50..=0x184D2A5F (little-endian).
            if low & 0xf0 == 0x50 {
                InputCompression::Zstd
            } else {
                InputCompression::None
            }
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            InputCompression::Xz
        } else if let [b'B', b'Z', b'h', b'1'..=b'9', rest @ ..] = head {
            if rest.len() < 6 || rest.starts_with(&BZIP2_BLOCK) || rest.starts_with(&BZIP2_END) {
                InputCompression::Bzip2
            } else {
                InputCompression::None
            }
        } else {
            InputCompression::None
        }
    }
}

/// Why xz and bzip2 input is refused, and what to do instead; `None` for what is read.
pub fn unsupported_compression(compression: InputCompression) -> Option<String> {
    let (format, tool) = match compression {
        InputCompression::Xz => ("xz", "xz"),
        InputCompression::Bzip2 => ("bzip2", "bzip2"),
        _ => return None,
    };
    Some(format!(
        "the input is {format}-compressed, which is not read (only gzip and zstd are): \
         decompress it first: {tool} -d FILE, or stream it: {tool} -dc FILE | ndjson-parquet convert - …"
    ))
}

/// gzip members one after another, as `gzip -d` reads them: zero bytes after the last member
/// (padding from tape or block devices) are skipped; anything else after a member must be
/// another member.
struct GzipMembers<R: io::BufRead> {
    /// The member being read; `None` between members and at the end.
    member: Option<flate2::bufread::GzDecoder<R>>,
    /// The input between members.
    between: Option<R>,
}

impl<R: io::BufRead> GzipMembers<R> {
    fn new(input: R) -> Self {
        GzipMembers {
            member: Some(flate2::bufread::GzDecoder::new(input)),
            between: None,
        }
    }

    /// Past a member's end: starts the next member, or returns false at the end of the input.
    fn next_member(&mut self) -> io::Result<bool> {
        let mut input = match (self.member.take(), self.between.take()) {
            (Some(member), _) => member.into_inner(),
            (None, Some(input)) => input,
            (None, None) => return Ok(false),
        };
        let mut padded = false;
        loop {
            let available = input.fill_buf()?;
            if available.is_empty() {
                return Ok(false);
            }
            let zeros = available.iter().take_while(|b| **b == 0).count();
            if zeros > 0 {
                input.consume(zeros);
                padded = true;
                continue;
            }
            if padded {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bytes other than zero padding after the gzip data",
                ));
            }
            self.member = Some(flate2::bufread::GzDecoder::new(input));
            return Ok(true);
        }
    }
}

impl<R: io::BufRead> Read for GzipMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(member) = self.member.as_mut() else {
                return Ok(0);
            };
            let n = member.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if !self.next_member()? {
                return Ok(0);
            }
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
    let mut head = [0u8; HEAD_BYTES];
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
    if let Some(refusal) = unsupported_compression(compression) {
        return Err(io::Error::new(io::ErrorKind::Unsupported, refusal));
    }
    let stream = Cursor::new(head[..filled].to_vec()).chain(raw);
    let reader: Box<dyn Read + Send> = match compression {
        InputCompression::None | InputCompression::Xz | InputCompression::Bzip2 => Box::new(stream),
        InputCompression::Gzip => Box::new(GzipMembers::new(io::BufReader::with_capacity(
            256 * 1024,
            stream,
        ))),
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

    /// A reader that returns at most 6 bytes per call, like a pipe.
    struct Pipe(Cursor<Vec<u8>>);

    impl Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(6);
            self.0.read(&mut buf[..n])
        }
    }

    #[test]
    fn a_stream_hands_out_its_head_again_then_the_rest() {
        let source = StreamSource::from_reader(
            "pipe",
            Pipe(Cursor::new(b"line1\nline2\nline3\n".to_vec())),
            100,
        );
        assert!(!source.can_reopen());
        let mut first = source.open().unwrap();
        let mut head = [0u8; 6];
        first.read_exact(&mut head).unwrap();
        drop(first);
        let mut all = String::new();
        source.open().unwrap().read_to_string(&mut all).unwrap();
        assert_eq!(all, "line1\nline2\nline3\n");
        let third = source.open().err().unwrap();
        assert!(third.to_string().contains("only be read once more"));
    }

    #[test]
    fn replay_beyond_the_limit_is_refused() {
        let source = StreamSource::from_reader("pipe", Cursor::new(b"0123456789".to_vec()), 4);
        let mut buf = Vec::new();
        source.open().unwrap().read_to_end(&mut buf).unwrap();
        let err = source.open().err().unwrap();
        assert!(err.to_string().contains("cannot be rewound"), "{err}");
    }

    #[test]
    fn a_spooled_stream_reads_whole_any_number_of_times_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"line1\nline2\n".repeat(10_000);
        let source =
            SpooledSource::spool("-", &mut Pipe(Cursor::new(text.clone())), dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(source.can_reopen());
        assert_eq!(source.size_hint(), Some(text.len() as u64));
        let mut first = source.open().unwrap();
        let mut second = source.open().unwrap();
        let mut head = [0u8; 6];
        first.read_exact(&mut head).unwrap();
        let mut all = Vec::new();
        second.read_to_end(&mut all).unwrap();
        assert_eq!(all, text);
        let mut rest = Vec::new();
        first.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &text[6..]);
    }

    #[test]
    fn zstd_after_skippable_frames_and_gzip_before_zero_padding_are_read() {
        let text = b"{\"a\":1}\n".repeat(100);
        let mut pzstd = vec![0x5e, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3];
        pzstd.extend(zstd::encode_all(&text[..], 3).unwrap());
        assert_eq!(
            read_all(pzstd).unwrap(),
            (InputCompression::Zstd, text.clone())
        );
        let mut padded = gzip(&text);
        padded.extend(gzip(&text));
        padded.extend([0u8; 4096]);
        let mut twice = text.clone();
        twice.extend(&text);
        assert_eq!(read_all(padded).unwrap(), (InputCompression::Gzip, twice));
        let mut garbage = gzip(&text);
        garbage.extend(b"\0\0\0junk");
        assert!(read_all(garbage).is_err());
        let mut garbage = gzip(&text);
        garbage.extend(b"junk");
        assert!(read_all(garbage).is_err());
    }

    #[test]
    fn xz_and_bzip2_are_recognised_and_refused_with_what_to_do() {
        assert_eq!(
            InputCompression::detect(&[0xfd, b'7', b'z', b'X', b'Z', 0, 0, 4]),
            InputCompression::Xz
        );
        assert_eq!(
            InputCompression::detect(b"BZh91AY&SY"),
            InputCompression::Bzip2
        );
        assert_eq!(
            InputCompression::detect(b"BZh9 and text"),
            InputCompression::None
        );
        assert_eq!(
            InputCompression::detect(b"{\"a\":1}\n"),
            InputCompression::None
        );
        let err = read_all(b"BZh91AY&SY\0\0".to_vec()).unwrap_err();
        assert!(err.to_string().contains("bzip2 -d"), "{err}");
        let err = read_all(vec![0xfd, b'7', b'z', b'X', b'Z', 0, 0, 4, 0, 0]).unwrap_err();
        assert!(err.to_string().contains("xz -d"), "{err}");
    }

    #[test]
    fn regular_files_reopen_and_pipes_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.ndjson");
        std::fs::write(&path, b"{}\n").unwrap();
        assert!(is_regular_file(&path));
        assert!(!is_regular_file(Path::new("/dev/null")));
    }
}
