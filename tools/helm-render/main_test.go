package main

import (
	"strings"
	"testing"
)

func renderTestdata(t *testing.T, overrides map[string]interface{}) ([]output, string, error) {
	return renderTestdataMode(t, overrides, false)
}

func renderTestdataMode(t *testing.T, overrides map[string]interface{}, strict bool) ([]output, string, error) {
	t.Helper()
	ch, err := loadChart("testdata/parent")
	if err != nil {
		t.Fatal(err)
	}
	caps, err := newCapabilities("v1.30.2", nil)
	if err != nil {
		t.Fatal(err)
	}
	rel := map[string]interface{}{"Name": "rel", "Namespace": "ns", "IsInstall": true, "IsUpgrade": false, "Revision": 1, "Service": "Helm"}
	return render(ch, overrides, rel, caps, strict)
}

func TestRendersLikeHelm(t *testing.T) {
	over := map[string]interface{}{}
	if err := parseSet("setInt=7,setStr=007x,nested.drop=null", over, false); err != nil {
		t.Fatal(err)
	}
	out, notes, err := renderTestdata(t, over)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range out {
		got[o.name] = o.text
	}
	all := got["parent/templates/all.yaml"]
	for _, want := range []string{
		"kindOfReplicas: float64\n", // helm reads YAML numbers through JSON
		"replicasPlusOne: 4\n",
		"ratio: 0.5\n",
		"yes11: true\n", // YAML 1.1, as sigs.k8s.io/yaml
		`include: "greet x"`,
		`tpl: "hello world"`,
		"required: world\n",
		"lookup: 0\n",
		`missing: ""`, // <no value> is blanked
		"chart: parent-1.2.3-4.5\n",
		"release: rel/ns/Helm/true\n",
		"template: parent/templates/all.yaml parent/templates\n",
		"kube: v1.30.2 true\n",
		`file: "line one\nline two"`,
		"nested:\n  keep: a\n", // null in overrides deletes the key
		"fromYaml: 1\n",
		`json: {"a":[1,"x"],"b":2}`,
		"set: 7 int64 007x\n", // --set integers are int64
	} {
		if !strings.Contains(all, want) {
			t.Errorf("all.yaml lacks %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "drop: b") {
		t.Errorf("nested.drop=null did not delete the key:\n%s", all)
	}
	if c := got["parent/charts/child/templates/c.yaml"]; !strings.Contains(c, "child: hi default eu child parent/charts/child/templates/c.yaml") {
		t.Errorf("subchart: %q", c)
	}
	if p := got["parent/templates/fromparent.yaml"]; !strings.Contains(p, "parentSeesChild: default") {
		t.Errorf("parent must see the subchart's coalesced defaults: %q", p)
	}
	if strings.TrimSpace(notes) != "notes for rel" {
		t.Errorf("notes: %q", notes)
	}
	if _, ok := got["parent/templates/_helpers.tpl"]; ok {
		t.Error("partials must not be rendered as output")
	}
}

func TestFailIsReportedLikeHelm(t *testing.T) {
	_, _, err := renderTestdata(t, map[string]interface{}{"mustFail": true})
	if err == nil || err.Error() != "execution error at (parent/templates/fail.yaml:1:29): boom: this is the message" {
		t.Fatalf("got %v", err)
	}
}

func TestEmptyDocumentsAreDropped(t *testing.T) {
	if docs := splitDocs("a: 1\n---\n# only a comment\n---\n\n"); len(docs) != 1 {
		t.Fatalf("got %q", docs)
	}
}

func TestStrictFailsOnMissingKeys(t *testing.T) {
	_, _, err := renderTestdataMode(t, map[string]interface{}{}, true)
	if err == nil || !strings.Contains(err.Error(), `map has no entry for key "nope"`) {
		t.Fatalf("got %v", err)
	}
}
