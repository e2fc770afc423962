//! Reading and writing a WAL directory (etcd `wal/wal.go`, `repair.go`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use etcdkit_fs::{File, Fs, Lock, Open};

use etcdkit_proto::raftpb::{Entry, HardState};
use etcdkit_proto::walpb::{Record, Snapshot};
use prost::Message;

use crate::error::{Error, Result};
use crate::names::{is_valid_seq, parse_wal_name, read_wal_names, search_index, wal_name};
use crate::record::{
    CRC_TYPE, Decoder, ENTRY_TYPE, End, Frame, FrameRef, METADATA_TYPE, SNAPSHOT_TYPE, STATE_TYPE, crc_update,
    encode_frame, split_len_field,
};

/// Preallocated size of a segment; a segment is cut once a write crosses it.
pub const SEGMENT_SIZE: u64 = 64_000_000;

/// One segment file, read to the end of its records, with its decoded frames.
pub struct Segment {
    pub path: PathBuf,
    pub name: String,
    pub size: u64,
    pub frames: Vec<Frame>,
    /// Offset just past the last valid record.
    pub records_end: u64,
}

/// A segment's bytes up to the end of its records, read in 1 MiB steps
/// that follow the frames' length fields to the first zero one (or the
/// file's end). A segment is preallocated to 64 MB; etcd's decoder reads no
/// further than its records either, and reading the zeros after them was
/// most of a restart. The decoder sees the same bytes up to the zero field.
/// `buf` is reused from segment to segment: its pages are faulted in and
/// zeroed once, not again for each segment; the bytes read are
/// `buf[..returned]` (what lies past them is an earlier segment's).
fn read_records(f: &dyn File, path: &Path, size: u64, buf: &mut Vec<u8>) -> Result<usize> {
    const STEP: u64 = 1 << 20;
    // Room for a whole segment at once (pages are touched only as they are
    // read), so growing never copies; a file larger than any segment (a
    // hostile one) grows in steps.
    buf.reserve(size.min(SEGMENT_SIZE + STEP) as usize);
    let mut have = 0usize;
    let mut frame = 0usize;
    while (have as u64) < size {
        let n = (size - have as u64).min(STEP) as usize;
        if buf.len() < have + n {
            buf.resize(have + n, 0);
        }
        f.read_exact_at(&mut buf[have..have + n], have as u64).map_err(|e| Error::io("read", path, e))?;
        have += n;
        while let Some(field) = buf[..have].get(frame..frame + 8) {
            let field = u64::from_le_bytes(field.try_into().expect("8 bytes"));
            if field == 0 {
                return Ok(have);
            }
            let (len, pad) = split_len_field(field);
            let len = len.saturating_add(pad);
            frame = frame.saturating_add(8).saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        }
    }
    Ok(have)
}

/// Reads and decodes `names` (in order) from `dir`, verifying the CRC chain
/// and crc records, and hands each frame to `visit` as it comes. Returns the
/// segments (with their frames only when `keep`: a member's restart reads
/// hundreds of megabytes of WAL and needs few of its frames at once) and how
/// the data ended (a torn tail can only end the last segment).
fn decode_files(
    fs: &dyn Fs,
    dir: &Path,
    names: &[String],
    keep: bool,
    visit: &mut dyn FnMut(&Path, &FrameRef<'_>) -> Result<()>,
) -> Result<(Vec<Segment>, End, u32)> {
    let mut out = Vec::new();
    let mut crc = 0u32;
    let mut bytes = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let path = dir.join(name);
        let f = fs.open(&path, Open::Read).map_err(|e| Error::io("open", &path, e))?;
        let size = f.len().map_err(|e| Error::io("stat", &path, e))?;
        let read = read_records(&*f, &path, size, &mut bytes)?;
        drop(f);
        let mut dec = Decoder::new(&path, &bytes[..read], crc, i + 1 == names.len());
        let mut frames = Vec::new();
        let end = loop {
            match dec.next_frame_ref() {
                Ok(Some(f)) => {
                    chain_crc(&mut dec, &f, &path)?;
                    visit(&path, &f)?;
                    if keep {
                        frames.push(f.to_frame());
                    }
                }
                Ok(None) => break End::Clean,
                Err(Error::UnexpectedEof { .. }) => break End::Torn,
                Err(e) => return Err(e),
            }
        };
        crc = dec.crc;
        let records_end = dec.last_valid;
        out.push(Segment { path, name: name.clone(), size, frames, records_end });
        if end == End::Torn {
            // etcd's decoder stops at the first unexpected end, whatever follows.
            return Ok((out, End::Torn, crc));
        }
    }
    Ok((out, End::Clean, crc))
}

