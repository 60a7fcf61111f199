//! Temporary directories, the recursive copy of the template, and small
//! file helpers.

use std::collections::hash_map::RandomState;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::hash::BuildHasher;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::account::Identity;
use crate::error::{Phase, TestServerError};

/// The environment variable that chooses where server directories go.
pub(crate) const RUN_DIR_VAR: &str = "POOL_POSTGRES_TEST_DIR";

/// `/dev/shm` is used for server directories only with this much room.
const MIN_SHM_ROOM_KIB: u64 = 1024 * 1024;

/// `<system temp dir>/pool-postgres-test-<euid>`: the template cache of
/// this user lives below it.
pub(crate) fn cache_dir(identity: &Identity) -> Result<&'static Path, TestServerError> {
    static DIR: OnceLock<Result<PathBuf, TestServerError>> = OnceLock::new();
    DIR.get_or_init(|| make_user_dir(&std::env::temp_dir(), identity))
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(TestServerError::duplicate)
}

/// `<parent>/pool-postgres-test-<euid>`: the servers' directories live below
/// it. The parent is `$POOL_POSTGRES_TEST_DIR` if set, else `/dev/shm` if it
/// is a tmpfs with at least 1 GiB free (creating the thousand files of a
/// data directory is much faster in memory than on some disks), else the
/// system temp dir.
pub(crate) fn run_dir(identity: &Identity) -> Result<&'static Path, TestServerError> {
    static DIR: OnceLock<Result<PathBuf, TestServerError>> = OnceLock::new();
    DIR.get_or_init(|| {
        let parent = match std::env::var_os(RUN_DIR_VAR).filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None if roomy_tmpfs(Path::new("/dev/shm")) => PathBuf::from("/dev/shm"),
            None => std::env::temp_dir(),
        };
        make_user_dir(&parent, identity)
    })
    .as_ref()
    .map(PathBuf::as_path)
    .map_err(TestServerError::duplicate)
}

/// Its mode is 0711 when the server runs as another user (root running
/// `postgres`), so that user can reach its own directories below it, and
/// 0700 otherwise. An existing directory must be ours and not a symlink.
fn make_user_dir(parent: &Path, identity: &Identity) -> Result<PathBuf, TestServerError> {
    let parent = fs::canonicalize(parent).map_err(|e| {
        TestServerError::io(Phase::PrepareDirectory, format!("{} is not usable", parent.display()), e)
    })?;
    let dir = parent.join(format!("pool-postgres-test-{}", identity.euid));
    let mode = if identity.run_as.is_some() { 0o711 } else { 0o700 };
    ensure_private_dir(&dir, identity.euid, mode)?;
    Ok(dir)
}

/// Whether `dir` is a world-writable tmpfs mount point with room to spare.
fn roomy_tmpfs(dir: &Path) -> bool {
    let Ok(mounts) = fs::read_to_string("/proc/mounts") else {
        return false;
    };
    let mounted = mounts.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1).map(Path::new) == Some(dir) && fields.get(2) == Some(&"tmpfs")
    });
    let writable = fs::metadata(dir).is_ok_and(|m| m.is_dir() && m.mode() & 0o1777 == 0o1777);
    if !mounted || !writable {
        return false;
    }
    // std has no statvfs; `df -P` prints "Filesystem 1024-blocks Used
    // Available Capacity Mounted-on".
    let Ok(out) = std::process::Command::new("df").arg("-Pk").arg(dir).output() else {
        return false;
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().nth(3)?.parse::<u64>().ok())
        .is_some_and(|kib| kib >= MIN_SHM_ROOM_KIB)
}

/// Creates `dir` (or accepts it if it is a real directory owned by `euid`)
/// and sets its mode.
pub(crate) fn ensure_private_dir(dir: &Path, euid: u32, mode: u32) -> Result<(), TestServerError> {
    let fail = |what: &str, e: io::Error| {
        TestServerError::io(Phase::PrepareDirectory, format!("{what} {}", dir.display()), e)
    };
    match DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail("could not create", e)),
    }
    let meta = fs::symlink_metadata(dir).map_err(|e| fail("could not inspect", e))?;
    if !meta.is_dir() || meta.uid() != euid {
        return Err(TestServerError::new(
            Phase::PrepareDirectory,
            format!("{} exists but is not a directory owned by uid {euid}; remove it", dir.display()),
        ));
    }
    if meta.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))
            .map_err(|e| fail("could not set the mode of", e))?;
    }
    Ok(())
}

/// A random-enough number without a crate: std's per-process random
/// SipHash keys mixed with a counter.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Creates a new, empty directory `<parent>/<prefix><pid>-<random>` with
/// mode 0700 and returns its path.
pub(crate) fn unique_dir(parent: &Path, prefix: &str) -> io::Result<PathBuf> {
    loop {
        let name = format!("{prefix}{}-{:016x}", std::process::id(), random_u64());
        let path = parent.join(name);
        match DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

/// Copies the directory tree `src` to the new directory `dst`, keeping
/// permission bits, and `chown`s everything to `owner` if given.
///
/// Only directories and regular files are expected (a data directory
/// without tablespaces); anything else is an error.
pub(crate) fn copy_tree(src: &Path, dst: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    let mode = fs::metadata(src)?.permissions().mode() & 0o7777;
    DirBuilder::new().mode(mode).create(dst)?;
    fs::set_permissions(dst, fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        chown(dst, Some(uid), Some(gid))?;
    }
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let to = dst.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &to, owner)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &to)?;
            if let Some((uid, gid)) = owner {
                chown(&to, Some(uid), Some(gid))?;
            }
        } else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{} is neither a file nor a directory", entry.path().display()),
            ));
        }
    }
    Ok(())
}

/// Writes `contents` to a file only its owner can read (mode 0600), and
/// `chown`s it to `owner` if given.
pub(crate) fn write_private_file(path: &Path, contents: &str, owner: Option<(u32, u32)>) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())?;
    if let Some((uid, gid)) = owner {
        chown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

/// Removes a directory tree; a missing one is fine.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Reads up to the last 64 KiB of a file, lossily as UTF-8.
pub(crate) fn read_end(path: &Path) -> io::Result<String> {
    read_from(path, None)
}

/// Reads a file from byte `offset` (at most its last 64 KiB).
pub(crate) fn read_from(path: &Path, offset: Option<u64>) -> io::Result<String> {
    const MAX: u64 = 64 * 1024;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = offset.unwrap_or(0).max(len.saturating_sub(MAX)).min(len);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// 64-bit FNV-1a: a stable hash for cache keys (std's hashers may change
/// between Rust releases).
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separator, so ("ab", "c") and ("a", "bc") differ.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_stable_and_separates_parts() {
        assert_eq!(fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
        assert_eq!(fnv1a(&[b"x"]), fnv1a(&[b"x"]));
    }

    #[test]
    fn copies_trees_with_modes() {
        let root = unique_dir(&std::env::temp_dir(), "pool-postgres-unit-").unwrap();
        let src = root.join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/file"), b"hello").unwrap();
        fs::set_permissions(src.join("sub/file"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o700)).unwrap();
        let dst = root.join("dst");
        copy_tree(&src, &dst, None).unwrap();
        assert_eq!(fs::read(dst.join("sub/file")).unwrap(), b"hello");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dst.join("sub/file")), 0o600);
        assert_eq!(mode(&dst), 0o700);
        assert_eq!(read_from(&dst.join("sub/file"), Some(2)).unwrap(), "llo");
        remove_tree(&root).unwrap();
        remove_tree(&root).unwrap();
    }
}
