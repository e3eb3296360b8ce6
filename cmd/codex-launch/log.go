package main

import (
	"io"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/internal/human"
)

// newLogger is the root logger; each area logs through a named sub-logger
// (launcher, authwatch, supervise, signals, boot) so a line says who spoke.
// No token ever reaches a logger: the packages log names, classes and times.
func newLogger(cfg *Config, w io.Writer) hclog.Logger {
	return readable{hclog.New(&hclog.LoggerOptions{
		Name:       "codex-launch",
		Level:      cfg.LogLevel,
		JSONFormat: cfg.LogFormat == "json",
		Output:     w,
		TimeFormat: "2006-01-02T15:04:05.000Z07:00",
		// UTC, as containers log: also spares loading the local zone.
		TimeFn: func() time.Time { return time.Now().UTC() },
	})}
}

// readable writes every value the way an operator reads it, in text and in
// JSON alike: a duration as "8s" or "10d4h" (hclog would print 7.999s, and
// integer nanoseconds in JSON), a nil list as an empty one (not null).
type readable struct{ hclog.Logger }

// readableArgs returns args with such values replaced; the caller's slice
// is left as it was.
func readableArgs(args []interface{}) []interface{} {
	var out []interface{}
	for i := 1; i < len(args); i += 2 {
		var v interface{}
		switch a := args[i].(type) {
		case time.Duration:
			v = human.Duration(a)
		case []string:
			if a != nil {
				continue
			}
			v = []string{}
		default:
			continue
		}
		if out == nil {
			out = append([]interface{}(nil), args...)
		}
		out[i] = v
	}
	if out == nil {
		return args
	}
	return out
}

func (l readable) Log(level hclog.Level, msg string, args ...interface{}) {
	l.Logger.Log(level, msg, readableArgs(args)...)
}
func (l readable) Trace(msg string, args ...interface{}) { l.Logger.Trace(msg, readableArgs(args)...) }
func (l readable) Debug(msg string, args ...interface{}) { l.Logger.Debug(msg, readableArgs(args)...) }
func (l readable) Info(msg string, args ...interface{})  { l.Logger.Info(msg, readableArgs(args)...) }
func (l readable) Warn(msg string, args ...interface{})  { l.Logger.Warn(msg, readableArgs(args)...) }
func (l readable) Error(msg string, args ...interface{}) { l.Logger.Error(msg, readableArgs(args)...) }
func (l readable) With(args ...interface{}) hclog.Logger {
	return readable{l.Logger.With(readableArgs(args)...)}
}
func (l readable) Named(name string) hclog.Logger      { return readable{l.Logger.Named(name)} }
func (l readable) ResetNamed(name string) hclog.Logger { return readable{l.Logger.ResetNamed(name)} }

// logEvents are log lines kept until the logger exists: reading the env
// directory comes before the configuration that sets the log level and
// format, and its warnings must still reach the operator in that format.
type logEvents []logEvent

type logEvent struct {
	level hclog.Level
	msg   string
	args  []interface{}
}

// replay writes the kept lines to l, each at its own level.
func (e logEvents) replay(l hclog.Logger) {
	for _, ev := range e {
		l.Log(ev.level, ev.msg, ev.args...)
	}
}

// logRecorder keeps what a logger is given, for replay.
type logRecorder struct{ events logEvents }

func (r *logRecorder) logger() hclog.Logger {
	l := hclog.NewInterceptLogger(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Trace})
	l.RegisterSink(r)
	return l
}

// Accept implements hclog.SinkAdapter.
func (r *logRecorder) Accept(_ string, level hclog.Level, msg string, args ...interface{}) {
	r.events = append(r.events, logEvent{level, msg, append([]interface{}(nil), args...)})
}
