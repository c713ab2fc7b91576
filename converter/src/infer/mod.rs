//! Schema inference, one line at a time, without building a JSON tree.
//!
//! Inference is on the hot path of every conversion, so the common case costs a single parse:
//! a line is first checked against the schema so far (`fits`); only a line that needs the
//! schema to widen is validated in full (syntax, top-level object, no duplicate keys) and then
//! merged. A line that is not a valid record therefore never widens the schema, and the check
//! is exactly the one the decoder uses to decide that a sampled schema was wrong
//! ([`crate::decode`]), so inference and decoding always agree.
//!
//! Record validation, which inference shares with the decoder, is in [`crate::validate`]
//! (re-exported here); inference over whole sources, which conversion runs before and between
//! its attempts, is in this module's `driver`.

mod driver;

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

pub use crate::validate::{validate_record, InvalidRecord};
pub use driver::{infer_schema, Inferred};
pub(crate) use driver::{sample_schema, widen_schema};

use serde_json::value::RawValue;

use std::collections::{HashMap, HashSet};

use crate::schema::{
    fold_case, Field, FieldType, NumberFacts, Schema, TimestampUnit, MAP_KEY_THRESHOLD,
    MAX_NAME_BYTES, OVERFLOW_RARITY,
};
use crate::timestamp::{looks_like_timestamp, parse_timestamp};

/// What inferring one line did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineInference {
    /// The line is a record that the schema already describes.
    Fits,
    /// The line is a record and the schema was widened to describe it.
    Widened,
    /// The line is not a valid record; the schema is unchanged.
    Invalid,
}

/// Accumulates the schema of a stream of lines.
#[derive(Debug, Clone)]
pub struct Inference {
    root: Node,
    unit: TimestampUnit,
    records: u64,
    /// An object below the root with more distinct keys than this becomes a map; a root with
    /// more gets an overflow column for its rare keys.
    map_threshold: usize,
    /// The root's overflow column, once a schema has one: every top-level key the root's
    /// fields do not name goes into it (see [`Schema::overflow`]).
    overflow: Option<Overflow>,
    /// Scratch for `fits`: the root fields one line holds.
    present: Vec<usize>,
}

/// A root overflow column: its name, and what every value of every key in it was.
#[derive(Debug, Clone)]
struct Overflow {
    name: String,
    values: Node,
}

/// The schema being inferred: [`FieldType`] with, per struct, an index of its field names
/// (records with thousands of keys are looked up in constant time) and the case variants
/// of each name.
#[derive(Debug, Clone)]
enum Node {
    /// Any type but a struct or a list (numbers as [`FieldType::Number`] facts).
    Leaf(FieldType),
    Struct(StructNode),
    List(Box<Node>),
    /// An object whose keys are data: one node holds what every value of every key was.
    Map(Box<Node>),
}

/// The fields of an object, in the order they were first seen.
///
/// Names are unique case-insensitively ([`fold_case`]): the first spelling seen in input
/// order owns the column, later spellings that differ only in case are mapped onto it (and
/// widen its type as any value does). Partial inferences are merged in input order, so
/// "first" does not depend on chunking or threads.
#[derive(Debug, Clone, Default)]
struct StructNode {
    fields: Vec<NodeField>,
    /// Every spelling seen (owners and case variants) to its field.
    spellings: HashMap<Box<str>, usize>,
    /// Case-folded names to their field.
    folded: HashMap<Box<str>, usize>,
}

#[derive(Debug, Clone)]
struct NodeField {
    name: String,
    node: Node,
    /// Other spellings of `name` seen (differing only in case), in order.
    variants: Vec<String>,
    /// Records that held the field (counted for the root's fields only, which is where an
    /// overflow column is decided).
    present: u64,
}

impl Node {
    fn from_type(field_type: FieldType) -> Node {
        match to_facts(field_type) {
            FieldType::Struct(fields) => {
                let mut node = StructNode::default();
                for field in fields {
                    let index = node.slot(&field.name);
                    // A given schema is rebuilt as it is: its structs do not collapse here.
                    node.fields[index]
                        .node
                        .merge(&Node::from_type(field.field_type), usize::MAX);
                }
                Node::Struct(node)
            }
            FieldType::List(items) => Node::List(Box::new(Node::from_type(*items))),
            FieldType::Map(values) => Node::Map(Box::new(Node::from_type(*values))),
            leaf => Node::Leaf(leaf),
        }
    }

    /// The type of this node; `resolve` turns number facts into their types.
    fn to_type(&self, resolve: bool) -> FieldType {
        match self {
            Node::Leaf(t) if resolve => t.resolved(),
            Node::Leaf(t) => t.clone(),
            Node::Struct(s) => FieldType::Struct(
                s.fields
                    .iter()
                    .map(|f| Field::new(f.name.clone(), f.node.to_type(resolve)))
                    .collect(),
            ),
            Node::List(items) => FieldType::List(Box::new(items.to_type(resolve))),
            Node::Map(values) => FieldType::Map(Box::new(values.to_type(resolve))),
        }
    }

    /// Widens `self` to hold every value of `other` (as [`FieldType::merge`]); a struct that
    /// ends up with more than `map_threshold` fields becomes a map. Never called on the root
    /// (see [`Inference::merge`]), which stays a struct.
    fn merge(&mut self, other: &Node, map_threshold: usize) {
        match (&mut *self, other) {
            (_, Node::Leaf(FieldType::Null)) => {}
            (Node::Leaf(FieldType::Null), _) => *self = other.clone(),
            (Node::Struct(mine), Node::Struct(theirs)) => {
                mine.merge(theirs, map_threshold);
                self.collapse_if_wide(map_threshold);
            }
            (Node::List(mine), Node::List(theirs)) => mine.merge(theirs, map_threshold),
            (Node::Map(mine), Node::Map(theirs)) => mine.merge(theirs, map_threshold),
            (Node::Map(mine), Node::Struct(theirs)) => {
                for field in &theirs.fields {
                    mine.merge(&field.node, map_threshold);
                }
            }
            (Node::Struct(_), Node::Map(theirs)) => {
                // Input order: this struct's values came first.
                self.collapse(map_threshold);
                if let Node::Map(mine) = self {
                    mine.merge(theirs, map_threshold);
                }
            }
            (Node::Leaf(mine), Node::Leaf(theirs)) => mine.merge(theirs),
            _ => *self = Node::Leaf(FieldType::String),
        }
    }

