//! Writes deterministic NDJSON test data: `gen-ndjson SHAPE BYTES [SEED] > file.ndjson`.
//!
//! SHAPE is clickstream, logs or wide; BYTES accepts K/M/G suffixes (powers of 1024).

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use ndjson_parquet_suite::datagen::{generate, Shape};

fn parse_bytes(text: &str) -> Option<u64> {
    let (digits, factor) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (text, 1),
        Some((i, _)) => (
            &text[..i],
            match text[i..]
                .to_ascii_uppercase()
                .trim_end_matches("IB")
                .trim_end_matches('B')
            {
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                _ => return None,
            },
        ),
    };
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: gen-ndjson clickstream|logs|wide BYTES [SEED]";
    let (Some(shape), Some(bytes)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let shape: Shape = match shape.parse() {
        Ok(shape) => shape,
        Err(e) => {
            eprintln!("error: {e}\n{usage}");
            return ExitCode::from(2);
        }
    };
    let Some(bytes) = parse_bytes(bytes) else {
        eprintln!("error: `{bytes}` is not a size\n{usage}");
        return ExitCode::from(2);
    };
    let seed = match args.get(2).map(|s| s.parse::<u64>()) {
        None => 1,
        Some(Ok(seed)) => seed,
        Some(Err(_)) => {
            eprintln!("error: the seed must be a number\n{usage}");
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    match generate(shape, seed, bytes, &mut out).and_then(|n| out.flush().map(|()| n)) {
        Ok(records) => {
            eprintln!("{records} records");
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
