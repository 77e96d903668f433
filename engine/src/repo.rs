//! Opening and creating repositories; reading blobs, trees and snapshots.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::{
    ChunkerParams, CompressionParams, EncryptionParams, RepoConfig, FORMAT_NAME, FORMAT_VERSION,
};
use crate::crypto::{self, MasterKey};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::id::ObjectId;
use crate::index::{Index, IndexFile};
use crate::keyslot::{self, KdfParams, Secret};
use crate::snapshot::{self, SnapshotInfo};
use crate::store::encrypted::EncryptedStore;
use crate::store::{Kind, LocalStore, Put, Store, CONFIG};
use crate::tree::NodeKind;

pub(crate) use crate::reader::list_dir;
pub use crate::reader::{lookup_path, split_path, BlobReader, Entry};

/// Parameters of a new repository.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub chunker: ChunkerParams,
    pub compression: CompressionParams,
    /// Target pack size in bytes.
    pub pack_size: u64,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::default(),
            compression: CompressionParams::default(),
            pack_size: 16 << 20,
        }
    }
}

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repository {
    store: Arc<dyn Store>,
    path: PathBuf,
    config: RepoConfig,
    lock_wait: Duration,
    notes: Vec<String>,
}

/// Sub-directories of a repository directory (see [`LocalStore`]).
pub const DIRS: [&str; 6] = crate::store::DIRS;

/// Names starting with this are writability probes (bmsd's pre-flight check writes one into a
/// target directory and removes it at once); they never make a directory "not empty".
pub const PROBE_PREFIX: &str = ".bms-probe-";

