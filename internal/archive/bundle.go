// Package archive packs the raw uploads of one service and hour into bundles: one object holding many
// uploads, zstd-compressed together, with an index to read any one of them back by its original key.
//
// Successive profiles of a service are very much alike (the same code, the same stacks, other counts), so
// compressed together they take several times less room than one gzip object each. A bundle is cut into
// frames of about FrameBytes of uploads each, compressed independently so that one upload is read with a
// range read of its frame, not the whole bundle; every frame is compressed with the bundle's dictionary (the
// start of its first uploads, a zstd raw-content dictionary), so a frame's first upload still finds its
// matches.
//
// Layout (integers little-endian):
//
//	"FSB1"
//	frames           zstd frames, each with its content checksum
//	dictionary       a zstd frame: uvarint length, the dictionary (may be empty), the stack table (lines.go)
//	index            a zstd frame: see encodeIndex
//	trailer (36 B)   dictOff u64, dictLen u32, indexOff u64, indexLen u32, indexCRC u32, version u32, "FSB1"
//
// Every upload's inflated bytes carry a CRC-32C in the index and every frame a zstd checksum: a truncated
// or altered bundle is refused (ErrCorrupt), never misread.
package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// ErrCorrupt is returned for a bundle that does not read back as written.
var ErrCorrupt = errors.New("archive bundle corrupt")

const (
	magic       = "FSB1"
	trailerSize = 36
	version     = 1
	dictID      = 0x46534231 // any id: the dictionary travels with its bundle
)

