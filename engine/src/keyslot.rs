//! Key slots of an encrypted repository (docs/repository-format.md, "Encryption"): each file in
//! `keys/` wraps the master key under one secret, a key file (32 random bytes) or a passphrase
//! (Argon2id with the parameters recorded in the slot). Any slot opens the repository; the last
//! slot cannot be removed. A secret that opens no slot is [`Error::WrongKey`], never corruption.

use crate::crypto::{self, MasterKey, ObjectKind};
use crate::error::{Error, Result};
use crate::store::{Kind, Put, Store};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

const KEY_FILE_CONTEXT: &str = "bms repository key file slot v1";

/// A secret that may open a key slot.
pub enum Secret {
    /// The 32 bytes of a key file.
    KeyFile(Zeroizing<[u8; 32]>),
    /// A passphrase.
    Passphrase(Zeroizing<String>),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Secret::KeyFile(_) => "Secret::KeyFile(..)",
            Secret::Passphrase(_) => "Secret::Passphrase(..)",
        })
    }
}

impl Secret {
    fn slot_kind(&self) -> &'static str {
        match self {
            Secret::KeyFile(_) => "key-file",
            Secret::Passphrase(_) => "passphrase",
        }
    }

    /// What the user is told when this secret opens no slot.
    fn wrong(&self) -> Error {
        Error::WrongKey(match self {
            Secret::KeyFile(_) => "the key file does not open this repository: give the key \
                                   file this repository was created with (or one added with \
                                   `bmsctl repo key add`)"
                .into(),
            Secret::Passphrase(_) => "the passphrase does not open this repository: check it, \
                                      or open the repository with its key file"
                .into(),
        })
    }
}

/// Argon2id parameters, recorded in a passphrase slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl KdfParams {
    /// Parameters that take about `target` here: 64 MiB, and as many passes as fit.
    pub fn tune(target: Duration) -> KdfParams {
        let mut p = KdfParams {
            m_cost: 64 * 1024,
            t_cost: 1,
            p_cost: 1,
        };
        let start = Instant::now();
        let _ = derive_passphrase_key("tune", &[0u8; 16], p);
        let one = start.elapsed().max(Duration::from_millis(1));
        p.t_cost = (target.as_secs_f64() / one.as_secs_f64())
            .round()
            .clamp(1.0, 20.0) as u32;
        p
    }
}

