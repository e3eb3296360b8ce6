// Package deploy holds the Kubernetes manifest the README shows; its test
// checks the manifest parses and has every field the README relies on.
package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// manifest is the subset of the Kubernetes objects the README relies on.
type manifest struct {
	Kind     string
	Metadata struct{ Name string }
	Spec     struct {
		Replicas *int
		Strategy struct{ Type string }
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				Containers                    []container
				Volumes                       []struct {
					Name                  string
					PersistentVolumeClaim *struct {
						ClaimName string `yaml:"claimName"`
					} `yaml:"persistentVolumeClaim"`
					Secret *struct {
						SecretName string `yaml:"secretName"`
					}
				}
			}
		}
		AccessModes []string `yaml:"accessModes"`
	}
}

type container struct {
	Image           string
	ImagePullPolicy string `yaml:"imagePullPolicy"`
	Args            []string
	Env             []struct{ Name, Value string }
	SecurityContext struct {
		Capabilities struct{ Drop, Add []string }
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	ReadinessProbe *struct {
		Exec           struct{ Command []string }
		TimeoutSeconds int `yaml:"timeoutSeconds"`
	} `yaml:"readinessProbe"`
}

func load(t *testing.T) ([]manifest, []byte) {
	t.Helper()
	data, err := os.ReadFile("kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []manifest
	for {
		var m manifest
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("kubernetes.yaml: %v", err)
		}
		docs = append(docs, m)
	}
	return docs, data
}

func TestKubernetesManifest(t *testing.T) {
	docs, _ := load(t)
	claims := map[string]manifest{}
	var pod *manifest
	for i, d := range docs {
		switch d.Kind {
		case "PersistentVolumeClaim":
			claims[d.Metadata.Name] = d
		case "Deployment", "StatefulSet":
			pod = &docs[i]
		}
	}
	if pod == nil {
		t.Fatal("no Deployment or StatefulSet")
	}
	if pod.Kind == "Deployment" && pod.Spec.Strategy.Type != "Recreate" {
		t.Errorf("Deployment strategy %q: a ReadWriteOnce volume needs Recreate (or a StatefulSet)", pod.Spec.Strategy.Type)
	}
	if pod.Spec.Replicas == nil || *pod.Spec.Replicas != 1 {
		t.Error("want exactly one replica: one login, one writer")
	}
	spec := pod.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if _, tag, ok := strings.Cut(c.Image[strings.LastIndex(c.Image, "/")+1:], ":"); !ok || tag == "" || tag == "latest" {
		t.Errorf("image %q: want a pinned tag", c.Image)
	}
	if c.ImagePullPolicy != "IfNotPresent" {
		t.Errorf("imagePullPolicy %q, want IfNotPresent", c.ImagePullPolicy)
	}
	if len(c.Args) == 0 {
		t.Error("no args: the image's default command, the TUI, needs a terminal")
	}
	caps := c.SecurityContext.Capabilities
	if !slices.Contains(caps.Drop, "ALL") {
		t.Errorf("capabilities drop %q, want ALL", caps.Drop)
	}
	for _, want := range []string{"CHOWN", "DAC_OVERRIDE", "SETUID", "SETGID"} {
		if !slices.Contains(caps.Add, want) {
			t.Errorf("capabilities add %q lacks %s, which boot needs as root", caps.Add, want)
		}
	}
	if spec.TerminationGracePeriodSeconds <= 8 {
		t.Errorf("terminationGracePeriodSeconds %d: want it above --stop-timeout (8s)", spec.TerminationGracePeriodSeconds)
	}
	p := c.ReadinessProbe
	if p == nil || strings.Join(p.Exec.Command, " ") != "codex-launch health" || p.TimeoutSeconds < 5 {
		t.Errorf("readinessProbe %+v: want codex-launch health with a timeout of 5 s or more", p)
	}
	// CODEX_HOME on a persistent volume claim that the manifest declares.
	home := ""
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/home/agent/.codex" {
			home = m.Name
		}
	}
	found := false
	for _, v := range spec.Volumes {
		if v.Name == home && v.PersistentVolumeClaim != nil {
			claim, ok := claims[v.PersistentVolumeClaim.ClaimName]
			found = ok && slices.Contains(claim.Spec.AccessModes, "ReadWriteOnce")
		}
	}
	if !found {
		t.Error("CODEX_HOME (/home/agent/.codex) is not mounted from a ReadWriteOnce claim declared here")
	}
}

// The README shows the manifest as it is in this file.
func TestReadmeShowsTheManifest(t *testing.T) {
	_, data := load(t)
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, append(append([]byte("```yaml\n"), data...), "```\n"...)) {
		t.Error("README.md does not show deploy/kubernetes.yaml as it is")
	}
}
