#!/usr/bin/env python3
"""Vendors etcd 3.4's API .proto files into proto/proto/ without the gogoproto
and google.api annotations (imports, file options, field options, the
`option (google.api.http) = {...};` blocks), which only etcd's Go generators
read. The messages, fields, numbers and services are left exactly as etcd
declares them, with one addition (`RAFT_LOG_35` below): the fields etcd 3.5
added to the requests it writes into the raft log, so that etcdkit reads and
re-encodes a 3.5 WAL byte for byte.

    usage: tools/protos/strip.py [ETCD_SRC [OUT_DIR]]
           ETCD_SRC: default Debian's golang-etcd-server-dev source;
           OUT_DIR: default proto/proto/etcd of this repository
"""
import pathlib
import re
import sys

SRC = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/gocode/src/go.etcd.io/etcd")
OUT = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else pathlib.Path(__file__).resolve().parents[2] / "proto" / "proto" / "etcd"
FILES = [
    "etcdserver/etcdserverpb/rpc.proto",
    "mvcc/mvccpb/kv.proto",
    "auth/authpb/auth.proto",
    "etcdserver/api/v3lock/v3lockpb/v3lock.proto",
    "etcdserver/api/v3election/v3electionpb/v3election.proto",
]


# etcd 3.5.1's api/etcdserverpb/rpc.proto: since 3.5 the server hashes a new
# password before proposing it, and the raft entry carries the hash.
RAFT_LOG_35 = [
    ("  authpb.UserAddOptions options = 3;\n}\n",
     "  authpb.UserAddOptions options = 3;\n  // etcd 3.5: the bcrypt hash, set by the server before the raft proposal.\n  string hashedPassword = 4;\n}\n"),
    ("  // password is the new password for the user.\n  string password = 2;\n}\n",
     "  // password is the new password for the user.\n  string password = 2;\n  // etcd 3.5: the bcrypt hash, set by the server before the raft proposal.\n  string hashedPassword = 3;\n}\n"),
]


def add_35(text: str) -> str:
    for old, new in RAFT_LOG_35:
        assert text.count(old) == 1, f"3.5 field anchor not found once: {old!r}"
        text = text.replace(old, new)
    return text


def strip(text: str) -> str:
    text = re.sub(r'^import "(gogoproto/gogo|google/api/annotations)\.proto";\n', "", text, flags=re.M)
    text = re.sub(r"^option \(gogoproto\.[^;]*;\n", "", text, flags=re.M)
    # `option (google.api.http) = { ... };` inside an rpc (its braces nest:
    # `additional_bindings { ... }`): drop the block, leaving an empty `{}` body.
    while (start := text.find("option (google.api.http) = {")) >= 0:
        depth, i = 0, text.index("{", start)
        while True:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
            if depth == 0:
                break
        end = text.index(";", i) + 1
        start = len(text[:start].rstrip())
        text = text[:start] + text[end:]
    text = re.sub(r"\{\s*\}", "{}", text)
    # Field options: `[(gogoproto.x) = y, ...]` (only gogoproto ones appear).
    text = re.sub(r"\s*\[\s*\(gogoproto\.[^\]]*\]", "", text)
    assert "gogoproto" not in text and "google.api" not in text, "an annotation was left"
    return text


for f in FILES:
    out = OUT / f
    out.parent.mkdir(parents=True, exist_ok=True)
    text = strip((SRC / f).read_text())
    if f.endswith("rpc.proto"):
        text = add_35(text)
    out.write_text(text)
    print(out)
