{{/* Names, labels and images shared by every template. */}}

{{- define "quiesce.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's base name: "quiesce" for a release called quiesce. */}}
{{- define "quiesce.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "quiesce.operator" -}}
{{- printf "%s-operator" (include "quiesce.fullname" .) -}}
{{- end -}}

{{/*
The sidecar's ClusterRole has a fixed name: the operator binds workload service
accounts to "quiesce-sidecar" (quiesce/operator/rbac.py, CLUSTER_ROLE). So one
quiesce per cluster.
*/}}
{{- define "quiesce.sidecarRole" -}}
quiesce-sidecar
{{- end -}}

{{/* The kopf peering object's name (ClusterKopfPeering, or KopfPeering per namespace). */}}
{{- define "quiesce.peering" -}}
{{- include "quiesce.fullname" . -}}
{{- end -}}

{{- define "quiesce.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "quiesce.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: quiesce
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "quiesce.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quiesce.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "quiesce.operatorSelectorLabels" -}}
{{ include "quiesce.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "quiesce.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "quiesce.sidecarImage" -}}
{{- $repository := default .Values.image.repository .Values.sidecar.image.repository -}}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.sidecar.image.tag -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}

{{/*
The operator's configuration file (quiesce/config.py): plan defaults, the
sidecar and Consul. `quiesce plan --defaults` reads the same file.
*/}}
{{- define "quiesce.config" -}}
{{- $sidecar := dict
  "image" (include "quiesce.sidecarImage" .)
  "imagePullPolicy" .Values.sidecar.image.pullPolicy
  "resources" .Values.sidecar.resources
  "runAsUser" .Values.sidecar.runAsUser
  "logFormat" .Values.sidecar.logFormat -}}
{{- $consul := dict "address" .Values.consul.address -}}
{{- with .Values.consul.tokenSecret }}{{ $_ := set $consul "tokenSecret" . }}{{ end -}}
{{- with .Values.consul.caSecret }}{{ $_ := set $consul "caSecret" . }}{{ end -}}
{{- $config := dict "sidecar" $sidecar "consul" $consul -}}
{{- with .Values.plan }}{{ $_ := set $config "plan" . }}{{ end -}}
{{- with .Values.outerBudgets }}{{ $_ := set $config "outerBudgets" . }}{{ end -}}
{{- toYaml $config -}}
{{- end -}}
