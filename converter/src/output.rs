//! Local outputs that appear atomically: written under a temporary name in the target's
//! directory, synced, then renamed. A failed or interrupted run leaves no file that looks
//! complete (at worst a hidden `.NAME.tmp-…` file, removed on drop when the process lives).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::convert::Destination;

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
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| with_path(&target, e))?;
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

    /// Flushes, syncs and renames the file into place (replacing any file of that name).
    pub fn commit(mut self) -> io::Result<()> {
        let file = self
            .file
            .take()
            .expect("invariant: the file is open until commit");
        let file = file
            .into_inner()
            .map_err(|e| with_path(&self.target, e.into_error()))?;
        file.sync_all().map_err(|e| with_path(&self.target, e))?;
        drop(file);
        fs::rename(&self.temp, &self.target).map_err(|e| with_path(&self.target, e))?;
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
            let _ = fs::remove_file(&self.temp);
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
    fn errors_name_the_path() {
        let err = AtomicFile::create("/nonexistent-dir/x.parquet").unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/x.parquet"));
    }
}
