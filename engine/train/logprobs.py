"""Per-token log-probabilities for trl's DPO and KTO trainers where Triton is missing (CPU, Apple).

trl 1.15 patches the model with a "fused LM head" (`trl.trainer.utils.add_fused_lm_head`) whose
projection runs through a Triton kernel; without Triton the kernel is None and the first step fails.
`install()` puts a plain torch function in its place with the same inputs and outputs. It receives
only the positions whose next token is learned, so the full logits are built for those alone, as
the supervised trainer's plain loss does (engine/train/trainer.py).
"""

from __future__ import annotations

import torch


class PlainLogProbs:
    """`apply(hidden [N,H], weight [V,H], bias, targets [N], temperature, chunk_size, softcap, scale, outputs)`
    -> (log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1), the optional ones None unless asked."""

    @staticmethod
    def apply(hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping=None,
              logit_scale=1.0, outputs=("log_probs",)):
        logits = torch.nn.functional.linear(hidden, weight, bias).float() * logit_scale
        if final_logit_softcapping is not None:
            logits = torch.tanh(logits / final_logit_softcapping) * final_logit_softcapping
        logits = logits / temperature
        log_all = logits.log_softmax(-1)
        log_probs = log_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_all.exp() * log_all).sum(-1) if "entropy" in outputs else None
        with torch.no_grad():
            log_sum_sq = torch.logsumexp(2 * log_all, -1) if "log_sum_sq_probs" in outputs else None
            mean_logits = logits.mean(-1) if "mean_logits" in outputs else None
            is_top1 = (logits.argmax(-1) == targets) if "is_top1" in outputs else None
        return log_probs, entropy, log_sum_sq, mean_logits, is_top1


def install() -> bool:
    """Use the plain function where trl found no Triton kernel; True when it was needed."""
    from trl.trainer import utils

    if utils._ChunkedLogProbFunction is not None:
        return False
    utils._ChunkedLogProbFunction = PlainLogProbs
    return True
