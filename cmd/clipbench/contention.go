package main

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file is the peers kit's contention rule (lib/procstat.mjs and the
// end of lib/npy.mjs): each timed run is bracketed by reads of /proc/stat
// and of this process's CPU time, and the cores used meanwhile by other
// processes (plus hypervisor steal) decide whether the run counts.

// userHZ is the unit of /proc/stat: USER_HZ, 100 on every Linux
// architecture Go supports (the kernel scales its ticks to it).
const userHZ = 100

// cpuSnapshot is the machine's and this process's CPU time at an instant.
type cpuSnapshot struct {
	wall  time.Time
	busy  float64 // seconds of user+nice+system+irq+softirq, all CPUs
	steal float64 // seconds stolen by the hypervisor, all CPUs
	own   float64 // this process's user+system seconds
}

// snapshot reads /proc/stat's first line and getrusage(RUSAGE_SELF).
func snapshot() (cpuSnapshot, error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSnapshot{}, fmt.Errorf("contention: %w", err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuSnapshot{}, fmt.Errorf("contention: unexpected /proc/stat line %q", line)
	}
	var v [8]float64 // user nice system idle iowait irq softirq steal
	for i := range v {
		if v[i], err = strconv.ParseFloat(f[i+1], 64); err != nil {
			return cpuSnapshot{}, fmt.Errorf("contention: /proc/stat field %d: %w", i+1, err)
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuSnapshot{}, fmt.Errorf("contention: getrusage: %w", err)
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return cpuSnapshot{
		wall:  time.Now(),
		busy:  (v[0] + v[1] + v[2] + v[5] + v[6]) / userHZ,
		steal: v[7] / userHZ,
		own:   tv(ru.Utime) + tv(ru.Stime),
	}, nil
}

// round rounds x to the given number of decimals, as the kit's toFixed.
func round(x float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(x*p) / p
}

// busyOthers returns the cores other processes used between a and b plus
// the cores stolen by the hypervisor, each rounded to 0.01 as the kit does.
func busyOthers(a, b cpuSnapshot) float64 {
	wall := max(b.wall.Sub(a.wall).Seconds(), 1e-9)
	others := round(max(0, ((b.busy-a.busy)-(b.own-a.own))/wall), 2)
	steal := round((b.steal-a.steal)/wall, 2)
	return others + steal
}

// quiet is the rule's knobs: a run is clean when busy ≤ maxBusy; runs go
// on until enough are clean or maxFactor times the wanted number were made.
type quiet struct {
	maxBusy   float64
	maxFactor int
}

// quietFromEnv reads QUIET_MAX_BUSY [0.3] and QUIET_MAX_FACTOR [3], as the
// kit's peers do.
func quietFromEnv(getenv func(string) string) (quiet, error) {
	q := quiet{maxBusy: 0.3, maxFactor: 3}
	if s := getenv("QUIET_MAX_BUSY"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 0 {
			return q, fmt.Errorf("QUIET_MAX_BUSY=%q: want a non-negative number", s)
		}
		q.maxBusy = v
	}
	if s := getenv("QUIET_MAX_FACTOR"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return q, fmt.Errorf("QUIET_MAX_FACTOR=%q: want a positive integer", s)
		}
		q.maxFactor = v
	}
	return q, nil
}

// timedRun is one timed call and the contention during it.
type timedRun struct {
	ms, busy float64
}

// needMore reports whether another run is due: fewer than runs clean ones
// so far, and fewer than runs·maxFactor in all.
func (q quiet) needMore(all []timedRun, runs int) bool {
	clean := 0
	for _, r := range all {
		if r.busy <= q.maxBusy {
			clean++
		}
	}
	return clean < runs && len(all) < runs*q.maxFactor
}

// selection is the outcome of the rule for one task.
type selection struct {
	times      []float64 // the runs the median is taken over
	othersMean float64   // their mean busy, rounded to 0.01
	allTimes   []float64 // every timed run, ms rounded to 0.001
	allBusy    []float64 // every run's busy, rounded to 0.01
	discarded  int
}

// selectRuns keeps the clean runs, or the runs least disturbed ones when
// fewer were clean.
func (q quiet) selectRuns(all []timedRun, runs int) selection {
	var sel []timedRun
	for _, r := range all {
		if r.busy <= q.maxBusy {
			sel = append(sel, r)
		}
	}
	if len(sel) < runs {
		sel = slices.Clone(all)
		slices.SortStableFunc(sel, func(a, b timedRun) int { return cmp.Compare(a.busy, b.busy) })
		sel = sel[:min(runs, len(sel))]
	}
	s := selection{discarded: len(all) - len(sel)}
	var sum float64
	for _, r := range sel {
		s.times = append(s.times, r.ms)
		sum += r.busy
	}
	s.othersMean = round(sum/float64(max(len(sel), 1)), 2)
	for _, r := range all {
		s.allTimes = append(s.allTimes, round(r.ms, 3))
		s.allBusy = append(s.allBusy, round(r.busy, 2))
	}
	return s
}

// median returns the median of xs (the mean of the middle two for an even
// count); xs is not modified.
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}
