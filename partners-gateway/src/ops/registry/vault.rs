//! Per-member data keys, so that erasing a person destroys their personal data everywhere it
//! was ever written (crypto-shredding).
//!
//! A profile is stored encrypted (XChaCha20-Poly1305) under a key of its member's own. The
//! embedded store cannot forget a value on demand: fjall keeps every write in its write-ahead
//! journal until 64 MB of later writes rotate it, and no call hurries that. So the keys live
//! apart from it, in small files beside the store, one per 4,096 members, each rewritten whole
//! (a new file, fsynced, renamed over the old) on every change: an erased member's key is in no
//! file afterwards, and every copy of its profile, in the journal or in tables, is ciphertext
//! nothing can open. On FoundationDB (many gateways, no shared disk) the keys are records of the
//! store (`G K`), and a cleared record is gone from every read.

use super::{key1, Registry, RegistryError};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use ledger::keys::gateway::MEMBER_KEY;
use ledger::store::{Durability, Snapshot, Store, WriteSet};
use ledger::MemberId;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Members per key file.
const MEMBERS_PER_FILE: u64 = 4_096;
/// One entry of a key file: member id (8 bytes, big-endian) and key (32 bytes).
const ENTRY: usize = 40;
/// First byte of an encrypted value.
const SEALED: u8 = 0x01;

/// A member id and its data key.
type KeyEntry = (u64, [u8; 32]);

/// Where members' data keys are kept.
pub enum KeyVault {
    /// Files in this directory (the embedded store's), rewritten whole on each change.
    Files {
        /// The directory.
        dir: PathBuf,
        /// Each key file read so far, by file number, as it is on disk (one writer at a time:
        /// the embedded store has one process).
        lock: Mutex<HashMap<u64, Vec<KeyEntry>>>,
    },
    /// Records of the shared store (`G K member`).
    Store,
}

impl KeyVault {
    /// Key files in `dir` (created when missing, private to the service's user).
    pub fn files(dir: &Path) -> std::io::Result<KeyVault> {
        std::fs::create_dir_all(dir)?;
        Ok(KeyVault::Files {
            dir: dir.to_path_buf(),
            lock: Mutex::new(HashMap::new()),
        })
    }
}

fn file_of(dir: &Path, m: MemberId) -> PathBuf {
    dir.join(format!("member-keys-{:010}", m.0 / MEMBERS_PER_FILE))
}

