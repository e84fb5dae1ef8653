"""The deployment files agree with the topology file (static: no container engine or cluster runs here).

docker-compose.yml, the Kubernetes manifests (through kustomization.yaml) and the
systemd template must start every stage of deploy/cluster.toml with that file, as
many workers as it says, and expose every endpoint it binds under the host name
the other side connects to.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from gazeflow.services.panel.settings import read_token
from gazeflow.shared import config, registry
from gazeflow.shared.security import make_keys, neighbours
from gazeflow.shared.transport import Endpoint

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
CONFIG_PATH = "/etc/gazeflow/cluster.toml"


def host(stage: str) -> str:
    return stage.replace("_", "-")


@pytest.fixture(scope="module")
def topology() -> config.Config:
    return config.load(str(DEPLOY / "cluster.toml"))


def links(cfg: config.Config) -> list[tuple[str, Endpoint, str, Endpoint]]:
    """(binding stage, its endpoint, connecting stage, its endpoint) for every link."""
    out = []
    for link in cfg.chain_links:
        up, down = link.up, link.down
        a, b = cfg.endpoint(up, "output"), cfg.endpoint(down, "input")
        out.append((up, a, down, b) if a.mode == "bind" else (down, b, up, a))
    return out


def port(ep: Endpoint) -> int:
    return int(ep.address.rsplit(":", 1)[1])


def test_the_topology_is_tcp_with_curve_and_explicit_binds(topology):
    assert topology.curve_keys and topology.workers("face_detection") == 2
    for binder, bound, _, connected in links(topology):
        if bound.local:  # the panel beside the pointer: the run directory both mount
            assert bound.address == connected.address == f"ipc://{topology.run_dir}/results"
            continue
        assert bound.address.startswith("tcp://0.0.0.0:")  # explicit; a container's address is not known
        assert connected.address == f"tcp://{host(binder)}:{port(bound)}"  # the binder's service name


def test_compose_runs_every_stage_with_the_topology(topology):
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {host(s) for s in topology.chain}
    for stage in topology.chain:
        svc = services[host(stage)]
        assert svc["command"] == ["stage", stage, "--config", CONFIG_PATH]
        assert f"./cluster.toml:{CONFIG_PATH}:ro" in svc["volumes"]
        # each container mounts only its own stage's keys
        assert [v for v in svc["volumes"] if "keys" in v] == [f"./keys/{stage}:{topology.curve_keys}/{stage}:ro"]
        if stage in ("pointer", "panel"):  # the run directory they share
            assert f"run:{Path(topology.run_dir).parent}" in svc["volumes"]
        assert svc.get("deploy", {}).get("replicas", 1) == topology.workers(stage)
        assert svc["image"] == services["capture"]["image"]  # one image
    assert services["capture"]["build"]["dockerfile"] == "deploy/Dockerfile"
    for binder, bound, connecter, _ in links(topology):
        if bound.local:
            continue
        assert str(port(bound)) in services[host(binder)].get("expose", []), (binder, bound)
        # started after the service it connects to: a name that does not resolve yet stalls a connect
        assert host(binder) in services[host(connecter)].get("depends_on", []), (connecter, binder)


def _kubernetes_objects(tmp_path: Path, topology) -> list[dict]:
    """Rendered by kustomize (kubectl) when it is installed, else the manifests as written."""
    kubectl = shutil.which("kubectl")
    if kubectl:
        copy = tmp_path / "deploy"
        shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns("keys"))
        make_keys(copy / "keys", topology.chain_links)
        rendered = subprocess.run([kubectl, "kustomize", str(copy)], capture_output=True, text=True, timeout=60)
        assert rendered.returncode == 0, rendered.stderr
        return [d for d in yaml.safe_load_all(rendered.stdout) if d]
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    docs = []
    for resource in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((DEPLOY / resource).read_text()) if d]
    return docs


def pods(topology) -> dict[str, str]:
    """The Deployment each stage runs in: its own, unless its input is an ipc socket (then its upstream
    neighbour's pod, sharing the run directory: the panel beside the pointer)."""
    out: dict[str, str] = {}
    for stage in topology.chain:
        link = next((k for k in topology.chain_links if k.down == stage), None)
        local = link is not None and topology.endpoint(stage, "input").local
        out[stage] = out[link.up] if local else host(stage)
    return out


def container_of(deployment: dict, stage: str) -> dict:
    found = [
        c
        for c in deployment["spec"]["template"]["spec"]["containers"]
        if c["args"] == ["stage", stage, "--config", CONFIG_PATH]
    ]
    assert len(found) == 1, (deployment["metadata"]["name"], stage)
    return found[0]


def key_volume(deployment: dict, container: dict, keys: str) -> dict:
    name = next(m["name"] for m in container["volumeMounts"] if m["mountPath"] == keys)
    return next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == name)


