//! Replays the fuzz targets' checked-in corpora (`fuzz/corpus/convert`, `fuzz/corpus/decode`)
//! through the same invariants the fuzzers check (`tests/invariants`), so every case a fuzzing
//! run found stays fixed in an ordinary `cargo test`.

mod common;
mod invariants;

use std::path::Path;

fn replay(target: &str, check: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut broken = Vec::new();
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus is checked in") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            broken.push(path.display().to_string());
        }
        cases += 1;
    }
    assert!(
        cases >= 20,
        "only {cases} corpus cases in {}",
        dir.display()
    );
    assert!(
        broken.is_empty(),
        "cases that break an invariant: {broken:#?}"
    );
}

#[test]
fn every_convert_corpus_case_keeps_the_invariants() {
    replay("convert", |data| {
        invariants::check(&invariants::Case::from_bytes(data))
    });
}

#[test]
fn every_decode_corpus_case_keeps_the_invariants() {
    replay("decode", invariants::check_decoder);
}
