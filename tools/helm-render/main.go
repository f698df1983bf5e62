// Command helm-render is a stand-in for `helm template` on machines where helm cannot be
// installed: it renders a chart's templates with the engine helm uses (Go text/template +
// sprig, plus helm's own functions) and prints a multi-document YAML stream.
//
// It is a test tool, not a helm replacement: see README.md beside this file for what it
// implements and what it leaves out.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	// GOPATH-mode import paths (Debian's golang-github-masterminds-sprig-dev puts sprig v3 at
	// /usr/share/gocode/src/github.com/Masterminds/sprig); see README.md.
	sprig "github.com/Masterminds/sprig"
	yaml "gopkg.in/yaml.v2"
)

// ===== command line =====

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var valueFiles, sets, setStrings, showOnly, apiVersions multiFlag
	name := flag.String("name", "release-name", "release name (.Release.Name)")
	namespace := flag.String("namespace", "default", "release namespace (.Release.Namespace)")
	kubeVersion := flag.String("kube-version", "v1.33.0", "Kubernetes version for .Capabilities.KubeVersion")
	notesFile := flag.String("notes", "", "also render the top chart's templates/NOTES.txt into this file")
	strict := flag.Bool("strict", false, "fail on a missing map key (missingkey=error), as `helm lint --strict` renders")
	flag.Var(&valueFiles, "f", "values file merged over values.yaml (repeatable, later wins)")
	flag.Var(&valueFiles, "values", "same as -f")
	flag.Var(&sets, "set", "helm-style key=value overrides, e.g. -set replicaCount=3,a.b=true (repeatable)")
	flag.Var(&setStrings, "set-string", "like -set but values stay strings")
	flag.Var(&showOnly, "show-only", "only print this template, e.g. templates/deployment.yaml (repeatable)")
	flag.Var(&apiVersions, "api-versions", "extra API versions for .Capabilities.APIVersions (repeatable)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: helm-render [flags] CHART_DIR\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}

	overrides := map[string]interface{}{}
	for _, f := range valueFiles {
		v, err := readValuesFile(f)
		if err != nil {
			die(err)
		}
		overrides = mergeValues(overrides, v)
	}
	for _, s := range sets {
		if err := parseSet(s, overrides, false); err != nil {
			die(err)
		}
	}
	for _, s := range setStrings {
		if err := parseSet(s, overrides, true); err != nil {
			die(err)
		}
	}

	ch, err := loadChart(flag.Arg(0))
	if err != nil {
		die(err)
	}
	caps, err := newCapabilities(*kubeVersion, apiVersions)
	if err != nil {
		die(err)
	}
	release := map[string]interface{}{
		"Name":      *name,
		"Namespace": *namespace,
		"IsInstall": true,
		"IsUpgrade": false,
		"Revision":  1,
		"Service":   "Helm",
	}
	out, notes, err := render(ch, overrides, release, caps, *strict)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %s\n", err)
		os.Exit(1)
	}
	if *notesFile != "" {
		if err := os.WriteFile(*notesFile, []byte(notes), 0o644); err != nil {
			die(err)
		}
	}
	printManifests(os.Stdout, out, showOnly)
}

func die(err error) {
	fmt.Fprintf(os.Stderr, "Error: %s\n", err)
	os.Exit(1)
}

// ===== charts =====

// Metadata mirrors helm's chart.Metadata: the fields of Chart.yaml, capitalised, as `.Chart`.
type Metadata struct {
	Name         string            `json:"name"`
	Home         string            `json:"home"`
	Sources      []string          `json:"sources"`
	Version      string            `json:"version"`
	Description  string            `json:"description"`
	Keywords     []string          `json:"keywords"`
	Maintainers  []interface{}     `json:"maintainers"`
	Icon         string            `json:"icon"`
	APIVersion   string            `json:"apiVersion"`
	Condition    string            `json:"condition"`
	Tags         string            `json:"tags"`
	AppVersion   string            `json:"appVersion"`
	Deprecated   bool              `json:"deprecated"`
	Annotations  map[string]string `json:"annotations"`
	KubeVersion  string            `json:"kubeVersion"`
	Dependencies []Dependency      `json:"dependencies"`
	Type         string            `json:"type"`
}

