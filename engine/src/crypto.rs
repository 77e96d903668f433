//! Encryption at rest (docs/repository-format.md, "Encryption"): the repository's master key, the
//! two keys derived from it, the AEAD that seals every stored object, and keyed chunk ids.
//!
//! * `enc_key = BLAKE3-derive_key("bms repository object encryption v1", master)`
//! * `id_key = BLAKE3-derive_key("bms repository chunk id v1", master)`
//! * sealed object = `nonce (24 random bytes) ‖ XChaCha20-Poly1305(enc_key, nonce, plaintext,
//!   ad)`, where the associated data `ad = "bms1" ‖ kind byte ‖ id bytes` binds the object to
//!   what it is and where it belongs, so that a swapped or replayed object fails to open.
//! * chunk and tree ids = `BLAKE3-keyed_hash(id_key, plaintext)`.
//!
//! Key material lives in [`zeroize::Zeroizing`] buffers and is wiped when dropped; `Debug` never
//! prints it.

use crate::error::{Error, Result};
use crate::id::ObjectId;
use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::aead::{Aead, AeadInOut, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// The value of `encryption.algorithm` in the config of an encrypted repository.
pub const ALGORITHM: &str = "xchacha20poly1305-blake3";

/// Bytes a sealed object is longer than its plaintext: the nonce and the tag.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

const ENC_CONTEXT: &str = "bms repository object encryption v1";
const ID_CONTEXT: &str = "bms repository chunk id v1";
const AD_MAGIC: &[u8; 4] = b"bms1";

/// `count` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> Zeroizing<[u8; N]> {
    let mut out = Zeroizing::new([0u8; N]);
    let mut filled = 0;
    while filled < N {
        let key = chacha20poly1305::Key::generate();
        let take = (N - filled).min(key.len());
        out[filled..filled + take].copy_from_slice(&key[..take]);
        filled += take;
    }
    out
}

/// What a sealed object is; part of its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A file-content chunk in a pack (id = its keyed chunk id).
    Chunk,
    /// A tree blob in a pack (id = its keyed id).
    Tree,
    /// A pack's table of contents (id = the pack's name).
    PackTable,
    /// An index file (id = its name).
    Index,
    /// A snapshot file (id = its name).
    Snapshot,
    /// The contents of a lock file (id = the lock file's name).
    Lock,
    /// The master key wrapped by a key slot (id = the slot's id).
    KeySlot,
}

impl ObjectKind {
    pub(crate) fn byte(self) -> u8 {
        match self {
            ObjectKind::Chunk => 1,
            ObjectKind::Tree => 2,
            ObjectKind::PackTable => 3,
            ObjectKind::Index => 4,
            ObjectKind::Snapshot => 5,
            ObjectKind::Lock => 6,
            ObjectKind::KeySlot => 7,
        }
    }

    /// A name for messages.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Chunk => "chunk",
            ObjectKind::Tree => "tree",
            ObjectKind::PackTable => "pack table",
            ObjectKind::Index => "index file",
            ObjectKind::Snapshot => "snapshot",
            ObjectKind::Lock => "lock file",
            ObjectKind::KeySlot => "key slot",
        }
    }
}

