package main

import "errors"

// fleetConfig is where the credential lives: the local auth.json (the
// default) or a store shared by a fleet of containers.
type fleetConfig struct {
	Store string
	Name  string
}

func fleetOptions() []option {
	return []option{
		{
			Flag: "credential-store", Env: "CODEX_LAUNCH_CREDENTIAL_STORE", Default: "file",
			Usage: "where the credential lives: file (CODEX_HOME/auth.json)",
			Set: func(c *Config, raw string) error {
				if raw != "file" {
					return errors.New("want file")
				}
				c.Fleet.Store = raw
				return nil
			},
		},
		{
			Flag: "credential-name", Env: "CODEX_LAUNCH_CREDENTIAL_NAME", Default: "default",
			Usage: "the credential's name in a shared store",
			Set: func(c *Config, raw string) error {
				if raw == "" {
					return errors.New("must not be empty")
				}
				c.Fleet.Name = raw
				return nil
			},
		},
	}
}
