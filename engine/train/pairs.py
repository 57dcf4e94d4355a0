"""Preference data for DPO, ORPO and KTO, from where the person has already judged replies: a saved
data set's preference records, the blind votes of runs' comparisons (the reply voted for over the
other reply to the same prompt), and the chat choices (a regenerated reply marked better or worse than
the one before it, engine.chat.choices). Records are in trl's conversational preference format:
`{"prompt", "chosen", "rejected"}` pairs, or KTO's `{"prompt", "completion", "label"}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.i18n import msg
from engine.train.config import ConfigError, RunConfig
from engine.workspace import BadName, Workspace


@dataclass
class Source:
    name: str  # what the Train tab calls it: "data set NAME" or "votes of RUN"
    kind: str  # "pairs" | "kto"
    records: list[dict] = field(repr=False)


def from_dataset(workspace: Workspace, ref: str) -> Source | None:
    """A data set's preference records (a saved set by name, or a file in a preference shape); None when it
    holds none."""
    from engine.data.pipeline import inspect
    from engine.data.preference import KIND
    from engine.data.store import read_meta

    try:
        saved = (workspace.dataset_path(ref) / "data.jsonl").is_file()
    except BadName:
        saved = False
    if saved:
        meta = read_meta(workspace, ref)
        if meta.preference is None:
            return None
        from engine.data.store import read_preference

        kind, records = read_preference(workspace, ref)
        return Source(msg("data set {name}", name=ref), kind, records)
    path = Path(ref).expanduser()
    if not path.is_file():
        return None
    records: list[dict] = []
    inspection = inspect(path, keep_rows=False, preference_sink=records.append)
    if inspection.format not in KIND or not records:
        return None
    return Source(msg("data set {name}", name=path.name), KIND[inspection.format], records)


def from_votes(workspace: Workspace, run: str) -> Source:
    """A pair for each blind comparison of `run` whose latest vote chose a side (ties are left out)."""
    from engine.compare import store
    from engine.train.runs import load_run

    saved = store.records(load_run(workspace, run).path)
    comparisons = {r["id"]: r for r in saved if r["type"] == "comparison"}
    latest = {r["comparison"]: r for r in saved if r["type"] == "vote"}
    records = []
    for comparison_id, vote in latest.items():
        comparison = comparisons.get(comparison_id)
        if comparison is None or vote["winner"] is None:
            continue
        loser = next((s for s in comparison["sides"] if s != vote["winner"]), None)
        chosen, rejected = comparison["replies"].get(vote["winner"]), comparison["replies"].get(loser)
        if not chosen or not rejected or chosen == rejected:
            continue
        prompt = [{"role": m["role"], "content": m["content"]} for m in comparison["messages"]]
        records.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
                        "rejected": [{"role": "assistant", "content": rejected}]})
    return Source(msg("votes of {run}", run=run), "pairs", records)


def from_chat(workspace: Workspace) -> Source:
    """A pair for each regenerated chat reply marked better or worse than the earlier one."""
    from engine.chat import choices

    keys = ("prompt", "chosen", "rejected")
    return Source(msg("chat choices"), "pairs", [{k: r[k] for k in keys} for r in choices.records(workspace)])


def sources(workspace: Workspace, config: RunConfig) -> list[Source]:
    """Every source the config names, in order: its data set (when it holds preference data), each run's
    votes, then the chat choices."""
    found = []
    if (data := from_dataset(workspace, config.dataset)) is not None:
        found.append(data)
    found.extend(from_votes(workspace, run) for run in config.preference.votes_from)
    if config.preference.chat_choices:
        found.append(from_chat(workspace))
    return found


def as_kto(record: dict) -> list[dict]:
    """A pair as KTO's two single replies: the chosen one desirable, the rejected one not."""
    if "label" in record:
        return [record]
    return [{"prompt": record["prompt"], "completion": record["chosen"], "label": True},
            {"prompt": record["prompt"], "completion": record["rejected"], "label": False}]


def training_records(found: list[Source], method: str) -> list[dict]:
    """The records a preference method trains on; a ConfigError saying what is missing."""
    if not any(s.records for s in found):
        raise ConfigError(msg(
            "There are no preference pairs to train {method} on: pick a data set with chosen and rejected replies "
            "(or KTO labels), add runs whose blind Compare votes chose an answer, or take the chat choices (a "
            "regenerated reply marked better or worse on the Chat tab).", method=method.upper()))
    if method == "kto":
        return [kto for s in found for r in s.records for kto in as_kto(r)]
    unpaired = [s.name for s in found if s.kind == "kto" and s.records]
    if unpaired:
        raise ConfigError(msg(
            "{sources} holds single replies marked good or bad, not pairs: train it with KTO, or pick a data set of "
            "chosen and rejected replies for {method}.", sources=", ".join(unpaired), method=method.upper()))
    return [r for s in found for r in s.records]


def preview(record: dict, tokenizer, max_length: int | None = None) -> dict:
    """Each reply of a record rendered as the preference trainers render it (the prompt with the generation
    prompt, then the prompt and the reply; the reply's tokens are those after where the two part), as
    `engine.data.render.Preview`s by "chosen" and "rejected" (a KTO record: its "completion")."""
    from engine.data.render import Preview

    def ids(messages, **kwargs) -> list[int]:
        return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"])

    prompt = ids(record["prompt"], add_generation_prompt=True)
    out = {}
    for side in ("chosen", "rejected", "completion"):
        if side not in record:
            continue
        full = ids(record["prompt"] + record[side])
        start = next((i for i, (a, b) in enumerate(zip(prompt, full)) if a != b), min(len(prompt), len(full)))
        segments = [(tokenizer.decode(full[:start]), False), (tokenizer.decode(full[start:]), True)]
        reply = full[start:]
        out[side] = Preview([s for s in segments if s[0]], len(full), len(reply),
                            tokenizer.eos_token_id in reply, max_length)  # the reply teaches where to stop
    return out


def starting_points(workspace: Workspace) -> list[str]:
    """The runs a preference run can start from: those with a final adapter, newest first."""
    from engine.train.runs import list_runs

    return [r.name for r in list_runs(workspace) if r.adapter is not None]


def voted_runs(workspace: Workspace) -> list[tuple[str, int]]:
    """(run, pairs its blind votes give) for every run with at least one, newest first."""
    from engine.train.runs import list_runs

    found = [(r.name, len(from_votes(workspace, r.name).records)) for r in list_runs(workspace)]
    return [(name, n) for name, n in found if n]


def first_preview(workspace: Workspace, config: RunConfig) -> tuple[list[tuple[str, int]], dict | None]:
    """What the Train tab shows before a preference run: each source's count, and the first record rendered
    with the run's model and template (None when no source gives one)."""
    from engine.chat.models import resolve_model
    from engine.data.render import shared_tokenizer

    found = sources(workspace, config)
    record = next((r for s in found for r in s.records), None)
    if record is None:
        return [(s.name, len(s.records)) for s in found], None
    tokenizer = shared_tokenizer(str(resolve_model(config.model.name_or_path, workspace)), config.template)
    return [(s.name, len(s.records)) for s in found], preview(record, tokenizer, config.model.max_seq_length)


def plan_note(workspace: Workspace, config: RunConfig) -> str:
    """The plan's line for a preference run: how many records it trains on, and from where."""
    found = sources(workspace, config)
    counted = ", ".join(msg("{n} from {source}", n=len(s.records), source=s.name) for s in found) or msg("none")
    return msg("{method} trains on preference records ({counted}); the counts and time above are of the data set's "
               "conversations, and each preference step computes the prompt with both replies.",
               method=config.method.upper(), counted=counted)