/// A repository's 256-bit master key.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> MasterKey {
        MasterKey(random_bytes::<32>())
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> MasterKey {
        MasterKey(Zeroizing::new(*bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A public name of the key (config `encryption.key_id`): 16 hex digits derived from it,
    /// which tell keys apart without revealing anything of them.
    pub fn key_id(&self) -> String {
        blake3::derive_key("bms repository key id v1", &self.0[..])[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The keys an open repository uses.
    pub fn keys(&self) -> RepoKeys {
        let enc = Zeroizing::new(blake3::derive_key(ENC_CONTEXT, &self.0[..]));
        let id_key = Zeroizing::new(blake3::derive_key(ID_CONTEXT, &self.0[..]));
        RepoKeys {
            cipher: cipher_for(&enc),
            id_key,
        }
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// The AEAD under a 32-byte key.
pub(crate) fn cipher_for(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&chacha20poly1305::Key::from(*key))
}

/// Seals `plaintext` under `key` (any 32-byte key) with associated data `ad`.
pub(crate) fn seal_with(cipher: &XChaCha20Poly1305, ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce = XNonce::generate();
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(&nonce);
    // Encryption into a Vec cannot fail for inputs below the cipher's 256 GiB limit, which no
    // object reaches (packs are written in parts of tens of MiB).
    match cipher.encrypt(
        &nonce,
        Payload {
            msg: plaintext,
            aad: ad,
        },
    ) {
        Ok(ct) => out.extend_from_slice(&ct),
        Err(_) => out.clear(),
    }
    out
}

/// Opens what [`seal_with`] sealed; `None` when the tag does not match.
pub(crate) fn open_with(cipher: &XChaCha20Poly1305, ad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < OVERHEAD {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).ok()?;
    cipher.decrypt(&nonce, Payload { msg: ct, aad: ad }).ok()
}

/// Opens what [`seal_with`] sealed into `out`, which must be as long as the plaintext: the tag is
/// checked before anything is decrypted, and on a mismatch (or a wrong length) `out` is zeroed
/// and `false` returned.
pub(crate) fn open_into_with(
    cipher: &XChaCha20Poly1305,
    ad: &[u8],
    sealed: &[u8],
    out: &mut [u8],
) -> bool {
    if sealed.len() != out.len() + OVERHEAD {
        out.fill(0);
        return false;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let (Ok(nonce), Ok(tag)) = (
        XNonce::try_from(nonce),
        chacha20poly1305::Tag::try_from(tag),
    ) else {
        out.fill(0);
        return false;
    };
    let ok = InOutBuf::new(ct, out)
        .ok()
        .is_some_and(|buf| cipher.decrypt_inout_detached(&nonce, ad, buf, &tag).is_ok());
    if !ok {
        out.fill(0);
    }
    ok
}

/// The keys of an open encrypted repository.
pub struct RepoKeys {
    cipher: XChaCha20Poly1305,
    id_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for RepoKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RepoKeys(..)")
    }
}

fn associated_data(kind: ObjectKind, id: &[u8]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(5 + id.len());
    ad.extend_from_slice(AD_MAGIC);
    ad.push(kind.byte());
    ad.extend_from_slice(id);
    ad
}

impl RepoKeys {
    /// The id of a chunk or tree: the keyed BLAKE3 hash of its plaintext.
    pub fn object_id(&self, plaintext: &[u8]) -> ObjectId {
        ObjectId(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// Seals `plaintext` with the associated data `ad` as given.
    pub(crate) fn seal_raw(&self, ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher, ad, plaintext)
    }

    /// Opens what [`RepoKeys::seal_raw`] sealed; `None` when it fails authentication.
    pub(crate) fn open_raw(&self, ad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        open_with(&self.cipher, ad, sealed)
    }

    /// Like [`RepoKeys::open_raw`], into `out` (as long as the plaintext); `false` when the tag
    /// does not match.
    pub(crate) fn open_raw_into(&self, ad: &[u8], sealed: &[u8], out: &mut [u8]) -> bool {
        open_into_with(&self.cipher, ad, sealed, out)
    }

    /// Seals an object of `kind` stored under `id`.
    pub fn seal(&self, kind: ObjectKind, id: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher, &associated_data(kind, id), plaintext)
    }

    /// Opens an object of `kind` that should be the one stored under `id`. A failure names the
    /// object: it was damaged, or it is another object put in its place (swapped, replayed).
    pub fn open(&self, kind: ObjectKind, id: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        open_with(&self.cipher, &associated_data(kind, id), sealed).ok_or_else(|| {
            let name = match std::str::from_utf8(id) {
                Ok(s) if s.chars().all(|c| c.is_ascii_graphic()) => s.to_owned(),
                _ => id.iter().map(|b| format!("{b:02x}")).collect(),
            };
            Error::corrupt(
                format!("{} {name}", kind.name()),
                "authentication failed: the object was damaged, or another object (swapped or \
                 replayed) is stored in its place; run `bmsctl repo verify --read-data`",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_objects_open_only_as_what_they_were_sealed_as() {
        let keys = MasterKey::generate().keys();
        let id = [7u8; 32];
        let sealed = keys.seal(ObjectKind::Chunk, &id, b"secret contents");
        assert_eq!(sealed.len(), b"secret contents".len() + OVERHEAD);
        assert_eq!(
            keys.open(ObjectKind::Chunk, &id, &sealed).unwrap(),
            b"secret contents"
        );
        // Another id (a swap), another kind, another key, a flipped bit: all refused, named.
        let err = keys
            .open(ObjectKind::Chunk, &[8u8; 32], &sealed)
            .unwrap_err();
        assert!(err.to_string().contains("0808"), "{err}");
        assert!(keys.open(ObjectKind::Tree, &id, &sealed).is_err());
        let other = MasterKey::generate().keys();
        assert!(other.open(ObjectKind::Chunk, &id, &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(keys.open(ObjectKind::Chunk, &id, &flipped).is_err());
        let err = keys
            .open(ObjectKind::Snapshot, b"abcd", &sealed[..10])
            .unwrap_err();
        assert!(err.to_string().contains("snapshot abcd"), "{err}");
    }

    /// XChaCha20-Poly1305 as the format defines it, whichever SIMD backend the cipher picks on
    /// this CPU (docs/repository-format.md "Encryption"): the test vector of
    /// draft-irtf-cfrg-xchacha-03 (A.3.1), and a 4,173-byte message that takes the wide
    /// (8- and 16-block) code paths, whose sealed bytes' BLAKE3 was computed with an independent
    /// implementation (HChaCha20 by hand over a ChaCha20-Poly1305 library).
    #[test]
    fn the_cipher_gives_the_reference_bytes_on_this_cpu() {
        let key: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
        let nonce_bytes: [u8; 24] = std::array::from_fn(|i| 0x40 + i as u8);
        let nonce = XNonce::from(nonce_bytes);
        let aad = hex(b"50515253c0c1c2c3c4c5c6c7");
        let cipher = cipher_for(&key);
        let msg: &[u8] =
            b"Ladies and Gentlemen of the class of '99: If I could offer you only one \
                           tip for the future, sunscreen would be it.";
        let sealed = cipher.encrypt(&nonce, Payload { msg, aad: &aad }).unwrap();
        let want = hex(
            b"bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb\
                         731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452\
                         2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9\
                         21f9664c97637da9768812f615c68b13b52ec0875924c1c7987947deafd8780acf49",
        );
        assert_eq!(sealed, want);
        let long: Vec<u8> = (0..4096 + 77).map(|i| (i * 7 + 3) as u8).collect();
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &long,
                    aad: &aad,
                },
            )
            .unwrap();
        assert_eq!(sealed.len(), long.len() + TAG_LEN);
        assert_eq!(
            blake3::hash(&sealed).to_hex().as_str(),
            "58842edcc5a6de9638e88c899481f21fe334670df40c46446c28da5fdd0bf1ea"
        );
        let opened = cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &sealed,
                    aad: &aad,
                },
            )
            .unwrap();
        assert_eq!(opened, long);
    }

    fn hex(s: &[u8]) -> Vec<u8> {
        s.chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    #[test]
    fn nonces_are_fresh_and_ids_depend_on_the_key() {
        let master = MasterKey::generate();
        let keys = master.keys();
        let a = keys.seal(ObjectKind::Index, b"i", b"same");
        let b = keys.seal(ObjectKind::Index, b"i", b"same");
        assert_ne!(a[..24], b[..24]);
        assert_ne!(keys.object_id(b"x"), ObjectId::hash(b"x"));
        assert_ne!(
            keys.object_id(b"x"),
            MasterKey::generate().keys().object_id(b"x")
        );
        assert_eq!(keys.object_id(b"x"), master.keys().object_id(b"x"));
        assert_eq!(format!("{master:?} {keys:?}"), "MasterKey(..) RepoKeys(..)");
    }
}
