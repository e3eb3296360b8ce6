// Command child is the boot benchmark's child: its first act is to write the
// wall-clock time (Unix nanoseconds) to the file named by BOOT_BENCH_MARK. It
// imports next to nothing, so its own start-up adds as little as possible to
// what is measured, the entrypoint's boot.
package main

import (
	"os"
	"strconv"
	"time"
)

func main() {
	now := time.Now().UnixNano()
	if err := os.WriteFile(os.Getenv("BOOT_BENCH_MARK"), []byte(strconv.FormatInt(now, 10)), 0o644); err != nil {
		os.Exit(3)
	}
}