def test_kubernetes_has_a_deployment_per_stage_and_a_service_per_endpoint(topology, tmp_path):
    objects = _kubernetes_objects(tmp_path, topology)
    deployments = {d["metadata"]["name"]: d for d in objects if d["kind"] == "Deployment"}
    services = {d["metadata"]["name"]: d for d in objects if d["kind"] == "Service"}
    where = pods(topology)
    assert set(deployments) == set(where.values())
    for stage in topology.chain:
        d = deployments[where[stage]]
        assert d["spec"]["replicas"] == topology.workers(stage)
        container = container_of(d, stage)
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert {CONFIG_PATH, f"{topology.curve_keys}/{stage}"} <= set(mounts)
        if where[stage] != host(stage):  # beside another stage: the same run directory, in memory, shared
            shared = str(Path(topology.run_dir).parent)  # the run directory is made inside, 0700 (not a mount's mode)
            assert mounts[shared] == "run"
            assert mounts[shared] in {
                m["name"]
                for m in container_of(d, next(s for s in topology.chain if host(s) == where[stage]))["volumeMounts"]
            }
        assert d["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
    for binder, bound, _, _ in links(topology):
        if bound.local:
            continue
        svc = services[host(binder)]  # the name the connecting side dials
        assert port(bound) in [p["port"] for p in svc["spec"]["ports"]]
        pod_labels = deployments[host(binder)]["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= pod_labels.items()
        assert port(bound) in [p["containerPort"] for p in container_of(deployments[host(binder)], binder)["ports"]]
    assert set(services) == {host(b) for b, ep, _, _ in links(topology) if not ep.local}  # none without an endpoint
    for d in deployments.values():  # no privileged container (the camera comes from a device plugin), keys private
        spec = d["spec"]["template"]["spec"]
        assert not any(c.get("securityContext", {}).get("privileged") for c in spec["containers"])
        assert spec["securityContext"]["fsGroup"] == 10001
        for v in spec["volumes"]:
            if "secret" in v:
                assert v["secret"]["defaultMode"] & 0o007 == 0


def test_the_panel_runs_beside_the_pointer_with_its_token_and_prometheus_annotations(topology, tmp_path):
    assert "panel" in topology.chain and topology.panel.token_file.startswith(f"{topology.curve_keys}/panel/")
    assert not registry.frames_after(topology, "capture")  # no live view: the tcp links carry no pixels
    deployments = {
        d["metadata"]["name"]: d for d in _kubernetes_objects(tmp_path, topology) if d["kind"] == "Deployment"
    }
    pod = deployments[pods(topology)["panel"]]["spec"]["template"]
    port_number = int(topology.panel.address.rsplit(":", 1)[1])
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port_number),
        "prometheus.io/path": "/metrics",
        "prometheus.io/scheme": "http",
    }
    panel = container_of(deployments[pods(topology)["panel"]], "panel")
    assert port_number in [p["containerPort"] for p in panel["ports"]]
    token = Path(topology.panel.token_file).name
    volume = key_volume(deployments[pods(topology)["panel"]], panel, f"{topology.curve_keys}/panel")
    assert {"key": token, "path": token} in volume["secret"]["items"]
    # the cluster's scrape config keeps the annotated pods, on the annotations' port and path, with that token
    scrape = yaml.safe_load((DEPLOY / "monitoring" / "prometheus-kubernetes.yml").read_text())["scrape_configs"][0]
    assert Path(scrape["authorization"]["credentials_file"]).name == token
    used = {label for r in scrape["relabel_configs"] for label in r["source_labels"]}
    for annotation in pod["metadata"]["annotations"]:
        if annotation != "prometheus.io/scheme":
            assert "__meta_kubernetes_pod_annotation_" + annotation.replace(".", "_").replace("/", "_") in used


def test_gazeflow_keys_makes_the_panels_token_only_its_owner_reads(topology, tmp_path):
    d = make_keys(tmp_path / "keys", topology.chain_links)
    token = d / "panel" / Path(topology.panel.token_file).name
    assert token.stat().st_mode & 0o077 == 0
    assert read_token(str(token)) == token.read_text().strip()
    assert not list(d.glob("pointer/*.token"))  # only the stages whose manifests ask for one