    /// Turns a struct of more than `map_threshold` fields into a map.
    fn collapse_if_wide(&mut self, map_threshold: usize) {
        if matches!(self, Node::Struct(s) if s.fields.len() > map_threshold) {
            self.collapse(map_threshold);
        }
    }

    /// Turns a struct into a map whose value holds every field's values (in field order, so
    /// that a struct among the values keeps its fields in input order). Frees the fields:
    /// from here on, the object costs one value node however many keys it has.
    fn collapse(&mut self, map_threshold: usize) {
        let Node::Struct(node) = std::mem::replace(self, Node::Leaf(FieldType::Null)) else {
            unreachable!("invariant: only structs collapse into maps")
        };
        let mut values = Node::Leaf(FieldType::Null);
        for field in &node.fields {
            values.merge(&field.node, map_threshold);
        }
        *self = Node::Map(Box::new(values));
    }

    fn case_variants(&self) -> u64 {
        match self {
            Node::Leaf(_) => 0,
            Node::Struct(s) => s
                .fields
                .iter()
                .map(|f| f.variants.len() as u64 + f.node.case_variants())
                .sum(),
            Node::List(items) | Node::Map(items) => items.case_variants(),
        }
    }
}

impl StructNode {
    /// The field spelled exactly `name` (the owner's or a known variant's spelling).
    #[inline]
    fn exact(&self, name: &str, hint: usize) -> Option<usize> {
        match self.fields.get(hint) {
            Some(f) if f.name == name => Some(hint),
            _ => self.spellings.get(name).copied(),
        }
    }

    /// Whether `name` is a field's, in this or another letter case.
    fn names(&self, name: &str) -> bool {
        self.exact(name, 0).is_some() || self.folded.contains_key(fold_case(name).as_ref())
    }

    /// The field `name` maps onto, added (as null) if no name so far folds to the same text.
    fn slot(&mut self, name: &str) -> usize {
        if let Some(index) = self.exact(name, 0) {
            return index;
        }
        let folded = fold_case(name);
        let index = match self.folded.get(folded.as_ref()) {
            Some(&index) => {
                self.fields[index].variants.push(name.to_string());
                index
            }
            None => {
                let index = self.fields.len();
                self.folded.insert(Box::from(folded.as_ref()), index);
                self.fields.push(NodeField {
                    name: name.to_string(),
                    node: Node::Leaf(FieldType::Null),
                    variants: Vec::new(),
                    present: 0,
                });
                index
            }
        };
        self.spellings.insert(Box::from(name), index);
        index
    }

    /// Merges `other`'s fields into this struct's. The caller decides whether the result is
    /// wide enough to become a map (the root never is).
    fn merge(&mut self, other: &StructNode, map_threshold: usize) {
        for field in &other.fields {
            let index = self.slot(&field.name);
            for variant in &field.variants {
                self.slot(variant);
            }
            self.fields[index].present += field.present;
            self.fields[index].node.merge(&field.node, map_threshold);
        }
    }
}

impl Inference {
    /// Starts with no fields; strings that are timestamps get `unit`.
    pub fn new(unit: TimestampUnit) -> Self {
        Self::from_schema(Schema::default(), unit)
    }

    /// Starts from an existing schema (widening continues from it). An overflow column stays
    /// one: keys its other fields do not name go on into it.
    pub fn from_schema(schema: Schema, unit: TimestampUnit) -> Self {
        let overflow_index = schema.overflow_index();
        let mut fields = schema.fields;
        let overflow = overflow_index.map(|index| {
            let field = fields.remove(index);
            let FieldType::Map(values) = field.field_type else {
                unreachable!("invariant: a schema's overflow field is a map (checked when read)")
            };
            Overflow {
                name: field.name,
                values: Node::from_type(*values),
            }
        });
        Inference {
            root: Node::from_type(FieldType::Struct(fields)),
            unit,
            records: 0,
            map_threshold: MAP_KEY_THRESHOLD,
            overflow,
            present: Vec::new(),
        }
    }

    /// Infers an object (below the top-level record) with more than `keys` distinct keys as a
    /// map rather than a struct. Default: [`MAP_KEY_THRESHOLD`].
    pub fn with_map_threshold(mut self, keys: usize) -> Self {
        self.map_threshold = keys;
        self
    }

    /// Number of lines that were valid records.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Infers one line (without its newline). Blank lines must be filtered by the caller.
    pub fn add_line(&mut self, line: &[u8]) -> LineInference {
        let Ok(text) = std::str::from_utf8(line) else {
            return LineInference::Invalid;
        };
        // A record is an object. `null` fits any column, so without this a line of `null`
        // would count as a record here while the decoder rejects it (found by fuzzing).
        if !text
            .trim_start_matches([' ', '\t', '\r', '\n'])
            .starts_with('{')
        {
            return LineInference::Invalid;
        }
        self.present.clear();
        let overflow = self.overflow.as_ref().map(|o| &o.values);
        let root = RootFits {
            overflow,
            present: &mut self.present,
        };
        match fits(text, &self.root, root, self.unit) {
            // The fast check skips the contents of string columns, so it does not see an
            // invalid `\u` escape (a lone surrogate) there: such lines get the full check.
            Ok(true) if text.contains("\\u") && validate_record(text).is_err() => {
                LineInference::Invalid
            }
            Ok(true) => {
                if let Node::Struct(root) = &mut self.root {
                    for &index in &self.present {
                        root.fields[index].present += 1;
                    }
                }
                self.records += 1;
                LineInference::Fits
            }
            Err(_) => LineInference::Invalid,
            Ok(false) => {
                if validate_record(text).is_err() {
                    return LineInference::Invalid;
                }
                let mut de = serde_json::Deserializer::from_str(text);
                let merged = MergeSeed {
                    target: &mut self.root,
                    unit: self.unit,
                    map_threshold: self.map_threshold,
                    root: Some(self.overflow.as_mut().map(|o| &mut o.values)),
                }
                .deserialize(&mut de);
                debug_assert!(merged.is_ok(), "a validated line merges");
                self.records += 1;
                LineInference::Widened
            }
        }
    }

