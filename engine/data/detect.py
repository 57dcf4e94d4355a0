"""Which record shape a file holds, how sure we are, and why.

Each known shape scores the share of sampled records that look like it; the best wins (ties go to
the more specific shape, in the order of `formats.RECORD_FORMATS`). Below half, the shape is unknown and
the person is asked to choose one and map the columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.data.cards import is_card
from engine.data.formats import RECORD_FORMATS
from engine.data.dialogues import PAIR_KEYS
from engine.data.images import holds_image
from engine.data.preference import CHOSEN, COMPLETIONS, LABELS, PROMPTS, REJECTED
from engine.data.transcripts import TEMPLATES, template_of, transcript
from engine.data.turns import as_list
from engine.i18n import msg

SAMPLE = 200
MIN_CONFIDENCE = 0.5
PAIRS = (
    ("prompt", "response"), ("prompt", "completion"), ("question", "answer"), ("question", "response"),
    ("query", "answer"), ("query", "response"), ("input", "output"), ("input", "response"),
    ("context", "response"), ("instruction", "response"), ("instruction", "output"), ("user", "assistant"),
    ("human", "assistant"), ("human", "gpt"), ("message", "reply"), ("source", "target"),
    # Chinese headers, simplified and traditional. Not 指令/输入/输出: that is Alpaca's three columns, which a
    # pair would cut to two.
    ("问题", "回答"), ("问题", "答案"), ("問題", "回答"), ("問題", "答案"), ("问", "答"), ("問", "答"),
    ("提示", "回复"), ("用户", "助手"),
)
SYSTEM_COLUMNS = ("system", "system_prompt", "persona")
PERSONA_COLUMNS = ("bot_description", "persona", "bot_persona", "char_persona", "description", "system")


@dataclass
class Detection:
    format: str | None
    confidence: float
    evidence: list[str]
    mapping: dict[str, str]
    columns: list[str]
    candidates: list[tuple[str, float]] = field(default_factory=list)
    mappings: dict[str, dict[str, str]] = field(default_factory=dict)  # the mapping each candidate shape found
    images: int = 0  # sampled records that hold an image


def columns_of(records: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for record in records:
        seen.update(dict.fromkeys(record))
    return list(seen)


def named(columns: list[str], limit: int = 20):
    """The first columns by name, for a message: a wide table's list stays readable."""
    shown = ", ".join(columns[:limit]) or msg("none")
    return msg("{columns} and {count} more", columns=shown, count=f"{len(columns) - limit:,}") \
        if len(columns) > limit else shown


def find(columns: list[str], names) -> str | None:
    lower = {c.lower(): c for c in reversed(columns)}
    return next((lower[n] for n in names if n in lower), None)


def detect(records: list[dict]) -> Detection:
    sample = records[:SAMPLE]
    columns = columns_of(sample)
    if not sample:
        return Detection(None, 0.0, [msg("No records were read.")], {}, columns)
    results = []
    for format_id in RECORD_FORMATS:
        found = _SCORERS[format_id](sample, columns)
        if found:
            results.append((format_id, *found))
    results.sort(key=lambda r: -r[1])  # stable: ties keep the order of RECORD_FORMATS
    candidates = [(r[0], round(r[1], 3)) for r in results]
    mappings = {r[0]: r[2] for r in results}
    if not results or results[0][1] < MIN_CONFIDENCE:
        return Detection(None, results[0][1] if results else 0.0,
                         [msg("No known shape fits; columns seen: {columns}.", columns=named(columns))], {}, columns,
                         candidates, mappings)
    format_id, score, mapping, evidence = results[0]
    images = sum(map(holds_image, sample))
    if images:
        evidence = [*evidence, _evidence(images / len(sample), len(sample), msg("hold images; this app trains text models"))]
    return Detection(format_id, round(score, 3), evidence, mapping, columns, candidates, mappings, images)


def _share(sample: list[dict], test) -> float:
    return sum(1 for r in sample if test(r)) / len(sample)


def _evidence(share: float, n: int, what: str) -> str:
    return msg("{k} of {n} sampled records {what}.", k=round(share * n), n=n, what=what)


def _turn_lists(sample, columns, keys: tuple[str, ...]):
    def is_turns(value) -> bool:
        turns = as_list(value)
        return bool(turns) and all(isinstance(t, dict) and all(k in t for k in keys) for t in turns)

    best = None
    for column in columns:
        share = _share(sample, lambda r: is_turns(r.get(column)))
        if share and (best is None or share > best[0]):
            best = (share, column)
    return best


