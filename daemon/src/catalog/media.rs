//! The media manager's records (docs/tape.md, "Media manager"): pools, media (tapes and
//! removable disks) with their state, location and use, and the moves between locations.
//! Tape archives and the evidence for compliance are in `tape_archives.rs`.

use super::{db_err, now_rfc3339, Actor, Catalog};
use bms_proto::{ApiError, ErrorKind};
use rusqlite::OptionalExtension;

/// The media types the manager knows.
pub const MEDIA_TYPES: &[&str] = &["lto5", "lto6", "lto7", "lto8", "lto9", "rdx", "disk"];

/// A medium's state in its lifecycle: scratch → writable → full → expired → scratch; retired
/// and damaged media are never written again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaState {
    Scratch,
    Writable,
    Full,
    Expired,
    Retired,
    Damaged,
}

impl MediaState {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaState::Scratch => "scratch",
            MediaState::Writable => "writable",
            MediaState::Full => "full",
            MediaState::Expired => "expired",
            MediaState::Retired => "retired",
            MediaState::Damaged => "damaged",
        }
    }

    pub fn parse(s: &str) -> Option<MediaState> {
        [
            MediaState::Scratch,
            MediaState::Writable,
            MediaState::Full,
            MediaState::Expired,
            MediaState::Retired,
            MediaState::Damaged,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// Where a medium is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// In a drive (its name).
    Drive(String),
    /// In a library slot ("library/slot").
    Slot(String),
    /// On an onsite shelf (its name, may be empty).
    Shelf(String),
    /// In an offsite vault (its name).
    Vault(String),
}

impl Location {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            Location::Drive(n) => ("drive", n),
            Location::Slot(n) => ("slot", n),
            Location::Shelf(n) => ("shelf", n),
            Location::Vault(n) => ("vault", n),
        }
    }

    fn from_parts(kind: &str, name: String) -> Location {
        match kind {
            "drive" => Location::Drive(name),
            "slot" => Location::Slot(name),
            "vault" => Location::Vault(name),
            _ => Location::Shelf(name),
        }
    }

    /// Parses `drive:NAME`, `slot:NAME`, `shelf`, `shelf:NAME` or `vault:NAME`.
    pub fn parse(s: &str) -> Result<Location, ApiError> {
        let (kind, name) = s.split_once(':').unwrap_or((s, ""));
        let name = name.to_owned();
        let bad = || {
            ApiError::invalid(
                "location",
                format!(
                    "location {s:?} is not valid: use vault:NAME, shelf, shelf:NAME, slot:NAME or drive:NAME"
                ),
            )
        };
        if name.len() > 128 || name.chars().any(char::is_control) {
            return Err(bad());
        }
        match kind {
            "vault" if !name.is_empty() => Ok(Location::Vault(name)),
            "shelf" => Ok(Location::Shelf(name)),
            "slot" if !name.is_empty() => Ok(Location::Slot(name)),
            "drive" if !name.is_empty() => Ok(Location::Drive(name)),
            _ => Err(bad()),
        }
    }

    /// `kind:name` (`shelf` alone for an unnamed shelf), the form [`Location::parse`] reads.
    pub fn wire(&self) -> String {
        let (k, n) = self.parts();
        if n.is_empty() {
            k.to_string()
        } else {
            format!("{k}:{n}")
        }
    }

    /// Whether the medium is offsite (in a vault).
    pub fn offsite(&self) -> bool {
        matches!(self, Location::Vault(_))
    }

    /// Whether the medium is in a drive (online); anywhere else it is offline.
    pub fn in_drive(&self) -> bool {
        matches!(self, Location::Drive(_))
    }

    /// "kind:name" for messages.
    pub fn describe(&self) -> String {
        let (k, n) = self.parts();
        if n.is_empty() {
            k.to_string()
        } else {
            format!("{k} {n}")
        }
    }
}

/// A media pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub media_type: String,
    /// Days a medium is kept after its last write before it expires.
    pub retention_days: u32,
    /// The offsite vault full media of this pool go to (rotation), if any.
    pub vault: Option<String>,
    /// Days a medium stays in the vault before it is due back (0: until it expires).
    pub vault_days: u32,
}

/// A medium and its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Medium {
    pub barcode: String,
    pub media_type: String,
    pub pool: Option<String>,
    pub media_set: Option<String>,
    pub sequence: Option<u32>,
    pub state: MediaState,
    pub location: Location,
    /// RFC 3339, when a move set one.
    pub expected_return: Option<String>,
    pub write_count: u64,
    pub bytes_written: u64,
    pub last_written: Option<String>,
    pub expires_at: Option<String>,
    pub labelled_at: Option<String>,
}

