//! Segment file names: `%016x-%016x.wal` = sequence number and the raft index
//! of the first entry the segment is expected to hold.

use std::path::Path;

use crate::error::{Error, Result};

pub fn wal_name(seq: u64, index: u64) -> String {
    format!("{seq:016x}-{index:016x}.wal")
}

/// Parses a segment name into (seq, index).
pub fn parse_wal_name(name: &str) -> Option<(u64, u64)> {
    parse_hex_pair(name, ".wal")
}

/// Parses etcd's `%016x-%016x<ext>` file names (WAL segments, raft `.snap`
/// files) into their two numbers.
pub fn parse_hex_pair(name: &str, ext: &str) -> Option<(u64, u64)> {
    let (a, b) = name.strip_suffix(ext)?.split_once('-')?;
    if a.len() != 16 || b.len() != 16 {
        return None;
    }
    Some((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
}

/// The valid segment names in `dir`, sorted.
pub fn read_wal_names(fs: &dyn etcdkit_fs::Fs, dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = fs
        .read_dir(dir)
        .map_err(|e| Error::io("read dir", dir, e))?
        .into_iter()
        .filter(|n| parse_wal_name(n).is_some())
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(Error::FileNotFound(dir.to_path_buf()));
    }
    Ok(names)
}

/// Index of the last segment whose first index is <= `index` (etcd `searchIndex`).
pub fn search_index(names: &[String], index: u64) -> Option<usize> {
    (0..names.len()).rev().find(|&i| parse_wal_name(&names[i]).is_some_and(|(_, idx)| idx <= index))
}

/// Whether the segments' sequence numbers are contiguous (etcd `isValidSeq`).
pub fn is_valid_seq(names: &[String]) -> bool {
    names.windows(2).all(|w| {
        let (a, _) = parse_wal_name(&w[0]).unwrap();
        let (b, _) = parse_wal_name(&w[1]).unwrap();
        b == a + 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(wal_name(1, 0x5d), "0000000000000001-000000000000005d.wal");
        assert_eq!(parse_wal_name("0000000000000001-000000000000005d.wal"), Some((1, 0x5d)));
        assert_eq!(parse_wal_name("0.tmp"), None);
        assert_eq!(parse_wal_name("0000000000000001-000000000000005d.wal.broken"), None);
        let names = vec![wal_name(0, 0), wal_name(1, 10), wal_name(2, 20)];
        assert_eq!(search_index(&names, 15), Some(1));
        assert_eq!(search_index(&names, 20), Some(2));
        assert!(is_valid_seq(&names));
        assert!(!is_valid_seq(&[wal_name(0, 0), wal_name(2, 20)]));
    }
}
