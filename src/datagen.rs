//! Deterministic NDJSON generators for benchmarks and large-input tests.
//!
//! The same seed always yields the same bytes, on every machine, so benchmark results and
//! peak-memory measurements can be compared across runs without committing data files.
//! Three shapes cover the cases that stress a converter differently:
//!
//! * [`Shape::Clickstream`]: nested objects, lists of structs, RFC 3339 timestamps, optional
//!   fields; the typical analytics event.
//! * [`Shape::Logs`]: text-heavy application logs (long messages, few columns).
//! * [`Shape::Wide`]: 150 numeric fields per row.

use std::fmt::Write as _;
use std::io::{self, Write};

/// What kind of records to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Nested analytics events.
    Clickstream,
    /// Text-heavy log lines.
    Logs,
    /// Many numeric columns.
    Wide,
}

impl std::str::FromStr for Shape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "clickstream" => Ok(Shape::Clickstream),
            "logs" => Ok(Shape::Logs),
            "wide" => Ok(Shape::Wide),
            other => Err(format!(
                "unknown shape `{other}` (clickstream, logs or wide)"
            )),
        }
    }
}

/// A small, fast, deterministic PRNG (xorshift64*); quality is irrelevant here, stability is.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is remapped, xorshift cannot leave it).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// One element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const PAGES: &[&str] = &[
    "/",
    "/search",
    "/product/1842",
    "/product/77",
    "/cart",
    "/checkout",
    "/account/orders",
    "/blog/2026/11/parquet-at-scale",
    "/help/shipping",
    "/de/über-uns",
];
const COUNTRIES: &[&str] = &["DE", "FR", "US", "GB", "JP", "BR", "IN", "ES", "IT", "NL"];
const DEVICES: &[&str] = &["mobile", "desktop", "tablet"];
const BROWSERS: &[&str] = &["Firefox 132", "Chrome 131", "Safari 18.1", "Edge 131"];
const EVENTS: &[&str] = &[
    "page_view",
    "click",
    "add_to_cart",
    "purchase",
    "scroll",
    "search",
];
const TAGS: &[&str] = &[
    "new",
    "sale",
    "returning",
    "ab:checkout-v2",
    "campaign:black-friday",
];
const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
const SERVICES: &[&str] = &["api-gateway", "orders", "payments", "search", "inventory"];
const WORDS: &[&str] = &[
    "request",
    "completed",
    "user",
    "order",
    "failed",
    "retrying",
    "connection",
    "timeout",
    "cache",
    "miss",
    "upstream",
    "returned",
    "status",
    "latency",
    "exceeded",
    "threshold",
    "payload",
    "validated",
    "queue",
    "depth",
    "worker",
    "started",
    "shutdown",
    "gracefully",
];

/// Seconds since the epoch of 2026-11-01T00:00:00Z, the start of generated time.
const BASE_EPOCH: i64 = 1_793_491_200;

fn push_timestamp(out: &mut String, micros_since_base: i64) {
    let total = BASE_EPOCH * 1_000_000 + micros_since_base;
    let secs = total.div_euclid(1_000_000);
    let micros = total.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Appends record number `index` of `shape` (one line, with its newline) to `out`.
pub fn write_record(shape: Shape, rng: &mut Rng, index: u64, out: &mut String) {
    match shape {
        Shape::Clickstream => clickstream(rng, index, out),
        Shape::Logs => logs(rng, index, out),
        Shape::Wide => wide(rng, index, out),
    }
    out.push('\n');
}

fn clickstream(rng: &mut Rng, index: u64, out: &mut String) {
    let _ = write!(out, "{{\"event_id\":\"e-{index:012}\",\"ts\":\"");
    push_timestamp(out, index as i64 * 3_000 + rng.below(3_000) as i64);
    let _ = write!(
        out,
        "\",\"event\":\"{}\",\"session\":\"s-{:016x}\",\"user\":{{\"id\":{},\"country\":\"{}\",\"premium\":{},\"segments\":[",
        rng.pick(EVENTS),
        rng.next_u64(),
        rng.below(5_000_000_000),
        rng.pick(COUNTRIES),
        rng.chance(12)
    );
    for i in 0..rng.below(3) {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}", rng.below(40));
    }
    let _ = write!(
        out,
        "]}},\"page\":{{\"path\":\"{}\",\"title\":\"Page {}\",\"load_ms\":{}}},\"device\":{{\"type\":\"{}\",\"browser\":\"{}\",\"screen\":{{\"w\":{},\"h\":{}}}}},\"scroll_depth\":{:.3},\"tags\":[",
        rng.pick(PAGES),
        rng.below(500),
        rng.below(4_000),
        rng.pick(DEVICES),
        rng.pick(BROWSERS),
        320 + rng.below(2_240),
        480 + rng.below(1_000),
        rng.unit()
    );
    for i in 0..rng.below(4) {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{}\"", rng.pick(TAGS));
    }
    out.push_str("],\"items\":[");
    for i in 0..rng.below(4) {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"sku\":\"SKU-{:06}\",\"qty\":{},\"price\":{:.2}}}",
            rng.below(200_000),
            1 + rng.below(5),
            1.0 + rng.unit() * 499.0
        );
    }
    out.push(']');
    if rng.chance(30) {
        let _ = write!(
            out,
            ",\"referrer\":\"https://search.example.com/?q=item+{}\"",
            rng.below(10_000)
        );
    }
    if rng.chance(5) {
        out.push_str(",\"consent\":{}");
    }
    out.push('}');
}

