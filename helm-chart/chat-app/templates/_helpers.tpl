{{/*
Expand the name of the chart.
*/}}
{{- define "chat-app.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
Component names add a suffix, so the prefix leaves room for it.
*/}}
{{- define "chat-app.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "chat-app.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels. Call with (dict "root" $ "component" "chat-server").
*/}}
{{- define "chat-app.labels" -}}
helm.sh/chart: {{ include "chat-app.chart" .root }}
{{ include "chat-app.selectorLabels" . }}
{{- if .root.Chart.AppVersion }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: chatp
{{- end }}

{{/*
Selector labels of one component. Call with (dict "root" $ "component" "redis").
*/}}
{{- define "chat-app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chat-app.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Names of the components' resources.
*/}}
{{- define "chat-app.chatServer.fullname" -}}
{{- printf "%s-chat-server" (include "chat-app.fullname" .) }}
{{- end }}

{{- define "chat-app.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "chat-app.fullname" .) }}
{{- end }}

{{- define "chat-app.redis.fullname" -}}
{{- printf "%s-redis" (include "chat-app.fullname" .) }}
{{- end }}

{{- define "chat-app.autoscaler.fullname" -}}
{{- printf "%s-autoscaler" (include "chat-app.fullname" .) }}
{{- end }}

{{/*
The autoscaler's ServiceAccount.
*/}}
{{- define "chat-app.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "chat-app.autoscaler.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference. `image` is either a map (repository, tag, pullPolicy)
or a string ("postgres:15"), as older values files have it; an empty tag is
the chart's appVersion. Call with (dict "image" .Values.x.image "root" $).
*/}}
{{- define "chat-app.image" -}}
{{- if kindIs "string" .image }}
{{- .image }}
{{- else }}
{{- printf "%s:%s" .image.repository (.image.tag | default .root.Chart.AppVersion | toString) }}
{{- end }}
{{- end }}

{{- define "chat-app.pullPolicy" -}}
{{- if kindIs "map" .image }}
{{- .image.pullPolicy | default "IfNotPresent" }}
{{- else -}}
IfNotPresent
{{- end }}
{{- end }}

{{/*
The Secrets holding the passwords: the operator's existingSecret, or the
chart's own, rendered from the passwords in values (never generated: a
random value would change at every `helm template`, as Argo CD and Flux
render).
*/}}
{{- define "chat-app.db.secretName" -}}
{{- .Values.postgresql.auth.existingSecret | default (printf "%s-db" (include "chat-app.fullname" .)) }}
{{- end }}

{{- define "chat-app.redis.secretName" -}}
{{- .Values.redis.auth.existingSecret | default (printf "%s-redis" (include "chat-app.fullname" .)) }}
{{- end }}

{{- define "chat-app.dashboard.secretName" -}}
{{- .Values.dashboard.auth.existingSecret | default (printf "%s-dashboard" (include "chat-app.fullname" .)) }}
{{- end }}

{{/*
A password from values that must be set (no existingSecret). Call with
(dict "value" .Values.x "name" "x" "secret" "postgresql.auth.existingSecret").
*/}}
{{- define "chat-app.requiredPassword" -}}
{{- if not .value }}
{{- fail (printf "%s is empty: set it, or set %s to a Secret you made (scripts/chart-secrets.sh makes them with random passwords; README, \"On Kubernetes: Helm\"). The chart generates no password: a generated one would change at every render under Argo CD or Flux." .name .secret) }}
{{- end }}
{{- .value | b64enc | quote }}
{{- end }}

{{/*
Where chatp finds PostgreSQL and Redis: in the release or outside it.
*/}}
{{- define "chat-app.db.host" -}}
{{- if .Values.postgresql.enabled }}
{{- include "chat-app.postgresql.fullname" . }}
{{- else }}
{{- required "externalDatabase.host is required when postgresql.enabled is false" .Values.externalDatabase.host }}
{{- end }}
{{- end }}

{{- define "chat-app.db.port" -}}
{{- if .Values.postgresql.enabled }}5432{{ else }}{{ .Values.externalDatabase.port }}{{ end }}
{{- end }}

{{- define "chat-app.redis.host" -}}
{{- if .Values.redis.enabled }}
{{- include "chat-app.redis.fullname" . }}
{{- else }}
{{- required "externalRedis.host (or externalRedis.sentinel.hosts) is required when redis.enabled is false" .Values.externalRedis.host }}
{{- end }}
{{- end }}

{{/*
The external Redis is found through sentinels (externalRedis.sentinel.hosts).
*/}}
{{- define "chat-app.redis.sentinels" -}}
{{- if not .Values.redis.enabled }}{{ join "," .Values.externalRedis.sentinel.hosts }}{{ end }}
{{- end }}

{{- define "chat-app.redis.port" -}}
{{- if .Values.redis.enabled }}6379{{ else }}{{ .Values.externalRedis.port }}{{ end }}
{{- end }}

{{/*
Environment of a pod that talks to Redis: REDIS_HOST, REDIS_PORT,
REDIS_KEY_PREFIX and, with auth, its own ACL user (REDIS_USERNAME) and that
user's password from the Secret. Call with (dict "root" $ "user" "chat").
*/}}
{{- define "chat-app.redis.env" -}}
{{- $root := .root }}
{{- $sentinels := include "chat-app.redis.sentinels" $root }}
{{- if $sentinels }}
- name: REDIS_SENTINELS
  value: {{ $sentinels | quote }}
- name: REDIS_MASTER_NAME
  value: {{ $root.Values.externalRedis.sentinel.masterName | quote }}
{{- else }}
- name: REDIS_HOST
  value: {{ include "chat-app.redis.host" $root | quote }}
- name: REDIS_PORT
  value: {{ include "chat-app.redis.port" $root | quote }}
{{- end }}
- name: REDIS_KEY_PREFIX
  value: {{ $root.Values.redis.keyPrefix | quote }}
{{- if $root.Values.redis.auth.enabled }}
- name: REDIS_USERNAME
  value: {{ .user | quote }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "chat-app.redis.secretName" $root }}
      key: {{ printf "redis-%s-password" .user }}
{{- end }}
{{- end }}

{{/*
Environment of a pod that talks to PostgreSQL as `role` (app, reader):
DB_HOST, DB_PORT, DB_NAME, DB_USER and DB_PASS from the Secret. Call with
(dict "root" $ "role" "app").
*/}}
{{- define "chat-app.db.env" -}}
{{- $auth := .root.Values.postgresql.auth }}
- name: DB_HOST
  value: {{ include "chat-app.db.host" .root | quote }}
- name: DB_PORT
  value: {{ include "chat-app.db.port" .root | quote }}
{{- if and (not .root.Values.postgresql.enabled) .root.Values.externalDatabase.targetSessionAttrs }}
- name: DB_TARGET_SESSION_ATTRS
  value: {{ .root.Values.externalDatabase.targetSessionAttrs | quote }}
{{- end }}
- name: DB_NAME
  value: {{ $auth.database | quote }}
- name: DB_USER
  value: {{ ternary $auth.username $auth.readerUsername (eq .role "app") | quote }}
- name: DB_PASS
  valueFrom:
    secretKeyRef:
      name: {{ include "chat-app.db.secretName" .root }}
      key: {{ printf "%s-password" .role }}
{{- end }}

{{/*
Pod and container security: non-root, read-only root filesystem, no
capabilities, the runtime's seccomp profile. Call with the user id.
*/}}
{{- define "chat-app.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "chat-app.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* The kubernetes.io/tls Secret of the chat port: the one named in values,
or the one the chart's Certificate writes. */}}
{{- define "chat-app.chatServer.tlsSecret" -}}
{{- default (printf "%s-tls" (include "chat-app.chatServer.fullname" .)) .Values.chatServer.tls.secretName -}}
{{- end }}

{{- define "chat-app.dashboard.fullname" -}}
{{- printf "%s-dashboard" (include "chat-app.fullname" .) }}
{{- end }}

{{/*
A shell command that succeeds when Redis at `host` answers PING: as the
ACL `probe` user (PING only, no password) when auth is on. Call with
(dict "root" $ "host" "...").
*/}}
{{- define "chat-app.redis.ping" -}}
{{- if .root.Values.redis.auth.enabled -}}
redis-cli -h {{ .host }} -p 6379 --user probe --pass probe --no-auth-warning ping | grep -q PONG
{{- else -}}
redis-cli -h {{ .host }} -p 6379 ping | grep -q PONG
{{- end }}
{{- end }}

{{- define "chat-app.web.fullname" -}}
{{- printf "%s-web" (include "chat-app.chatServer.fullname" .) }}
{{- end }}

{{/*
WEB_PASSWORDS_WITHOUT_TLS: web.passwordsWithoutTls, where "auto" accepts
when the Ingress terminates TLS in front of a plain web port (the pod sees
plain ws from the controller) and refuses otherwise.
*/}}
{{- define "chat-app.web.passwordsWithoutTls" -}}
{{- $web := .Values.web }}
{{- if eq $web.passwordsWithoutTls "auto" }}
{{- ternary "accept" "refuse" (and $web.ingress.enabled $web.ingress.tls.enabled (not .Values.chatServer.tls.enabled)) }}
{{- else }}
{{- $web.passwordsWithoutTls }}
{{- end }}
{{- end }}

{{/* The web port's scheme: https with the chat port's certificate. */}}
{{- define "chat-app.web.scheme" -}}
{{- ternary "https" "http" .Values.chatServer.tls.enabled }}
{{- end }}

{{/*
The only origins whose pages may open /ws: web.allowedOrigins, else the
Ingress's own address when there is one (so that a DNS-rebinding page
cannot pass for the chat), else empty (the page's own origin, from Host).
*/}}
{{- define "chat-app.web.allowedOrigins" -}}
{{- $web := .Values.web -}}
{{- if $web.allowedOrigins -}}
{{- join "," $web.allowedOrigins -}}
{{- else if and $web.ingress.enabled $web.ingress.host -}}
{{- printf "%s://%s" (ternary "https" "http" $web.ingress.tls.enabled) $web.ingress.host -}}
{{- end -}}
{{- end -}}
