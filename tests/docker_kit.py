"""What the Docker tests share: whether an engine answers, their marks, and the test image.

Every Docker test finds its image through `base_image()`, which runs
tests/docker/build_images.sh (it builds the image once, locally, and prints its tag; later runs
find it by that tag). No test assumes any other image.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest


def _engine_answers() -> bool:
    try:
        from swerepair.envs.sandbox.docker import docker_available
    except ImportError:  # the docker extra is not installed
        return False
    return docker_available()


HAVE_DOCKER = _engine_answers()
#: Marks of a test that needs a Docker engine: skipped where none answers, except under CI=true,
#: where the Docker tests must run (.ci/run starts dockerd).
needs_docker = [
    pytest.mark.docker,
    pytest.mark.skipif(not HAVE_DOCKER and not os.environ.get("CI"), reason="no Docker engine answers"),
]

BUILD_SCRIPT = Path(__file__).resolve().parent / "docker" / "build_images.sh"


@functools.lru_cache(maxsize=1)
def base_image() -> str:
    """Tag of the test base image (Debian bookworm minbase + python3, pytest, git), built by
    `BUILD_SCRIPT` if it is missing. Fails under CI, skips elsewhere, if it cannot be built."""
    try:
        proc = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=1800)
        problem = None if proc.returncode == 0 else f"{BUILD_SCRIPT.name} failed: {proc.stderr[-2000:]}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        proc, problem = None, f"{BUILD_SCRIPT.name}: {exc}"
    if problem is not None or proc is None:
        if os.environ.get("CI"):
            pytest.fail(problem or "no image")
        pytest.skip(problem or "no image")
    return proc.stdout.strip().splitlines()[-1]
