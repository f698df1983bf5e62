{{/*
Sidecar mode: put the gateway into a pod of your own chart.

Add this chart as a dependency of your chart, set `outseta-gateway.mode: sidecar` in your
values (this chart then renders only the gateway's ConfigMap/Secret), and in your pod template:

  {{- $gw := dict "Values" (index .Values "outseta-gateway") "Release" .Release "Capabilities" .Capabilities "replicas" (int .Values.replicaCount) }}
  ...
      annotations:
        {{- include "outseta-gateway.checksums" $gw | nindent 8 }}
    spec:
      terminationGracePeriodSeconds: {{ include "outseta-gateway.terminationGracePeriodSeconds" $gw }}
      containers:
        - name: app
          ...                      # calls http://127.0.0.1:8080/api/v1/...
        {{- include "outseta-gateway.sidecar" $gw | nindent 8 }}
      volumes:
        {{- include "outseta-gateway.sidecarVolumes" $gw | nindent 8 }}

"replicas" is the most pods your Deployment runs at once (with an HPA: its maxReplicas); more
than one requires config.upstream_limit.store = "redis", as in deployment mode.
Add "native" true and include it under initContainers instead for a native sidecar
(Kubernetes >= 1.29): it then starts before and stops after your app container.
See examples/sidecar/ for a complete chart.
*/}}

{{- define "outseta-gateway.sidecar" -}}
{{- if ne (toString .Values.mode) "sidecar" }}
{{- fail "outseta-gateway.sidecar: set mode: sidecar in this chart's values (outseta-gateway.mode in the parent), or the chart also runs its own Deployment" }}
{{- end }}
{{- include "outseta-gateway.validate" . }}
{{- include "outseta-gateway.container" . }}
{{- end }}

{{- define "outseta-gateway.sidecarVolumes" -}}
{{- include "outseta-gateway.volumes" . }}
{{- end }}
