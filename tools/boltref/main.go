// boltref: the project's reference side for bbolt compatibility tests. It is
// built against Debian's real bbolt 1.3.6 source (golang-github-coreos-bbolt-dev)
// by scripts/build-boltref.sh, and answers with real bbolt's view of a file.
//
//	boltref check FILE           tx.Check(); prints OK or one ERROR line each, exit 1 on errors
//	boltref dump [-sha] FILE     every bucket and key/value in the project's text form
//	boltref write [-pagesize N] [-freelist array|map] [-nofreelistsync] [-fill F] FILE SPEC|-
//	                             apply a write spec with real bbolt
//
// The text form (identical to `etcdkit bolt dump`): byte strings are quoted; bytes
// 0x20-0x7e except '"' and '\' stand for themselves, any other byte is \xHH.
// Lines: `bucket PATH seq=N`, `kv PATH KEY VALUE` or `kv PATH KEY len=N sha256=HEX`,
// where PATH is quoted names joined by '/'. Spec lines: bucket PATH [seq=N],
// kv|put PATH KEY VALUE, fill PATH KEY N HH, del|delete PATH KEY, delbucket PATH,
// commit; '#' starts a comment line.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
)

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "boltref: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		die("usage: boltref check|dump|write ...")
	}
	var err error
	switch os.Args[1] {
	case "check":
		err = check(os.Args[2:])
	case "dump":
		err = dump(os.Args[2:])
	case "write":
		err = write(os.Args[2:])
	default:
		die("unknown command %q", os.Args[1])
	}
	if err != nil {
		die("%s: %v", os.Args[1], err)
	}
}

func openReadOnly(path string) (*bolt.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	return bolt.Open(path, 0400, &bolt.Options{ReadOnly: true})
}

func check(args []string) error {
	if len(args) != 1 {
		return errors.New("want FILE")
	}
	db, err := openReadOnly(args[0])
	if err != nil {
		return err
	}
	defer db.Close()
	n := 0
	err = db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			fmt.Println("ERROR", e)
			n++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%d error(s)", n)
	}
	fmt.Println("OK")
	return nil
}

func quote(b []byte) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, c := range b {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			sb.WriteString(`\x`)
			sb.WriteString(hex.EncodeToString([]byte{c}))
		} else {
			sb.WriteByte(c)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

func quotePath(path [][]byte) string {
	s := make([]string, len(path))
	for i, p := range path {
		s[i] = quote(p)
	}
	return strings.Join(s, "/")
}

func dump(args []string) error {
	fs := flag.NewFlagSet("dump", flag.ContinueOnError)
	sha := fs.Bool("sha", false, "value length and sha256 instead of the value")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want FILE")
	}
	db, err := openReadOnly(fs.Arg(0))
	if err != nil {
		return err
	}
	defer db.Close()
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer w.Flush()
	var walk func(path [][]byte, b *bolt.Bucket) error
	walk = func(path [][]byte, b *bolt.Bucket) error {
		p := quotePath(path)
		fmt.Fprintf(w, "bucket %s seq=%d\n", p, b.Sequence())
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				sub := b.Bucket(k)
				if sub == nil {
					return fmt.Errorf("nil value for non-bucket key %s", quote(k))
				}
				child := append(append([][]byte{}, path...), append([]byte{}, k...))
				return walk(child, sub)
			}
			if *sha {
				sum := sha256.Sum256(v)
				fmt.Fprintf(w, "kv %s %s len=%d sha256=%x\n", p, quote(k), len(v), sum)
			} else {
				fmt.Fprintf(w, "kv %s %s %s\n", p, quote(k), quote(v))
			}
			return nil
		})
	}
	return db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return walk([][]byte{append([]byte{}, name...)}, b)
		})
	})
}

// token reads one quoted string from the front of s.
func token(s string) ([]byte, string, error) {
	if !strings.HasPrefix(s, `"`) {
		return nil, s, fmt.Errorf("expected a quoted string at %q", s)
	}
	var out []byte
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return out, s[i+1:], nil
		case '\\':
			if i+1 < len(s) && (s[i+1] == '\\' || s[i+1] == '"') {
				out = append(out, s[i+1])
				i++
				continue
			}
			if i+3 < len(s) && s[i+1] == 'x' {
				v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
				if err != nil {
					return nil, s, err
				}
				out = append(out, byte(v))
				i += 3
				continue
			}
			return nil, s, fmt.Errorf("bad escape in %q", s)
		default:
			out = append(out, c)
		}
	}
	return nil, s, errors.New("unterminated string")
}

func oneToken(s string) ([]byte, error) {
	b, rest, err := token(s)
	if err == nil && rest != "" {
		err = fmt.Errorf("trailing %q", rest)
	}
	return b, err
}

