"""The README's network section, run as written: its shell block, unchanged, in a fresh
network namespace of its own (so that its fixed ports are free and nothing it starts
can reach beyond it), from a directory laid out as the project's. Then what each step
promised is checked in what it printed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## A local network from the shell"


def readme_block(section: str) -> str:
    text = (ROOT / "README.md").read_text()
    after = text[text.index(section) :]
    match = re.search(r"```sh\n(.*?)```", after, re.DOTALL)
    assert match, f"no shell block under {section!r}"
    return match.group(1)


@pytest.fixture
def namespace() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    name = f"medledger-readme-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                              check=False)  # fmt: skip
        for pid in pids.stdout.split():
            subprocess.run(["kill", "-9", pid], check=False)
        subprocess.run(["ip", "netns", "del", name], check=True)


@pytest.mark.timeout(900)
def test_the_readme_network_section_runs_as_written(tmp_path: Path, namespace: str) -> None:
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    script = tmp_path / "readme.sh"
    script.write_text("set -euo pipefail\n" + readme_block(SECTION))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDLEDGER_")}
    try:
        done = subprocess.run(
            ["ip", "netns", "exec", namespace, "bash", "-x", str(script)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=840, check=False,
        )  # fmt: skip
    finally:
        subprocess.run(
            ["ip", "netns", "exec", namespace, ".venv/bin/medledger", "network", "down"],
            cwd=tmp_path, env={**env, "MEDLEDGER_PASSPHRASE": "x"}, capture_output=True,
            timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    said = done.stdout
    # The patient set a k-of-n policy from the shell, and it is the one in force.
    assert "Your labs policy is now version 1." in said
    assert re.search(r"labs: approved by 2 of patient, 0x[0-9a-fA-F]{40}, doctor;", said)
    assert "1 request waiting for your answer." in said
    # One approval of two left the request pending; the second granted it.
    assert re.search(r"request 0x[0-9a-f]{64}: pending", said)
    assert re.search(r"request 0x[0-9a-f]{64}: granted", said)
    # The read is proven into a checkpoint the nodes cosigned on their own schedule.
    assert "in checkpoint" in said and "not yet" not in said
    assert "granted, now revoked" in said
    assert re.search(r"grant 0x[0-9a-f]{64}: revoked \(proven at checkpoint \d+: revoked\)", said)
    assert "All records verified." in said
    assert "cosigned by the consortium" in said
    assert "hba1c_x10 < 65: true" in said and "non_smoker >= 1: true" in said
    assert "is down" in said