// Kinds of entries: how the stored object is rebuilt from the bytes kept.
const (
	kindGzip = 1 // the object was gzip: its inflated bytes are kept and it is gzipped again on read
	kindRaw  = 2 // anything else is kept as it was
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options tune a Writer; the zero value takes the defaults.
type Options struct {
	// FrameBytes is the inflated bytes of uploads per frame (default 1 MiB): a read inflates one frame.
	FrameBytes int
	// DictBytes is the dictionary's size (default 128 KiB), taken from the first uploads.
	DictBytes int
	// Level is the zstd level (default zstd.SpeedDefault: once stacks are numbered the better levels gain
	// under 1 % and cost 6–50 % more CPU, measured).
	Level zstd.EncoderLevel
	// MaxObjectBytes bounds an upload's inflated size (default 256 MiB): a gzip bomb is refused.
	MaxObjectBytes int64
	// MaxStackBytes bounds the bundle's table of distinct stacks (default 8 MiB); stacks past it are kept
	// in the uploads themselves.
	MaxStackBytes int
}

func (o *Options) defaults() {
	if o.FrameBytes <= 0 {
		o.FrameBytes = 1 << 20
	}
	if o.DictBytes <= 0 {
		o.DictBytes = 128 << 10
	}
	if o.Level == 0 {
		o.Level = zstd.SpeedDefault
	}
	if o.MaxObjectBytes <= 0 {
		o.MaxObjectBytes = 256 << 20
	}
	if o.MaxStackBytes <= 0 {
		o.MaxStackBytes = 8 << 20
	}
}

// Entry is one upload of a bundle.
type Entry struct {
	Key  string
	kind uint8
	// frame is the index of its frame; off and n its place in the frame's inflated bytes.
	frame  uint32
	off, n uint32
	// size is the upload's own size (n is what the frame keeps of it), crc the CRC-32C of its bytes.
	size uint32
	crc  uint32
}

type frame struct {
	off, n int64 // in the bundle
	plain  int64
}

// Writer builds one bundle in memory: its output (the compressed bundle), one frame's inflated uploads and
// the index. Add the uploads in any order; the bundle is deterministic for the same uploads in the same
// order and the same Options.
type Writer struct {
	o       Options
	out     bytes.Buffer
	plain   []byte // the current frame's inflated uploads
	dict    []byte
	enc     *zstd.Encoder
	zr      *gzip.Reader
	entries []Entry
	frames  []frame
	seen    map[string]bool
	inflate []byte
	stacks  stackTable
	encoded []byte
}

// NewWriter starts a bundle.
func NewWriter(o Options) *Writer {
	o.defaults()
	w := &Writer{o: o, seen: map[string]bool{}, stacks: stackTable{max: o.MaxStackBytes}}
	w.out.WriteString(magic)
	return w
}

// Len is the bundle's size so far, a frame still open not counted.
func (w *Writer) Len() int { return w.out.Len() }

// Add appends the stored object body under key and returns its inflated bytes (valid until the next Add),
// which the bundle will give back: the object's own bytes, or for a gzip object its inflated content.
func (w *Writer) Add(key string, body []byte) ([]byte, error) {
	if w.seen[key] {
		return nil, fmt.Errorf("archive: key %s added twice", key)
	}
	kind := uint8(kindRaw)
	content := body
	if len(body) >= 2 && body[0] == 0x1f && body[1] == 0x8b {
		plain, err := w.gunzip(body)
		if err == nil {
			kind, content = kindGzip, plain
		} // a body that only looks like gzip is kept as it is
	}
	if int64(len(content)) > w.o.MaxObjectBytes || len(content) > 1<<31 {
		return nil, fmt.Errorf("archive: object %s is %d bytes, above the limit %d", key, len(content), w.o.MaxObjectBytes)
	}
	stored := content
	if enc, ok := encodeLines(w.encoded[:0], content, &w.stacks); ok {
		w.encoded = enc
		if len(enc) < len(content) {
			stored, kind = enc, kind|lineEncoded
		}
	}
	if len(w.plain) > 0 && len(w.plain)+len(stored) > w.o.FrameBytes {
		if err := w.flush(); err != nil {
			return nil, err
		}
	}
	w.seen[key] = true
	w.entries = append(w.entries, Entry{Key: key, kind: kind, frame: uint32(len(w.frames)), off: uint32(len(w.plain)),
		n: uint32(len(stored)), size: uint32(len(content)), crc: crc32.Checksum(content, castagnoli)})
	w.plain = append(w.plain, stored...)
	return content, nil
}

func (w *Writer) gunzip(body []byte) ([]byte, error) {
	var err error
	if w.zr == nil {
		w.zr, err = gzip.NewReader(bytes.NewReader(body))
	} else {
		err = w.zr.Reset(bytes.NewReader(body))
	}
	if err != nil {
		return nil, err
	}
	w.inflate = w.inflate[:0]
	buf := bytes.NewBuffer(w.inflate)
	if _, err := io.Copy(buf, io.LimitReader(w.zr, w.o.MaxObjectBytes+1)); err != nil {
		return nil, err
	}
	w.inflate = buf.Bytes()
	return w.inflate, nil
}

// flush compresses the current frame. The first frame also sets the dictionary: the start of its uploads.
func (w *Writer) flush() error {
	if len(w.plain) == 0 {
		return nil
	}
	if w.enc == nil {
		w.dict = append([]byte(nil), w.plain[:min(len(w.plain), w.o.DictBytes)]...)
		opts := []zstd.EOption{zstd.WithEncoderLevel(w.o.Level), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true),
			zstd.WithWindowSize(windowFor(w.o.FrameBytes + len(w.dict)))}
		if len(w.dict) > 0 {
			opts = append(opts, zstd.WithEncoderDictRaw(dictID, w.dict))
		}
		enc, err := zstd.NewWriter(nil, opts...)
		if err != nil {
			return fmt.Errorf("archive: zstd: %w", err)
		}
		w.enc = enc
	}
	off := int64(w.out.Len())
	b := w.enc.EncodeAll(w.plain, w.out.AvailableBuffer())
	w.out.Write(b)
	w.frames = append(w.frames, frame{off: off, n: int64(len(b)), plain: int64(len(w.plain))})
	w.plain = w.plain[:0]
	return nil
}

// windowFor is the smallest zstd window (a power of two, 1 KiB to 64 MiB) holding n bytes.
func windowFor(n int) int {
	w := 1 << 10
	for w < n && w < 64<<20 {
		w <<= 1
	}
	return w
}

// Finish closes the last frame and returns the whole bundle.
func (w *Writer) Finish() ([]byte, error) {
	if err := w.flush(); err != nil {
		return nil, err
	}
	plainEnc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, fmt.Errorf("archive: zstd: %w", err)
	}
	defer plainEnc.Close()
	dictOff := int64(w.out.Len())
	// The dictionary and the stack table travel in one section, read together with the index.
	sec := binary.AppendUvarint(nil, uint64(len(w.dict)))
	sec = append(sec, w.dict...)
	sec = encodeStacks(sec, w.stacks.list)
	w.out.Write(plainEnc.EncodeAll(sec, nil))
	dictLen := int64(w.out.Len()) - dictOff
	idx := plainEnc.EncodeAll(encodeIndex(w.entries, w.frames), nil)
	indexOff := int64(w.out.Len())
	w.out.Write(idx)
	var t [trailerSize]byte
	binary.LittleEndian.PutUint64(t[0:], uint64(dictOff))
	binary.LittleEndian.PutUint32(t[8:], uint32(dictLen))
	binary.LittleEndian.PutUint64(t[12:], uint64(indexOff))
	binary.LittleEndian.PutUint32(t[20:], uint32(len(idx)))
	binary.LittleEndian.PutUint32(t[24:], crc32.Checksum(idx, castagnoli))
	binary.LittleEndian.PutUint32(t[28:], version)
	copy(t[32:], magic)
	w.out.Write(t[:])
	if w.enc != nil {
		w.enc.Close()
	}
	return w.out.Bytes(), nil
}

