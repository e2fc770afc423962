// load: the workloads of etcd's tools/benchmark (which Debian does not
// package), written again on clientv3 (GOPATH mode with Debian's
// golang-etcd-server-dev), so that etcdkit and real etcd are driven by the
// same client. One mode per run; it prints one JSON line: the mode, the
// operations done, errors, seconds, operations per second and the
// p50/p99/p99.9 latencies in microseconds.
//
// Modes (etcd benchmark's names where it has them):
//
//	put            Put of -key-size/-val-size, sequential or random keys
//	txn-put        the same Put inside a Txn (etcd's `txn-put`)
//	range          Get of one key, or of a -range-keys prefix, linearizable
//	               (-consistency l) or serializable (s)
//	watch          -watchers watchers on one prefix over -watch-streams
//	               streams; -total puts from the clients; the latency is
//	               put-to-delivery of every event at every watcher
//	watch-latency  the same, one put at a time: the latency is put-to-last-
//	               watcher, so it measures fan-out rather than throughput
//	lease-keepalive  KeepAliveOnce on one lease per client
//	kube           kube-apiserver's pattern: CAS updates on mod_revision,
//	               paginated prefix lists (limit 100) and creates, with a
//	               prev_kv watcher per connection asking for progress
//
// The clients (-clients) share -conns gRPC connections round-robin, as
// etcd's benchmark does.
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
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
)

var (
	endpoints   = flag.String("endpoints", "127.0.0.1:2379", "client endpoints, comma-separated")
	mode        = flag.String("mode", "put", "put | txn-put | range | watch | watch-latency | lease-keepalive | kube | defrag | serving")
	total       = flag.Int("total", 10000, "operations in all")
	clients     = flag.Int("clients", 1, "concurrent clients")
	conns       = flag.Int("conns", 1, "gRPC connections")
	keySize     = flag.Int("key-size", 8, "key size in bytes")
	valSize     = flag.Int("val-size", 256, "value size in bytes")
	keySpace    = flag.Int("key-space-size", 1, "distinct keys (etcd benchmark's default is 1)")
	seqKeys     = flag.Bool("sequential-keys", false, "keys in order rather than at random")
	consistency = flag.String("consistency", "l", "range: l (linearizable) or s (serializable)")
	rangeKeys   = flag.Int("range-keys", 1, "range: keys per request (1, or a prefix of this many)")
	watchers    = flag.Int("watchers", 100, "watch: watchers in all")
	streams     = flag.Int("watch-streams", 10, "watch: watch streams (gRPC streams)")
	kubeObjects = flag.Int("kube-objects", 1000, "kube: objects under the prefix")
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, "load:", err)
	os.Exit(1)
}

// opTimeout bounds every request: a server that stops answering ends the
// run with errors instead of hanging it.
const opTimeout = 10 * time.Second

// opCtx is the context of one request.
func opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// recorder keeps every latency of one client (no lock on the hot path).
type recorder struct {
	lat  []time.Duration
	errs int
}

func main() {
	flag.Parse()
	if *mode == "serving" {
		// Before any client is made: it measures from its own start.
		runServing()
		return
	}
	cs := make([]*clientv3.Client, *conns)
	for i := range cs {
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   splitComma(*endpoints),
			DialTimeout: 5 * time.Second,
			// Big values and lists of 100 keys fit; etcd's default server
			// limit is 1.5 MiB.
			MaxCallRecvMsgSize: 64 << 20,
		})
		if err != nil {
			fail(err)
		}
		cs[i] = c
	}
	var recs []*recorder
	var secs float64
	switch *mode {
	case "put", "txn-put", "range", "lease-keepalive", "kube":
		recs, secs = runClients(cs)
	case "watch", "watch-latency":
		recs, secs = runWatch(cs)
	case "defrag":
		runDefrag(cs[0])
		return
	default:
		fail(fmt.Errorf("unknown mode %q", *mode))
	}
	report(recs, secs)
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// key i of the key space, keySize bytes (etcd benchmark: a varint in a
// zeroed buffer).
func key(i int) string {
	k := make([]byte, *keySize)
	binary.PutVarint(k, int64(i))
	return string(k)
}

func nextKey(r *rand.Rand, n int) string {
	if *seqKeys {
		return key(n % *keySpace)
	}
	return key(r.Intn(*keySpace))
}

