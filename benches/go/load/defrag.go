package main

// The defrag mode: what a writer sees while the server defragments (issue
// 23: etcd holds every writer for the whole copy, etcd#9222). One client
// puts every -interval; after -defrag-after the first endpoint is asked to
// defragment; the writer goes on until a second after the answer. The
// report has the writes before the defragmentation (idle) and the ones in
// flight while it ran (during), each with its quantiles and its longest.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"time"

	"go.etcd.io/etcd/clientv3"
)

var (
	interval    = flag.Duration("interval", 2*time.Millisecond, "defrag: time between the writer's puts")
	defragAfter = flag.Duration("defrag-after", 2*time.Second, "defrag: writes before the defragmentation is asked")
)

type sample struct {
	at  time.Time
	lat time.Duration
}

type defragDone struct {
	start, end time.Time
	err        error
}

func runDefrag(c *clientv3.Client) {
	value := string(make([]byte, *valSize))
	done := make(chan defragDone, 1)
	go func() {
		time.Sleep(*defragAfter)
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		_, err := c.Defragment(ctx, splitComma(*endpoints)[0])
		cancel()
		done <- defragDone{start, time.Now(), err}
	}()
	r := rand.New(rand.NewSource(1))
	var samples []sample
	var d *defragDone
	errs := 0
	next := time.Now()
	for n := 0; d == nil || time.Since(d.end) < time.Second; n++ {
		if d == nil {
			select {
			case got := <-done:
				d = &got
			default:
			}
		}
		t := time.Now()
		ctx, cancel := opCtx()
		_, err := c.Put(ctx, nextKey(r, n), value)
		cancel()
		if err != nil {
			errs++
			if errs > 3 {
				fail(fmt.Errorf("put: %v", err))
			}
		} else {
			samples = append(samples, sample{t, time.Since(t)})
		}
		next = next.Add(*interval)
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait)
		} else {
			next = time.Now()
		}
	}
	if d.err != nil {
		fail(fmt.Errorf("defragment: %v", d.err))
	}
	var idle, during []time.Duration
	for _, s := range samples {
		switch {
		case s.at.Add(s.lat).Before(d.start):
			idle = append(idle, s.lat)
		case s.at.Before(d.end):
			during = append(during, s.lat)
		}
	}
	out, _ := json.Marshal(map[string]interface{}{
		"mode": "defrag", "defrag_secs": d.end.Sub(d.start).Seconds(), "errors": errs,
		"idle": quantiles(idle), "during": quantiles(during),
	})
	fmt.Println(string(out))
}

func quantiles(l []time.Duration) map[string]interface{} {
	if len(l) == 0 {
		return map[string]interface{}{"ops": 0}
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	// Nearest rank: of two writes, one stalled, the p99 is the stalled one.
	q := func(p float64) float64 { return float64(l[int(math.Ceil(p*float64(len(l))))-1].Nanoseconds()) / 1e3 }
	return map[string]interface{}{"ops": len(l), "p50_us": q(0.5), "p99_us": q(0.99), "max_us": q(1)}
}
