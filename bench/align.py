"""Online RL against the not-toxic reward on the tiny setup: what the KL penalty (beta) buys.

A tiny Llama, pre-trained briefly on polite and hostile replies (half each), is tuned with trl's GRPO and
RLOO (LoRA, the same seed, steps and sampling) against the local toxicity classifier's not-toxic
probability, with the default beta, with beta = 0 (no reference, no penalty) and with a larger beta.
Reported per run: the reward (not-toxic probability) and toxicity (1 - that) of samples on held-out
prompts before and after, the measured KL(policy || reference) of the tuned policy in nats per
completion, the mean completion length, and the training reward of the first and last five steps.
Several seeds, because one tiny run is noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench._common import machine, write

DATA = Path(__file__).parents[1] / "tests" / "data" / "align" / "toxicity.jsonl"


def one_run(setup: dict, out: Path, algorithm: str, beta: float, seed: int, steps: int) -> dict:
    from genai_runtime.align.rl import RewardSpec, RLConfig, run_rl

    config = RLConfig(
        policy=setup["policy"],
        prompts=setup["prompts"],
        eval_prompts=setup["held_out"],
        output_dir=out,
        rewards=[RewardSpec("classifier", str(setup["classifier"]))],
        algorithm=algorithm,
        beta=beta,
        learning_rate=1e-2,
        max_steps=steps,
        num_generations=4,
        prompts_per_step=4,
        eval_samples=8,
        seed=seed,
    )
    started = time.perf_counter()
    metrics = run_rl(config, progress=False).metrics()
    log = [json.loads(line) for line in (out / "rl_log.jsonl").read_text().splitlines()]
    return {
        "seed": seed,
        **{
            k: metrics[k]
            for k in (
                "reward_before",
                "reward_after",
                "reward_gain",
                "toxicity_before",
                "toxicity_after",
                "toxicity_improvement",
                "kl_final",
                "kl_final_trainer",
                "completion_length_before",
                "completion_length_after",
            )
        },
        "train_reward_first5": round(statistics.fmean(e["reward"] for e in log[:5]), 4),
        "train_reward_last5": round(statistics.fmean(e["reward"] for e in log[-5:]), 4),
        "seconds": round(time.perf_counter() - started, 1),
    }


def summarize(runs: list[dict]) -> dict:
    keys = ("reward_before", "reward_after", "toxicity_before", "toxicity_after", "kl_final", "completion_length_after")
    found = {f"mean_{k}": round(statistics.fmean(r[k] for r in runs), 4) for k in keys}
    found["runs_reward_up"] = sum(r["reward_after"] > r["reward_before"] for r in runs)
    found["runs_toxicity_down"] = sum(r["toxicity_after"] < r["toxicity_before"] for r in runs)
    found["runs"] = len(runs)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--betas", default="0.05,0,0.2", help="the first is the default beta")
    parser.add_argument("--algorithms", default="grpo,rloo")
    args = parser.parse_args()
    from genai_runtime.align.toxicity import (
        HELD_OUT_PROMPTS,
        PROMPTS,
        read_labelled,
        train_classifier,
        write_prompts,
        write_tiny_policy,
    )

    betas = [float(b) for b in args.betas.split(",")]
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = read_labelled(DATA)
        classifier = train_classifier(rows, root / "classifier", seed=0)
        setup = {
            "classifier": Path(classifier.model_dir),
            "policy": write_tiny_policy(root / "policy", rows, seed=0),
            "prompts": write_prompts(root / "prompts.jsonl", PROMPTS),
            "held_out": write_prompts(root / "held_out.jsonl", HELD_OUT_PROMPTS),
        }
        for algorithm in args.algorithms.split(","):
            for beta in betas:
                runs = [
                    one_run(setup, root / f"{algorithm}-{beta}-{seed}", algorithm, beta, seed, args.steps)
                    for seed in range(args.seeds)
                ]
                results[f"{algorithm}_beta_{beta:g}"] = {"algorithm": algorithm, "beta": beta, **summarize(runs)}
                results[f"{algorithm}_beta_{beta:g}"]["per_seed"] = runs
                print(json.dumps(results[f"{algorithm}_beta_{beta:g}"]), flush=True)
    result = {
        "benchmark": "genai align rl against the not-toxic classifier reward: default beta vs beta = 0 (and larger)",
        "machine": machine(),
        "setup": {
            "policy": "2-layer 64-wide Llama, 150 full-weight steps on prompt -> polite|hostile reply (half each)",
            "classifier": f"tiny RoBERTa, held-out accuracy {classifier.held_out_accuracy} on "
            f"{classifier.held_out_examples} texts",
            "rl": f"LoRA r=8 on q/k/v/o, lr 1e-2, {args.steps} steps, 4 prompts x 4 generations per step, "
            "temperature 1, max 24 new tokens (min 4)",
            "measured_on": f"{len(HELD_OUT_PROMPTS)} held-out prompts x 8 samples, same seed before and after",
            "kl_final": "Monte Carlo KL(policy || reference) on the tuned policy's held-out samples, nats per "
            "completion (sum over tokens); kl_final_trainer is trl's last logged per-token KL (beta > 0 only)",
        },
        "default_beta": betas[0],
        "seeds": args.seeds,
        "results": results,
    }
    write("align", result)


if __name__ == "__main__":
    main()
