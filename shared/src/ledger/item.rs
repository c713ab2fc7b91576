//! The ledger's table layout, defined once: key formats, attribute names, and the conversion of
//! every item kind to and from [`Item`], a DynamoDB item without the SDK. The DynamoDB
//! implementation maps [`Value`] to the SDK's `AttributeValue`; [`super::MemoryLedger`] stores
//! [`Item`]s, so both read and write exactly the same attributes, and [`size`] bills them as
//! DynamoDB does.
//!
//! One table, string keys [`attr::PK`] and [`attr::SK`], no secondary index, TTL on
//! [`attr::TTL`]:
//!
//! | item | pk | sk |
//! |---|---|---|
//! | marker | `V#<bucket>/<key>` | [`super::Version::encode`] |
//! | batch | `B#<date>#<shard>` | [`super::BatchKey`] |
//! | cursor | `C#<date>` | `<shard>` |
//! | manifest | `M#<id>` | `M` |
//! | open manifest | `O#<partition>` | `<created_at>#<id>` |
//! | shard registry | `D` | `<date>#<shard>` |
//! | cut lease | `L#<date>` | `<shard>` |
//!
//! Shard numbers and partitions are two decimal digits, so the sort keys sort as numbers.

use std::collections::BTreeMap;

use super::{
    Batch, BatchContents, BatchKey, Cursor, Manifest, ManifestState, Marker, OpenManifest, Ref,
    Shard, StoreError, Version, VersionRef, OPEN_PARTITIONS,
};
use crate::types::{ConversionResult, DatePrefix, ManifestId, Timestamp};

/// Attribute names.
pub mod attr {
    /// Partition key (S).
    pub const PK: &str = "pk";
    /// Sort key (S).
    pub const SK: &str = "sk";
    /// Expiry (N), seconds since the epoch: the table's TTL attribute.
    pub const TTL: &str = "ttl";
    /// Marker: the batch key that owns the version (S).
    pub const BATCH: &str = "batch";
    /// Marker: the date partition (S).
    pub const DATE: &str = "date";
    /// Marker: size in bytes (N).
    pub const SIZE: &str = "size";
    /// Marker: ETag without quotes (S).
    pub const ETAG: &str = "etag";
    /// Marker: failed conversions (N), present after the first.
    pub const ATTEMPTS: &str = "attempts";
    /// Marker: why the last conversion failed (S).
    pub const LAST_ERROR: &str = "last_error";
    /// Marker: why the version will not be converted (S), when superseded.
    pub const SUPERSEDED: &str = "superseded";
    /// Arrival batch: bucket of its refs (S).
    pub const BUCKET: &str = "bucket";
    /// Arrival batch: its refs, front coded and deflated ([`super::encode_refs`]) (B).
    pub const REFS: &str = "refs";
    /// Arrival batch: the sizes of its refs summed (N).
    pub const BYTES: &str = "bytes";
    /// Cut lease: who holds it (S).
    pub const OWNER: &str = "owner";
    /// Cut lease: until when, milliseconds since the epoch (N).
    pub const UNTIL: &str = "until";
    /// Retry batch: the released manifest (S).
    pub const RETRY_OF: &str = "retry_of";
    /// Cursor: key of the last batch taken (S).
    pub const POSITION: &str = "position";
    /// Cursor: the manifest that took it (S).
    pub const LAST_MANIFEST: &str = "last_manifest";
    /// Manifest: the shard number its batches come from (N).
    pub const SHARD: &str = "shard";
    /// Manifest: its state (S). A DynamoDB reserved word: expressions name it by placeholder.
    pub const STATUS: &str = "status";
    /// Manifest: the cursor before its cut (S), absent for a shard's first manifest.
    pub const AFTER: &str = "after";
    /// Manifest: the last batch it took (S).
    pub const LAST: &str = "last";
    /// Manifest: `s3://bucket/key` of its JSON (S).
    pub const MANIFEST_PATH: &str = "manifest_path";
    /// Manifest: versions it holds (N).
    pub const FILE_COUNT: &str = "file_count";
    /// Manifest: their bytes (N).
    pub const TOTAL_BYTES: &str = "total_bytes";
    /// Manifest: its execution's ARN (S).
    pub const EXECUTION_ARN: &str = "execution_arn";
    /// Manifest: the conversion's counts and outputs, JSON (S).
    pub const RESULT: &str = "result";
    /// Manifest: why it failed (S). A DynamoDB reserved word.
    pub const ERROR: &str = "error";
    /// Manifest: when it was cut (S, fixed-width RFC 3339).
    pub const CREATED_AT: &str = "created_at";
    /// Manifest: its last change (S, fixed-width RFC 3339).
    pub const UPDATED_AT: &str = "updated_at";
}

