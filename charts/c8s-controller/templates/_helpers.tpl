{{- define "c8s-controller.labels" -}}
app.kubernetes.io/name: c8s-controller
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
{{- end -}}

{{- define "c8s-controller.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "c8s-controller.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end -}}

{{/* The controller's RBAC: a Role in the release namespace when it drives only that namespace's runs. */}}
{{- define "c8s-controller.roleKind" -}}
{{- if .Values.controller.namespaced }}Role{{ else }}ClusterRole{{ end -}}
{{- end }}