// Dependency is one entry of Chart.yaml `dependencies`.
type Dependency struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	Repository string `json:"repository"`
	Condition  string `json:"condition"`
	Alias      string `json:"alias"`
}

type chart struct {
	meta      *Metadata
	dir       string
	values    map[string]interface{}
	templates map[string]string // path relative to the chart dir ("templates/x.yaml") -> text
	files     map[string][]byte // every other file, for .Files
	subcharts []*chart
	parent    *chart
}

func (c *chart) fullPath() string {
	if c.parent == nil {
		return c.meta.Name
	}
	return c.parent.fullPath() + "/charts/" + c.meta.Name
}

func loadChart(dir string) (*chart, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, fmt.Errorf("not a chart: %w", err)
	}
	meta := &Metadata{}
	if err := yamlToStruct(raw, meta); err != nil {
		return nil, fmt.Errorf("%s/Chart.yaml: %w", dir, err)
	}
	if meta.APIVersion != "v2" {
		return nil, fmt.Errorf("%s/Chart.yaml: apiVersion must be v2, got %q", dir, meta.APIVersion)
	}
	if meta.Name == "" || meta.Version == "" {
		return nil, fmt.Errorf("%s/Chart.yaml: name and version are required", dir)
	}
	c := &chart{meta: meta, dir: dir, templates: map[string]string{}, files: map[string][]byte{}}
	c.values = map[string]interface{}{}
	if _, err := os.Stat(filepath.Join(dir, "values.yaml")); err == nil {
		if c.values, err = readValuesFile(filepath.Join(dir, "values.yaml")); err != nil {
			return nil, err
		}
	}
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if info.IsDir() {
			if rel == "charts" {
				return filepath.SkipDir
			}
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasPrefix(rel, "templates/") {
			c.templates[rel] = string(data)
		} else {
			c.files[rel] = data
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Subcharts: unpacked directories under charts/, then `file://` dependencies not found
	// there (what `helm dependency build` would have copied in).
	seen := map[string]bool{}
	entries, _ := os.ReadDir(filepath.Join(dir, "charts"))
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sub, err := loadChart(filepath.Join(dir, "charts", e.Name()))
		if err != nil {
			return nil, err
		}
		sub.parent = c
		c.subcharts = append(c.subcharts, sub)
		seen[sub.meta.Name] = true
	}
	for _, d := range meta.Dependencies {
		if d.Alias != "" {
			return nil, fmt.Errorf("dependency %q: aliases are not supported by helm-render", d.Name)
		}
		if seen[d.Name] {
			continue
		}
		if !strings.HasPrefix(d.Repository, "file://") {
			return nil, fmt.Errorf("dependency %q: only file:// repositories or unpacked charts/ are supported", d.Name)
		}
		p := strings.TrimPrefix(d.Repository, "file://")
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		sub, err := loadChart(p)
		if err != nil {
			return nil, err
		}
		if sub.meta.Name != d.Name {
			return nil, fmt.Errorf("dependency %q: chart at %s is named %q", d.Name, p, sub.meta.Name)
		}
		sub.parent = c
		c.subcharts = append(c.subcharts, sub)
	}
	return c, nil
}

// ===== values =====

func readValuesFile(p string) (map[string]interface{}, error) {
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	v, err := parseYAMLMap(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return v, nil
}

// parseYAMLMap reads YAML the way helm does (sigs.k8s.io/yaml: YAML 1.1 through JSON), so
// numbers come out as float64, exactly as templates see them under real helm.
func parseYAMLMap(raw []byte) (map[string]interface{}, error) {
	var v interface{}
	if err := yaml.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	if v == nil {
		return map[string]interface{}{}, nil
	}
	j, err := json.Marshal(jsonable(v))
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := json.Unmarshal(j, &out); err != nil {
		return nil, fmt.Errorf("top level must be a map: %w", err)
	}
	return out, nil
}

func yamlToStruct(raw []byte, into interface{}) error {
	var v interface{}
	if err := yaml.Unmarshal(raw, &v); err != nil {
		return err
	}
	j, err := json.Marshal(jsonable(v))
	if err != nil {
		return err
	}
	return json.Unmarshal(j, into)
}

// jsonable turns yaml.v2's map[interface{}]interface{} into map[string]interface{}.
func jsonable(v interface{}) interface{} {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			m[fmt.Sprint(k)] = jsonable(val)
		}
		return m
	case map[string]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			m[k] = jsonable(val)
		}
		return m
	case []interface{}:
		l := make([]interface{}, len(t))
		for i, val := range t {
			l[i] = jsonable(val)
		}
		return l
	default:
		return v
	}
}

