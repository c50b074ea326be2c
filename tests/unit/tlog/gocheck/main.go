// Command gocheck verifies a log written by app.tlog with the Go reference implementation
// (golang.org/x/mod/sumdb/note and sumdb/tlog), so the Python tests never check our output
// with our own code. It reads <dir>/request.json and the files beside it (checkpoint, tiles,
// entry bundles) and prints its findings as JSON.
package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type inclusion struct {
	Index int64    `json:"index"`
	Entry []byte   `json:"entry"`
	Proof [][]byte `json:"proof"`
}

type consistency struct {
	Old     int64    `json:"old"`
	OldRoot []byte   `json:"oldRoot"`
	Proof   [][]byte `json:"proof"`
}

type request struct {
	Vkey        string        `json:"vkey"`
	Skey        string        `json:"skey"`
	SignText    string        `json:"signText"`
	Inclusion   []inclusion   `json:"inclusion"`
	Consistency []consistency `json:"consistency"`
	Bundles     []int64       `json:"bundles"`
}

type result struct {
	CheckpointError string     `json:"checkpointError"`
	SignerName      string     `json:"signerName"`
	SignerHash      string     `json:"signerHash"`
	Origin          string     `json:"origin"`
	Size            int64      `json:"size"`
	Root            []byte     `json:"root"`
	TreeHash        []byte     `json:"treeHash"`
	TreeHashError   string     `json:"treeHashError"`
	InclusionErrors []string   `json:"inclusionErrors"`
	GoRecordProofs  [][][]byte `json:"goRecordProofs"`
	ConsistencyErrs []string   `json:"consistencyErrors"`
	GoTreeProofs    [][][]byte `json:"goTreeProofs"`
	BundleErrors    []string   `json:"bundleErrors"`
	OurKeyNote      string     `json:"ourKeyNote"`
	GoVkey          string     `json:"goVkey"`
	GoNote          string     `json:"goNote"`
}

// dirTiles serves tiles from a C2SP tlog-tiles directory: the Go package names a tile
// tile/<H>/<L>/<N>[.p/<W>], the C2SP layout drops the fixed height 8.
type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return 8 }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		p := strings.Replace(t.Path(), "tile/8/", "tile/", 1)
		data, err := os.ReadFile(filepath.Join(d.dir, p))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (d dirTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func toHash(b []byte) tlog.Hash {
	var h tlog.Hash
	copy(h[:], b)
	return h
}

func toHashes(bs [][]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(bs))
	for i, b := range bs {
		out[i] = toHash(b)
	}
	return out
}

func fromHashes(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = append([]byte(nil), h[:]...)
	}
	return out
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	dir := os.Args[1]
	raw, err := os.ReadFile(filepath.Join(dir, "request.json"))
	if err != nil {
		fail(err)
	}
	var req request
	if err := json.Unmarshal(raw, &req); err != nil {
		fail(err)
	}
	var res result

	verifier, err := note.NewVerifier(req.Vkey)
	if err != nil {
		fail(fmt.Errorf("our vkey: %w", err))
	}
	msg, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		fail(err)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	res.CheckpointError = errString(err)
	if err != nil {
		out, _ := json.Marshal(res)
		os.Stdout.Write(out)
		return
	}
	res.SignerName = n.Sigs[0].Name
	res.SignerHash = fmt.Sprintf("%08x", n.Sigs[0].Hash)
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	res.Origin = lines[0]
	res.Size, err = strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail(err)
	}
	res.Root, err = base64.StdEncoding.DecodeString(lines[2])
	if err != nil {
		fail(err)
	}
	tree := tlog.Tree{N: res.Size, Hash: toHash(res.Root)}
	reader := tlog.TileHashReader(tree, dirTiles{dir})

	th, err := tlog.TreeHash(tree.N, reader)
	res.TreeHash = append([]byte(nil), th[:]...)
	res.TreeHashError = errString(err)

	for _, inc := range req.Inclusion {
		err := tlog.CheckRecord(toHashes(inc.Proof), tree.N, tree.Hash, inc.Index, tlog.RecordHash(inc.Entry))
		res.InclusionErrors = append(res.InclusionErrors, errString(err))
		p, err := tlog.ProveRecord(tree.N, inc.Index, reader)
		if err != nil {
			fail(fmt.Errorf("ProveRecord %d from our tiles: %w", inc.Index, err))
		}
		res.GoRecordProofs = append(res.GoRecordProofs, fromHashes(p))
	}
	for _, c := range req.Consistency {
		err := tlog.CheckTree(toHashes(c.Proof), tree.N, tree.Hash, c.Old, toHash(c.OldRoot))
		res.ConsistencyErrs = append(res.ConsistencyErrs, errString(err))
		p, err := tlog.ProveTree(tree.N, c.Old, reader)
		if err != nil {
			fail(fmt.Errorf("ProveTree %d from our tiles: %w", c.Old, err))
		}
		res.GoTreeProofs = append(res.GoTreeProofs, fromHashes(p))
	}

	// Entry bundles: uint16-prefixed entries whose record hashes are the level-0 hashes,
	// read through the verifying tile reader.
	for _, b := range req.Bundles {
		res.BundleErrors = append(res.BundleErrors, errString(checkBundle(dir, b, tree, reader)))
	}

	signer, err := note.NewSigner(req.Skey)
	if err != nil {
		fail(fmt.Errorf("our skey: %w", err))
	}
	signed, err := note.Sign(&note.Note{Text: req.SignText}, signer)
	if err != nil {
		fail(err)
	}
	res.OurKeyNote = string(signed)

	skey, vkey, err := note.GenerateKey(rand.Reader, "go.example/witness")
	if err != nil {
		fail(err)
	}
	goSigner, err := note.NewSigner(skey)
	if err != nil {
		fail(err)
	}
	goNote, err := note.Sign(&note.Note{Text: req.SignText}, goSigner)
	if err != nil {
		fail(err)
	}
	res.GoVkey, res.GoNote = vkey, string(goNote)

	out, err := json.Marshal(res)
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(out)
}

func checkBundle(dir string, b int64, tree tlog.Tree, reader tlog.HashReader) error {
	w := int64(256)
	if (b+1)*256 > tree.N {
		w = tree.N - b*256
	}
	t := tlog.Tile{H: 8, L: -1, N: b, W: int(w)}
	p := strings.Replace(t.Path(), "tile/8/data/", "tile/entries/", 1)
	data, err := os.ReadFile(filepath.Join(dir, p))
	if err != nil {
		return err
	}
	indexes := make([]int64, w)
	for i := range indexes {
		indexes[i] = tlog.StoredHashIndex(0, b*256+int64(i))
	}
	hashes, err := reader.ReadHashes(indexes)
	if err != nil {
		return err
	}
	for i := int64(0); i < w; i++ {
		if len(data) < 2 {
			return fmt.Errorf("bundle %s ends before entry %d", p, i)
		}
		size := int(binary.BigEndian.Uint16(data))
		data = data[2:]
		if len(data) < size {
			return fmt.Errorf("bundle %s: entry %d is cut", p, i)
		}
		if tlog.RecordHash(data[:size]) != hashes[i] {
			return fmt.Errorf("bundle %s: entry %d does not hash to the logged leaf", p, i)
		}
		data = data[size:]
	}
	if len(data) != 0 {
		return fmt.Errorf("bundle %s has trailing bytes", p)
	}
	return nil
}
