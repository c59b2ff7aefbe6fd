"""Alignment with human preferences (the book's chapter 7): RLHF and its direct alternatives.

- ``preferences``: human rankings (Amazon A2I human-loop output, Ground Truth custom-task output
  manifests, plain JSONL) to validated ``{"prompt", "chosen", "rejected"}`` pairs.
- ``reward``: a reward model trained on those pairs (trl ``RewardTrainer``), its pairwise accuracy, and
  ``RewardModelScorer``, the reward function of the RL step.
- ``dpo``: direct preference optimisation (trl ``DPOTrainer``; ORPO from ``trl.experimental``).
- ``config``: the typed configurations of the reward and DPO runs.
- ``toxicity``: a toxicity classifier as a reward signal.
- ``rl``: reinforcement learning from the reward (PPO-style, with a KL penalty to the reference).
- ``evaluate``: toxicity and quality before vs after alignment.
- ``labeling``: human labeling jobs that produce the rankings.
"""
