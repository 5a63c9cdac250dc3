"""Reinforcement learning for masked diffusion LMs: GRPO and IGPO."""
