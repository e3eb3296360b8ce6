package main

// earlySignals holds the signals caught at the very start of the program.
type earlySignals struct{}

func listenEarly() *earlySignals { return &earlySignals{} }

// release gives the signals back to their default handling, for subcommands
// that do not supervise a child.
func (e *earlySignals) release() {}
