//! The `.lock` files that serialise berth processes over one directory
//! (containers, volumes): an exclusive `flock`, held until the file drops.

use std::fs::{self, File};
use std::path::Path;

/// Creates `dir` if needed and takes an exclusive lock on `dir/.lock`;
/// the error names what failed.
pub(crate) fn lock_dir(dir: &Path) -> Result<File, (String, std::io::Error)> {
    fs::create_dir_all(dir).map_err(|e| (format!("creating {}", dir.display()), e))?;
    let path = dir.join(".lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| (format!("opening {}", path.display()), e))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| (format!("locking {}", path.display()), e.into()))?;
    Ok(file)
}