/// An attribute value, as DynamoDB types it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string (`S`).
    S(String),
    /// A number (`N`), as its decimal text.
    N(String),
    /// A list (`L`).
    L(Vec<Value>),
    /// Bytes (`B`).
    B(Vec<u8>),
}

impl Value {
    fn number(n: impl ToString) -> Self {
        Value::N(n.to_string())
    }
}

/// An item: attribute names to values.
pub type Item = BTreeMap<String, Value>;

/// An item's primary key.
pub type Key = (String, String);

/// The item's size as DynamoDB bills it: per attribute, the name's UTF-8 bytes plus the value's
/// (a string's UTF-8 bytes; a number's one byte per two significant digits plus one; a list's
/// three bytes plus one per element plus the elements; bytes as they are).
pub fn size(item: &Item) -> u64 {
    item.iter()
        .map(|(name, value)| name.len() as u64 + value_size(value))
        .sum()
}

fn value_size(value: &Value) -> u64 {
    match value {
        Value::S(text) => text.len() as u64,
        Value::N(text) => {
            let digits = text.trim_start_matches('-').replace('.', "");
            let significant = digits.trim_start_matches('0').trim_end_matches('0').len() as u64;
            significant.max(1).div_ceil(2) + 1
        }
        Value::L(values) => 3 + values.iter().map(|v| 1 + value_size(v)).sum::<u64>(),
        Value::B(bytes) => bytes.len() as u64,
    }
}

/// The key of a version's marker.
pub fn marker_key(version: &VersionRef) -> Key {
    (
        format!("V#{}/{}", version.bucket, version.key),
        version.version.encode(),
    )
}

/// The partition of a shard's batches.
pub fn batch_partition(shard: &Shard) -> String {
    format!("B#{}#{:02}", shard.date, shard.number)
}

/// The key of a shard's cursor.
pub fn cursor_key(shard: &Shard) -> Key {
    (format!("C#{}", shard.date), format!("{:02}", shard.number))
}

/// The key of a shard's cut lease.
pub fn lease_key(shard: &Shard) -> Key {
    (format!("L#{}", shard.date), format!("{:02}", shard.number))
}

/// A cut lease as an item: its owner and expiry (milliseconds), gone by TTL a day later.
pub fn lease_item(shard: &Shard, owner: &str, until: Timestamp) -> Item {
    let mut item = keyed(lease_key(shard));
    put_s(&mut item, attr::OWNER, owner);
    item.insert(attr::UNTIL.into(), Value::number(until.0));
    item.insert(
        attr::TTL.into(),
        Value::number(until.plus_seconds(86_400).unix_seconds()),
    );
    item
}

/// When the lease in `item` expires, if it is a lease item.
pub fn lease_until(item: &Item) -> Option<Timestamp> {
    match item.get(attr::UNTIL) {
        Some(Value::N(n)) => n.parse().ok().map(Timestamp),
        _ => None,
    }
}

/// The key of a manifest item.
pub fn manifest_key(id: &ManifestId) -> Key {
    (format!("M#{id}"), "M".into())
}

/// Which open-manifest partition lists `id`: a hash of the id, stable across versions.
pub fn open_partition(id: &ManifestId) -> u8 {
    // FNV-1a: fixed, so every party computes the same partition.
    let hash = id.as_str().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % u64::from(OPEN_PARTITIONS)) as u8
}

