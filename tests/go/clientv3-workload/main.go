// clientv3-workload runs one workload against an etcd endpoint with etcd
// 3.4's Go client (clientv3, from Debian's golang-etcd-server-dev) and
// prints what it saw, one line per step, leaving out what differs between
// two servers of the same data (cluster and member IDs, lease IDs, raft
// terms). etcdkit's tests run it against real etcd and against etcdkit and
// compare the two outputs.
//
// Usage: clientv3-workload ENDPOINT SNAPSHOT-FILE
package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/mvcc/mvccpb"
)

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func kvs(kv []*mvccpb.KeyValue) string {
	s := ""
	for _, k := range kv {
		s += fmt.Sprintf(" %s=%s@%d/%d/%d", k.Key, k.Value, k.CreateRevision, k.ModRevision, k.Version)
	}
	return s
}

func main() {
	ep, snap := os.Args[1], os.Args[2]
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second})
	must(err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Puts and prefix gets.
	for i := 0; i < 10; i++ {
		r, err := cli.Put(ctx, fmt.Sprintf("/app/k%02d", i), fmt.Sprintf("v%d", i))
		must(err)
		fmt.Println("put", i, r.Header.Revision)
	}
	g, err := cli.Get(ctx, "/app/", clientv3.WithPrefix(), clientv3.WithLimit(4), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	must(err)
	fmt.Println("get prefix", g.Count, g.More, kvs(g.Kvs))

	// A compare-and-swap txn: once on the right value, once on a stale one.
	for _, want := range []string{"v3", "v3"} {
		t, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("/app/k03"), "=", want)).
			Then(clientv3.OpPut("/app/k03", "swapped")).Else(clientv3.OpGet("/app/k03")).Commit()
		must(err)
		fmt.Println("cas", t.Succeeded, t.Header.Revision)
	}

	// A watch from a past revision: the history, then a live event.
	wctx, wcancel := context.WithCancel(ctx)
	wch := cli.Watch(wctx, "/app/k0", clientv3.WithPrefix(), clientv3.WithRev(5), clientv3.WithPrevKV())
	seen := 0
	go func() {
		time.Sleep(300 * time.Millisecond)
		_, _ = cli.Delete(ctx, "/app/k09")
	}()
	for w := range wch {
		must(w.Err())
		for _, e := range w.Events {
			prev := ""
			if e.PrevKv != nil {
				prev = string(e.PrevKv.Value)
			}
			fmt.Println("watch", e.Type, string(e.Kv.Key), string(e.Kv.Value), e.Kv.ModRevision, prev)
			seen++
		}
		if seen >= 8 {
			break
		}
	}
	wcancel()

	// A lease: granted, kept alive once, a key on it, then left to expire.
	l, err := cli.Grant(ctx, 3)
	must(err)
	fmt.Println("grant ttl", l.TTL)
	_, err = cli.Put(ctx, "/app/leased", "x", clientv3.WithLease(l.ID))
	must(err)
	ka, err := cli.KeepAliveOnce(ctx, l.ID)
	must(err)
	fmt.Println("keepalive ttl", ka.TTL)
	ttl, err := cli.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys())
	must(err)
	fmt.Println("timetolive granted", ttl.GrantedTTL, "keys", len(ttl.Keys))
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := cli.Get(ctx, "/app/leased")
		must(err)
		if r.Count == 0 {
			fmt.Println("lease expired, key gone")
			break
		}
		if time.Now().After(deadline) {
			fmt.Println("lease did not expire")
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	ttl, err = cli.TimeToLive(ctx, l.ID)
	must(err)
	fmt.Println("timetolive after", ttl.TTL)

	// A snapshot: streamed, saved, its trailer checked.
	rc, err := cli.Snapshot(ctx)
	must(err)
	f, err := os.Create(snap)
	must(err)
	n, err := io.Copy(f, rc)
	must(err)
	must(f.Close())
	data, err := os.ReadFile(snap)
	must(err)
	body, trailer := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	sum := sha256.Sum256(body)
	fmt.Println("snapshot bytes%512", n%512, "trailer ok", string(sum[:]) == string(trailer))

	g, err = cli.Get(ctx, "/app/", clientv3.WithPrefix())
	must(err)
	fmt.Println("final", g.Count, kvs(g.Kvs))
}