def _conversations(keys: tuple[str, ...], field_name: str, label: str):
    def score(sample, columns):
        best = _turn_lists(sample, columns, keys)
        if not best:
            return None
        share, column = best
        mapping = {field_name: column}
        for name, names in (("system", SYSTEM_COLUMNS), ("tools", ("tools", "functions"))):
            if found := find(columns, names):
                mapping[name] = found
        return share, mapping, [_evidence(share, len(sample), msg("hold '{column}' as a list of {label} turns", column=column, label=label))]

    return score


def _text_with(markers: tuple[str, ...], label: str, system_names: tuple[str, ...]):
    def score(sample, columns):
        best = None
        prompts = _prompt_columns(columns)  # those are read as pairs
        for column in (c for c in columns if c not in prompts):
            share = _share(sample, lambda r: isinstance(r.get(column), str) and any(m in r[column] for m in markers))
            if share and (best is None or share > best[0]):
                best = (share, column)
        if not best:
            return None
        share, column = best
        mapping = {"text": column}
        if system := find([c for c in columns if c != column], system_names):
            mapping["system"] = system
        return share, mapping, [_evidence(share, len(sample), msg("hold {label} in '{column}'", label=label, column=column))]

    return score


def _prompt_columns(columns: list[str]) -> set[str]:
    """Columns that are the prompt of a prompt/reply pair (a template in them is split, not the whole row)."""
    found = ((find(columns, (p,)), find(columns, (r,))) for p, r in PAIRS)
    return {prompt for prompt, reply in found if prompt and reply}


def _alpaca(sample, columns):
    instruction, output = find(columns, ("instruction",)), find(columns, ("output", "response"))
    if not (instruction and output):
        return None
    share = _share(sample, lambda r: instruction in r and output in r)
    mapping = {"instruction": instruction, "output": output}
    for name, names in (("input", ("input", "context")), ("system", SYSTEM_COLUMNS), ("history", ("history",))):
        if found := find(columns, names):
            mapping[name] = found
    named = ", ".join(f"'{c}'" for c in mapping.values())
    return share, mapping, [_evidence(share, len(sample), msg("have the Alpaca columns {named}", named=named))]


def _pairs(sample, columns):
    for prompt_name, response_name in PAIRS:
        prompt, response = find(columns, (prompt_name,)), find(columns, (response_name,))
        if prompt and response:
            share = _share(sample, lambda r: prompt in r and response in r)
            mapping = {"prompt": prompt, "response": response}
            if system := find(columns, SYSTEM_COLUMNS):
                mapping["system"] = system
            evidence = [_evidence(share, len(sample), msg("have a prompt '{prompt}' and a reply '{response}'", prompt=prompt, response=response))]
            found = [t for r in sample if isinstance(r.get(prompt), str) and (t := template_of(r[prompt]))]
            if found:
                name = TEMPLATES[max(set(found), key=found.count)][1]
                evidence.append(_evidence(len(found) / len(sample), len(sample), msg("have prompts that already hold a chat template ({name}): split into their "
                                                                                     "turns, so the template is not trained as text", name=name)))
            return share, mapping, evidence
    return None


def _sillytavern(sample, columns):
    header = int(any(k in sample[0] for k in ("user_name", "character_name", "chat_metadata")))
    lines = sum(1 for r in sample if "mes" in r and ("is_user" in r or "name" in r))
    if not lines:
        return None
    share = (lines + header) / len(sample)
    evidence = [_evidence(lines / len(sample), len(sample), msg("are chat messages with 'name', 'is_user', 'mes'"))]
    if header:
        evidence.append(msg("The first line is a SillyTavern chat header."))
    return min(share, 1.0), {}, evidence


def _card(sample, columns):
    share = _share(sample, is_card)
    if not share:
        return None
    specs = {str(r.get("spec") or "V1 fields") for r in sample if is_card(r)}
    return share, {}, [_evidence(share, len(sample), msg("are character cards ({specs})", specs=', '.join(sorted(specs))))]


def _text(sample, columns):
    column = find(columns, ("text", "content", "document", "body", "passage"))
    if not column:
        return None
    share = _share(sample, lambda r: isinstance(r.get(column), str))
    return share, {"text": column}, [_evidence(share, len(sample), msg("have plain text in '{column}'", column=column))]


