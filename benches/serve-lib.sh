# Sourced by the served-system benchmarks (serve-anchors.sh, serve-ops.sh)
# from the repository root, with $root and $work set: builds the release
# etcdkit (as $work/bin/etcd; extra `cargo build` arguments in
# $EXTRA_BUILD) and the load generator ($work/load), fetches etcd 3.5.1,
# and fills `server` (system name -> binary) and `systems` ($SYSTEMS).
echo "building etcdkit (release) and the load generator" >&2
cargo build --release -q -p etcdkit-cli --bin etcdkit ${EXTRA_BUILD:-}
ln -sf "$root/target/release/etcdkit" "$work/bin/etcd"
(cd benches/go/load && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= \
  GOCACHE="${GOCACHE:-/tmp/load-gocache}" go build -o "$work/load" .)
scripts/etcd35.sh || { echo "cannot get etcd 3.5.1 (scripts/etcd35.sh)" >&2; exit 1; }

declare -A server=(
  [etcdkit]="$work/bin/etcd"
  [etcd-3.4]="$(command -v etcd)"
  [etcd-3.5]="$root/target/etcd-3.5.1/etcd"
)
systems=(${SYSTEMS:-etcdkit etcd-3.4 etcd-3.5})
