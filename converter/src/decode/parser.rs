//! The hand-written JSON parser that decodes a line straight into the column builders.
//!
//! Separate from the decode driver because it is the one piece that must match serde_json
//! exactly (what it accepts and refuses), which its differential test checks; the driver only
//! decides what to do with each line's outcome.

use super::columns::{Column, MapColumn, StructColumn};
use super::issue::{preview, Issue, LineCtx, Segment};
use super::{DecodeMode, UnknownFieldPolicy};
use crate::schema::{fold_case, DecimalText, F64_EXACT_INT, MAX_NAME_BYTES};
use crate::timestamp::parse_timestamp;

/// Why parsing a line stopped.
#[derive(Debug)]
pub(super) enum Fail {
    /// Not valid JSON; serde_json is asked for the reason (the parser accepts exactly what it
    /// accepts, which the differential test checks).
    Syntax,
    /// A problem recorded in the line context.
    Issue,
}

/// serde_json's nesting limit: the 128th nested container is an error.
const MAX_DEPTH: u32 = 128;

/// A hand-written JSON parser that appends values straight into the column builders.
///
/// serde_json drove the builders through `DeserializeSeed`s before; a parser that knows the
/// target columns does the same in one pass with less machinery (decoding is about half of a
/// conversion's work). It accepts exactly the JSON serde_json accepts (a differential test
/// checks this on mutated inputs), including serde_json's distinctions: values the schema
/// consumes are parsed strictly (nesting limit, lone surrogates refused), values that are only
/// skipped or kept as text are checked for syntax alone, as `serde::de::IgnoredAny` does.
pub(super) struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: u32,
    scratch: &'a mut String,
    stack: &'a mut Vec<u8>,
}

/// Where a parsed string is: in the input, or unescaped in the scratch buffer.
enum Text {
    Input(usize, usize),
    Scratch,
}

enum Number {
    I64(i64),
    U64(u64),
    /// An integer beyond 64 bits (its text).
    Huge(String),
    F64(f64),
}

impl Number {
    fn describe(&self) -> String {
        match self {
            Number::I64(v) => format!("integer {v}"),
            Number::U64(v) => format!("integer {v}"),
            Number::Huge(text) => format!("integer {text}"),
            Number::F64(v) => format!("number {v}"),
        }
    }
}