    /// Merges what another inference has seen. Merge inferences in input order: a field's
    /// name is its first spelling in that order (see [`Inference::case_variants`]).
    pub fn merge(&mut self, other: &Inference) {
        // The root stays a struct however many keys it has (it is bounded by the column cap).
        match (&mut self.root, &other.root) {
            (Node::Struct(mine), Node::Struct(theirs)) => mine.merge(theirs, self.map_threshold),
            _ => unreachable!("invariant: the root of an inference is a struct"),
        }
        match (&mut self.overflow, &other.overflow) {
            (Some(mine), Some(theirs)) => mine.values.merge(&theirs.values, self.map_threshold),
            (mine @ None, Some(theirs)) => *mine = Some(theirs.clone()),
            (_, None) => {}
        }
        self.records += other.records;
    }

    /// The schema inferred so far (number columns resolved to their types).
    ///
    /// A root of more than the map threshold's distinct keys keeps as columns the keys
    /// present in at least one record in [`OVERFLOW_RARITY`] (and in more than one record);
    /// the rest share one overflow map column. Such keys are data (ids, dates, user-chosen names): as columns, every
    /// record would take a slot in each of thousands of them, in memory and in the writer.
    pub fn schema(&self) -> Schema {
        self.build_schema(true)
    }

    fn build_schema(&self, resolve: bool) -> Schema {
        let Node::Struct(root) = &self.root else {
            unreachable!("invariant: the root of an inference is a struct")
        };
        let column = |f: &NodeField| Field::new(f.name.clone(), f.node.to_type(resolve));
        if let Some(overflow) = &self.overflow {
            let fields = root.fields.iter().map(column).collect();
            return Schema::with_overflow(
                fields,
                overflow.name.clone(),
                overflow.values.to_type(resolve),
            );
        }
        if root.fields.len() <= self.map_threshold {
            return Schema::new(root.fields.iter().map(column).collect());
        }
        // A key held by a single record is no column however few the records are.
        let frequent = |f: &&NodeField| {
            f.present >= 2 && f.present.saturating_mul(OVERFLOW_RARITY) >= self.records
        };
        let rare: Vec<&NodeField> = root.fields.iter().filter(|f| !frequent(f)).collect();
        if rare.is_empty() {
            return Schema::new(root.fields.iter().map(column).collect());
        }
        let fields: Vec<Field> = root.fields.iter().filter(frequent).map(column).collect();
        let mut values = Node::Leaf(FieldType::Null);
        for field in rare {
            values.merge(&field.node, self.map_threshold);
        }
        let name = Schema::overflow_name(&fields);
        Schema::with_overflow(fields, name, values.to_type(resolve))
    }

    /// The number columns that had to widen to keep every value exact (for the summary).
    pub fn widenings(&self) -> Widenings {
        let mut widenings = Widenings::default();
        for field in self.build_schema(false).fields {
            Widenings::count(&field.field_type, &mut widenings);
        }
        widenings
    }

    /// Keys that were mapped onto a column of another spelling because their names differ
    /// only in case (`Id` onto `id`, seen first): distinct spellings at any depth, beyond
    /// each column's own. The decoder reads every spelling into that column; a record holding
    /// two spellings of one name in one object is rejected as a duplicate key.
    pub fn case_variants(&self) -> u64 {
        self.root.case_variants()
            + self
                .overflow
                .as_ref()
                .map_or(0, |o| o.values.case_variants())
    }

    /// Consumes the inference, returning its schema.
    pub fn into_schema(self) -> Schema {
        self.schema()
    }
}

/// Number columns whose values forced a type wider than int64/float64, so that every value
/// is kept exactly (see the widening rules in [`crate::schema`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Widenings {
    /// Number columns written as `decimal(38, s)` (integers beyond int64, or beyond ±2^53
    /// beside fractions).
    pub to_decimal: u64,
    /// Number columns written as their exact JSON text (values beyond 38 digits).
    pub to_text: u64,
}

impl Widenings {
    /// Counts the number columns of `field_type` (at any depth) that were widened.
    fn count(field_type: &FieldType, into: &mut Widenings) {
        match field_type {
            FieldType::Number(facts) => match facts.resolve() {
                FieldType::Decimal { .. } => into.to_decimal += 1,
                FieldType::String => into.to_text += 1,
                _ => {}
            },
            FieldType::Struct(fields) => {
                for f in fields {
                    Widenings::count(&f.field_type, into);
                }
            }
            FieldType::List(items) | FieldType::Map(items) => Widenings::count(items, into),
            _ => {}
        }
    }

    /// Total of widened columns.
    pub fn total(&self) -> u64 {
        self.to_decimal + self.to_text
    }
}

/// Replaces every number type by the facts it implies, so that widening goes on by facts.
fn to_facts(field_type: FieldType) -> FieldType {
    match field_type {
        t if t.is_numeric() => FieldType::Number(NumberFacts::of(&t)),
        FieldType::Struct(fields) => FieldType::Struct(
            fields
                .into_iter()
                .map(|f| Field::new(f.name, to_facts(f.field_type)))
                .collect(),
        ),
        FieldType::List(items) => FieldType::List(Box::new(to_facts(*items))),
        FieldType::Map(values) => FieldType::Map(Box::new(to_facts(*values))),
        other => other,
    }
}

/// The exact text of a number value (`None` for any other value), read without converting it:
/// serde_json would turn `-0` and integers beyond 64 bits into floats.
fn raw_number(raw: &RawValue) -> Option<NumberFacts> {
    let text = raw.get();
    matches!(text.as_bytes().first(), Some(b'-' | b'0'..=b'9')).then(|| NumberFacts::of_text(text))
}