def test_each_kubernetes_stage_gets_its_own_secret_with_only_its_key_pair_and_its_neighbours(topology, tmp_path):
    near = neighbours(topology.chain_links)
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    generated = {g["name"]: g["files"] for g in kustomization["secretGenerator"]}
    objects = _kubernetes_objects(tmp_path, topology)
    deployments = {d["metadata"]["name"]: d for d in objects if d["kind"] == "Deployment"}
    where = pods(topology)
    for stage in topology.chain:
        d = deployments[where[stage]]
        volume = key_volume(d, container_of(d, stage), f"{topology.curve_keys}/{stage}")
        name = volume["secret"]["secretName"]
        expected = {f"{stage}.key": f"{stage}.key", f"{stage}.key_secret": f"{stage}.key_secret"}
        expected |= {f"peer-{o}.key": f"peers/{o}.key" for o in near[stage]}
        expected |= {t: t for t in registry.get(stage).tokens}
        assert {i["key"]: i["path"] for i in volume["secret"]["items"]} == expected
        base = name if name in generated else name.rsplit("-", 1)[0]  # kustomize appends a content hash
        files = generated[base]
        assert {f.split("=")[0].rsplit("/", 1)[-1] for f in files} == set(expected)
        assert all(f.split("=")[-1].startswith(f"keys/{stage}/") for f in files)  # from the stage's own folder


def test_systemd_template_runs_a_stage_with_the_topology():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(DEPLOY / "systemd" / "gazeflow-stage@.service")
    exec_start = unit["Service"]["ExecStart"]
    assert exec_start.endswith(f"gazeflow stage %i --config {CONFIG_PATH}")
    assert unit["Service"]["Restart"] == "on-failure" and unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_dockerfile_installs_the_package_and_fetches_verified_models():
    text = (DEPLOY / "Dockerfile").read_text()
    pyproject = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())
    for folder in set(pyproject["tool"]["setuptools"]["package-dir"].values()):
        assert f"COPY {folder} {folder}" in text
    assert "pip install --no-cache-dir" in text and "gazeflow fetch" in text and "--verify" in text
    assert 'ENTRYPOINT ["gazeflow"]' in text
    # offline: the mirror comes from the build context, for compose's build too
    assert "COPY deploy/mirror /mirror" in text and (DEPLOY / "mirror" / "README.md").is_file()
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert set(compose["services"]["capture"]["build"]["args"]) == {"ASSETS_MIRROR", "BASE"}
    ignored = (DEPLOY.parent / ".dockerignore").read_text().splitlines()
    assert "!deploy/mirror/" in ignored and "*" in ignored  # a small context: no .venv, no .assets


def test_the_package_list_names_every_folder_the_wheel_must_carry():
    """The editable install finds subpackages through package-dir; a wheel carries only the listed ones (a missing
    gazeflow.services.bench once broke the image at its first `gazeflow` command)."""
    setuptools = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = set()
    for package, folder in setuptools["package-dir"].items():
        for init in (DEPLOY.parent / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(DEPLOY.parent / folder).parts
            on_disk.add(".".join((package, *relative)))
    assert set(setuptools["packages"]) == on_disk


def test_stage_names_with_a_worker_label_are_checked(topology, caplog):
    from gazeflow.services.cli import cli, main, pipeline_config

    pipeline_config(["face_detection:1"], "stage")  # accepted
    assert cli.commands["stage"].make_context("stage", ["face_detection:1"]).params["name"] == "face_detection:1"

    assert main(["stage", "nope:1", "--config", str(DEPLOY / "cluster.toml")]) == 2  # an unknown stage is not
    assert "unknown stage 'nope'" in caplog.text


def test_the_grafana_dashboard_and_the_scrape_config_ask_only_for_what_the_panel_exports():
    """Every metric a dashboard query names is one the panel's /metrics has; the scrape config sends the
    token, as the panel needs it for every request."""
    import json
    import re

    import msgspec
    from prometheus_client import generate_latest

    from gazeflow.services.panel.state import PanelState
    from gazeflow.shared import channels
    from gazeflow.shared.messages import Message
    from gazeflow.shared.metrics import PipelineMetrics, trace_row

    metrics = PipelineMetrics(("capture", "pointer"))
    header = {"frame": 0, "t_capture": 1.0, "face": None, "gaze": None}
    metrics.add(Message("frame", header | {"trace": [trace_row("capture", 10**9, 10**9), trace_row("pointer", 2e9)]}))
    state = PanelState(("capture", "pointer"), 2.0)
    state.update(msgspec.convert(metrics.figures(0), channels.Figures))  # as the pointer's reply brings them
    state.prometheus.cpu.labels("pointer").set(0.1)
    state.prometheus.rss.labels("pointer").set(1e6)
    for gauge in (state.prometheus.restarts, state.prometheus.dropped, state.prometheus.malformed):
        gauge.labels("pointer").set(0)
    exported = set(re.findall(r"^(gazeflow_\w+?)(?:\{| )", generate_latest(state.prometheus.registry).decode(), re.M))
    dashboard = json.loads((DEPLOY / "monitoring" / "grafana-dashboard.json").read_text())
    asked = {m for p in dashboard["panels"] for t in p["targets"] for m in re.findall(r"gazeflow_\w+", t["expr"])}
    assert asked and asked <= exported, asked - exported
    scrape = yaml.safe_load((DEPLOY / "monitoring" / "prometheus.yml").read_text())["scrape_configs"][0]
    assert "credentials_file" in scrape["authorization"]
