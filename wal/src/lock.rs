//! File locks as etcd takes them: an OFD write lock (`F_OFD_SETLK` over the
//! whole file) where the kernel has it, otherwise `flock(LOCK_EX)` (etcd 3.4
//! `pkg/fileutil/lock_linux.go`). OFD locks and `flock` do not see each other,
//! so using the same kind as etcd is what keeps a running etcd and etcdkit off
//! the same segment. The only `unsafe` of this crate is the `fcntl` call.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Tries to take the write lock; `Ok(false)` if another holder has it.
pub fn try_lock(f: &File) -> io::Result<bool> {
    let fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    // SAFETY: `f` is an open file, so its descriptor is valid for the call;
    // `fl` is a fully initialized `struct flock` that outlives the call, and
    // F_OFD_SETLK only reads it (l_pid must be 0, as it is).
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        // No OFD locks on this kernel or file system: etcd falls back to flock.
        Some(libc::EINVAL) => match f.try_lock() {
            Ok(()) => Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        },
        _ => Err(e),
    }
}
