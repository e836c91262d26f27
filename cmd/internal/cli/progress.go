package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Progress is the progress line of a long command (reindex, backfill, soak, an indexer replaying). On a
// terminal it rewrites one line of its writer in place, at most once a second, so that an operator sees the
// command move without the scrollback filling up; anywhere else (a log file, CI) it writes nothing until
// Done, which writes the summary line, so that a log holds one line per run instead of hundreds of redraws.
// Its methods may be called from several goroutines.
type Progress struct {
	w     io.Writer
	tty   bool
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	last    time.Time // when a line was last drawn (zero: never)
	drawn   bool      // a progress line is on the screen and has no newline yet
	partial []byte    // the start of a line written through Write
}

// NewProgress returns the progress line of w (the command's Diag, stderr).
func NewProgress(w io.Writer) *Progress { return newProgress(w, IsTerminal(w), time.Second, time.Now) }

// NewProgressFor returns the progress line of w drawn as on a terminal or not, as the caller decides
// (a test, a caller that knows better than the file mode).
func NewProgressFor(w io.Writer, terminal bool) *Progress {
	return newProgress(w, terminal, time.Second, time.Now)
}

// NewProgressAt is NewProgressFor with the clock now, which decides when a line may be drawn again (a
// test, or a caller that draws on its own clock).
func NewProgressAt(w io.Writer, terminal bool, now func() time.Time) *Progress {
	return newProgress(w, terminal, time.Second, now)
}

func newProgress(w io.Writer, tty bool, every time.Duration, now func() time.Time) *Progress {
	return &Progress{w: w, tty: tty, every: every, now: now}
}

// IsTerminal reports whether w is a terminal (a character device), as the logger decides on colours.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Update sets the progress line. On a terminal it is drawn unless the last one was drawn less than a
// second ago (the next Update after that shows the news); elsewhere it is dropped.
func (p *Progress) Update(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.update(fmt.Sprintf(format, args...))
}

func (p *Progress) update(line string) {
	if !p.tty {
		return
	}
	now := p.now()
	if !p.last.IsZero() && now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	p.drawn = true
	// \r goes back to the start of the line, ESC[K clears what a longer previous line left.
	fmt.Fprintf(p.w, "\r\x1b[K%s", oneLine(line))
}

// Done ends the progress: it writes the summary line (after clearing the progress line on a terminal)
// followed by a newline, whether or not w is a terminal.
func (p *Progress) Done(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	fmt.Fprintln(p.w, oneLine(fmt.Sprintf(format, args...)))
}

// Clear takes the progress line off a terminal, so that the next output (a report, an error) starts on a
// clean line.
func (p *Progress) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
}

func (p *Progress) clear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}

// Write makes p an io.Writer for code that reports its progress in lines (soak.Config.Progress): each
// complete line written becomes the progress line, as with Update.
func (p *Progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(b)
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			// Bounded: a writer that never ends its line keeps only its last 4 KiB.
			p.partial = append(p.partial, b...)
			if len(p.partial) > 4096 {
				p.partial = append(p.partial[:0], p.partial[len(p.partial)-4096:]...)
			}
			return n, nil
		}
		line := string(append(p.partial, b[:i]...))
		p.partial = p.partial[:0]
		b = b[i+1:]
		if strings.TrimSpace(line) != "" {
			p.update(line)
		}
	}
}

// oneLine keeps a progress line on one line: a newline inside it would break the redraw.
func oneLine(s string) string {
	return strings.TrimSpace(strings.NewReplacer("\r", " ", "\n", " ").Replace(s))
}
