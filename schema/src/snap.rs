//! Raft snapshot files, `member/snap/%016x-%016x.snap` (`<term>-<index>`), as
//! etcd's `snap.Snapshotter` writes and reads them.
//!
//! Layout: one `snappb.Snapshot` message: field 1 `crc` (uint32, always
//! written) = CRC-32C of `data`; field 2 `data` = a marshaled
//! `raftpb.Snapshot` (for etcd: the v2 store's JSON plus the snapshot metadata
//! — index, term, conf state). The v3 keyspace is not in it: that is
//! `member/snap/db`.
//!
//! Reading tries files newest first (descending name order); a file that is
//! empty, has no data, a zero or wrong CRC, or does not decode is renamed
//! `<name>.broken`, as etcd does, and the next one is tried.

use std::path::{Path, PathBuf};

use etcdkit_proto::Message;
use etcdkit_proto::raftpb;
use etcdkit_proto::snappb;
use etcdkit_proto::walpb;

use etcdkit_fs::{Fs, Open};

use crate::Error;
use crate::error::io_err;

/// `%016x-%016x.snap`.
pub fn snap_name(term: u64, index: u64) -> String {
    format!("{term:016x}-{index:016x}.snap")
}

/// Parses a `.snap` file name into (term, index).
pub fn parse_snap_name(name: &str) -> Option<(u64, u64)> {
    etcdkit_wal::names::parse_hex_pair(name, ".snap")
}

/// The bytes of a `.snap` file holding `s`.
pub fn encode(s: &raftpb::Snapshot) -> Vec<u8> {
    let data = s.encode_to_vec();
    snappb::Snapshot { crc: crc32c::crc32c(&data), data: Some(data) }.encode_to_vec()
}

/// Decodes the bytes of a `.snap` file (`path` names it in errors).
pub fn decode(path: &Path, bytes: &[u8]) -> Result<raftpb::Snapshot, Error> {
    if bytes.is_empty() {
        return Err(Error::EmptySnap(path.to_path_buf()));
    }
    let sp = snappb::Snapshot::decode(bytes)
        .map_err(|e| Error::SnapDecode { path: path.to_path_buf(), what: format!("snappb.Snapshot: {e}") })?;
    let data = sp.data.unwrap_or_default();
    if data.is_empty() || sp.crc == 0 {
        return Err(Error::EmptySnap(path.to_path_buf()));
    }
    let computed = crc32c::crc32c(&data);
    if computed != sp.crc {
        return Err(Error::SnapCrcMismatch { path: path.to_path_buf(), stored: sp.crc, computed });
    }
    raftpb::Snapshot::decode(data.as_slice())
        .map_err(|e| Error::SnapDecode { path: path.to_path_buf(), what: format!("raftpb.Snapshot: {e}") })
}

/// Writes `s` to `dir/<term>-<index>.snap` (mode 0666 less the umask), fsynced.
/// An empty snapshot (index 0) is not written, as in etcd; returns its path
/// otherwise.
pub fn save(fs: &dyn Fs, dir: &Path, s: &raftpb::Snapshot) -> Result<Option<PathBuf>, Error> {
    if s.metadata.index == 0 {
        return Ok(None);
    }
    let path = dir.join(snap_name(s.metadata.term, s.metadata.index));
    let f = fs.open(&path, Open::Truncate { mode: 0o666 }).map_err(io_err("create", &path))?;
    f.write_all_at(&encode(s), 0).map_err(io_err("write", &path))?;
    f.sync_all().map_err(io_err("fsync", &path))?;
    Ok(Some(path))
}

/// Reads one `.snap` file.
pub fn read(fs: &dyn Fs, path: &Path) -> Result<raftpb::Snapshot, Error> {
    let bytes = fs.read(path).map_err(io_err("read", path))?;
    decode(path, &bytes)
}

