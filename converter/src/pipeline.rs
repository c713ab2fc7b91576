//! The ordered, parallel chunk pipeline shared by inference and conversion.
//!
//! ```text
//!  reader thread ──pieces──▶ N worker threads ──results──▶ caller's thread (in order)
//!      ▲                                                        │
//!      └──────────────── in-flight permits ◀─────────────────────┘
//! ```
//!
//! The reader opens the sources one after another, decompresses and cuts them into
//! newline-aligned pieces; workers process pieces in any order; the caller's sink sees the
//! results strictly in input order. A fixed number of permits bounds the pieces in flight, so
//! memory is `permits × (chunk + its decoded form)` whatever the input size.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{bounded, unbounded};

use crate::chunk::{Chunker, Piece};
use crate::input::{decompressed, Source};

/// Whether the sink wants more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// A source that could not be opened or read.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    Open {
        source: usize,
        error: io::Error,
    },
    Read {
        source: usize,
        offset: u64,
        error: io::Error,
    },
}

/// How the pipeline reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadSettings {
    pub threads: usize,
    pub chunk_bytes: usize,
    pub max_line_bytes: usize,
}

/// Runs `process` over every piece of `sources[first..]` and feeds the results, in order, to
/// `sink`. Read failures reach the sink in order too, as `Err`.
pub(crate) fn run_ordered<O, E, P, S>(
    sources: &[Arc<dyn Source>],
    first: usize,
    settings: ReadSettings,
    raw_bytes: &Arc<AtomicU64>,
    process: P,
    mut sink: S,
) -> Result<(), E>
where
    O: Send,
    P: Fn(&Piece) -> O + Sync,
    S: FnMut(Result<O, ReadFailure>) -> Result<Flow, E>,
{
    // Chunk buffers go back to the reader once decoded.
    let (recycle, pool) = bounded::<Vec<u8>>(settings.threads * 2 + 4);
    if settings.threads <= 1 {
        let mut failure = None;
        read_pieces(
            sources,
            first,
            settings,
            raw_bytes,
            &AtomicBool::new(false),
            &pool,
            |item| {
                let output = item.map(|piece| {
                    let output = process(&piece);
                    give_back(&recycle, piece);
                    output
                });
                match sink(output) {
                    Ok(Flow::Continue) => true,
                    Ok(Flow::Stop) => false,
                    Err(e) => {
                        failure = Some(e);
                        false
                    }
                }
            },
        );
        return failure.map_or(Ok(()), Err);
    }

    let permits = settings.threads * 2 + 2;
    let (permit_tx, permit_rx) = bounded::<()>(permits);
    for _ in 0..permits {
        permit_tx
            .send(())
            .expect("invariant: the permit channel has room for every permit");
    }
    let (work_tx, work_rx) = bounded::<(u64, Piece)>(permits);
    let (result_tx, result_rx) = unbounded::<(u64, Result<O, ReadFailure>)>();
    let cancelled = AtomicBool::new(false);

    std::thread::scope(|scope| {
        let reader_results = result_tx.clone();
        let cancelled_ref = &cancelled;
        let pool = &pool;
        scope.spawn(move || {
            let mut seq = 0u64;
            read_pieces(
                sources,
                first,
                settings,
                raw_bytes,
                cancelled_ref,
                pool,
                |item| {
                    if permit_rx.recv().is_err() {
                        return false;
                    }
                    let sent = match item {
                        Ok(piece) => work_tx.send((seq, piece)).is_ok(),
                        Err(failure) => reader_results.send((seq, Err(failure))).is_ok(),
                    };
                    seq += 1;
                    sent
                },
            );
        });
        for _ in 0..settings.threads {
            let work_rx = work_rx.clone();
            let result_tx = result_tx.clone();
            let process = &process;
            let recycle = recycle.clone();
            scope.spawn(move || {
                for (seq, piece) in work_rx {
                    let output = process(&piece);
                    give_back(&recycle, piece);
                    if result_tx.send((seq, Ok(output))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(result_tx);
        drop(work_rx);

        let mut pending = BTreeMap::new();
        let mut next = 0u64;
        let mut outcome = Ok(());
        'receive: for (seq, item) in &result_rx {
            pending.insert(seq, item);
            while let Some(item) = pending.remove(&next) {
                next += 1;
                match sink(item) {
                    Ok(Flow::Continue) => {
                        let _ = permit_tx.send(());
                    }
                    Ok(Flow::Stop) => break 'receive,
                    Err(e) => {
                        outcome = Err(e);
                        break 'receive;
                    }
                }
            }
        }
        // Unblock and stop every thread: no more permits, no more receivers.
        cancelled.store(true, Ordering::Relaxed);
        drop(permit_tx);
        drop(result_rx);
        outcome
    })
}

/// Returns a decoded chunk's buffer to the pool (dropped if the pool is full).
fn give_back(recycle: &crossbeam_channel::Sender<Vec<u8>>, piece: Piece) {
    if let Piece::Lines(chunk) = piece {
        let _ = recycle.try_send(chunk.data);
    }
}

/// Reads pieces of every source from `first` on and hands them to `emit` until it returns
/// false, a read fails, or `cancelled` is set.
fn read_pieces(
    sources: &[Arc<dyn Source>],
    first: usize,
    settings: ReadSettings,
    raw_bytes: &Arc<AtomicU64>,
    cancelled: &AtomicBool,
    pool: &crossbeam_channel::Receiver<Vec<u8>>,
    mut emit: impl FnMut(Result<Piece, ReadFailure>) -> bool,
) {
    for (index, source) in sources.iter().enumerate().skip(first) {
        let reader = source
            .open()
            .and_then(|raw| decompressed(raw, Arc::clone(raw_bytes)));
        let reader = match reader {
            Ok((_, reader)) => reader,
            Err(error) => {
                emit(Err(ReadFailure::Open {
                    source: index,
                    error,
                }));
                return;
            }
        };
        let mut chunker =
            Chunker::new(reader, index, settings.chunk_bytes, settings.max_line_bytes)
                .with_pool(pool.clone());
        loop {
            if cancelled.load(Ordering::Relaxed) {
                return;
            }
            let offset = chunker.position();
            match chunker.next() {
                None => break,
                Some(Ok(piece)) => {
                    if !emit(Ok(piece)) {
                        return;
                    }
                }
                Some(Err(error)) => {
                    emit(Err(ReadFailure::Read {
                        source: index,
                        offset,
                        error,
                    }));
                    return;
                }
            }
        }
    }
}
