"""deploy/Dockerfile, linted (no container engine here to build it): multi-stage, non-root,
a health check, gunicorn through `tdm1-cds serve` without --dev, no secrets baked in."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _runtime_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_multi_stage() -> None:
    assert sum(keyword == "FROM" for keyword, _ in _instructions()) >= 2
    assert any(keyword == "COPY" and "--from=" in rest for keyword, rest in _runtime_stage())


def test_runs_as_a_non_root_user() -> None:
    users = [rest for keyword, rest in _runtime_stage() if keyword == "USER"]
    assert users, "no USER in the runtime stage: the service would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_health_check_and_port() -> None:
    runtime = dict(_runtime_stage())
    assert "/healthz" in runtime["HEALTHCHECK"]
    assert runtime["EXPOSE"].split()[0] == "8080"


def test_serves_with_gunicorn_in_production_mode() -> None:
    command = json.loads(dict(_runtime_stage())["CMD"])
    assert command[:2] == ["tdm1-cds", "serve"] and "--dev" not in command
    env = " ".join(rest for keyword, rest in _runtime_stage() if keyword == "ENV")
    assert "TDM1_CDS_DEV" not in env
    assert "TDM1_CDS_ISSUERS=/etc/tdm1-cds/" in env  # from the mounted Secret


def test_no_secrets_in_the_image() -> None:
    for keyword, rest in _instructions():
        if keyword in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|HASH_KEY|DATABASE_URL)", rest, re.I), rest
        if keyword in ("COPY", "ADD"):
            assert not re.search(r"\.(pem|key|env)\b|issuers\.json|sqlite3", rest), rest
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "*.sqlite3*"} <= set(ignored)


def test_files_the_image_copies_exist() -> None:
    for keyword, rest in _instructions():
        if keyword == "COPY" and "--from=" not in rest:
            *sources, _target = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), source
