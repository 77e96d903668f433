//! Write-behind of packs (docs/s3.md "Parallelism"): a committed pack is uploaded by a thread of
//! its own while the backup fills the next one, with at most `parallel` uploads in flight (and
//! so in memory). Every other operation of the store first waits until the uploads in flight are
//! done, so that nothing observes a pack before its upload completed; the objects that refer to
//! packs (index files, snapshots) and the next pack commits also fail when an upload failed.

use std::sync::{Condvar, Mutex};

use bms_engine::store::{Kind, Store};
use bms_engine::{Error, Result};

use crate::client::S3Error;
use crate::store::{lock, op, S3Store};

impl S3Store {
    /// Uploads a committed pack in the background (docs/s3.md "Parallelism"): waits while
    /// `parallel` uploads are in flight; fails when an earlier one failed.
    pub(crate) fn upload_behind(&self, key: String, name: &str, data: Vec<u8>) -> Result<()> {
        let write = op(Kind::Packs, true);
        self.behind
            .start(self.client.cfg.parallel)
            .map_err(|(n, e)| self.err(write, Kind::Packs, &n, &e))?;
        let (store, owned) = (self.clone(), name.to_owned());
        let spawned = std::thread::Builder::new()
            .name("s3-upload".into())
            .spawn(move || {
                let r = store.upload(&key, &data);
                store.behind.done(&owned, r);
            });
        spawned.map(|_| ()).map_err(|e| {
            self.behind.done(name, Ok(()));
            Error::io(write, self.locate(Kind::Packs, name), e)
        })
    }

    /// Before an operation: waits for the pack uploads in flight; for the objects that refer
    /// to packs (index files, snapshots), fails when one of those uploads failed.
    pub(crate) fn settle(&self, kind: Kind) -> Result<()> {
        if !matches!(kind, Kind::Index | Kind::Snapshots | Kind::Packs) {
            self.behind.drain();
            return Ok(());
        }
        self.behind
            .drain_checked()
            .map_err(|(n, e)| self.err(op(Kind::Packs, true), Kind::Packs, &n, &e))
    }
}

/// The uploads in flight of one store (shared by its clones).
#[derive(Debug, Default)]
pub(crate) struct Behind {
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct State {
    in_flight: usize,
    /// The first upload that failed: its object name and error. Sticky: once a pack is lost,
    /// no index or snapshot of this store may be written.
    failed: Option<(String, S3Error)>,
}

impl Behind {
    /// Waits until fewer than `max` uploads are in flight, then counts one more; the failure of
    /// an earlier upload instead.
    pub(crate) fn start(&self, max: usize) -> std::result::Result<(), (String, S3Error)> {
        let mut s = lock(&self.state);
        while s.in_flight >= max.max(1) && s.failed.is_none() {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if let Some(f) = &s.failed {
            return Err(f.clone());
        }
        s.in_flight += 1;
        Ok(())
    }

    /// An upload ended.
    pub(crate) fn done(&self, name: &str, result: std::result::Result<(), S3Error>) {
        let mut s = lock(&self.state);
        s.in_flight = s.in_flight.saturating_sub(1);
        if let Err(e) = result {
            s.failed.get_or_insert_with(|| (name.to_owned(), e));
        }
        self.cv.notify_all();
    }

    /// Waits until no upload is in flight.
    pub(crate) fn drain(&self) {
        let mut s = lock(&self.state);
        while s.in_flight > 0 {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits until no upload is in flight; the failure of one of them, if any.
    pub(crate) fn drain_checked(&self) -> std::result::Result<(), (String, S3Error)> {
        let mut s = lock(&self.state);
        while s.in_flight > 0 {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        match &s.failed {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn boom() -> S3Error {
        S3Error::Transport {
            timeout: false,
            message: "connection refused".into(),
        }
    }

    #[test]
    fn bounds_uploads_and_keeps_the_first_failure() {
        let b = Arc::new(Behind::default());
        b.start(2).unwrap();
        b.start(2).unwrap();
        let b2 = b.clone();
        let t = std::thread::spawn(move || b2.start(2));
        // The third start waits until one ends.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!t.is_finished());
        b.done("a", Ok(()));
        t.join().unwrap().unwrap();
        b.done("b", Err(boom()));
        b.done("c", Ok(()));
        b.drain();
        let (name, _) = b.drain_checked().unwrap_err();
        assert_eq!(name, "b");
        assert_eq!(b.start(2).unwrap_err().0, "b", "sticky");
    }
}
