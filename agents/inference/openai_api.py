"""What swerepair's servers and clients add to the OpenAI chat-completions API: vLLM's extensions.

vLLM (and the embedded server) can return the generated ids and name each logprob's token by its
id, which token-exact episodes need; a client asks with `VLLM_FIELDS` and reads the names back
with `token_id`.

>>> token_id(token_name(42)), token_id("hello")
(42, None)
"""

from __future__ import annotations

__all__ = ["TOKEN_ID_PREFIX", "VLLM_FIELDS", "token_id", "token_name"]

#: Request fields only vLLM (and servers like it) understand; a client drops them if rejected.
VLLM_FIELDS = ("return_token_ids", "return_tokens_as_token_ids")
#: How a logprob entry names its token under ``return_tokens_as_token_ids``: ``token_id:<id>``.
TOKEN_ID_PREFIX = "token_id:"


def token_name(token: int) -> str:
    """The name of token id `token` in a logprob entry (``"token_id:42"``)."""
    return f"{TOKEN_ID_PREFIX}{int(token)}"


def token_id(name: object) -> int | None:
    """The id a logprob entry's token name carries, or None if it is not a ``token_id:N`` name."""
    if not isinstance(name, str) or not name.startswith(TOKEN_ID_PREFIX):
        return None
    try:
        return int(name[len(TOKEN_ID_PREFIX) :])
    except ValueError:
        return None
