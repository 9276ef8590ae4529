// tlogcheck: an independent check of auditd's transparency log with Go's
// golang.org/x/mod/sumdb/tlog and sumdb/note (Debian: golang-golang-x-mod-dev), over HTTP as
// any tlog-tiles client reads it. It opens GET <log>/checkpoint with the verifier key (so the
// key id and the signature are checked by note), reads hash tiles through
// tlog.TileHashReader (every tile is checked against the checkpoint's root), reads every
// entry bundle and recomputes the root from the entries, and compares auditd's inclusion and
// consistency proofs with tlog's own ProveRecord / ProveTree, checking each with
// CheckRecord / CheckTree.
//
//	tlogcheck -log http://127.0.0.1:8082/v1/ [-tiles http://127.0.0.1:8082/] -vkey 'origin+id+key' [-token T] [-every K]
//
// -every K checks the proofs of every K-th tree size (1: all of them). Exit 0 when
// everything checks, 1 with the first problem on stderr.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var (
	logURL   = flag.String("log", "", "the log's URL prefix, ending in /")
	tilesURL = flag.String("tiles", "", "the tiles' URL prefix, ending in / (default: -log)")
	vkey     = flag.String("vkey", "", "the verifier key, <name>+<hex id>+<base64(0x01||pk)>")
	token    = flag.String("token", "", "bearer token, if the log wants one")
	every    = flag.Int64("every", 1, "check the proofs of every K-th tree size")
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tlogcheck: "+format+"\n", args...)
	os.Exit(1)
}

func get(path string) ([]byte, int) {
	base := *logURL
	if *tilesURL != "" && strings.HasPrefix(path, "tile/") {
		base = *tilesURL /* tiles where tlog-tiles puts them */
	}
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		fail("%v", err)
	}
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fail("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fail("GET %s: %v", path, err)
	}
	return body, resp.StatusCode
}

// The C2SP path of a tile: sumdb's "tile/8/L/N" without the height, "data" named "entries".
func tilePath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), "tile/8/")
	return "tile/" + strings.Replace(p, "data/", "entries/", 1)
}

// Tiles as served, kept once read (TileHashReader checks them against the root on every
// read all the same).
type tileReader struct{ seen map[string][]byte }

func (tileReader) Height() int { return 8 }

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		p := tilePath(t)
		if body, ok := r.seen[p]; ok {
			out[i] = body
			continue
		}
		body, status := get(p)
		if status != 200 {
			return nil, fmt.Errorf("GET %s: %d %s", p, status, body)
		}
		r.seen[p] = body
		out[i] = body
	}
	return out, nil
}

