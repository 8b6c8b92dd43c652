"""A vLLM worker extension that receives live weights over a swerepair `WeightSyncGroup`.

Start vLLM with it, and with its development endpoints (``/collective_rpc``,
``/reset_prefix_cache``)::

    VLLM_SERVER_DEV_MODE=1 vllm serve MODEL \\
        --worker-extension-cls swerepair.agents.inference.vllm_extension.WeightSyncExtension

vLLM mixes the class into every worker, so each worker (each tensor-parallel rank) gains the
methods below; the trainer's `swerepair.trainers.weight_sync.VLLMWeightPusher` calls them through
``POST /collective_rpc``. vLLM's endpoint passes string arguments only, so each method takes one
JSON object as a string and answers a JSON-able dict.

- ``swerepair_status()``: ``{"joined", "rank", "version", "updates", "loader", "broken"}``.
- ``swerepair_join(spec)``: join the trainer's group. ``spec``: ``host``, ``port``,
  ``world_size``, ``first_rank`` (this server's first rank; worker *r* of the server takes
  ``first_rank + r``), ``backend`` (``gloo``/``nccl``), ``timeout_s``, and optionally ``loader``.
- ``swerepair_receive(spec)``: receive one update (it blocks until the trainer has broadcast
  every bucket) and load it; the answer carries the version from the end marker, the tensors,
  bytes and seconds.
- ``swerepair_leave()``: leave the group.

Loading. The received tensors are streamed, bucket by bucket as they arrive, into the model's
``load_weights`` (checkpoint names, so the model's own loaders fuse q/k/v, shard tensor-parallel
weights and so on). By default (``loader: "auto"``) this goes through the worker's
``reload_weights(weights_iterator=...)`` where the worker has it: that wraps ``load_weights`` so
that layers whose weights vLLM repacked or quantized after loading (every linear layer on the CPU
build) are rebuilt from the new checkpoint tensors. ``loader: "load_weights"`` calls the model's
``load_weights`` directly, which is enough on GPUs for unquantized models. If loading fails
part-way, the rest of the update is still received (so the group stays in step with the trainer)
and the error is returned; the version is not advanced, and ``broken`` in the status says that the
served weights may be incomplete (vLLM's ``reload_weights`` leaves the layers it had not reached
unloaded) until an update loads in full. If the group itself fails, the worker leaves it.

Tied weights. A model whose LM head shares the input embedding's weight (SmolLM2, Qwen3's small
sizes) receives that weight once, under the embedding's name; ``reload_weights`` rebuilds the
embedding layer but not the head, whose own derived state (on the CPU build, a prepacked copy of
the weight for its matrix product) would keep the old values, so the head answered with the old
embedding (measured: logprobs off by 0.4 after a 10% perturbation of the embedding alone). After
each update the extension re-runs ``process_weights_after_loading`` on every unquantized layer
that shares its weight with another one.

The extension touches only ``self.device``, ``self.rank``, ``self.model_runner`` and
``self.reload_weights`` of the worker, which is what its tests fake.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

__all__ = ["WeightSyncExtension"]

log = logging.getLogger(__name__)

_LOADERS = ("auto", "reload_weights", "load_weights")


def _spec(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


class WeightSyncExtension:
    """Methods mixed into a vLLM worker (see the module docstring). State lives in attributes
    named ``_swerepair_*``, set on first use: vLLM refuses an extension whose class attributes
    clash with the worker's."""

    def _swerepair_state(self) -> dict[str, Any]:
        state = self.__dict__.get("_swerepair")
        if state is None:
            state = {"group": None, "version": 0, "updates": 0, "loader": "auto", "broken": None}
            self.__dict__["_swerepair"] = state
        return state

    def swerepair_status(self, raw: str | None = None) -> dict[str, Any]:
        """Where this worker stands: joined or not, its group rank, and the version it serves."""
        st = self._swerepair_state()
        group = st["group"]
        return {
            "joined": group is not None,
            "rank": None if group is None else group.rank,
            "version": st["version"],
            "updates": st["updates"],
            "loader": st["loader"],
            "broken": st["broken"],
        }

    def swerepair_join(self, raw: str | None = None) -> dict[str, Any]:
        """Join the trainer's weight-sync group as rank ``first_rank + self.rank``."""
        from swerepair.agents.inference.weights.group import WeightSyncGroup

        st = self._swerepair_state()
        try:
            spec = _spec(raw)
            loader = str(spec.get("loader", "auto"))
            if loader not in _LOADERS:
                raise ValueError(f"loader must be one of {', '.join(_LOADERS)}, got {loader!r}")
            rank = int(spec["first_rank"]) + int(getattr(self, "rank", 0))
            self.swerepair_leave()
            st["group"] = WeightSyncGroup(
                str(spec["host"]),
                int(spec["port"]),
                rank,
                int(spec["world_size"]),
                backend=str(spec.get("backend", "gloo")),
                device=getattr(self, "device", "cpu"),
                timeout_s=float(spec.get("timeout_s", 300.0)),
            )
            st["loader"] = loader
        except Exception as exc:
            log.exception("joining the weight-sync group failed")
            return {"error": f"join: {type(exc).__name__}: {exc}"}
        return self.swerepair_status()

    def _swerepair_load(self, weights: Any, loader: str) -> None:
        reload = getattr(self, "reload_weights", None)
        if loader in ("auto", "reload_weights") and callable(reload):
            reload(weights_iterator=weights)
        elif loader == "reload_weights":
            raise RuntimeError("this vLLM worker has no reload_weights; use loader load_weights")
        else:
            self.model_runner.model.load_weights(weights=weights)

    def _swerepair_refresh_tied(self) -> int:
        """Re-derive the state of unquantized layers that share a weight (see "Tied weights" in
        the module docstring); how many layers were refreshed."""
        modules = getattr(self.model_runner.model, "modules", None)
        if not callable(modules):
            return 0
        by_weight: dict[int, list[Any]] = {}
        for module in modules():
            weight = getattr(module, "weight", None)
            method = getattr(module, "quant_method", None)
            if weight is None or method is None or not hasattr(method, "process_weights_after_loading"):
                continue
            by_weight.setdefault(id(weight), []).append(module)
        refreshed = 0
        for modules in by_weight.values():
            if len(modules) < 2:
                continue
            for module in modules:  # re-deriving from an unchanged weight is idempotent
                if type(module.quant_method).__name__.startswith("Unquantized"):
                    module.quant_method.process_weights_after_loading(module)
                    refreshed += 1
        return refreshed

    def swerepair_receive(self, raw: str | None = None) -> dict[str, Any]:
        """Receive one update from the group and load it (blocks until the end marker)."""
        from swerepair.agents.inference.weights.receiver import WeightReceiver

        st = self._swerepair_state()
        if st["group"] is None:
            return {"error": "not in a weight-sync group: call swerepair_join first"}
        started = time.perf_counter()
        receiver = WeightReceiver(st["group"])
        stream = receiver.stream()
        error = None
        try:
            import torch

            with torch.no_grad():
                self._swerepair_load(stream, st["loader"])
                self._swerepair_refresh_tied()
        except Exception as exc:
            log.exception("loading a weight update failed")
            error = f"load: {type(exc).__name__}: {exc}"
        left = 0
        if receiver.failure is None:
            try:
                left = WeightReceiver.drain(stream)
            except Exception:  # recorded in receiver.failure
                log.exception("receiving a weight update failed")
        if receiver.failure is not None or receiver.version is None:
            # the group failed (or the update ended without its end marker): it cannot be used again
            why = receiver.failure or "the update ended without its end marker"
            self.swerepair_leave()
            st["broken"] = f"receive failed part-way: {why}"
            return {"error": f"receive: {why}; join again", "version": st["version"]}
        if error is None and left:
            error = f"load: the loader left {left} received tensor(s) unread"
        if error is not None:
            # the group is in step, but the model may hold a mix of old and new (or, with
            # reload_weights, unloaded) weights: say so until a whole update loads
            st["broken"] = f"{error}; the served weights may be incomplete until an update loads in full"
            return {"error": st["broken"], "version": st["version"]}
        st["version"] = int(receiver.version)
        st["updates"] += 1
        st["broken"] = None
        return {
            "version": st["version"],
            "tensors": receiver.tensors,
            "bytes": receiver.nbytes,
            "seconds": time.perf_counter() - started,
        }

    def swerepair_leave(self, raw: str | None = None) -> dict[str, Any]:
        """Leave the weight-sync group (a later `swerepair_join` may form a new one)."""
        st = self._swerepair_state()
        if st["group"] is not None:
            st["group"].close()
            st["group"] = None
        return self.swerepair_status()
