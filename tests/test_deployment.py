"""docker-compose.yml and the Dockerfile only name real livedesk commands and settings."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.main import get_command

from services.app import STAGES
from services.cli import cli
from services.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> set[tuple[str, ...]]:
    root = get_command(cli)
    names: set[tuple[str, ...]] = set()
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        names.add((name,))
        for sub in getattr(command, "commands", {}):
            names.add((name, sub))
    return names


def test_every_service_runs_a_real_command_with_a_healthcheck() -> None:
    """Each livedesk service's command is a livedesk command; long-running ones have health checks."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "poller", "dedup", "tracker", "notifier", "console"} <= set(services)
    commands = _commands()
    for name, service in services.items():
        if name == "redis":
            continue
        command = tuple(service["command"])
        assert command[:1] in commands or command[:2] in commands, f"{name}: {command} is not a livedesk command"
        if command[0] == "worker":
            assert command[1] in set(STAGES)
            health = tuple(service["healthcheck"]["test"][1:3])
            assert (health[1],) in commands, f"{name}: health check {health} is not a command"
        assert "healthcheck" in services["redis"]


def test_compose_environment_names_real_settings() -> None:
    """Every LIVEDESK_ variable in the compose file is a field of Settings."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    fields = {f"LIVEDESK_{name.upper()}" for name in Settings.model_fields}
    for service in compose["services"].values():
        for variable in service.get("environment", {}):
            assert variable in fields, variable


def test_dockerfile_installs_the_package_and_runs_livedesk() -> None:
    """The image installs the project and its entry point is the livedesk command."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install" in dockerfile
    assert 'ENTRYPOINT ["livedesk"]' in dockerfile