/// A snapshot file that cannot be read or fails its integrity check.
#[derive(Debug, Clone, Serialize)]
pub struct DamagedSnapshot {
    /// The file's name (the 64-hex id it should have).
    pub id: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Repository {
    /// Creates a repository in the directory `path` (which must not exist or be empty). All its
    /// files and directories are private to the owner (0600/0700 whatever the umask); an
    /// existing directory that group or others can access is restricted to 0700, which
    /// [`Repository::notes`] reports.
    pub fn init(path: impl AsRef<Path>, opts: InitOptions) -> Result<Repository> {
        Self::create(path.as_ref(), opts, false, None)
    }

    /// Creates an encrypted repository (docs/repository-format.md, "Encryption") with a new
    /// random master key, wrapped by one key slot for `secret` (a passphrase slot uses `kdf`).
    pub fn init_encrypted(
        path: impl AsRef<Path>,
        opts: InitOptions,
        secret: &Secret,
        kdf: KdfParams,
    ) -> Result<Repository> {
        Self::create(path.as_ref(), opts, false, Some((secret, kdf)))
    }

    /// Opens the repository in `path`; an encrypted one with `secret` (a key that opens none of
    /// its key slots is [`Error::WrongKey`]). A plain repository opens as with [`Repository::open`].
    pub fn open_with_key(path: impl AsRef<Path>, secret: &Secret) -> Result<Repository> {
        Self::open_store_with_key(Arc::new(LocalStore::new(path.as_ref())), secret)
    }

    /// Like [`Repository::open_with_key`] for the repository in `plain` (a store that does
    /// not encrypt, e.g. an object store).
    pub fn open_store_with_key(plain: Arc<dyn Store>, secret: &Secret) -> Result<Repository> {
        let path = plain.location().to_path_buf();
        let data = match plain.read(Kind::Config, CONFIG) {
            Ok(d) => d,
            Err(e) if e.is_not_found() => return Err(Error::NotARepository { path }),
            Err(e) => return Err(e),
        };
        let config = RepoConfig::parse(&path, &data)?;
        if config.encryption.algorithm != crypto::ALGORITHM {
            return Self::open_store(plain);
        }
        // Only a slot that wraps the key the config names opens it: a slot left behind by an
        // init that lost a race (see [`Repository::open_or_init_encrypted`]) never does.
        let master = keyslot::unlock_for(&*plain, secret, config.encryption.key_id.as_deref())?;
        Self::open_store(Arc::new(EncryptedStore::new(plain, master.keys())))
    }

    /// Like [`Repository::open_or_init`] for an encrypted repository: opens the one in `path`
    /// with `secret`, or creates one whose single key slot is the key file `secret` when the
    /// directory is new or empty. When another process publishes its repository first, this
    /// one's key slot is removed again and the other's repository is opened with `secret` (which
    /// then has to open it).
    pub fn open_or_init_encrypted(
        path: impl AsRef<Path>,
        opts: InitOptions,
        secret: &Secret,
    ) -> Result<Repository> {
        let path = path.as_ref();
        if LocalStore::has_config(path) {
            return Self::open_with_key(path, secret);
        }
        // A key-file slot derives its key without Argon2id: the parameters are not used.
        let kdf = KdfParams {
            m_cost: 64 * 1024,
            t_cost: 1,
            p_cost: 1,
        };
        Self::create(path, opts, true, Some((secret, kdf)))
    }

    /// Opens the repository in `path`, creating it if the directory is new, empty or a
    /// repository that another process is creating at the same moment (it then opens that
    /// one). Several runs that start at once on a new target use this.
    pub fn open_or_init(path: impl AsRef<Path>, opts: InitOptions) -> Result<Repository> {
        let path = path.as_ref();
        if LocalStore::has_config(path) {
            return Self::open(path);
        }
        Self::create(path, opts, true, None)
    }

    /// Whether an entry named `name` leaves a directory "empty" for a new repository: a freshly
    /// made filesystem's `lost+found`, a writability probe of bmsd's pre-flight check
    /// ([`PROBE_PREFIX`]) and, with `join`, the directories of a repository another process is
    /// creating there at the same moment (docs/repository-format.md).
    pub fn ignorable_in_new_dir(name: &std::ffi::OsStr, join: bool) -> bool {
        name == "lost+found"
            || name.as_encoded_bytes().starts_with(PROBE_PREFIX.as_bytes())
            || (join && DIRS.iter().any(|d| name == *d))
    }

    fn create(
        path: &Path,
        opts: InitOptions,
        join: bool,
        encrypt: Option<(&Secret, KdfParams)>,
    ) -> Result<Repository> {
        validate(&opts)?;
        let mut notes = Vec::new();
        if path.exists() {
            // A freshly made filesystem's `lost+found` does not make its root "not empty"; with
            // `join`, neither do the directories of a repository being created concurrently.
            let mut it = std::fs::read_dir(path).ctx("reading", path)?.filter(|e| {
                e.as_ref()
                    .map_or(true, |e| !Self::ignorable_in_new_dir(&e.file_name(), join))
            });
            if it.next().is_some() {
                if join && LocalStore::has_config(path) {
                    return match encrypt {
                        Some((secret, _)) => Self::open_with_key(path, secret),
                        None => Self::open(path),
                    };
                }
                return Err(Error::AlreadyExists {
                    path: path.to_path_buf(),
                });
            }
            if let Some(n) = restrict_dir(path)? {
                notes.push(n);
            }
        } else {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).ctx("creating repository directory", parent)?;
            }
            let made = if join {
                fsutil::ensure_dir_private(path)
            } else {
                fsutil::create_dir_private(path)
            };
            made.ctx("creating repository directory", path)?;
        }
        let store = Arc::new(LocalStore::create_layout(path, join)?);
        let mut repo = Self::create_in(store, opts, join, encrypt)?;
        repo.notes = notes;
        Ok(repo)
    }

    /// Opens the repository in `store` (a store without directories, e.g. an object store),
    /// creating it when the store holds no config yet: plain, or encrypted with a single key
    /// slot for the key file `secret`. As with [`Repository::open_or_init`], when another
    /// process publishes its repository first, that one is opened (with `secret`).
    pub fn open_or_init_store(
        store: Arc<dyn Store>,
        opts: InitOptions,
        secret: Option<&Secret>,
    ) -> Result<Repository> {
        if store.stat(Kind::Config, CONFIG)?.is_none() {
            validate(&opts)?;
            // A key-file slot derives its key without Argon2id: the parameters are not used.
            let kdf = KdfParams {
                m_cost: 64 * 1024,
                t_cost: 1,
                p_cost: 1,
            };
            return Self::create_in(store, opts, true, secret.map(|s| (s, kdf)));
        }
        match secret {
            Some(s) => Self::open_store_with_key(store, s),
            None => Self::open_store(store),
        }
    }

    /// Creates a repository in `store`, whose layout the store has made. Fails with
    /// [`Error::AlreadyExists`] if it holds a repository already.
    pub fn init_store(store: Arc<dyn Store>, opts: InitOptions) -> Result<Repository> {
        validate(&opts)?;
        Self::create_in(store, opts, false, None)
    }

    fn create_in(
        store: Arc<dyn Store>,
        opts: InitOptions,
        join: bool,
        encrypt: Option<(&Secret, KdfParams)>,
    ) -> Result<Repository> {
        // The key slot is written before the config: a store without a config is no repository.
        let plain = store.clone();
        let (encryption, store, slot) = match encrypt {
            None => (
                EncryptionParams {
                    algorithm: "none".into(),
                    key_id: None,
                },
                store,
                None,
            ),
            Some((secret, kdf)) => {
                let master = MasterKey::generate();
                let slot = keyslot::add(&*store, &master, secret, kdf)?;
                let store: Arc<dyn Store> = Arc::new(EncryptedStore::new(store, master.keys()));
                (
                    EncryptionParams {
                        algorithm: crypto::ALGORITHM.into(),
                        key_id: Some(master.key_id()),
                    },
                    store,
                    Some((slot.id, secret)),
                )
            }
        };
        let config = RepoConfig {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            id: ObjectId(fsutil::random_bytes()?).to_hex(),
            created: jiff::Timestamp::now().to_string(),
            chunker: opts.chunker,
            compression: opts.compression,
            pack_size: opts.pack_size,
            encryption,
            required_features: vec![],
        };
        let data = serde_json::to_vec_pretty(&config)
            .map_err(|e| Error::internal("encoding repository config", e))?;
        // The config is written last: a store without it is not (yet) a repository. It never
        // replaces a config that a concurrent init wrote first.
        if !store.put(Kind::Config, CONFIG, &data, Put::New)? {
            if let Some((slot, secret)) = slot {
                // Another process published its repository first: this slot wraps a key that
                // no config names, so it goes, and the other repository opens with the secret.
                plain.delete(Kind::Keys, &slot)?;
                if join {
                    return Self::open_store_with_key(plain, secret);
                }
            } else if join {
                return Self::open_store(store);
            }
            return Err(Error::AlreadyExists {
                path: store.location().to_path_buf(),
            });
        }
        Ok(Repository {
            path: store.location().to_path_buf(),
            store,
            config,
            lock_wait: Duration::ZERO,
            notes: Vec::new(),
        })
    }

    /// What [`Repository::init`] changed besides creating the repository (e.g. permissions
    /// it restricted).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Opens the existing repository in the directory `path`, refusing unknown format versions.
    pub fn open(path: impl AsRef<Path>) -> Result<Repository> {
        Self::open_store(Arc::new(LocalStore::new(path.as_ref())))
    }

    /// Opens the existing repository in `store`, refusing unknown format versions.
    pub fn open_store(store: Arc<dyn Store>) -> Result<Repository> {
        let path = store.location().to_path_buf();
        let data = match store.read(Kind::Config, CONFIG) {
            Ok(d) => d,
            Err(e) if e.is_not_found() => return Err(Error::NotARepository { path }),
            Err(e) => return Err(e),
        };
        let config = RepoConfig::parse(&path, &data)?;
        if config.encryption.algorithm == crypto::ALGORITHM && !store.encrypted() {
            return Err(Error::InvalidArgument(format!(
                "the repository {} is encrypted: open it with its key file (--key-file FILE) \
                 or its passphrase (--passphrase-file FILE)",
                path.display()
            )));
        }
        store.check()?;
        Ok(Repository {
            store,
            path,
            config,
            lock_wait: Duration::ZERO,
            notes: Vec::new(),
        })
    }

    /// Where the repository is (for a [`LocalStore`], its directory): for messages, and to
    /// keep the repository out of backup sources. Its objects are reached through
    /// [`Repository::store`] only.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The store holding the repository's objects.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// How long writers wait for a conflicting lock before failing (default: fail at once).
    pub fn set_lock_wait(&mut self, wait: Duration) {
        self.lock_wait = wait;
    }
    pub fn lock_wait(&self) -> Duration {
        self.lock_wait
    }

    /// Loads all index files. Unreadable or corrupt ones are skipped and returned as problems.
    pub fn load_index(&self) -> Result<(Index, Vec<(ObjectId, Error)>)> {
        let mut index = Index::default();
        let mut bad = Vec::new();
        for id in list_ids(&*self.store, Kind::Index)? {
            match IndexFile::load(&*self.store, &id) {
                Ok(f) => {
                    for (p, entries) in &f.packs {
                        index.add_pack(*p, entries);
                    }
                    index.files.push(id);
                }
                Err(e) => bad.push((id, e)),
            }
        }
        Ok((index, bad))
    }

    /// All readable snapshots, oldest first. Corrupt snapshot files are skipped here (and
    /// reported by verify and [`Repository::snapshots_checked`]).
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        let (list, damaged) = self.snapshots_checked()?;
        for d in damaged {
            tracing::warn!("skipping snapshot {}: {}", d.id, d.reason);
        }
        Ok(list)
    }

    /// All readable snapshots, oldest first, and the snapshot files that cannot be read or
    /// fail their integrity check.
    pub fn snapshots_checked(&self) -> Result<(Vec<SnapshotInfo>, Vec<DamagedSnapshot>)> {
        let mut out = Vec::new();
        let mut damaged = Vec::new();
        for id in list_ids(&*self.store, Kind::Snapshots)? {
            match snapshot::load(&*self.store, &id) {
                Ok(s) => out.push(SnapshotInfo {
                    id: id.to_hex(),
                    short_id: id.short(),
                    snapshot: s,
                }),
                Err(e) => damaged.push(DamagedSnapshot {
                    id: id.to_hex(),
                    reason: e.to_string(),
                }),
            }
        }
        out.sort_by_key(|s| (s.snapshot.unix_nanos(), s.id.clone()));
        Ok((out, damaged))
    }

    /// Finds a snapshot by id, unique prefix or `latest`.
    pub fn find_snapshot(&self, spec: &str) -> Result<SnapshotInfo> {
        let list = self.snapshots()?;
        snapshot::resolve(&list, spec).cloned()
    }

    /// Lists the entries of `path` inside a snapshot (a directory's children, or the entry
    /// itself). With `recursive`, everything below it.
    pub fn ls(&self, snapshot: &str, path: &str) -> Result<Vec<Entry>> {
        self.ls_with(snapshot, path.as_bytes(), false)
    }

    /// [`Repository::ls`] with raw path bytes and optional recursion.
    pub fn ls_with(&self, snapshot: &str, path: &[u8], recursive: bool) -> Result<Vec<Entry>> {
        let info = self.find_snapshot(snapshot)?;
        let (index, _) = self.load_index()?;
        let index = Arc::new(index);
        let mut reader = BlobReader::new(self.store.clone(), index);
        let comps = split_path(path);
        let root = reader.load_tree(&info.snapshot.root_tree()?)?;
        let (node, prefix) = lookup_path(&mut reader, root, &comps, &info.id, path)?;
        let mut out = Vec::new();
        match node {
            Some(n) if n.kind != NodeKind::Dir => out.push(Entry::from_node(&prefix, &n)),
            Some(n) => list_dir(&mut reader, n.subtree, &prefix, recursive, &mut out)?,
            None => list_dir(
                &mut reader,
                Some(info.snapshot.root_tree()?),
                b"",
                recursive,
                &mut out,
            )?,
        }
        Ok(out)
    }
}

