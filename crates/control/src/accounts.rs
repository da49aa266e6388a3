//! Accounts and their access keys.
//!
//! Every Lambda resource belongs to an account. The root account (its id lives in the store's
//! `meta` table, its keys come from the environment or the generated credentials file) is the
//! operator's; [`Accounts`] lets it create further accounts, disable them, and issue or revoke
//! their access keys.
//!
//! SigV4 verification recomputes the signature with the plaintext secret, so secrets cannot be
//! hashed like passwords. They are sealed instead: XChaCha20-Poly1305 under the node's
//! [`MasterKey`] (a file beside the database, never in it), with a fresh random nonce per
//! secret and the key's id and account as associated data, so a sealed secret copied onto
//! another key's row does not open. The database alone therefore never yields a usable key.
//!
//! Changes are written through to the [`Store`] before they take effect; subscribers (the
//! front door's key ring) hear about every key that starts or stops being accepted, so the
//! request path never reads the database.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::Rng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use updraft_store::{Op, Store, StoreError};

use crate::error::{ControlError, Result};

/// Length of the master key in bytes (XChaCha20-Poly1305 keys are 256 bits).
const MASTER_KEY_LEN: usize = 32;
/// Length of an XChaCha20 nonce; 192 bits make random nonces safe for any number of secrets.
const NONCE_LEN: usize = 24;
/// Name of the sealing scheme recorded with each key, so a later scheme can coexist.
const SEAL_ALG: &str = "xchacha20poly1305";
/// Longest account name accepted.
pub const MAX_ACCOUNT_NAME: usize = 64;

/// Failures while loading the master key or the stored accounts at start-up.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("cannot read the master key {path}: {source}")]
    ReadMasterKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the master key {path}: {source}")]
    WriteMasterKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the master key {path} is malformed: expected 64 hexadecimal digits")]
    MalformedMasterKey { path: PathBuf },
    #[error("cannot load accounts from the store: {0}")]
    Load(#[source] StoreError),
    #[error("cannot record the root account: {0}")]
    RecordRoot(#[source] StoreError),
    #[error("stored account {account_id} is malformed: {source}")]
    AccountDoc {
        account_id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("stored access key {access_key_id} is malformed: {reason}")]
    KeyDoc {
        access_key_id: String,
        reason: String,
    },
    #[error(
        "cannot decrypt the secret of access key {access_key_id}: wrong master key or altered record"
    )]
    Decrypt { access_key_id: String },
}

/// The node's key that seals access-key secrets at rest.
#[derive(Clone)]
pub struct MasterKey([u8; MASTER_KEY_LEN]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        let mut k = [0u8; MASTER_KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Self(k)
    }

    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Reads the key at `path`, or creates it (mode 0600) when there is none. The flag says
    /// whether it was created now.
    pub fn load_or_create(path: &Path) -> std::result::Result<(Self, bool), AccountsError> {
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::parse(path, &text).map(|k| (k, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(AccountsError::ReadMasterKey {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
        let key = Self::generate();
        match key.write_new(path) {
            Ok(()) => Ok((key, true)),
            // Another process created it first: use theirs, or its secrets would not open.
            Err(AccountsError::WriteMasterKey { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                let text = std::fs::read_to_string(path).map_err(|source| {
                    AccountsError::ReadMasterKey {
                        path: path.to_path_buf(),
                        source,
                    }
                })?;
                Self::parse(path, &text).map(|k| (k, false))
            }
            Err(e) => Err(e),
        }
    }

    fn parse(path: &Path, text: &str) -> std::result::Result<Self, AccountsError> {
        let malformed = || AccountsError::MalformedMasterKey {
            path: path.to_path_buf(),
        };
        let bytes = hex::decode(text.trim()).map_err(|_| malformed())?;
        let bytes: [u8; MASTER_KEY_LEN] = bytes.try_into().map_err(|_| malformed())?;
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the master key is readable by other users; it should be mode 0600"
            );
        }
        Ok(Self(bytes))
    }

    /// Writes the key to a private temporary file, then links it into place so a crash never
    /// leaves a half-written key and an existing key is never replaced. The directory is fsynced
    /// after the link: until then a power loss could forget the key while secrets sealed with it
    /// are already in the database.
    fn write_new(&self, path: &Path) -> std::result::Result<(), AccountsError> {
        use std::os::unix::fs::OpenOptionsExt;
        let err = |source| AccountsError::WriteMasterKey {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(format!("{}\n", hex::encode(self.0)).as_bytes())?;
            f.sync_all()?;
            std::fs::hard_link(&tmp, path)
        })();
        let _ = std::fs::remove_file(&tmp);
        written.map_err(err)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }

    /// Seals `plaintext` bound to `aad`: base64 of nonce followed by ciphertext and tag.
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| ControlError::service("sealing an access key secret failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// Opens what [`MasterKey::seal`] produced; `None` if the key, the data or `aad` differ.
    fn open(&self, aad: &[u8], sealed: &str) -> Option<Vec<u8>> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
    }
}

/// A secret access key; its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The plaintext, for SigV4 verification and for the one answer that hands it out.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Whether an account's keys are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountStatus {
    Enabled,
    Disabled,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "Enabled",
            Self::Disabled => "Disabled",
        }
    }
}

