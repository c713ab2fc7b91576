//! The decoding plan of a schema: per struct, its field names, a fast name lookup and the
//! Arrow fields; per column, what kind of builder it needs.
//!
//! A plan is built once per [`super::RecordDecoder`] and shared (behind `Arc`) by every chunk
//! and thread, so the per-chunk builders in [`super::columns`] stay cheap to create. Field-name
//! lookup is the decoder's hottest path, which is why it has its own hasher and key comparison.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use arrow::datatypes::{DataType, FieldRef, Fields};

use crate::schema::{fold_case, Field, FieldType, Schema, TimestampUnit};

/// FxHash: field-name lookups are a hot path and need no DoS resistance.
#[derive(Default)]
pub(super) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(super) type FxBuild = BuildHasherDefault<FxHasher>;

/// What a struct column needs to know about its fields, shared by all chunks.
#[derive(Debug)]
pub(super) struct StructPlan {
    pub(super) names: Vec<Box<str>>,
    index: HashMap<Box<str>, usize, FxBuild>,
    /// Case-folded names: a key spelled differently only in case is the same column (see
    /// [`crate::schema::fold_case`]). Looked at only when the exact spelling is unknown.
    folded: HashMap<Box<str>, usize, FxBuild>,
    pub(super) arrow_fields: Fields,
    pub(super) children: Vec<ColumnPlan>,
    /// The child (a map column) that takes every key no other field names: the top-level
    /// record's overflow column ([`Schema::overflow`]). Its own name is no key of the record.
    pub(super) overflow: Option<usize>,
}

#[derive(Debug)]
pub(super) enum ColumnPlan {
    Null,
    Boolean,
    Int64,
    Float64,
    Decimal(u8, u8),
    String,
    Timestamp(TimestampUnit, Arc<str>),
    Struct(Arc<StructPlan>),
    List(Box<ColumnPlan>, FieldRef),
    /// The value column's plan and the map's entries field (`key_value`).
    Map(Box<ColumnPlan>, FieldRef),
}

impl StructPlan {
    /// The plan of the top-level record of `schema`.
    pub(super) fn root(schema: &Schema) -> Self {
        let overflow = schema
            .overflow_index()
            .filter(|&i| matches!(schema.fields[i].field_type, FieldType::Map(_)));
        StructPlan::with_overflow(&schema.fields, overflow)
    }

    pub(super) fn new(fields: &[Field]) -> Self {
        StructPlan::with_overflow(fields, None)
    }

    fn with_overflow(fields: &[Field], overflow: Option<usize>) -> Self {
        let names: Vec<Box<str>> = fields.iter().map(|f| Box::from(f.name.as_str())).collect();
        let keys = || {
            names
                .iter()
                .enumerate()
                .filter(|&(i, _)| Some(i) != overflow)
        };
        let index = keys().map(|(i, n)| (n.clone(), i)).collect();
        let folded = keys()
            .map(|(i, n)| (Box::from(fold_case(n).as_ref()), i))
            .collect();
        let schema = Schema::new(fields.to_vec()).to_arrow();
        StructPlan {
            names,
            index,
            folded,
            arrow_fields: schema.fields().clone(),
            children: fields
                .iter()
                .map(|f| ColumnPlan::new(&f.field_type))
                .collect(),
            overflow,
        }
    }

    #[inline]
    pub(super) fn lookup(&self, key: &str, hint: usize) -> Option<usize> {
        match self.names.get(hint) {
            Some(name)
                if same_key(name.as_bytes(), key.as_bytes()) && Some(hint) != self.overflow =>
            {
                Some(hint)
            }
            _ => self
                .index
                .get(key)
                .or_else(|| self.folded.get(fold_case(key).as_ref()))
                .copied(),
        }
    }
}

/// Key equality without a `memcmp` call for the short keys JSON records are made of (the
/// call was 7% of a conversion).
#[inline]
fn same_key(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if (8..=16).contains(&n) {
        let word =
            |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
        return word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8);
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    a == b
}

impl ColumnPlan {
    fn new(field_type: &FieldType) -> Self {
        match field_type {
            FieldType::Null => ColumnPlan::Null,
            FieldType::Boolean => ColumnPlan::Boolean,
            FieldType::Int64 => ColumnPlan::Int64,
            FieldType::Float64 => ColumnPlan::Float64,
            FieldType::Decimal { precision, scale } => ColumnPlan::Decimal(*precision, *scale),
            FieldType::Number(facts) => ColumnPlan::new(&facts.resolve()),
            FieldType::String => ColumnPlan::String,
            FieldType::Timestamp { unit, timezone } => {
                ColumnPlan::Timestamp(*unit, Arc::clone(timezone))
            }
            FieldType::Struct(fields) => ColumnPlan::Struct(Arc::new(StructPlan::new(fields))),
            FieldType::List(items) => {
                let DataType::List(field) = field_type_to_arrow(field_type) else {
                    unreachable!("invariant: a list maps to an Arrow list")
                };
                ColumnPlan::List(Box::new(ColumnPlan::new(items)), field)
            }
            FieldType::Map(values) => {
                let DataType::Map(entries, _) = field_type_to_arrow(field_type) else {
                    unreachable!("invariant: a map maps to an Arrow map")
                };
                ColumnPlan::Map(Box::new(ColumnPlan::new(values)), entries)
            }
        }
    }
}

fn field_type_to_arrow(field_type: &FieldType) -> DataType {
    Schema::new(vec![Field::new("x", field_type.clone())])
        .to_arrow()
        .field(0)
        .data_type()
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_compare_like_slices() {
        let keys = [
            "",
            "a",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(same_key(a.as_bytes(), b.as_bytes()), a == b, "{a} {b}");
            }
            let mut changed = a.as_bytes().to_vec();
            if let Some(last) = changed.last_mut() {
                *last ^= 1;
                assert!(!same_key(a.as_bytes(), &changed));
                changed[0] ^= 2;
                assert!(!same_key(a.as_bytes(), &changed));
            }
        }
    }
}