#[inline]
/// Whether `bytes` holds a control character (below 0x20), which JSON strings may not.
///
/// Looked at 32 bytes at a time by their minimum, which compiles to vector instructions: the
/// byte-at-a-time `any` stopped at each byte and was most of the time spent on long strings
/// (log messages).
fn has_control(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(32);
    for chunk in &mut chunks {
        if chunk.iter().fold(u8::MAX, |low, &b| low.min(b)) < 0x20 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| b < 0x20)
}

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str, scratch: &'a mut String, stack: &'a mut Vec<u8>) -> Self {
        Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            depth: 0,
            scratch,
            stack,
        }
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn expect(&mut self, byte: u8) -> Result<(), Fail> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Fail::Syntax)
        }
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> Result<(), Fail> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Fail::Syntax)
        }
    }

    fn text_of(&self, text: &Text) -> &str {
        match *text {
            Text::Input(start, end) => &self.text[start..end],
            Text::Scratch => self.scratch.as_str(),
        }
    }

    /// A record: one object and nothing after it but whitespace.
    pub(super) fn row(&mut self, root: &mut StructColumn, ctx: &mut LineCtx) -> Result<(), Fail> {
        self.skip_ws();
        let found = match self.peek() {
            Some(b'{') => {
                self.object(root, ctx)?;
                self.skip_ws();
                return if self.pos == self.bytes.len() {
                    Ok(())
                } else {
                    Err(Fail::Syntax)
                };
            }
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            Some(b'-' | b'0'..=b'9') => "a number",
            _ => return Err(Fail::Syntax),
        };
        self.skip_value()?;
        self.skip_ws();
        if self.pos != self.bytes.len() {
            return Err(Fail::Syntax);
        }
        ctx.fail(Issue::NotAnObject { found })
    }

    fn enter(&mut self) -> Result<(), Fail> {
        self.depth += 1;
        if self.depth >= MAX_DEPTH {
            return Err(Fail::Syntax);
        }
        Ok(())
    }

    /// An object into a struct column (at `{`).
    fn object(&mut self, column: &mut StructColumn, ctx: &mut LineCtx) -> Result<(), Fail> {
        self.enter()?;
        self.pos += 1;
        let row = column.len;
        let mut hint = 0usize;
        // Whether this record's overflow map row is open (it got a key no field names).
        let mut overflowing = false;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                if self.peek() != Some(b'"') {
                    return Err(Fail::Syntax);
                }
                let key = self.string()?;
                let index = column.plan.lookup(self.text_of(&key), hint);
                self.skip_ws();
                self.expect(b':')?;
                self.skip_ws();
                match index {
                    Some(index) => {
                        hint = index + 1;
                        let child = &mut column.children[index];
                        if child.len() > row {
                            let name = column.plan.names[index].to_string();
                            return ctx.fail(Issue::DuplicateKey { name });
                        }
                        // The rows this field was absent from become nulls now, in bulk.
                        child.pad_to(row);
                        if let Err(e) = self.value(child, ctx) {
                            if matches!(e, Fail::Issue) {
                                ctx.reversed_path
                                    .push(Segment::Key(column.plan.names[index].to_string()));
                            }
                            return Err(e);
                        }
                    }
                    None if column.plan.overflow.is_some() => {
                        let at = column.plan.overflow.unwrap_or_default();
                        let result = self.overflow_entry(
                            &key,
                            &mut column.children[at],
                            row,
                            &mut overflowing,
                            ctx,
                        );
                        if let Err(e) = result {
                            if matches!(e, Fail::Issue) {
                                ctx.reversed_path
                                    .push(Segment::Key(column.plan.names[at].to_string()));
                            }
                            return Err(e);
                        }
                    }
                    None => match ctx.mode {
                        DecodeMode::Fixed {
                            unknown_fields: UnknownFieldPolicy::Drop,
                            ..
                        } => {
                            self.skip_value()?;
                            ctx.dropped += 1;
                        }
                        _ => {
                            let name = self.text_of(&key).to_string();
                            // The rest of the line may be broken: that is checked by the caller.
                            return ctx.fail(Issue::UnknownField { name });
                        }
                    },
                }
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(Fail::Syntax),
                }
            }
        }
        if overflowing {
            if let Some(at) = column.plan.overflow {
                Self::close_overflow(&mut column.children[at]);
            }
        }
        // Fields absent from this object stay short: they are padded with nulls when they
        // next get a value or when the column is finished (see `columns`).
        column.nulls.append_non_null();
        column.len += 1;
        self.depth -= 1;
        Ok(())
    }

    /// An object into a map column's key and value columns (at `{`); the caller closes the
    /// row. Keys are data, but the rules every object follows still hold (they are checked
    /// schema-free by record validation, which inference applies): a key repeated, also in
    /// other letter case, is a duplicate, and a key longer than a column name may be is
    /// refused, so that inference and decoding agree on which lines are records.
    fn map_object(&mut self, map: &mut MapColumn, ctx: &mut LineCtx) -> Result<(), Fail> {
        self.enter()?;
        self.pos += 1;
        map.seen.clear();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(Fail::Syntax);
            }
            let key = self.string()?;
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            self.map_entry(&key, map, ctx)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(Fail::Syntax),
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// One entry of a map: its key (already read, with the colon after it) and its value.
    fn map_entry(
        &mut self,
        key: &Text,
        map: &mut MapColumn,
        ctx: &mut LineCtx,
    ) -> Result<(), Fail> {
        let key = self.text_of(key);
        if key.len() > MAX_NAME_BYTES {
            // Record validation names the problem (`name_too_long`).
            return Err(Fail::Syntax);
        }
        if !map.seen.insert(Box::from(fold_case(key).as_ref())) {
            let name = key.to_string();
            return ctx.fail(Issue::DuplicateKey { name });
        }
        map.keys.push_str(key);
        let name_at = map.keys.len();
        if let Err(e) = self.value(&mut map.values, ctx) {
            if matches!(e, Fail::Issue) {
                let key = map.keys.string_at(name_at - 1).to_string();
                ctx.reversed_path.push(Segment::Key(key));
            }
            return Err(e);
        }
        Ok(())
    }

    /// A key of the top-level record that no field names, into the overflow map column: the
    /// row's map is opened at its first such key and closed at the record's end (`open`).
    fn overflow_entry(
        &mut self,
        key: &Text,
        column: &mut Column,
        row: usize,
        open: &mut bool,
        ctx: &mut LineCtx,
    ) -> Result<(), Fail> {
        let first = !*open;
        if first {
            // The rows before without such keys become null maps.
            column.pad_to(row);
            *open = true;
        }
        let Column::Map(map) = column else {
            unreachable!("invariant: the overflow column is a map (see StructPlan::root)")
        };
        if first {
            map.seen.clear();
        }
        self.map_entry(key, map, ctx)
    }

    /// Closes the overflow map's row of the record just parsed.
    fn close_overflow(column: &mut Column) {
        let Column::Map(map) = column else {
            unreachable!("invariant: the overflow column is a map (see StructPlan::root)")
        };
        map.offsets.push(
            i32::try_from(map.values.len())
                .expect("invariant: a chunk holds less than 2^31 map entries"),
        );
        map.nulls.append_non_null();
    }

    /// An array into a list column (at `[`).
    fn array(&mut self, child: &mut Column, ctx: &mut LineCtx) -> Result<(), Fail> {
        self.enter()?;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            let mut index = 0usize;
            loop {
                self.skip_ws();
                if let Err(e) = self.value(child, ctx) {
                    if matches!(e, Fail::Issue) {
                        ctx.reversed_path.push(Segment::Index(index));
                    }
                    return Err(e);
                }
                index += 1;
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(Fail::Syntax),
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// One value into `column` (whitespace already skipped).
    fn value(&mut self, column: &mut Column, ctx: &mut LineCtx) -> Result<(), Fail> {
        let Some(first) = self.peek() else {
            return Err(Fail::Syntax);
        };
        if let Column::String { .. } = column {
            return match first {
                b'"' => {
                    let text = self.string()?;
                    let value = match &text {
                        Text::Input(start, end) => &self.text[*start..*end],
                        Text::Scratch => self.scratch.as_str(),
                    };
                    column.push_str(value);
                    Ok(())
                }
                b'n' => {
                    self.literal(b"null")?;
                    column.append_null();
                    Ok(())
                }
                _ => {
                    // Any other value is kept as its JSON text.
                    let start = self.pos;
                    self.skip_value()?;
                    column.push_str(&self.text[start..self.pos]);
                    Ok(())
                }
            };
        }
        match first {
            b'n' => {
                self.literal(b"null")?;
                column.append_null();
                Ok(())
            }
            b't' | b'f' => {
                let v = first == b't';
                self.literal(if v { b"true" } else { b"false" })?;
                match column {
                    Column::Boolean(values, nulls) => {
                        values.append(v);
                        nulls.append_non_null();
                        Ok(())
                    }
                    column => ctx.mismatch(column, format!("boolean {v}"), None),
                }
            }
            b'-' | b'0'..=b'9' => self.number_into(column, ctx),
            b'"' => {
                let text = self.string()?;
                let value = match &text {
                    Text::Input(start, end) => &self.text[*start..*end],
                    Text::Scratch => self.scratch.as_str(),
                };
                match column {
                    Column::Timestamp(values, nulls, unit, _) => {
                        match parse_timestamp(value, *unit) {
                            Ok(t) => {
                                values.push(t);
                                nulls.append_non_null();
                                Ok(())
                            }
                            Err(e) => {
                                let detail = format!("{e} ({})", unit.as_str());
                                let found = preview(value);
                                ctx.mismatch(column, found, Some(detail))
                            }
                        }
                    }
                    column => {
                        let found = preview(value);
                        ctx.mismatch(column, found, None)
                    }
                }
            }
            b'[' => match column {
                Column::List {
                    offsets,
                    child,
                    nulls,
                    ..
                } => {
                    self.array(child, ctx)?;
                    offsets.push(
                        i32::try_from(child.len())
                            .expect("invariant: a chunk holds less than 2^31 list items"),
                    );
                    nulls.append_non_null();
                    Ok(())
                }
                column => {
                    self.skip_value()?;
                    ctx.mismatch(column, "an array".to_string(), None)
                }
            },
            b'{' => match column {
                Column::Struct(s) => self.object(s, ctx),
                Column::Map(map) => {
                    self.map_object(map, ctx)?;
                    map.offsets.push(
                        i32::try_from(map.values.len())
                            .expect("invariant: a chunk holds less than 2^31 map entries"),
                    );
                    map.nulls.append_non_null();
                    Ok(())
                }
                column => {
                    self.skip_value()?;
                    ctx.mismatch(column, "an object".to_string(), None)
                }
            },
            _ => Err(Fail::Syntax),
        }
    }

    /// A number into `column`: only where it is held exactly (an integer beyond ±2^53 is not
    /// a `float64`; a decimal takes what fits its precision and scale).
    fn number_into(&mut self, column: &mut Column, ctx: &mut LineCtx) -> Result<(), Fail> {
        if let Column::Decimal(_, _, precision, scale) = *column {
            let start = self.pos;
            self.number_syntax()?;
            let text = &self.text[start..self.pos];
            let Some(value) = DecimalText::parse(text).decimal(precision, scale) else {
                let detail = format!("does not fit decimal({precision}, {scale}) exactly");
                return ctx.mismatch(column, format!("number {text}"), Some(detail));
            };
            if let Column::Decimal(values, nulls, ..) = column {
                values.push(value);
                nulls.append_non_null();
            }
            return Ok(());
        }
        let number = self.number()?;
        let exact_f64 = |v: u128| v <= F64_EXACT_INT;
        match (column, number) {
            (Column::Int64(values, nulls), Number::I64(v)) => {
                values.push(v);
                nulls.append_non_null();
                Ok(())
            }
            (Column::Int64(values, nulls), Number::U64(v)) if v <= i64::MAX as u64 => {
                values.push(v as i64);
                nulls.append_non_null();
                Ok(())
            }
            (Column::Float64(values, nulls), Number::I64(v))
                if exact_f64(u128::from(v.unsigned_abs())) =>
            {
                values.push(v as f64);
                nulls.append_non_null();
                Ok(())
            }
            (Column::Float64(values, nulls), Number::U64(v)) if exact_f64(u128::from(v)) => {
                values.push(v as f64);
                nulls.append_non_null();
                Ok(())
            }
            (Column::Float64(values, nulls), Number::F64(v)) => {
                values.push(v);
                nulls.append_non_null();
                Ok(())
            }
            (column, number) => {
                let detail = match (&*column, &number) {
                    (Column::Int64(..), Number::U64(_) | Number::Huge(_)) => {
                        Some("outside the int64 range".to_string())
                    }
                    (Column::Float64(..), Number::I64(_) | Number::U64(_) | Number::Huge(_)) => {
                        Some("not exactly a float64 (integers beyond ±2^53 are not)".to_string())
                    }
                    _ => None,
                };
                ctx.mismatch(column, number.describe(), detail)
            }
        }
    }

    /// A string (at `"`), unescaped strictly: a lone surrogate is refused, as serde_json does
    /// when it decodes a string.
    fn string(&mut self) -> Result<Text, Fail> {
        self.pos += 1;
        let start = self.pos;
        let rest = &self.bytes[start..];
        let i = memchr::memchr2(b'"', b'\\', rest).ok_or(Fail::Syntax)?;
        if has_control(&rest[..i]) {
            return Err(Fail::Syntax);
        }
        if rest[i] == b'"' {
            self.pos = start + i + 1;
            return Ok(Text::Input(start, start + i));
        }
        self.scratch.clear();
        self.scratch.push_str(&self.text[start..start + i]);
        self.pos = start + i;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Text::Scratch);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escape = self.peek().ok_or(Fail::Syntax)?;
                    self.pos += 1;
                    let c = match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let high = self.hex4()?;
                            if (0xDC00..0xE000).contains(&high) {
                                return Err(Fail::Syntax);
                            }
                            let code = if (0xD800..0xDC00).contains(&high) {
                                if !self.bytes[self.pos..].starts_with(b"\\u") {
                                    return Err(Fail::Syntax);
                                }
                                self.pos += 2;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err(Fail::Syntax);
                                }
                                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                high
                            };
                            char::from_u32(code).ok_or(Fail::Syntax)?
                        }
                        _ => return Err(Fail::Syntax),
                    };
                    self.scratch.push(c);
                }
                Some(_) => {
                    let rest = &self.bytes[self.pos..];
                    let i = memchr::memchr2(b'"', b'\\', rest).ok_or(Fail::Syntax)?;
                    if has_control(&rest[..i]) {
                        return Err(Fail::Syntax);
                    }
                    self.scratch.push_str(&self.text[self.pos..self.pos + i]);
                    self.pos += i;
                }
                None => return Err(Fail::Syntax),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, Fail> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or(Fail::Syntax)?;
        let mut value = 0u32;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(Fail::Syntax),
            };
            value = value * 16 + u32::from(v);
        }
        self.pos += 4;
        Ok(value)
    }

    /// Consumes a number's syntax; returns where its integer part ends and whether it has a
    /// fraction or exponent.
    fn number_syntax(&mut self) -> Result<(usize, bool), Fail> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(Fail::Syntax);
                }
            }
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
            }
            _ => return Err(Fail::Syntax),
        }
        let int_end = self.pos;
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(Fail::Syntax);
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(Fail::Syntax);
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            float = true;
        }
        Ok((int_end, float))
    }

    /// A number: positive integers u64, negative ones i64 (`-0` is 0), integers beyond 64 bits
    /// `Huge`, anything with a fraction or exponent f64.
    fn number(&mut self) -> Result<Number, Fail> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        let (int_end, float) = self.number_syntax()?;
        let text = &self.text[start..self.pos];
        if !float {
            let digits = &self.bytes[start + usize::from(negative)..int_end];
            let mut value: u64 = 0;
            let mut overflow = false;
            for &d in digits {
                match value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(d - b'0')))
                {
                    Some(v) => value = v,
                    None => {
                        overflow = true;
                        break;
                    }
                }
            }
            if !overflow {
                if !negative {
                    return Ok(Number::U64(value));
                }
                // `-0` is the integer 0 (serde_json makes it the float -0.0).
                if value == 0 {
                    return Ok(Number::I64(0));
                }
                let negated = (value as i64).wrapping_neg();
                if negated < 0 {
                    return Ok(Number::I64(negated));
                }
            }
            return Ok(Number::Huge(text.to_string()));
        }
        let value: f64 = text.parse().map_err(|_| Fail::Syntax)?;
        if !value.is_finite() {
            return Err(Fail::Syntax);
        }
        Ok(Number::F64(value))
    }

    /// Skips one value, checking its syntax only (no nesting limit, escapes not decoded), as
    /// serde_json does for values it ignores or keeps as raw text.
    fn skip_value(&mut self) -> Result<(), Fail> {
        self.stack.clear();
        'value: loop {
            self.skip_ws();
            match self.peek() {
                Some(b'{') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                    } else {
                        self.stack.push(b'{');
                        self.skip_key()?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        self.stack.push(b'[');
                        continue 'value;
                    }
                }
                Some(b'"') => self.skip_string()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => {
                    self.number_syntax()?;
                }
                _ => return Err(Fail::Syntax),
            }
            // After a value: close containers, or go on with the next element.
            loop {
                let Some(&open) = self.stack.last() else {
                    return Ok(());
                };
                self.skip_ws();
                match (open, self.peek()) {
                    (_, Some(b',')) => {
                        self.pos += 1;
                        if open == b'{' {
                            self.skip_ws();
                            self.skip_key()?;
                        }
                        continue 'value;
                    }
                    (b'{', Some(b'}')) | (b'[', Some(b']')) => {
                        self.pos += 1;
                        self.stack.pop();
                    }
                    _ => return Err(Fail::Syntax),
                }
            }
        }
    }

    /// `"key"` and `:` inside a skipped object.
    fn skip_key(&mut self) -> Result<(), Fail> {
        if self.peek() != Some(b'"') {
            return Err(Fail::Syntax);
        }
        self.skip_string()?;
        self.skip_ws();
        self.expect(b':')
    }

    /// A string's syntax: escapes well formed (any `\\uXXXX` accepted), no control bytes.
    fn skip_string(&mut self) -> Result<(), Fail> {
        self.pos += 1;
        loop {
            let rest = &self.bytes[self.pos..];
            let i = memchr::memchr2(b'"', b'\\', rest).ok_or(Fail::Syntax)?;
            if has_control(&rest[..i]) {
                return Err(Fail::Syntax);
            }
            self.pos += i + 1;
            if rest[i] == b'"' {
                return Ok(());
            }
            match self.peek() {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 1,
                Some(b'u') => {
                    self.pos += 1;
                    self.hex4()?;
                }
                _ => return Err(Fail::Syntax),
            }
        }
    }
}

