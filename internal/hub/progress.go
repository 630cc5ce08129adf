package hub

import (
	"fmt"
	"io"
	"time"
)

// progress writes a one-line progress report for a transfer, rewritten in
// place (carriage return) at most every refresh.
type progress struct {
	w          io.Writer
	name       string
	start      time.Time
	last       time.Time
	base, done int64 // bytes present before this transfer, bytes received
	total      int64 // -1 if unknown
}

const refresh = 200 * time.Millisecond

func newProgress(w io.Writer, name string, have, total int64) *progress {
	now := time.Now()
	return &progress{w: w, name: name, start: now, base: have, total: total}
}

// Write counts received bytes.
func (p *progress) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if now := time.Now(); now.Sub(p.last) >= refresh {
		p.last = now
		p.print()
	}
	return len(b), nil
}

func (p *progress) print() {
	rate := float64(p.done) / max(time.Since(p.start).Seconds(), 1e-3)
	have := p.base + p.done
	if p.total > 0 {
		fmt.Fprintf(p.w, "\r%-32s %10s / %-10s %5.1f%% %10s/s ", p.name, bytesString(have), bytesString(p.total), 100*float64(have)/float64(p.total), bytesString(int64(rate)))
	} else {
		fmt.Fprintf(p.w, "\r%-32s %10s %10s/s ", p.name, bytesString(have), bytesString(int64(rate)))
	}
}

// finish prints the final state and ends the line.
func (p *progress) finish() {
	p.print()
	fmt.Fprintln(p.w)
}

// bytesString formats a byte count with a binary unit.
func bytesString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
