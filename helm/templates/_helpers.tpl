{{/*
Names, labels, the watched namespaces and the RBAC scope, computed once here so that
every template agrees on them.
*/}}

{{- define "logstream-kube.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name, plus the chart name unless it is in it. */}}
{{- define "logstream-kube.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "logstream-kube.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "logstream-kube.selectorLabels" -}}
app.kubernetes.io/name: {{ include "logstream-kube.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "logstream-kube.labels" -}}
{{ include "logstream-kube.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "logstream-kube.serviceAccountName" -}}
{{- default (include "logstream-kube.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "logstream-kube.roleName" -}}
{{- default (include "logstream-kube.fullname" .) .Values.rbac.roleName -}}
{{- end -}}

{{- define "logstream-kube.roleBindingName" -}}
{{- default (include "logstream-kube.roleName" .) .Values.rbac.roleBindingName -}}
{{- end -}}

{{- define "logstream-kube.leaseName" -}}
{{- default (include "logstream-kube.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{- define "logstream-kube.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.leaseNamespace -}}
{{- end -}}

{{- define "logstream-kube.image" -}}
{{- printf "%s:%s" .Values.image.repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The namespaces the user listed, as a JSON array: `namespaces` (a list, or a
comma-separated string as in some Go chart versions) plus the deprecated `namespace`.
*/}}
{{- define "logstream-kube.listedNamespaces" -}}
{{- $listed := list -}}
{{- $raw := .Values.namespaces | default list -}}
{{- if kindIs "string" $raw -}}
{{- $raw = splitList "," $raw -}}
{{- end -}}
{{- range $raw -}}
{{- $ns := . | toString | trim -}}
{{- if and $ns (not (has $ns $listed)) -}}
{{- $listed = append $listed $ns -}}
{{- end -}}
{{- end -}}
{{- with .Values.namespace | default "" | trim -}}
{{- if not (has . $listed) -}}
{{- $listed = append $listed . -}}
{{- end -}}
{{- end -}}
{{- toJson $listed -}}
{{- end -}}

{{/*
The effective RBAC scope: "cluster", "namespaces" or "release".
*/}}
{{- define "logstream-kube.scope" -}}
{{- $listed := include "logstream-kube.listedNamespaces" . | fromJsonArray -}}
{{- if .Values.rbac.clusterWide -}}
cluster
{{- else if .Values.rbac.scope -}}
{{- .Values.rbac.scope -}}
{{- else if $listed -}}
namespaces
{{- else -}}
cluster
{{- end -}}
{{- end -}}

{{/*
The namespaces the controller watches, as a JSON array; empty means the whole
cluster. Scope "release" watches the release namespace only.
*/}}
{{- define "logstream-kube.watchedNamespaces" -}}
{{- $listed := include "logstream-kube.listedNamespaces" . | fromJsonArray -}}
{{- if eq (include "logstream-kube.scope" .) "release" -}}
{{- toJson (list .Release.Namespace) -}}
{{- else -}}
{{- toJson $listed -}}
{{- end -}}
{{- end -}}

{{/*
The address of /metrics, /healthz and /readyz; empty when neither metrics nor
probes are wanted.
*/}}
{{- define "logstream-kube.metricsAddr" -}}
{{- if or .Values.metrics.enabled .Values.probes.enabled -}}
{{- printf ":%d" (int .Values.metrics.port) -}}
{{- end -}}
{{- end -}}

{{/*
Checks of combinations the schema cannot express. Each message names the values
involved and the fix.
*/}}
{{- define "logstream-kube.validate" -}}
{{- if not (.Values.url | default "" | trim) -}}
{{- fail "url is required: set it to the URL of your Coder deployment, for example --set url=https://coder.example.com" -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) -}}
{{- fail (printf "replicaCount is %d, but more than one replica needs leaderElection.enabled=true: without it every replica sends every line and each line appears more than once. Set leaderElection.enabled=true, or replicaCount=1" (int .Values.replicaCount)) -}}
{{- end -}}
{{- $listed := include "logstream-kube.listedNamespaces" . | fromJsonArray -}}
{{- if and .Values.rbac.clusterWide .Values.rbac.scope (ne .Values.rbac.scope "cluster") -}}
{{- fail (printf "rbac.clusterWide=true contradicts rbac.scope=%q: remove rbac.clusterWide, or set rbac.scope=cluster" .Values.rbac.scope) -}}
{{- end -}}
{{- $scope := include "logstream-kube.scope" . -}}
{{- if and (eq $scope "namespaces") (not $listed) -}}
{{- fail "rbac.scope=namespaces needs at least one namespace in namespaces, for example --set 'namespaces={coder-workspaces}'" -}}
{{- end -}}
{{- if eq $scope "release" -}}
{{- range $listed -}}
{{- if ne . $.Release.Namespace -}}
{{- fail (printf "rbac.scope=release watches only the release namespace %q, but namespaces lists %q: install the release into that namespace, or use rbac.scope=namespaces" $.Release.Namespace .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled=true needs metrics.enabled=true, which creates the Service the ServiceMonitor selects" -}}
{{- end -}}
{{- end -}}

{{/*
The read rules: what logstream/kube/resources.py lists and watches, and Secrets.
*/}}
{{- define "logstream-kube.readRules" -}}
- apiGroups: [""]
  resources: ["pods", "events", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
- apiGroups: ["apps"]
  resources: ["replicasets", "statefulsets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch"]
{{- end -}}
