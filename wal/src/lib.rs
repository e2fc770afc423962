//! etcdkit wal: placeholder crate, built in a later issue.
#![deny(unsafe_code)]
