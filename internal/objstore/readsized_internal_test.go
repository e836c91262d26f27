package objstore

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// readSized returns every byte of the reader whatever size was announced: exact, unknown, too small, too
// big; and a read error after some bytes is returned, not taken for the end.
func TestReadSizedWhateverTheAnnouncedSize(t *testing.T) {
	body := bytes.Repeat([]byte("flamestream;"), 3000) // 36,000 bytes
	for _, size := range []int64{-1, 0, 1, 8 << 10, int64(len(body)) - 1, int64(len(body)), int64(len(body)) + 1, 1 << 20} {
		// OneByteReader: many reads, each ending short of the buffer.
		got, err := readSized(iotest.OneByteReader(bytes.NewReader(body)), size)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("size %d: %d bytes, %v", size, len(got), err)
		}
	}
	boom := errors.New("connection reset")
	got, err := readSized(io.MultiReader(bytes.NewReader(body[:100]), iotest.ErrReader(boom)), int64(len(body)))
	if !errors.Is(err, boom) || len(got) != 100 {
		t.Errorf("failing reader: %d bytes, %v", len(got), err)
	}
}
