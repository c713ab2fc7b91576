//! What `convert` checks before it reads or writes anything: that no output is also an input,
//! the schema file or the other output (whatever the spelling: symlinks, hard links, `./`,
//! `sub/..`), that no output is a directory, and that the schema file is usable; and, after a
//! failure, whether an input looks like one JSON document rather than NDJSON.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use converter::input::{decompressed, Source};
use converter::schema::Schema;

use crate::sinks::is_s3;

/// What a path or URL names, compared across spellings.
#[derive(Debug, PartialEq, Eq)]
enum Identity {
    /// An existing file: its device and inode (symlinks followed, hard links equal).
    Inode(u64, u64),
    /// A file not created yet: its absolute path, with its existing ancestors resolved.
    Path(PathBuf),
    /// An `s3://` URL, compared as written.
    Url(String),
}

fn identity(name: &str) -> Option<Identity> {
    if name == "-" {
        return None;
    }
    if is_s3(name) {
        return Some(Identity::Url(name.to_string()));
    }
    let path = Path::new(name);
    Some(match std::fs::metadata(path) {
        Ok(meta) => Identity::Inode(meta.dev(), meta.ino()),
        Err(_) => Identity::Path(resolved(&dangling_target(path))),
    })
}

/// Where `path` leads when it is a symlink to a file not created yet (writing through it
/// creates that file): the links followed, 40 at most (the kernel's own limit).
fn dangling_target(path: &Path) -> PathBuf {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        let Some(target) = is_link.then(|| std::fs::read_link(&path).ok()).flatten() else {
            break;
        };
        path = match path.parent() {
            Some(parent) if target.is_relative() => parent.join(target),
            _ => target,
        };
    }
    path
}

/// `path` made absolute, its longest existing ancestor canonicalized and the rest appended
/// (`.` and `..` in the rest applied as written: nothing there exists to be a symlink).
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::env::current_dir().map_or_else(|_| path.to_path_buf(), |d| d.join(path));
    let mut base = absolute.clone();
    let mut tail: Vec<OsString> = Vec::new();
    loop {
        if let Ok(mut real) = std::fs::canonicalize(&base) {
            for part in tail.iter().rev() {
                match Path::new(part).components().next() {
                    Some(Component::ParentDir) => {
                        real.pop();
                    }
                    Some(Component::CurDir) | None => {}
                    Some(_) => real.push(part),
                }
            }
            return real;
        }
        let Some(last) = base.components().next_back() else {
            return absolute;
        };
        tail.push(last.as_os_str().to_owned());
        if !base.pop() {
            return absolute;
        }
    }
}

/// The paths `convert` was given, each with how the user named it.
pub struct Named<'a> {
    /// `-o`.
    pub output: &'a str,
    /// `--errors`.
    pub errors: Option<&'a str>,
    /// `--schema`.
    pub schema: Option<&'a Path>,
    /// The inputs.
    pub inputs: &'a [String],
}

/// Refuses (with a message naming both arguments) any output that is also an input, the
/// schema file or the other output, and any output that is a directory.
pub fn check_outputs(named: &Named<'_>) -> Result<(), String> {
    let mut writers = vec![(format!("-o {}", named.output), named.output)];
    if let Some(errors) = named.errors {
        writers.push((format!("--errors {errors}"), errors));
    }
    for (label, target) in &writers {
        if !is_s3(target) && (Path::new(target).is_dir() || target.ends_with('/')) {
            return Err(format!(
                "{label} is a directory: give the path of the file to write (for example \
                 {}/out.{})",
                target.trim_end_matches('/'),
                if label.starts_with("-o") {
                    "parquet"
                } else {
                    "errors.ndjson"
                }
            ));
        }
    }
    let mut read: Vec<(String, Option<Identity>)> = named
        .inputs
        .iter()
        .map(|input| (format!("input {input}"), identity(input)))
        .collect();
    if let Some(schema) = named.schema {
        let name = schema.to_string_lossy();
        read.push((format!("--schema {name}"), identity(&name)));
    }
    let written: Vec<(String, Option<Identity>)> = writers
        .iter()
        .map(|(label, target)| (label.clone(), identity(target)))
        .collect();
    if let [(output, Some(a)), (errors, Some(b))] = &written[..] {
        if a == b {
            return Err(same_file(errors, output));
        }
    }
    for (writer, writes) in &written {
        for (reader, reads) in &read {
            if writes.is_some() && writes == reads {
                return Err(same_file(writer, reader));
            }
        }
    }
    Ok(())
}

