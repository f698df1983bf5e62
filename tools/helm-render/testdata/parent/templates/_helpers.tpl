{{- define "parent.greet" -}}greet {{ . }}{{- end }}
