//! [`FaultStore`]: a test tool that wraps another store and makes chosen operations fail
//! (ENOSPC, EIO, torn writes) or slow, so that tests can check how the engine behaves when the
//! storage fails (docs/architecture.md "Storage seam"). Production code never uses it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::{Kind, ObjectReader, ObjectStat, ObjectWriter, Put, Seal, Store};
use crate::error::{Error, Result};

/// A store operation that a [`Rule`] can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    List,
    /// [`Store::read`] of a whole object.
    Read,
    /// [`Store::open`], and each [`ObjectReader::read_exact_at`] of the opened object.
    ReadAt,
    Stat,
    /// [`Store::put`] of a whole object.
    Put,
    /// [`Store::create`], each [`ObjectWriter::write_all`] and the commit of a streamed object.
    Stream,
    Delete,
}

/// What happens at a chosen operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fails with ENOSPC ("no space left on device").
    NoSpace,
    /// Fails with EIO.
    Eio,
    /// A write stops half-way and fails with EIO, leaving a partial temporary file as a crash
    /// would (never a partial object under its name). On reads it is [`Fault::Eio`].
    Torn,
    /// The operation succeeds after this delay.
    Latency(Duration),
}

/// When a [`Rule`] fires, counted over the calls it matches (its own count, from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Every matching call.
    Always,
    /// Only the n-th matching call (1-based).
    Nth(u64),
    /// Each matching call with probability 1/`one_in`, from a generator seeded with `seed`
    /// (the same seed gives the same calls).
    Random { seed: u64, one_in: u64 },
}

/// One injection: which calls (kind, op, trigger) and what happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// None: every kind.
    pub kind: Option<Kind>,
    pub op: Op,
    pub trigger: Trigger,
    pub fault: Fault,
}

#[derive(Debug)]
struct State {
    rules: Vec<(Rule, u64, u64)>,
    fired: u64,
    calls: Vec<((Kind, Op), u64)>,
}

/// A store that injects faults into another one (a test tool).
#[derive(Debug, Clone)]
pub struct FaultStore {
    inner: Arc<dyn Store>,
    state: Arc<Mutex<State>>,
}

/// The decision for one call.
enum Action {
    Pass,
    Fail(Fault),
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl FaultStore {
    /// Wraps `inner` with no rules (everything passes through).
    pub fn new(inner: Arc<dyn Store>) -> Self {
        FaultStore {
            inner,
            state: Arc::new(Mutex::new(State {
                rules: Vec::new(),
                fired: 0,
                calls: Vec::new(),
            })),
        }
    }

    /// Adds a rule; the rules are checked in the order they were added.
    pub fn inject(&self, rule: Rule) -> &Self {
        let seed = match rule.trigger {
            Trigger::Random { seed, .. } => seed,
            _ => 0,
        };
        if let Ok(mut s) = self.state.lock() {
            s.rules.push((rule, 0, seed));
        }
        self
    }

    /// Removes every rule (the store passes everything through again).
    pub fn clear(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.rules.clear();
        }
    }

    /// How many faults (latency included) were injected so far.
    pub fn fired(&self) -> u64 {
        self.state.lock().map(|s| s.fired).unwrap_or(0)
    }

    /// How many calls of `op` on `kind` were made so far (faulted ones included).
    pub fn calls(&self, kind: Kind, op: Op) -> u64 {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.calls.iter().find(|(k, _)| *k == (kind, op)).map(|c| c.1))
            .unwrap_or(0)
    }

    fn decide(&self, kind: Kind, op: Op) -> Action {
        let Ok(mut s) = self.state.lock() else {
            return Action::Pass;
        };
        match s.calls.iter_mut().find(|(k, _)| *k == (kind, op)) {
            Some(c) => c.1 += 1,
            None => s.calls.push(((kind, op), 1)),
        }
        let mut hit = None;
        for (rule, count, rng) in s.rules.iter_mut() {
            if rule.op != op || rule.kind.is_some_and(|k| k != kind) {
                continue;
            }
            *count += 1;
            let fires = match rule.trigger {
                Trigger::Always => true,
                Trigger::Nth(n) => *count == n,
                Trigger::Random { one_in, .. } => splitmix(rng).is_multiple_of(one_in.max(1)),
            };
            if fires && hit.is_none() {
                hit = Some(rule.fault);
            }
        }
        match hit {
            Some(f) => {
                s.fired += 1;
                Action::Fail(f)
            }
            None => Action::Pass,
        }
    }

    /// Ok to go on (after any latency), or the injected error.
    fn check(&self, kind: Kind, op: Op, what: &Path) -> Result<Option<Fault>> {
        match self.decide(kind, op) {
            Action::Pass => Ok(None),
            Action::Fail(Fault::Latency(d)) => {
                std::thread::sleep(d);
                Ok(None)
            }
            Action::Fail(Fault::Torn) => Ok(Some(Fault::Torn)),
            Action::Fail(f) => Err(injected(f, what)),
        }
    }
}

fn injected(f: Fault, what: &Path) -> Error {
    let errno = match f {
        Fault::NoSpace => libc::ENOSPC,
        _ => libc::EIO,
    };
    Error::io(
        "injected fault at",
        what,
        std::io::Error::from_raw_os_error(errno),
    )
}

