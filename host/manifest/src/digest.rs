//! Digests that tell whether something changed since it was last seen: of
//! bytes (a component), and of files' names, sizes and modification times
//! (a folder's manifests, components and sources, for the watchers).
//!
//! Both are for comparison within one process only: the hasher is not
//! stable across builds of wasmfn, so a digest is never written anywhere.
//! What must survive a restart (a build's inputs) uses SHA-256 instead.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;

/// A digest of `bytes`.
pub fn content_digest(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// A digest of files' paths, sizes and modification times, added one at a
/// time (in a stable order: the caller sorts).
#[derive(Default)]
pub struct FilesFingerprint(DefaultHasher);

impl FilesFingerprint {
    /// Adds one file; a file that cannot be read is left out, so its
    /// coming back counts as a change.
    pub fn add(&mut self, path: &Path) {
        let Ok(meta) = std::fs::metadata(path) else { return };
        path.hash(&mut self.0);
        meta.len().hash(&mut self.0);
        meta.modified().ok().hash(&mut self.0);
    }

    /// The digest of every file added.
    pub fn finish(&self) -> u64 {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_digests_differ_with_the_content() {
        assert_eq!(content_digest(b"abc"), content_digest(b"abc"));
        assert_ne!(content_digest(b"abc"), content_digest(b"abd"));
    }

    #[test]
    fn a_fingerprint_changes_when_a_file_grows_or_goes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.json");
        std::fs::write(&f, "{}").unwrap();
        let print = || {
            let mut fp = FilesFingerprint::default();
            fp.add(&f);
            fp.finish()
        };
        let first = print();
        assert_eq!(first, print());
        std::fs::write(&f, "{\"x\":1}").unwrap();
        let grown = print();
        assert_ne!(first, grown);
        std::fs::remove_file(&f).unwrap();
        assert_ne!(grown, print());
    }
}
