{{/* Names ----------------------------------------------------------------------------------- */}}

{{- define "berth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "berth.fullname" -}}
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

{{- define "berth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "berth.labels" -}}
helm.sh/chart: {{ include "berth.chart" . }}
{{ include "berth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "berth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "berth.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "berth.secretName" -}}
{{- default (include "berth.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "berth.groupsConfigMapName" -}}
{{- default (printf "%s-groups" (include "berth.fullname" .)) .Values.groupsExistingConfigMap }}
{{- end }}

{{- define "berth.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Facts the templates share ------------------------------------------------------------- */}}

{{/* Service kinds that keep their data inside the pod (berth's EMBEDDED_KINDS). */}}
{{- define "berth.embeddedKinds" -}}sqlite kv memory-kv blob{{- end }}

{{/* Service kinds `timers.lock` may name (ticks are claimed in Redis or PostgreSQL). */}}
{{- define "berth.lockKinds" -}}redis redis-kv postgres{{- end }}

{{/* "true" when more than one pod can serve at once. */}}
{{- define "berth.multiReplica" -}}
{{- $v := .Values }}
{{- if $v.knative.enabled }}
{{- if ne (int $v.knative.maxScale) 1 }}true{{ end }}
{{- else if gt (int $v.replicaCount) 1 }}true
{{- else if and $v.autoscaling.enabled (gt (int $v.autoscaling.maxReplicas) 1) }}true
{{- else if and $v.keda.enabled (gt (len $v.queues) 0) (gt (int $v.keda.maxReplicaCount) 1) }}true
{{- end }}
{{- end }}

{{/* "true" when KEDA renders a ScaledObject (and so owns the replica count). */}}
{{- define "berth.kedaActive" -}}
{{- if and .Values.keda.enabled (not .Values.knative.enabled) (gt (len .Values.queues) 0) }}true{{ end }}
{{- end }}

{{/* The data directory: Knative's writable place is /tmp. */}}
{{- define "berth.dataDir" -}}
{{- if .Values.knative.enabled }}/tmp/berth{{ else }}/var/lib/berth{{ end }}
{{- end }}

{{/* Upper-cased name for BERTH_<SECTION>__<NAME>__URL (berth lower-cases it back). */}}
{{- define "berth.envName" -}}
{{- upper . }}
{{- end }}

{{/* Environment variable a group secret is passed in: GROUP_SECRET_<GROUP>_<NAME>. */}}
{{- define "berth.groupSecretEnv" -}}
{{- regexReplaceAll "[^A-Z0-9_]" (printf "GROUP_SECRET_%s_%s" .group .name | upper) "_" }}
{{- end }}

{{/* TOML ----------------------------------------------------------------------------------- */}}

{{/* A TOML key: bare when it may be, else quoted. */}}
{{- define "berth.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" (toString .) }}{{ . }}{{ else }}{{ toJson (toString .) }}{{ end }}
{{- end }}

{{/* A TOML value (inline form) of any YAML value: strings quoted (JSON escapes are TOML
escapes), numbers and booleans as they are, lists as arrays, maps as inline tables. */}}
{{- define "berth.tomlValue" -}}
{{- $t := typeOf . }}
{{- if eq $t "string" }}{{ toJson . }}
{{- else if eq $t "bool" }}{{ . }}
{{- else if or (hasPrefix "float" $t) (hasPrefix "int" $t) (hasPrefix "uint" $t) }}{{ toJson . }}
{{- else if hasPrefix "[]" $t }}[{{ range $i, $e := . }}{{ if $i }}, {{ end }}{{ include "berth.tomlValue" $e }}{{ end }}]
{{- else if hasPrefix "map" $t }}{ {{- range $i, $k := keys . | sortAlpha }}{{ if $i }},{{ end }} {{ include "berth.tomlKey" $k }} = {{ include "berth.tomlValue" (get $ $k) }}{{ end }} }
{{- else if eq $t "<nil>" }}{{ fail "berth: a null value cannot be written to TOML; remove the key or give it a value" }}
{{- else }}{{ toJson . }}
{{- end }}
{{- end }}

{{/* `key = value` lines of a map. */}}
{{- define "berth.tomlPairs" -}}
{{- range $k := keys . | sortAlpha }}
{{ include "berth.tomlKey" $k }} = {{ include "berth.tomlValue" (get $ $k) }}
{{- end }}
{{- end }}

{{/* Checks ----------------------------------------------------------------------------------- */}}

{{/* Every refusal of the chart, in one place; included by every template that renders pods. */}}
{{- define "berth.validate" -}}
{{- $v := .Values }}
{{- $multi := eq (include "berth.multiReplica" .) "true" }}
{{- $embedded := splitList " " (include "berth.embeddedKinds" .) }}
{{- if not (has $v.platform (list "standalone" "kubeless")) }}
{{- fail (printf "berth: platform %q is not one of standalone, kubeless (Knative is knative.enabled)" $v.platform) }}
{{- end }}
{{- if and $multi (not $v.allowEmbedded) }}
{{- range $name, $s := $v.services }}
{{- if has $s.kind $embedded }}
{{- fail (printf "berth: services.%s is kind %q, kept inside each pod, and more than one replica can run (replicaCount, autoscaling, keda or knative.maxScale): each pod would get its own private database/files, so the replicas would disagree. Point services.%s at a shared backend (kind postgres or mysql for SQL, redis-kv or redis for key-value; blob storage needs one replica), or set allowEmbedded: true if every replica may keep its own copy." $name $s.kind $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $name, $s := $v.services }}
{{- if and (not (has $s.kind $embedded)) (not $s.url) (not $s.existingSecret) }}
{{- fail (printf "berth: services.%s is kind %q and needs `url` or `existingSecret: {name, key}`" $name $s.kind) }}
{{- end }}
{{- if and $s.url $s.existingSecret }}
{{- fail (printf "berth: services.%s sets both `url` and `existingSecret`; keep one" $name) }}
{{- end }}
{{- end }}
{{- range $name, $q := $v.queues }}
{{- if and (not $q.url) (not $q.existingSecret) }}
{{- fail (printf "berth: queues.%s needs `url` or `existingSecret: {name, key}`" $name) }}
{{- end }}
{{- if and $q.url $q.existingSecret }}
{{- fail (printf "berth: queues.%s sets both `url` and `existingSecret`; keep one" $name) }}
{{- end }}
{{- end }}
{{- if $v.timers.lock }}
{{- if contains "://" $v.timers.lock }}
{{- if not (regexMatch "^(rediss?|postgres(ql)?)://" $v.timers.lock) }}
{{- fail (printf "berth: timers.lock %q: a URL lock must be redis:// (rediss://) or postgres:// (postgresql://)" $v.timers.lock) }}
{{- end }}
{{- else }}
{{- $lock := get $v.services $v.timers.lock }}
{{- if not $lock }}
{{- fail (printf "berth: timers.lock %q names no entry of `services`; add one of kind redis, redis-kv or postgres, or give a redis:// or postgres:// URL" $v.timers.lock) }}
{{- end }}
{{- if not (has $lock.kind (splitList " " (include "berth.lockKinds" .))) }}
{{- fail (printf "berth: timers.lock %q is a service of kind %q; ticks are claimed in Redis or PostgreSQL (kind redis, redis-kv or postgres)" $v.timers.lock $lock.kind) }}
{{- end }}
{{- end }}
{{- else if and $v.timers.enabled $multi (not $v.timers.lockExistingSecret) }}
{{- fail "berth: timers.enabled is true and more than one replica can run, with no timers.lock: every replica would run every tick. Set timers.lock to a redis, redis-kv or postgres service, where each replica claims each tick before running it, or run one replica." }}
{{- end }}
{{- if and $v.timers.lock $v.timers.lockExistingSecret }}
{{- fail "berth: set timers.lock or timers.lockExistingSecret, not both" }}
{{- end }}
{{- if and $v.groupsToml (gt (len $v.groups) 0) }}
{{- fail "berth: set `groups` or `groupsToml`, not both" }}
{{- end }}
{{- if and $v.groupsExistingConfigMap (or $v.groupsToml (gt (len $v.groups) 0)) }}
{{- fail "berth: groupsExistingConfigMap is set: the group list is that ConfigMap's; leave `groups` and `groupsToml` empty" }}
{{- end }}
{{- $seen := dict }}
{{- range $i, $g := $v.groups }}
{{- if hasKey $seen $g.name }}
{{- fail (printf "berth: groups lists %q twice" $g.name) }}
{{- end }}
{{- $_ := set $seen $g.name true }}
{{- end }}
{{- if and $v.keda.enabled $v.autoscaling.enabled }}
{{- fail "berth: keda.enabled and autoscaling.enabled are both set: KEDA makes its own HorizontalPodAutoscaler from the ScaledObject, and two autoscalers on one Deployment fight. Keep one (KEDA takes CPU/memory triggers too)." }}
{{- end }}
{{- if $v.knative.enabled }}
{{- range $k := list "autoscaling" "keda" "pdb" "ingress" "httpRoute" "serviceMonitor" }}
{{- if (get $v $k).enabled }}
{{- fail (printf "berth: knative.enabled renders a Knative Service, which scales, routes and disrupts its own pods; %s.enabled has nothing to act on there: turn it off (Knative: knative.minScale/maxScale, its own routes)" $k) }}
{{- end }}
{{- end }}
{{- if eq $v.platform "kubeless" }}
{{- fail "berth: knative.enabled and platform kubeless exclude each other" }}
{{- end }}
{{- end }}
{{- if and (eq $v.platform "kubeless") (not $v.kubeless.handler) }}
{{- fail "berth: platform kubeless needs kubeless.handler: \"<group>.<function>\" (the kubeless Function.spec.handler)" }}
{{- end }}
{{- if and $v.kubeless.handler (not (regexMatch "^[^.]+\\.[^.]+$" $v.kubeless.handler)) }}
{{- fail (printf "berth: kubeless.handler %q must be \"<group>.<function>\"" $v.kubeless.handler) }}
{{- end }}
{{- if eq (include "berth.kedaActive" .) "true" }}
{{- range $name, $q := $v.queues }}
{{- if and (has $q.kind (list "redis" "nats")) (not $q.consumerGroup) }}
{{- fail (printf "berth: keda.enabled: queues.%s needs consumerGroup, the consumer group/durable consumer KEDA reads the backlog of (berth's default names the group and function, which the chart cannot know)" $name) }}
{{- end }}
{{- $k := default dict $q.keda }}
{{- if and (eq $q.kind "redis") (not $k.address) }}
{{- fail (printf "berth: keda.enabled: queues.%s (redis) needs keda.address, host:port of the Redis server for KEDA's redis-streams scaler" $name) }}
{{- end }}
{{- if and (eq $q.kind "nats") (not $k.monitoringEndpoint) }}
{{- fail (printf "berth: keda.enabled: queues.%s (nats) needs keda.monitoringEndpoint, host:port of the NATS monitoring endpoint (usually :8222) for KEDA's nats-jetstream scaler" $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The pod: volumes, env, probes ------------------------------------------------------------ */}}

{{- define "berth.env" -}}
{{- $v := .Values }}
{{- $secret := include "berth.secretName" . }}
- name: BERTH_CONFIG
  value: /etc/berth/config/berth.toml
- name: BERTH_DATA_DIR
  value: {{ include "berth.dataDir" . }}
{{- if and (eq $v.platform "standalone") (not $v.knative.enabled) }}
- name: BERTH_SERVER__LISTEN
  value: {{ printf "0.0.0.0:%d" (int $v.server.port) | quote }}
{{- end }}
- name: BERTH_SERVER__INVOKE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.secretKeys.invokeToken }}
{{- if $v.admin.enabled }}
- name: BERTH_ADMIN__LISTEN
  value: {{ printf "0.0.0.0:%d" (int $v.admin.port) | quote }}
- name: BERTH_ADMIN__TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.secretKeys.adminToken }}
{{- else }}
- name: BERTH_ADMIN__ENABLED
  value: "false"
{{- end }}
{{- range $name, $s := $v.services }}
{{- if $s.existingSecret }}
- name: BERTH_SERVICES__{{ include "berth.envName" $name }}__URL
  valueFrom:
    secretKeyRef:
      name: {{ $s.existingSecret.name }}
      key: {{ $s.existingSecret.key }}
{{- end }}
{{- end }}
{{- range $name, $q := $v.queues }}
{{- if $q.existingSecret }}
- name: BERTH_QUEUES__{{ include "berth.envName" $name }}__URL
  valueFrom:
    secretKeyRef:
      name: {{ $q.existingSecret.name }}
      key: {{ $q.existingSecret.key }}
{{- end }}
{{- end }}
{{- with $v.timers.lockExistingSecret }}
- name: BERTH_TIMERS__LOCK
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- range $g := $v.groups }}
{{- range $sname, $src := (default dict $g.secrets) }}
- name: {{ include "berth.groupSecretEnv" (dict "group" $g.name "name" $sname) }}
  valueFrom:
    secretKeyRef:
      name: {{ $src.secretName }}
      key: {{ $src.key }}
{{- end }}
{{- end }}
{{- if eq $v.platform "kubeless" }}
{{- $h := splitList "." $v.kubeless.handler }}
- name: FUNC_HANDLER
  value: {{ index $h 1 | quote }}
- name: MOD_NAME
  value: {{ index $h 0 | quote }}
- name: FUNC_TIMEOUT
  value: {{ $v.kubeless.timeout | toString | quote }}
- name: FUNC_RUNTIME
  value: {{ $v.kubeless.runtime | quote }}
- name: FUNC_PORT
  value: {{ $v.server.port | toString | quote }}
- name: FUNC_MEMORY_LIMIT
  valueFrom:
    resourceFieldRef:
      containerName: berth
      resource: limits.memory
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "berth.volumeMounts" -}}
- name: config
  mountPath: /etc/berth/config
  readOnly: true
- name: groups
  mountPath: /etc/berth/groups
  readOnly: true
{{- if not .Values.knative.enabled }}
- name: data
  mountPath: /var/lib/berth
- name: tmp
  mountPath: /tmp
{{- else if .Values.knative.emptyDir }}
- name: tmp
  mountPath: /tmp
{{- end }}
{{- end }}

{{/* Whole-directory ConfigMap mounts, never subPath: a subPath mount never sees an update, and
the groups list must (berth watches the `..data` symlink swap the kubelet does). */}}
{{- define "berth.volumes" -}}
- name: config
  configMap:
    name: {{ include "berth.fullname" . }}-config
- name: groups
  configMap:
    name: {{ include "berth.groupsConfigMapName" . }}
{{- if not .Values.knative.enabled }}
- name: data
  emptyDir:
    {{- with .Values.dataVolume.sizeLimit }}
    sizeLimit: {{ . }}
    {{- end }}
- name: tmp
  emptyDir:
    {{- with .Values.tmpVolume.sizeLimit }}
    sizeLimit: {{ . }}
    {{- end }}
{{- else if .Values.knative.emptyDir }}
- name: tmp
  emptyDir: {}
{{- end }}
{{- end }}

{{/* Seconds: preStop sleep + shutdown grace + margin. */}}
{{- define "berth.terminationGrace" -}}
{{- add (int .Values.lifecycle.preStopSleepSeconds) (int .Values.server.shutdownGraceSeconds) (int .Values.lifecycle.terminationMarginSeconds) }}
{{- end }}

{{- define "berth.preStop" -}}
{{- $mode := .Values.lifecycle.preStopMode }}
{{- if eq $mode "auto" }}
{{- $mode = ternary "sleep" "exec" (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- if eq $mode "sleep" }}
sleep:
  seconds: {{ int .Values.lifecycle.preStopSleepSeconds }}
{{- else }}
exec:
  command: ["/bin/sleep", {{ .Values.lifecycle.preStopSleepSeconds | toString | quote }}]
{{- end }}
{{- end }}