/// An account as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub account_id: String,
    pub name: String,
    pub status: AccountStatus,
    /// RFC 3339 creation time.
    pub created: String,
    /// The operator's own account, which manages the others.
    pub root: bool,
}

/// A stored access key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub account_id: String,
    /// RFC 3339 creation time.
    pub created: String,
}

/// An access key with its plaintext secret: handed out once at creation, and to the key ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    pub access_key_id: String,
    pub account_id: String,
    pub secret_access_key: SecretKey,
}

/// A key that starts or stops being accepted.
#[derive(Debug, Clone)]
pub enum KeyChange {
    /// Accept this key for this account from now on.
    Added(KeyMaterial),
    /// Stop accepting this key (deleted, or its account was disabled).
    Removed { access_key_id: String },
}

#[derive(Serialize, Deserialize)]
struct AccountDoc {
    name: String,
    status: AccountStatus,
    created: String,
    #[serde(default)]
    root: bool,
}

#[derive(Serialize, Deserialize)]
struct KeyDoc {
    created: String,
    alg: String,
    /// Base64 of nonce ‖ ciphertext ‖ tag.
    sealed_secret: String,
}

struct StoredKey {
    account_id: String,
    created: String,
    sealed_secret: String,
}

#[derive(Default)]
struct State {
    accounts: BTreeMap<String, Account>,
    keys: BTreeMap<String, StoredKey>,
}

type Subscriber = Box<dyn Fn(&KeyChange) + Send + Sync>;

/// The account service: every account and access key, in memory, written through to the store.
pub struct Accounts {
    store: Arc<dyn Store>,
    master: MasterKey,
    root_account_id: String,
    state: Mutex<State>,
    subscribers: RwLock<Vec<Subscriber>>,
}

/// Binds a sealed secret to its key and account.
fn aad(access_key_id: &str, account_id: &str) -> Vec<u8> {
    format!("updraft-access-key\0{access_key_id}\0{account_id}").into_bytes()
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A 12-digit account id that does not start with 0.
fn random_account_id() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "{}{:011}",
        rng.gen_range(1..10),
        rng.gen_range(0..100_000_000_000u64)
    )
}

/// `AKIA` and 16 characters of the base32 alphabet, as AWS's long-term key ids look.
fn random_access_key_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rngs::OsRng;
    let tail: String = (0..16)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("AKIA{tail}")
}

/// 40 characters of the base64 alphabet, as AWS's secret keys look.
fn random_secret() -> SecretKey {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rngs::OsRng;
    SecretKey(
        (0..40)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect(),
    )
}

