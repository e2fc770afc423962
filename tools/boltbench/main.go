// boltbench: the Go side of the page-store benchmarks. It runs one workload on
// real bbolt (Debian's 1.3.6 source) and prints one JSON line with the same
// fields as `etcdkit bolt bench -w json`, so the two can be compared side by side.
//
// Workload: `count` keys of `key-size` bytes (a big-endian u64 in front,
// sequential or random), values of `value-size` zero bytes, written in
// transactions of `batch-size` keys; then a cursor scan (read-mode seq) or point
// gets in random order (read-mode rnd). Built by benches/anchors.sh.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

func main() {
	count := flag.Int("count", 100000, "keys")
	batch := flag.Int("batch-size", 1000, "keys per write transaction")
	keySize := flag.Int("key-size", 8, "key bytes (>= 8)")
	valueSize := flag.Int("value-size", 32, "value bytes")
	writeMode := flag.String("write-mode", "seq", "seq or rnd")
	readMode := flag.String("read-mode", "seq", "seq (scan) or rnd (point gets)")
	noSync := flag.Bool("no-sync", false, "no fdatasync on commit")
	noFreelistSync := flag.Bool("no-freelist-sync", false, "do not persist the freelist (etcd's setting)")
	fill := flag.Float64("fill-percent", 0.5, "bucket fill percent")
	dir := flag.String("dir", "", "directory for the file (default: temporary)")
	caseName := flag.String("case", "", "one case of benches/anchors.sh (put|get|scan|range|commit|group; see cases.go)")
	writers := flag.Int("writers", 16, "writers of the group case")
	flag.Parse()
	if *keySize < 8 || *batch < 1 {
		fmt.Fprintln(os.Stderr, "boltbench: key-size must be >= 8 and batch-size >= 1")
		os.Exit(2)
	}
	d := *dir
	if d == "" {
		t, err := os.MkdirTemp("", "boltbench")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(t)
		d = t
	}
	if *caseName != "" {
		runCase(*caseName, d, *count, *batch, *writeMode == "rnd", *writers)
		return
	}
	path := filepath.Join(d, "bench.db")
	os.Remove(path)
	rng := rand.New(rand.NewSource(1))
	keys := make([][]byte, *count)
	for i := range keys {
		n := uint64(i)
		if *writeMode == "rnd" {
			n = rng.Uint64()
		}
		keys[i] = make([]byte, *keySize)
		binary.BigEndian.PutUint64(keys[i], n)
	}
	value := make([]byte, *valueSize)
	db, err := bolt.Open(path, 0600, &bolt.Options{NoSync: *noSync, NoFreelistSync: *noFreelistSync})
	if err != nil {
		panic(err)
	}
	t0 := time.Now()
	for i := 0; i < len(keys); i += *batch {
		end := i + *batch
		if end > len(keys) {
			end = len(keys)
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("bench"))
			if err != nil {
				return err
			}
			b.FillPercent = *fill
			for _, k := range keys[i:end] {
				if err := b.Put(k, value); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			panic(err)
		}
	}
	writeSecs := time.Since(t0).Seconds()
	// The read order is drawn before the clock starts, and the keys are laid
	// out in that order so the loop measures the lookups, not the harness.
	perm := rng.Perm(len(keys))
	probes := make([]byte, 0, len(keys)**keySize)
	for _, i := range perm {
		probes = append(probes, keys[i]...)
	}
	t0 = time.Now()
	found := 0
	db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("bench"))
		if *readMode == "rnd" {
			for off := 0; off < len(probes); off += *keySize {
				if b.Get(probes[off:off+*keySize]) != nil {
					found++
				}
			}
			return nil
		}
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			found++
		}
		return nil
	})
	readSecs := time.Since(t0).Seconds()
	st, _ := os.Stat(path)
	db.Close()
	json.NewEncoder(os.Stdout).Encode(map[string]interface{}{
		"engine": "bbolt-go", "count": *count, "batch_size": *batch, "key_size": *keySize,
		"value_size": *valueSize, "write_mode": *writeMode, "read_mode": *readMode, "no_sync": *noSync,
		"write_ops_per_sec": float64(len(keys)) / writeSecs, "read_ops_per_sec": float64(found) / readSecs,
		"write_seconds": writeSecs, "read_seconds": readSecs, "keys_read": found, "file_bytes": st.Size(),
	})
}
