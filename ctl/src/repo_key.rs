//! `bmsctl repo key ...` and the key options of `bmsctl repo` (docs/repository-format.md,
//! "Encryption"): key slots of an encrypted repository, a key file or a passphrase to open it.
//! No command prints key material except `repo key export`, which exists for a paper backup.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use bms_engine::keyslot::{self, KdfParams, Secret};
use bms_engine::store::LocalStore;

use crate::error::{CliError, CliResult};
use crate::repo::{fail, json_out};

/// How `bmsctl repo` opens an encrypted repository (options of `bmsctl repo`, for every
/// sub-command).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KeyArgs {
    /// Key file that opens an encrypted repository (32 bytes, made by `repo init --encrypt`).
    #[arg(long, global = true, value_name = "FILE", env = "BMS_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// File whose first line is the passphrase of an encrypted repository (`-`: standard input).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "key_file")]
    pub passphrase_file: Option<PathBuf>,
}

static KEYS: OnceLock<KeyArgs> = OnceLock::new();

/// Records the key options of this invocation.
pub fn set(args: &KeyArgs) {
    let _ = KEYS.set(args.clone());
}

/// The secret given on the command line, if any.
pub fn secret() -> CliResult<Option<Secret>> {
    let Some(k) = KEYS.get() else { return Ok(None) };
    if let Some(f) = &k.key_file {
        return keyslot::read_key_file(f).map(Some).map_err(fail);
    }
    if let Some(f) = &k.passphrase_file {
        return keyslot::read_passphrase_file(f).map(Some).map_err(fail);
    }
    Ok(None)
}

fn required_secret() -> CliResult<Secret> {
    secret()?.ok_or_else(|| {
        CliError::usage(
            "this needs the repository's key: give --key-file FILE or --passphrase-file FILE",
        )
    })
}

/// Argon2id parameters for a new passphrase slot: about 0.5 s here. In debug builds only,
/// `BMS_TEST_FAST_KDF` makes tests fast (a release build never weakens a passphrase slot).
pub fn kdf() -> KdfParams {
    if cfg!(debug_assertions) && std::env::var_os("BMS_TEST_FAST_KDF").is_some() {
        return KdfParams {
            m_cost: 1024,
            t_cost: 1,
            p_cost: 1,
        };
    }
    KdfParams::tune(Duration::from_millis(500))
}

/// Where `repo init --encrypt` puts a new key file when none is given: the config dir's `keys/`.
pub fn default_key_file(repo: &Path) -> PathBuf {
    let base = if nix::unistd::geteuid().is_root() {
        PathBuf::from("/etc/bms")
    } else {
        std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(|| PathBuf::from("."))
            .join("bms")
    };
    let name = repo
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repository".into());
    base.join("keys").join(format!("{name}.key"))
}

/// `repo init --encrypt`: the first key slot from --passphrase-file, or from --key-file (made
/// when missing, at [`default_key_file`] when not given).
pub fn init_encrypted(
    repo: &Path,
    opts: bms_engine::InitOptions,
) -> CliResult<bms_engine::Repository> {
    let args = KEYS.get().cloned().unwrap_or_default();
    let secret = if args.passphrase_file.is_some() {
        required_secret()?
    } else {
        let file = args.key_file.unwrap_or_else(|| default_key_file(repo));
        if file.exists() {
            keyslot::read_key_file(&file).map_err(fail)?
        } else {
            let s = Secret::KeyFile(keyslot::create_key_file(&file).map_err(fail)?);
            eprintln!("created key file {} (0600)", file.display());
            s
        }
    };
    eprintln!(
        "note: the repository is encrypted; losing every key (key files and passphrases) means \
         losing the data: keep a copy of the key file elsewhere, or print the key with \
         `bmsctl repo key export`"
    );
    bms_engine::Repository::init_encrypted(repo, opts, &secret, kdf()).map_err(fail)
}

