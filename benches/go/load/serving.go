package main

// The serving mode: how long until the first endpoint answers a
// linearizable get (a restarted member: its store opened, a leader
// elected, the request through raft). Started right after the server
// process, it measures from its own start; each try (a new client) waits
// at most 50 ms, then the next begins 5 ms later, for -serving-within at most.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"go.etcd.io/etcd/clientv3"
)

var servingWithin = flag.Duration("serving-within", 10*time.Minute, "serving: give up after this long")

func runServing() {
	start := time.Now()
	tries := 0
	var err error
	for time.Since(start) < *servingWithin {
		tries++
		// A client per try: gRPC waits a second before it dials a refused
		// address again, which would be measured instead of the server.
		if err = tryGet(); err == nil {
			out, _ := json.Marshal(map[string]interface{}{
				"mode": "serving", "secs": time.Since(start).Seconds(), "tries": tries,
			})
			fmt.Println(string(out))
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	fail(fmt.Errorf("no answer within %v: %v", *servingWithin, err))
}

func tryGet() error {
	c, err := clientv3.New(clientv3.Config{Endpoints: splitComma(*endpoints)[:1], DialTimeout: 50 * time.Millisecond})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Get(ctx, "probe")
	return err
}
