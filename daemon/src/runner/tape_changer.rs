//! The media changer of a tape copy (docs/tape.md, "Tape targets"): volume after volume it
//! takes the next medium of the pool that is in the target's library — writable media of the
//! pool first, then scratch media, which it labels for the pool — and, when none is left, asks
//! for one (`MediaNeeded`) and waits for it up to a timeout.

use bms_tape::changer::LibraryChanger;
use bms_tape::format::label::Label;
use bms_tape::format::reader::{label_medium, read_label};
use bms_tape::format::writer::MediaChanger;
use bms_tape::format::DEFAULT_BLOCK_SIZE;
use bms_tape::library::{Place, VirtualLibrary};
use bms_tape::st::StDrive;
use bms_tape::{TapeDrive, TapeError};
use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A medium the catalog offers for the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub barcode: String,
    /// Scratch: it gets the pool's label before its first write.
    pub scratch: bool,
    /// Its number in the pool's media set, when it has one.
    pub sequence: Option<u32>,
}

/// What the changer asks of the daemon while it works.
pub trait ChangerHooks: Send {
    /// Says that a medium is needed (publishes `MediaNeeded`).
    fn notify(&mut self, message: &str);
    /// The pool's candidates now, in the order to use them.
    fn candidates(&mut self) -> Result<Vec<Candidate>, TapeError>;
    /// How long to wait for a medium after asking.
    fn timeout(&self) -> Duration;
    /// Whether the run was stopped (cancelled, timed out, bmsd stopping).
    fn stopped(&self) -> bool;
    /// A medium came after [`ChangerHooks::notify`]: the copy goes on.
    fn resumed(&mut self) {}
}

enum Sink {
    Library {
        library: VirtualLibrary,
        changer: Box<LibraryChanger>,
        drive: u32,
    },
    Device {
        path: PathBuf,
        drive: Option<StDrive>,
    },
}

/// What the changer did, for the catalog.
#[derive(Debug, Default, Clone)]
pub struct ChangerLog {
    /// Scratch media it labelled for the pool, with their sequence numbers.
    pub labelled: Vec<(String, u32)>,
    /// Media it wrote to, in volume order.
    pub used: Vec<String>,
    /// Writable media it found without room for another archive (now full).
    pub found_full: Vec<String>,
    /// Media the archive left for the next volume because they filled (full, whether or not
    /// the copy then completes).
    pub filled: Vec<String>,
}

/// The changer of one tape copy.
pub struct PoolChanger {
    sink: Sink,
    pool: String,
    media_set: String,
    next_sequence: u32,
    candidates: VecDeque<Candidate>,
    tried: HashSet<String>,
    volume: u32,
    hooks: Box<dyn ChangerHooks>,
    pub log: ChangerLog,
}

impl PoolChanger {
    /// A changer over drive `drive` of `library`.
    pub fn library(
        library: VirtualLibrary,
        drive: u32,
        pool: &str,
        next_sequence: u32,
        hooks: Box<dyn ChangerHooks>,
    ) -> Result<PoolChanger, TapeError> {
        let changer = Box::new(LibraryChanger::new(&library, drive, Vec::new())?);
        Ok(PoolChanger::with(
            Sink::Library {
                library,
                changer,
                drive,
            },
            pool,
            next_sequence,
            hooks,
        ))
    }

    /// A changer over an st device whose cartridge is loaded by hand.
    pub fn device(path: PathBuf, pool: &str, hooks: Box<dyn ChangerHooks>) -> PoolChanger {
        PoolChanger::with(Sink::Device { path, drive: None }, pool, 1, hooks)
    }

    fn with(sink: Sink, pool: &str, next_sequence: u32, hooks: Box<dyn ChangerHooks>) -> Self {
        PoolChanger {
            sink,
            pool: pool.to_owned(),
            media_set: pool.to_owned(),
            next_sequence,
            candidates: VecDeque::new(),
            tried: HashSet::new(),
            volume: 0,
            hooks,
            log: ChangerLog::default(),
        }
    }

