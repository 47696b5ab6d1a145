//! The master key file partner secrets are derived from, and private files.

use super::random_hex;
use std::path::Path;

/// Creates a new master key at `path` (mode 0600), refusing to overwrite one: every partner's
/// secret derives from it, so a new key is a new set of secrets.
pub fn create_master_key(path: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    write_private(path, &random_hex(32), true)
        .with_context(|| format!("creating master key {}", path.display()))
}

/// Reads the master key at `path`. A missing file is an error, never created silently (a wrong
/// path would otherwise change every partner's secret, or make replicas disagree), and so is a
/// file that others (not its owner or group) may read. (Group read is allowed: Kubernetes
/// mounts secrets owned by root with the pod's group.)
pub fn load_master_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    use anyhow::Context;
    let meta = std::fs::metadata(path).with_context(|| {
        format!(
            "reading master key {}: create it once with `partners-gateway init-key --file {}` \
             (the demo creates its own)",
            path.display(),
            path.display()
        )
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        anyhow::ensure!(
            mode & 0o007 == 0,
            "master key {} has mode {mode:o}: others may read it; chmod 600 it",
            path.display()
        );
    }
    #[cfg(not(unix))]
    let _ = meta;
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
