package main

import (
	"flag"
	"os"
	"strings"
	"testing"
)

// flagsDoc is the one document whose generated sections (the option table,
// the exit codes) must equal what the binary prints.
const flagsDoc = "../../README.md"

var update = flag.Bool("update", false, "rewrite the generated sections of "+flagsDoc)

// TestFlagsDocMatchesHelp keeps each section between its markers in flagsDoc
// equal to what --help prints. Regenerate them with
// `go test ./cmd/codex-launch -run FlagsDoc -update`.
func TestFlagsDocMatchesHelp(t *testing.T) {
	data, err := os.ReadFile(flagsDoc)
	if err != nil {
		t.Fatalf("read %s: %v", flagsDoc, err)
	}
	doc := string(data)
	for _, sec := range docSections {
		begin := strings.Index(doc, sec.Begin)
		end := strings.Index(doc, sec.End)
		if begin < 0 || end < begin {
			t.Errorf("%s lacks the markers %s ... %s", flagsDoc, sec.Begin, sec.End)
			continue
		}
		got := strings.TrimSpace(doc[begin+len(sec.Begin) : end])
		want := strings.TrimSpace(sec.Generate())
		if got == want {
			continue
		}
		if *update {
			doc = doc[:begin+len(sec.Begin)] + "\n" + want + "\n" + doc[end:]
			continue
		}
		t.Errorf("the section %s in %s differs from --help; run go test ./cmd/codex-launch -run FlagsDoc -update\n%s", sec.Begin, flagsDoc, lineDiff(got, want))
	}
	if *update && doc != string(data) {
		if err := os.WriteFile(flagsDoc, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// --help carries every exit code of the table.
func TestHelpListsExitCodes(t *testing.T) {
	var b strings.Builder
	writeHelp(&b, optionTable())
	for _, e := range exitCodes {
		if !strings.Contains(b.String(), "  "+e.Code+" ") {
			t.Errorf("--help lacks exit code %s", e.Code)
		}
	}
}

// lineDiff lists the rows only one side has.
func lineDiff(got, want string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	g, w := in(got), in(want)
	var b strings.Builder
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	if b.Len() == 0 {
		return "(same rows, different order)"
	}
	return b.String()
}

// The generated table carries every option of --help, so a table equal to it
// is equal to --help's options.
func TestMarkdownCarriesEveryOption(t *testing.T) {
	md := flagsMarkdown(optionTable())
	for _, o := range optionTable() {
		row := "| `" + o.Env + "` |"
		if o.Flag != "" {
			row = "| `--" + o.Flag + "` " + row
		}
		if !strings.Contains(md, row) {
			t.Errorf("markdown lacks row %s", row)
		}
	}
}
