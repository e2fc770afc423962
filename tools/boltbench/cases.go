// The cases of the unified page-store comparison (benches/anchors.sh), the
// same as etcdkit's `pagestore-bench` (benches/src/pagestore.rs): one case per
// run, one JSON line with ops_per_sec (and p50/p99 for the commit cases).
// bbolt's defaults: freelist synced, every commit fdatasync'd.
//
//	put    count keys in transactions of batch-size keys, fresh file
//	get    point gets of every key in a random order (random keys loaded)
//	scan   a cursor over every key (sequential keys loaded)
//	range  seek to each 7-byte prefix (every 256-key block once), read while it matches
//	commit single-put durable commits (db.Update), one writer, 10,000 keys loaded first
//	group  the same from `writers` goroutines through db.Batch
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

func caseKeys(rng *rand.Rand, n int, random bool) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		v := uint64(i)
		if random {
			v = rng.Uint64()
		}
		keys[i] = make([]byte, 8)
		binary.BigEndian.PutUint64(keys[i], v)
	}
	return keys
}

func putTx(db *bolt.DB, keys [][]byte, value []byte) {
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("bench"))
		for _, k := range keys {
			if err := b.Put(k, value); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		panic(err)
	}
}

func load(db *bolt.DB, keys [][]byte, value []byte) {
	for i := 0; i < len(keys); i += 10000 {
		end := i + 10000
		if end > len(keys) {
			end = len(keys)
		}
		putTx(db, keys[i:end], value)
	}
}

func pct(lat []time.Duration, q float64) float64 {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	i := int(float64(len(lat)) * q)
	if i >= len(lat) {
		i = len(lat) - 1
	}
	return float64(lat[i].Nanoseconds()) / 1e3
}

func runCase(name, dir string, count, batch int, random bool, writers int) {
	path := filepath.Join(dir, "bench.db")
	os.Remove(path)
	defer os.Remove(path)
	db, err := bolt.Open(path, 0600, nil)
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte("bench"))
		return err
	}); err != nil {
		panic(err)
	}
	rng := rand.New(rand.NewSource(1))
	value := make([]byte, 32)
	ops := count
	var p50, p99 interface{}
	var elapsed time.Duration
	check := func(got int) {
		if got != count {
			fmt.Fprintf(os.Stderr, "boltbench: %s saw %d keys, want %d\n", name, got, count)
			os.Exit(1)
		}
	}
	switch name {
	case "put":
		keys := caseKeys(rng, count, random)
		t := time.Now()
		for i := 0; i < len(keys); i += batch {
			end := i + batch
			if end > len(keys) {
				end = len(keys)
			}
			putTx(db, keys[i:end], value)
		}
		elapsed = time.Since(t)
	case "get":
		keys := caseKeys(rng, count, true)
		load(db, keys, value)
		probes := make([][]byte, len(keys))
		for i, j := range rng.Perm(len(keys)) {
			probes[i] = keys[j]
		}
		found := 0
		t := time.Now()
		db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("bench"))
			for _, k := range probes {
				if b.Get(k) != nil {
					found++
				}
			}
			return nil
		})
		elapsed = time.Since(t)
		check(found)
	case "scan", "range":
		keys := caseKeys(rng, count, false)
		load(db, keys, value)
		var prefixes [][]byte
		for i := 0; i < len(keys); i += 256 {
			prefixes = append(prefixes, keys[i][:7])
		}
		rng.Shuffle(len(prefixes), func(i, j int) { prefixes[i], prefixes[j] = prefixes[j], prefixes[i] })
		seen := 0
		t := time.Now()
		db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket([]byte("bench")).Cursor()
			if name == "scan" {
				for k, _ := c.First(); k != nil; k, _ = c.Next() {
					seen++
				}
				return nil
			}
			for _, p := range prefixes {
				for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
					seen++
				}
			}
			return nil
		})
		elapsed = time.Since(t)
		check(seen)
	case "commit", "group":
		load(db, caseKeys(rng, 10000, true), value)
		keys := caseKeys(rng, count, true)
		if name == "commit" {
			writers = 1
		}
		per := (count + writers - 1) / writers
		lat := make([]time.Duration, len(keys))
		var wg sync.WaitGroup
		t := time.Now()
		for w := 0; w*per < len(keys); w++ {
			end := (w + 1) * per
			if end > len(keys) {
				end = len(keys)
			}
			wg.Add(1)
			go func(lo, hi int) {
				defer wg.Done()
				for i := lo; i < hi; i++ {
					s := time.Now()
					if writers == 1 {
						putTx(db, keys[i:i+1], value)
					} else {
						k := keys[i]
						if err := db.Batch(func(tx *bolt.Tx) error { return tx.Bucket([]byte("bench")).Put(k, value) }); err != nil {
							panic(err)
						}
					}
					lat[i] = time.Since(s)
				}
			}(w*per, end)
		}
		wg.Wait()
		elapsed = time.Since(t)
		p50, p99 = pct(lat, 0.50), pct(lat, 0.99)
	default:
		fmt.Fprintf(os.Stderr, "boltbench: unknown case %q (put|get|scan|range|commit|group)\n", name)
		os.Exit(2)
	}
	mode := "seq"
	if random {
		mode = "rnd"
	}
	json.NewEncoder(os.Stdout).Encode(map[string]interface{}{
		"engine": "bbolt-go", "case": name, "count": count, "batch_size": batch, "mode": mode, "writers": writers,
		"ops_per_sec": float64(ops) / elapsed.Seconds(), "seconds": elapsed.Seconds(), "p50_us": p50, "p99_us": p99,
	})
}