/// What `media due` lists for a day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaDue {
    /// Full media of a pool with a vault that are not offsite: (barcode, vault).
    pub to_vault: Vec<(String, String)>,
    /// Media in a vault whose expected return has come, or that expired: barcodes.
    pub come_back: Vec<String>,
}

fn conflict(msg: String) -> ApiError {
    ApiError::new(ErrorKind::InvalidArgument, msg)
}

fn check_barcode(b: &str) -> Result<(), ApiError> {
    let ok = !b.is_empty()
        && b.len() <= 32
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "barcode",
            format!("barcode {b:?} is not valid: use 1 to 32 letters, digits, `-` or `_`"),
        ))
    }
}

fn check_type(t: &str) -> Result<(), ApiError> {
    if MEDIA_TYPES.contains(&t) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "media_type",
            format!(
                "media type {t:?} is not known: use one of {}",
                MEDIA_TYPES.join(", ")
            ),
        ))
    }
}

/// `t` plus `days` days, RFC 3339.
fn plus_days(t: &str, days: u32) -> Result<String, ApiError> {
    let ts: jiff::Timestamp = t
        .parse()
        .map_err(|e| ApiError::internal(format!("bad time {t:?} in the catalog: {e}")))?;
    let later = ts
        .checked_add(jiff::SignedDuration::from_hours(24 * i64::from(days)))
        .map_err(|e| ApiError::internal(format!("time overflow: {e}")))?;
    Ok(later.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

const MEDIUM_COLUMNS: &str = "barcode, media_type, pool, media_set, sequence, state, location_kind, \
     location_name, expected_return, write_count, bytes_written, last_written, expires_at, labelled_at";

fn medium_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Medium> {
    let state: String = r.get(5)?;
    let kind: String = r.get(6)?;
    Ok(Medium {
        barcode: r.get(0)?,
        media_type: r.get(1)?,
        pool: r.get(2)?,
        media_set: r.get(3)?,
        sequence: r.get(4)?,
        state: MediaState::parse(&state).unwrap_or(MediaState::Damaged),
        location: Location::from_parts(&kind, r.get(7)?),
        expected_return: r.get(8)?,
        write_count: r.get::<_, i64>(9)?.max(0) as u64,
        bytes_written: r.get::<_, i64>(10)?.max(0) as u64,
        last_written: r.get(11)?,
        expires_at: r.get(12)?,
        labelled_at: r.get(13)?,
    })
}

impl Catalog {
    /// Adds a media pool.
    pub fn add_pool(&mut self, p: &Pool) -> Result<(), ApiError> {
        check_type(&p.media_type)?;
        if p.name.is_empty() || p.name.len() > 64 || p.name.contains(char::is_whitespace) {
            return Err(ApiError::invalid(
                "name",
                "a pool name is 1 to 64 characters without spaces",
            ));
        }
        if self.pool(&p.name)?.is_some() {
            return Err(ApiError::new(
                ErrorKind::AlreadyExists,
                format!("pool {} exists already", p.name),
            ));
        }
        self.conn
            .execute(
                "INSERT INTO media_pools(name, media_type, retention_days, vault, vault_days, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![p.name, p.media_type, p.retention_days, p.vault, p.vault_days, now_rfc3339()],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    /// One pool.
    pub fn pool(&self, name: &str) -> Result<Option<Pool>, ApiError> {
        self.conn
            .query_row(
                "SELECT name, media_type, retention_days, vault, vault_days FROM media_pools WHERE name = ?1",
                [name],
                |r| {
                    Ok(Pool {
                        name: r.get(0)?,
                        media_type: r.get(1)?,
                        retention_days: r.get(2)?,
                        vault: r.get(3)?,
                        vault_days: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(db_err)
    }

    /// Every pool, by name.
    pub fn pools(&self) -> Result<Vec<Pool>, ApiError> {
        let names: Vec<String> = {
            let mut st = self
                .conn
                .prepare("SELECT name FROM media_pools ORDER BY name")
                .map_err(db_err)?;
            let rows = st.query_map([], |r| r.get(0)).map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)?
        };
        let mut out = Vec::new();
        for n in names {
            out.extend(self.pool(&n)?);
        }
        Ok(out)
    }

    /// Adds a new medium to the inventory, as scratch (not yet in a pool).
    pub fn add_medium(
        &mut self,
        barcode: &str,
        media_type: &str,
        at: &Location,
    ) -> Result<(), ApiError> {
        check_barcode(barcode)?;
        check_type(media_type)?;
        if self.medium(barcode)?.is_some() {
            return Err(ApiError::new(
                ErrorKind::AlreadyExists,
                format!("medium {barcode} is in the inventory already"),
            ));
        }
        let (kind, name) = at.parts();
        let now = now_rfc3339();
        self.conn
            .execute(
                "INSERT INTO media(barcode, media_type, state, location_kind, location_name, created_at, updated_at)
                 VALUES (?1, ?2, 'scratch', ?3, ?4, ?5, ?5)",
                rusqlite::params![barcode, media_type, kind, name, now],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    /// One medium.
    pub fn medium(&self, barcode: &str) -> Result<Option<Medium>, ApiError> {
        self.conn
            .query_row(
                &format!("SELECT {MEDIUM_COLUMNS} FROM media WHERE barcode = ?1"),
                [barcode],
                medium_of,
            )
            .optional()
            .map_err(db_err)
    }

    fn need_medium(&self, barcode: &str) -> Result<Medium, ApiError> {
        self.medium(barcode)?
            .ok_or_else(|| ApiError::not_found("medium", barcode))
    }

    /// Every medium, optionally of one pool, by barcode.
    pub fn media(&self, pool: Option<&str>) -> Result<Vec<Medium>, ApiError> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {MEDIUM_COLUMNS} FROM media WHERE ?1 IS NULL OR pool = ?1 ORDER BY barcode"
            ))
            .map_err(db_err)?;
        let rows = st.query_map([pool], medium_of).map_err(db_err)?;
        rows.collect::<Result<_, _>>().map_err(db_err)
    }

    /// Labels a scratch medium for `pool`: it joins the pool's media set `media_set` as number
    /// `sequence` and becomes writable. The caller writes the label on the medium first.
    pub fn allocate_medium(
        &mut self,
        barcode: &str,
        pool: &str,
        media_set: &str,
        sequence: u32,
    ) -> Result<(), ApiError> {
        let m = self.need_medium(barcode)?;
        let p = self
            .pool(pool)?
            .ok_or_else(|| ApiError::not_found("pool", pool))?;
        if m.state != MediaState::Scratch {
            return Err(conflict(format!(
                "medium {barcode} is {}, not scratch: only scratch media can be labelled for a pool (erase it first if its data may go)",
                m.state.as_str()
            )));
        }
        if m.media_type != p.media_type {
            return Err(conflict(format!(
                "medium {barcode} is {}, pool {pool} takes {}",
                m.media_type, p.media_type
            )));
        }
        let now = now_rfc3339();
        self.conn
            .execute(
                "UPDATE media SET pool = ?2, media_set = ?3, sequence = ?4, state = 'writable',
                   labelled_at = ?5, expires_at = NULL, updated_at = ?5 WHERE barcode = ?1",
                rusqlite::params![barcode, pool, media_set, sequence, now],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    /// Records a write of `bytes` to a writable medium; `full` when it reached its end. The
    /// medium expires the pool's retention after this write.
    pub fn record_media_write(
        &mut self,
        barcode: &str,
        bytes: u64,
        full: bool,
        at: &str,
    ) -> Result<(), ApiError> {
        let m = self.need_medium(barcode)?;
        if m.state != MediaState::Writable {
            return Err(conflict(format!(
                "medium {barcode} is {}, not writable: it cannot take a write",
                m.state.as_str()
            )));
        }
        let days = match &m.pool {
            Some(p) => self.pool(p)?.map(|p| p.retention_days).unwrap_or(0),
            None => 0,
        };
        let expires = plus_days(at, days)?;
        self.conn
            .execute(
                "UPDATE media SET write_count = write_count + 1, bytes_written = bytes_written + ?2,
                   last_written = ?3, expires_at = ?4, state = ?5, updated_at = ?6 WHERE barcode = ?1",
                rusqlite::params![
                    barcode,
                    i64::try_from(bytes).unwrap_or(i64::MAX),
                    at,
                    expires,
                    if full { "full" } else { "writable" },
                    now_rfc3339()
                ],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    /// Expires every full or writable medium whose retention ended at `now`, and returns expired
    /// media to scratch (their data may be overwritten; the archives on them are no longer
    /// counted). Returns the barcodes that changed, in order.
    pub fn expire_media(&mut self, now: &str) -> Result<Vec<String>, ApiError> {
        let due: Vec<String> = {
            let mut st = self
                .conn
                .prepare(
                    "SELECT barcode FROM media WHERE state IN ('full', 'writable')
                     AND expires_at IS NOT NULL AND expires_at <= ?1 ORDER BY barcode",
                )
                .map_err(db_err)?;
            let rows = st.query_map([now], |r| r.get(0)).map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)?
        };
        for b in &due {
            self.set_state(b, MediaState::Expired)?;
        }
        Ok(due)
    }

    /// Returns an expired medium to scratch in its pool's inventory: its media set is dropped
    /// and the tape archives on it stop counting.
    pub fn recycle_medium(&mut self, barcode: &str) -> Result<(), ApiError> {
        let m = self.need_medium(barcode)?;
        if m.state != MediaState::Expired {
            return Err(conflict(format!(
                "medium {barcode} is {}: only expired media return to scratch (erase it to force)",
                m.state.as_str()
            )));
        }
        self.make_scratch(barcode)
    }

    /// Erases a medium's record: back to scratch, whatever it held (not retired media).
    pub fn erase_medium(&mut self, barcode: &str) -> Result<(), ApiError> {
        let m = self.need_medium(barcode)?;
        if m.state == MediaState::Retired {
            return Err(conflict(format!(
                "medium {barcode} is retired: it is not used again"
            )));
        }
        self.make_scratch(barcode)
    }

    fn make_scratch(&mut self, barcode: &str) -> Result<(), ApiError> {
        let tx = self.conn.transaction().map_err(db_err)?;
        tx.execute(
            "UPDATE tape_archives SET state = 'overwritten' WHERE state = 'complete' AND id IN
               (SELECT archive_id FROM tape_volumes WHERE barcode = ?1)",
            [barcode],
        )
        .map_err(db_err)?;
        tx.execute(
            "UPDATE media SET state = 'scratch', media_set = NULL, sequence = NULL, expires_at = NULL,
               updated_at = ?2 WHERE barcode = ?1",
            rusqlite::params![barcode, now_rfc3339()],
        )
        .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    /// Retires a medium (worn out, lost): it is never written again.
    pub fn retire_medium(&mut self, barcode: &str) -> Result<(), ApiError> {
        self.need_medium(barcode)?;
        self.set_state(barcode, MediaState::Retired)
    }

    /// Sets a medium's state directly (damaged, full after a failed write, …).
    pub fn set_state(&mut self, barcode: &str, state: MediaState) -> Result<(), ApiError> {
        self.conn
            .execute(
                "UPDATE media SET state = ?2, updated_at = ?3 WHERE barcode = ?1",
                rusqlite::params![barcode, state.as_str(), now_rfc3339()],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    /// Moves a medium to `to`, with the date it is expected back (RFC 3339) if any.
    pub fn move_medium(
        &mut self,
        barcode: &str,
        to: &Location,
        expected_return: Option<&str>,
        actor: Actor,
    ) -> Result<(), ApiError> {
        let m = self.need_medium(barcode)?;
        let (fk, fname) = m.location.parts();
        let (tk, tname) = to.parts();
        if matches!(to, Location::Vault(n) if n.is_empty()) {
            return Err(ApiError::invalid(
                "location",
                "a vault needs a name (e.g. vault:ironmountain)",
            ));
        }
        let now = now_rfc3339();
        let tx = self.conn.transaction().map_err(db_err)?;
        tx.execute(
            "INSERT INTO media_moves(barcode, from_kind, from_name, to_kind, to_name, expected_return, uid, moved_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![barcode, fk, fname, tk, tname, expected_return, actor.uid, now],
        )
        .map_err(db_err)?;
        tx.execute(
            "UPDATE media SET location_kind = ?2, location_name = ?3, expected_return = ?4, updated_at = ?5
             WHERE barcode = ?1",
            rusqlite::params![barcode, tk, tname, expected_return, now],
        )
        .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    /// What should leave for a vault and what should come back at `now` (the rotation plan):
    /// full media of pools with a vault that are not offsite go out; media in a vault whose
    /// expected return has come, or that expired, come back.
    pub fn media_due(&self, now: &str) -> Result<MediaDue, ApiError> {
        let mut due = MediaDue::default();
        for m in self.media(None)? {
            let pool = match &m.pool {
                Some(p) => self.pool(p)?,
                None => None,
            };
            match &m.location {
                Location::Vault(_) => {
                    let back = m.expected_return.as_deref().is_some_and(|t| t <= now)
                        || matches!(m.state, MediaState::Expired | MediaState::Scratch);
                    if back {
                        due.come_back.push(m.barcode.clone());
                    }
                }
                _ => {
                    if let Some(vault) = pool.and_then(|p| p.vault) {
                        if m.state == MediaState::Full {
                            due.to_vault.push((m.barcode.clone(), vault));
                        }
                    }
                }
            }
        }
        Ok(due)
    }
}

#[cfg(test)]
#[path = "media_tests.rs"]
mod tests;
