//! The master key file partner secrets are derived from, and private files.

use super::random_hex;
use std::path::Path;

/// Reads the master key from `path` (64 hex characters), creating it with mode 0600 if absent.
pub fn load_or_create_master_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    use anyhow::Context;
    if !path.exists() {
        write_private(path, &random_hex(32), true)
            .with_context(|| format!("creating master key {}", path.display()))?;
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading master key {}", path.display()))?;
    let bytes = hex::decode(text.trim())
        .with_context(|| format!("master key {} is not hex", path.display()))?;
    bytes.try_into().map_err(|_| {
        anyhow::anyhow!(
            "master key {} must be 32 bytes (64 hex characters)",
            path.display()
        )
    })
}

/// Writes `text` to `path` readable by the owner only (mode 0600), synced to disk. With
/// `create_new`, fails if the file exists rather than replacing it.
pub fn write_private(path: &Path, text: &str, create_new: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if create_new {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}