// encodeIndex writes the frames then the entries sorted by key, all as uvarints, keys length-prefixed.
func encodeIndex(entries []Entry, frames []frame) []byte {
	sorted := append([]Entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Key < sorted[j].Key })
	b := binary.AppendUvarint(nil, uint64(len(frames)))
	for _, f := range frames {
		b = binary.AppendUvarint(b, uint64(f.off))
		b = binary.AppendUvarint(b, uint64(f.n))
		b = binary.AppendUvarint(b, uint64(f.plain))
	}
	b = binary.AppendUvarint(b, uint64(len(sorted)))
	for _, e := range sorted {
		b = binary.AppendUvarint(b, uint64(len(e.Key)))
		b = append(b, e.Key...)
		b = append(b, e.kind)
		b = binary.AppendUvarint(b, uint64(e.frame))
		b = binary.AppendUvarint(b, uint64(e.off))
		b = binary.AppendUvarint(b, uint64(e.n))
		b = binary.AppendUvarint(b, uint64(e.size))
		b = binary.LittleEndian.AppendUint32(b, e.crc)
	}
	return b
}

// Index is a bundle's table of contents, with its dictionary: what a reader keeps of a bundle to read
// any upload of it with one range read.
type Index struct {
	Entries []Entry // sorted by key
	frames  []frame
	stacks  [][]byte
	dec     *zstd.Decoder
	size    int64 // the bundle's size
	// sectionBytes is the inflated dictionary and stack table (the stacks point into it).
	sectionBytes int
}

// Bytes approximates the memory the index holds (for caches).
func (x *Index) Bytes() int {
	n := 64*len(x.Entries) + 24*len(x.frames) + 1<<16 + 24*len(x.stacks) + x.sectionBytes
	for _, e := range x.Entries {
		n += len(e.Key)
	}
	return n
}

// Find returns the entry of key.
func (x *Index) Find(key string) (Entry, bool) {
	i := sort.Search(len(x.Entries), func(i int) bool { return x.Entries[i].Key >= key })
	if i < len(x.Entries) && x.Entries[i].Key == key {
		return x.Entries[i], true
	}
	return Entry{}, false
}

// FrameRange is where the frame of e lies in the bundle.
func (x *Index) FrameRange(e Entry) (off, n int64) {
	f := x.frames[e.frame]
	return f.off, f.n
}

// FrameOf is the index of e's frame (frames of the same index can share one inflated frame).
func (e Entry) FrameOf() uint32 { return e.frame }

// Inflate decompresses one frame read from the bundle (the bytes at FrameRange).
func (x *Index) Inflate(e Entry, compressed []byte) ([]byte, error) {
	f := x.frames[e.frame]
	if int64(len(compressed)) != f.n {
		return nil, fmt.Errorf("%w: frame %d is %d bytes, want %d", ErrCorrupt, e.frame, len(compressed), f.n)
	}
	plain, err := x.dec.DecodeAll(compressed, make([]byte, 0, f.plain))
	if err != nil {
		return nil, fmt.Errorf("%w: frame %d: %v", ErrCorrupt, e.frame, err)
	}
	if int64(len(plain)) != f.plain {
		return nil, fmt.Errorf("%w: frame %d inflates to %d bytes, want %d", ErrCorrupt, e.frame, len(plain), f.plain)
	}
	return plain, nil
}

