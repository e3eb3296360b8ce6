package testenv

import (
	"debug/elf"
	"errors"
	"fmt"
)

// StaticStripped checks that the ELF file at path is what the image ships: a
// static binary (no ELF interpreter) without a symbol table.
func StaticStripped(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var errs []error
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			errs = append(errs, fmt.Errorf("%s has an ELF interpreter: not static", path))
		}
	}
	if f.Section(".symtab") != nil {
		errs = append(errs, fmt.Errorf("%s has a symbol table: not stripped", path))
	}
	return errors.Join(errs...)
}