/// Checks an account name: 1 to 64 letters, digits, spaces or `+=,.@_-`.
pub fn validate_account_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || " +=,.@_-".contains(c);
    if name.trim().is_empty() || name.chars().count() > MAX_ACCOUNT_NAME {
        return Err(ControlError::invalid(format!(
            "Account name must be 1 to {MAX_ACCOUNT_NAME} characters long"
        )));
    }
    if !name.chars().all(ok_char) {
        return Err(ControlError::invalid(
            "Account name may contain only letters, digits, spaces and +=,.@_-",
        ));
    }
    Ok(())
}

fn encode_account(a: &Account) -> std::result::Result<String, serde_json::Error> {
    serde_json::to_string(&AccountDoc {
        name: a.name.clone(),
        status: a.status,
        created: a.created.clone(),
        root: a.root,
    })
}

fn account_doc(a: &Account) -> Result<String> {
    encode_account(a).map_err(ControlError::service)
}

fn account_not_found(account_id: &str) -> ControlError {
    ControlError::not_found(format!("Account not found: {account_id}"))
}

impl Accounts {
    /// Loads every account and key, checking that each secret opens with `master`. Records the
    /// root account on first start.
    pub fn open(
        store: Arc<dyn Store>,
        master: MasterKey,
        root_account_id: &str,
    ) -> std::result::Result<Self, AccountsError> {
        let snap = store.snapshot().map_err(AccountsError::Load)?;
        let mut state = State::default();
        for row in snap.accounts {
            let doc: AccountDoc =
                serde_json::from_str(&row.doc).map_err(|source| AccountsError::AccountDoc {
                    account_id: row.account_id.clone(),
                    source,
                })?;
            state.accounts.insert(
                row.account_id.clone(),
                Account {
                    root: row.account_id == root_account_id,
                    account_id: row.account_id,
                    name: doc.name,
                    status: doc.status,
                    created: doc.created,
                },
            );
        }
        for row in snap.access_keys {
            let doc: KeyDoc =
                serde_json::from_str(&row.doc).map_err(|e| AccountsError::KeyDoc {
                    access_key_id: row.access_key_id.clone(),
                    reason: e.to_string(),
                })?;
            if doc.alg != SEAL_ALG {
                return Err(AccountsError::KeyDoc {
                    access_key_id: row.access_key_id,
                    reason: format!("unknown sealing scheme {}", doc.alg),
                });
            }
            // Fail at start-up, not at the first request, when the master key is not the one
            // that sealed the secrets.
            if master
                .open(
                    &aad(&row.access_key_id, &row.account_id),
                    &doc.sealed_secret,
                )
                .is_none()
            {
                return Err(AccountsError::Decrypt {
                    access_key_id: row.access_key_id,
                });
            }
            state.keys.insert(
                row.access_key_id,
                StoredKey {
                    account_id: row.account_id,
                    created: doc.created,
                    sealed_secret: doc.sealed_secret,
                },
            );
        }
        if !state.accounts.contains_key(root_account_id) {
            let root = Account {
                account_id: root_account_id.to_string(),
                name: "root".to_string(),
                status: AccountStatus::Enabled,
                created: now_rfc3339(),
                root: true,
            };
            let doc = encode_account(&root).map_err(|source| AccountsError::AccountDoc {
                account_id: root.account_id.clone(),
                source,
            })?;
            store
                .apply(&[Op::PutAccount {
                    account_id: root.account_id.clone(),
                    doc,
                }])
                .map_err(AccountsError::RecordRoot)?;
            state.accounts.insert(root.account_id.clone(), root);
        }
        Ok(Self {
            store,
            master,
            root_account_id: root_account_id.to_string(),
            state: Mutex::new(state),
            subscribers: RwLock::new(Vec::new()),
        })
    }

    /// The operator's account, the only one allowed to manage accounts.
    pub fn root_account_id(&self) -> &str {
        &self.root_account_id
    }

    /// Calls `f` for every later key change. It runs while the service's lock is held (so
    /// changes arrive in the order they happened) and must not call back into the service.
    pub fn subscribe(&self, f: impl Fn(&KeyChange) + Send + Sync + 'static) {
        if let Ok(mut s) = self.subscribers.write() {
            s.push(Box::new(f));
        }
    }

