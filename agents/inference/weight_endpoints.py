"""Weight-update endpoints of the embedded server: join a weight-sync group, receive buckets, version.

`attach_weight_endpoints(server)` adds to an `InferenceServer`:

- ``POST /weights/init`` ``{"host", "port", "rank", "world_size", "backend"}``: join the trainer's
  weight-sync group (in the background: joining waits for every rank).
- ``POST /weights/update`` ``{}``: start receiving one update (in the background, so that the
  trainer can start broadcasting); generation waits until it is applied.
- ``GET /weights/status``: ``{"joined", "updating", "version", "updates", "error"}``.

An update arrives as buckets (`swerepair.trainers.weight_sync`); each received tensor is copied
into the model's parameter or buffer of the same name. LoRA factors (named
``<weight>::lora_A``/``::lora_B``/``::lora_scaling``, see `adapter_weights`) are applied after
the whole update is in, as ``W = W_base + scaling · B @ A``, where ``W_base`` is the weight as it
was before the layer's first adapter update (a later plain update of the weight replaces it).
The whole update is applied under the server's ``generation_lock``, so no request is answered
with half-updated weights; then the policy version becomes the one the update carries and caches
are reset.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

__all__ = ["attach_weight_endpoints"]

log = logging.getLogger(__name__)


class _WeightState:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.group: Any = None
        self.receiver: Any = None
        #: base weights of the layers adapter updates change, by name (see `_apply_adapters`)
        self.base: dict[str, Any] = {}
        self.joined = threading.Event()
        self.updating = False
        self.updates = 0
        self.error: str | None = None
        self.lock = threading.Lock()

    def init(self, body: dict[str, Any]) -> dict[str, Any]:
        from swerepair.agents.inference.weights.group import WeightSyncGroup

        try:
            host, port = str(body["host"]), int(body["port"])
            rank, world = int(body["rank"]), int(body["world_size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"/weights/init needs host, port, rank and world_size: {exc}") from None
        backend = str(body.get("backend", "gloo"))
        if backend not in ("gloo", "nccl"):
            raise ValueError(f"backend must be gloo or nccl, got {backend!r}")
        if rank < 1:
            raise ValueError("a server's rank is 1..world_size-1 (the trainer is 0)")
        device = str(getattr(self.server.backend.model, "device", "cpu"))
        self.joined.clear()
        self.error = None

        def join() -> None:
            try:
                self.group = WeightSyncGroup(host, port, rank, world, backend=backend, device=device)
                self.joined.set()
            except Exception as exc:  # reported through /weights/status
                self.error = f"join: {type(exc).__name__}: {exc}"
                log.exception("joining the weight-sync group failed")

        threading.Thread(target=join, name="weights-join", daemon=True).start()
        return {"ok": True}

    def update(self, _body: dict[str, Any]) -> dict[str, Any]:
        if not self.joined.is_set():
            raise ValueError("join a weight-sync group first (/weights/init)")
        with self.lock:
            if self.updating:
                raise ValueError("an update is already being received")
            self.updating = True
            self.error = None  # the status reports this update's outcome
        threading.Thread(target=self._receive, name="weights-update", daemon=True).start()
        return {"ok": True}

    def _receive(self) -> None:
        from swerepair.agents.inference.weights.protocol import split_adapter_name
        from swerepair.agents.inference.weights.receiver import WeightReceiver

        model = self.server.backend.model
        targets = dict(model.named_parameters())
        targets.update(dict(model.named_buffers()))
        unknown: list[str] = []
        factors: dict[str, dict[str, Any]] = {}

        def apply(tensors: list[tuple[str, Any]]) -> None:
            import torch

            with torch.no_grad():
                for name, tensor in tensors:
                    adapter = split_adapter_name(name)
                    if adapter is not None:  # composed once the whole update is in
                        factors.setdefault(adapter[0], {})[adapter[1]] = tensor.clone()
                        continue
                    target = targets.get(name)
                    if target is None:
                        unknown.append(name)
                        continue
                    target.copy_(tensor.to(target.device, target.dtype))
                    self.base.pop(name, None)  # a plain weight is the new base of its layer

        try:
            with self.server.generation_lock:
                if self.receiver is None or self.receiver.group is not self.group:
                    self.receiver = WeightReceiver(self.group)  # its buffer is kept between updates
                self.receiver.apply = apply
                version = self.receiver.receive_update()
                unknown += self._apply_adapters(factors, targets)
                self.server.backend.policy_version = version
                reset = getattr(self.server.backend, "reset_cache", None)
                if callable(reset):
                    reset()
            if unknown:
                self.error = f"update {version}: {len(unknown)} unknown tensor name(s), first {unknown[0]!r}"
                log.error("%s", self.error)
            self.updates += 1
        except Exception as exc:
            self.error = f"update: {type(exc).__name__}: {exc}"
            log.exception("receiving a weight update failed")
        finally:
            self.updating = False

    def _apply_adapters(self, factors: dict[str, dict[str, Any]], targets: dict[str, Any]) -> list[str]:
        """``W = W_base + scaling · B @ A`` for every layer an adapter update names; the base is
        the layer's weight before its first adapter update (or its last plain update). Returns
        the names that matched no weight."""
        import torch

        unknown = []
        with torch.no_grad():
            for name, parts in factors.items():
                target = targets.get(name)
                if target is None or set(parts) != {"lora_A", "lora_B", "lora_scaling"}:
                    unknown.append(name)
                    continue
                if name not in self.base:
                    self.base[name] = target.detach().clone()
                base = self.base[name]
                a, b = (
                    parts["lora_A"].to(target.device, torch.float32),
                    parts["lora_B"].to(target.device, torch.float32),
                )
                delta = (b @ a) * float(parts["lora_scaling"])
                target.copy_((base.float() + delta).to(target.dtype))
        return unknown

    def status(self, _body: dict[str, Any]) -> dict[str, Any]:
        return {
            "joined": self.joined.is_set(),
            "updating": self.updating,
            "version": int(self.server.policy_version),
            "updates": self.updates,
            "error": self.error,
        }


def attach_weight_endpoints(server: Any) -> Any:
    """Add the ``/weights/*`` endpoints (see the module docstring) to `server`; return it."""
    state = _WeightState(server)
    server.add_route("POST", "/weights/init", state.init)
    server.add_route("POST", "/weights/update", state.update)
    server.add_route("GET", "/weights/status", state.status)
    server.weight_state = state
    return server