// mergeValues returns dst with src merged over it, helm's way: maps merge recursively, any
// other value replaces, and an explicit null deletes the key.
func mergeValues(dst, src map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(dst))
	for k, v := range dst {
		out[k] = v
	}
	for k, v := range src {
		if v == nil {
			delete(out, k)
			continue
		}
		sm, sok := v.(map[string]interface{})
		dm, dok := out[k].(map[string]interface{})
		if sok && dok {
			out[k] = mergeValues(dm, sm)
		} else {
			out[k] = v
		}
	}
	return out
}

var setInt = regexp.MustCompile(`^[-+]?[0-9]+$`)

// parseSet applies one --set argument: comma-separated dotted.key=value pairs; `{a,b}` is a
// list; true/false/null and integers are typed unless asString.
func parseSet(s string, into map[string]interface{}, asString bool) error {
	for _, pair := range splitTopLevel(s) {
		eq := strings.IndexByte(pair, '=')
		if eq <= 0 {
			return fmt.Errorf("--set %q: expected key=value", pair)
		}
		keys := strings.Split(pair[:eq], ".")
		raw := pair[eq+1:]
		var val interface{}
		if strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}") {
			items := []interface{}{}
			inner := raw[1 : len(raw)-1]
			if inner != "" {
				for _, it := range strings.Split(inner, ",") {
					items = append(items, typed(it, asString))
				}
			}
			val = items
		} else {
			val = typed(raw, asString)
		}
		m := into
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]interface{})
			if !ok {
				next = map[string]interface{}{}
				m[k] = next
			}
			m = next
		}
		m[keys[len(keys)-1]] = val
	}
	return nil
}