/// A crc record continues the chain: it must carry the CRC of everything
/// before it (0 only at the very start), and the chain goes on from it.
fn chain_crc(dec: &mut Decoder<'_>, f: &FrameRef<'_>, path: &Path) -> Result<()> {
    if f.r#type == CRC_TYPE {
        if dec.crc != 0 && f.crc != dec.crc {
            return Err(Error::CrcMismatch {
                file: path.to_path_buf(),
                offset: f.offset,
                stored: f.crc,
                computed: dec.crc,
            });
        }
        dec.crc = f.crc;
    }
    Ok(())
}

/// Every segment of the WAL in `dir`, decoded (for inspection tools).
pub fn read_segments(fs: &dyn Fs, dir: &Path) -> Result<(Vec<Segment>, bool)> {
    let names = read_wal_names(fs, dir)?;
    let (segs, end, _) = decode_files(fs, dir, &names, true, &mut |_, _| Ok(()))?;
    Ok((segs, end == End::Torn))
}

fn decode<M: Message + Default>(f: &FrameRef<'_>, file: &Path) -> Result<M> {
    M::decode(f.data()).map_err(|e| Error::Corrupt { file: file.to_path_buf(), offset: f.offset, what: e.to_string() })
}

fn corrupt(path: &Path, f: &FrameRef<'_>, what: String) -> Error {
    Error::Corrupt { file: path.to_path_buf(), offset: f.offset, what }
}

/// What [`read_all`] returns: etcd's `ReadAll`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadAll {
    pub metadata: Vec<u8>,
    pub state: HardState,
    /// Entries after the snapshot, with later rewrites of an index applied.
    pub entries: Vec<Entry>,
    /// Whether a snapshot record matched the start position (etcd returns
    /// `ErrSnapshotNotFound` with the data otherwise).
    pub snapshot_found: bool,
    /// The data ended in a torn record (read mode accepts it, as etcd does).
    pub torn: bool,
    /// Where writing would continue: last segment, offset, CRC.
    pub(crate) tail: Option<(PathBuf, u64, u32)>,
    /// Last entry index seen.
    pub(crate) enti: u64,
}

/// The segment names to read for a start position (etcd `selectWALFiles`).
fn select(fs: &dyn Fs, dir: &Path, start: &Snapshot) -> Result<Vec<String>> {
    let names = read_wal_names(fs, dir)?;
    let i = search_index(&names, start.index).ok_or_else(|| Error::FileNotFound(dir.to_path_buf()))?;
    let names = names[i..].to_vec();
    if !is_valid_seq(&names) {
        return Err(Error::BadSequence(dir.to_path_buf()));
    }
    Ok(names)
}

