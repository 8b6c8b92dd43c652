"""Trainers: group advantages and the fused GRPO loss (`advantages`, `loss`), over the
token-exact episodes that rollouts produce. Importing this package needs nothing heavy; the
loss module needs torch."""
