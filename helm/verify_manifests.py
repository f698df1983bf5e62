#!/usr/bin/env python3
"""Checks one rendered manifest stream of the outseta-gateway chart (called by helm/verify.sh).

1. Every resource validates against the Kubernetes OpenAPI schema of the given version
   (kubernetes-validate, strict: unknown fields are errors). Kinds without a schema there
   (the ServiceMonitor CRD) get the structural checks below instead.
2. The resources fit together: selectors match pod labels, named ports exist, mounts have
   volumes, referenced ConfigMaps/Secrets are rendered (or are the configured existing ones),
   probes hit /healthz and /readyz on the admin port of gateway.toml, the security context is
   locked down, terminationGracePeriodSeconds covers the drain, the pod template carries the
   config checksum.
3. gateway.toml parses as TOML (tomllib) and reads back equal to `config` in the values
   (every section, every rule, key by key), with listen/admin_listen as the mode requires.
4. Optionally, the real gateway accepts it: `outseta-gateway check -c gateway.toml`.

Exit status 0 when everything holds; the last line is "N passed, N failed".
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import os
import re
import subprocess
import sys
import tempfile

import yaml

try:
    import tomllib  # Python >= 3.11
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

PASSED = 0
FAILED = 0


def check(ok: bool, what: str, detail: str = "") -> bool:
    global PASSED, FAILED
    if ok:
        PASSED += 1
    else:
        FAILED += 1
        print(f"  FAIL {what}" + (f": {detail}" if detail else ""))
    return ok


# ===== values, merged as helm does =====


def merge(dst: dict, src: dict) -> dict:
    out = dict(dst)
    for k, v in src.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def load_values(specs: list[str]) -> dict:
    values: dict = {}
    for spec in specs:
        path, _, key = spec.partition(":")
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
        if key:
            doc = doc.get(key) or {}
        values = merge(values, doc)
    return values


def drop_nulls(v):
    if isinstance(v, dict):
        return {k: drop_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [drop_nulls(x) for x in v]
    return v


# ===== durations, independently of the chart's template =====

UNITS_MS = {
    "nsec": 1e-6, "ns": 1e-6, "usec": 1e-3, "us": 1e-3, "msec": 1, "ms": 1,
    "seconds": 1000, "second": 1000, "sec": 1000, "s": 1000,
    "minutes": 60_000, "minute": 60_000, "min": 60_000, "m": 60_000,
    "hours": 3_600_000, "hour": 3_600_000, "hr": 3_600_000, "h": 3_600_000,
}


def duration_seconds(s: str) -> int:
    parts = re.findall(r"([0-9]+)\s*([a-zA-Z]+)", s)
    if not parts or re.sub(r"[0-9]+\s*[a-zA-Z]+\s*", "", s.strip()):
        raise ValueError(f"bad duration {s!r}")
    ms = sum(int(n) * UNITS_MS[u] for n, u in parts)
    return -(-int(round(ms * 1000)) // 1_000_000)  # ceil to whole seconds


# ===== schema validation =====


def schema_validate(docs: list[dict], kube_version: str) -> None:
    from kubernetes_validate import utils as kv

    for d in docs:
        name = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
        try:
            kv.validate(d, kube_version, strict=True)
            check(True, f"schema {name}")
        except kv.SchemaNotFoundError:
            check(d.get("kind") == "ServiceMonitor", f"schema {name}",
                  "no schema for this kind in kubernetes-validate (only the ServiceMonitor CRD may lack one)")
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            check(False, f"schema {name} (Kubernetes {kube_version}, strict)", f"{path}: {e.message}")


# ===== semantic checks =====


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def subset(small: dict, big: dict) -> bool:
    return all(big.get(k) == v for k, v in (small or {}).items())


def gateway_toml(docs: list[dict]) -> tuple[dict | None, str | None]:
    for d in docs:
        if d.get("kind") == "ConfigMap" and "gateway.toml" in (d.get("data") or {}):
            return d, d["data"]["gateway.toml"]
        if d.get("kind") == "Secret" and "gateway.toml" in (d.get("stringData") or {}):
            return d, d["stringData"]["gateway.toml"]
        if d.get("kind") == "Secret" and "gateway.toml" in (d.get("data") or {}):
            return d, base64.b64decode(d["data"]["gateway.toml"]).decode()
    return None, None


def check_toml(text: str, values: dict, mode: str) -> dict:
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        check(False, "gateway.toml parses as TOML", str(e))
        return {}
    check(True, "gateway.toml parses as TOML")
    sections = ["outseta", "server", "auth", "cache", "upstream_limit", "user_limit", "cors", "rule"]
    check(set(cfg) == set(sections), "gateway.toml has exactly the sections " + ", ".join(sections),
          f"got {sorted(cfg)}")
    want = drop_nulls(copy.deepcopy(values["config"]))
    host = values["sidecar"]["listenAddress"] if mode == "sidecar" else "0.0.0.0"
    want_server = dict(want.get("server") or {})
    want_server["listen"] = f"{host}:{values['containerPorts']['http']}"
    want_server["admin_listen"] = f"0.0.0.0:{values['containerPorts']['admin']}"
    for s in sections[:-1]:
        expected = want_server if s == "server" else (want.get(s) or {})
        check(cfg.get(s) == expected, f"[{s}] reads back equal to config.{s}",
              f"toml={cfg.get(s)!r} values={expected!r}")
    rules = want.get("rules") or []
    got = cfg.get("rule") or []
    check(len(got) == len(rules), f"{len(rules)} [[rule]] tables", f"got {len(got)}")
    for i, (g, w) in enumerate(zip(got, rules)):
        check(g == w, f"[[rule]] #{i + 1} ({w.get('name')!r}) reads back equal to config.rules[{i}]",
              f"toml={g!r} values={w!r}")
    return cfg


def gateway_check(binary: str, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTSETA_")}
        r = subprocess.run([binary, "check", "-c", path], capture_output=True, text=True, env=env, timeout=60)
        check(r.returncode == 0, "outseta-gateway check accepts gateway.toml",
              (r.stdout + r.stderr).strip().replace("\n", " | "))
    finally:
        os.unlink(path)


def check_pod(pod_spec: dict, pod_meta: dict, values: dict, cfg: dict, docs: list[dict], mode: str,
              where: str) -> None:
    containers = pod_spec.get("containers") or []
    gws = [c for c in containers if c.get("name") == "outseta-gateway"]
    if not check(len(gws) == 1, f"{where}: exactly one outseta-gateway container"):
        return
    gw = gws[0]
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    names = [v.get("name") for v in pod_spec.get("volumes") or []]
    check(len(names) == len(set(names)), f"{where}: volume names are unique", str(names))
    for c in containers:
        for m in c.get("volumeMounts") or []:
            check(m["name"] in volumes, f"{where}: mount {c['name']}:{m['name']} has a volume")
    port_names = [p.get("name") for c in containers for p in c.get("ports") or [] if p.get("name")]
    check(len(port_names) == len(set(port_names)), f"{where}: container port names are unique", str(port_names))

    # Security: pod or container level, the container's wins.
    psc, csc = pod_spec.get("securityContext") or {}, gw.get("securityContext") or {}
    eff = {**psc, **csc}
    check(eff.get("runAsNonRoot") is True, f"{where}: runAsNonRoot")
    check(eff.get("runAsUser", 0) != 0, f"{where}: runAsUser is not 0", str(eff.get("runAsUser")))
    check(csc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
    check(csc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation false")
    check((csc.get("capabilities") or {}).get("drop") == ["ALL"], f"{where}: capabilities drop ALL")
    check((eff.get("seccompProfile") or {}).get("type") == "RuntimeDefault", f"{where}: seccomp RuntimeDefault")
    check(pod_spec.get("automountServiceAccountToken") is False, f"{where}: no service account token")

    # Config: env names the file, the file's directory is the config volume.
    env = {e["name"]: e for e in gw.get("env") or []}
    check(env.get("OUTSETA_GATEWAY_CONFIG", {}).get("value") == "/etc/outseta-gateway/gateway.toml",
          f"{where}: OUTSETA_GATEWAY_CONFIG=/etc/outseta-gateway/gateway.toml")
    mounts = {m["mountPath"]: m for m in gw.get("volumeMounts") or []}
    cm = mounts.get("/etc/outseta-gateway")
    if check(cm is not None and "subPath" not in cm, f"{where}: config directory mounted whole (no subPath)"):
        vol = volumes.get(cm["name"], {})
        ref = (vol.get("configMap") or {}).get("name") or (vol.get("secret") or {}).get("secretName")
        holder, _ = gateway_toml(docs)
        check(holder is not None and ref == holder["metadata"]["name"]
              and ("configMap" in vol) == (holder["kind"] == "ConfigMap"),
              f"{where}: config volume refers to the rendered {holder and holder['kind']}", f"{ref}")
    for m in gw.get("volumeMounts") or []:
        check(m.get("readOnly") is True or m["mountPath"] == "/tmp", f"{where}: mount {m['mountPath']} read-only")

    # API key and secret: files from a Secret, never plain env.
    check("OUTSETA_API_KEY" not in env and "OUTSETA_API_SECRET" not in env,
          f"{where}: no OUTSETA_API_KEY/SECRET in plain env")
    for var in ("OUTSETA_API_KEY_FILE", "OUTSETA_API_SECRET_FILE"):
        if not check(var in env, f"{where}: {var} set"):
            continue
        path = env[var].get("value", "")
        d, f = os.path.dirname(path), os.path.basename(path)
        m = mounts.get(d)
        if not check(m is not None, f"{where}: {var} points into a mounted volume", path):
            continue
        sec = volumes.get(m["name"], {}).get("secret") or {}
        check(f in [i["path"] for i in sec.get("items") or []], f"{where}: {var} file is an item of the secret volume")
        name = sec.get("secretName")
        rendered = [s["metadata"]["name"] for s in by_kind(docs, "Secret")]
        check(name in rendered or name == values["outseta"].get("existingSecret"),
              f"{where}: API secret {name!r} is rendered or is outseta.existingSecret")
    if values.get("redis", {}).get("existingSecret"):
        path = env.get("OUTSETA_REDIS_URL_FILE", {}).get("value", "")
        check(os.path.dirname(path) in mounts, f"{where}: OUTSETA_REDIS_URL_FILE points into a mounted volume", path)

    # Ports and probes against gateway.toml.
    server = cfg.get("server") or {}
    admin_port = int(str(server.get("admin_listen", ":0")).rsplit(":", 1)[1])
    http_port = int(str(server.get("listen", ":0")).rsplit(":", 1)[1])
    ports = {p.get("name"): p["containerPort"] for p in gw.get("ports") or []}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        hg = (gw.get(probe) or {}).get("httpGet") or {}
        port = hg.get("port")
        port = ports.get(port, port) if isinstance(port, str) else port
        check(hg.get("path") == path and port == admin_port,
              f"{where}: {probe} GET {path} on the admin port {admin_port}", f"{hg}")
    if mode == "deployment":
        check(ports.get("http") == http_port, f"{where}: container port http = listen port {http_port}")
        check(str(server.get("listen", "")).startswith("0.0.0.0:"), f"{where}: listens on 0.0.0.0")
    else:
        check(str(server.get("listen", "")).startswith("127.0.0.1:"), f"{where}: sidecar listens on 127.0.0.1")
        check(http_port not in [p["containerPort"] for c in containers if c is not gw for p in c.get("ports") or []],
              f"{where}: no other container uses the gateway's port {http_port}")
    check(str(server.get("admin_listen", "")).startswith("0.0.0.0:"), f"{where}: admin listens on 0.0.0.0 (probes)")

    # Shutdown: the pod's grace covers preStop sleep + shutdown_grace.
    drain = duration_seconds(str(cfg.get("server", {}).get("shutdown_grace", "25s")))
    sleep = ((gw.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
    grace = pod_spec.get("terminationGracePeriodSeconds")
    if values.get("terminationGracePeriodSeconds") is None:
        want = sleep + drain + int(values.get("terminationGraceMarginSeconds") or 0)
        check(grace == want, f"{where}: terminationGracePeriodSeconds = preStop {sleep} + drain {drain} + margin",
              f"got {grace}, want {want}")
    check(isinstance(grace, int) and grace > sleep + drain,
          f"{where}: terminationGracePeriodSeconds > preStop + shutdown_grace", f"{grace} vs {sleep}+{drain}")

    # Roll on config change.
    ann = pod_meta.get("annotations") or {}
    _, text = gateway_toml(docs)
    check(ann.get("checksum/outseta-gateway-config") == hashlib.sha256((text or "").encode()).hexdigest(),
          f"{where}: checksum/outseta-gateway-config is the sha256 of gateway.toml")
    if values["outseta"].get("apiKey") and not values["outseta"].get("existingSecret"):
        check("checksum/outseta-gateway-secret" in ann, f"{where}: checksum/outseta-gateway-secret present")


def check_deployment_mode(docs: list[dict], values: dict, cfg: dict) -> None:
    deps = by_kind(docs, "Deployment")
    if not check(len(deps) == 1, "one Deployment"):
        return
    dep = deps[0]
    spec, tmpl = dep["spec"], dep["spec"]["template"]
    pod_labels = tmpl["metadata"].get("labels") or {}
    check(subset(spec["selector"]["matchLabels"], pod_labels), "Deployment selector matches its pod labels")
    hpa = values["autoscaling"]["enabled"]
    if hpa:
        check("replicas" not in spec, "no spec.replicas with the HPA")
    else:
        check(spec.get("replicas") == values["replicaCount"], f"replicas = {values['replicaCount']}")
    check_pod(tmpl["spec"], tmpl["metadata"], values, cfg, docs, "deployment", "Deployment")
    containers = tmpl["spec"]["containers"]
    cports = {p.get("name"): p["containerPort"] for c in containers for p in c.get("ports") or []}

    svcs = by_kind(docs, "Service")
    if check(len(svcs) == 1, "one Service"):
        svc = svcs[0]
        check(subset(svc["spec"]["selector"], pod_labels) and svc["spec"]["selector"],
              "Service selector matches the pod labels")
        sports = {p["name"]: p for p in svc["spec"]["ports"]}
        check(sports.get("http", {}).get("port") == values["service"]["port"], "Service port http")
        for p in svc["spec"]["ports"]:
            check(p["targetPort"] in cports, f"Service targetPort {p['targetPort']} is a container port")
        want_admin = values["service"]["exposeAdmin"] or values["metrics"]["serviceMonitor"]["enabled"]
        check(("admin" in sports) == bool(want_admin), f"admin port on the Service only when enabled ({want_admin})")

    pdbs = by_kind(docs, "PodDisruptionBudget")
    check(len(pdbs) == (1 if values["podDisruptionBudget"]["enabled"] else 0), "PodDisruptionBudget as configured")
    for p in pdbs:
        check(subset(p["spec"]["selector"]["matchLabels"], pod_labels), "PDB selector matches the pod labels")

    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    check(len(hpas) == (1 if hpa else 0), "HPA as configured")
    for h in hpas:
        ref = h["spec"]["scaleTargetRef"]
        check(ref["kind"] == "Deployment" and ref["name"] == dep["metadata"]["name"], "HPA targets the Deployment")
        check(h["spec"]["maxReplicas"] == values["autoscaling"]["maxReplicas"], "HPA maxReplicas")

    sms = by_kind(docs, "ServiceMonitor")
    check(len(sms) == (1 if values["metrics"]["serviceMonitor"]["enabled"] else 0), "ServiceMonitor as configured")
    for sm in sms:
        check(sm.get("apiVersion") == "monitoring.coreos.com/v1", "ServiceMonitor apiVersion monitoring.coreos.com/v1")
        svc = svcs[0] if svcs else {"metadata": {}, "spec": {"ports": []}}
        check(subset(sm["spec"]["selector"]["matchLabels"], svc["metadata"].get("labels") or {}),
              "ServiceMonitor selects the Service")
        for ep in sm["spec"]["endpoints"]:
            check(ep.get("port") in [p["name"] for p in svc["spec"]["ports"]] and ep.get("path") == "/metrics",
                  "ServiceMonitor scrapes /metrics on a Service port")
            for k in ("interval", "scrapeTimeout"):
                check(re.fullmatch(r"([0-9]+(ms|s|m|h))+", str(ep.get(k, "30s"))) is not None,
                      f"ServiceMonitor {k} is a Prometheus duration")

    sa = values["serviceAccount"]
    sas = by_kind(docs, "ServiceAccount")
    check(len(sas) == (1 if sa["create"] else 0), "ServiceAccount as configured")
    if sas:
        check(tmpl["spec"].get("serviceAccountName") == sas[0]["metadata"]["name"], "pod uses the ServiceAccount")


def check_secrets(docs: list[dict], values: dict) -> None:
    key, secret = values["outseta"].get("apiKey"), values["outseta"].get("apiSecret")
    made = [s for s in by_kind(docs, "Secret") if "api-key" in (s.get("data") or {})]
    if key and not values["outseta"].get("existingSecret"):
        if check(len(made) == 1, "the chart creates the API Secret"):
            d = made[0]["data"]
            check(base64.b64decode(d["api-key"]).decode() == str(key).strip()
                  and base64.b64decode(d["api-secret"]).decode() == str(secret).strip(),
                  "API Secret holds apiKey/apiSecret")
        # The values must appear nowhere else (ConfigMaps, env, annotations).
        for d in docs:
            if d in made:
                continue
            text = yaml.safe_dump(d)
            check(str(key) not in text and str(secret) not in text,
                  f"API key/secret absent from {d['kind']}/{d['metadata']['name']}")
    else:
        check(not made, "no API Secret rendered with existingSecret / without apiKey")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True, help="rendered multi-document YAML")
    ap.add_argument("--values", action="append", required=True,
                    help="values files in merge order (FILE or FILE:KEY for a parent's subchart section)")
    ap.add_argument("--kube-version", required=True, help="schema version, e.g. 1.37.0")
    ap.add_argument("--example", action="store_true", help="the sidecar example chart (parent + subchart)")
    ap.add_argument("--gateway-bin", default="", help="outseta-gateway binary for `check` (optional)")
    args = ap.parse_args()

    with open(args.manifest, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    values = load_values(args.values)
    mode = values.get("mode", "deployment")
    print(f"  {len(docs)} resources: " + ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in docs))

    schema_validate(docs, args.kube_version)
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    check(len(names) == len(set(names)), "resource kind/name pairs are unique")

    holder, text = gateway_toml(docs)
    if not check(text is not None, "a ConfigMap (or Secret) holds gateway.toml"):
        print(f"{PASSED} passed, {FAILED} failed")
        return 1
    check((holder["kind"] == "Secret") == bool(values.get("configInSecret")), "gateway.toml in a Secret iff configInSecret")
    cfg = check_toml(text, values, mode)
    if args.gateway_bin:
        gateway_check(args.gateway_bin, text)

    if args.example:
        deps = [d for d in by_kind(docs, "Deployment")
                if any(c.get("name") == "outseta-gateway" for c in d["spec"]["template"]["spec"]["containers"])]
        check(len(by_kind(docs, "Deployment")) == 1 and len(deps) == 1,
              "example: one Deployment (the app's), with the gateway container")
        for dep in deps:
            check_pod(dep["spec"]["template"]["spec"], dep["spec"]["template"]["metadata"], values, cfg, docs,
                      "sidecar", "example Deployment")
            other = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] != "outseta-gateway"]
            check(len(other) >= 1, "example: the app container is there too")
    elif mode == "sidecar":
        kinds = sorted({d["kind"] for d in docs})
        check(set(kinds) <= {"ConfigMap", "Secret"}, "sidecar mode renders only ConfigMap/Secret", str(kinds))
    else:
        check_deployment_mode(docs, values, cfg)
    check_secrets(docs, values)

    for d in docs:
        labels = d["metadata"].get("labels") or {}
        if not args.example or d["metadata"]["name"].endswith("outseta-gateway-config"):
            check("app.kubernetes.io/name" in labels, f"{d['kind']}/{d['metadata']['name']} has standard labels")

    print(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
