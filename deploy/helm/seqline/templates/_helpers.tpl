{{- define "seqline.env" -}}
- name: SEQLINE__PORTS__LOG
  value: "kafka://{{ .Values.kafka.brokers }}"
- name: SEQLINE__PORTS__STORE
  value: {{ .Values.scylla.uri | quote }}
- name: SEQLINE__PORTS__PRESENCE
  value: {{ .Values.redis.url | quote }}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{- if .Values.otlpEndpoint }}
- name: SEQLINE__TELEMETRY__OTLP_ENDPOINT
  value: {{ .Values.otlpEndpoint | quote }}
{{- end }}
- name: SEQLINE_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ default (printf "%s-token" .Release.Name) .Values.tokenSecret.existingSecret }}
      key: token-secret
{{- end -}}