func (tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// The checkpoint: opened with the verifier, then its size and root.
func checkpoint() (tlog.Tree, string) {
	v, err := note.NewVerifier(*vkey)
	if err != nil {
		fail("verifier key: %v", err)
	}
	body, status := get("checkpoint")
	if status != 200 {
		fail("GET checkpoint: %d", status)
	}
	n, err := note.Open(body, note.VerifierList(v))
	if err != nil {
		fail("checkpoint does not open: %v\n%s", err, body)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != v.Name() {
		fail("checkpoint text: %q", n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("tree size %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		fail("root %q", lines[2])
	}
	var h tlog.Hash
	copy(h[:], root)
	return tlog.Tree{N: size, Hash: h}, lines[3]
}

// Every entry bundle: each entry hashes to the tile hash at its index, and the root of all
// of them, from hashes stored here, is the checkpoint's.
func checkEntries(tree tlog.Tree, thr tlog.HashReader) {
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for b := int64(0); b*256 < tree.N; b++ {
		w := tree.N - b*256
		if w > 256 {
			w = 256
		}
		t := tlog.Tile{H: 8, L: -1, N: b, W: int(w)}
		data, status := get(tilePath(t))
		if status != 200 {
			fail("GET %s: %d", tilePath(t), status)
		}
		// The level-0 hashes of the bundle's leaves, in one read (one tile, checked
		// against the root by the reader).
		idx := make([]int64, w)
		for i := range idx {
			idx[i] = tlog.StoredHashIndex(0, b*256+int64(i))
		}
		want, err := thr.ReadHashes(idx)
		if err != nil {
			fail("tile of bundle %d: %v", b, err)
		}
		for i := int64(0); i < w; i++ {
			if len(data) < 2 {
				fail("bundle %d: truncated at entry %d", b, i)
			}
			l := int(data[0])<<8 | int(data[1])
			if len(data) < 2+l {
				fail("bundle %d: truncated at entry %d", b, i)
			}
			rec := tlog.RecordHash(data[2 : 2+l])
			data = data[2+l:]
			leaf := b*256 + i
			if want[i] != rec {
				fail("entry %d: its hash is not the tile's", leaf)
			}
			hs, err := tlog.StoredHashesForRecordHash(leaf, rec, reader)
			if err != nil {
				fail("%v", err)
			}
			stored = append(stored, hs...)
		}
		if len(data) != 0 {
			fail("bundle %d: %d bytes after its entries", b, len(data))
		}
	}
	root, err := tlog.TreeHash(tree.N, reader)
	if err != nil || root != tree.Hash {
		fail("root recomputed from the entries %v, checkpoint %v (%v)", root, tree.Hash, err)
	}
}

func decodeHashes(body []byte, what string) []tlog.Hash {
	var doc struct {
		Hashes []string `json:"hashes"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		fail("%s: %v: %s", what, err, body)
	}
	out := make([]tlog.Hash, len(doc.Hashes))
	for i, s := range doc.Hashes {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != 32 {
			fail("%s: hash %q", what, s)
		}
		copy(out[i][:], b)
	}
	return out
}

func sameProof(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i][:], b[i][:]) {
			return false
		}
	}
	return true
}

// Proofs at tree size n: auditd's equal tlog's, and they check.
func checkProofs(n int64, thr tlog.HashReader) int {
	th, err := tlog.TreeHash(n, thr)
	if err != nil {
		fail("tree hash %d: %v", n, err)
	}
	m := (n * 7919) % n
	mine, err := tlog.ProveRecord(n, m, thr)
	if err != nil {
		fail("ProveRecord(%d, %d): %v", n, m, err)
	}
	body, status := get(fmt.Sprintf("proofs/inclusion?seq=%d&tree_size=%d", m+1, n))
	theirs := decodeHashes(body, "inclusion")
	if status != 200 || !sameProof(mine, theirs) {
		fail("inclusion of leaf %d in %d: auditd %s, tlog %v", m, n, body, mine)
	}
	leaf, err := thr.ReadHashes([]int64{tlog.StoredHashIndex(0, m)})
	if err != nil || tlog.CheckRecord(theirs, n, th, m, leaf[0]) != nil {
		fail("inclusion of leaf %d in %d does not check", m, n)
	}
	old := 1 + (n*104729)%n
	oldHash, err := tlog.TreeHash(old, thr)
	if err != nil {
		fail("%v", err)
	}
	mineT, err := tlog.ProveTree(n, old, thr)
	if err != nil {
		fail("ProveTree(%d, %d): %v", n, old, err)
	}
	body, status = get(fmt.Sprintf("proofs/consistency?from=%d&to=%d", old, n))
	theirsT := decodeHashes(body, "consistency")
	if status != 200 || !sameProof(mineT, theirsT) {
		fail("consistency %d..%d: auditd %s, tlog %v", old, n, body, mineT)
	}
	if old < n && tlog.CheckTree(theirsT, n, th, old, oldHash) != nil {
		fail("consistency %d..%d does not check", old, n)
	}
	return 2
}

func main() {
	flag.Parse()
	if *logURL == "" || *vkey == "" || *every < 1 {
		flag.Usage()
		os.Exit(2)
	}
	tree, chain := checkpoint()
	thr := tlog.TileHashReader(tree, tileReader{seen: map[string][]byte{}})
	checkEntries(tree, thr)
	proofs := 0
	for n := int64(1); n <= tree.N; n += *every {
		proofs += checkProofs(n, thr)
	}
	if (tree.N-1)%*every != 0 {
		proofs += checkProofs(tree.N, thr)
	}
	fmt.Printf("ok: tree of %d leaves, %s, %d proofs equal to tlog's\n", tree.N, chain, proofs)
}
