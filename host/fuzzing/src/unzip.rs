//! The unzip example's extraction of an uploaded archive (the blob is anyone's upload).
//!
//! The oracle: an extraction that succeeds stays within every limit, and no file name it
//! returns could leave the target directory.

use unzip::{extract, Limits};

/// Small limits, so that the fuzzer can reach each of them.
const LIMITS: Limits = Limits { max_entries: 16, max_total_bytes: 64 * 1024, max_entry_bytes: 16 * 1024 };

pub fn run(data: &[u8]) {
    let Ok(files) = extract(data, &LIMITS) else { return };
    assert!(files.len() <= LIMITS.max_entries, "{} entries extracted", files.len());
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert!(total as u64 <= LIMITS.max_total_bytes, "{total} bytes extracted in all");
    for (name, bytes) in &files {
        assert!(bytes.len() as u64 <= LIMITS.max_entry_bytes, "{name}: {} bytes", bytes.len());
        let path = std::path::Path::new(name);
        assert!(
            !path.is_absolute()
                && !name.contains('\\')
                && path
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir)),
            "unsafe name {name:?} extracted"
        );
    }
}