// Object rebuilds the stored object of e from its inflated frame: the object's bytes, a gzip object as a
// gzip of its inflated content (the bytes differ from the original's, the content does not).
func (x *Index) Object(e Entry, framePlain []byte) ([]byte, error) {
	content, err := x.Content(e, framePlain)
	if err != nil {
		return nil, err
	}
	if e.kind&^lineEncoded == kindRaw {
		return append([]byte(nil), content...), nil
	}
	var buf bytes.Buffer
	buf.Grow(len(content)/4 + 64)
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(content); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Content is e's inflated bytes within its inflated frame, checked against its CRC.
func (x *Index) Content(e Entry, framePlain []byte) ([]byte, error) {
	end := uint64(e.off) + uint64(e.n)
	if end > uint64(len(framePlain)) {
		return nil, fmt.Errorf("%w: %s lies past its frame", ErrCorrupt, e.Key)
	}
	content := framePlain[e.off:end]
	if e.kind&lineEncoded != 0 {
		var err error
		if content, err = decodeLines(content, x.stacks, int(e.size)); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, e.Key, err)
		}
	}
	if len(content) != int(e.size) || crc32.Checksum(content, castagnoli) != e.crc {
		return nil, fmt.Errorf("%w: %s fails its checksum", ErrCorrupt, e.Key)
	}
	return content, nil
}

// Close releases the index's decoder.
func (x *Index) Close() {
	if x.dec != nil {
		x.dec.Close()
	}
}

// Trailer is the fixed-size end of a bundle: read it first (the last TrailerSize bytes), then the index
// and dictionary at the places it gives (IndexRange).
const TrailerSize = trailerSize

// IndexRange parses the trailer of a bundle of size bytes and returns the byte range holding the
// dictionary and the index (they are adjacent).
func IndexRange(trailer []byte, size int64) (off, n int64, err error) {
	t, err := parseTrailer(trailer, size)
	if err != nil {
		return 0, 0, err
	}
	return t.dictOff, size - trailerSize - t.dictOff, nil
}

type trailerInfo struct {
	dictOff, dictLen, indexOff, indexLen int64
	crc                                  uint32
}

func parseTrailer(t []byte, size int64) (trailerInfo, error) {
	var ti trailerInfo
	if len(t) != trailerSize || size < int64(len(magic)+trailerSize) || string(t[32:]) != magic {
		return ti, fmt.Errorf("%w: no trailer (truncated?)", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(t[28:]); v != version {
		return ti, fmt.Errorf("%w: version %d", ErrCorrupt, v)
	}
	ti.dictOff = int64(binary.LittleEndian.Uint64(t[0:]))
	ti.dictLen = int64(binary.LittleEndian.Uint32(t[8:]))
	ti.indexOff = int64(binary.LittleEndian.Uint64(t[12:]))
	ti.indexLen = int64(binary.LittleEndian.Uint32(t[20:]))
	ti.crc = binary.LittleEndian.Uint32(t[24:])
	if ti.dictOff < int64(len(magic)) || ti.dictOff+ti.dictLen != ti.indexOff || ti.indexOff+ti.indexLen != size-trailerSize {
		return ti, fmt.Errorf("%w: trailer does not match the bundle's size %d", ErrCorrupt, size)
	}
	return ti, nil
}

// ParseIndex reads the index of a bundle of size bytes from its trailer and the bytes at IndexRange.
func ParseIndex(tail []byte, trailer []byte, size int64) (*Index, error) {
	ti, err := parseTrailer(trailer, size)
	if err != nil {
		return nil, err
	}
	if int64(len(tail)) != ti.dictLen+ti.indexLen {
		return nil, fmt.Errorf("%w: index range is %d bytes, want %d", ErrCorrupt, len(tail), ti.dictLen+ti.indexLen)
	}
	rawIdx := tail[ti.dictLen:]
	if crc32.Checksum(rawIdx, castagnoli) != ti.crc {
		return nil, fmt.Errorf("%w: index fails its checksum", ErrCorrupt)
	}
	plainDec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return nil, err
	}
	defer plainDec.Close()
	sec, err := plainDec.DecodeAll(tail[:ti.dictLen], nil)
	if err != nil {
		return nil, fmt.Errorf("%w: dictionary: %v", ErrCorrupt, err)
	}
	dl, k := binary.Uvarint(sec)
	if k <= 0 || dl > uint64(len(sec)-k) {
		return nil, fmt.Errorf("%w: dictionary length", ErrCorrupt)
	}
	dict := sec[k : k+int(dl)]
	stacks, err := decodeStacks(sec[k+int(dl):])
	if err != nil {
		return nil, fmt.Errorf("%w: stack table: %v", ErrCorrupt, err)
	}
	idx, err := plainDec.DecodeAll(rawIdx, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: index: %v", ErrCorrupt, err)
	}
	x := &Index{size: size, stacks: stacks, sectionBytes: len(sec)}
	if err := x.decodeIndex(idx, ti.dictOff); err != nil {
		return nil, err
	}
	opts := []zstd.DOption{zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxMemory(1 << 30), zstd.WithDecoderMaxWindow(128 << 20)}
	if len(dict) > 0 {
		opts = append(opts, zstd.WithDecoderDictRaw(dictID, dict))
	}
	if x.dec, err = zstd.NewReader(nil, opts...); err != nil {
		return nil, err
	}
	return x, nil
}

func (x *Index) decodeIndex(b []byte, framesEnd int64) error {
	bad := func(what string) error { return fmt.Errorf("%w: index: %s", ErrCorrupt, what) }
	r := b
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(r)
		if n <= 0 {
			return 0, false
		}
		r = r[n:]
		return v, true
	}
	nf, ok := uv()
	if !ok || nf > uint64(len(b)) {
		return bad("frame count")
	}
	next := int64(len(magic))
	for range nf {
		off, ok1 := uv()
		n, ok2 := uv()
		plain, ok3 := uv()
		if !ok1 || !ok2 || !ok3 || int64(off) != next || int64(n) <= 0 || int64(off+n) > framesEnd || plain > 1<<32 {
			return bad("frame table")
		}
		next = int64(off + n)
		x.frames = append(x.frames, frame{off: int64(off), n: int64(n), plain: int64(plain)})
	}
	if next != framesEnd {
		return bad("frames do not end where the dictionary starts")
	}
	ne, ok := uv()
	if !ok || ne > uint64(len(b)) {
		return bad("entry count")
	}
	x.Entries = make([]Entry, 0, ne)
	for range ne {
		kl, ok := uv()
		if !ok || kl > uint64(len(r)) {
			return bad("key")
		}
		e := Entry{Key: string(r[:kl])}
		r = r[kl:]
		if len(r) < 1 {
			return bad("kind")
		}
		e.kind = r[0]
		r = r[1:]
		f, ok1 := uv()
		off, ok2 := uv()
		n, ok3 := uv()
		size, ok4 := uv()
		if base := e.kind &^ lineEncoded; !ok1 || !ok2 || !ok3 || !ok4 || len(r) < 4 || f >= uint64(len(x.frames)) ||
			off+n > uint64(x.frames[f].plain) || size > 1<<31 || (base != kindGzip && base != kindRaw) {
			return bad("entry of " + e.Key)
		}
		e.frame, e.off, e.n, e.size = uint32(f), uint32(off), uint32(n), uint32(size)
		e.crc = binary.LittleEndian.Uint32(r)
		r = r[4:]
		if len(x.Entries) > 0 && x.Entries[len(x.Entries)-1].Key >= e.Key {
			return bad("keys out of order")
		}
		x.Entries = append(x.Entries, e)
	}
	if len(r) != 0 {
		return bad("trailing bytes")
	}
	return nil
}