    fn notify(&self, change: &KeyChange) {
        if let Ok(subs) = self.subscribers.read() {
            for s in subs.iter() {
                s(change);
            }
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| ControlError::service("the accounts lock was poisoned"))
    }

    /// Every stored key of every enabled account, with its secret: what the key ring starts with.
    pub fn active_keys(&self) -> Result<Vec<KeyMaterial>> {
        let state = self.lock()?;
        let mut out = Vec::new();
        for (id, k) in &state.keys {
            let enabled = state
                .accounts
                .get(&k.account_id)
                .is_some_and(|a| a.status == AccountStatus::Enabled);
            if enabled {
                out.push(self.unseal(id, k)?);
            }
        }
        Ok(out)
    }

    fn unseal(&self, access_key_id: &str, k: &StoredKey) -> Result<KeyMaterial> {
        let plain = self
            .master
            .open(&aad(access_key_id, &k.account_id), &k.sealed_secret)
            .ok_or_else(|| {
                ControlError::service(format!(
                    "the secret of access key {access_key_id} does not open"
                ))
            })?;
        let secret = String::from_utf8(plain).map_err(|_| {
            ControlError::service(format!(
                "the secret of access key {access_key_id} is not text"
            ))
        })?;
        Ok(KeyMaterial {
            access_key_id: access_key_id.to_string(),
            account_id: k.account_id.clone(),
            secret_access_key: SecretKey(secret),
        })
    }

    /// Creates an enabled account with a first access key.
    pub fn create_account(&self, name: &str) -> Result<(Account, KeyMaterial)> {
        validate_account_name(name)?;
        let mut state = self.lock()?;
        let account_id = loop {
            let id = random_account_id();
            if id != self.root_account_id && !state.accounts.contains_key(&id) {
                break id;
            }
        };
        let account = Account {
            account_id: account_id.clone(),
            name: name.to_string(),
            status: AccountStatus::Enabled,
            created: now_rfc3339(),
            root: false,
        };
        let (key_op, stored, material) = self.new_key(&state, &account_id)?;
        self.store.apply(&[
            Op::PutAccount {
                account_id: account_id.clone(),
                doc: account_doc(&account)?,
            },
            key_op,
        ])?;
        state.accounts.insert(account_id.clone(), account.clone());
        state.keys.insert(material.access_key_id.clone(), stored);
        tracing::info!(account_id = %account_id, access_key_id = %material.access_key_id, "account created");
        self.notify(&KeyChange::Added(material.clone()));
        Ok((account, material))
    }

    /// A new key pair for `account_id`, sealed and ready to write.
    fn new_key(&self, state: &State, account_id: &str) -> Result<(Op, StoredKey, KeyMaterial)> {
        let access_key_id = loop {
            let id = random_access_key_id();
            if !state.keys.contains_key(&id) {
                break id;
            }
        };
        let secret = random_secret();
        let sealed_secret = self
            .master
            .seal(&aad(&access_key_id, account_id), secret.0.as_bytes())?;
        let created = now_rfc3339();
        let doc = serde_json::to_string(&KeyDoc {
            created: created.clone(),
            alg: SEAL_ALG.to_string(),
            sealed_secret: sealed_secret.clone(),
        })
        .map_err(ControlError::service)?;
        Ok((
            Op::PutAccessKey {
                access_key_id: access_key_id.clone(),
                account_id: account_id.to_string(),
                doc,
            },
            StoredKey {
                account_id: account_id.to_string(),
                created,
                sealed_secret,
            },
            KeyMaterial {
                access_key_id,
                account_id: account_id.to_string(),
                secret_access_key: secret,
            },
        ))
    }

    /// Every account, ordered by id.
    pub fn list_accounts(&self) -> Result<Vec<Account>> {
        Ok(self.lock()?.accounts.values().cloned().collect())
    }