// runClients runs -total operations of the mode from -clients goroutines.
func runClients(cs []*clientv3.Client) ([]*recorder, float64) {
	value := string(make([]byte, *valSize))
	prepare(cs[0], value)
	var leases []clientv3.LeaseID
	if *mode == "lease-keepalive" {
		for i := 0; i < *clients; i++ {
			ctx, cancel := opCtx()
			l, err := cs[i%len(cs)].Grant(ctx, 600)
			cancel()
			if err != nil {
				fail(err)
			}
			leases = append(leases, l.ID)
		}
	}
	var stopWatch func()
	if *mode == "kube" {
		stopWatch = kubeWatchers(cs)
	}
	var next int64 = -1
	recs := make([]*recorder, *clients)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *clients; w++ {
		recs[w] = &recorder{}
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := cs[w%len(cs)]
			r := rand.New(rand.NewSource(int64(w) + 1))
			rec := recs[w]
			kube := &kubeClient{c: c, r: r, value: value, revs: map[string]int64{}}
			failing := 0
			for {
				n := int(atomic.AddInt64(&next, 1))
				if n >= *total {
					return
				}
				t := time.Now()
				ctx, cancel := opCtx()
				var err error
				switch *mode {
				case "put":
					_, err = c.Put(ctx, nextKey(r, n), value)
				case "txn-put":
					_, err = c.Txn(ctx).Then(clientv3.OpPut(nextKey(r, n), value)).Commit()
				case "range":
					err = rangeOnce(ctx, c, r)
				case "lease-keepalive":
					_, err = c.KeepAliveOnce(ctx, leases[w])
				case "kube":
					err = kube.step(ctx)
				}
				cancel()
				if err != nil {
					// Errors are counted; three in a row mean the server is
					// gone, and the run ends rather than waiting on it.
					rec.errs++
					if failing++; failing == 3 {
						fail(fmt.Errorf("client %d: three failures in a row, the last: %v", w, err))
					}
					continue
				}
				failing = 0
				rec.lat = append(rec.lat, time.Since(t))
			}
		}(w)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if stopWatch != nil {
		stopWatch()
	}
	return recs, secs
}

// prepare writes what a read mode reads: the range keys, the kube objects.
func prepare(c *clientv3.Client, value string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	switch *mode {
	case "range":
		for i := 0; i < 100; i++ {
			if _, err := c.Put(ctx, rangeKey(i), value); err != nil {
				fail(err)
			}
		}
	case "kube":
		for i := 0; i < *kubeObjects; i++ {
			if _, err := c.Put(ctx, kubeKey(i), value); err != nil {
				fail(err)
			}
		}
	}
}

func rangeKey(i int) string { return fmt.Sprintf("range/%03d", i) }

func rangeOnce(ctx context.Context, c *clientv3.Client, r *rand.Rand) error {
	var opts []clientv3.OpOption
	if *consistency == "s" {
		opts = append(opts, clientv3.WithSerializable())
	}
	if *rangeKeys <= 1 {
		_, err := c.Get(ctx, rangeKey(r.Intn(100)), opts...)
		return err
	}
	opts = append(opts, clientv3.WithRange(rangeKey(*rangeKeys)))
	resp, err := c.Get(ctx, rangeKey(0), opts...)
	if err == nil && len(resp.Kvs) != *rangeKeys {
		err = fmt.Errorf("range returned %d keys, want %d", len(resp.Kvs), *rangeKeys)
	}
	return err
}

func kubeKey(i int) string { return fmt.Sprintf("/registry/pods/default/pod-%05d", i) }

const kubePrefix = "/registry/pods/"

// kubeClient is one kube-apiserver-like client: it remembers the
// mod_revision it last saw of each object, as the apiserver's cache does.
type kubeClient struct {
	c     *clientv3.Client
	r     *rand.Rand
	value string
	revs  map[string]int64
	made  int
}

// step is one request: 80 % an update (a CAS on the remembered
// mod_revision; a lost race reads the object back in the same txn, as
// GuaranteedUpdate does), 10 % a paginated list of the whole prefix, 10 %
// a create.
func (k *kubeClient) step(ctx context.Context) error {
	switch p := k.r.Intn(10); {
	case p < 8:
		key := kubeKey(k.r.Intn(*kubeObjects))
		rev := k.revs[key]
		resp, err := k.c.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, k.value)).
			Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			k.revs[key] = resp.Header.Revision
		} else if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
			k.revs[key] = kvs[0].ModRevision
		}
		return nil
	case p < 9:
		from := kubePrefix
		end := clientv3.GetPrefixRangeEnd(kubePrefix)
		var rev int64
		for {
			opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(100)}
			if rev != 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			resp, err := k.c.Get(ctx, from, opts...)
			if err != nil {
				return err
			}
			rev = resp.Header.Revision
			if !resp.More || len(resp.Kvs) == 0 {
				return nil
			}
			from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	default:
		k.made++
		key := fmt.Sprintf("/registry/events/default/ev-%d-%d", k.r.Int63(), k.made)
		_, err := k.c.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, k.value)).Commit()
		return err
	}
}

