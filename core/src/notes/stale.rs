//! Staleness: an entry is only as good as the files its evidence rests on. When a later
//! change touches one of them, the entry is shown as stale (never silently trusted) until
//! someone re-checks it and records a new entry.

use super::evidence::normalize;

/// The entry's files that `changed` (what `git diff --name-only <entry commit>..HEAD` printed)
/// names. Empty: nothing the entry depends on moved.
pub fn stale_files(entry_files: &[String], changed: &[String]) -> Vec<String> {
    let changed: Vec<String> = changed.iter().map(|c| normalize(c)).filter(|c| !c.is_empty()).collect();
    let mut hit: Vec<String> =
        entry_files.iter().map(|f| normalize(f)).filter(|f| changed.iter().any(|c| c == f)).collect();
    hit.sort();
    hit.dedup();
    hit
}