/// `.snap` file names in `dir`, newest (highest term, then index) first.
pub fn snap_names(fs: &dyn Fs, dir: &Path) -> Result<Vec<String>, Error> {
    let mut names: Vec<String> = fs
        .read_dir(dir)
        .map_err(io_err("read dir", dir))?
        .into_iter()
        .filter(|n| parse_snap_name(n).is_some())
        .collect();
    names.sort_unstable_by(|a, b| b.cmp(a));
    Ok(names)
}

/// Loads the newest valid snapshot of `dir` (etcd `Snapshotter.Load`), or with
/// `only`, the newest one whose (index, term) is in it (`LoadNewestAvailable`,
/// given the WAL's snapshot records). Broken files are renamed `.broken`.
pub fn load_newest(
    fs: &dyn Fs,
    dir: &Path,
    only: Option<&[walpb::Snapshot]>,
) -> Result<(PathBuf, raftpb::Snapshot), Error> {
    for name in snap_names(fs, dir)? {
        let (term, index) = parse_snap_name(&name).expect("filtered by snap_names");
        if let Some(allowed) = only
            && !allowed.iter().any(|w| w.index == index && w.term == term)
        {
            continue;
        }
        let path = dir.join(&name);
        match read(fs, &path) {
            Ok(s) => return Ok((path, s)),
            Err(Error::Io { .. }) => continue,
            Err(_) => {
                let broken = dir.join(format!("{name}.broken"));
                fs.rename(&path, &broken).map_err(io_err("rename", &path))?;
            }
        }
    }
    Err(Error::NoSnapshot(dir.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcdkit_fs::RealFs;

    fn snapshot(index: u64, term: u64) -> raftpb::Snapshot {
        raftpb::Snapshot {
            data: Some(b"{\"Root\":{}}".to_vec()),
            metadata: raftpb::SnapshotMetadata {
                conf_state: raftpb::ConfState { voters: vec![1, 2], ..Default::default() },
                index,
                term,
            },
        }
    }

    #[test]
    fn names() {
        assert_eq!(snap_name(3, 0x86), "0000000000000003-0000000000000086.snap");
        for (name, want) in [
            ("0000000000000003-0000000000000086.snap", Some((3, 0x86))),
            ("db", None),
            ("0000000000000003-0000000000000086.snap.broken", None),
            ("0000000000000003-0000000000000086.wal", None),
        ] {
            assert_eq!(parse_snap_name(name), want, "{name}");
        }
    }

    #[test]
    fn save_load_newest_and_broken_files() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(save(&RealFs, tmp.path(), &snapshot(0, 0)).unwrap().is_none());
        save(&RealFs, tmp.path(), &snapshot(5, 2)).unwrap().unwrap();
        let p9 = save(&RealFs, tmp.path(), &snapshot(9, 2)).unwrap().unwrap();
        assert_eq!(load_newest(&RealFs, tmp.path(), None).unwrap().1, snapshot(9, 2));
        let only = [walpb::Snapshot::at(5, 2)];
        assert_eq!(load_newest(&RealFs, tmp.path(), Some(&only)).unwrap().1, snapshot(5, 2));
        // Flip a data byte: CRC mismatch, renamed .broken, the older one wins.
        let mut b = std::fs::read(&p9).unwrap();
        let n = b.len();
        b[n - 20] ^= 1;
        std::fs::write(&p9, &b).unwrap();
        assert!(matches!(read(&RealFs, &p9), Err(Error::SnapCrcMismatch { .. })));
        assert_eq!(load_newest(&RealFs, tmp.path(), None).unwrap().1, snapshot(5, 2));
        assert!(tmp.path().join(format!("{}.broken", snap_name(2, 9))).exists());
        // Empty and garbage files are errors, never panics.
        let e = tmp.path().join(snap_name(9, 10));
        std::fs::write(&e, b"").unwrap();
        assert!(matches!(read(&RealFs, &e), Err(Error::EmptySnap(_))));
        for cut in 0..encode(&snapshot(5, 2)).len() {
            let _ = decode(&e, &encode(&snapshot(5, 2))[..cut]);
        }
        std::fs::write(&e, [0xffu8; 64]).unwrap();
        assert!(read(&RealFs, &e).is_err());
    }
}