func parsePath(s string) ([][]byte, error) {
	var path [][]byte
	for {
		b, rest, err := token(s)
		if err != nil {
			return nil, err
		}
		path = append(path, b)
		if rest == "" {
			return path, nil
		}
		if rest[0] != '/' {
			return nil, fmt.Errorf("expected '/' at %q", rest)
		}
		s = rest[1:]
	}
}

// fields splits on blanks outside quotes.
func fields(line string) []string {
	var out []string
	cur, quoted, any := []byte{}, false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		if quoted && c == '\\' && i+1 < len(line) {
			cur = append(cur, c, line[i+1])
			i++
			continue
		}
		if c == '"' {
			quoted = !quoted
		}
		if !quoted && (c == ' ' || c == '\t' || c == '\r') {
			if any {
				out = append(out, string(cur))
				cur, any = []byte{}, false
			}
			continue
		}
		cur = append(cur, c)
		any = true
	}
	if any {
		out = append(out, string(cur))
	}
	return out
}

func bucketAt(tx *bolt.Tx, path [][]byte, create bool, fill float64) (*bolt.Bucket, error) {
	var b *bolt.Bucket
	for i, name := range path {
		var next *bolt.Bucket
		var err error
		if create {
			if i == 0 {
				next, err = tx.CreateBucketIfNotExists(name)
			} else {
				next, err = b.CreateBucketIfNotExists(name)
			}
		} else if i == 0 {
			next = tx.Bucket(name)
		} else {
			next = b.Bucket(name)
		}
		if err != nil {
			return nil, err
		}
		if next == nil {
			return nil, fmt.Errorf("bucket %s not found", quotePath(path[:i+1]))
		}
		next.FillPercent = fill
		b = next
	}
	return b, nil
}

func apply(tx *bolt.Tx, f []string, fill float64) error {
	if len(f) < 2 {
		return errors.New("too few fields")
	}
	path, err := parsePath(f[1])
	if err != nil {
		return err
	}
	switch f[0] {
	case "bucket":
		b, err := bucketAt(tx, path, true, fill)
		if err != nil || len(f) == 2 {
			return err
		}
		seq, err := strconv.ParseUint(strings.TrimPrefix(f[2], "seq="), 10, 64)
		if err != nil {
			return err
		}
		return b.SetSequence(seq)
	case "kv", "put", "fill":
		if (f[0] == "fill") != (len(f) == 5) || len(f) < 4 {
			return errors.New("wrong field count")
		}
		k, err := oneToken(f[2])
		if err != nil {
			return err
		}
		var v []byte
		if f[0] == "fill" {
			n, err := strconv.Atoi(f[3])
			if err != nil {
				return err
			}
			c, err := strconv.ParseUint(f[4], 16, 8)
			if err != nil {
				return err
			}
			v = make([]byte, n)
			for i := range v {
				v[i] = byte(c)
			}
		} else if v, err = oneToken(f[3]); err != nil {
			return err
		}
		b, err := bucketAt(tx, path, true, fill)
		if err != nil {
			return err
		}
		return b.Put(k, v)
	case "del", "delete":
		k, err := oneToken(f[2])
		if err != nil {
			return err
		}
		b, err := bucketAt(tx, path, false, fill)
		if err != nil {
			return err
		}
		return b.Delete(k)
	case "delbucket":
		if len(path) == 1 {
			return tx.DeleteBucket(path[0])
		}
		b, err := bucketAt(tx, path[:len(path)-1], false, fill)
		if err != nil {
			return err
		}
		return b.DeleteBucket(path[len(path)-1])
	}
	return fmt.Errorf("unknown op %q", f[0])
}

func write(args []string) error {
	fs := flag.NewFlagSet("write", flag.ContinueOnError)
	pageSize := fs.Int("pagesize", 4096, "page size of a new file")
	freelist := fs.String("freelist", "array", "array or map")
	noSync := fs.Bool("nofreelistsync", false, "do not persist the freelist")
	fill := fs.Float64("fill", bolt.DefaultFillPercent, "fill percent of every bucket")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New("want FILE SPEC")
	}
	ft := bolt.FreelistArrayType
	if *freelist == "map" || *freelist == "hashmap" {
		ft = bolt.FreelistMapType
	}
	var in io.Reader = os.Stdin
	if fs.Arg(1) != "-" {
		f, err := os.Open(fs.Arg(1))
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	db, err := bolt.Open(fs.Arg(0), 0600, &bolt.Options{PageSize: *pageSize, FreelistType: ft, NoFreelistSync: *noSync})
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.Begin(true)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case line == "commit":
			if err = tx.Commit(); err == nil {
				tx, err = db.Begin(true)
			}
		default:
			err = apply(tx, fields(line), *fill)
		}
		if err != nil {
			if tx != nil {
				tx.Rollback()
			}
			return fmt.Errorf("line %d: %v", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
