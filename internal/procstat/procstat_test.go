package procstat

import (
	"errors"
	"io/fs"
	"os"
	"testing"
)

func TestParse(t *testing.T) {
	tail := " 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20\n"
	for _, tc := range []struct {
		name, line string
		want       Stat
	}{
		{"plain", "42 (sh) S 1 42 42 34816 42 4194304 120 0 0 0 7 3" + tail,
			Stat{State: 'S', PPid: 1, Pgrp: 42, Session: 42, TTY: 34816, TPGID: 42, UTime: 7, STime: 3, CUTime: 1, CSTime: 2}},
		{"comm with spaces and parentheses", "7 (a) b (c) Z) Z 3 4 5 0 -1 0 0 0 0 0 11 12" + tail,
			Stat{State: 'Z', PPid: 3, Pgrp: 4, Session: 5, TTY: 0, TPGID: -1, UTime: 11, STime: 12, CUTime: 1, CSTime: 2}},
		{"comm that looks like fields", "9 (x) R 8 7 6 5 4) T 2 9 9 0 -1 0 0 0 0 0 0 0" + tail,
			Stat{State: 'T', PPid: 2, Pgrp: 9, Session: 9, TPGID: -1, CUTime: 1, CSTime: 2}},
	} {
		got, err := Parse([]byte(tc.line))
		if err != nil || got != tc.want {
			t.Errorf("%s: Parse = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, line := range []string{
		"",
		"42 sh S 1 42",                           // no comm in parentheses
		"42 (sh) S 1 42 42 0 -1 0 0 0 0 0 1 2 0", // too few fields
		"42 (sh) S x 42 42 0 -1 0 0 0 0 0 1 2 0 0",  // ppid not a number
		"42 (sh) S 1 42 42 0 -1 0 0 0 0 0 1 -2 0 0", // negative ticks
		"42 (sh) S 1 42 42 0 -1 0 0 0 0 0 1 2 0 -1", // negative children's ticks
	} {
		if s, err := Parse([]byte(line)); !errors.Is(err, errFormat) {
			t.Errorf("Parse(%q) = %+v, %v; want a format error", line, s, err)
		}
	}
	if _, err := Parse([]byte("42 (sh) S 1 42 42 0 -1 0 0 0 0 0 1 2 0 0")); err != nil {
		t.Errorf("15 fields after comm: %v", err)
	}
}

func TestReadSelfAndGone(t *testing.T) {
	s, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.PPid != os.Getppid() || s.State == 'Z' {
		t.Fatalf("Read(self) = %+v; want ppid %d, not a zombie", s, os.Getppid())
	}
	if _, err := Read(1 << 30); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read of a pid that cannot exist: %v, want ErrNotExist", err)
	}
}