// kubeWatchers opens one prev_kv watcher of the whole registry per
// connection, asking for progress every second (the apiserver's watch
// cache); returns how to stop them.
func kubeWatchers(cs []*clientv3.Client) func() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, c := range cs {
		wch := c.Watch(clientv3.WithRequireLeader(ctx), "/registry/", clientv3.WithPrefix(), clientv3.WithPrevKV())
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range wch {
			}
		}()
		go func(c *clientv3.Client) {
			defer wg.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					_ = c.RequestProgress(ctx)
				}
			}
		}(c)
	}
	return func() { cancel(); wg.Wait() }
}

// runWatch: -watchers watchers of the prefix "watch/" over -watch-streams
// streams (spread over the connections), then -total puts whose values
// carry their send time; each watcher records every event's delay.
func runWatch(cs []*clientv3.Client) ([]*recorder, float64) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recs := make([]*recorder, *watchers)
	var got int64
	want := int64(*total) * int64(*watchers)
	done := make(chan struct{})
	// Each put's send time by its sequence number (set before the put).
	sent := make([]int64, *total)
	// One Watcher per stream (each holds its own gRPC stream), spread
	// over the connections, as etcd's benchmark does.
	ws := make([]clientv3.Watcher, *streams)
	for s := range ws {
		ws[s] = clientv3.NewWatcher(cs[s%len(cs)])
		defer ws[s].Close()
	}
	var ready sync.WaitGroup
	for w := 0; w < *watchers; w++ {
		recs[w] = &recorder{}
		ready.Add(1)
		go func(rec *recorder, wch clientv3.WatchChan) {
			for resp := range wch {
				if resp.Created {
					ready.Done()
					continue
				}
				now := time.Now().UnixNano()
				for _, ev := range resp.Events {
					i, err := strconv.Atoi(string(ev.Kv.Value[:16]))
					if err != nil || i >= len(sent) {
						rec.errs++
						continue
					}
					rec.lat = append(rec.lat, time.Duration(now-atomic.LoadInt64(&sent[i])))
				}
				if atomic.AddInt64(&got, int64(len(resp.Events))) == want {
					close(done)
				}
			}
		}(recs[w], ws[w%len(ws)].Watch(clientv3.WithRequireLeader(ctx), "watch/", clientv3.WithPrefix(), clientv3.WithCreatedNotify()))
	}
	created := make(chan struct{})
	go func() { ready.Wait(); close(created) }()
	select {
	case <-created:
	case <-time.After(time.Minute):
		fail(fmt.Errorf("the %d watchers were not all created within a minute", *watchers))
	}
	pad := make([]byte, *valSize)
	var next int64 = -1
	var wg sync.WaitGroup
	putClients := *clients
	if *mode == "watch-latency" {
		putClients = 1
	}
	start := time.Now()
	for p := 0; p < putClients; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			c := cs[p%len(cs)]
			for {
				n := int(atomic.AddInt64(&next, 1))
				if n >= *total {
					return
				}
				v := []byte(fmt.Sprintf("%016d", n))
				if len(pad) > len(v) {
					v = append(v, pad[len(v):]...)
				}
				atomic.StoreInt64(&sent[n], time.Now().UnixNano())
				ctx, cancel := opCtx()
				_, err := c.Put(ctx, fmt.Sprintf("watch/%d", n%1000), string(v))
				cancel()
				if err != nil {
					fail(err)
				}
				if *mode == "watch-latency" {
					// One at a time: the next put waits for every watcher.
					deadline := time.Now().Add(opTimeout)
					for atomic.LoadInt64(&got) < int64(n+1)*int64(*watchers) {
						if time.Now().After(deadline) {
							fail(fmt.Errorf("put %d not seen by every watcher within %v", n, opTimeout))
						}
						time.Sleep(20 * time.Microsecond)
					}
				}
			}
		}(p)
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		fail(fmt.Errorf("watchers saw %d of %d events within 60 s of the last put", atomic.LoadInt64(&got), want))
	}
	return recs, time.Since(start).Seconds()
}

func report(recs []*recorder, secs float64) {
	var all []time.Duration
	errs := 0
	for _, r := range recs {
		all = append(all, r.lat...)
		errs += r.errs
	}
	if len(all) == 0 {
		fail(fmt.Errorf("no operation succeeded (%d errors)", errs))
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Nanoseconds()) / 1e3 }
	out, _ := json.Marshal(map[string]interface{}{
		"mode": *mode, "ops": len(all), "errors": errs, "secs": secs,
		"ops_per_sec": float64(len(all)) / secs, "p50_us": q(0.5), "p99_us": q(0.99), "p999_us": q(0.999),
	})
	fmt.Println(string(out))
}
