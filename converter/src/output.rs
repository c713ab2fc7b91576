//! Local outputs that appear atomically: written under a temporary name in the target's
//! directory, synced, then renamed. A failed run leaves no file that looks complete, and no
//! temporary file either: it is removed on drop and when a commit fails. A process that is
//! told to stop (a signal) calls [`remove_temporaries`] before it exits; only a process that
//! is killed outright leaves a hidden `.NAME.tmp-…` file.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::convert::Destination;

/// The temporary files of this process's live [`AtomicFile`]s; `None` once
/// [`remove_temporaries`] ran (no temporary file may be created or committed after that).
static TEMPORARIES: Mutex<Option<BTreeSet<PathBuf>>> = Mutex::new(Some(BTreeSet::new()));

fn temporaries() -> MutexGuard<'static, Option<BTreeSet<PathBuf>>> {
    // A panic while the lock was held leaves the set as consistent as each step leaves it.
    TEMPORARIES.lock().unwrap_or_else(|e| e.into_inner())
}

fn stopping() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "the process is stopping")
}

/// Removes the temporary file of every [`AtomicFile`] not yet committed or dropped, and makes
/// every later [`AtomicFile::create`] and [`AtomicFile::commit`] fail: for a process about to
/// exit on a signal, which runs no destructors. Returns how many files it removed.
pub fn remove_temporaries() -> usize {
    let mut guard = temporaries();
    guard
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|path| fs::remove_file(path).is_ok())
        .count()
}

/// A file that becomes visible under its name only on [`AtomicFile::commit`].
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    file: Option<BufWriter<File>>,
}

fn with_path(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

impl AtomicFile {
    /// Starts writing what will become `target`.
    pub fn create(target: impl Into<PathBuf>) -> io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let target = target.into();
        let name = target
            .file_name()
            .ok_or_else(|| {
                with_path(
                    &target,
                    io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
                )
            })?
            .to_string_lossy()
            .into_owned();
        let temp = target.with_file_name(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // Created and registered under the lock: a signal never misses a temporary file.
        let mut registry = temporaries();
        let Some(live) = registry.as_mut() else {
            return Err(with_path(&target, stopping()));
        };
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| with_path(&target, e))?;
        live.insert(temp.clone());
        drop(registry);
        Ok(AtomicFile {
            target,
            temp,
            file: Some(BufWriter::with_capacity(1024 * 1024, file)),
        })
    }

    /// The path the file will have once committed (not the temporary file being written).
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Flushes, syncs and renames the file into place (replacing any file of that name). When
    /// any step fails, the temporary file is removed and the target left as it was.
    pub fn commit(mut self) -> io::Result<()> {
        // On failure the file stays in `self.file`, and drop removes the temporary file.
        let file = self
            .file
            .as_mut()
            .expect("invariant: the file is open until commit");
        file.flush().map_err(|e| with_path(&self.target, e))?;
        file.get_ref()
            .sync_all()
            .map_err(|e| with_path(&self.target, e))?;
        {
            let mut registry = temporaries();
            let Some(live) = registry.as_mut() else {
                return Err(with_path(&self.target, stopping()));
            };
            fs::rename(&self.temp, &self.target).map_err(|e| with_path(&self.target, e))?;
            live.remove(&self.temp);
            self.file = None;
        }
        // Make the rename itself durable.
        #[cfg(unix)]
        if let Some(dir) = self.target.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| with_path(dir, e))?;
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file
            .as_mut()
            .expect("invariant: the file is open until commit")
            .write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file
            .as_mut()
            .expect("invariant: the file is open until commit")
            .write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file
            .as_mut()
            .expect("invariant: the file is open until commit")
            .flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let mut registry = temporaries();
            let _ = fs::remove_file(&self.temp);
            if let Some(live) = registry.as_mut() {
                live.remove(&self.temp);
            }
        }
    }
}

/// A Parquet file and an optional error file on the local file system.
#[derive(Debug, Clone)]
pub struct LocalDestination {
    /// Where the Parquet goes.
    pub parquet: PathBuf,
    /// Where error records go, if anywhere.
    pub rejects: Option<PathBuf>,
}

impl Destination for LocalDestination {
    type Parquet = AtomicFile;
    type Rejects = AtomicFile;

    /// One file: the CLI never splits output into parts.
    fn parquet(&mut self, _part: usize) -> io::Result<AtomicFile> {
        AtomicFile::create(&self.parquet)
    }

    fn rejects(&mut self) -> io::Result<Option<AtomicFile>> {
        self.rejects.as_ref().map(AtomicFile::create).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_appears_only_on_commit_and_temp_is_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.parquet");
        let mut file = AtomicFile::create(&target).unwrap();
        file.write_all(b"data").unwrap();
        assert!(!target.exists());
        file.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"data");

        let mut abandoned = AtomicFile::create(&target).unwrap();
        abandoned.write_all(b"partial").unwrap();
        drop(abandoned);
        assert_eq!(
            fs::read(&target).unwrap(),
            b"data",
            "an abandoned write never replaces the file"
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left"
        );
    }

    #[test]
    fn a_failed_commit_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("taken");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"x").unwrap();
        let mut file = AtomicFile::create(&target).unwrap();
        file.write_all(b"data").unwrap();
        let err = file.commit().unwrap_err();
        assert!(err.to_string().contains("taken"), "{err}");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("taken")]);
    }

    #[test]
    fn errors_name_the_path() {
        let err = AtomicFile::create("/nonexistent-dir/x.parquet").unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/x.parquet"));
    }
}
