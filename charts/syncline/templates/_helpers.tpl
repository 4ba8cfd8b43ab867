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

{{/* The Secret holding the run API's certificate (tls.crt, tls.key); empty when the API serves plain HTTP. */}}
{{- define "syncline.apiTlsSecret" -}}
{{- if .Values.api.enabled }}
{{- $mode := .Values.api.tls.mode }}
{{- if eq $mode "secret" }}
{{- required "api.tls.secretName is required with api.tls.mode=secret" .Values.api.tls.secretName }}
{{- else if or (eq $mode "selfSigned") (eq $mode "certManager") }}
{{- printf "%s-api-tls" (include "syncline.fullname" .) }}
{{- else if ne $mode "none" }}
{{- fail (printf "api.tls.mode must be selfSigned, certManager, secret or none, not %q" $mode) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The DNS names of the run API's Service (and any extra ones). */}}
{{- define "syncline.apiDnsNames" -}}
{{- $svc := printf "%s-api" (include "syncline.fullname" .) }}
{{- $names := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) }}
{{- toJson (concat $names .Values.api.tls.extraDnsNames) }}
{{- end }}

{{/* The run API's environment: port, TLS files, audiences, rate limit, webhooks and their secrets. */}}
{{- define "syncline.apiEnv" -}}
{{- if not .Values.api.enabled }}
- name: SYNCLINE_API_DISABLED
  value: "true"
{{- else }}
- name: SYNCLINE_API_PORT
  value: {{ .Values.api.port | quote }}
- name: SYNCLINE_API_RATE_LIMIT
  value: {{ .Values.api.rateLimitPerMinute | quote }}
{{- with .Values.api.audiences }}
- name: SYNCLINE_API_AUDIENCES
  value: {{ join "," . | quote }}
{{- end }}
{{- if include "syncline.apiTlsSecret" . }}
- name: SYNCLINE_API_TLS_CERT_FILE
  value: /etc/syncline/api-tls/tls.crt
- name: SYNCLINE_API_TLS_KEY_FILE
  value: /etc/syncline/api-tls/tls.key
{{- end }}
{{- with .Values.api.webhooks }}
- name: SYNCLINE_WEBHOOKS
  value: {{ include "syncline.webhookList" $ | quote }}
{{- range . }}
- name: {{ printf "SYNCLINE_WEBHOOK_SECRET_%s" (.name | upper | replace "-" "_") }}
  valueFrom:
    secretKeyRef:
      name: {{ required "api.webhooks[].secretRef.name is required" .secretRef.name }}
      key: {{ required "api.webhooks[].secretRef.key is required" .secretRef.key }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "syncline.webhookList" -}}
{{- $items := list }}
{{- range .Values.api.webhooks }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" (.name | default "")) }}
{{- fail (printf "api.webhooks[].name %q must be a DNS label" (.name | default "")) }}
{{- end }}
{{- if not (has .type (list "dbtCloud" "fivetran")) }}
{{- fail (printf "api.webhooks[%s].type must be dbtCloud or fivetran" .name) }}
{{- end }}
{{- $items = append $items (printf "%s=%s" .name .type) }}
{{- end }}
{{- join "," $items }}
{{- end }}
