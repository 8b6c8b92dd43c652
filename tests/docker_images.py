"""Images in the SWE-bench layout, built locally on the Docker tests' base image.

`swebench_layout_image(instance)` adds one layer to `docker_kit.base_image()` (the image
tests/docker/build_images.sh builds): the instance's repository at ``/testbed``, at its base
commit, with its git history; the instance's environment at the SWE-bench images' conda path,
``/opt/miniconda3/envs/testbed`` (a virtual environment over the base image's Python, with its
``pytest``), and an ``/opt/miniconda3/bin/activate`` whose ``conda activate testbed`` enters it,
as the harness's eval script does; ``WORKDIR /testbed``. Nothing is pulled: the build runs
with ``--network none`` from a context made here.

The tag names the base image, the recipe and the repository's base commit: a second call finds
the image, a changed instance or recipe builds a new one.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

from docker_kit import base_image
from instances import Instance

#: ``conda activate NAME`` for the layout's environments (sourced by the harness's eval script).
ACTIVATE = """# swerepair test image: conda's activate, for the environments under /opt/miniconda3/envs
conda() {
  if [ "${1:-}" = activate ]; then
    . "/opt/miniconda3/envs/${2:-base}/bin/activate" && export CONDA_DEFAULT_ENV="${2:-base}"
    export CONDA_PREFIX="/opt/miniconda3/envs/${2:-base}"
  fi
}
"""

PYTEST_SCRIPT = """#!/opt/miniconda3/envs/testbed/bin/python
import sys

from pytest import console_main

sys.exit(console_main())
"""

DOCKERFILE = """FROM {base}
COPY repo /testbed
COPY activate /opt/miniconda3/bin/activate
RUN python3 -m venv --without-pip --system-site-packages /opt/miniconda3/envs/testbed
COPY pytest /opt/miniconda3/envs/testbed/bin/pytest
RUN chmod 755 /opt/miniconda3/envs/testbed/bin/pytest \\
 && /opt/miniconda3/envs/testbed/bin/python -c "import pytest" \\
 && git -C /testbed -c safe.directory=* rev-parse HEAD
WORKDIR /testbed
"""
RECIPE = "swebench-layout v1"


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _context(instance: Instance, base: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, "Dockerfile", DOCKERFILE.format(base=base).encode())
        _add(tar, "activate", ACTIVATE.encode())
        _add(tar, "pytest", PYTEST_SCRIPT.encode(), 0o755)
        root = Path(instance.path)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                tar.add(path, arcname=str(Path("repo") / path.relative_to(root)), recursive=False)
    return buf.getvalue()


def image_tag(instance: Instance, base: str) -> str:
    """The tag of `instance`'s image on `base`."""
    key = hashlib.sha256(f"{base}|{RECIPE}|{DOCKERFILE}|{ACTIVATE}|{instance.base_commit}".encode()).hexdigest()
    owner, name = instance.repo.split("/")
    return f"swerepair-test-swebench.{owner}_1776_{name}-{instance.name}:{key[:12]}".lower()


def swebench_layout_image(instance: Instance) -> str:
    """Build (once) and return the SWE-bench-layout image of `instance` (module docstring)."""
    import docker

    client = docker.from_env(timeout=600)
    base = base_image()
    tag = image_tag(instance, base)
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    client.images.build(
        fileobj=io.BytesIO(_context(instance, base)),
        custom_context=True,
        tag=tag,
        network_mode="none",
        rm=True,
        forcerm=True,
        pull=False,
    )
    return tag