    /// Where a medium is in the library now: `drive` or `slot` and a name for the catalog.
    pub fn place_of(&self, barcode: &str, target: &str) -> Option<(bool, String)> {
        match &self.sink {
            Sink::Library { library, .. } => match library.find(barcode).ok().flatten()? {
                Place::Drive(d) => Some((true, format!("{target}/drive-{d}"))),
                Place::Slot(s) => Some((false, format!("{target}/slot-{s}"))),
            },
            Sink::Device { path, .. } => Some((true, path.display().to_string())),
        }
    }

    fn present(&self, barcode: &str) -> Result<bool, TapeError> {
        match &self.sink {
            Sink::Library { library, drive, .. } => Ok(match library.find(barcode)? {
                Some(Place::Slot(_)) => true,
                Some(Place::Drive(d)) => d == *drive,
                None => false,
            }),
            Sink::Device { .. } => Ok(true),
        }
    }

    /// Asks for a medium and waits until the catalog offers one that is in the library.
    fn wait_for_media(&mut self, message: &str) -> Result<(), TapeError> {
        self.hooks.notify(message);
        let timeout = self.hooks.timeout();
        let until = Instant::now() + timeout;
        loop {
            let mut fresh = Vec::new();
            for c in self.hooks.candidates()? {
                if !self.tried.contains(&c.barcode) && self.present(&c.barcode)? {
                    fresh.push(c);
                }
            }
            if !fresh.is_empty() {
                self.candidates.extend(fresh);
                self.hooks.resumed();
                return Ok(());
            }
            if self.hooks.stopped() {
                return Err(TapeError::Library(
                    "the run was stopped while it waited for a medium".into(),
                ));
            }
            let now = Instant::now();
            if now >= until {
                return Err(TapeError::Library(format!(
                    "medium needed: {message}; none came within {} s (media_wait_secs)",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep((until - now).min(Duration::from_millis(250)));
        }
    }

    /// Loads the next usable candidate for volume `volume`.
    fn next_medium(&mut self, volume: u32) -> Result<(), TapeError> {
        if self.tried.is_empty() && self.candidates.is_empty() {
            self.candidates = self.hooks.candidates()?.into();
        }
        loop {
            let Some(c) = self.candidates.pop_front() else {
                let msg = if volume == 1 {
                    format!(
                        "no writable or scratch medium of pool {} is in the library: put a \
                         cartridge into an empty slot and add it (`bmsctl media add BARCODE \
                         --media-type TYPE`)",
                        self.pool
                    )
                } else {
                    format!(
                        "volume {volume} of the archive needs another writable or scratch \
                         medium of pool {} in the library",
                        self.pool
                    )
                };
                self.wait_for_media(&msg)?;
                continue;
            };
            if !self.tried.insert(c.barcode.clone()) || !self.present(&c.barcode)? {
                continue;
            }
            let Sink::Library { changer, .. } = &mut self.sink else {
                return Err(TapeError::Library("not a library".into()));
            };
            let drive = changer.mount(&c.barcode)?;
            if drive.status()?.write_protected {
                return Err(TapeError::WriteProtected { medium: c.barcode });
            }
            let label = match read_label(drive) {
                Ok(l) => Some(l),
                Err(TapeError::Format(_)) if c.scratch || c.sequence.is_some() => None,
                Err(e) => return Err(e),
            };
            match label {
                Some(l) if !c.scratch => {
                    if l.pool != self.pool {
                        return Err(TapeError::Library(format!(
                            "cartridge {} is labelled for pool {} on tape, but the catalog has it \
                             in pool {}: erase it (`bmsctl media erase {}`) or fix the pool",
                            c.barcode, l.pool, self.pool, c.barcode
                        )));
                    }
                    let room = drive.remaining_hint();
                    if room.is_some_and(|r| r < 8 * u64::from(l.block_size)) {
                        self.log.found_full.push(c.barcode.clone());
                        continue;
                    }
                }
                _ => {
                    // Scratch (or labelled in the catalog only): its label goes on tape now.
                    let sequence = match c.sequence {
                        Some(s) if !c.scratch => s,
                        _ => {
                            let s = self.next_sequence;
                            self.next_sequence += 1;
                            s
                        }
                    };
                    let label = Label {
                        barcode: c.barcode.clone(),
                        pool: self.pool.clone(),
                        media_set: self.media_set.clone(),
                        sequence,
                        labelled: jiff::Timestamp::now().as_second(),
                        block_size: DEFAULT_BLOCK_SIZE,
                    };
                    label_medium(drive, &label)?;
                    if c.scratch {
                        self.log.labelled.push((c.barcode.clone(), sequence));
                    }
                }
            }
            self.log.used.push(c.barcode);
            self.volume = volume;
            return Ok(());
        }
    }

    fn device_medium(&mut self, volume: u32) -> Result<(), TapeError> {
        let Sink::Device { path, drive } = &mut self.sink else {
            return Err(TapeError::Library("not a device".into()));
        };
        if volume > 1 {
            return Err(TapeError::Library(format!(
                "medium needed: volume {volume} of the archive needs another cartridge, and bms \
                 does not drive the changer of {}: use a larger cartridge, or a virtual or \
                 supported library",
                path.display()
            )));
        }
        let path = path.clone();
        let online = |d: &mut Option<StDrive>| -> Result<bool, TapeError> {
            if d.is_none() {
                *d = Some(StDrive::open(&path)?);
            }
            match d.as_mut().map(|d| d.status()) {
                Some(Ok(s)) => Ok(s.online),
                Some(Err(TapeError::NoMedium { .. })) => Ok(false),
                Some(Err(e)) => Err(e),
                None => Ok(false),
            }
        };
        if !online(drive)? {
            let msg = format!(
                "drive {} holds no cartridge: load a writable cartridge of pool {}",
                path.display(),
                self.pool
            );
            self.hooks.notify(&msg);
            let until = Instant::now() + self.hooks.timeout();
            while let Sink::Device { drive, .. } = &mut self.sink {
                if online(drive)? {
                    break;
                }
                if self.hooks.stopped() || Instant::now() >= until {
                    return Err(TapeError::Library(format!(
                        "medium needed: {msg}; none came within {} s (media_wait_secs)",
                        self.hooks.timeout().as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        let Sink::Device {
            drive: Some(drive), ..
        } = &mut self.sink
        else {
            return Err(TapeError::NoMedium {
                drive: path.display().to_string(),
            });
        };
        let label = read_label(drive)?;
        if label.pool != self.pool {
            return Err(TapeError::Library(format!(
                "the cartridge in {} is labelled for pool {}, not {}: load a cartridge of pool {}",
                path.display(),
                label.pool,
                self.pool,
                self.pool
            )));
        }
        self.log.used.push(label.barcode);
        self.volume = volume;
        Ok(())
    }

    fn drive(&mut self) -> Result<&mut dyn TapeDrive, TapeError> {
        let current = self.log.used.last().cloned();
        match &mut self.sink {
            Sink::Library { changer, .. } => {
                let Some(b) = current else {
                    return Err(TapeError::Library("no medium is loaded".into()));
                };
                Ok(changer.mount(&b)? as &mut dyn TapeDrive)
            }
            Sink::Device { drive, path } => match drive {
                Some(d) => Ok(d as &mut dyn TapeDrive),
                None => Err(TapeError::NoMedium {
                    drive: path.display().to_string(),
                }),
            },
        }
    }
}

impl MediaChanger for PoolChanger {
    fn medium(&mut self, volume: u32) -> Result<&mut dyn TapeDrive, TapeError> {
        if volume != self.volume {
            if self.volume >= 1 && volume > self.volume {
                if let Some(b) = self.log.used.last() {
                    self.log.filled.push(b.clone());
                }
            }
            match self.sink {
                Sink::Library { .. } => self.next_medium(volume)?,
                Sink::Device { .. } => self.device_medium(volume)?,
            }
        }
        self.drive()
    }
}
