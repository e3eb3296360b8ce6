package main

import "github.com/hashicorp/go-hclog"

func (p *program) refresh(cfg *Config, log hclog.Logger, once bool) int  { return exitLaunch }
func (p *program) status(cfg *Config, log hclog.Logger, asJSON bool) int { return exitLaunch }
func (p *program) health(cfg *Config, log hclog.Logger) int              { return exitLaunch }
func launcher(p *program, early *earlySignals, cfg *Config, argv []string) int {
	return exitLaunch
}
