{{- define "llm-mcp-hub.fullname" -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llm-mcp-hub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "llm-mcp-hub.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "llm-mcp-hub.labels" -}}
app.kubernetes.io/name: llm-mcp-hub
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "llm-mcp-hub.selectorLabels" -}}
app.kubernetes.io/name: llm-mcp-hub
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/*
The namespace the operator watches: operator.watchNamespace, else the release's own; empty when
operator.watchAllNamespaces asks for every namespace.
*/}}
{{- define "llm-mcp-hub.watchNamespace" -}}
{{- if .Values.operator.watchAllNamespaces -}}
{{- if .Values.operator.watchNamespace -}}
{{- fail "operator.watchNamespace and operator.watchAllNamespaces exclude each other: set one" -}}
{{- end -}}
{{- else -}}
{{- .Values.operator.watchNamespace | default .Release.Namespace -}}
{{- end -}}
{{- end }}