fn apply(fs: &dyn Fs, dir: &Path, names: &[String], start: &Snapshot) -> Result<ReadAll> {
    let mut r = ReadAll::default();
    let mut metadata: Option<Vec<u8>> = None;
    let mut visit = |path: &Path, f: &FrameRef<'_>| -> Result<()> {
        match f.r#type {
            ENTRY_TYPE => {
                let e: Entry = decode(f, path)?;
                if !(0..=2).contains(&e.r#type) {
                    return Err(corrupt(path, f, format!("entry {} has unknown type {}", e.index, e.r#type)));
                }
                r.enti = e.index;
                if e.index > start.index {
                    let up = e.index - start.index - 1;
                    if up > r.entries.len() as u64 {
                        return Err(Error::SliceOutOfRange { index: e.index, have: r.entries.len() as u64 });
                    }
                    // Raft rewrites an index only for a newer leader (higher
                    // term); anything else is damage the CRC cannot see (it
                    // does not cover the record type).
                    if let Some(old) = r.entries.get(up as usize)
                        && old.term >= e.term
                        && *old != e
                    {
                        return Err(corrupt(path, f, format!("entry {} rewritten without a newer term", e.index)));
                    }
                    r.entries.truncate(up as usize);
                    r.entries.push(e);
                }
            }
            STATE_TYPE => {
                let st: HardState = decode(f, path)?;
                if st.term < r.state.term || st.commit < r.state.commit {
                    return Err(corrupt(path, f, "hard state goes backwards (term or commit decreased)".into()));
                }
                r.state = st;
            }
            METADATA_TYPE => {
                let d = f.data().to_vec();
                if metadata.as_ref().is_some_and(|m| *m != d) {
                    return Err(Error::MetadataConflict);
                }
                metadata = Some(d);
            }
            CRC_TYPE => {}
            SNAPSHOT_TYPE => {
                let s: Snapshot = decode(f, path)?;
                if s.index == start.index {
                    if s.term != start.term {
                        return Err(Error::SnapshotMismatch { index: s.index, found: s.term, expected: start.term });
                    }
                    r.snapshot_found = true;
                }
            }
            t => return Err(Error::UnexpectedType { file: path.to_path_buf(), offset: f.offset, kind: t }),
        }
        Ok(())
    };
    let (segs, end, crc) = decode_files(fs, dir, names, false, &mut visit)?;
    r.metadata = metadata.unwrap_or_default();
    r.torn = end == End::Torn;
    if let Some(last) = segs.last() {
        r.tail = Some((last.path.clone(), last.records_end, crc));
    }
    Ok(r)
}

/// Reads the WAL in `dir` from snapshot position `start` (etcd `OpenForRead`
/// + `ReadAll`): a torn tail is accepted and reported in [`ReadAll::torn`].
pub fn read_all(fs: &dyn Fs, dir: &Path, start: Snapshot) -> Result<ReadAll> {
    let names = select(fs, dir, &start)?;
    apply(fs, dir, &names, &start)
}

/// The snapshot records whose index is at most the last hard state's commit
/// (etcd `ValidSnapshotEntries`).
pub fn valid_snapshot_entries(fs: &dyn Fs, dir: &Path) -> Result<Vec<Snapshot>> {
    let names = read_wal_names(fs, dir)?;
    let mut snaps = Vec::new();
    let mut state = HardState::default();
    decode_files(fs, dir, &names, false, &mut |path, f| {
        match f.r#type {
            SNAPSHOT_TYPE => snaps.push(decode::<Snapshot>(f, path)?),
            STATE_TYPE => state = decode(f, path)?,
            _ => {}
        }
        Ok(())
    })?;
    snaps.retain(|s| s.index <= state.commit);
    Ok(snaps)
}

/// Truncates a torn tail of the last segment at its last valid record, keeping
/// a copy of the damaged file as `<name>.broken` (etcd `Repair`). Returns
/// whether anything was repaired. Corruption other than a torn tail is an error.
pub fn repair(fs: &dyn Fs, dir: &Path) -> Result<bool> {
    let names = read_wal_names(fs, dir)?;
    let name = names.last().unwrap();
    let path = dir.join(name);
    let bytes = fs.read(&path).map_err(|e| Error::io("read", &path, e))?;
    let mut dec = Decoder::new(&path, &bytes, 0, true);
    loop {
        match dec.next_frame_ref() {
            Ok(Some(f)) => chain_crc(&mut dec, &f, &path)?,
            Ok(None) => return Ok(false),
            Err(Error::UnexpectedEof { offset, .. }) => {
                let broken = dir.join(format!("{name}.broken"));
                let b =
                    fs.open(&broken, Open::Truncate { mode: 0o600 }).map_err(|e| Error::io("create", &broken, e))?;
                b.write_all_at(&bytes, 0).map_err(|e| Error::io("write", &broken, e))?;
                b.sync_all().map_err(|e| Error::io("fsync", &broken, e))?;
                let f = fs.open(&path, Open::ReadWrite).map_err(|e| Error::io("open", &path, e))?;
                f.set_len(offset).map_err(|e| Error::io("truncate", &path, e))?;
                f.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
                return Ok(true);
            }
            Err(e) => return Err(e),
        }
    }
}

fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).map_err(|e| Error::io("fsync dir", dir, e))
}

fn lock_segment(f: &dyn File, path: &Path) -> Result<()> {
    match f.try_lock(Lock::Etcd) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::Locked(path.to_path_buf())),
        Err(e) => Err(Error::io("lock", path, e)),
    }
}

/// Writes zeros over `[from, to)` of `f`, skipping 1 MiB chunks that already
/// read as zero when `check` is set.
fn zero_fill(f: &dyn File, path: &Path, from: u64, to: u64, check: bool) -> Result<()> {
    const CHUNK: u64 = 1 << 20;
    let zeros = vec![0u8; CHUNK as usize];
    let mut cur = vec![0u8; CHUNK as usize];
    let mut at = from;
    while at < to {
        let n = (to - at).min(CHUNK - at % CHUNK) as usize;
        if check {
            let got = f.read_at(&mut cur[..n], at).map_err(|e| Error::io("read", path, e))?;
            // An OR of every byte, without an early exit, compiles to wide
            // vector instructions (a byte-wise `all` was a restart's hot spot).
            if got == n && cur[..n].iter().fold(0u8, |a, &b| a | b) == 0 {
                at += n as u64;
                continue;
            }
        }
        f.write_all_at(&zeros[..n], at).map_err(|e| Error::io("zero-fill", path, e))?;
        at += n as u64;
    }
    Ok(())
}

/// Creates a segment file, locked, preallocated by writing zeros and synced.
///
/// etcd preallocates with `fallocate`, which leaves unwritten extents: every
/// later fdatasync must also journal their conversion. Written zeros make
/// appends plain overwrites (on ext4 here a 112 KB append + fdatasync took
/// 147 µs instead of 265 µs). A zero length field still ends the data.
fn create_segment(fs: &dyn Fs, path: &Path, size: u64, sparse: bool) -> Result<Box<dyn File>> {
    let f = fs.open(path, Open::CreateNew { mode: 0o600 }).map_err(|e| Error::io("create", path, e))?;
    lock_segment(&*f, path)?;
    if sparse {
        f.set_len(size).map_err(|e| Error::io("truncate", path, e))?;
    } else {
        zero_fill(&*f, path, 0, size, false)?;
    }
    f.sync_all().map_err(|e| Error::io("fsync", path, e))?;
    Ok(f)
}

/// The next segment, prepared in the background (etcd's file pipeline).
type Pipeline = std::thread::JoinHandle<Result<(PathBuf, Box<dyn File>)>>;

fn start_pipeline(fs: &Arc<dyn Fs>, dir: &Path, n: u64, size: u64) -> Option<Pipeline> {
    if fs.serial() {
        return None;
    }
    let path = dir.join(format!("{}.tmp", n % 2));
    let fs = fs.clone();
    Some(std::thread::spawn(move || {
        let _ = fs.remove_file(&path);
        create_segment(&*fs, &path, size, false).map(|f| (path, f))
    }))
}

/// How a WAL's files are made: through which file system, cut where.
#[derive(Clone, Debug)]
pub struct Options {
    /// The file system every file operation goes through (the real one
    /// unless a test injects faults).
    pub fs: Arc<dyn Fs>,
    /// Size a segment is preallocated to and cut at (etcd: [`SEGMENT_SIZE`];
    /// smaller in tests).
    pub segment_size: u64,
    /// Preallocate a new WAL's first segment sparsely (`ftruncate` instead of
    /// writing zeros): for a WAL written once and handed over, as `snapshot
    /// restore` does. It reads the same; [`Wal::open`] leaves a segment whose
    /// unwritten tail already reads as zeros as it is.
    pub sparse: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { fs: etcdkit_fs::real(), segment_size: SEGMENT_SIZE, sparse: false }
    }
}