fn same_file(writer: &str, other: &str) -> String {
    let flag = writer.split(' ').next().unwrap_or(writer);
    format!(
        "{writer} and {other} are the same file, which writing {flag} would destroy: give \
         {flag} another path (nothing was written)"
    )
}

/// Reads a `--schema` file: a UTF-8 BOM before it is skipped; a schema without fields is
/// refused (Parquet needs a column). The message gives each cause once.
pub fn load_schema(path: &Path) -> Result<Schema, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the schema file {}: {e}", path.display()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let schema = Schema::from_json(text).map_err(|e| {
        format!(
            "cannot use the schema file {}: {}",
            path.display(),
            causes(&e)
        )
    })?;
    if schema.fields.is_empty() {
        return Err(format!(
            "the schema file {} has no fields: Parquet needs at least one column; list them \
             (`ndjson-parquet schema INPUT` prints the schema of an input)",
            path.display()
        ));
    }
    Ok(schema)
}

/// An error and its causes, joined by `: `, leaving out a cause its predecessor already
/// quotes (many errors repeat their source in their own message).
pub fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let said = next.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = next.source();
    }
    text
}

/// Whether `source` looks like one JSON document (pretty-printed, or an array) rather than
/// NDJSON: its first non-blank line is `{` or `[` alone, or it starts with `[` and its first
/// line is not a whole JSON value or is its only line. Only re-readable sources are looked at.
pub fn looks_like_a_document(source: &Arc<dyn Source>) -> bool {
    const HEAD: u64 = 64 * 1024;
    if !source.can_reopen() {
        return false;
    }
    let Ok((_, reader)) = source
        .open()
        .and_then(|raw| decompressed(raw, Arc::new(AtomicU64::new(0))))
    else {
        return false;
    };
    let mut head = Vec::new();
    if reader.take(HEAD).read_to_end(&mut head).is_err() {
        return false;
    }
    let whole = (head.len() as u64) < HEAD;
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head);
    let mut lines = text
        .split(|b| *b == b'\n')
        .map(|l| l.trim_ascii())
        .filter(|l| !l.is_empty());
    let Some(first) = lines.next() else {
        return false;
    };
    if first == b"{" || first == b"[" {
        return true;
    }
    if !first.starts_with(b"[") {
        return false;
    }
    let complete = serde_json::from_slice::<serde::de::IgnoredAny>(first).is_ok();
    !complete || (whole && lines.next().is_none())
}

/// The hint for an input that [`looks_like_a_document`].
pub fn document_hint(name: &str) -> String {
    format!(
        "{name} looks like one JSON document (pretty-printed or an array), not NDJSON (one \
         JSON value per line): convert it with `jq -c '.[]' {name}` (an array) or `jq -c . \
         {name}` (objects), then convert the result"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_through_existing_ancestors() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(base.join("sub")).unwrap();
        assert_eq!(resolved(&base.join("sub/../x")), base.join("x"));
        assert_eq!(resolved(&base.join("nope/../x")), base.join("x"));
        assert_eq!(resolved(&base.join("./sub/./y")), base.join("sub/y"));
    }

    #[test]
    fn a_symlink_to_a_file_not_created_yet_is_that_file() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::os::unix::fs::symlink("out.parquet", base.join("link")).unwrap();
        std::os::unix::fs::symlink(base.join("link"), base.join("link2")).unwrap();
        let out = identity(base.join("out.parquet").to_str().unwrap());
        assert!(matches!(out, Some(Identity::Path(_))));
        assert_eq!(identity(base.join("link").to_str().unwrap()), out);
        assert_eq!(identity(base.join("link2").to_str().unwrap()), out);
        std::os::unix::fs::symlink("loop", base.join("loop")).unwrap();
        assert!(identity(base.join("loop").to_str().unwrap()).is_some());
    }

    #[test]
    fn a_cause_quoted_by_its_error_is_given_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "bad file: {}", self.0)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Outer(std::io::Error::other("expected value"));
        assert_eq!(causes(&error), "bad file: expected value");
    }
}