/// The partition key of open-manifest partition `n`.
pub fn open_pk(partition: u8) -> String {
    format!("O#{partition:02}")
}

/// The key of a manifest's open entry.
pub fn open_key(id: &ManifestId, created_at: Timestamp) -> Key {
    (
        open_pk(open_partition(id)),
        format!("{}#{id}", created_at.to_rfc3339()),
    )
}

/// The partition key of the shard registry.
pub const SHARDS_PK: &str = "D";

/// The key of a shard's registry entry.
pub fn shard_key(shard: &Shard) -> Key {
    (SHARDS_PK.into(), shard.to_string())
}

fn keyed(key: Key) -> Item {
    let mut item = Item::new();
    item.insert(attr::PK.into(), Value::S(key.0));
    item.insert(attr::SK.into(), Value::S(key.1));
    item
}

fn put_s(item: &mut Item, name: &str, value: impl Into<String>) {
    item.insert(name.into(), Value::S(value.into()));
}

/// A marker as an item.
pub fn marker_item(marker: &Marker) -> Item {
    let mut item = keyed(marker_key(&marker.version));
    put_s(&mut item, attr::BATCH, marker.batch.as_str());
    put_s(&mut item, attr::DATE, marker.date.as_str());
    item.insert(attr::SIZE.into(), Value::number(marker.size));
    put_s(&mut item, attr::ETAG, marker.etag.as_str());
    if marker.attempts > 0 {
        item.insert(attr::ATTEMPTS.into(), Value::number(marker.attempts));
    }
    if let Some(error) = &marker.last_error {
        put_s(&mut item, attr::LAST_ERROR, error.as_str());
    }
    if let Some(reason) = &marker.superseded {
        put_s(&mut item, attr::SUPERSEDED, reason.as_str());
    }
    item.insert(attr::TTL.into(), Value::number(marker.ttl));
    item
}

/// A batch as an item.
pub fn batch_item(batch: &Batch) -> Item {
    let mut item = keyed((batch_partition(&batch.shard), batch.key.as_str().into()));
    match &batch.contents {
        BatchContents::Arrivals {
            bucket,
            refs,
            bytes,
        } => {
            put_s(&mut item, attr::BUCKET, bucket.as_str());
            item.insert(attr::REFS.into(), Value::B(encode_refs(refs)));
            item.insert(attr::BYTES.into(), Value::number(bytes));
        }
        BatchContents::Retry { manifest } => put_s(&mut item, attr::RETRY_OF, manifest.as_str()),
    }
    item.insert(attr::TTL.into(), Value::number(batch.ttl));
    item
}

/// Refs as stored: deflated, front coded. Each ref is `varint shared`, `varint n`, the `n`
/// bytes of the key after the `shared` bytes it has in common with the previous ref's key,
/// `varint m` and the `m` bytes of [`Version::encode`]. Keys of one delivery share long
/// prefixes (`logs/2026/11/30/host-07/…`) and deflate shrinks the rest (digits, hexadecimal
/// version ids): a batch item is billed by its size, so this is what keeps a batch's share of
/// the write cost per file small. The tracker sorts refs by key first.
pub fn encode_refs(refs: &[Ref]) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut previous = "";
    for r in refs {
        let mut shared = r
            .key
            .bytes()
            .zip(previous.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        while !r.key.is_char_boundary(shared) {
            shared -= 1;
        }
        let suffix = &r.key.as_bytes()[shared..];
        let version = r.version.encode();
        put_varint(&mut raw, shared as u64);
        put_varint(&mut raw, suffix.len() as u64);
        raw.extend_from_slice(suffix);
        put_varint(&mut raw, version.len() as u64);
        raw.extend_from_slice(version.as_bytes());
        previous = &r.key;
    }
    deflate(&raw)
}

thread_local! {
    // One (de)compressor per thread, reset between uses: a new one allocates and zeroes its
    // window and hash tables (about 300 KB at the best level), which for a batch's few
    // kilobytes of refs cost more than the compression itself (the builder deflates every
    // arrival batch and inflates every batch a cut lists).
    static DEFLATE: std::cell::RefCell<flate2::Compress> =
        std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::best(), false));
    static INFLATE: std::cell::RefCell<flate2::Decompress> =
        std::cell::RefCell::new(flate2::Decompress::new(false));
}

