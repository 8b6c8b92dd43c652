"""The Docker sandbox (``sandbox="docker"``): one hardened container per episode from the
task's image; the same `swerepair.core.Sandbox` protocol and guarantees as bubblewrap.

- `client`: the engine (`docker_client`, labels, `start_container`, `remove_container`,
  `reap_orphans`);
- `sandbox`: `DockerSandbox`;
- `images`: which image a task runs in (`image_for`: SWE-bench, SWE-Gym, SWE-smith, R2E-Gym);
- `pool`: containers started ahead (`WarmPool`) and the task images' disk budget (`ImageCache`);

See docs/docker.md. Needs the Docker SDK (``pip install 'swerepair[docker]'``) and an engine
(``DOCKER_HOST`` may name a remote one or rootless podman's socket).
"""

from swerepair.envs.sandbox.docker.client import docker_available, docker_client, reap_orphans
from swerepair.envs.sandbox.docker.sandbox import DEFAULT_WORKDIR, DockerSandbox

__all__ = ["DEFAULT_WORKDIR", "DockerSandbox", "docker_available", "docker_client", "reap_orphans"]