/// One file of `keys/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeySlot {
    /// The slot's id, also its file name (16 hex digits).
    pub id: String,
    /// `key-file` or `passphrase`.
    pub kind: String,
    pub created: String,
    /// For a passphrase slot: `argon2id` and its parameters and salt (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdf: Option<KdfParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// The master key sealed under the slot's key (hex).
    pub wrapped: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn derive_passphrase_key(pass: &str, salt: &[u8], p: KdfParams) -> Result<Zeroizing<[u8; 32]>> {
    let params = argon2::Params::new(p.m_cost, p.t_cost, p.p_cost, Some(32))
        .map_err(|e| Error::corrupt("key slot", format!("unusable Argon2id parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(pass.as_bytes(), salt, &mut out[..])
        .map_err(|e| Error::corrupt("key slot", format!("Argon2id failed: {e}")))?;
    Ok(out)
}

fn ad(id: &str, kind: &str) -> Vec<u8> {
    let mut ad = b"bms1".to_vec();
    ad.push(ObjectKind::KeySlot.byte());
    ad.extend_from_slice(id.as_bytes());
    ad.push(0);
    ad.extend_from_slice(kind.as_bytes());
    ad
}

impl KeySlot {
    /// Wraps `master` under `secret`; a passphrase uses `kdf`.
    pub fn wrap(master: &MasterKey, secret: &Secret, kdf: KdfParams) -> Result<KeySlot> {
        let id = hex(&crypto::random_bytes::<8>()[..]);
        let kind = secret.slot_kind();
        let (key, kdf, salt) = match secret {
            Secret::KeyFile(bytes) => (
                Zeroizing::new(blake3::derive_key(KEY_FILE_CONTEXT, &bytes[..])),
                None,
                None,
            ),
            Secret::Passphrase(p) => {
                let salt = crypto::random_bytes::<16>();
                (
                    derive_passphrase_key(p, &salt[..], kdf)?,
                    Some(kdf),
                    Some(hex(&salt[..])),
                )
            }
        };
        let cipher = crypto::cipher_for(&key);
        let wrapped = crypto::seal_with(&cipher, &ad(&id, kind), master.as_bytes());
        Ok(KeySlot {
            id,
            kind: kind.into(),
            created: jiff::Timestamp::now().to_string(),
            kdf,
            salt,
            wrapped: hex(&wrapped),
        })
    }

    /// The master key, when `secret` opens this slot.
    pub fn unwrap(&self, secret: &Secret) -> Result<Option<MasterKey>> {
        if self.kind != secret.slot_kind() {
            return Ok(None);
        }
        let bad = |d: &str| Error::corrupt(format!("key slot {}", self.id), d.to_owned());
        let key = match secret {
            Secret::KeyFile(bytes) => {
                Zeroizing::new(blake3::derive_key(KEY_FILE_CONTEXT, &bytes[..]))
            }
            Secret::Passphrase(p) => {
                let kdf = self.kdf.ok_or_else(|| bad("no Argon2id parameters"))?;
                let salt = self.salt.as_deref().and_then(unhex);
                derive_passphrase_key(p, &salt.ok_or_else(|| bad("no salt"))?, kdf)?
            }
        };
        let wrapped = unhex(&self.wrapped).ok_or_else(|| bad("the wrapped key is not hex"))?;
        let cipher = crypto::cipher_for(&key);
        let Some(plain) = crypto::open_with(&cipher, &ad(&self.id, &self.kind), &wrapped) else {
            return Ok(None);
        };
        let plain = Zeroizing::new(plain);
        let bytes: [u8; 32] = plain[..]
            .try_into()
            .map_err(|_| bad("the wrapped key is not 32 bytes"))?;
        let key = MasterKey::from_bytes(&bytes);
        Ok(Some(key))
    }
}

/// Every key slot of the repository.
pub fn list(store: &dyn Store) -> Result<Vec<KeySlot>> {
    let mut out = Vec::new();
    for name in store.list(Kind::Keys)? {
        let data = store.read(Kind::Keys, &name)?;
        let slot: KeySlot = serde_json::from_slice(&data)
            .map_err(|e| Error::corrupt(format!("key slot {name}"), e.to_string()))?;
        out.push(slot);
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// Opens the repository's master key with `secret`: [`Error::WrongKey`] when no slot opens.
pub fn unlock(store: &dyn Store, secret: &Secret) -> Result<MasterKey> {
    unlock_slot(store, secret).map(|(k, _)| k)
}

/// Like [`unlock`], but only a slot whose master key has the id `key_id` (the config's) counts,
/// when one is given.
pub fn unlock_for(store: &dyn Store, secret: &Secret, key_id: Option<&str>) -> Result<MasterKey> {
    for slot in list(store)? {
        if let Some(k) = slot.unwrap(secret)? {
            if key_id.is_none_or(|id| k.key_id() == id) {
                return Ok(k);
            }
        }
    }
    Err(secret.wrong())
}

/// Like [`unlock`], and also the id of the slot that opened.
pub fn unlock_slot(store: &dyn Store, secret: &Secret) -> Result<(MasterKey, String)> {
    for slot in list(store)? {
        if let Some(k) = slot.unwrap(secret)? {
            return Ok((k, slot.id));
        }
    }
    Err(secret.wrong())
}

/// Reads a passphrase from the first line of `path` (`-`: standard input).
pub fn read_passphrase_file(path: &Path) -> Result<Secret> {
    let mut text = Zeroizing::new(String::new());
    if path == Path::new("-") {
        std::io::stdin()
            .read_line(&mut text)
            .map_err(|e| Error::io("reading the passphrase", path, e))?;
    } else {
        *text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("reading the passphrase file", path, e))?;
    }
    let line = Zeroizing::new(text.lines().next().unwrap_or("").to_owned());
    if line.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{} holds no passphrase on its first line",
            path.display()
        )));
    }
    Ok(Secret::Passphrase(line))
}

/// Adds a slot for `new` to a repository whose master key is `master`.
pub fn add(store: &dyn Store, master: &MasterKey, new: &Secret, kdf: KdfParams) -> Result<KeySlot> {
    let slot = KeySlot::wrap(master, new, kdf)?;
    let data = serde_json::to_vec_pretty(&slot).map_err(|e| Error::internal("key slot", e))?;
    if !store.put(Kind::Keys, &slot.id, &data, Put::New)? {
        return Err(Error::Internal(format!(
            "key slot {} exists already",
            slot.id
        )));
    }
    Ok(slot)
}

/// Removes slot `id`; refuses to remove the last one.
pub fn remove(store: &dyn Store, id: &str) -> Result<()> {
    let slots = list(store)?;
    if !slots.iter().any(|s| s.id == id) {
        return Err(Error::InvalidArgument(format!(
            "the repository has no key slot {id}: `bmsctl repo key list` shows them"
        )));
    }
    if slots.len() == 1 {
        return Err(Error::InvalidArgument(format!(
            "key slot {id} is the repository's last one: removing it would make the data \
             unreadable; add another slot first (`bmsctl repo key add`)"
        )));
    }
    store.delete(Kind::Keys, id)?;
    Ok(())
}

