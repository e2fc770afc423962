// Index memory of etcd 3.4's treeIndex, per key. benches/index-mem.sh copies
// this file into a scratch copy of go.etcd.io/etcd/mvcc (GOPATH mode) and
// runs it there: the test needs the package's unexported newTreeIndex.
//
// Each case puts N keys of L bytes, R times each (revision i*N+k+1), with a
// fresh key slice per put as a request would bring, then prints the live heap
// (runtime.MemStats.HeapAlloc after a GC) it added, per key.
package mvcc

import (
	"fmt"
	"runtime"
	"testing"

	"go.uber.org/zap"
)

// indexKey: key k of length l, the same bytes as etcdkit's index-mem builds.
func indexKey(k, l int) []byte {
	b := make([]byte, l)
	x := uint64(k)*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = 'a' + byte(x%26)
	}
	return b
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestEtcdkitIndexMemory(t *testing.T) {
	for _, c := range [][3]int{{1000000, 64, 1}, {200000, 64, 10}, {1000000, 16, 1}} {
		n, l, r := c[0], c[1], c[2]
		before := liveHeap()
		ti := newTreeIndex(zap.NewNop())
		for i := 0; i < r; i++ {
			for k := 0; k < n; k++ {
				ti.Put(indexKey(k, l), revision{main: int64(i*n + k + 1)})
			}
		}
		after := liveHeap()
		fmt.Printf("INDEXMEM keys=%d key_len=%d revs=%d bytes_per_key=%.1f\n", n, l, r, float64(after-before)/float64(n))
		runtime.KeepAlive(ti)
	}
}