    pub fn get_account(&self, account_id: &str) -> Result<Account> {
        self.lock()?
            .accounts
            .get(account_id)
            .cloned()
            .ok_or_else(|| account_not_found(account_id))
    }

    /// Disables an account: its keys stop being accepted at once; its functions stay stored.
    pub fn disable_account(&self, account_id: &str) -> Result<Account> {
        let mut state = self.lock()?;
        let mut account = state
            .accounts
            .get(account_id)
            .cloned()
            .ok_or_else(|| account_not_found(account_id))?;
        if account.root {
            return Err(ControlError::conflict(
                "The root account manages the others and cannot be disabled",
            ));
        }
        if account.status == AccountStatus::Disabled {
            return Ok(account);
        }
        account.status = AccountStatus::Disabled;
        self.store.apply(&[Op::PutAccount {
            account_id: account_id.to_string(),
            doc: account_doc(&account)?,
        }])?;
        state
            .accounts
            .insert(account_id.to_string(), account.clone());
        tracing::info!(account_id = %account_id, "account disabled");
        for (id, k) in &state.keys {
            if k.account_id == account_id {
                self.notify(&KeyChange::Removed {
                    access_key_id: id.clone(),
                });
            }
        }
        Ok(account)
    }

    /// Issues another key pair for an enabled account.
    pub fn create_key(&self, account_id: &str) -> Result<KeyMaterial> {
        let mut state = self.lock()?;
        let account = state
            .accounts
            .get(account_id)
            .ok_or_else(|| account_not_found(account_id))?;
        if account.status != AccountStatus::Enabled {
            return Err(ControlError::conflict(format!(
                "Account {account_id} is disabled"
            )));
        }
        let (op, stored, material) = self.new_key(&state, account_id)?;
        self.store.apply(&[op])?;
        state.keys.insert(material.access_key_id.clone(), stored);
        tracing::info!(account_id = %account_id, access_key_id = %material.access_key_id, "access key created");
        self.notify(&KeyChange::Added(material.clone()));
        Ok(material)
    }

    /// The stored keys of an account, without secrets.
    pub fn list_keys(&self, account_id: &str) -> Result<Vec<AccessKey>> {
        let state = self.lock()?;
        if !state.accounts.contains_key(account_id) {
            return Err(account_not_found(account_id));
        }
        Ok(state
            .keys
            .iter()
            .filter(|(_, k)| k.account_id == account_id)
            .map(|(id, k)| AccessKey {
                access_key_id: id.clone(),
                account_id: k.account_id.clone(),
                created: k.created.clone(),
            })
            .collect())
    }