/// Creates a key file: 32 random bytes, mode 0600, never replacing an existing file.
pub fn create_key_file(path: &Path) -> Result<Zeroizing<[u8; 32]>> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io("creating key directory", dir, e))?;
    }
    let bytes = crypto::random_bytes::<32>();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("creating key file", path, e))?;
    f.write_all(&bytes[..])
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("writing key file", path, e))?;
    Ok(bytes)
}

/// Reads a key file made by [`create_key_file`].
pub fn read_key_file(path: &Path) -> Result<Secret> {
    let data =
        Zeroizing::new(std::fs::read(path).map_err(|e| Error::io("reading key file", path, e))?);
    let bytes: [u8; 32] = data[..].try_into().map_err(|_| {
        Error::WrongKey(format!(
            "{} is not a bms key file (it must hold exactly 32 bytes): the key file does not \
             open this repository",
            path.display()
        ))
    })?;
    Ok(Secret::KeyFile(Zeroizing::new(bytes)))
}

/// The master key as printable text for a paper backup: 8 groups of 8 hex digits, then a
/// checksum group (the first 8 hex digits of its BLAKE3 hash).
pub fn export_text(master: &MasterKey) -> Zeroizing<String> {
    let h = Zeroizing::new(hex(master.as_bytes()));
    let sum = blake3::hash(master.as_bytes()).to_hex();
    let mut out = Zeroizing::new(String::new());
    for (i, c) in h.as_bytes().chunks(8).enumerate() {
        out.push_str(std::str::from_utf8(c).unwrap_or(""));
        out.push(if i % 4 == 3 { '\n' } else { ' ' });
    }
    out.push_str("checksum ");
    out.push_str(&sum[..8]);
    out.push('\n');
    out
}

/// Reads the text of [`export_text`] back; a typo fails the checksum.
pub fn import_text(text: &str) -> Result<MasterKey> {
    let (body, sum) = text
        .rsplit_once("checksum")
        .ok_or_else(|| Error::InvalidArgument("the exported key has no checksum line".into()))?;
    let digits: Zeroizing<String> =
        Zeroizing::new(body.chars().filter(|c| c.is_ascii_hexdigit()).collect());
    let bytes = Zeroizing::new(unhex(&digits).unwrap_or_default());
    let arr: [u8; 32] = bytes[..]
        .try_into()
        .map_err(|_| Error::InvalidArgument("the exported key must have 64 hex digits".into()))?;
    let key = MasterKey::from_bytes(&arr);
    if blake3::hash(key.as_bytes()).to_hex()[..8] != *sum.trim() {
        return Err(Error::InvalidArgument(
            "the exported key does not match its checksum: check the digits for a typo".into(),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;

    const FAST: KdfParams = KdfParams {
        m_cost: 1024,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn slots_open_with_their_secret_and_the_last_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["keys", "tmp"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let store = LocalStore::new(dir.path());
        let master = MasterKey::generate();
        let kf = create_key_file(&dir.path().join("k/key")).unwrap();
        let file_slot = add(&store, &master, &Secret::KeyFile(kf.clone()), FAST).unwrap();
        let pass = || Secret::Passphrase(Zeroizing::new("correct horse".into()));
        add(&store, &master, &pass(), FAST).unwrap();

        let opened = unlock(&store, &read_key_file(&dir.path().join("k/key")).unwrap()).unwrap();
        assert_eq!(opened.as_bytes(), master.as_bytes());
        assert_eq!(
            unlock(&store, &pass()).unwrap().as_bytes(),
            master.as_bytes()
        );
        let wrong = Secret::KeyFile(crypto::random_bytes::<32>());
        let err = unlock(&store, &wrong).unwrap_err();
        assert!(err
            .to_string()
            .contains("the key file does not open this repository"));
        let err = unlock(&store, &Secret::Passphrase(Zeroizing::new("x".into()))).unwrap_err();
        assert!(
            err.to_string().contains("passphrase does not open"),
            "{err}"
        );

        remove(&store, &file_slot.id).unwrap();
        assert!(unlock(&store, &Secret::KeyFile(kf)).is_err());
        let last = list(&store).unwrap();
        assert_eq!(last.len(), 1);
        let err = remove(&store, &last[0].id).unwrap_err();
        assert!(err.to_string().contains("last one"), "{err}");
        // No slot holds the key in the clear.
        let raw = std::fs::read_to_string(dir.path().join("keys").join(&last[0].id)).unwrap();
        assert!(!raw.contains(&hex(master.as_bytes())));
    }

    #[test]
    fn exported_keys_round_trip_and_typos_are_caught() {
        let master = MasterKey::generate();
        let text = export_text(&master);
        assert_eq!(import_text(&text).unwrap().as_bytes(), master.as_bytes());
        let typo = if text.starts_with('0') {
            text.replacen('0', "1", 1)
        } else {
            format!("0{}", &text[1..])
        };
        assert!(import_text(&typo).is_err());
    }
}