func splitTopLevel(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func typed(s string, asString bool) interface{} {
	if asString {
		return s
	}
	switch {
	case s == "true":
		return true
	case s == "false":
		return false
	case s == "null":
		return nil
	case setInt.MatchString(s):
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return s
}

// coalesce computes the values a chart sees: its own values.yaml under the overrides, with
// each subchart's values placed (and defaulted) under the subchart's name, and `global`
// copied down.
func coalesce(c *chart, overrides map[string]interface{}) map[string]interface{} {
	v := mergeValues(c.values, overrides)
	for _, sub := range c.subcharts {
		mine, _ := v[sub.meta.Name].(map[string]interface{})
		if mine == nil {
			mine = map[string]interface{}{}
		}
		if g, ok := v["global"].(map[string]interface{}); ok {
			sg, _ := mine["global"].(map[string]interface{})
			mine = mergeValues(mine, map[string]interface{}{"global": mergeValues(g, orEmpty(sg))})
		}
		v[sub.meta.Name] = coalesce(sub, mine)
	}
	return v
}

func orEmpty(m map[string]interface{}) map[string]interface{} {
	if m == nil {
		return map[string]interface{}{}
	}
	return m
}

// enabled evaluates a dependency's `condition` (a dotted path into the parent's values).
func enabled(parentValues map[string]interface{}, dep *Dependency) bool {
	if dep == nil || dep.Condition == "" {
		return true
	}
	for _, cond := range strings.Split(dep.Condition, ",") {
		var cur interface{} = parentValues
		for _, k := range strings.Split(strings.TrimSpace(cond), ".") {
			m, ok := cur.(map[string]interface{})
			if !ok {
				cur = nil
				break
			}
			cur = m[k]
		}
		if b, ok := cur.(bool); ok {
			return b
		}
	}
	return true
}

// ===== built-in objects =====

// KubeVersion mirrors helm's chartutil.KubeVersion.
type KubeVersion struct {
	Version string
	Major   string
	Minor   string
}

func (k *KubeVersion) String() string     { return k.Version }
func (k *KubeVersion) GitVersion() string { return k.Version }

// VersionSet mirrors helm's chartutil.VersionSet.
type VersionSet []string

// Has reports whether the API version (or `group/version/Kind`) is known.
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

// Capabilities mirrors helm's chartutil.Capabilities (without a cluster).
type Capabilities struct {
	KubeVersion *KubeVersion
	APIVersions VersionSet
	HelmVersion map[string]string
}

var kubeVersionRe = regexp.MustCompile(`^v?([0-9]+)\.([0-9]+)\.([0-9]+)$`)

func newCapabilities(version string, extra []string) (*Capabilities, error) {
	m := kubeVersionRe.FindStringSubmatch(version)
	if m == nil {
		return nil, fmt.Errorf("-kube-version %q: expected vMAJOR.MINOR.PATCH", version)
	}
	apis := VersionSet{
		"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v1", "autoscaling/v2",
		"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", "storage.k8s.io/v1",
		"apiextensions.k8s.io/v1", "admissionregistration.k8s.io/v1", "coordination.k8s.io/v1",
		"discovery.k8s.io/v1", "scheduling.k8s.io/v1",
	}
	apis = append(apis, extra...)
	return &Capabilities{
		KubeVersion: &KubeVersion{Version: "v" + m[1] + "." + m[2] + "." + m[3], Major: m[1], Minor: m[2]},
		APIVersions: apis,
		HelmVersion: map[string]string{"Version": "v3-helm-render"},
	}, nil
}

// Files is `.Files`: the chart's non-template files.
type Files map[string][]byte

// Get returns a file's content as a string ("" when absent).
func (f Files) Get(name string) string { return string(f[name]) }

// GetBytes returns a file's content.
func (f Files) GetBytes(name string) []byte { return f[name] }

// Lines returns a file's lines.
func (f Files) Lines(name string) []string {
	if f[name] == nil {
		return []string{}
	}
	return strings.Split(strings.TrimRight(string(f[name]), "\n"), "\n")
}

// ===== rendering =====

type output struct {
	name string // e.g. outseta-gateway/templates/deployment.yaml
	text string
}

// job is one template to execute, with the values of the chart it belongs to.
type job struct {
	name string
	vals map[string]interface{}
}

// render executes every template of the chart and its subcharts; it returns the manifests and
// the top chart's rendered NOTES.txt ("" when it has none).
func render(top *chart, overrides map[string]interface{}, release map[string]interface{}, caps *Capabilities, strict bool) ([]output, string, error) {
	root := template.New("gotpl")
	if strict {
		root.Option("missingkey=error")
	} else {
		root.Option("missingkey=zero")
	}
	root.Funcs(funcMap(root))

	var jobs []job
	var notes *job
	var walk func(c *chart, values map[string]interface{}) error
	walk = func(c *chart, values map[string]interface{}) error {
		base := c.fullPath()
		names := make([]string, 0, len(c.templates))
		for n := range c.templates {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			full := base + "/" + n
			if _, err := root.New(full).Parse(c.templates[n]); err != nil {
				return err
			}
			file := path.Base(n)
			if strings.HasPrefix(file, "_") {
				continue // partials only define
			}
			j := job{name: full, vals: map[string]interface{}{
				"Values":       values,
				"Release":      release,
				"Chart":        c.meta,
				"Capabilities": caps,
				"Files":        Files(c.files),
				"Template":     map[string]interface{}{"Name": full, "BasePath": base + "/templates"},
			}}
			if file == "NOTES.txt" {
				if c == top && n == "templates/NOTES.txt" {
					notes = &j // not part of `helm template` output
				}
				continue
			}
			jobs = append(jobs, j)
		}
		for _, sub := range c.subcharts {
			var dep *Dependency
			for i := range c.meta.Dependencies {
				if c.meta.Dependencies[i].Name == sub.meta.Name {
					dep = &c.meta.Dependencies[i]
				}
			}
			if !enabled(values, dep) {
				continue
			}
			subValues, _ := values[sub.meta.Name].(map[string]interface{})
			if err := walk(sub, subValues); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(top, coalesce(top, overrides)); err != nil {
		return nil, "", err
	}

	var out []output
	for _, j := range jobs {
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, j.name, j.vals); err != nil {
			return nil, "", cleanError(err)
		}
		out = append(out, output{name: j.name, text: strings.ReplaceAll(buf.String(), "<no value>", "")})
	}
	notesText := ""
	if notes != nil {
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, notes.name, notes.vals); err != nil {
			return nil, "", cleanError(err)
		}
		notesText = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return out, notesText, nil
}

var execErrRe = regexp.MustCompile(`^template: (.*?): executing ".*?" at <.*?>: error calling (?:fail|required): (.*)$`)

// cleanError formats `fail` and `required` errors the way helm does.
func cleanError(err error) error {
	msg := err.Error()
	if m := execErrRe.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("execution error at (%s): %s", m[1], m[2])
	}
	return err
}

func printManifests(w *os.File, out []output, showOnly []string) {
	for _, o := range out {
		if len(showOnly) > 0 {
			keep := false
			for _, s := range showOnly {
				if strings.HasSuffix(o.name, "/"+s) || o.name == s {
					keep = true
				}
			}
			if !keep {
				continue
			}
		}
		// Like helm: a file may hold several documents; empty ones are dropped.
		for _, doc := range splitDocs(o.text) {
			fmt.Fprintf(w, "---\n# Source: %s\n%s\n", o.name, doc)
		}
	}
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

func splitDocs(s string) []string {
	var docs []string
	for _, d := range docSep.Split(s, -1) {
		if isBlankYAML(d) {
			continue
		}
		docs = append(docs, strings.Trim(d, "\n"))
	}
	return docs
}

func isBlankYAML(d string) bool {
	for _, line := range strings.Split(d, "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// ===== functions =====

const recursionMaxNums = 1000

// funcMap is sprig's text functions without env/expandenv (helm removes them), plus helm's.
func funcMap(root *template.Template) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")

	includedNames := map[string]int{}
	f["include"] = func(name string, data interface{}) (string, error) {
		if includedNames[name] > recursionMaxNums {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		includedNames[name]++
		defer func() { includedNames[name]-- }()
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	f["tpl"] = func(tplText string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		name := "tpl"
		if m, ok := data.(map[string]interface{}); ok {
			if tm, ok := m["Template"].(map[string]interface{}); ok {
				name = fmt.Sprint(tm["Name"])
			}
		}
		if _, err := t.New(name).Parse(tplText); err != nil {
			return "", fmt.Errorf("cannot parse template %q: %w", tplText, err)
		}
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, name, data); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %w", tplText, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	f["required"] = func(warn string, val interface{}) (interface{}, error) {
		if val == nil {
			return val, errors.New(warn)
		}
		if s, ok := val.(string); ok && s == "" {
			return val, errors.New(warn)
		}
		return val, nil
	}
	f["lookup"] = func(apiversion, kind, namespace, name string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil // like `helm template`: no cluster
	}
	f["toYaml"] = func(v interface{}) string {
		s, err := toYAML(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(s, "\n")
	}
	f["mustToYaml"] = func(v interface{}) (string, error) {
		s, err := toYAML(v)
		return strings.TrimSuffix(s, "\n"), err
	}
	f["fromYaml"] = func(s string) map[string]interface{} {
		m, err := parseYAMLMap([]byte(s))
		if err != nil {
			return map[string]interface{}{"Error": err.Error()}
		}
		return m
	}
	f["fromYamlArray"] = func(s string) []interface{} {
		var v interface{}
		if err := yaml.Unmarshal([]byte(s), &v); err != nil {
			return []interface{}{err.Error()}
		}
		j, _ := json.Marshal(jsonable(v))
		var out []interface{}
		if err := json.Unmarshal(j, &out); err != nil {
			return []interface{}{err.Error()}
		}
		return out
	}
	f["toJson"] = func(v interface{}) string {
		data, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(data)
	}
	f["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["fromJsonArray"] = func(s string) []interface{} {
		var a []interface{}
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			return []interface{}{err.Error()}
		}
		return a
	}
	f["toToml"] = func(v interface{}) (string, error) {
		return "", errors.New("toToml is not implemented by helm-render")
	}
	return f
}

// toYAML is sigs.k8s.io/yaml's Marshal: through JSON, then YAML with sorted keys.
func toYAML(v interface{}) (string, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var obj interface{}
	if err := yaml.Unmarshal(j, &obj); err != nil {
		return "", err
	}
	out, err := yaml.Marshal(obj)
	return string(out), err
}