fn logs(rng: &mut Rng, index: u64, out: &mut String) {
    out.push_str("{\"ts\":\"");
    push_timestamp(out, index as i64 * 700 + rng.below(700) as i64);
    let _ = write!(
        out,
        "\",\"level\":\"{}\",\"service\":\"{}\",\"host\":\"ip-10-0-{}-{}\",\"trace_id\":\"{:016x}{:016x}\",\"message\":\"",
        rng.pick(LEVELS),
        rng.pick(SERVICES),
        rng.below(256),
        rng.below(256),
        rng.next_u64(),
        rng.next_u64()
    );
    let words = 12 + rng.below(40);
    for i in 0..words {
        if i > 0 {
            out.push(' ');
        }
        let word: &&str = rng.pick(WORDS);
        out.push_str(word);
        if rng.chance(10) {
            let _ = write!(out, " id={}", rng.below(1_000_000));
        }
    }
    let _ = write!(
        out,
        "\",\"status\":{},\"latency_ms\":{:.1}",
        200 + 100 * rng.below(4),
        rng.unit() * 2_000.0
    );
    if rng.chance(8) {
        let _ = write!(
            out,
            ",\"error\":{{\"type\":\"TimeoutError\",\"stack\":\"at handler (src/{}.rs:{}:{})\\n  at main\"}}",
            rng.pick(SERVICES),
            rng.below(900),
            rng.below(80)
        );
    }
    out.push('}');
}

fn wide(rng: &mut Rng, index: u64, out: &mut String) {
    let _ = write!(out, "{{\"row\":{index}");
    for field in 0..150 {
        if field % 3 == 0 {
            let _ = write!(out, ",\"m{field:03}\":{}", rng.below(1_000_000));
        } else {
            let _ = write!(out, ",\"m{field:03}\":{:.4}", rng.unit() * 10_000.0);
        }
    }
    out.push('}');
}

/// Writes records of `shape` to `out` until at least `target_bytes` have been written.
/// Returns the number of records.
pub fn generate(
    shape: Shape,
    seed: u64,
    target_bytes: u64,
    out: &mut impl Write,
) -> io::Result<u64> {
    let mut rng = Rng::new(seed);
    let mut buf = String::with_capacity(1 << 20);
    let mut written = 0u64;
    let mut index = 0u64;
    while written < target_bytes {
        buf.clear();
        while buf.len() < (1 << 20) - 8192 && written + (buf.len() as u64) < target_bytes {
            write_record(shape, &mut rng, index, &mut buf);
            index += 1;
        }
        out.write_all(buf.as_bytes())?;
        written += buf.len() as u64;
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_deterministic_valid_json() {
        for shape in [Shape::Clickstream, Shape::Logs, Shape::Wide] {
            let mut a = Vec::new();
            let mut b = Vec::new();
            let n = generate(shape, 42, 200_000, &mut a).unwrap();
            generate(shape, 42, 200_000, &mut b).unwrap();
            assert_eq!(a, b);
            let lines: Vec<&[u8]> = a.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
            assert_eq!(lines.len() as u64, n);
            for line in lines {
                let value: serde_json::Value = serde_json::from_slice(line).unwrap();
                assert!(value.is_object());
            }
        }
    }

    #[test]
    fn timestamps_are_valid_dates() {
        let mut s = String::new();
        push_timestamp(&mut s, 0);
        assert_eq!(s, "2026-11-01T00:00:00.000000Z");
        s.clear();
        push_timestamp(&mut s, 86_400_000_000 * 60 + 1);
        assert_eq!(s, "2026-12-31T00:00:00.000001Z");
    }
}
