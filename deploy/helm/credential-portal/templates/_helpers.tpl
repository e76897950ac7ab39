{{/* The release's name for its objects, at most 63 characters (a DNS label). */}}
{{- define "portal.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "portal.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "portal.labels" -}}
{{ include "portal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "portal.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* Whether the chart keeps a Secret of its own: some secret is given as a value. */}}
{{- define "portal.ownSecret" -}}
{{- range $name, $s := .Values.secrets -}}
{{- if and $s.value (not $s.existingSecret) }}yes{{ end -}}
{{- end -}}
{{- with .Values.migrations.databaseURL -}}
{{- if and .value (not .existingSecret) }}yes{{ end -}}
{{- end -}}
{{- end -}}

{{/* The portal's variable for each entry of .Values.secrets. */}}
{{- define "portal.secretVars" -}}
databaseURL: DATABASE_URL
oidcClientSecret: PORTAL_OIDC_CLIENT_SECRET
smtpURL: PORTAL_SMTP_URL
staffWebhookURL: PORTAL_STAFF_WEBHOOK_URL
{{- end -}}

{{/*
The secret settings, by reference (never by value, so `kubectl describe` shows none). Values given
in values.yaml live in the chart's Secret under the variable's name.
*/}}
{{- define "portal.secretEnv" -}}
{{- $root := . -}}
{{- $vars := include "portal.secretVars" . | fromYaml -}}
{{- range $name, $s := .Values.secrets }}
{{- if $s.existingSecret }}
- name: {{ get $vars $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $s.existingSecret }}
      key: {{ $s.key }}
{{- else if $s.value }}
- name: {{ get $vars $name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "portal.fullname" $root }}
      key: {{ get $vars $name }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The pod's security context: the image's non-root user, no privilege, the default seccomp profile. */}}
{{- define "portal.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "portal.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end -}}
