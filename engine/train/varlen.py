"""One attention call per layer for a padding-free batch on a torch without grouped-query varlen.

unsloth 2026.10.9 attends to all the conversations of a padding-free row in one call a layer through
flash-attn, xformers, or torch's `varlen_attn` once it takes `enable_gqa` (torch 2.12 and later).
Torch 2.11, on the lent GPU machine, has the same flash kernel (`aten._flash_attention_forward` with
cumulative sequence lengths, grouped-query heads included) but not that argument, so unsloth falls
back to one SDPA call per run of equal-length conversations. `install` hands unsloth a function of
`varlen_attn`'s signature built on that kernel: the one switch unsloth's dispatch reads
(`attention_dispatch._TORCH_VARLEN_ATTN`), looked up at every call. bench/RESULTS.md has the
measurements that chose this kernel over flex_attention with a document mask.
"""

from __future__ import annotations

import torch


class _FlashVarlen(torch.autograd.Function):
    """Forward and backward through torch's own flash kernels; no dropout (LoRA training uses none)."""

    @staticmethod
    def forward(ctx, query, key, value, cu_seqlens, max_seqlen, scale, window_left, window_right):
        causal = (window_left, window_right) == (-1, 0)
        out, lse, seed, offset, _ = torch.ops.aten._flash_attention_forward(
            query, key, value, cu_seqlens, cu_seqlens, max_seqlen, max_seqlen, 0.0, causal, False,
            scale=scale, window_size_left=window_left, window_size_right=window_right)
        ctx.save_for_backward(query, key, value, cu_seqlens, out, lse, seed, offset)
        ctx.args = (max_seqlen, causal, scale, window_left, window_right)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        query, key, value, cu_seqlens, out, lse, seed, offset = ctx.saved_tensors
        max_seqlen, causal, scale, left, right = ctx.args
        dq, dk, dv = torch.ops.aten._flash_attention_backward(
            grad_out.contiguous(), query, key, value, out, lse, cu_seqlens, cu_seqlens, max_seqlen, max_seqlen,
            0.0, causal, seed, offset, scale=scale, window_size_left=left, window_size_right=right)
        return dq, dk, dv, None, None, None, None, None


def varlen_attn(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, scale=None, window_size=(-1, -1),
                enable_gqa=False):
    """torch 2.12's `varlen_attn` for one packed row: query (T, H, D), key and value (T, H_kv, D) with
    H a multiple of H_kv, the same boundaries for queries and keys (self-attention, as in training)."""
    if (cu_seq_k is not cu_seq_q and not torch.equal(cu_seq_q, cu_seq_k)) or max_q != max_k:
        raise ValueError("this varlen attention serves self-attention only: queries and keys share boundaries")
    left, right = window_size
    return _FlashVarlen.apply(query, key, value, cu_seq_q, max_q, scale, left, right)


def available() -> bool:
    """Whether this torch has the flash kernel on a CUDA GPU of compute capability 8 or newer."""
    return (torch.cuda.is_available() and torch.version.hip is None
            and torch.cuda.get_device_capability()[0] >= 8
            and hasattr(torch.ops.aten, "_flash_attention_forward")
            and torch.backends.cuda.is_flash_attention_available())


def install() -> str:
    """Give unsloth one attention call per layer where its own check found none; says which is in use."""
    from unsloth.utils import attention_dispatch as dispatch

    if dispatch.HAS_FLASH_ATTENTION:
        return "flash-attn"
    if dispatch.HAS_XFORMERS:
        return "xformers"
    if dispatch._TORCH_VARLEN_ATTN is not None and dispatch._TORCH_VARLEN_ATTN is not varlen_attn:
        return "torch varlen_attn"
    if not available():
        return "SDPA per conversation"
    dispatch._TORCH_VARLEN_ATTN = varlen_attn
    return "torch flash varlen kernel"
