package main

import (
	"io"
	"time"

	"github.com/hashicorp/go-hclog"
)

// newLogger is the root logger; each area logs through a named sub-logger
// (launcher, authwatch, supervise, signals, boot) so a line says who spoke.
// No token ever reaches a logger: the packages log names, classes and times.
func newLogger(cfg *Config, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "codex-launch",
		Level:      cfg.LogLevel,
		JSONFormat: cfg.LogFormat == "json",
		Output:     w,
		TimeFormat: "2006-01-02T15:04:05.000Z07:00",
		// UTC, as containers log: also spares loading the local zone.
		TimeFn: func() time.Time { return time.Now().UTC() },
	})
}
