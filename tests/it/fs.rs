//! `reveille::fs`: whole-file reads and writes on the blocking pool, in a
//! temporary directory each test makes and removes.

use crate::util;

use std::io;
use std::path::{Path, PathBuf};

use reveille::fs;
use util::{pattern, run};

/// A fresh directory under the system's temp dir, removed on drop (a failed
/// test included).
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("reveille-fs-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).expect("create the test's temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn write_then_read_round_trips_bytes_and_text() {
    let dir = TempDir::new("round-trip");
    let bytes_path = dir.path().join("bytes");
    let text_path = dir.path().join("text.txt");
    // 1 MiB that is not UTF-8, so that no step can be a text shortcut.
    let bytes = pattern(1, 1 << 20);
    run(async {
        fs::write(&bytes_path, &bytes).await.unwrap();
        util::assert_same_bytes(&fs::read(&bytes_path).await.unwrap(), &bytes, "read");

        fs::write(&text_path, "héllo\n").await.unwrap();
        assert_eq!(fs::read_to_string(&text_path).await.unwrap(), "héllo\n");

        // A write replaces the whole file: nothing of the longer one stays.
        fs::write(&bytes_path, b"short").await.unwrap();
        assert_eq!(fs::read(&bytes_path).await.unwrap(), b"short");
    });
    // What the pool wrote is what std reads.
    assert_eq!(std::fs::read_to_string(&text_path).unwrap(), "héllo\n");
}

#[test]
fn file_futures_are_send_and_static_so_they_can_be_spawned() {
    let dir = TempDir::new("spawned");
    let path = dir.path().join("from-a-task");
    run(async {
        let write = reveille::spawn(fs::write(path.clone(), "from a task"));
        write.await.unwrap().unwrap();
        let read = reveille::spawn(fs::read_to_string(path));
        assert_eq!(read.await.unwrap().unwrap(), "from a task");
    });
}

#[test]
fn reading_a_missing_file_is_not_found() {
    let dir = TempDir::new("missing");
    let path = dir.path().join("no-such-file");
    run(async {
        let error = fs::read(&path).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error:?}");
        let error = fs::read_to_string(&path).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error:?}");
        let error = fs::write(dir.path().join("no-such-dir/file"), "x")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error:?}");
    });
}

#[test]
fn read_to_string_of_bytes_that_are_not_utf8_is_invalid_data() {
    let dir = TempDir::new("not-utf8");
    let path = dir.path().join("latin1");
    std::fs::write(&path, b"caf\xe9").unwrap();
    run(async {
        let error = fs::read_to_string(&path).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error:?}");
    });
}
