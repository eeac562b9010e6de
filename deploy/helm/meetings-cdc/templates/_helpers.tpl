{{- define "meetings-cdc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "meetings-cdc.fullname" -}}
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

{{/* Selector labels: the instance only, as in the kustomize base. */}}
{{- define "meetings-cdc.selectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "meetings-cdc.labels" -}}
{{ include "meetings-cdc.selectorLabels" . }}
app.kubernetes.io/name: {{ include "meetings-cdc.name" . }}
app.kubernetes.io/component: connector
app.kubernetes.io/part-of: meetings-cdc
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "meetings-cdc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "meetings-cdc.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- /* The scrape job's name (the Service label the ServiceMonitor's jobLabel names): the
alert rules select job=~".*meetings-cdc.*", so it contains "meetings-cdc" whatever the
release name, nameOverride or fullnameOverride. */}}
{{- define "meetings-cdc.jobName" -}}
{{- $fullname := include "meetings-cdc.fullname" . }}
{{- if contains "meetings-cdc" $fullname }}
{{- $fullname }}
{{- else }}
{{- printf "meetings-cdc-%s" $fullname | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- /* The Secret the credentials come from: the chart's own (secret.create) or an existing one. */}}
{{- define "meetings-cdc.secretName" -}}
{{- if .Values.secret.create }}
{{- printf "%s-secrets" (include "meetings-cdc.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- required "existingSecret.name is required (or secret.create=true)" .Values.existingSecret.name }}
{{- end }}
{{- end }}
