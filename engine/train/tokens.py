"""Conversations to token rows: the one tokenisation the plan counts and the trainer trains on.

Rows are rendered by `engine.data.render.encode` (the tokenizer's training template), cut at the maximum
length here, and handed to trl already tokenized: padding-free batching needs rows truncated in
advance (trl then wants `max_length=None`), and the plan's counts must be exactly what trains.
trl builds the labels from the `assistant_masks` column, as it does for rows it tokenizes itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from engine.data.store import encode_rows


@dataclass
class TokenizedRows:
    rows: list[dict] = field(repr=False)  # input_ids; and assistant_masks for conversations
    conversations: int  # conversations given
    truncated: int  # rows cut at the maximum length
    dropped: int  # rows left with nothing to learn after the cut (or with no assistant reply at all)
    tokens: int  # tokens computed per epoch (after the cut)
    trained_tokens: int  # tokens the loss learns per epoch
    longest: int  # longest row before the cut
    lengths: list[int] = field(repr=False, default_factory=list)  # row lengths after the cut

    @property
    def truncated_share(self) -> float:
        return self.truncated / self.conversations if self.conversations else 0.0


def tokenize(tokenizer, conversations: list[dict], max_length: int, assistant_only: bool,
             cache_dir: Path | None = None) -> TokenizedRows:
    """`cache_dir`: where rendered data sets are kept by fingerprint (engine.data.store.encode_rows)."""
    rows, lengths = [], []
    truncated = dropped = trained = longest = 0
    # The data preview's rendering, so the preview shows what trains.
    encoded = encode_rows(conversations, tokenizer, cache_dir)
    for conv, ids, masks in zip(conversations, encoded["input_ids"], encoded["assistant_masks"]):
        longest = max(longest, len(ids))
        if len(ids) > max_length:
            truncated += 1
        row = {"input_ids": ids[:max_length]}
        learned = len(row["input_ids"])
        if assistant_only and "messages" in conv:
            row["assistant_masks"] = masks[:max_length]
            learned = sum(row["assistant_masks"])
        if learned == 0:
            dropped += 1
            continue
        rows.append(row)
        lengths.append(len(row["input_ids"]))
        trained += learned
    return TokenizedRows(rows, len(conversations), truncated, dropped, sum(lengths), trained, longest, lengths)


def split(conversations: list[dict], train) -> tuple[list[dict], list[dict]]:
    """(train, held out): `train.eval_split` of the conversations, picked by `train.seed`, are held out."""
    order = list(range(len(conversations)))
    random.Random(train.seed).shuffle(order)
    held_out = set(order[: int(len(conversations) * train.eval_split)])
    return ([c for i, c in enumerate(conversations) if i not in held_out],
            [c for i, c in enumerate(conversations) if i in held_out])
