package main

import (
	"flag"
	"os"
	"strings"
	"testing"
)

// flagsDoc is the one document whose flag table must equal --help's options.
// The README may take over the table: point this at it.
const flagsDoc = "../../README.md"

var update = flag.Bool("update", false, "rewrite the flag table in "+flagsDoc)

// TestFlagsDocMatchesHelp keeps the table between the markers in flagsDoc
// equal to the option table that --help prints. Regenerate it with
// `go test ./cmd/codex-launch -run FlagsDoc -update`, or paste the output of
// `go run ./cmd/codex-launch --help-markdown`.
func TestFlagsDocMatchesHelp(t *testing.T) {
	data, err := os.ReadFile(flagsDoc)
	if err != nil {
		t.Fatalf("read %s: %v", flagsDoc, err)
	}
	doc := string(data)
	begin := strings.Index(doc, flagsBegin)
	end := strings.Index(doc, flagsEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the markers %s ... %s", flagsDoc, flagsBegin, flagsEnd)
	}
	got := strings.TrimSpace(doc[begin+len(flagsBegin) : end])
	want := strings.TrimSpace(flagsMarkdown(optionTable()))
	if got == want {
		return
	}
	if *update {
		doc = doc[:begin+len(flagsBegin)] + "\n" + want + "\n" + doc[end:]
		if err := os.WriteFile(flagsDoc, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the flag table in %s differs from --help; run go test ./cmd/codex-launch -run FlagsDoc -update\n%s", flagsDoc, lineDiff(got, want))
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