/// Whether the value in `text` (one record) is already described by `root`.
/// `Err` means the text is not valid JSON (or not a single value).
fn fits(
    text: &str,
    root: &Node,
    root_fits: RootFits<'_>,
    unit: TimestampUnit,
) -> Result<bool, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut misfit = false;
    let result = FitsSeed {
        expected: root,
        unit,
        misfit: &mut misfit,
        root: Some(root_fits),
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match result {
        Ok(()) => Ok(true),
        Err(_) if misfit => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether a string value is a timestamp of `unit` (as inference types it).
#[inline]
pub(crate) fn string_type(s: &str, unit: TimestampUnit) -> FieldType {
    if looks_like_timestamp(s) && parse_timestamp(s, unit).is_ok() {
        FieldType::utc_timestamp(unit)
    } else {
        FieldType::String
    }
}

struct FitsSeed<'a> {
    expected: &'a Node,
    unit: TimestampUnit,
    misfit: &'a mut bool,
    /// Set for the top-level record only.
    root: Option<RootFits<'a>>,
}

/// What checking the top-level record needs beyond its fields.
struct RootFits<'a> {
    /// The overflow column's values, which take any key the fields do not name.
    overflow: Option<&'a Node>,
    /// The fields the record holds (to count their presence, and to see a repeated key when
    /// keys come in another order than the schema's).
    present: &'a mut Vec<usize>,
}

impl<'a> FitsSeed<'a> {
    fn fail<E: de::Error>(self) -> Result<(), E> {
        *self.misfit = true;
        Err(E::custom("value does not fit the schema"))
    }

    fn check<E: de::Error>(self, ok: bool) -> Result<(), E> {
        if ok {
            Ok(())
        } else {
            self.fail()
        }
    }
}

impl<'de> DeserializeSeed<'de> for FitsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.expected {
            Node::Leaf(FieldType::String) => {
                // A string column holds any value (as its JSON text).
                IgnoredAny::deserialize(deserializer)?;
                Ok(())
            }
            Node::Leaf(FieldType::Number(facts)) => {
                let raw = <&RawValue>::deserialize(deserializer)?;
                let fits = raw.get() == "null" || raw_number(raw).is_some_and(|n| facts.covers(&n));
                self.check(fits)
            }
            _ => deserializer.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for FitsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        let ok = matches!(self.expected, Node::Leaf(FieldType::Boolean));
        self.check(ok)
    }

    // Numbers fit only a number column, which reads them as raw text (above).
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.fail()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.fail()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.fail()
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        let ok = match self.expected {
            Node::Leaf(FieldType::Timestamp { unit, .. }) => {
                *unit == self.unit && string_type(s, self.unit) != FieldType::String
            }
            _ => false,
        };
        self.check(ok)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Node::List(items) = self.expected else {
            return self.fail();
        };
        while seq
            .next_element_seed(FitsSeed {
                expected: items,
                unit: self.unit,
                misfit: &mut *self.misfit,
                root: None,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if let Node::Map(values) = self.expected {
            // Keys are data: any key fits, but a repeated one (or one too long to be a name)
            // makes the line invalid, which only the full check reports.
            let mut keys: HashSet<String> = HashSet::new();
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key.len() > MAX_NAME_BYTES || !keys.insert(fold_case(&key).into_owned()) {
                    return self.fail();
                }
                map.next_value_seed(FitsSeed {
                    expected: values,
                    unit: self.unit,
                    misfit: &mut *self.misfit,
                    root: None,
                })?;
            }
            return Ok(());
        }
        let Node::Struct(node) = self.expected else {
            return self.fail();
        };
        if let Some(root) = self.root {
            return fits_root(node, root, self.unit, self.misfit, map);
        }
        let mut hint = 0usize;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            // A case variant goes through validation and merging: the line may hold two
            // spellings of one name, and a new spelling is counted.
            let index = node
                .exact(&key, hint)
                .filter(|&i| node.fields[i].name == *key);
            let Some(index) = index else {
                return self.fail();
            };
            // Keys in schema order cannot repeat; any other order (or a repeated key, which
            // validation rejects: found by fuzzing) takes the full check.
            if index < hint {
                return self.fail();
            }
            hint = index + 1;
            map.next_value_seed(FitsSeed {
                expected: &node.fields[index].node,
                unit: self.unit,
                misfit: &mut *self.misfit,
                root: None,
            })?;
        }
        Ok(())
    }
}

/// Whether the top-level record fits: as any struct, except that its keys may come in any
/// order (records with many optional keys rarely follow the schema's order), and that a key
/// no field names goes into the overflow column when there is one.
fn fits_root<'de, A: MapAccess<'de>>(
    node: &StructNode,
    root: RootFits<'_>,
    unit: TimestampUnit,
    misfit: &mut bool,
    mut map: A,
) -> Result<(), A::Error> {
    let fail = |misfit: &mut bool| {
        *misfit = true;
        Err(de::Error::custom("value does not fit the schema"))
    };
    // The case-folded keys that went into the overflow column (a handful per record).
    let mut overflowed: Vec<String> = Vec::new();
    let mut hint = 0usize;
    // One past the highest field index seen: a field beyond it cannot have been seen yet. Not
    // `hint`, which follows the last key: after a key out of order (`c79` before `c71`), keys
    // in order again (`c71`..`c78`) bring `hint` back to 79 while `c79` was already there
    // (found by fuzzing: a repeated key taken as a record that the decoder rejects).
    let mut high = 0usize;
    while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
        let expected = match node.exact(&key, hint) {
            // A case variant goes through validation and merging (see `visit_map`).
            Some(index) if node.fields[index].name != *key => return fail(misfit),
            Some(index) => {
                if index < high && root.present.contains(&index) {
                    return fail(misfit);
                }
                root.present.push(index);
                hint = index + 1;
                high = high.max(index + 1);
                &node.fields[index].node
            }
            None => {
                let Some(values) = root.overflow else {
                    return fail(misfit);
                };
                let folded = fold_case(&key);
                if key.len() > MAX_NAME_BYTES
                    || node.folded.contains_key(folded.as_ref())
                    || overflowed.iter().any(|k| *k == folded)
                {
                    return fail(misfit);
                }
                overflowed.push(folded.into_owned());
                values
            }
        };
        map.next_value_seed(FitsSeed {
            expected,
            unit,
            misfit: &mut *misfit,
            root: None,
        })?;
    }
    Ok(())
}

