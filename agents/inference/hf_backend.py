"""The ``hf`` backend: in-process generation with a `transformers` causal LM, CPU or GPU.

Prompts are token ids (what a token-exact episode has accumulated); a batch is left-padded
and decoded step by step with the model's KV cache. Each step samples from
``softmax(logits / temperature)`` truncated to the top-p nucleus (greedy when temperature is
0) and records the chosen token's logprob under ``log_softmax(logits / temperature)``, the
untruncated sampling distribution, which at temperature 1 is the model's own distribution:
what a trainer recomputes. A row stops at its first stop token (kept) or at
`max_new_tokens`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from swerepair.agents.inference.backend import Generation

__all__ = ["HFBackend", "stop_token_ids"]


def stop_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    """The ids that end a turn: the tokenizer's eos, ``<|im_end|>`` if the vocabulary has it,
    and the model's generation-config eos ids."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id and im_end >= 0:
        ids.add(im_end)
    gen = getattr(model, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif isinstance(eos, (list, tuple)):
        ids.update(int(e) for e in eos)
    return sorted(ids)


class HFBackend:
    """Batched sampling with a transformers model (see the module docstring).

    Args:
        model: a causal LM (``AutoModelForCausalLM``), on the device generation should run on.
        tokenizer: its tokenizer (for decoding, the pad and the stop tokens).
        temperature: sampling temperature; 0 means greedy.
        top_p: nucleus size for sampling (1.0 disables it).
        max_new_tokens: most tokens one turn may generate.
        seed: seed of the sampling RNG (``None``: nondeterministic).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 512,
        seed: int | None = None,
    ) -> None:
        import torch

        self.model = model
        self.tokenizer = tokenizer
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.stop_ids = stop_token_ids(tokenizer, model)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.stop_ids[0])
        self.generator = torch.Generator(device=model.device)
        if seed is not None:
            self.generator.manual_seed(seed)
        self.policy_version = 0
        #: tokens generated and seconds spent, for throughput logs
        self.stats = {"generated_tokens": 0, "seconds": 0.0}

    def _sample(self, logits: Any) -> tuple[Any, Any]:
        """Choose one token per row; return (ids, their logprobs under the sampling dist)."""
        import torch

        if self.temperature <= 0:
            logp = torch.log_softmax(logits.float(), dim=-1)
            ids = logits.argmax(dim=-1)
            return ids, logp.gather(-1, ids[:, None]).squeeze(-1)
        logp = torch.log_softmax(logits.float() / self.temperature, dim=-1)
        probs = logp.exp()
        if self.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            outside = sorted_p.cumsum(dim=-1) - sorted_p > self.top_p  # keep at least the top one
            sorted_p = sorted_p.masked_fill(outside, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        ids = torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)
        return ids, logp.gather(-1, ids[:, None]).squeeze(-1)

    def generate(self, prompts: Sequence[Sequence[int]]) -> list[Generation]:
        """Continue each prompt (token ids); one `Generation` per prompt, in order."""
        import torch

        if not prompts:
            return []
        start = time.monotonic()
        device = self.model.device
        width = max(len(p) for p in prompts)
        batch = len(prompts)
        input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long, device=device)
        mask = torch.zeros((batch, width), dtype=torch.long, device=device)
        for i, p in enumerate(prompts):
            if p:
                input_ids[i, width - len(p) :] = torch.tensor(list(p), dtype=torch.long, device=device)
                mask[i, width - len(p) :] = 1
        positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
        stop = torch.tensor(self.stop_ids, device=device)
        out_ids: list[list[int]] = [[] for _ in prompts]
        out_lp: list[list[float]] = [[] for _ in prompts]
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        past = None
        step_ids, step_pos = input_ids, positions
        with torch.no_grad():
            for _ in range(self.max_new_tokens):
                out = self.model(
                    input_ids=step_ids,
                    attention_mask=mask,
                    position_ids=step_pos,
                    past_key_values=past,
                    use_cache=True,
                    logits_to_keep=1,  # the LM head only where the next token is sampled
                )
                past = out.past_key_values
                ids, lps = self._sample(out.logits[:, -1, :])
                ids = torch.where(done, torch.full_like(ids, self.pad_id), ids)
                for i in torch.nonzero(~done).flatten().tolist():
                    out_ids[i].append(int(ids[i]))
                    out_lp[i].append(float(lps[i]))
                done = done | torch.isin(ids, stop)
                if bool(done.all()):
                    break
                step_ids = ids[:, None]
                step_pos = step_pos[:, -1:] + 1
                mask = torch.cat([mask, (~done | torch.isin(ids, stop)).long()[:, None]], dim=-1)
        results = []
        for ids_i, lp_i in zip(out_ids, out_lp, strict=True):
            finished = bool(ids_i) and ids_i[-1] in self.stop_ids
            text = self.tokenizer.decode(ids_i, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            results.append(
                Generation(tuple(ids_i), tuple(lp_i), text, "stop" if finished else "length", self.policy_version)
            )
        self.stats["generated_tokens"] += sum(len(i) for i in out_ids)
        self.stats["seconds"] += time.monotonic() - start
        return results