/// A WAL open for appending.
pub struct Wal {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    metadata: Vec<u8>,
    state: HardState,
    /// Last entry index written.
    enti: u64,
    /// Segments held (locked), oldest first; the last is the tail.
    locks: Vec<(PathBuf, Box<dyn File>)>,
    offset: u64,
    crc: u32,
    buf: Vec<u8>,
    segment_size: u64,
    /// Segments cut so far (names the next `.tmp`).
    cuts: u64,
    pipeline: Option<Pipeline>,
    /// Told how long each fdatasync of [`Wal::sync`] took (metrics).
    on_sync: Option<SyncObserver>,
}

/// Called with the duration of each WAL fdatasync.
pub type SyncObserver = Arc<dyn Fn(std::time::Duration) + Send + Sync>;

impl Drop for Wal {
    fn drop(&mut self) {
        if let Some(p) = self.pipeline.take()
            && let Ok(Ok((path, _))) = p.join()
        {
            let _ = self.fs.remove_file(&path);
        }
    }
}

impl Wal {
    /// Creates a new WAL in `dir` (which must not exist) with `metadata`: built
    /// in `<dir>.tmp` and renamed, as etcd does.
    pub fn create(dir: &Path, metadata: &[u8], opts: &Options) -> Result<Wal> {
        Self::create_inner(opts.fs.clone(), dir, metadata, opts.segment_size, opts.sparse)
    }

    fn create_inner(fs: Arc<dyn Fs>, dir: &Path, metadata: &[u8], segment_size: u64, sparse: bool) -> Result<Wal> {
        if fs.exists(dir) && read_wal_names(&*fs, dir).is_ok() {
            return Err(Error::Exists(dir.to_path_buf()));
        }
        let tmp = PathBuf::from(format!("{}.tmp", dir.display()));
        if fs.exists(&tmp) {
            fs.remove_dir_all(&tmp).map_err(|e| Error::io("remove", &tmp, e))?;
        }
        // etcd's PrivateDirMode: the WAL directory is 0700.
        fs.create_dir_all(&tmp, 0o700).map_err(|e| Error::io("mkdir", &tmp, e))?;
        let seg = tmp.join(wal_name(0, 0));
        let f = create_segment(&*fs, &seg, segment_size, sparse)?;
        let mut w = Wal {
            fs: fs.clone(),
            dir: dir.to_path_buf(),
            metadata: metadata.to_vec(),
            state: HardState::default(),
            enti: 0,
            locks: vec![(seg, f)],
            offset: 0,
            crc: 0,
            buf: Vec::new(),
            segment_size,
            cuts: 0,
            pipeline: None,
            on_sync: None,
        };
        w.encode(CRC_TYPE, None);
        w.encode(METADATA_TYPE, Some(metadata.to_vec()));
        w.save_snapshot(Snapshot::at(0, 0))?;
        if fs.exists(dir) {
            fs.remove_dir_all(dir).map_err(|e| Error::io("remove", dir, e))?;
        }
        fs.rename(&tmp, dir).map_err(|e| Error::io("rename", &tmp, e))?;
        etcdkit_fs::sync_parent(&*fs, dir).map_err(|e| Error::io("fsync dir", dir, e))?;
        w.locks[0].0 = dir.join(wal_name(0, 0));
        Ok(w)
    }

    /// Opens the WAL in `dir` for appending at snapshot position `start`: reads
    /// everything after it (a torn tail is an error here: run [`repair`]), zeroes
    /// anything past the last valid record, and continues the CRC chain. New
    /// segments are cut at `opts.segment_size`.
    pub fn open(dir: &Path, start: Snapshot, opts: &Options) -> Result<(Wal, ReadAll)> {
        let fs = opts.fs.clone();
        let names = select(&*fs, dir, &start)?;
        let mut locks = Vec::new();
        for n in &names {
            let p = dir.join(n);
            let f = fs.open(&p, Open::ReadWrite).map_err(|e| Error::io("open", &p, e))?;
            lock_segment(&*f, &p)?;
            locks.push((p, f));
        }
        let r = apply(&*fs, dir, &names, &start)?;
        let (tail, offset, crc) = r.tail.clone().expect("at least one segment");
        if r.torn {
            return Err(Error::UnexpectedEof { file: tail, offset });
        }
        // Zero whatever follows the last valid record (etcd `ZeroToEnd`), and
        // keep the segment preallocated to its size.
        let f = &locks.last().unwrap().1;
        let size = f.len().map_err(|e| Error::io("stat", &tail, e))?;
        zero_fill(&**f, &tail, offset, size, true)?;
        f.sync_data().map_err(|e| Error::io("fdatasync", &tail, e))?;
        let w = Wal {
            fs,
            dir: dir.to_path_buf(),
            metadata: r.metadata.clone(),
            state: r.state,
            enti: r.enti,
            locks,
            offset,
            crc,
            buf: Vec::new(),
            segment_size: opts.segment_size,
            cuts: 0,
            pipeline: None,
            on_sync: None,
        };
        Ok((w, r))
    }