impl Store for FaultStore {
    fn location(&self) -> &Path {
        self.inner.location()
    }
    fn locate(&self, kind: Kind, name: &str) -> PathBuf {
        self.inner.locate(kind, name)
    }
    fn check(&self) -> Result<()> {
        self.inner.check()
    }
    fn list(&self, kind: Kind) -> Result<Vec<String>> {
        if self.check(kind, Op::List, self.inner.location())?.is_some() {
            return Err(injected(Fault::Eio, self.inner.location()));
        }
        self.inner.list(kind)
    }
    fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        if self
            .check(kind, Op::Read, &self.locate(kind, name))?
            .is_some()
        {
            return Err(injected(Fault::Eio, &self.locate(kind, name)));
        }
        self.inner.read(kind, name)
    }
    fn open(&self, kind: Kind, name: &str) -> Result<Box<dyn ObjectReader>> {
        if self
            .check(kind, Op::ReadAt, &self.locate(kind, name))?
            .is_some()
        {
            return Err(injected(Fault::Eio, &self.locate(kind, name)));
        }
        Ok(Box::new(FaultReader {
            inner: self.inner.open(kind, name)?,
            store: self.clone(),
            kind,
        }))
    }
    fn stat(&self, kind: Kind, name: &str) -> Result<Option<ObjectStat>> {
        if self
            .check(kind, Op::Stat, &self.locate(kind, name))?
            .is_some()
        {
            return Err(injected(Fault::Eio, &self.locate(kind, name)));
        }
        self.inner.stat(kind, name)
    }
    fn put(&self, kind: Kind, name: &str, data: &[u8], mode: Put) -> Result<bool> {
        let at = self.locate(kind, name);
        if self.check(kind, Op::Put, &at)?.is_some() {
            // Torn: half of the object reaches a temporary file, which is never committed.
            let mut w = self.inner.create(kind)?;
            w.write_all(&data[..data.len() / 2])?;
            drop(w);
            return Err(injected(Fault::Torn, &at));
        }
        self.inner.put(kind, name, data, mode)
    }
    fn create(&self, kind: Kind) -> Result<Box<dyn ObjectWriter>> {
        let at = self.inner.location().to_path_buf();
        if self.check(kind, Op::Stream, &at)?.is_some() {
            return Err(injected(Fault::Torn, &at));
        }
        Ok(Box::new(FaultWriter {
            inner: Some(self.inner.create(kind)?),
            store: self.clone(),
            kind,
        }))
    }
    fn delete(&self, kind: Kind, name: &str) -> Result<bool> {
        if self
            .check(kind, Op::Delete, &self.locate(kind, name))?
            .is_some()
        {
            return Err(injected(Fault::Eio, &self.locate(kind, name)));
        }
        self.inner.delete(kind, name)
    }
    fn seal(&self, kind: Kind, name: &str, until: SystemTime) -> Result<Seal> {
        self.inner.seal(kind, name, until)
    }

    fn sealed_until(&self, kind: Kind, name: &str) -> Result<Option<SystemTime>> {
        self.inner.sealed_until(kind, name)
    }
    fn unseal(&self, kind: Kind, name: &str) -> Result<bool> {
        self.inner.unseal(kind, name)
    }
    fn seal_intact(&self, kind: Kind, name: &str) -> Result<Option<bool>> {
        self.inner.seal_intact(kind, name)
    }
    fn clean_tmp(&self, max_age: Duration) -> usize {
        self.inner.clean_tmp(max_age)
    }
    fn clean_lock_staging(&self, max_age: Duration) -> usize {
        self.inner.clean_lock_staging(max_age)
    }
}

struct FaultReader {
    inner: Box<dyn ObjectReader>,
    store: FaultStore,
    kind: Kind,
}

impl ObjectReader for FaultReader {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        if self
            .store
            .check(self.kind, Op::ReadAt, self.inner.location())?
            .is_some()
        {
            return Err(injected(Fault::Eio, self.inner.location()));
        }
        self.inner.read_exact_at(buf, offset)
    }
    fn size(&self) -> Result<u64> {
        self.inner.size()
    }
    fn location(&self) -> &Path {
        self.inner.location()
    }
}

struct FaultWriter {
    inner: Option<Box<dyn ObjectWriter>>,
    store: FaultStore,
    kind: Kind,
}

impl FaultWriter {
    fn inner(&mut self) -> Result<&mut Box<dyn ObjectWriter>> {
        self.inner
            .as_mut()
            .ok_or_else(|| Error::Internal("write after a torn write".into()))
    }
}

impl ObjectWriter for FaultWriter {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        let at = self.store.inner.location().to_path_buf();
        if self.store.check(self.kind, Op::Stream, &at)?.is_some() {
            // Torn: half of this write lands, then the writer is gone (its temp file stays).
            let w = self.inner()?;
            w.write_all(&data[..data.len() / 2])?;
            self.inner = None;
            return Err(injected(Fault::Torn, &at));
        }
        self.inner()?.write_all(data)
    }
    fn commit(mut self: Box<Self>, name: &str) -> Result<()> {
        let at = self.store.locate(self.kind, name);
        if self.store.check(self.kind, Op::Stream, &at)?.is_some() {
            // Torn: the data is written but never made durable under its name.
            self.inner = None;
            return Err(injected(Fault::Torn, &at));
        }
        match self.inner.take() {
            Some(w) => w.commit(name),
            None => Err(Error::Internal("commit after a torn write".into())),
        }
    }
    fn abort(mut self: Box<Self>) {
        if let Some(w) = self.inner.take() {
            w.abort();
        }
    }
}