fn validate(opts: &InitOptions) -> Result<()> {
    opts.chunker.validate()?;
    if opts.pack_size < (1 << 20) || opts.pack_size > (1 << 30) {
        return Err(Error::InvalidArgument(
            "pack size must be between 1 MiB and 1 GiB".into(),
        ));
    }
    Ok(())
}

/// The objects of `kind` whose names are object ids (other names are ignored), sorted.
pub fn list_ids(store: &dyn Store, kind: Kind) -> Result<Vec<ObjectId>> {
    let mut out: Vec<ObjectId> = store
        .list(kind)?
        .iter()
        .filter_map(|n| ObjectId::from_hex(n).ok())
        .collect();
    out.sort();
    Ok(out)
}

/// Restricts an existing repository directory that group or others can access to 0700;
/// returns a note saying so.
fn restrict_dir(path: &Path) -> Result<Option<String>> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .ctx("reading", path)?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(fsutil::DIR_MODE)).map_err(
        |e| {
            Error::InvalidArgument(format!(
                "{} is accessible to other users (mode {mode:04o}) and cannot be restricted to 0700: {e}; \
                 run `chmod 700 {}` as its owner, or choose another directory",
                path.display(),
                path.display()
            ))
        },
    )?;
    let msg = format!(
        "restricted {} from mode {mode:04o} to 0700: a repository is private to its owner",
        path.display()
    );
    tracing::warn!("{msg}");
    Ok(Some(msg))
}
