{{/* Chart name, truncated to the DNS label limit. */}}
{{- define "webrana.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart, unless the release name already contains the chart name. */}}
{{- define "webrana.fullname" -}}
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

{{- define "webrana.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels. */}}
{{- define "webrana.labels" -}}
helm.sh/chart: {{ include "webrana.chart" . }}
app.kubernetes.io/name: {{ include "webrana.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: webrana
{{- end }}

{{/* Selector labels of one component: call with (dict "ctx" $ "component" "proxy"). */}}
{{- define "webrana.selectorLabels" -}}
app.kubernetes.io/name: {{ include "webrana.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one component. */}}
{{- define "webrana.componentLabels" -}}
{{ include "webrana.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "webrana.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "webrana.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "webrana.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "webrana.secretName" -}}
{{- required "secrets.existingSecret must name a Secret holding DATABASE_URL, REDIS_URL, MASTER_ENCRYPTION_KEY, JWT_SECRET, MIDTRANS_SERVER_KEY, MIDTRANS_CLIENT_KEY and WEBRANA_SESSION_SECRET" .Values.secrets.existingSecret }}
{{- end }}

{{/* Public URLs: explicit config wins, else derived from the ingress hosts. */}}
{{- define "webrana.scheme" -}}
{{- if .Values.ingress.tls }}https{{ else }}http{{ end }}
{{- end }}

{{- define "webrana.apiUrl" -}}
{{- if .Values.config.apiUrl }}
{{- .Values.config.apiUrl }}
{{- else }}
{{- printf "%s://%s" (include "webrana.scheme" .) .Values.ingress.api.host }}
{{- end }}
{{- end }}

{{- define "webrana.consoleUrl" -}}
{{- if .Values.config.consoleUrl }}
{{- .Values.config.consoleUrl }}
{{- else }}
{{- printf "%s://%s" (include "webrana.scheme" .) .Values.ingress.console.host }}
{{- end }}
{{- end }}

{{/* Every variable from the Secret (proxy and migration Job). */}}
{{- define "webrana.secretEnv" -}}
{{- $secret := include "webrana.secretName" . }}
{{- range $env, $key := .Values.secrets.keys }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
{{- end }}
{{- range $env, $key := .Values.secrets.optionalKeys }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- end }}

{{/* config.trustedProxies as WEBRANA_TRUSTED_PROXIES: exactly the CIDRs named (a list, or a comma-separated
string), never "everybody". */}}
{{- define "webrana.trustedProxies" -}}
{{- $raw := .Values.config.trustedProxies | default list }}
{{- $list := kindIs "string" $raw | ternary (splitList "," (toString $raw)) $raw }}
{{- $out := list }}
{{- range $list }}
{{- $cidr := trim (toString .) }}
{{- if has $cidr (list "0.0.0.0/0" "::/0" "0/0" "*") }}
{{- fail (printf "config.trustedProxies must not trust everybody (%s): name the ingress controller's and the console's pod ranges, see docs/deploy.md" $cidr) }}
{{- end }}
{{- if $cidr }}{{ $out = append $out $cidr }}{{ end }}
{{- end }}
{{- join "," $out }}
{{- end }}

{{/* Plain settings shared by every container. */}}
{{- define "webrana.commonEnv" -}}
- name: MIDTRANS_IS_PRODUCTION
  value: {{ .Values.config.midtransIsProduction | quote }}
- name: WEBRANA_LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: WEBRANA_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: WEBRANA_TRUSTED_PROXIES
  value: {{ include "webrana.trustedProxies" . | quote }}
- name: WEBRANA_CONSOLE_URL
  value: {{ include "webrana.consoleUrl" . | quote }}
- name: WEBRANA_PROXY_HOST
  value: "0.0.0.0"
- name: WEBRANA_PROXY_PORT
  value: {{ .Values.proxy.port | quote }}
- name: WEBRANA_DASHBOARD_HOST
  value: "0.0.0.0"
- name: WEBRANA_DASHBOARD_PORT
  value: {{ .Values.dashboard.port | quote }}
- name: WEBRANA_MIGRATIONS_DIR
  value: /app/sql
{{- with .Values.config.mailFrom }}
- name: WEBRANA_MAIL_FROM
  value: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.config.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* Pod-level scheduling and security shared by the pod specs: call with (dict "ctx" $ "c" .Values.proxy). */}}
{{- define "webrana.podCommon" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
