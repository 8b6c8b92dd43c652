"""Policies: conversations in, assistant turns out; and token-exact episodes.

- `base`: the `Policy` protocol and `AssistantTurn`;
- `model`: `ModelPolicy` (a chat renderer over a token `Backend`);
- `openai`: `OpenAIPolicy` (any OpenAI-compatible chat-completions server);
- `scripted`: `ScriptedPolicy` and turns that play a known patch;
- `episode`: `EpisodeBuilder`, which grows an `swerepair.core.Episode` from the ids generated.
"""
