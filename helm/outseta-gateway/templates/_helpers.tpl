{{/*
Helpers. Most of them take a "gateway context": a map with `Values` (this chart's values) and
`Release`. Inside this chart that is the root context `.`; a parent chart that uses sidecar
mode builds one with (dict "Values" (index .Values "outseta-gateway") "Release" .Release),
which is why nothing here reads `.Chart` except the labels of resources this chart renders.
*/}}

{{- define "outseta-gateway.name" -}}
{{- default "outseta-gateway" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "outseta-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "outseta-gateway.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "outseta-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "outseta-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of the resources this chart renders (root context only). */}}
{{- define "outseta-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "outseta-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: gateway
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "outseta-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "outseta-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "outseta-gateway.image" -}}
{{- $repo := required "image.repository is required" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- $tag := .Values.image.tag }}
{{- $chart := index . "Chart" }}
{{- if and (not $tag) $chart }}{{ $tag = $chart.AppVersion }}{{ end }}
{{- printf "%s:%s" $repo (required "image.tag (or image.digest) is required" $tag) }}
{{- end }}
{{- end }}

{{/* Name of the ConfigMap (or Secret, with configInSecret) holding gateway.toml. */}}
{{- define "outseta-gateway.configName" -}}
{{- printf "%s-config" (include "outseta-gateway.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of the Secret with the API key and secret ("" when there is none). */}}
{{- define "outseta-gateway.apiSecretName" -}}
{{- if .Values.outseta.existingSecret }}
{{- .Values.outseta.existingSecret }}
{{- else if .Values.outseta.apiKey }}
{{- printf "%s-api" (include "outseta-gateway.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "outseta-gateway.apiSecretKeys" -}}
{{- if .Values.outseta.existingSecret -}}
{{- toJson .Values.outseta.existingSecretKeys }}
{{- else -}}
{"apiKey":"api-key","apiSecret":"api-secret"}
{{- end }}
{{- end }}

{{/* ===== checks: fail early, with a message saying what to change ===== */}}

{{/*
Whether any rule sends the API key upstream ("api_key" is the gateway's default credential).
Prints the first such rule's name, or nothing.
*/}}
{{- define "outseta-gateway.apiKeyRule" -}}
{{- $found := "" }}
{{- range $i, $r := .Values.config.rules }}
{{- if and (not $found) (kindIs "map" $r) }}
{{- $cred := "api_key" }}
{{- if hasKey $r "credential" }}{{ $cred = toString (index $r "credential") }}{{ end }}
{{- if eq $cred "api_key" }}{{ $found = toString (default (printf "#%d" (add1 $i)) (index $r "name")) }}{{ end }}
{{- end }}
{{- end }}
{{- $found }}
{{- end }}

{{/*
All checks that do not depend on where the gateway runs. Renders nothing; fails with a clear
message. Call with a gateway context plus "replicas" (the number of pods that may run at once,
each with its own gateway), e.g. (dict "Values" .Values "Release" .Release "replicas" 3).
*/}}
{{- define "outseta-gateway.validate" -}}
{{- $v := .Values }}
{{- if not (has $v.mode (list "deployment" "sidecar")) }}
{{- fail (printf "outseta-gateway: mode must be \"deployment\" or \"sidecar\", got %q" (toString $v.mode)) }}
{{- end }}
{{- $cfg := required "outseta-gateway: config is required" $v.config }}
{{- $ul := default dict (index $cfg "upstream_limit") }}
{{- $store := toString (default "memory" (index $ul "store")) }}
{{- $replicas := int (default 1 (index . "replicas")) }}
{{- if and (gt $replicas 1) (ne $store "redis") }}
{{- fail (printf "outseta-gateway: %d gateway replicas with config.upstream_limit.store = %q: %d in-memory budgets would multiply Outseta's 4 req/s limit (each replica would allow config.upstream_limit.rate = %q on its own). Set config.upstream_limit.store to \"redis\" and config.upstream_limit.redis_url so that all replicas share one budget, or run a single replica (replicaCount: 1, autoscaling.maxReplicas: 1)." $replicas $store $replicas (toString (default "4/s" (index $ul "rate")))) }}
{{- end }}
{{- if and (gt $replicas 1) (eq $store "redis") (not $v.redis.existingSecret) }}
{{- $url := toString (default "redis://127.0.0.1:6379" (index $ul "redis_url")) }}
{{- if regexMatch "^rediss?://([^@/]*@)?(127\\.[0-9.]+|localhost|\\[::1\\])(:[0-9]+)?(/.*)?$" $url }}
{{- fail (printf "outseta-gateway: config.upstream_limit.redis_url = %q is a loopback address: every pod would have its own Redis, hence its own budget. Point it at a Redis shared by all %d replicas, or give its URL in a Secret (redis.existingSecret)." $url $replicas) }}
{{- end }}
{{- end }}
{{- if and $v.outseta.existingSecret (or $v.outseta.apiKey $v.outseta.apiSecret) }}
{{- fail "outseta-gateway: set either outseta.existingSecret or outseta.apiKey/outseta.apiSecret, not both" }}
{{- end }}
{{- if and (not $v.outseta.existingSecret) (ne (empty $v.outseta.apiKey) (empty $v.outseta.apiSecret)) }}
{{- fail "outseta-gateway: outseta.apiKey and outseta.apiSecret must be set together" }}
{{- end }}
{{- $rule := include "outseta-gateway.apiKeyRule" . }}
{{- if and $rule (not (include "outseta-gateway.apiSecretName" .)) }}
{{- fail (printf "outseta-gateway: rule %q uses credential \"api_key\" (the default credential), so the gateway needs the Outseta API key: set outseta.existingSecret to a Secret with the keys %q and %q, or set outseta.apiKey and outseta.apiSecret (the chart then creates the Secret)." $rule $v.outseta.existingSecretKeys.apiKey $v.outseta.existingSecretKeys.apiSecret) }}
{{- end }}
{{- if not (kindIs "slice" (default list (index $cfg "rules"))) }}
{{- fail "outseta-gateway: config.rules must be a list of maps" }}
{{- end }}
{{- range $k := list "listen" "admin_listen" }}
{{- if hasKey (default dict (index $cfg "server")) $k }}
{{- fail (printf "outseta-gateway: config.server.%s is set by the chart; change containerPorts (and sidecar.listenAddress) instead" $k) }}
{{- end }}
{{- end }}
{{- end }}

{{/* ===== durations: terminationGracePeriodSeconds from config.server.shutdown_grace ===== */}}

{{/*
Whole seconds (rounded up) of a humantime duration string such as "25s", "1m 30s", "500ms".
*/}}
{{- define "outseta-gateway.durationSeconds" -}}
{{- $s := trim (toString .) }}
{{- if not (regexMatch "^([0-9]+ *[a-zA-Z]+ *)+$" $s) }}
{{- fail (printf "outseta-gateway: cannot read the duration %q (expected e.g. \"25s\", \"1m 30s\")" $s) }}
{{- end }}
{{- $ms := 0.0 }}
{{- range $part := regexFindAll "[0-9]+ *[a-zA-Z]+" $s -1 }}
{{- $n := float64 (regexFind "^[0-9]+" $part) }}
{{- $unit := regexFind "[a-zA-Z]+$" $part }}
{{- if has $unit (list "nsec" "ns") }}{{ $ms = addf $ms (divf $n 1000000) }}
{{- else if has $unit (list "usec" "us") }}{{ $ms = addf $ms (divf $n 1000) }}
{{- else if has $unit (list "msec" "ms") }}{{ $ms = addf $ms $n }}
{{- else if has $unit (list "seconds" "second" "sec" "s") }}{{ $ms = addf $ms (mulf $n 1000) }}
{{- else if has $unit (list "minutes" "minute" "min" "m") }}{{ $ms = addf $ms (mulf $n 60000) }}
{{- else if has $unit (list "hours" "hour" "hr" "h") }}{{ $ms = addf $ms (mulf $n 3600000) }}
{{- else }}{{ fail (printf "outseta-gateway: unknown unit %q in the duration %q" $unit $s) }}
{{- end }}
{{- end }}
{{- int64 (ceil (divf $ms 1000)) }}
{{- end }}

{{/* preStop sleep seconds actually used (0 when disabled or the cluster is older than 1.30). */}}
{{- define "outseta-gateway.preStopSleep" -}}
{{- $s := int (default 0 .Values.preStopSleepSeconds) }}
{{- $kube := "v1.30.0" }}
{{- with index . "Capabilities" }}{{ $kube = .KubeVersion.Version }}{{ end }}
{{- if and (gt $s 0) (semverCompare ">=1.30-0" $kube) }}{{ $s }}{{ else }}0{{ end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the preStop sleep, then the gateway's own drain
(config.server.shutdown_grace, default 25s), plus a margin, so Kubernetes never SIGKILLs a
drain that is still within its grace.
*/}}
{{- define "outseta-gateway.terminationGracePeriodSeconds" -}}
{{- $fixed := index .Values "terminationGracePeriodSeconds" }}
{{- if not (kindIs "invalid" $fixed) }}
{{- int $fixed }}
{{- else }}
{{- $grace := "25s" }}
{{- with index .Values.config "server" }}{{ with index . "shutdown_grace" }}{{ $grace = . }}{{ end }}{{ end }}
{{- $drain := int (include "outseta-gateway.durationSeconds" $grace) }}
{{- add (int (include "outseta-gateway.preStopSleep" .)) $drain (int (default 0 .Values.terminationGraceMarginSeconds)) }}
{{- end }}
{{- end }}

{{/* ===== gateway.toml ===== */}}

{{/*
A TOML basic string: backslash and quote escaped, \n \t \r as such, every other control
character (U+0000-U+001F, U+007F) as \uXXXX; everything else verbatim (UTF-8).
*/}}
{{- define "outseta-gateway.toml.string" -}}
{{- $s := toString . | replace "\\" "\\\\" | replace "\"" "\\\"" | replace "\n" "\\n" | replace "\t" "\\t" | replace "\r" "\\r" }}
{{- range $c := until 32 }}{{ $s = replace (printf "%c" $c) (printf "\\u%04X" $c) $s }}{{ end }}
{{- $s = replace "\u007f" "\\u007F" $s }}
{{- printf "\"%s\"" $s }}
{{- end }}

{{- define "outseta-gateway.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" (toString .) }}{{ . }}{{ else }}{{ include "outseta-gateway.toml.string" . }}{{ end }}
{{- end }}

{{/*
A TOML value from a values.yaml value: string, bool, number, list (array) or map (inline
table, keys sorted). Numbers: YAML integers reach templates as float64 in helm, so whole
numbers are printed as integers (burst = 4, not 4.0 or 4e+00).
*/}}
{{- define "outseta-gateway.toml.value" -}}
{{- $v := . }}
{{- if kindIs "string" $v }}
{{- include "outseta-gateway.toml.string" $v }}
{{- else if kindIs "bool" $v }}
{{- $v }}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) }}
{{- if eq (float64 $v) (float64 (int64 $v)) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "int32" $v) (kindIs "uint64" $v) }}
{{- $v }}
{{- else if kindIs "slice" $v }}
{{- "[" }}
{{- range $i, $x := $v }}
{{- if $i }}, {{ end }}
{{- if kindIs "invalid" $x }}{{ fail "outseta-gateway: null inside a list in config" }}{{ end }}
{{- include "outseta-gateway.toml.value" $x }}
{{- end }}
{{- "]" }}
{{- else if kindIs "map" $v }}
{{- $keys := list }}
{{- range $k, $x := $v }}{{ if not (kindIs "invalid" $x) }}{{ $keys = append $keys $k }}{{ end }}{{ end }}
{{- if not $keys }}{}{{ else }}
{{- "{ " }}
{{- range $i, $k := sortAlpha $keys }}
{{- if $i }}, {{ end }}
{{- include "outseta-gateway.toml.key" $k }} = {{ include "outseta-gateway.toml.value" (index $v $k) }}
{{- end }}
{{- " }" }}
{{- end }}
{{- else }}
{{- fail (printf "outseta-gateway: cannot write a %s value into gateway.toml" (kindOf $v)) }}
{{- end }}
{{- end }}

{{/* One [table]: (dict "name" "cache" "values" MAP). Null values are left out. */}}
{{- define "outseta-gateway.toml.table" -}}
[{{ .name }}]
{{- $m := default dict .values }}
{{- if not (kindIs "map" $m) }}{{ fail (printf "outseta-gateway: config.%s must be a map" .name) }}{{ end }}
{{- range $k := keys $m | sortAlpha }}
{{- $x := index $m $k }}
{{- if not (kindIs "invalid" $x) }}
{{ include "outseta-gateway.toml.key" $k }} = {{ include "outseta-gateway.toml.value" $x }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The whole gateway.toml for a gateway context. [server] listen/admin_listen depend on the mode:
deployment: 0.0.0.0 for both; sidecar: the HTTP port on sidecar.listenAddress (localhost).
*/}}
{{- define "outseta-gateway.config" -}}
{{- $v := .Values }}
{{- $cfg := $v.config }}
{{- $listenHost := "0.0.0.0" }}
{{- if eq $v.mode "sidecar" }}{{ $listenHost = $v.sidecar.listenAddress }}{{ end }}
{{- $server := merge (dict "listen" (printf "%s:%d" $listenHost (int $v.containerPorts.http)) "admin_listen" (printf "0.0.0.0:%d" (int $v.containerPorts.admin))) (default dict (index $cfg "server")) -}}
# gateway.toml rendered by the outseta-gateway Helm chart from `config` in its values.
# Edit the values, not this file: `helm upgrade` rewrites it (and rolls the pods).

{{ include "outseta-gateway.toml.table" (dict "name" "outseta" "values" (index $cfg "outseta")) }}

{{ include "outseta-gateway.toml.table" (dict "name" "server" "values" $server) }}

{{ include "outseta-gateway.toml.table" (dict "name" "auth" "values" (index $cfg "auth")) }}

{{ include "outseta-gateway.toml.table" (dict "name" "cache" "values" (index $cfg "cache")) }}

{{ include "outseta-gateway.toml.table" (dict "name" "upstream_limit" "values" (index $cfg "upstream_limit")) }}

{{ include "outseta-gateway.toml.table" (dict "name" "user_limit" "values" (index $cfg "user_limit")) }}

{{ include "outseta-gateway.toml.table" (dict "name" "cors" "values" (index $cfg "cors")) }}
{{- $order := list "name" "methods" "path" "when" "auth" "credential" "cache" "query_allow" "query_set" "body_allow" "body_set" "response_when" "invalidates" }}
{{- range $i, $r := default list (index $cfg "rules") }}
{{- if not (kindIs "map" $r) }}{{ fail (printf "outseta-gateway: config.rules[%d] must be a map" $i) }}{{ end }}
{{- $keys := $order }}
{{- range $k := keys $r | sortAlpha }}{{ if not (has $k $order) }}{{ $keys = append $keys $k }}{{ end }}{{ end }}
{{ "" }}
[[rule]]
{{- range $k := $keys }}
{{- if hasKey $r $k }}
{{- $x := index $r $k }}
{{- if not (kindIs "invalid" $x) }}
{{ include "outseta-gateway.toml.key" $k }} = {{ include "outseta-gateway.toml.value" $x }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{ "" }}
{{- end }}

{{/* Pod template annotations that roll the pods when gateway.toml or the chart's Secret changes. */}}
{{- define "outseta-gateway.checksums" -}}
checksum/outseta-gateway-config: {{ include "outseta-gateway.config" . | sha256sum }}
{{- if and (not .Values.outseta.existingSecret) .Values.outseta.apiKey }}
checksum/outseta-gateway-secret: {{ printf "%s\n%s" .Values.outseta.apiKey .Values.outseta.apiSecret | sha256sum }}
{{- end }}
{{- end }}

{{/* ===== the container and its volumes (shared by the Deployment and sidecar mode) ===== */}}

{{- define "outseta-gateway.volumeName.config" -}}outseta-gateway-config{{- end }}
{{- define "outseta-gateway.volumeName.api" -}}outseta-gateway-api{{- end }}
{{- define "outseta-gateway.volumeName.redis" -}}outseta-gateway-redis{{- end }}
{{- define "outseta-gateway.volumeName.tmp" -}}outseta-gateway-tmp{{- end }}

{{/*
The gateway container, as one item of a `containers:` (or `initContainers:`) list.
Context: a gateway context; optional keys "native" (true: add restartPolicy: Always, for a
native sidecar under initContainers, Kubernetes >= 1.29).
*/}}
{{- define "outseta-gateway.container" -}}
{{- $v := .Values }}
{{- $sidecar := eq $v.mode "sidecar" }}
{{- $adminPortName := ternary "gw-admin" "admin" $sidecar }}
{{- $keys := include "outseta-gateway.apiSecretKeys" . | fromJson -}}
- name: outseta-gateway
  image: {{ include "outseta-gateway.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if index . "native" }}
  restartPolicy: Always
  {{- end }}
  args: ["serve"]
  env:
    - name: OUTSETA_GATEWAY_CONFIG
      value: /etc/outseta-gateway/gateway.toml
    {{- if include "outseta-gateway.apiSecretName" . }}
    - name: OUTSETA_API_KEY_FILE
      value: {{ printf "/var/run/secrets/outseta-gateway/%s" $keys.apiKey | quote }}
    - name: OUTSETA_API_SECRET_FILE
      value: {{ printf "/var/run/secrets/outseta-gateway/%s" $keys.apiSecret | quote }}
    {{- end }}
    {{- if $v.redis.existingSecret }}
    # Overrides config.upstream_limit.redis_url.
    - name: OUTSETA_REDIS_URL_FILE
      value: {{ printf "/var/run/secrets/outseta-gateway-redis/%s" $v.redis.existingSecretKey | quote }}
    {{- end }}
    {{- with $v.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    {{- if not $sidecar }}
    - name: http
      containerPort: {{ int $v.containerPorts.http }}
      protocol: TCP
    {{- end }}
    - name: {{ $adminPortName }}
      containerPort: {{ int $v.containerPorts.admin }}
      protocol: TCP
  {{- with $v.livenessProbe }}
  livenessProbe:
    {{- $p := deepCopy . }}
    {{- if and $p.httpGet (eq (toString $p.httpGet.port) "admin") }}{{ $_ := set $p.httpGet "port" $adminPortName }}{{ end }}
    {{- toYaml $p | nindent 4 }}
  {{- end }}
  {{- with $v.readinessProbe }}
  readinessProbe:
    {{- $p := deepCopy . }}
    {{- if and $p.httpGet (eq (toString $p.httpGet.port) "admin") }}{{ $_ := set $p.httpGet "port" $adminPortName }}{{ end }}
    {{- toYaml $p | nindent 4 }}
  {{- end }}
  {{- $sleep := int (include "outseta-gateway.preStopSleep" .) }}
  {{- if gt $sleep 0 }}
  lifecycle:
    preStop:
      sleep:
        seconds: {{ $sleep }}
  {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - name: {{ include "outseta-gateway.volumeName.config" . }}
      mountPath: /etc/outseta-gateway
      readOnly: true
    {{- if include "outseta-gateway.apiSecretName" . }}
    - name: {{ include "outseta-gateway.volumeName.api" . }}
      mountPath: /var/run/secrets/outseta-gateway
      readOnly: true
    {{- end }}
    {{- if $v.redis.existingSecret }}
    - name: {{ include "outseta-gateway.volumeName.redis" . }}
      mountPath: /var/run/secrets/outseta-gateway-redis
      readOnly: true
    {{- end }}
    - name: {{ include "outseta-gateway.volumeName.tmp" . }}
      mountPath: /tmp
{{- end }}

{{/*
The volumes the container mounts, as items of a `volumes:` list. The config directory is
mounted whole (not with subPath) so the kubelet's updates reach the gateway's file watcher.
Secret files are 0440 with the Deployment (fsGroup 10001 makes them readable); in sidecar mode
the pod's fsGroup is not ours to set, so they are 0444 (visible only to containers of the same
pod that mount the volume).
*/}}
{{- define "outseta-gateway.volumes" -}}
{{- $v := .Values }}
{{- $mode := ternary 292 288 (eq $v.mode "sidecar") }}
{{- $keys := include "outseta-gateway.apiSecretKeys" . | fromJson -}}
- name: {{ include "outseta-gateway.volumeName.config" . }}
  {{- if $v.configInSecret }}
  secret:
    secretName: {{ include "outseta-gateway.configName" . }}
    defaultMode: {{ $mode }}
  {{- else }}
  configMap:
    name: {{ include "outseta-gateway.configName" . }}
  {{- end }}
{{- with include "outseta-gateway.apiSecretName" . }}
- name: {{ include "outseta-gateway.volumeName.api" $ }}
  secret:
    secretName: {{ . }}
    defaultMode: {{ $mode }}
    items:
      - key: {{ $keys.apiKey }}
        path: {{ $keys.apiKey }}
      - key: {{ $keys.apiSecret }}
        path: {{ $keys.apiSecret }}
{{- end }}
{{- if $v.redis.existingSecret }}
- name: {{ include "outseta-gateway.volumeName.redis" . }}
  secret:
    secretName: {{ $v.redis.existingSecret }}
    defaultMode: {{ $mode }}
    items:
      - key: {{ $v.redis.existingSecretKey }}
        path: {{ $v.redis.existingSecretKey }}
{{- end }}
- name: {{ include "outseta-gateway.volumeName.tmp" . }}
  emptyDir:
    sizeLimit: 16Mi
{{- end }}
