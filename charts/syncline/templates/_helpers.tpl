{{/* Chart name, truncated to 63 characters. */}}
{{- define "syncline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, unless it already contains the chart name. */}}
{{- define "syncline.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "syncline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of everything the chart installs. */}}
{{- define "syncline.commonLabels" -}}
helm.sh/chart: {{ include "syncline.chart" . }}
app.kubernetes.io/name: {{ include "syncline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: syncline
{{- end }}

{{/* Labels of the operator's own objects. */}}
{{- define "syncline.labels" -}}
{{ include "syncline.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "syncline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "syncline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "syncline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "syncline.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The runner ServiceAccount's name, or "" when runner pods use their namespace's default account. */}}
{{- define "syncline.runnerServiceAccountName" -}}
{{- if .Values.runner.serviceAccount.name }}
{{- .Values.runner.serviceAccount.name }}
{{- else if and .Values.runner.serviceAccount.create .Values.watchNamespaces }}
{{- printf "%s-runner" (include "syncline.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "syncline.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "syncline.runnerImage" -}}
{{- if .Values.runner.image.repository }}
{{- printf "%s:%s" .Values.runner.image.repository (default .Chart.AppVersion .Values.runner.image.tag) }}
{{- else }}
{{- include "syncline.image" . }}
{{- end }}
{{- end }}

{{/* The env var a Secret key reaches a Syncline process in (core/secrets.ts secretEnvName). */}}
{{- define "syncline.secretEnvName" -}}
{{- printf "SYNCLINE_SECRET_%s__%s" (regexReplaceAll "[^A-Za-z0-9]" .name "_" | upper) (regexReplaceAll "[^A-Za-z0-9]" .key "_" | upper) }}
{{- end }}

{{/* The diff store's secretKeyRefs that are set, as a list of {name, key}. */}}
{{- define "syncline.diffStoreSecretRefs" -}}
{{- $refs := list }}
{{- range $ref := list .Values.diffStore.s3.accessKeyIdSecretRef .Values.diffStore.s3.secretAccessKeySecretRef .Values.diffStore.gcs.serviceAccountKeySecretRef }}
{{- if and $ref.name $ref.key }}
{{- $refs = append $refs $ref }}
{{- end }}
{{- end }}
{{- toJson $refs }}
{{- end }}

{{/* The namespaces RoleBindings go to, or an empty list for cluster-wide. */}}
{{- define "syncline.watchNamespaces" -}}
{{- toJson (uniq .Values.watchNamespaces) }}
{{- end }}
