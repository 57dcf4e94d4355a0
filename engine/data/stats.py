"""Statistics of a data set as training will see it: token lengths (a histogram), the share cut at
`max_seq_length`, tokens in total and per epoch, trained tokens, turns per conversation.

Large sets are measured on an even sample of at most `limit` rows and the totals scaled up (`sampled`).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.data.render import encode


@dataclass
class DataStats:
    rows: int
    measured: int
    max_seq_length: int
    lengths: list[int]
    total_tokens: int
    trained_tokens: int
    tokens_per_epoch: int  # what one epoch processes, after truncation
    truncated_share: float
    nothing_trained: int  # rows whose trained tokens all fall past max_seq_length
    no_eos: int  # rows whose last trained token is not EOS
    turns_min: int
    turns_mean: float
    turns_max: int

    @property
    def sampled(self) -> bool:
        return self.measured < self.rows

    def histogram(self, bins: int = 20) -> list[dict]:
        """[{"start", "end", "examples"}] over the measured token lengths, bins of equal width."""
        if not self.lengths:
            return []
        low, high = min(self.lengths), max(self.lengths)
        width = max(1, -(-(high - low + 1) // bins))
        counts: dict[int, int] = {}
        for length in self.lengths:
            counts[(length - low) // width] = counts.get((length - low) // width, 0) + 1
        return [{"start": low + b * width, "end": low + (b + 1) * width - 1, "examples": counts.get(b, 0)}
                for b in range((high - low) // width + 1)]

    def as_dict(self) -> dict:
        return {
            "rows": self.rows, "measured": self.measured, "sampled": self.sampled,
            "max_seq_length": self.max_seq_length, "total_tokens": self.total_tokens,
            "trained_tokens": self.trained_tokens, "tokens_per_epoch": self.tokens_per_epoch,
            "truncated_share": self.truncated_share, "nothing_trained": self.nothing_trained, "no_eos": self.no_eos,
            "turns": {"min": self.turns_min, "mean": self.turns_mean, "max": self.turns_max},
            "histogram": self.histogram(),
        }


def statistics(rows: list[dict], tokenizer, max_seq_length: int = 2048, limit: int = 5000,
               total: int | None = None) -> DataStats:
    """`total`: how many rows the set has where `rows` is a sample of it."""
    total = total or len(rows)
    step = max(1, -(-len(rows) // limit))
    measured = rows[::step]
    lengths, trained, per_epoch, truncated, nothing, no_eos = [], 0, 0, 0, 0, 0
    for row in measured:
        encoded = encode(row, tokenizer)
        ids, mask = encoded["input_ids"], encoded["assistant_masks"]
        lengths.append(len(ids))
        trained += sum(mask[:max_seq_length])
        per_epoch += min(len(ids), max_seq_length)
        truncated += len(ids) > max_seq_length
        nothing += not any(mask[:max_seq_length])
        last = max((i for i, m in enumerate(mask) if m), default=None)
        no_eos += last is None or ids[last] != tokenizer.eos_token_id
    turns = [sum(1 for m in row["messages"] if m["role"] != "system") for row in measured if "messages" in row] or [0]
    scale = total / max(len(measured), 1)
    return DataStats(
        rows=total, measured=len(measured), max_seq_length=max_seq_length, lengths=lengths,
        total_tokens=round(sum(lengths) * scale), trained_tokens=round(trained * scale),
        tokens_per_epoch=round(per_epoch * scale), truncated_share=truncated / max(len(measured), 1),
        nothing_trained=round(nothing * scale), no_eos=round(no_eos * scale),
        turns_min=min(turns), turns_mean=round(sum(turns) / len(turns), 2), turns_max=max(turns),
    )
