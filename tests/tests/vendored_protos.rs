//! The `.proto` files vendored in `proto/proto/etcd` are etcd 3.4's own
//! (Debian's golang-etcd-server-dev) with only the gogoproto and google.api
//! annotations taken out, and the two raft-log fields etcd 3.5 added
//! (`hashedPassword`): `tools/protos/strip.py` run again gives them byte for
//! byte.

use etcdkit_tests::{missing, root};

#[test]
fn vendored_protos_are_etcds_without_annotations() {
    let src = std::path::Path::new("/usr/share/gocode/src/go.etcd.io/etcd");
    if !src.join("etcdserver/etcdserverpb/rpc.proto").exists() {
        missing("etcd 3.4's source (apt-get install golang-etcd-server-dev)");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let o = std::process::Command::new("python3")
        .arg(root().join("tools/protos/strip.py"))
        .arg(src)
        .arg(out.path())
        .output()
        .expect("run python3");
    assert!(o.status.success(), "strip.py: {}", String::from_utf8_lossy(&o.stderr));
    let vendored = root().join("proto/proto/etcd");
    let mut compared = 0;
    for line in String::from_utf8(o.stdout).unwrap().lines() {
        let fresh = std::path::Path::new(line);
        let rel = fresh.strip_prefix(out.path()).unwrap();
        let ours = std::fs::read(vendored.join(rel)).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
        assert!(std::fs::read(fresh).unwrap() == ours, "{} differs from etcd's, stripped", rel.display());
        compared += 1;
    }
    assert_eq!(compared, 5);
}