    /// Deletes a key of an account; it stops being accepted at once.
    pub fn delete_key(&self, account_id: &str, access_key_id: &str) -> Result<()> {
        let mut state = self.lock()?;
        if !state.accounts.contains_key(account_id) {
            return Err(account_not_found(account_id));
        }
        if state
            .keys
            .get(access_key_id)
            .is_none_or(|k| k.account_id != account_id)
        {
            return Err(ControlError::not_found(format!(
                "Access key {access_key_id} not found in account {account_id}"
            )));
        }
        self.store.apply(&[Op::DeleteAccessKey {
            access_key_id: access_key_id.to_string(),
        }])?;
        state.keys.remove(access_key_id);
        tracing::info!(account_id = %account_id, access_key_id = %access_key_id, "access key deleted");
        self.notify(&KeyChange::Removed {
            access_key_id: access_key_id.to_string(),
        });
        Ok(())
    }
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("root_account_id", &self.root_account_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_store::SqliteStore;

    const ROOT: &str = "123456789012";

    fn open_at(path: &Path, master: &MasterKey) -> std::result::Result<Accounts, AccountsError> {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path).unwrap());
        Accounts::open(store, master.clone(), ROOT)
    }

    fn memory() -> Accounts {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        Accounts::open(store, MasterKey::generate(), ROOT).unwrap()
    }

    #[test]
    fn seal_round_trip_and_wrong_key_fails() {
        let k = MasterKey::generate();
        let sealed = k.seal(b"aad", b"the secret").unwrap();
        assert_eq!(k.open(b"aad", &sealed).unwrap(), b"the secret");
        assert!(!sealed.contains("the secret"));
        assert!(MasterKey::generate().open(b"aad", &sealed).is_none());
        assert!(k.open(b"other aad", &sealed).is_none());
        // A fresh nonce each time: the same secret never seals to the same text.
        assert_ne!(k.seal(b"aad", b"the secret").unwrap(), sealed);
        assert!(k.open(b"aad", "AAAA").is_none());
        assert!(k.open(b"aad", "not base64!").is_none());
    }

    #[test]
    fn master_key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let (a, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (b, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.0, b.0);
        std::fs::write(&path, "zz\n").unwrap();
        assert!(matches!(
            MasterKey::load_or_create(&path),
            Err(AccountsError::MalformedMasterKey { .. })
        ));
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let a = memory();
        let (_, key) = a.create_account("team-a").unwrap();
        let shown = format!("{key:?} {:?} {:?}", KeyChange::Added(key.clone()), a.master);
        assert!(!shown.contains(key.secret_access_key.expose()), "{shown}");
        assert!(shown.contains(&key.access_key_id));
    }

    #[test]
    fn root_account_is_recorded_and_cannot_be_disabled() {
        let a = memory();
        let accounts = a.list_accounts().unwrap();
        assert_eq!(accounts.len(), 1);
        assert!(accounts[0].root);
        assert_eq!(accounts[0].account_id, ROOT);
        let e = a.disable_account(ROOT).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Conflict);
    }

    #[test]
    fn create_account_issues_well_formed_keys() {
        let a = memory();
        let (acct, key) = a.create_account("team a").unwrap();
        assert_eq!(acct.account_id.len(), 12);
        assert!(acct.account_id.bytes().all(|b| b.is_ascii_digit()));
        assert_ne!(acct.account_id, ROOT);
        assert!(!acct.root);
        assert_eq!(acct.status, AccountStatus::Enabled);
        assert!(key.access_key_id.starts_with("AKIA"));
        assert_eq!(key.access_key_id.len(), 20);
        assert_eq!(key.secret_access_key.expose().len(), 40);
        assert_eq!(key.account_id, acct.account_id);
        let (other, key2) = a.create_account("team b").unwrap();
        assert_ne!(other.account_id, acct.account_id);
        assert_ne!(key2.access_key_id, key.access_key_id);
        assert_ne!(key2.secret_access_key, key.secret_access_key);
        assert_eq!(a.list_accounts().unwrap().len(), 3);
    }

    #[test]
    fn bad_names_are_refused() {
        let a = memory();
        for name in ["", "   ", "semi;colon", &"x".repeat(65)] {
            let e = a.create_account(name).unwrap_err();
            assert_eq!(e.kind, crate::ErrorKind::InvalidParameter, "{name:?}");
        }
        assert_eq!(a.list_accounts().unwrap().len(), 1);
    }

    #[test]
    fn keys_can_be_added_listed_and_deleted() {
        let a = memory();
        let (acct, first) = a.create_account("t").unwrap();
        let second = a.create_key(&acct.account_id).unwrap();
        let ids: Vec<String> = a
            .list_keys(&acct.account_id)
            .unwrap()
            .into_iter()
            .map(|k| k.access_key_id)
            .collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&first.access_key_id) && ids.contains(&second.access_key_id));
        a.delete_key(&acct.account_id, &first.access_key_id)
            .unwrap();
        assert_eq!(a.list_keys(&acct.account_id).unwrap().len(), 1);
        let e = a
            .delete_key(&acct.account_id, &first.access_key_id)
            .unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::NotFound);
        // A key cannot be deleted through another account.
        let (other, _) = a.create_account("u").unwrap();
        let e = a
            .delete_key(&other.account_id, &second.access_key_id)
            .unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::NotFound);
        assert_eq!(
            a.list_keys("999999999999").unwrap_err().kind,
            crate::ErrorKind::NotFound
        );
    }

    #[test]
    fn subscribers_follow_every_change_and_disable_drops_keys() {
        let a = memory();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let s = seen.clone();
        a.subscribe(move |c| {
            let line = match c {
                KeyChange::Added(k) => format!("+{}", k.access_key_id),
                KeyChange::Removed { access_key_id } => format!("-{access_key_id}"),
            };
            s.lock().unwrap().push(line);
        });
        let (acct, k1) = a.create_account("t").unwrap();
        let k2 = a.create_key(&acct.account_id).unwrap();
        assert_eq!(a.active_keys().unwrap().len(), 2);
        let disabled = a.disable_account(&acct.account_id).unwrap();
        assert_eq!(disabled.status, AccountStatus::Disabled);
        let mut log = seen.lock().unwrap().clone();
        assert_eq!(
            &log[..2],
            [
                format!("+{}", k1.access_key_id),
                format!("+{}", k2.access_key_id)
            ]
        );
        log.drain(..2);
        log.sort();
        let mut expected = vec![
            format!("-{}", k1.access_key_id),
            format!("-{}", k2.access_key_id),
        ];
        expected.sort();
        assert_eq!(log, expected);
        assert!(a.active_keys().unwrap().is_empty());
        assert_eq!(
            a.create_key(&acct.account_id).unwrap_err().kind,
            crate::ErrorKind::Conflict
        );
        // Disabling twice is harmless and announces nothing new.
        a.disable_account(&acct.account_id).unwrap();
        assert_eq!(seen.lock().unwrap().len(), 4);
    }

    #[test]
    fn accounts_and_keys_survive_reopen_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("updraft.db");
        let master = MasterKey::generate();
        let (acct, key, gone) = {
            let a = open_at(&db, &master).unwrap();
            let (acct, key) = a.create_account("persisted").unwrap();
            let (gone, _) = a.create_account("to disable").unwrap();
            a.disable_account(&gone.account_id).unwrap();
            (acct, key, gone)
        };
        let a = open_at(&db, &master).unwrap();
        assert_eq!(a.get_account(&acct.account_id).unwrap(), acct);
        assert_eq!(
            a.get_account(&gone.account_id).unwrap().status,
            AccountStatus::Disabled
        );
        assert_eq!(a.active_keys().unwrap(), vec![key.clone()]);
        assert_eq!(a.list_accounts().unwrap().len(), 3);

        // The database holds the secret only sealed.
        let store = SqliteStore::open(&db).unwrap();
        let snap = store.snapshot().unwrap();
        assert_eq!(snap.access_keys.len(), 2);
        for row in &snap.access_keys {
            assert!(!row.doc.contains(key.secret_access_key.expose()));
        }
        let bytes = std::fs::read(&db).unwrap();
        let needle = key.secret_access_key.expose().as_bytes();
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    }

    #[test]
    fn wrong_master_key_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("updraft.db");
        {
            let a = open_at(&db, &MasterKey::generate()).unwrap();
            a.create_account("t").unwrap();
        }
        let e = open_at(&db, &MasterKey::generate()).unwrap_err();
        assert!(matches!(e, AccountsError::Decrypt { .. }), "{e}");
    }

    #[test]
    fn sealed_secret_moved_to_another_key_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("updraft.db");
        let master = MasterKey::generate();
        {
            let a = open_at(&db, &master).unwrap();
            a.create_account("t").unwrap();
        }
        let store = SqliteStore::open(&db).unwrap();
        let row = store.snapshot().unwrap().access_keys.remove(0);
        store
            .apply(&[Op::PutAccessKey {
                access_key_id: "AKIAMOVEDKEY00000000".into(),
                account_id: row.account_id,
                doc: row.doc,
            }])
            .unwrap();
        drop(store);
        let e = open_at(&db, &master).unwrap_err();
        assert!(
            matches!(&e, AccountsError::Decrypt { access_key_id } if access_key_id == "AKIAMOVEDKEY00000000"),
            "{e}"
        );
    }
}
