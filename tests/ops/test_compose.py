"""The compose file and Dockerfile, checked offline (no Docker engine here)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_specification():
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).with_name(
        "check-jsonschema"))
    result = subprocess.run([exe, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dependency_names_a_defined_service(compose):
    services = set(compose["services"])
    assert {"postgres", "redis", "web", "worker", "scheduler", "migrate", "mailpit"} <= services
    for name, service in compose["services"].items():
        depends = service.get("depends_on", {})
        for dep in (depends if isinstance(depends, (list, dict)) else []):
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_migrations_run_once_before_the_app(compose):
    services = compose["services"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "scheduler"):
        assert services[name]["depends_on"]["migrate"]["condition"] == \
            "service_completed_successfully", name


def test_healthchecks_volumes_and_broker_durability(compose):
    services = compose["services"]
    for name in ("postgres", "redis", "web", "worker", "scheduler", "mailpit"):
        assert "test" in services[name]["healthcheck"], name
    assert set(compose["volumes"]) >= {"postgres-data", "redis-data"}
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "--maxmemory-policy noeviction" in redis_cmd
    assert "8025:8025" in " ".join(services["mailpit"]["ports"])  # the catcher's web UI


def _refflow_commands(compose) -> list[list[str]]:
    out = []
    for name, service in compose["services"].items():
        if service.get("image", "").startswith("refflow") or "build" in service:
            command = service["command"]
            words = command if isinstance(command, list) else command.split()
            out.append([w for w in words if not w.startswith("-")][:2])
    return out


def test_every_refflow_command_exists_in_the_cli(compose):
    commands = _refflow_commands(compose)
    assert ["web", "0.0.0.0"] in [c[:2] for c in commands] or any(c[0] == "web"
                                                                   for c in commands)
    for words in commands:
        args = [words[0]] + ([words[1]] if words[0] == "db" else [])
        result = subprocess.run([sys.executable, "-m", "refflow", *args, "--help"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (args, result.stderr)
    # the command line options compose passes are ones the commands accept
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        words = service["command"]
        help_text = subprocess.run([sys.executable, "-m", "refflow", words[0],
                                    *(words[1:2] if words[0] == "db" else []), "--help"],
                                   capture_output=True, text=True, timeout=60).stdout
        for option in (w for w in words if w.startswith("--")):
            assert option in help_text, (name, option)


def test_dockerfile_is_slim_non_root_with_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms and all(f.startswith("python:3.11-slim") for f in froms)
    runtime = text.split("FROM python:3.11-slim\n")[-1]  # the final stage
    assert re.search(r"^USER (?!root|0\b)\S+", runtime, re.M)
    assert "HEALTHCHECK" in runtime
    assert not re.search(r"apt-get install[^\n]*(gcc|build-essential)", runtime)
    assert (ROOT / ".dockerignore").read_text().count(".git") >= 1