/// Raw deflate of `raw` at the best level.
fn deflate(raw: &[u8]) -> Vec<u8> {
    DEFLATE.with_borrow_mut(|deflate| {
        deflate.reset();
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        loop {
            let read = usize::try_from(deflate.total_in()).expect("invariant: read from memory");
            let status = deflate
                .compress_vec(&raw[read..], &mut out, flate2::FlushCompress::Finish)
                .expect("invariant: deflating in memory");
            if status == flate2::Status::StreamEnd {
                return out;
            }
            // Out of room (compress_vec only writes into spare capacity): double it.
            out.reserve(out.capacity().max(64));
        }
    })
}

/// Inflates one raw deflate stream; `None` if it is corrupt, truncated, or inflates to more
/// than `limit` bytes. Bytes after the stream's end are ignored.
fn inflate(bytes: &[u8], limit: usize) -> Option<Vec<u8>> {
    INFLATE.with_borrow_mut(|inflate| {
        inflate.reset(false);
        let mut raw = Vec::with_capacity((bytes.len() * 4).max(64).min(limit + 1));
        loop {
            let read = usize::try_from(inflate.total_in()).ok()?;
            let status = inflate
                .decompress_vec(&bytes[read..], &mut raw, flate2::FlushDecompress::Finish)
                .ok()?;
            if raw.len() > limit {
                return None;
            }
            if status == flate2::Status::StreamEnd {
                return Some(raw);
            }
            // It stops short of the end only when the output is full or the input is used up.
            if raw.len() < raw.capacity() {
                return None; // room to spare: the input ended early
            }
            // Room for at most one byte past the limit, which is how going past it shows.
            raw.reserve_exact(raw.capacity().min(limit + 1 - raw.len()).max(1));
        }
    })
}

/// Reads [`encode_refs`]'s bytes back; `None` if they are not of that form.
pub fn decode_refs(bytes: &[u8]) -> Option<Vec<Ref>> {
    // Batches hold at most a few thousand refs of at most 2 KB: a bound against a bomb.
    let raw = inflate(bytes, 64 << 20)?;
    let mut refs: Vec<Ref> = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let shared = usize::try_from(get_varint(&raw, &mut at)?).ok()?;
        let suffix = take(&raw, &mut at)?;
        let version = std::str::from_utf8(take(&raw, &mut at)?).ok()?;
        let previous = refs.last().map_or("", |r| r.key.as_str());
        let mut key = previous.get(..shared)?.to_string();
        key.push_str(std::str::from_utf8(suffix).ok()?);
        refs.push(Ref {
            key,
            version: Version::decode(version)?,
        });
    }
    Some(refs)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn get_varint(raw: &[u8], at: &mut usize) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *raw.get(*at)?;
        *at += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(n);
        }
    }
    None
}

/// A varint length, then that many bytes.
fn take<'a>(raw: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let n = usize::try_from(get_varint(raw, at)?).ok()?;
    let bytes = raw.get(*at..at.checked_add(n)?)?;
    *at += n;
    Some(bytes)
}

/// A cursor as an item.
pub fn cursor_item(cursor: &Cursor) -> Item {
    let mut item = keyed(cursor_key(&cursor.shard));
    put_s(&mut item, attr::POSITION, cursor.position.as_str());
    if let Some(id) = &cursor.last_manifest {
        put_s(&mut item, attr::LAST_MANIFEST, id.as_str());
    }
    item
}

