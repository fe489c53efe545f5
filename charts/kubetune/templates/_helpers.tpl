{{/* Name of the chart, or nameOverride. */}}
{{- define "kubetune.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name used as the prefix of every resource: fullnameOverride, else the release name
when it already contains the chart name, else "<release>-<chart>" (63 characters max).
*/}}
{{- define "kubetune.fullname" -}}
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

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "kubetune.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator's pods; never change them after a release. */}}
{{- define "kubetune.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubetune.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of every resource (Helm's recommended labels plus commonLabels). */}}
{{- define "kubetune.labels" -}}
helm.sh/chart: {{ include "kubetune.chart" . }}
{{ include "kubetune.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubetune
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Name of the operator's ServiceAccount. */}}
{{- define "kubetune.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubetune.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the kopf peering object. */}}
{{- define "kubetune.peeringName" -}}
{{- default (include "kubetune.fullname" .) .Values.peering.name }}
{{- end }}

{{/* Name of the FineTuneJobPolicy, its ValidatingAdmissionPolicy and binding. */}}
{{- define "kubetune.policyName" -}}
{{- include "kubetune.fullname" . }}
{{- end }}

{{/* "repository:tag" or "repository@digest"; the tag defaults to the appVersion. */}}
{{- define "kubetune.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) }}
{{- end }}
{{- end }}

{{- define "kubetune.operatorImage" -}}
{{- include "kubetune.imageRef" (dict "image" .Values.image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{- define "kubetune.trainerImage" -}}
{{- include "kubetune.imageRef" (dict "image" .Values.trainer.image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/* True (non-empty) in cluster-wide mode: no namespaces listed. */}}
{{- define "kubetune.clusterWide" -}}
{{- if not .Values.watch.namespaces }}true{{ end }}
{{- end }}

{{/*
RBAC rules for namespaced resources: the same list serves the ClusterRole (cluster-wide
mode) and each Role (namespaced mode). Least privilege, one rule per call the operator
makes (operator/kubetune/controller):
- FineTuneJobs: watched through kopf (list, watch), patched for kopf's kubetune.io/
  bookkeeping annotations, deleted once ttlSecondsAfterFinished expired; status patched.
- Jobs: created, read back after a create conflict, patched (suspend, synced fields),
  deleted and re-created when a suspended job's spec changed; watched by label.
- ConfigMaps (trainer config): created, then merge-patched; Services (multi-node
  rendezvous): created only. Both are removed by owner references, not by the operator.
- Pods: watched by label (kubetune.io/job) for their state and termination message.
- Events: created (kopf.event).
No Secrets at all: trainer pods reference the user's credential Secrets by name and
the kubelet mounts them; the operator never reads them.
*/}}
{{- define "kubetune.namespacedRules" -}}
- apiGroups: ["kubetune.io"]
  resources: ["finetunejobs"]
  verbs: ["get", "list", "watch", "patch", "delete"]
- apiGroups: ["kubetune.io"]
  resources: ["finetunejobs/status"]
  verbs: ["patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# Kueue's Workload of a queued Job, for Kueue's reason in the status (read while queued;
# harmless without Kueue).
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads"]
  verbs: ["list"]
{{- if and .Values.peering.enabled (not (include "kubetune.clusterWide" .)) }}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end }}
