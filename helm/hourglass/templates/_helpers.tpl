{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "hourglass.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: the release name, suffixed with the chart name unless it contains it. */}}
{{- define "hourglass.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of a cluster-scoped object (ClusterRole, webhook configuration, admission
policies): `<release namespace>.<full name><suffix>`. Helm allows one release name in two
namespaces, and a second release must not meet the first one's objects; a namespace has
no dot, so no two releases can ever share a name. Optional suffix: (list . "-operator"). */}}
{{- define "hourglass.clusterName" -}}
{{- $ctx := . -}}
{{- $suffix := "" -}}
{{- if kindIs "slice" . -}}
{{- $ctx = index . 0 -}}
{{- $suffix = index . 1 -}}
{{- end -}}
{{- printf "%s.%s%s" $ctx.Release.Namespace (include "hourglass.fullname" $ctx) $suffix -}}
{{- end -}}

{{/* matchResources of an admission-policy binding: the watched namespaces only, so that
two releases never judge each other's namespaces (nothing in cluster scope). */}}
{{- define "hourglass.bindingScope" -}}
{{- if ne .Values.operator.watch.scope "cluster" }}
matchResources:
  namespaceSelector:
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: In
        values:
          {{- range (include "hourglass.watchedNamespaces" . | trim | splitList "\n") }}
          - {{ . | quote }}
          {{- end }}
{{- end }}
{{- end -}}

{{- define "hourglass.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hourglass.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of everything the release creates. */}}
{{- define "hourglass.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "hourglass.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hourglass
{{- end -}}

{{/* Labels of the operator's own objects. */}}
{{- define "hourglass.labels" -}}
{{ include "hourglass.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "hourglass.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "hourglass.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "hourglass.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The namespaces the operator watches, one per line (empty in cluster scope). */}}
{{- define "hourglass.watchedNamespaces" -}}
{{- if eq .Values.operator.watch.scope "namespace" -}}
{{ .Release.Namespace }}
{{- else if eq .Values.operator.watch.scope "namespaces" -}}
{{- range .Values.operator.watch.namespaces }}
{{ . }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The hardened container securityContext shared by every container. */}}
{{- define "hourglass.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* RBAC rules for one watched namespace (a Role, or the ClusterRole in cluster scope). */}}
{{- define "hourglass.namespacedRules" }}
  - apiGroups: ["hourglass.dev"]
    resources: ["timeoutprofiles", "sessionpolicies"]
    verbs: ["list", "watch", "patch"]
  - apiGroups: ["hourglass.dev"]
    resources: ["timeoutprofiles/status", "sessionpolicies/status"]
    verbs: ["patch"]
  # hourglass-config and no other ConfigMap. list and watch too: kopf sends
  # fieldSelector=metadata.name=hourglass-config, which RBAC matches against the name.
  # delete: OwnerReferencesPermissionEnforcement lets only who may delete it change its
  # owner list (a profile joins or leaves); the operator never sends a delete.
  - apiGroups: [""]
    resources: ["configmaps"]
    resourceNames: ["hourglass-config"]
    verbs: ["get", "list", "watch", "patch", "delete"]
  # create cannot be limited by name: the admission policy hourglass-operator
  # (templates/operator-admission-policy.yaml) admits only hourglass-config.
  - apiGroups: [""]
    resources: ["configmaps"]
    verbs: ["create"]
  # OwnerReferencesPermissionEnforcement: blockOwnerDeletion on the ConfigMap and the
  # CronJob needs update on the owner's finalizers (a permission check, never a request).
  - apiGroups: ["hourglass.dev"]
    resources: ["timeoutprofiles/finalizers", "sessionpolicies/finalizers"]
    verbs: ["update"]
  # list: the resync lists hourglass-cleanup in one call (fieldSelector=metadata.name,
  # which RBAC matches against the name) rather than a get per namespace.
  - apiGroups: ["batch"]
    resources: ["cronjobs"]
    resourceNames: ["hourglass-cleanup"]
    verbs: ["get", "list", "patch"]
  # create: the admission policy admits only hourglass-cleanup, with the hardened pod.
  - apiGroups: ["batch"]
    resources: ["cronjobs"]
    verbs: ["create"]
  - apiGroups: ["batch"]
    resources: ["jobs"]
    verbs: ["list", "watch"]
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["list", "watch"]
  - apiGroups: [""]
    resources: ["events"]
    verbs: ["create"]
{{- end }}

{{/* Comma-separated names of a list of imagePullSecrets ({name: ...} or plain names). */}}
{{- define "hourglass.pullSecretNames" -}}
{{- $names := list -}}
{{- range . -}}
{{- if kindIs "map" . }}{{ $names = append $names .name }}{{ else }}{{ $names = append $names . }}{{ end -}}
{{- end -}}
{{- join "," $names -}}
{{- end }}
