// putload: etcd's `benchmark put` workload against a running etcd (clientv3,
// GOPATH mode with Debian's golang-etcd-server-dev): N puts of 8-byte keys
// and 256-byte values from C concurrent clients over K connections. Prints
// one JSON line: ops, seconds, ops/s, p50/p99 latency in microseconds.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/clientv3"
)

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "etcd client endpoint")
	total := flag.Int("total", 10000, "puts in all")
	clients := flag.Int("clients", 1, "concurrent writers")
	conns := flag.Int("conns", 1, "gRPC connections")
	keySpace := flag.Int("key-space-size", 1, "distinct keys (etcd benchmark default 1)")
	flag.Parse()

	cs := make([]*clientv3.Client, *conns)
	for i := range cs {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{*endpoint}, DialTimeout: 5 * time.Second})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cs[i] = c
	}
	value := make([]byte, 256)
	rand.Read(value)
	work := make(chan int, *total)
	for i := 0; i < *total; i++ {
		work <- i
	}
	close(work)
	lat := make([][]time.Duration, *clients)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := cs[w%len(cs)]
			key := make([]byte, 8)
			for i := range work {
				binary.BigEndian.PutUint64(key, uint64(rand.Intn(*keySpace)))
				t := time.Now()
				if _, err := c.Put(context.Background(), string(key), string(value)); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				_ = i
				lat[w] = append(lat[w], time.Since(t))
			}
		}(w)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) }
	out, _ := json.Marshal(map[string]interface{}{
		"ops": len(all), "secs": secs, "ops_per_sec": float64(len(all)) / secs, "p50_us": q(0.5), "p99_us": q(0.99),
	})
	fmt.Println(string(out))
}