struct MergeSeed<'a> {
    target: &'a mut Node,
    unit: TimestampUnit,
    map_threshold: usize,
    /// Set for the top-level record, which stays a struct however many keys it has, counts
    /// its fields' presence, and sends keys its fields do not name to the overflow column's
    /// values when it has one.
    root: Option<Option<&'a mut Node>>,
}

impl MergeSeed<'_> {
    fn widen(self, seen: FieldType) {
        self.target.merge(&Node::Leaf(seen), self.map_threshold);
    }

    fn conflict(self) {
        *self.target = Node::Leaf(FieldType::String);
    }
}

impl<'de> DeserializeSeed<'de> for MergeSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.target {
            Node::Leaf(FieldType::String) => {
                IgnoredAny::deserialize(deserializer)?;
                Ok(())
            }
            Node::Leaf(FieldType::Null | FieldType::Number(_)) => {
                // Numbers are read as text, to see exactly which number they are.
                let raw = <&RawValue>::deserialize(deserializer)?;
                if let Some(number) = raw_number(raw) {
                    self.widen(FieldType::Number(number));
                    return Ok(());
                }
                if matches!(self.target, Node::Leaf(FieldType::Number(_))) {
                    if raw.get() != "null" {
                        self.conflict();
                    }
                    return Ok(());
                }
                let mut de = serde_json::Deserializer::from_str(raw.get());
                de.deserialize_any(self).map_err(de::Error::custom)
            }
            _ => deserializer.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for MergeSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.widen(FieldType::Boolean);
        Ok(())
    }

    // A number meets a column that is neither null nor a number (those read numbers as text,
    // above): a conflict.
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.conflict();
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.conflict();
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.conflict();
        Ok(())
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        let seen = string_type(s, self.unit);
        self.widen(seen);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if matches!(self.target, Node::Leaf(FieldType::Null)) {
            *self.target = Node::List(Box::new(Node::Leaf(FieldType::Null)));
        }
        let Node::List(items) = self.target else {
            *self.target = Node::Leaf(FieldType::String);
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        let unit = self.unit;
        let map_threshold = self.map_threshold;
        while seq
            .next_element_seed(MergeSeed {
                target: &mut *items,
                unit,
                map_threshold,
                root: None,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if matches!(self.target, Node::Leaf(FieldType::Null)) {
            *self.target = Node::Struct(StructNode::default());
        }
        if !matches!(self.target, Node::Struct(_) | Node::Map(_)) {
            *self.target = Node::Leaf(FieldType::String);
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        // Keys into struct fields, until the struct grows past the threshold: then it becomes
        // a map (its fields freed), and the rest of the keys go into the map's value.
        let is_root = self.root.is_some();
        let mut overflow = self.root.flatten();
        while let Node::Struct(node) = &mut *self.target {
            let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
                return Ok(());
            };
            // Only a root with an overflow column looks the key up twice.
            let value = match overflow.as_deref_mut() {
                Some(values) if !node.names(&key) => values,
                _ => {
                    let index = node.slot(&key);
                    if is_root {
                        node.fields[index].present += 1;
                    }
                    &mut node.fields[index].node
                }
            };
            map.next_value_seed(MergeSeed {
                target: value,
                unit: self.unit,
                map_threshold: self.map_threshold,
                root: None,
            })?;
            if !is_root {
                self.target.collapse_if_wide(self.map_threshold);
            }
        }
        let Node::Map(values) = &mut *self.target else {
            unreachable!("invariant: a struct only ever turns into a map here")
        };
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(MergeSeed {
                target: values,
                unit: self.unit,
                map_threshold: self.map_threshold,
                root: None,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_are_records() {
        let mut inference = Inference::new(TimestampUnit::Microsecond);
        for line in ["null", " 1", "\"x\"", "[1]", "true"] {
            assert!(
                matches!(inference.add_line(line.as_bytes()), LineInference::Invalid),
                "{line}"
            );
        }
        assert!(!matches!(
            inference.add_line(b" {\"a\":1}"),
            LineInference::Invalid
        ));
        assert_eq!(inference.records(), 1);
        // Once `s` is a string column, a lone surrogate in it is still no record.
        assert!(!matches!(
            inference.add_line(br#"{"s":"\ud83d\ude00"}"#),
            LineInference::Invalid
        ));
        assert!(matches!(
            inference.add_line(br#"{"s":"\udc00"}"#),
            LineInference::Invalid
        ));
        assert_eq!(inference.records(), 2);
    }
    use crate::schema::TimestampUnit::Microsecond;

    fn infer(lines: &[&str]) -> (Schema, Vec<LineInference>) {
        let mut inference = Inference::new(Microsecond);
        // `\u{1}` stands for the invalid UTF-8 byte 0xff, which a &str cannot hold.
        let outcomes = lines
            .iter()
            .map(|l| {
                let bytes: Vec<u8> = l.bytes().map(|b| if b == 1 { 0xff } else { b }).collect();
                inference.add_line(&bytes)
            })
            .collect();
        (inference.into_schema(), outcomes)
    }

    fn field(schema: &Schema, name: &str) -> FieldType {
        schema
            .fields
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field {name}"))
            .field_type
            .clone()
    }

    #[test]
    fn infers_scalars_and_widens() {
        let (schema, outcomes) = infer(&[
            r#"{"i":1,"f":1,"b":true,"s":"x","t":"2024-01-01T00:00:00Z","n":null,"mixed":1}"#,
            r#"{"f":2.5,"mixed":"text","t":"2024-01-02T00:00:00.5+01:00"}"#,
            r#"{"i":2}"#,
        ]);
        assert_eq!(
            outcomes,
            vec![
                LineInference::Widened,
                LineInference::Widened,
                LineInference::Fits
            ]
        );
        assert_eq!(field(&schema, "i"), FieldType::Int64);
        assert_eq!(field(&schema, "f"), FieldType::Float64);
        assert_eq!(field(&schema, "b"), FieldType::Boolean);
        assert_eq!(field(&schema, "s"), FieldType::String);
        assert_eq!(field(&schema, "t"), FieldType::utc_timestamp(Microsecond));
        assert_eq!(field(&schema, "n"), FieldType::Null);
        assert_eq!(field(&schema, "mixed"), FieldType::String);
        let names: Vec<_> = schema.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["i", "f", "b", "s", "t", "n", "mixed"]);
    }

    #[test]
    fn nested_structures_and_conflicts() {
        let (schema, _) = infer(&[
            r#"{"user":{"id":1,"tags":["a"]},"list":[1,2],"obj_or_scalar":{"a":1},"e":{}}"#,
            r#"{"user":{"id":2,"extra":{"deep":[{"x":1}]}},"list":[3.5],"obj_or_scalar":7,"e":{}}"#,
            r#"{"list":[],"empty_list":[]}"#,
        ]);
        assert_eq!(
            field(&schema, "user"),
            FieldType::Struct(vec![
                Field::new("id", FieldType::Int64),
                Field::new("tags", FieldType::List(Box::new(FieldType::String))),
                Field::new(
                    "extra",
                    FieldType::Struct(vec![Field::new(
                        "deep",
                        FieldType::List(Box::new(FieldType::Struct(vec![Field::new(
                            "x",
                            FieldType::Int64
                        )])))
                    )])
                ),
            ])
        );
        assert_eq!(
            field(&schema, "list"),
            FieldType::List(Box::new(FieldType::Float64))
        );
        assert_eq!(field(&schema, "obj_or_scalar"), FieldType::String);
        assert_eq!(field(&schema, "e"), FieldType::Struct(vec![]));
        assert_eq!(
            field(&schema, "empty_list"),
            FieldType::List(Box::new(FieldType::Null))
        );
    }

    #[test]
    fn integers_beyond_int64_are_decimals_and_precise_timestamps_are_strings() {
        let (schema, _) = infer(&[
            r#"{"big":18446744073709551615,"small":9223372036854775807,"t":"2024-01-01T00:00:00.1234567Z"}"#,
        ]);
        // Before: `big` was float64, and 18446744073709551615 was written as 1.8446744073709552e19.
        assert_eq!(
            field(&schema, "big"),
            FieldType::Decimal {
                precision: 38,
                scale: 0
            }
        );
        assert_eq!(field(&schema, "small"), FieldType::Int64);
        assert_eq!(field(&schema, "t"), FieldType::String);
    }

    #[test]
    fn invalid_lines_never_widen() {
        let (schema, outcomes) = infer(&[
            r#"{"a":1}"#,
            r#"{"a":"x","b":1"#,
            r#"{"a":"x","a":2}"#,
            r#"[{"c":1}]"#,
            r#"{"d":1} trailing"#,
            "{\"e\":\"\u{1}\"}",
        ]);
        assert_eq!(outcomes[1..], [LineInference::Invalid; 5]);
        assert_eq!(schema, Schema::new(vec![Field::new("a", FieldType::Int64)]));
    }

    #[test]
    fn numbers_widen_only_to_types_that_hold_them_exactly() {
        let decimal = |scale| FieldType::Decimal {
            precision: 38,
            scale,
        };
        let cases: &[(&[&str], FieldType)] = &[
            (&["-0", "5"], FieldType::Int64),
            (&["123456789012345678", "1"], FieldType::Int64),
            (&["1", "1.5"], FieldType::Float64),
            (&["9007199254740992", "0.5"], FieldType::Float64),
            (&["-9007199254740992", "1e300"], FieldType::Float64),
            (&["9007199254740993", "1.0"], decimal(0)),
            (&["9007199254740993", "0.25"], decimal(2)),
            (&["-9007199254740993", "2.5e-3"], decimal(4)),
            (&["1", "123456789012345678901234567890"], decimal(0)),
            (&["-99999999999999999999999999999999999999"], decimal(0)),
            (
                &["1", "1234567890123456789012345678901234567890"],
                FieldType::String,
            ),
            (&["9007199254740993", "1e-40"], FieldType::String),
            (
                &["123456789012345678901234567890", "0.123456789"],
                FieldType::String,
            ),
            (&["1", "true"], FieldType::String),
        ];
        for (values, expected) in cases {
            // Every order of the values gives the same type.
            let mut orders = vec![values.to_vec()];
            let mut reversed = values.to_vec();
            reversed.reverse();
            orders.push(reversed);
            for order in orders {
                let lines: Vec<String> = order.iter().map(|v| format!("{{\"n\":{v}}}")).collect();
                let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
                let (schema, _) = infer(&lines);
                assert_eq!(&field(&schema, "n"), expected, "{order:?}");
            }
        }
    }

    #[test]
    fn merging_partial_inferences_is_order_independent() {
        let parts = [
            vec![r#"{"n":1,"m":{"x":0.5}}"#],
            vec![r#"{"n":9007199254740993}"#],
            vec![r#"{"n":0.125,"m":{"x":12345678901234567890}}"#],
        ];
        let single = |lines: &[&str]| {
            let mut inference = Inference::new(Microsecond);
            for line in lines {
                inference.add_line(line.as_bytes());
            }
            inference
        };
        let mut results = Vec::new();
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2]] {
            let mut total = Inference::new(Microsecond);
            for i in order {
                total.merge(&single(&parts[i]));
            }
            results.push(total.schema().fields);
        }
        assert!(results
            .windows(2)
            .all(|w| w[0].iter().all(|f| w[1].iter().any(|g| g == f))));
        let mut total = Inference::new(Microsecond);
        for part in &parts {
            total.merge(&single(part));
        }
        assert_eq!(
            total.widenings(),
            Widenings {
                to_decimal: 2,
                to_text: 0
            }
        );
        let schema = Schema::new(results.pop().unwrap());
        assert_eq!(
            field(&schema, "n"),
            FieldType::Decimal {
                precision: 38,
                scale: 3
            }
        );
        // Widening a resolved schema goes on from what its types imply.
        let mut widened = Inference::from_schema(single(&parts[0]).schema(), Microsecond);
        widened.add_line(parts[1][0].as_bytes());
        assert_eq!(field(&widened.schema(), "n"), FieldType::Int64);
        widened.add_line(br#"{"n":0.5}"#);
        assert_eq!(
            field(&widened.schema(), "n"),
            FieldType::Decimal {
                precision: 38,
                scale: 1
            }
        );
    }

    #[test]
    fn very_deep_nesting_is_rejected_without_overflowing_the_stack() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let (_, outcomes) = infer(&[r#"{"a":1}"#, &deep]);
        assert_eq!(outcomes[1], LineInference::Invalid);
        // A string column keeps any value as its JSON text, however deep, without recursing.
        let (_, outcomes) = infer(&[r#"{"a":"s"}"#, &deep]);
        assert_eq!(outcomes[1], LineInference::Fits);
    }

    #[test]
    fn names_differing_only_in_case_are_one_field_named_as_first_seen_in_input_order() {
        let lines = [
            r#"{"a":{"Platform":"ios"},"n":1}"#,
            r#"{"Id":1,"a":{"platform":"web"}}"#,
            r#"{"id":2.5,"ID":null}"#,
            r#"{"ID":3,"a":{"PLATFORM":1,"Platform":"x"}}"#,
        ];
        let (sequential, outcomes) = infer(&lines);
        // Two spellings in one object: a duplicate key, not a record.
        assert_eq!(outcomes[2..], [LineInference::Invalid; 2]);
        let expected = Schema::new(vec![
            Field::new(
                "a",
                FieldType::Struct(vec![Field::new("Platform", FieldType::String)]),
            ),
            Field::new("n", FieldType::Int64),
            Field::new("Id", FieldType::Int64),
        ]);
        assert_eq!(sequential, expected);
        // Any split into parts, merged in input order, gives the same names and count.
        for split in 0..=lines.len() {
            let mut total = Inference::new(Microsecond);
            for part in [&lines[..split], &lines[split..]] {
                let mut inference = Inference::new(Microsecond);
                for line in part {
                    inference.add_line(line.as_bytes());
                }
                total.merge(&inference);
            }
            assert_eq!(total.schema(), expected, "split at {split}");
            assert_eq!(total.case_variants(), 1, "split at {split}");
        }
        let (schema, _) = infer(&[r#"{"ID":1}"#, r#"{"Id":2.5}"#, r#"{"id":"x"}"#]);
        assert_eq!(
            schema,
            Schema::new(vec![Field::new("ID", FieldType::String)])
        );
    }

    #[test]
    fn twenty_thousand_keys_each_in_a_few_records_share_the_overflow_column() {
        // Each key is in two or three of 20,000 records (quadratic lookups took seconds here;
        // as columns, every record took a slot in each of the 20,000).
        let mut inference = Inference::new(Microsecond);
        for i in 0..20_000 {
            inference.add_line(format!("{{\"k{i}\":{i},\"k{}\":true}}", i / 2).as_bytes());
        }
        let schema = inference.schema();
        assert_eq!(
            schema,
            Schema::with_overflow(
                Vec::new(),
                "_overflow".into(),
                FieldType::String // integers and booleans under one key
            )
        );
    }

    #[test]
    fn keys_in_fewer_than_one_record_in_a_hundred_go_into_the_overflow_column() {
        // 400 records: `id` in all, `_overflow` (a record's own key) in every 4th, `level` in
        // 4 (1%), `once` in 1, and 2,000 keys `k*` in 1 or 2 records each.
        let lines: Vec<String> = (0..400)
            .map(|i| {
                let mut line = format!(r#"{{"id":{i},"k{}":{i}"#, i * 5 % 2000);
                for k in [i * 5 + 1, i * 5 + 2, i * 5 + 3] {
                    line += &format!(r#","k{}":{}"#, k % 2000, k);
                }
                if i % 4 == 0 {
                    line += r#","_Overflow":"own""#;
                }
                if i % 100 == 7 {
                    line += r#","level":"info""#;
                }
                if i == 9 {
                    line += r#","once":{"x":1}"#;
                }
                line + "}"
            })
            .collect();
        let inference = infer_with_threshold(&lines, 1000);
        let expected = Schema::with_overflow(
            vec![
                Field::new("id", FieldType::Int64),
                Field::new("_Overflow", FieldType::String),
                Field::new("level", FieldType::String),
            ],
            "_overflow_2".into(),
            // Integers and the one object conflict: the values are kept as JSON text.
            FieldType::String,
        );
        assert_eq!(inference.schema(), expected);
        // The same schema however the input is split and merged.
        for split in [1, 133, 399] {
            let mut total = Inference::new(Microsecond);
            for part in [&lines[..split], &lines[split..]] {
                total.merge(&infer_with_threshold(part, 1000));
            }
            assert_eq!(total.schema(), expected, "split at {split}");
        }
        // Below the threshold every key is a column.
        assert_eq!(infer_with_threshold(&lines, 3000).schema().overflow, None);
    }

    #[test]
    fn a_key_repeated_after_keys_out_of_order_is_no_record() {
        let mut inference = Inference::new(TimestampUnit::Microsecond);
        assert_eq!(
            inference.add_line(br#"{"a":1,"b":2,"c":3,"d":4}"#),
            LineInference::Widened
        );
        // `d` early, then `b` and `c` in order again, then `d` once more.
        assert_eq!(
            inference.add_line(br#"{"a":1,"d":2,"b":3,"c":4,"d":5}"#),
            LineInference::Invalid
        );
        assert_eq!(
            inference.add_line(br#"{"a":1,"d":2,"b":3,"c":4}"#),
            LineInference::Fits
        );
    }

    #[test]
    fn a_schema_with_an_overflow_column_takes_new_keys_into_it() {
        let schema = Schema::with_overflow(
            vec![Field::new("id", FieldType::Int64)],
            "_overflow".into(),
            FieldType::Int64,
        );
        let mut inference = Inference::from_schema(schema.clone(), Microsecond);
        // (The first numbers widen what is known of the columns' digits.)
        assert_ne!(
            inference.add_line(br#"{"id":9,"p":9}"#),
            LineInference::Invalid
        );
        // New keys, in any order, into the overflow column: the fast check.
        for line in [
            r#"{"new":1,"id":2}"#,
            r#"{"a":1,"b":2}"#,
            r#"{"_overflow":3}"#,
        ] {
            assert_eq!(
                inference.add_line(line.as_bytes()),
                LineInference::Fits,
                "{line}"
            );
        }
        // A key repeated (in any letter case) is no record, in or out of the overflow column.
        for bad in [r#"{"a":1,"A":2}"#, r#"{"id":1,"x":2,"id":3}"#] {
            assert_eq!(
                inference.add_line(bad.as_bytes()),
                LineInference::Invalid,
                "{bad}"
            );
        }
        // A case variant of a column is that column, not an overflow key.
        assert_eq!(
            inference.add_line(br#"{"ID":"text"}"#),
            LineInference::Widened
        );
        // A value the overflow's type does not hold widens it.
        assert_eq!(inference.add_line(br#"{"c":2.5}"#), LineInference::Widened);
        assert_eq!(
            inference.schema(),
            Schema::with_overflow(
                vec![Field::new("id", FieldType::String)],
                "_overflow".into(),
                FieldType::Float64,
            )
        );
        assert_eq!(inference.records(), 6);
    }

    fn infer_with_threshold(lines: &[String], keys: usize) -> Inference {
        let mut inference = Inference::new(Microsecond).with_map_threshold(keys);
        for line in lines {
            assert_ne!(
                inference.add_line(line.as_bytes()),
                LineInference::Invalid,
                "{line}"
            );
        }
        inference
    }

    #[test]
    fn objects_with_more_keys_than_the_threshold_become_maps_of_every_value() {
        // Three keys stay a struct; the fourth distinct key (in another line) makes a map
        // whose values hold ints, floats and structs seen before and after the switch.
        let lines: Vec<String> = [
            r#"{"id":1,"m":{"a":1,"b":2,"c":{"x":1}},"top":{"p":1,"q":2,"r":3}}"#,
            r#"{"id":2,"m":{"a":1.5,"d":{"y":"s"}}}"#,
            r#"{"id":3,"m":{"e":{"x":2}}}"#,
        ]
        .map(String::from)
        .to_vec();
        let schema = infer_with_threshold(&lines, 3).schema();
        assert_eq!(
            field(&schema, "m"),
            FieldType::Map(Box::new(FieldType::String)),
            "numbers and objects under one map conflict to string"
        );
        assert_eq!(field(&schema, "top").name(), "struct");
        let lines: Vec<String> = (0..5)
            .map(|i| format!(r#"{{"m":{{"k{i}":{{"n":{i},"t":["a"]}},"j{i}":{{"f":0.5}}}}}}"#))
            .collect();
        let schema = infer_with_threshold(&lines, 4).schema();
        assert_eq!(
            field(&schema, "m"),
            FieldType::Map(Box::new(FieldType::Struct(vec![
                Field::new("n", FieldType::Int64),
                Field::new("t", FieldType::List(Box::new(FieldType::String))),
                Field::new("f", FieldType::Float64),
            ])))
        );
        // Lines that fit the map take the fast check; repeated keys in a map are no record.
        let mut inference = infer_with_threshold(&lines, 4);
        assert_eq!(
            inference.add_line(br#"{"m":{"new":{"n":1},"other":{"f":0.5}}}"#),
            LineInference::Fits
        );
        for bad in [
            r#"{"m":{"a":{"n":1},"a":{"n":2}}}"#,
            r#"{"m":{"A":{"n":1},"a":{"n":2}}}"#,
        ] {
            assert_eq!(inference.add_line(bad.as_bytes()), LineInference::Invalid);
        }
    }

    #[test]
    fn the_root_never_becomes_a_map_and_nested_objects_collapse_at_any_depth() {
        let lines: Vec<String> = (0..10)
            .map(|i| format!(r#"{{"c{i}":1,"a":{{"b":{{"k{i}":{{"v{i}":true}}}}}}}}"#))
            .collect();
        let schema = infer_with_threshold(&lines, 3).schema();
        // Eleven top-level keys, ten of them in one record each: those share the overflow
        // column (a map of the values), `a` stays a column.
        assert_eq!(schema.fields.len(), 2);
        assert_eq!(schema.overflow.as_deref(), Some("_overflow"));
        assert_eq!(
            field(&schema, "_overflow"),
            FieldType::Map(Box::new(FieldType::Int64))
        );
        // `a.b` has ten keys (a map); its values' union has ten keys too (a map as well).
        assert_eq!(
            field(&schema, "a"),
            FieldType::Struct(vec![Field::new(
                "b",
                FieldType::Map(Box::new(FieldType::Map(Box::new(FieldType::Boolean))))
            )])
        );
    }

    #[test]
    fn maps_do_not_depend_on_how_the_input_was_split() {
        let lines: Vec<String> = (0..12)
            .map(|i| match i % 3 {
                0 => format!(r#"{{"m":{{"k{i}":{i}}}}}"#),
                1 => format!(r#"{{"m":{{"k{i}":{{"s":"x"}}}},"n":{{"a{i}":1}}}}"#),
                _ => format!(r#"{{"m":{{"k{i}":null,"k{}":2.5}}}}"#, i + 100),
            })
            .collect();
        let whole = infer_with_threshold(&lines, 5).schema();
        assert_eq!(
            field(&whole, "m"),
            FieldType::Map(Box::new(FieldType::String))
        );
        assert_eq!(
            field(&whole, "n").name(),
            "struct",
            "four keys stay a struct"
        );
        for split in 0..=lines.len() {
            let mut total = Inference::new(Microsecond).with_map_threshold(5);
            for part in [&lines[..split], &lines[split..]] {
                total.merge(&infer_with_threshold(part, 5));
            }
            assert_eq!(total.schema(), whole, "split at {split}");
        }
    }

    #[test]
    fn a_growing_struct_is_freed_once_it_becomes_a_map() {
        // One line with many keys: the struct collapses while the line is read, so the
        // inference holds one value node, not a field per key.
        let keys: Vec<String> = (0..5000).map(|i| format!(r#""{i}":{{"v":{i}}}"#)).collect();
        let line = format!(r#"{{"m":{{{}}}}}"#, keys.join(","));
        let inference = infer_with_threshold(&[line], MAP_KEY_THRESHOLD);
        let Node::Struct(root) = &inference.root else {
            panic!("the root is a struct")
        };
        assert!(
            matches!(&root.fields[0].node, Node::Map(values) if matches!(&**values, Node::Struct(s) if s.fields.len() == 1))
        );
    }
}