def _preference(sample, columns):
    chosen, rejected = find(columns, CHOSEN), find(columns, REJECTED)
    if not (chosen and rejected):
        return None
    share = _share(sample, lambda r: r.get(chosen) is not None and r.get(rejected) is not None)
    mapping = {"chosen": chosen, "rejected": rejected}
    for name, names in (("prompt", PROMPTS), ("system", SYSTEM_COLUMNS)):
        if found := find(columns, names):
            mapping[name] = found
    evidence = [_evidence(share, len(sample), msg("have a chosen '{chosen}' and a rejected '{rejected}' reply: preference data", chosen=chosen, rejected=rejected))]
    messages = find(columns, ("messages",))
    if messages and (same := _share(sample, lambda r: r.get(messages) == r.get(chosen))):
        evidence.append(_evidence(same, len(sample), msg("have '{messages}' equal to '{chosen}': a binarized preference set", messages=messages, chosen=chosen)))
    if texts := _share(sample, lambda r: isinstance(r.get(chosen), str) and transcript(r[chosen]) is not None):
        evidence.append(_evidence(texts, len(sample), msg("hold Human:/Assistant: transcripts in the replies")))
    return share, mapping, evidence


def _kto(sample, columns):
    label, completion = find(columns, LABELS), find(columns, COMPLETIONS)
    if not (label and completion):
        return None
    share = _share(sample, lambda r: r.get(completion) is not None and label in r)
    mapping = {"completion": completion, "label": label}
    for name, names in (("prompt", PROMPTS), ("system", SYSTEM_COLUMNS)):
        if found := find([c for c in columns if c != completion], names):
            mapping[name] = found
    return share, mapping, [_evidence(share, len(sample), msg("have a reply '{completion}' marked desirable or not in '{label}': KTO data", completion=completion, label=label))]


def _shaped(keys_any, field_name: str, label: str, system_names: tuple[str, ...]):
    """A column holding a list of turns, each an object with one of `keys_any`'s key sets."""
    def score(sample, columns):
        best = None
        for keys in keys_any:
            found = _turn_lists(sample, columns, keys)
            if found and (best is None or found[0] > best[0]):
                best = found
        if not best:
            return None
        share, column = best
        mapping = {field_name: column}
        if system := find([c for c in columns if c != column], system_names):
            mapping["system"] = system
        return share, mapping, [_evidence(share, len(sample), msg("hold '{column}' as a list of {label}", column=column, label=label))]

    return score


def _tree(sample, columns):
    def is_tree(value) -> bool:
        return isinstance(value, dict) and "text" in value and isinstance(value.get("replies"), list)

    best = max(((_share(sample, lambda r: is_tree(r.get(c))), c) for c in columns), default=(0, None))
    if not best[0]:
        return None
    share, column = best
    ranked = sum(1 for r in sample if is_tree(r.get(column)) and any("rank" in x for x in r[column]["replies"]))
    return share, {"tree": column}, [_evidence(share, len(sample), msg("hold a message tree in '{column}' (a message with 'replies')", column=column)),
                                     _evidence(ranked / len(sample), len(sample), msg("have ranked replies"))]


def _message_rows(sample, columns):
    if not all(c in columns for c in ("message_id", "parent_id", "text", "role")):
        return None
    share = _share(sample, lambda r: "message_id" in r and "parent_id" in r and isinstance(r.get("text"), str))
    return share, {}, [_evidence(share, len(sample), msg("are single messages linked by 'message_id' and 'parent_id': message trees, one message "
                                                         "a row"))]


_SCORERS = {
    "preference": _preference,
    "kto": _kto,
    "gemini": _shaped([("role", "parts")], "contents", msg("role/parts turns (Gemini)"), ("systeminstruction", "system_instruction")),
    "turn_pairs": _shaped(list(PAIR_KEYS), "turns", msg("{human, assistant} pairs"), SYSTEM_COLUMNS),
    "is_human_turns": _shaped([("message", "is_human"), ("text", "is_human")], "conversation", msg("turns marked is_human"),
                              PERSONA_COLUMNS),
    "message_tree": _tree,
    "message_rows": _message_rows,
    "alpaca": _alpaca,
    "sharegpt": _conversations(("from", "value"), "conversations", "from/value"),
    "messages": _conversations(("role",), "messages", "role/content"),
    "chatml": _text_with(("<|im_start|>",), msg("ChatML turns"), ("system",)),
    "roleplay_markers": _text_with(("<|user|>", "<|assistant|>"), msg("<|user|>/<|assistant|> turns"),
                                   ("description", "system", "persona")),
    "pairs": _pairs,
    "sillytavern_chat": _sillytavern,
    "character_card": _card,
    "text": _text,
}