#[derive(Debug, clap::Subcommand)]
pub enum KeyCmd {
    /// List the key slots (id, kind, creation time); needs no key.
    List {
        #[arg(value_name = "PATH")]
        repo: PathBuf,
    },
    /// Add a key slot: a new key file (created, 0600) or a passphrase; opens with the current key.
    Add {
        #[arg(value_name = "PATH")]
        repo: PathBuf,
        /// Create this new key file and add a slot for it.
        #[arg(long, value_name = "FILE", conflicts_with = "new_passphrase_file")]
        new_key_file: Option<PathBuf>,
        /// Add a slot for the passphrase on the first line of this file.
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Remove a key slot; the last one is never removed.
    Remove {
        #[arg(value_name = "PATH")]
        repo: PathBuf,
        /// The slot id (`repo key list`).
        slot: String,
    },
    /// Replace the passphrase slot that --passphrase-file opens by one for a new passphrase.
    RotatePassphrase {
        #[arg(value_name = "PATH")]
        repo: PathBuf,
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: PathBuf,
    },
    /// Print the master key as text for a paper backup (with a checksum). Keep it offline.
    Export {
        #[arg(value_name = "PATH")]
        repo: PathBuf,
    },
}

fn store(repo: &Path) -> LocalStore {
    LocalStore::new(repo)
}

fn slot_json(s: &keyslot::KeySlot) -> serde_json::Value {
    serde_json::json!({"id": s.id, "kind": s.kind, "created": s.created, "kdf": s.kdf.map(|k| serde_json::json!({
        "algorithm": "argon2id", "m_cost_kib": k.m_cost, "t_cost": k.t_cost, "p_cost": k.p_cost}))})
}

pub fn run(cmd: &KeyCmd, json: bool) -> CliResult {
    match cmd {
        KeyCmd::List { repo } => {
            let slots = keyslot::list(&store(repo)).map_err(fail)?;
            if json {
                return json_out(&serde_json::json!({
                    "slots": slots.iter().map(slot_json).collect::<Vec<_>>()
                }));
            }
            for s in &slots {
                println!("{}  {:<10}  {}", s.id, s.kind, s.created);
            }
            println!("{} key slot(s)", slots.len());
            Ok(())
        }
        KeyCmd::Add {
            repo,
            new_key_file,
            new_passphrase_file,
        } => {
            let st = store(repo);
            let master = keyslot::unlock(&st, &required_secret()?).map_err(fail)?;
            let new = match (new_key_file, new_passphrase_file) {
                (Some(f), _) => Secret::KeyFile(keyslot::create_key_file(f).map_err(fail)?),
                (None, Some(f)) => keyslot::read_passphrase_file(f).map_err(fail)?,
                (None, None) => {
                    return Err(CliError::usage(
                        "give --new-key-file FILE or --new-passphrase-file FILE",
                    ))
                }
            };
            let slot = keyslot::add(&st, &master, &new, kdf()).map_err(fail)?;
            if json {
                return json_out(&slot_json(&slot));
            }
            println!("added {} key slot {}", slot.kind, slot.id);
            Ok(())
        }
        KeyCmd::Remove { repo, slot } => {
            let st = store(repo);
            // Only a holder of a key may remove a slot.
            keyslot::unlock(&st, &required_secret()?).map_err(fail)?;
            keyslot::remove(&st, slot).map_err(fail)?;
            if json {
                return json_out(&serde_json::json!({"removed": slot}));
            }
            println!("removed key slot {slot}");
            Ok(())
        }
        KeyCmd::RotatePassphrase {
            repo,
            new_passphrase_file,
        } => {
            let st = store(repo);
            let old = required_secret()?;
            if !matches!(old, Secret::Passphrase(_)) {
                return Err(CliError::usage(
                    "rotate-passphrase opens with the current passphrase: give --passphrase-file",
                ));
            }
            let (master, old_id) = keyslot::unlock_slot(&st, &old).map_err(fail)?;
            let new = keyslot::read_passphrase_file(new_passphrase_file).map_err(fail)?;
            let slot = keyslot::add(&st, &master, &new, kdf()).map_err(fail)?;
            keyslot::remove(&st, &old_id).map_err(fail)?;
            if json {
                return json_out(&serde_json::json!({"added": slot.id, "removed": old_id}));
            }
            println!("passphrase slot {old_id} replaced by {}", slot.id);
            Ok(())
        }
        KeyCmd::Export { repo } => {
            let st = store(repo);
            let master = keyslot::unlock(&st, &required_secret()?).map_err(fail)?;
            let text = keyslot::export_text(&master);
            println!(
                "bms repository master key ({}); anyone with it can read the repository:",
                repo.display()
            );
            print!("{}", &*text);
            Ok(())
        }
    }
}
