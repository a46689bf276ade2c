{{/* The chart's name, and the release's full name (63 characters at most). */}}
{{- define "seqline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Kept to 50 characters so that "<fullname>-gateway-<ordinal>", a pod name
and a gateway id, stays under the 63 a label value allows. */}}
{{- define "seqline.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else if contains (include "seqline.name" .) .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "seqline.name" .) | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels of every object; call with (dict "root" $ "component" "gateway"). */}}
{{- define "seqline.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "seqline.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: seqline
{{- end }}

{{/* Labels that select one role's pods. */}}
{{- define "seqline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "seqline.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{- define "seqline.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "seqline.tokenSecretName" -}}
{{- .Values.tokenSecret.existingSecret | default (printf "%s-token" (include "seqline.fullname" .)) }}
{{- end }}

{{/* One [ports] URL: from an existing Secret when one is named, else the
value. Call with (dict "name" "SEQLINE__PORTS__LOG" "port" .Values.kafka "value" URL). */}}
{{- define "seqline.portEnv" -}}
- name: {{ .name }}
{{- if .port.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ .port.existingSecret }}
      key: {{ .port.existingSecretKey }}
{{- else }}
  value: {{ .value | quote }}
{{- end }}
{{- end }}

{{/* The environment every role gets: backends, token secret, extra env. */}}
{{- define "seqline.env" -}}
{{ include "seqline.portEnv" (dict "name" "SEQLINE__PORTS__LOG" "port" .Values.kafka "value" .Values.kafka.url) }}
{{ include "seqline.portEnv" (dict "name" "SEQLINE__PORTS__STORE" "port" .Values.scylla "value" .Values.scylla.url) }}
{{ include "seqline.portEnv" (dict "name" "SEQLINE__PORTS__PRESENCE" "port" .Values.redis "value" .Values.redis.url) }}
- name: SEQLINE_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "seqline.tokenSecretName" . }}
      key: {{ .Values.tokenSecret.existingSecretKey }}
{{- if .Values.logLevel }}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The configuration file, the container's security context and the
volumes every role mounts (the root file system is read-only). */}}
{{- define "seqline.configArgs" -}}
- --config
- /etc/seqline/config/seqline.toml
{{- end }}

{{- define "seqline.volumeMounts" -}}
- name: config
  mountPath: /etc/seqline/config
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "seqline.volumes" -}}
- name: config
  configMap:
    name: {{ include "seqline.fullname" . }}-config
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{/* Pod-level settings shared by the roles. */}}
{{- define "seqline.podSpec" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
{{- end }}
