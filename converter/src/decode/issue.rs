//! What went wrong on a line and where: the per-line context the parser reports into.
//!
//! The parser only says *that* it stopped ([`Fail`]); the details (which field, which types,
//! the path to it) live here, together with the policies that decide whether a misfit value
//! is a problem at all (dropped fields, nulled values). Kept apart from the parser so that the
//! parser is only about JSON, and what a misfit means (policy, wording) is decided here.

use super::columns::Column;
use super::parser::Fail;
use super::{DecodeMode, TypeMismatchPolicy};
use crate::reject::RejectKind;

/// The dotted path of a field as reasons name it (`user.tags[2].name`).
pub(super) fn join(path: &[Segment], last: &str) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if !last.is_empty() {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(last);
    }
    out
}

/// A problem found while decoding a line; the path to it is collected while unwinding.
pub(super) enum Issue {
    NotAnObject {
        found: &'static str,
    },
    DuplicateKey {
        name: String,
    },
    UnknownField {
        name: String,
    },
    TypeMismatch {
        expected: &'static str,
        found: String,
        detail: Option<String>,
    },
}

impl Issue {
    pub(super) fn describe(self, path: &[Segment]) -> (RejectKind, String) {
        match self {
            Issue::UnknownField { name } => (
                RejectKind::UnknownField,
                format!("field `{}` is not in the schema", join(path, &name)),
            ),
            Issue::TypeMismatch {
                expected,
                found,
                detail,
            } => {
                let mut reason = format!(
                    "field `{}`: expected {expected}, found {found}",
                    join(path, "")
                );
                if let Some(detail) = detail {
                    reason.push_str(": ");
                    reason.push_str(&detail);
                }
                (RejectKind::TypeMismatch, reason)
            }
            Issue::NotAnObject { .. } | Issue::DuplicateKey { .. } => {
                unreachable!("invariant: only schema issues are described here")
            }
        }
    }
}

pub(super) enum Segment {
    Key(String),
    Index(usize),
}

pub(super) struct LineCtx {
    pub(super) mode: DecodeMode,
    pub(super) issue: Option<Issue>,
    /// Path to the issue, innermost first.
    pub(super) reversed_path: Vec<Segment>,
    pub(super) dropped: u64,
    pub(super) nulled: u64,
}

impl LineCtx {
    pub(super) fn new(mode: DecodeMode) -> Self {
        LineCtx {
            mode,
            issue: None,
            reversed_path: Vec::new(),
            dropped: 0,
            nulled: 0,
        }
    }

    pub(super) fn start_line(&mut self) {
        self.issue = None;
        self.reversed_path.clear();
        self.dropped = 0;
        self.nulled = 0;
    }

    pub(super) fn path(&mut self) -> Vec<Segment> {
        let mut path = std::mem::take(&mut self.reversed_path);
        path.reverse();
        path
    }

    pub(super) fn fail(&mut self, issue: Issue) -> Result<(), Fail> {
        self.issue = Some(issue);
        Err(Fail::Issue)
    }

    /// Applies the mismatch policy to `column`, which has been handed a value it cannot hold.
    pub(super) fn mismatch(
        &mut self,
        column: &mut Column,
        found: String,
        detail: Option<String>,
    ) -> Result<(), Fail> {
        match self.mode {
            DecodeMode::Fixed {
                type_mismatch: TypeMismatchPolicy::Null,
                ..
            } => {
                column.append_null();
                self.nulled += 1;
                Ok(())
            }
            _ => self.fail(Issue::TypeMismatch {
                expected: column.type_name(),
                found,
                detail,
            }),
        }
    }
}

pub(super) fn preview(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        format!("string {s:?}")
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("string {cut:?}…")
    }
}
