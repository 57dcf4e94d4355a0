"""Message trees with ranked replies (OpenAssistant's `*.trees.jsonl`): a prompt whose `replies` hold
alternative answers, each with its own replies, ranked by people (rank 0 is the best).

By default a tree gives one conversation, its top-ranked path; on request, every branch, each cut
after its last assistant reply (a branch ending on a question has nothing to learn at its end).
"""

from __future__ import annotations

import math

from engine.data.turns import Malformed, content_text, role
from engine.i18n import msg


def _rank(node: dict) -> float:
    rank = node.get("rank")
    return rank if isinstance(rank, (int, float)) else math.inf  # unranked replies come after ranked ones


def _replies(node: dict) -> list[dict]:
    replies = node.get("replies") or []
    if not isinstance(replies, list) or not all(isinstance(r, dict) for r in replies):
        raise Malformed(msg("'replies' is not a list of messages"))
    return replies


def _paths(node: dict, all_branches: bool) -> list[list[dict]]:
    replies = _replies(node)
    if not replies:
        return [[node]]
    chosen = replies if all_branches else [min(replies, key=_rank)]
    return [[node, *path] for reply in chosen for path in _paths(reply, all_branches)]


def tree(record: dict, mapping: dict[str, str], all_branches: bool = False) -> list[dict]:
    root = record.get(mapping["tree"])
    if not isinstance(root, dict):
        raise Malformed(msg("'{tree}' is not a message with replies", tree=mapping['tree']))
    rows, seen = [], set()
    for path in _paths(root, all_branches):
        messages = [{"role": role(node.get("role"), depth), "content": content_text(node.get("text"))}
                    for depth, node in enumerate(path, 1)]
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages) - 1)
        messages = messages[:last + 1]
        if (key := repr(messages)) not in seen:
            seen.add(key)
            rows.append({"messages": messages})
    return rows


def message_rows(items, all_branches: bool = False):
    """OpenAssistant's flat layout (one message a row, `message_id` and `parent_id`): the trees are
    built from the whole file, then read as `tree` reads one. Yields (number, row or Malformed); a
    tree's rows carry the number of its first message's row."""
    nodes, order = {}, []
    for number, record in items:
        if record.get("deleted") is True:
            yield number, Malformed("the message is marked deleted")
            continue
        node = {"text": record.get("text"), "role": record.get("role"), "rank": record.get("rank"), "replies": [],
                "number": number, "parent": record.get("parent_id")}
        nodes[record.get("message_id")] = node
        order.append(node)
    roots = []
    for node in order:
        parent = node["parent"]
        if parent is None or parent == "":
            roots.append(node)
        elif parent in nodes:
            nodes[parent]["replies"].append(node)
        else:
            yield node["number"], Malformed(msg("its parent message '{parent}' is not in the file, or is marked deleted", parent=parent))
    for root in roots:
        try:
            for row in tree({"tree": root}, {"tree": "tree"}, all_branches):
                yield root["number"], row
        except Malformed as e:
            yield root["number"], e