fn read_entries(path: &Path) -> Result<Vec<KeyEntry>, RegistryError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RegistryError::Corrupt(format!("{}: {e}", path.display()))),
    };
    if bytes.len() % ENTRY != 0 {
        return Err(RegistryError::Corrupt(format!(
            "{}: {} bytes is not a whole number of keys",
            path.display(),
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(ENTRY)
        .map(|c| {
            let mut m = [0u8; 8];
            m.copy_from_slice(&c[..8]);
            let mut k = [0u8; 32];
            k.copy_from_slice(&c[8..]);
            (u64::from_be_bytes(m), k)
        })
        .collect())
}

/// Replaces `path` with `entries`: a new file, fsynced, renamed over the old, the directory
/// fsynced. The old file's name then points at the new bytes only.
fn write_entries(path: &Path, entries: &[KeyEntry]) -> Result<(), RegistryError> {
    let io = |e: std::io::Error| RegistryError::Corrupt(format!("{}: {e}", path.display()));
    let tmp = path.with_extension("new");
    let mut bytes = Vec::with_capacity(entries.len() * ENTRY);
    for (m, k) in entries {
        bytes.extend_from_slice(&m.to_be_bytes());
        bytes.extend_from_slice(k);
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

/// The entries of member `m`'s key file, read once and kept.
fn cached<'a>(
    files: &'a mut HashMap<u64, Vec<KeyEntry>>,
    dir: &Path,
    m: MemberId,
) -> Result<&'a mut Vec<KeyEntry>, RegistryError> {
    match files.entry(m.0 / MEMBERS_PER_FILE) {
        std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
        std::collections::hash_map::Entry::Vacant(e) => {
            Ok(e.insert(read_entries(&file_of(dir, m))?))
        }
    }
}

fn member_key_record(m: MemberId) -> Vec<u8> {
    key1(MEMBER_KEY, &m.0.to_be_bytes())
}

impl Registry {
    /// Member `m`'s data key; with `create`, a new random one when it has none.
    pub(super) fn member_key(
        &self,
        m: MemberId,
        create: bool,
    ) -> Result<Option<[u8; 32]>, RegistryError> {
        match &self.vault {
            KeyVault::Files { dir, lock } => {
                let mut files = lock.lock().expect("key vault lock");
                let entries = cached(&mut files, dir, m)?;
                if let Some((_, k)) = entries.iter().find(|(id, _)| *id == m.0) {
                    return Ok(Some(*k));
                }
                if !create {
                    return Ok(None);
                }
                let k: [u8; 32] = rand::random();
                let mut next = entries.clone();
                next.push((m.0, k));
                write_entries(&file_of(dir, m), &next)?;
                *entries = next;
                Ok(Some(k))
            }
            KeyVault::Store => {
                let record = member_key_record(m);
                let created: [u8; 32] = rand::random();
                self.transact(&mut |txn| {
                    let mut ws = WriteSet::default();
                    if let Some(v) = txn.get(&record)? {
                        let k: [u8; 32] = v.as_slice().try_into().map_err(|_| {
                            RegistryError::Corrupt("member data key is not 32 bytes".into())
                        })?;
                        return Ok((ws, Some(k)));
                    }
                    if !create {
                        return Ok((ws, None));
                    }
                    ws.set_owned(record.clone(), created.to_vec());
                    Ok((ws, Some(created)))
                })
            }
        }
    }

    /// Destroys member `m`'s data key: whatever was encrypted under it can never be read again.
    /// True when there was one.
    pub(super) fn destroy_member_key(&self, m: MemberId) -> Result<bool, RegistryError> {
        match &self.vault {
            KeyVault::Files { dir, lock } => {
                let mut files = lock.lock().expect("key vault lock");
                let entries = cached(&mut files, dir, m)?;
                let mut next = entries.clone();
                next.retain(|(id, _)| *id != m.0);
                if next.len() == entries.len() {
                    return Ok(false);
                }
                write_entries(&file_of(dir, m), &next)?;
                *entries = next;
                Ok(true)
            }
            KeyVault::Store => {
                let record = member_key_record(m);
                let had = self.store.snapshot()?.get(&record)?.is_some();
                let mut ws = WriteSet::default();
                ws.clear(&record);
                self.store.commit(ws, Durability::Sync)?;
                Ok(had)
            }
        }
    }
}

/// `plain` sealed under `key`, bound to member `m` (a value moved to another member's record
/// does not open).
pub(super) fn seal(key: &[u8; 32], m: MemberId, plain: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    let nonce_bytes: [u8; 24] = rand::random();
    let nonce = XNonce::from(nonce_bytes);
    let aad = m.0.to_be_bytes();
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        .expect("XChaCha20-Poly1305 encrypts any length a profile has");
    let mut out = Vec::with_capacity(1 + 24 + sealed.len());
    out.push(SEALED);
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&sealed);
    out
}

/// Opens a value [`seal`] made for member `m`.
pub(super) fn open(key: &[u8; 32], m: MemberId, value: &[u8]) -> Result<Vec<u8>, RegistryError> {
    let bad = || RegistryError::Corrupt(format!("member {}'s sealed record does not open", m.0));
    if value.len() < 1 + 24 || value[0] != SEALED {
        return Err(bad());
    }
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&value[1..25]);
    let aad = m.0.to_be_bytes();
    cipher
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &value[25..],
                aad: &aad,
            },
        )
        .map_err(|_| bad())
}

/// Whether a stored value is sealed (else a profile written before sealing: plain JSON).
pub(super) fn is_sealed(value: &[u8]) -> bool {
    value.first() == Some(&SEALED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_member() {
        let k: [u8; 32] = rand::random();
        let v = seal(&k, MemberId(7), b"Shirin");
        assert!(is_sealed(&v));
        assert!(!v.windows(6).any(|w| w == b"Shirin"));
        assert_eq!(open(&k, MemberId(7), &v).expect("opens"), b"Shirin");
        assert!(open(&k, MemberId(8), &v).is_err(), "bound to its member");
        assert!(
            open(&rand::random(), MemberId(7), &v).is_err(),
            "needs its key"
        );
    }

    #[test]
    fn key_files_are_rewritten_without_a_destroyed_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("member-keys-0000000000");
        let (a, b) = ([1u8; 32], [2u8; 32]);
        write_entries(&path, &[(1, a), (2, b)]).expect("write");
        assert_eq!(read_entries(&path).expect("read"), vec![(1, a), (2, b)]);
        write_entries(&path, &[(1, a)]).expect("rewrite");
        let bytes = std::fs::read(&path).expect("read");
        assert!(
            !bytes.windows(32).any(|w| w == b),
            "the destroyed key is gone"
        );
        assert!(!path.with_extension("new").exists());
    }
}
