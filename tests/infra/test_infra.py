"""infra/: what cannot run here (no Docker, no Kubernetes, no SLURM) is parsed and checked."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"
REPO = INFRA.parent
SCHED = "tcp://dask-scheduler:8786"


def _load_all(name: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((INFRA / name).read_text()) if d is not None]
    assert docs, name
    return docs


def _cmd(svc: dict[str, Any]) -> list[str]:
    c = svc.get("command", [])
    return shlex.split(c) if isinstance(c, str) else [str(x) for x in c]


def test_compose_structure() -> None:
    (c,) = _load_all("compose.yaml")
    services = c["services"]
    assert {"prefect-server", "dask-scheduler", "dask-cuda-worker", "dask-cpu-worker",
            "nightly"} <= set(services)
    declared = set(c.get("volumes", {}))
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        if "build" in svc:
            ctx = (INFRA / svc["build"]["context"]).resolve()
            assert ctx == REPO and (ctx / svc["build"]["dockerfile"]).exists(), name
        deps = svc.get("depends_on", [])
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in services, (name, dep)
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            assert src in declared or src.startswith(("/", ".")), (name, vol)
        for port in svc.get("ports", []):
            assert re.fullmatch(r"\d+:\d+", str(port)), (name, port)
    # workers reach the scheduler by service name; the scheduler listens there
    assert _cmd(services["dask-scheduler"])[:2] == ["dask", "scheduler"]
    assert "8786" in _cmd(services["dask-scheduler"])
    for w in ("dask-cuda-worker", "dask-cpu-worker"):
        assert SCHED in _cmd(services[w]), w
        assert "xgeo-data:/data" in services[w]["volumes"], w
    cuda = services["dask-cuda-worker"]
    assert _cmd(cuda)[:3] == ["dask", "cuda", "worker"]
    assert "GPU=1" in _cmd(cuda)  # xgeo annotates matching batches resources={"GPU": 1}
    (dev,) = cuda["deploy"]["resources"]["reservations"]["devices"]
    assert dev["driver"] == "nvidia" and "gpu" in dev["capabilities"]
    # the nightly service serves the cron deployment against the real server
    nightly = services["nightly"]
    cmd = _cmd(nightly)
    assert cmd[:3] == ["python", "-m", "flows.serve"] and "--cron" in cmd
    assert (REPO / "flows" / "serve.py").exists()
    env = nightly["environment"]
    assert env["PREFECT_API_URL"].startswith("http://prefect-server:4200")
    assert env["XGEO_DASK_ADDRESS"] == SCHED
    assert nightly["depends_on"]["prefect-server"]["condition"] == "service_healthy"
    assert "healthcheck" in services["prefect-server"]


def test_dockerfile_structure() -> None:
    text = (INFRA / "Dockerfile").read_text().replace("\\\n", " ")  # join continuations
    instr = [ln.split()[0] for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert instr[0] in ("ARG", "FROM") and "FROM" in instr
    assert instr.count("CMD") == 1 and "ENTRYPOINT" in instr
    for src in re.findall(r"^COPY\s+(.+?)\s+\S+$", text, flags=re.M):
        for part in src.split():
            assert (REPO / part).exists() or part in ("README.md",), part
    cmd = re.search(r"^CMD\s+(\[.*\])$", text, flags=re.M)
    assert cmd and yaml.safe_load(cmd.group(1))[:3] == ["dask", "cuda", "worker"]


def _k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for f in sorted((INFRA / "k8s").glob("*.yaml")):
        docs += _load_all(f"k8s/{f.name}")
    return docs


def test_k8s_manifests() -> None:
    docs = _k8s_docs()
    for d in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(d), d
        assert d["metadata"].get("name")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    pvcs = {d["metadata"]["name"] for d in by_kind["PersistentVolumeClaim"]}
    namespaces = {d["metadata"]["name"] for d in by_kind["Namespace"]}
    for d in docs:
        ns = d["metadata"].get("namespace")
        assert ns is None or ns in namespaces, d["metadata"]
    # every pod spec mounts an existing claim
    (dc,) = by_kind["DaskCluster"]
    assert dc["apiVersion"] == "kubernetes.dask.org/v1"
    wspec = dc["spec"]["worker"]["spec"]
    (worker,) = wspec["containers"]
    assert worker["args"][:3] == ["dask", "cuda", "worker"] and "GPU=1" in worker["args"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    claims = {v["persistentVolumeClaim"]["claimName"] for v in wspec["volumes"]}
    assert claims <= pvcs
    ports = {p["name"] for p in dc["spec"]["scheduler"]["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in dc["spec"]["scheduler"]["service"]["ports"]} <= ports
    # Deployments: selectors match template labels; Services select a Deployment
    labels = []
    for dep in by_kind["Deployment"]:
        sel = dep["spec"]["selector"]["matchLabels"]
        tpl = dep["spec"]["template"]["metadata"]["labels"]
        assert sel.items() <= tpl.items(), dep["metadata"]["name"]
        labels.append(tpl)
        for v in dep["spec"]["template"]["spec"].get("volumes", []):
            assert v["persistentVolumeClaim"]["claimName"] in pvcs
    for svc in by_kind["Service"]:
        assert any(svc["spec"]["selector"].items() <= lb.items() for lb in labels)
    serve = next(d for d in by_kind["Deployment"] if d["metadata"]["name"] == "xgeo-nightly")
    env = {e["name"]: e["value"] for e in serve["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["XGEO_DASK_ADDRESS"] == "tcp://xgeo-scheduler:8786"  # operator's service name
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"


def test_helm_values() -> None:
    (v,) = _load_all("helm/dask-values.yaml")
    assert v["worker"]["threads_per_worker"] == 1
    assert v["worker"]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "GPU=1" in v["worker"]["extraArgs"]
    assert v["worker"]["mounts"]["volumeMounts"][0]["mountPath"] == "/data"
    assert v["scheduler"]["servicePort"] == 8786


def test_slurm_example_parses() -> None:
    src = (INFRA / "slurm" / "cluster.py").read_text()
    tree = ast.parse(src)
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"make_cluster", "main"} <= funcs
    assert "--gres=gpu:1" in src and "GPU=1" in src


@pytest.mark.parametrize("doc", ["README.md"])
def test_infra_readme_mentions_every_file(doc: str) -> None:
    text = (INFRA / doc).read_text()
    for f in ("compose.yaml", "Dockerfile", "k8s/daskcluster.yaml", "helm/dask-values.yaml",
              "slurm/cluster.py", "prefect server start"):
        assert f in text, f
