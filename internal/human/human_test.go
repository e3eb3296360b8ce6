package human

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for _, c := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{1500 * time.Microsecond, "2ms"},
		{7999 * time.Millisecond, "8s"},
		{59*time.Second + 600*time.Millisecond, "1m"},
		{5*time.Minute + 30*time.Second, "5m30s"},
		{time.Hour, "1h"},
		{3*time.Hour + 5*time.Minute + 20*time.Second, "3h5m"},
		{250 * time.Hour, "10d10h"},
		{168 * time.Hour, "7d"},
		{-time.Hour, "-1h"},
		{40 * time.Microsecond, "40µs"},
	} {
		if got := Duration(c.in); got != c.want {
			t.Errorf("Duration(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRelative(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		at   time.Time
		want string
	}{
		{now.Add(2 * time.Hour), "in 2h"},
		{now.Add(-time.Hour), "1h ago"},
		{now.Add(-250 * time.Hour), "10d10h ago"},
		{now.Add(300 * time.Millisecond), "now"},
	} {
		if got := Relative(c.at, now); got != c.want {
			t.Errorf("Relative(%v) = %q, want %q", c.at.Sub(now), got, c.want)
		}
	}
}