    fn encode(&mut self, kind: i64, data: Option<Vec<u8>>) {
        let crc = if kind == CRC_TYPE { self.crc } else { crc_update(self.crc, data.as_deref().unwrap_or(&[])) };
        if kind != CRC_TYPE {
            self.crc = crc;
        }
        encode_frame(&Record { r#type: kind, crc, data }, &mut self.buf);
    }

    fn tail(&self) -> &(PathBuf, Box<dyn File>) {
        self.locks.last().unwrap()
    }

    /// Writes buffered frames to the tail segment.
    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let (p, f) = self.tail();
        f.write_all_at(&self.buf, self.offset).map_err(|e| Error::io("write", p, e))?;
        self.offset += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Appends entry records without syncing (etcd's `saveEntry`); they become
    /// durable at the next [`Wal::sync`] or syncing save.
    pub fn append_entries(&mut self, entries: &[Entry]) -> Result<()> {
        for e in entries {
            self.encode(ENTRY_TYPE, Some(e.encode_to_vec()));
            self.enti = e.index;
        }
        if self.buf.len() >= 1 << 20 {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes everything appended and fdatasyncs the tail segment.
    pub fn sync(&mut self) -> Result<()> {
        self.flush()?;
        let start = std::time::Instant::now();
        let (p, f) = self.tail();
        f.sync_data().map_err(|e| Error::io("fdatasync", p, e))?;
        if let Some(observe) = &self.on_sync {
            observe(start.elapsed());
        }
        Ok(())
    }

    /// Has `observe` told the duration of every later fdatasync.
    pub fn set_sync_observer(&mut self, observe: SyncObserver) {
        self.on_sync = Some(observe);
    }

    fn save_state(&mut self, st: &HardState) {
        if st.is_empty() {
            return;
        }
        self.state = *st;
        self.encode(STATE_TYPE, Some(st.encode_to_vec()));
    }

    /// Appends `entries` and the hard state `st`, then makes them durable with
    /// one fdatasync when raft requires it (entries, or a term/vote change);
    /// cuts a new segment once the tail passes the segment size.
    pub fn save(&mut self, st: &HardState, entries: &[Entry]) -> Result<()> {
        if st.is_empty() && entries.is_empty() {
            return Ok(());
        }
        let must_sync = !entries.is_empty() || st.vote != self.state.vote || st.term != self.state.term;
        for e in entries {
            self.encode(ENTRY_TYPE, Some(e.encode_to_vec()));
            self.enti = e.index;
        }
        self.save_state(st);
        if self.offset + (self.buf.len() as u64) < self.segment_size {
            if must_sync {
                return self.sync();
            }
            return self.flush();
        }
        self.cut()
    }

    /// Records a snapshot position and syncs.
    pub fn save_snapshot(&mut self, s: Snapshot) -> Result<()> {
        self.encode(SNAPSHOT_TYPE, Some(s.encode_to_vec()));
        if self.enti < s.index {
            self.enti = s.index;
        }
        self.sync()
    }

    /// Closes the tail segment at its current end and starts the next one with
    /// crc, metadata and hard-state records (etcd `cut`).
    fn cut(&mut self) -> Result<()> {
        self.flush()?;
        {
            let (p, f) = self.tail();
            f.set_len(self.offset).map_err(|e| Error::io("truncate", p, e))?;
        }
        self.sync()?;
        let seq = parse_wal_name(&self.tail().0.file_name().unwrap().to_string_lossy()).map_or(0, |(s, _)| s);
        let final_path = self.dir.join(wal_name(seq + 1, self.enti + 1));
        let ready = self.pipeline.take().and_then(|p| p.join().ok()).and_then(|r| r.ok());
        let (tmp, f) = match ready {
            Some(x) => x,
            None => {
                let tmp = self.dir.join(format!("{}.tmp", self.cuts % 2));
                let _ = self.fs.remove_file(&tmp);
                let f = create_segment(&*self.fs, &tmp, self.segment_size, false)?;
                (tmp, f)
            }
        };
        self.cuts += 1;
        self.locks.push((tmp.clone(), f));
        self.offset = 0;
        self.encode(CRC_TYPE, None);
        let md = self.metadata.clone();
        self.encode(METADATA_TYPE, Some(md));
        let st = self.state;
        self.save_state(&st);
        self.sync()?;
        self.fs.rename(&tmp, &final_path).map_err(|e| Error::io("rename", &tmp, e))?;
        sync_dir(&*self.fs, &self.dir)?;
        self.locks.last_mut().unwrap().0 = final_path;
        self.pipeline = start_pipeline(&self.fs, &self.dir, self.cuts, self.segment_size);
        Ok(())
    }

    /// Unlocks segments that only hold entries before `index`, keeping the one
    /// that may contain it (etcd `ReleaseLockTo`).
    pub fn release_lock_to(&mut self, index: u64) {
        if self.locks.len() <= 1 {
            return;
        }
        let idx = |p: &PathBuf| parse_wal_name(&p.file_name().unwrap().to_string_lossy()).map_or(0, |(_, i)| i);
        // Keep the segment before the first one starting at or after `index`
        // (it may hold `index`); with none, keep only the last.
        let keep_from = match self.locks.iter().position(|(p, _)| idx(p) >= index) {
            Some(i) => i.saturating_sub(1),
            None => self.locks.len() - 1,
        };
        self.locks.drain(..keep_from);
    }

    /// The segment files currently held.
    pub fn held_segments(&self) -> Vec<PathBuf> {
        self.locks.iter().map(|(p, _)| p.clone()).collect()
    }

    /// Flushes and syncs everything written.
    pub fn close(mut self) -> Result<()> {
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment of frames (each a length field, then that many bytes of
    /// `fill`) totalling `len` bytes of frames, then zeros to `size`.
    fn segment(fs: &dyn Fs, path: &Path, len: usize, fill: u8, size: usize) {
        let mut b = Vec::with_capacity(size);
        while b.len() < len {
            let n = 4088.min(len - b.len() - 8);
            b.extend_from_slice(&(n as u64).to_le_bytes());
            b.resize(b.len() + n, fill);
        }
        b.resize(size, 0);
        fs.write(path, &b).unwrap();
    }

    /// The buffer keeps an earlier, longer segment's bytes past a later
    /// one's end; what is returned as read is the later segment's alone.
    #[test]
    fn a_reused_buffer_reads_each_segment_alone() {
        let fs = etcdkit_fs::SimFs::new();
        fs.create_dir_all(Path::new("/w"), 0o700).unwrap();
        let (long, short) = (Path::new("/w/a"), Path::new("/w/b"));
        segment(&fs, long, 3 << 20, 0xaa, (3 << 20) + 4096);
        segment(&fs, short, 8192, 0xbb, 2 << 20);
        let mut buf = Vec::new();
        let f = fs.open(long, Open::Read).unwrap();
        let n = read_records(&*f, long, f.len().unwrap(), &mut buf).unwrap();
        assert!(n >= 3 << 20 && buf[..n].contains(&0xaa));
        let f = fs.open(short, Open::Read).unwrap();
        let n = read_records(&*f, short, f.len().unwrap(), &mut buf).unwrap();
        // One step (1 MiB) holds its frames and the zero field after them.
        assert_eq!(n, 1 << 20);
        assert_eq!(&buf[..n], &fs.read(short).unwrap()[..n]);
        assert!(buf.len() > n, "the earlier segment's bytes are still there, past what was read");
    }
}
