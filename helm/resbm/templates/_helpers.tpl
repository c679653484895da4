{{/*
Template helpers. NOTE: tests/deploy/render_chart_test.py renders this chart
with a small Go-template subset (see the comment at its top); keep templates
within that subset or extend the test.
*/}}

{{/* Chart name. */}}
{{- define "resbm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name prefix of every object ("resbm" for release "resbm"). */}}
{{- define "resbm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Object names. */}}
{{- define "resbm.coordinatorName" -}}
{{- printf "%s-coordinator" (include "resbm.fullname" .) -}}
{{- end -}}

{{- define "resbm.workerName" -}}
{{- printf "%s-worker" (include "resbm.fullname" .) -}}
{{- end -}}

{{- define "resbm.checkpointsClaim" -}}
{{- if .Values.checkpoints.existingClaim -}}
{{- .Values.checkpoints.existingClaim -}}
{{- else -}}
{{- printf "%s-checkpoints" (include "resbm.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "resbm.coordinatorDataClaim" -}}
{{- if .Values.coordinator.persistence.existingClaim -}}
{{- .Values.coordinator.persistence.existingClaim -}}
{{- else -}}
{{- printf "%s-coordinator-data" (include "resbm.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "resbm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "resbm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* host:port of the coordinator Service, for workers and resbmctl. */}}
{{- define "resbm.coordinatorAddress" -}}
{{- printf "%s:%v" (include "resbm.coordinatorName" .) .Values.coordinator.port -}}
{{- end -}}

{{/* --checkpoint-dir */}}
{{- define "resbm.checkpointDir" -}}
{{- printf "%s/%s" .Values.checkpoints.mountPath .Values.checkpoints.dirName -}}
{{- end -}}

{{/* Common labels. */}}
{{- define "resbm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "resbm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: resbm
{{- end -}}

{{/* Selector labels (add app.kubernetes.io/component per workload). */}}
{{- define "resbm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "resbm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Secrets of tls.enabled (see values.yaml "tls"). */}}
{{- define "resbm.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "resbm.fullname" .)) .Values.tls.secretName -}}
{{- end -}}

{{- define "resbm.tokensSecretName" -}}
{{- default (printf "%s-tokens" (include "resbm.fullname" .)) .Values.tls.tokensSecretName -}}
{{- end -}}

{{- define "resbm.clientTokenSecretName" -}}
{{- default (printf "%s-submit-token" (include "resbm.fullname" .)) .Values.tls.clientTokenSecretName -}}
{{- end -}}

{{/*
What the probes of a service check: gRPC health over plaintext; with TLS a TCP
connect to the same port, because kubelet gRPC probes cannot do TLS (and the
workers demand a client certificate).
*/}}
{{- define "resbm.coordinatorProbeAction" -}}
{{- if .Values.tls.enabled -}}
tcpSocket:
  port: {{ .Values.coordinator.port }}
{{- else -}}
grpc:
  port: {{ .Values.coordinator.port }}
{{- end -}}
{{- end -}}

{{- define "resbm.workerProbeAction" -}}
{{- if .Values.tls.enabled -}}
tcpSocket:
  port: {{ .Values.worker.port }}
{{- else -}}
grpc:
  port: {{ .Values.worker.port }}
{{- end -}}
{{- end -}}

{{/* resbmctl flags for commands run by hand (NOTES.txt). */}}
{{- define "resbm.ctlSecurityFlags" -}}
{{- if .Values.tls.enabled -}}
{{- printf "--tls-ca=%s/ca.pem --token=$RESBM_TOKEN" .Values.tls.mountPath -}}
{{- else -}}
--plaintext
{{- end -}}
{{- end -}}