#[cfg(test)]
mod control {
    use super::has_control;

    #[test]
    fn a_control_character_is_found_at_every_position_of_every_length() {
        for len in 0..100 {
            let clean: Vec<u8> = (0..len)
                .map(|i| [b'a', b' ', 0x7f, 0xc3, b'~'][i % 5])
                .collect();
            assert!(!has_control(&clean), "{len} bytes, none below 0x20");
            for at in 0..len {
                for control in [0x00, 0x0a, 0x1f] {
                    let mut bytes = clean.clone();
                    bytes[at] = control;
                    assert!(has_control(&bytes), "{control:#x} at {at} of {len}");
                }
            }
        }
    }
}

#[cfg(test)]
mod differential {
    //! The parser must accept exactly what serde_json accepts. Random records are
    //! serialized, mutated byte by byte, and decoded: where values are kept as text the
    //! parser must agree with serde_json's syntax check exactly; where it decodes them it
    //! must refuse all that serde_json's syntax check refuses and accept all that
    //! serde_json decodes. (`\\u` escapes are left out of the exact check: the parser
    //! decodes keys strictly, serde_json's syntax check does not; a unit test covers
    //! surrogates.)
    use crate::chunk::Chunk;
    use crate::decode::{DecodeMode, RecordDecoder, TypeMismatchPolicy, UnknownFieldPolicy};
    use crate::infer::Inference;
    use crate::reject::RejectKind;
    use crate::schema::{FieldType, Schema};
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            prop::num::f64::NORMAL.prop_map(serde_json::Value::from),
            "[a-z\\\"\n\t ü/]{0,8}".prop_map(serde_json::Value::String),
            Just(serde_json::Value::String("2024-01-01T00:00:00Z".into())),
        ];
        leaf.prop_recursive(3, 20, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[a-c]", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn record() -> impl Strategy<Value = serde_json::Value> {
        prop::collection::btree_map("[a-e]", value(), 0..5)
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
    }

    const INSERTS: &[u8] = b",:\"{}[]\\0-.eEntf+ 9";

    fn mutate(text: &str, edits: &[(usize, usize, u8)]) -> Vec<u8> {
        let mut bytes = text.as_bytes().to_vec();
        for &(position, op, byte) in edits {
            if bytes.is_empty() {
                break;
            }
            let at = position % bytes.len();
            match op % 3 {
                0 => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, INSERTS[byte as usize % INSERTS.len()]),
                _ => bytes[at] = INSERTS[byte as usize % INSERTS.len()],
            }
        }
        bytes
    }

    fn syntax_error(schema: &Schema, line: &[u8]) -> Option<bool> {
        let text = std::str::from_utf8(line).ok()?;
        if text.contains("\\u") || text.trim().is_empty() {
            return None;
        }
        let decoder = RecordDecoder::new(
            schema,
            DecodeMode::Fixed {
                unknown_fields: UnknownFieldPolicy::Drop,
                type_mismatch: TypeMismatchPolicy::Null,
            },
            1 << 20,
        );
        let chunk = Chunk {
            source: 0,
            data: line.to_vec(),
            first_line: 1,
            offset: 0,
            last: true,
        };
        let out = decoder.decode(&chunk);
        // A duplicate key is reported where it is found, before the rest is read.
        if out
            .rejects
            .first()
            .is_some_and(|r| r.kind == RejectKind::DuplicateKey)
        {
            return None;
        }
        let syntax = out
            .rejects
            .first()
            .is_some_and(|r| matches!(r.kind, RejectKind::InvalidJson | RejectKind::TooDeep));
        Some(syntax)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_parser_accepts_exactly_what_serde_json_accepts(
            record in record(),
            edits in prop::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 0..4),
        ) {
            let original = serde_json::to_string(&record).unwrap();
            let line = mutate(&original, &edits);
            let mut inference = Inference::new(crate::schema::TimestampUnit::Microsecond);
            inference.add_line(original.as_bytes());
            let typed = inference.into_schema();
            let strings = Schema::new(
                typed.fields.iter().map(|f| crate::schema::Field::new(f.name.clone(), FieldType::String)).collect(),
            );
            let Ok(text) = std::str::from_utf8(&line) else { return Ok(()) };
            // What serde_json accepts when it only skips values (syntax alone) ...
            let lenient = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
            // ... and when it decodes every value (numbers must be finite, nesting limited).
            let strict = serde_json::from_str::<serde_json::Value>(text).is_ok();
            // Top-level values kept as text: exactly the lenient rule.
            if let Some(ours) = syntax_error(&strings, &line) {
                prop_assert_eq!(ours, !lenient, "line {:?} with string columns", text);
            }
            // Typed columns decode what fits and skip what does not: between the two rules.
            if let Some(ours) = syntax_error(&typed, &line) {
                if !lenient {
                    prop_assert!(ours, "line {:?} is not JSON but was accepted", text);
                }
                if strict {
                    prop_assert!(!ours, "line {:?} is JSON but was refused (schema {:?})", text, typed);
                }
            }
        }
    }

    #[test]
    fn surrogates_decode_in_pairs_and_alone_are_refused_where_decoded() {
        let schema = Schema::from_json(
            r#"{"fields":[{"name":"s","type":"string"},{"name":"o","type":"string"}]}"#,
        )
        .unwrap();
        let decoder = RecordDecoder::new(&schema, DecodeMode::Optimistic, 1 << 20);
        let chunk = |text: &str| Chunk {
            source: 0,
            data: text.as_bytes().to_vec(),
            first_line: 1,
            offset: 0,
            last: true,
        };
        let out = decoder.decode(&chunk(
            "{\"s\":\"\\ud83d\\ude80 ok\"}\n{\"s\":\"\\ud800\"}\n{\"o\":{\"x\":\"\\ud800\"}}\n",
        ));
        let batch = out.batch.unwrap();
        use arrow::array::AsArray;
        assert_eq!(batch.column(0).as_string::<i32>().value(0), "🚀 ok");
        assert_eq!(out.rejects.len(), 1, "{:?}", out.rejects);
        assert_eq!(out.rejects[0].line, 2);
        assert_eq!(out.rejects[0].kind, RejectKind::InvalidJson);
        // Kept as JSON text, the nested value is not decoded, and keeps its escape.
        assert_eq!(
            batch.column(1).as_string::<i32>().value(1),
            "{\"x\":\"\\ud800\"}"
        );
    }
}
