package boot

import "sync"

// pendingSyncs runs the directory fsyncs that boot's auth.json commits hand
// over (authwatch.Home.DeferDirSync), each in the background from the moment
// it is handed over, so that the child starts while the disk catches up, and
// lets the launcher wait for them once the child runs.
type pendingSyncs struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

func (p *pendingSyncs) start(sync func() error) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := sync(); err != nil {
			p.mu.Lock()
			if p.err == nil {
				p.err = err
			}
			p.mu.Unlock()
		}
	}()
}

// wait returns once every handed fsync has run, with the first error.
func (p *pendingSyncs) wait() error {
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