// Bundle is a whole bundle in memory.
type Bundle struct {
	*Index
	data []byte
}

// Open parses a whole bundle.
func Open(data []byte) (*Bundle, error) {
	size := int64(len(data))
	if size < int64(len(magic)+trailerSize) || string(data[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: not a bundle", ErrCorrupt)
	}
	off, n, err := IndexRange(data[size-trailerSize:], size)
	if err != nil {
		return nil, err
	}
	x, err := ParseIndex(data[off:off+n], data[size-trailerSize:], size)
	if err != nil {
		return nil, err
	}
	return &Bundle{Index: x, data: data}, nil
}

// Each calls fn with every entry and its inflated content (valid during the call), frame by frame.
func (b *Bundle) Each(fn func(e Entry, content []byte) error) error {
	byFrame := make([][]Entry, len(b.frames))
	for _, e := range b.Entries {
		byFrame[e.frame] = append(byFrame[e.frame], e)
	}
	for fi, es := range byFrame {
		if len(es) == 0 {
			continue
		}
		f := b.frames[fi]
		plain, err := b.Inflate(es[0], b.data[f.off:f.off+f.n])
		if err != nil {
			return err
		}
		for _, e := range es {
			c, err := b.Content(e, plain)
			if err != nil {
				return err
			}
			if err := fn(e, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// Get returns the stored object of key (see Index.Object).
func (b *Bundle) Get(key string) ([]byte, bool, error) {
	e, ok := b.Find(key)
	if !ok {
		return nil, false, nil
	}
	off, n := b.FrameRange(e)
	plain, err := b.Inflate(e, b.data[off:off+n])
	if err != nil {
		return nil, true, err
	}
	obj, err := b.Object(e, plain)
	return obj, true, err
}
