"""The model stack's lower half: token ids in, generations out, and everything that serves them.

- `backend`: the `Backend` protocol, `Generation`, `GenerationError`;
- `hf_backend` (in-process transformers), `server_backend` (OpenAI-compatible servers);
- `chat`: rendering conversations with a model's own chat template;
- `models`, `smollm2`, `tiny_qwen3`: loading models offline;
- `server` and `weight_endpoints`: the embedded OpenAI-compatible server and its weight endpoints;
- `vllm_server`, `vllm_extension`: starting vLLM and receiving weights inside it;
- `weights`: the weight-update wire protocol and its receiving side, shared with the trainers;
- `http`: the one JSON-over-HTTP client every caller of a server uses.

Nothing here imports `swerepair.trainers`: inference does not depend on training.
"""
