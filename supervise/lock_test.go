package supervise

import "runtime"

// lockAndLeave locks the calling goroutine's thread and returns without
// unlocking, so the runtime retires the thread when the goroutine ends.
func lockAndLeave() { runtime.LockOSThread() }
