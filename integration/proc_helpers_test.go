package integration

// Reading /proc, for the tests that watch processes from outside (the PID-1
// and launcher suites): who is whose child, which state a process is in, and
// as whom it runs.

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/molecule-ai/codex-launch/internal/procstat"
	"github.com/molecule-ai/codex-launch/internal/testenv"
)

// readProcStat reads /proc/PID/stat; false when pid is gone.
func readProcStat(pid int) (procstat.Stat, bool) {
	st, err := procstat.Read(pid)
	return st, err == nil
}

// procPIDs lists the processes for which keep holds, lowest pid first.
func procPIDs(keep func(pid int) bool) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if p, err := strconv.Atoi(e.Name()); err == nil && keep(p) {
			out = append(out, p)
		}
	}
	sort.Ints(out)
	return out
}

// descendants lists pid and every live process below it.
func descendants(pid int) []int {
	all := []int{pid}
	for i := 0; i < len(all); i++ {
		all = append(all, testenv.ChildrenOf(all[i])...)
	}
	return all
}

// procAlive reports whether pid exists and is not a zombie.
func procAlive(pid int) bool {
	st, ok := readProcStat(pid)
	return ok && !st.Zombie()
}

// procIDs returns the real uid and gid of pid.
func procIDs(pid int) (uid, gid int, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "Uid:":
			uid, _ = strconv.Atoi(f[1])
		case "Gid:":
			gid, _ = strconv.Atoi(f[1])
		}
	}
	return uid, gid, nil
}
