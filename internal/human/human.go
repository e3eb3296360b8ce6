// Package human writes durations and moments the way an operator reads them:
// "8s", "5m30s", "3h5m", "10d4h", "in 2h", "1h ago". Logs, status and health
// use it, so one quantity reads the same wherever it appears.
package human

import (
	"fmt"
	"time"
)

const day = 24 * time.Hour

// Duration writes d with its two largest units, rounded to the smaller:
// days and hours from a day on, hours and minutes from an hour, minutes and
// seconds from a minute, whole seconds from a second, milliseconds below. A
// zero second part is left out ("5m", not "5m0s").
func Duration(d time.Duration) string {
	if d < 0 {
		return "-" + Duration(-d)
	}
	// Each unit is tried from the largest, on d rounded to the unit below
	// it, so that 59.6s reads "1m" rather than "60s".
	switch {
	case d.Round(time.Hour) >= day:
		return pair(d.Round(time.Hour), day, "d", time.Hour, "h")
	case d.Round(time.Minute) >= time.Hour:
		return pair(d.Round(time.Minute), time.Hour, "h", time.Minute, "m")
	case d.Round(time.Second) >= time.Minute:
		return pair(d.Round(time.Second), time.Minute, "m", time.Second, "s")
	case d.Round(time.Second) >= time.Second:
		return fmt.Sprintf("%ds", int64(d.Round(time.Second)/time.Second))
	case d.Round(time.Millisecond) >= time.Millisecond:
		return fmt.Sprintf("%dms", int64(d.Round(time.Millisecond)/time.Millisecond))
	case d > 0:
		return fmt.Sprintf("%dµs", int64(d.Round(time.Microsecond)/time.Microsecond))
	}
	return "0s"
}

func pair(d, big time.Duration, bigName string, small time.Duration, smallName string) string {
	b, s := d/big, (d%big)/small
	if s == 0 {
		return fmt.Sprintf("%d%s", b, bigName)
	}
	return fmt.Sprintf("%d%s%d%s", b, bigName, s, smallName)
}

// Relative writes when t is as seen from now: "in 2h", "1h ago", "now".
func Relative(t, now time.Time) string {
	d := t.Sub(now)
	switch {
	case d >= time.Second:
		return "in " + Duration(d)
	case d <= -time.Second:
		return Duration(-d) + " ago"
	}
	return "now"
}