/// A manifest as an item.
pub fn manifest_item(manifest: &Manifest) -> Item {
    let mut item = keyed(manifest_key(&manifest.id));
    put_s(&mut item, attr::DATE, manifest.shard.date.as_str());
    item.insert(attr::SHARD.into(), Value::number(manifest.shard.number));
    put_s(&mut item, attr::STATUS, manifest.state.as_str());
    if let Some(after) = &manifest.after {
        put_s(&mut item, attr::AFTER, after.as_str());
    }
    put_s(&mut item, attr::LAST, manifest.last.as_str());
    put_s(
        &mut item,
        attr::MANIFEST_PATH,
        manifest.manifest_path.as_str(),
    );
    item.insert(attr::FILE_COUNT.into(), Value::number(manifest.file_count));
    item.insert(
        attr::TOTAL_BYTES.into(),
        Value::number(manifest.total_bytes),
    );
    if let Some(arn) = &manifest.execution_arn {
        put_s(&mut item, attr::EXECUTION_ARN, arn.as_str());
    }
    if let Some(result) = &manifest.result {
        put_s(&mut item, attr::RESULT, result_json(result));
    }
    if let Some(error) = &manifest.error {
        put_s(&mut item, attr::ERROR, error.as_str());
    }
    put_s(
        &mut item,
        attr::CREATED_AT,
        manifest.created_at.to_rfc3339(),
    );
    put_s(
        &mut item,
        attr::UPDATED_AT,
        manifest.updated_at.to_rfc3339(),
    );
    item.insert(attr::TTL.into(), Value::number(manifest.ttl));
    item
}

/// The stored form of a conversion result: JSON without the schema (the manifest's output
/// carries it; keeping it here would bill every later write of the item for it).
pub fn result_json(result: &ConversionResult) -> String {
    let mut result = result.clone();
    result.schema = None;
    serde_json::to_string(&result).expect("invariant: a ConversionResult always serializes")
}

/// A manifest's open entry as an item (keys only: nothing else is ever read from it).
pub fn open_item(id: &ManifestId, created_at: Timestamp) -> Item {
    keyed(open_key(id, created_at))
}

/// A shard's registry entry as an item.
pub fn shard_item(shard: &Shard, ttl: i64) -> Item {
    let mut item = keyed(shard_key(shard));
    item.insert(attr::TTL.into(), Value::number(ttl));
    item
}

/// Reads items back, naming the table and the item in every error.
pub struct Reader<'a> {
    table: &'a str,
    item: &'a Item,
}

impl<'a> Reader<'a> {
    /// A reader of `item` of `table`.
    pub fn new(table: &'a str, item: &'a Item) -> Self {
        Reader { table, item }
    }

    /// The item's partition and sort keys (empty when missing).
    pub fn keys(&self) -> (&'a str, &'a str) {
        let part = |name| match self.item.get(name) {
            Some(Value::S(text)) => text.as_str(),
            _ => "",
        };
        (part(attr::PK), part(attr::SK))
    }

    /// The item's `pk/sk`, for messages.
    pub fn key(&self) -> String {
        let (pk, sk) = self.keys();
        format!("{pk}/{sk}")
    }

    fn malformed(&self, detail: impl Into<String>) -> StoreError {
        StoreError::Malformed {
            table: self.table.to_string(),
            key: self.key(),
            detail: detail.into(),
        }
    }

