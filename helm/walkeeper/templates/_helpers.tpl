{{/* Chart name (nameOverride or the chart name), 63 characters at most. */}}
{{- define "walkeeper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name prefix of every resource. */}}
{{- define "walkeeper.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "walkeeper.operatorName" -}}
{{- printf "%s-operator" (include "walkeeper.fullname" .) -}}
{{- end -}}

{{- define "walkeeper.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object of the release. */}}
{{- define "walkeeper.labels" -}}
helm.sh/chart: {{ include "walkeeper.chart" . }}
app.kubernetes.io/name: {{ include "walkeeper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: walkeeper
{{- end -}}

{{/* Labels of the operator's objects, including its selector labels. */}}
{{- define "walkeeper.operatorLabels" -}}
{{ include "walkeeper.labels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Selector of the operator pods (stable across upgrades: never add labels here). */}}
{{- define "walkeeper.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "walkeeper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "walkeeper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "walkeeper.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The namespace the operator watches; "" when it watches all namespaces. */}}
{{- define "walkeeper.watchNamespace" -}}
{{- if not .Values.watchAllNamespaces -}}
{{- default .Release.Namespace .Values.watchNamespace -}}
{{- end -}}
{{- end -}}

{{/* "true" when leader election is on: asked for, or forced by more than one replica. */}}
{{- define "walkeeper.leaderElect" -}}
{{- if or .Values.operator.leaderElection.enabled (gt (int .Values.operator.replicas) 1) -}}
true
{{- else -}}
false
{{- end -}}
{{- end -}}

{{- define "walkeeper.operatorImage" -}}
{{- $img := .Values.operator.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}
