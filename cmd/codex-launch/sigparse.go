package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// parseSignal reads "TERM", "SIGTERM" or "15".
func parseSignal(raw string) (syscall.Signal, error) {
	s := strings.ToUpper(strings.TrimSpace(raw))
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("%q is not a signal number", raw)
		}
		return syscall.Signal(n), nil
	}
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	if sig := unix.SignalNum(s); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("%q is not a signal name", raw)
}

// parseSignalList reads "TERM,INT,QUIT".
func parseSignalList(raw string) ([]syscall.Signal, error) {
	var out []syscall.Signal
	for _, s := range splitList(raw) {
		sig, err := parseSignal(s)
		if err != nil {
			return nil, err
		}
		out = append(out, sig)
	}
	if len(out) == 0 {
		return nil, errors.New("want at least one signal")
	}
	return out, nil
}

// parseRewrite reads "TERM:INT,USR1:0".
func parseRewrite(raw string) (map[syscall.Signal]syscall.Signal, error) {
	rw := map[syscall.Signal]syscall.Signal{}
	for _, pair := range splitList(raw) {
		from, to, ok := strings.Cut(pair, ":")
		if !ok {
			return nil, fmt.Errorf("%q: want FROM:TO", pair)
		}
		f, err := parseSignal(from)
		if err != nil {
			return nil, err
		}
		var t syscall.Signal
		if strings.TrimSpace(to) != "0" {
			if t, err = parseSignal(to); err != nil {
				return nil, err
			}
		}
		rw[f] = t
	}
	return rw, nil
}