    fn opt_s(&self, name: &str) -> Result<Option<&'a str>, StoreError> {
        match self.item.get(name) {
            None => Ok(None),
            Some(Value::S(text)) => Ok(Some(text)),
            Some(_) => Err(self.malformed(format!("{name} is not a string"))),
        }
    }

    fn s(&self, name: &str) -> Result<&'a str, StoreError> {
        self.opt_s(name)?
            .ok_or_else(|| self.malformed(format!("{name} is missing")))
    }

    fn opt_n<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.item.get(name) {
            None => Ok(None),
            Some(Value::N(text)) => text
                .parse()
                .map(Some)
                .map_err(|_| self.malformed(format!("{name} `{text}` is out of range"))),
            Some(_) => Err(self.malformed(format!("{name} is not a number"))),
        }
    }

    fn n<T: std::str::FromStr>(&self, name: &str) -> Result<T, StoreError> {
        self.opt_n(name)?
            .ok_or_else(|| self.malformed(format!("{name} is missing")))
    }

    fn parsed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, StoreError> {
        let text = self.s(name)?;
        parse(text).ok_or_else(|| self.malformed(format!("{name} `{text}` is not valid")))
    }

    fn batch_key(&self, name: &str) -> Result<BatchKey, StoreError> {
        self.parsed(name, BatchKey::parse)
    }

    fn time(&self, name: &str) -> Result<Timestamp, StoreError> {
        self.parsed(name, Timestamp::parse_rfc3339)
    }

    /// A marker; `version` is the one its key was built from.
    pub fn marker(&self, version: &VersionRef) -> Result<Marker, StoreError> {
        Ok(Marker {
            version: version.clone(),
            batch: self.batch_key(attr::BATCH)?,
            date: self.parsed(attr::DATE, DatePrefix::parse)?,
            size: self.n(attr::SIZE)?,
            etag: self.s(attr::ETAG)?.to_string(),
            attempts: self.opt_n(attr::ATTEMPTS)?.unwrap_or(0),
            last_error: self.opt_s(attr::LAST_ERROR)?.map(str::to_string),
            superseded: self.opt_s(attr::SUPERSEDED)?.map(str::to_string),
            ttl: self.n(attr::TTL)?,
        })
    }

    /// A batch of `shard`.
    pub fn batch(&self, shard: &Shard) -> Result<Batch, StoreError> {
        let contents = match self.opt_s(attr::RETRY_OF)? {
            Some(_) => BatchContents::Retry {
                manifest: self.parsed(attr::RETRY_OF, ManifestId::parse)?,
            },
            None => {
                let Some(Value::B(bytes)) = self.item.get(attr::REFS) else {
                    return Err(self.malformed("refs is missing or not bytes"));
                };
                let refs = decode_refs(bytes)
                    .ok_or_else(|| self.malformed("refs are not deflated front-coded refs"))?;
                BatchContents::Arrivals {
                    bucket: self.s(attr::BUCKET)?.to_string(),
                    refs,
                    bytes: self.n(attr::BYTES)?,
                }
            }
        };
        Ok(Batch {
            shard: shard.clone(),
            key: self.batch_key(attr::SK)?,
            contents,
            ttl: self.n(attr::TTL)?,
        })
    }

    /// A cursor of `shard`.
    pub fn cursor(&self, shard: &Shard) -> Result<Cursor, StoreError> {
        Ok(Cursor {
            shard: shard.clone(),
            position: self.batch_key(attr::POSITION)?,
            last_manifest: match self.opt_s(attr::LAST_MANIFEST)? {
                Some(_) => Some(self.parsed(attr::LAST_MANIFEST, ManifestId::parse)?),
                None => None,
            },
        })
    }

    /// A manifest.
    pub fn manifest(&self) -> Result<Manifest, StoreError> {
        let id = self.parsed(attr::PK, |pk| ManifestId::parse(pk.strip_prefix("M#")?))?;
        let result = match self.opt_s(attr::RESULT)? {
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|e| self.malformed(format!("result is not valid: {e}")))?,
            ),
            None => None,
        };
        Ok(Manifest {
            id,
            shard: Shard {
                date: self.parsed(attr::DATE, DatePrefix::parse)?,
                number: self.n(attr::SHARD)?,
            },
            state: self.parsed(attr::STATUS, ManifestState::parse)?,
            after: match self.opt_s(attr::AFTER)? {
                Some(_) => Some(self.batch_key(attr::AFTER)?),
                None => None,
            },
            last: self.batch_key(attr::LAST)?,
            manifest_path: self.s(attr::MANIFEST_PATH)?.to_string(),
            file_count: self.n(attr::FILE_COUNT)?,
            total_bytes: self.n(attr::TOTAL_BYTES)?,
            execution_arn: self.opt_s(attr::EXECUTION_ARN)?.map(str::to_string),
            result,
            error: self.opt_s(attr::ERROR)?.map(str::to_string),
            created_at: self.time(attr::CREATED_AT)?,
            updated_at: self.time(attr::UPDATED_AT)?,
            ttl: self.n(attr::TTL)?,
        })
    }

    /// An open entry.
    pub fn open_manifest(&self) -> Result<OpenManifest, StoreError> {
        self.parsed(attr::SK, |sk| {
            let (created, id) = sk.split_once("Z#")?;
            Some(OpenManifest {
                id: ManifestId::parse(id)?,
                created_at: Timestamp::parse_rfc3339(&format!("{created}Z"))?,
            })
        })
    }

    /// A shard registry entry.
    pub fn shard(&self) -> Result<Shard, StoreError> {
        self.parsed(attr::SK, |sk| {
            let (date, number) = sk.split_once('#')?;
            (number.len() == 2).then_some(())?;
            Some(Shard {
                date: DatePrefix::parse(date)?,
                number: number.parse().ok()?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date() -> DatePrefix {
        DatePrefix::parse("2026-11-30").unwrap()
    }

    #[test]
    fn sizes_follow_dynamodb_rules() {
        let mut item = Item::new();
        item.insert("a".into(), Value::S("hello".into()));
        assert_eq!(size(&item), 6);
        item.insert("n".into(), Value::N("12345".into()));
        assert_eq!(size(&item), 6 + 1 + 4);
        item.insert("z".into(), Value::N("0".into()));
        assert_eq!(size(&item), 11 + 1 + 2);
        item.insert("l".into(), Value::L(vec![Value::S("ab".into())]));
        assert_eq!(size(&item), 14 + 1 + 3 + 1 + 2);
    }

    #[test]
    fn every_item_kind_reads_back() {
        let version = VersionRef {
            bucket: "in".into(),
            key: "2026/11/30/a.ndjson".into(),
            version: Version::Sequencer("00AB".into()),
        };
        let marker = Marker {
            version: version.clone(),
            batch: BatchKey::new(Timestamp(1)),
            date: date(),
            size: 10,
            etag: "e".into(),
            attempts: 2,
            last_error: Some("corrupt".into()),
            superseded: None,
            ttl: 99,
        };
        let item = marker_item(&marker);
        assert_eq!(Reader::new("t", &item).marker(&version).unwrap(), marker);

        let shard = Shard {
            date: date(),
            number: 3,
        };
        let id = ManifestId::parse("m-1").unwrap();
        for contents in [
            BatchContents::Arrivals {
                bucket: "in".into(),
                refs: vec![Ref {
                    key: "a b#c".into(),
                    version: Version::Id("v1".into()),
                }],
                bytes: 12_345,
            },
            BatchContents::Retry {
                manifest: id.clone(),
            },
        ] {
            let batch = Batch {
                shard: shard.clone(),
                key: BatchKey::new(Timestamp(2)),
                contents,
                ttl: 5,
            };
            let item = batch_item(&batch);
            assert_eq!(Reader::new("t", &item).batch(&shard).unwrap(), batch);
        }

        let manifest = Manifest {
            id: id.clone(),
            shard: shard.clone(),
            state: ManifestState::Completed,
            after: None,
            last: BatchKey::new(Timestamp(3)),
            manifest_path: "s3://m/x.json".into(),
            file_count: 4,
            total_bytes: 40,
            execution_arn: Some("arn".into()),
            result: Some(ConversionResult {
                rows_written: 7,
                output_keys: vec!["o".into()],
                ..ConversionResult::default()
            }),
            error: None,
            created_at: Timestamp(1_000),
            updated_at: Timestamp(2_000),
            ttl: 6,
        };
        let item = manifest_item(&manifest);
        assert_eq!(Reader::new("t", &item).manifest().unwrap(), manifest);

        let open = open_item(&id, Timestamp(1_000));
        assert_eq!(
            Reader::new("t", &open).open_manifest().unwrap(),
            OpenManifest {
                id,
                created_at: Timestamp(1_000)
            }
        );
        let entry = shard_item(&shard, 1);
        assert_eq!(Reader::new("t", &entry).shard().unwrap(), shard);
    }

    #[test]
    fn refs_are_compressed_and_read_back() {
        let mut refs: Vec<Ref> = [
            "logs/2026/11/30/host-07/0001.ndjson.gz",
            "logs/2026/11/30/host-07/0002.ndjson.gz",
            "logs/2026/11/30/hôst-08/0001.ndjson.gz",
            "logs/2026/11/30/hôst-09/0001.ndjson.gz",
            "a",
            "",
            "ab",
        ]
        .iter()
        .map(|key| Ref {
            key: (*key).into(),
            version: Version::Id("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY".into()),
        })
        .collect();
        for n in 0..200 {
            refs.push(Ref {
                key: format!("logs/2026/11/30/host-{:02}/{n:08}.ndjson.gz", n % 7),
                version: Version::Sequencer(format!("00{:016X}", n * 7_919 + 13)),
            });
        }
        let encoded = encode_refs(&refs);
        assert_eq!(decode_refs(&encoded), Some(refs.clone()));
        let plain: usize = refs
            .iter()
            .map(|r| r.key.len() + r.version.encode().len())
            .sum();
        assert!(encoded.len() * 4 < plain, "{} vs {plain}", encoded.len());
        assert_eq!(decode_refs(&encode_refs(&[])), Some(vec![]));
        let garbage = [b"not deflate".to_vec(), encode_refs(&refs)[..10].to_vec()];
        for bad in garbage {
            assert_eq!(decode_refs(&bad), None);
        }
        let mut raw = Vec::new();
        put_varint(&mut raw, 3); // shares 3 bytes with no previous key
        put_varint(&mut raw, 0);
        put_varint(&mut raw, 1);
        raw.push(b'v');
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, &raw).unwrap();
        assert_eq!(decode_refs(&encoder.finish().unwrap()), None);
        // The per-thread inflater is reset after a failure: a good item still decodes.
        assert_eq!(decode_refs(&encoded), Some(refs.clone()));
    }

    #[test]
    fn refs_deflated_by_a_stream_encoder_still_decode() {
        // Items written before the per-thread compressor came from flate2's stream encoder:
        // the bytes (and so each item's billed size) are the same, they read back the same,
        // and a stream that inflates past the limit does not.
        let refs: Vec<Ref> = (0..500)
            .map(|n| Ref {
                key: format!("events/2026/12/02/part-{n:05}.ndjson"),
                version: Version::Id(format!("v{n:031}")),
            })
            .collect();
        let raw = deflate(&[]); // the same empty stream either way
        assert_eq!(inflate(&raw, 16), Some(vec![]));
        let plain = inflate(&encode_refs(&refs), 1 << 20).unwrap();
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut encoder, &plain).unwrap();
        let streamed = encoder.finish().unwrap();
        assert_eq!(encode_refs(&refs), streamed);
        assert_eq!(decode_refs(&streamed), Some(refs));
        assert_eq!(inflate(&streamed, plain.len()), Some(plain.clone()));
        assert_eq!(inflate(&streamed, plain.len() - 1), None);
        for cut in 0..streamed.len() {
            assert_eq!(inflate(&streamed[..cut], 1 << 20), None, "cut at {cut}");
        }
        let zeros = deflate(&vec![0; 3 << 20]);
        assert_eq!(inflate(&zeros, 1 << 20), None);
        assert_eq!(inflate(&zeros, 3 << 20).map(|z| z.len()), Some(3 << 20));
    }

    #[test]
    fn malformed_items_name_the_item_and_the_attribute() {
        let mut item = keyed(("M#m-1".into(), "M".into()));
        item.insert(attr::STATUS.into(), Value::S("exploded".into()));
        let error = Reader::new("ledger", &item).manifest().unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("ledger") && text.contains("M#m-1/M"),
            "{text}"
        );
        assert!(text.contains("date"), "{text}");
    }

    #[test]
    fn open_partitions_are_stable_and_in_range() {
        let id = ManifestId::parse("2026-11-30_20261130T000000000Z_0123456789abcdef").unwrap();
        assert_eq!(open_partition(&id), open_partition(&id.clone()));
        let spread: std::collections::BTreeSet<u8> = (0..200)
            .map(|n| open_partition(&ManifestId::parse(&format!("m-{n}")).unwrap()))
            .collect();
        assert_eq!(spread.len(), usize::from(OPEN_PARTITIONS));
    }
}
