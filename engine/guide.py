"""The "Start here" path: a first fine-tune for someone who has never done one.

Each step is a function of the one before: a goal picks the example data (and, for a character, its card,
which becomes the persona's system prompt); `prepare` saves the data set; `examples` renders two rows as
training sees them; `setup` builds a safe config for this machine and its plan (`plan_words` says its
verdict and time in plain words); `start` starts the run; `side_by_side` reads the held-out prompts'
answers before and after training; `export_for_ollama` writes the GGUF with its Modelfile. The UI
(ui/start_tab.py) lays these out and adds nothing to them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.data import Card, Options, read_card
from engine.data.store import import_file, list_datasets, read_meta
from engine.i18n import Message, msg
from engine.train import plan as plans
from engine.train import presets
from engine.train.config import RunConfig, with_changes
from engine.workspace import Workspace

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TASTE_STEPS = 10  # a first taste: enough steps to see the voice begin to change
PROMPTS = 4  # held-out prompts answered before and after training (each costs time at both ends)
PROBE_TOKENS = 48
PREFIX = "start-"  # the names of the data sets this path saves
EXPORT_FORMAT = "gguf-q8_0"  # half the size of f16, answers near-identical, needs no extra tool


@dataclass(frozen=True)
class Goal:
    id: str
    title: Message
    blurb: Message
    example: Path  # the example data set
    example_title: Message
    card: Path | None = None  # a character card whose system prompt joins every conversation
    held_out: Path | None = None  # prompts never trained on, one a line


GOALS = {g.id: g for g in (
    Goal("character", msg("A character who talks a certain way"),
         msg("Teach the model to answer in a character's voice, like a pirate captain."),
         EXAMPLES / "data" / "pirate.jsonl", msg("Captain Bess the pirate: 108 conversations and her character card"),
         EXAMPLES / "cards" / "captain_bess.json", EXAMPLES / "data" / "pirate_heldout.txt"),
    Goal("qa", msg("A question-and-answer helper"),
         msg("Teach the model to answer questions or follow instructions the way your examples do."),
         EXAMPLES / "data" / "alpaca_sample.json", msg("14 instructions with their answers")),
    Goal("style", msg("A writing style"),
         msg("Teach the model to write in a style of your own, like riddles that end with a prophecy."),
         EXAMPLES / "data" / "sharegpt_sample.jsonl", msg("Madame Zora's riddles: 6 conversations")),
)}


def goal(goal_id: str) -> Goal:
    if goal_id not in GOALS:
        raise ValueError(msg("Pick one of the goals first."))
    return GOALS[goal_id]


@dataclass
class Prepared:
    """The data set saved for the guided run, with what the summary says about it."""

    name: str
    goal: Goal
    source: str  # the file's name
    rows: int
    dropped: int
    system_prompt: str
    card: Card | None
    prompts: list[str]  # held-out prompts for the side-by-side view


def prepare(workspace: Workspace, goal_id: str, upload: str | None = None, card: str | None = None) -> Prepared:
    """Save the goal's example (or the person's `upload`) as a new data set; a character card (theirs, or the
    example's when they use the example) becomes the system prompt of every conversation that has none."""
    chosen = goal(goal_id)
    source = Path(upload) if upload else chosen.example
    card_path = Path(card) if card else (chosen.card if not upload else None)
    persona = read_card(card_path) if card_path else None
    system = persona.system_prompt() if persona else ""
    name = _free_name(workspace, PREFIX + chosen.id)
    _, found = import_file(workspace, name, source, Options(system_prompt=system))
    prompts = _held_out_prompts(chosen) if not upload else []
    return Prepared(name, chosen, source.name, found.report.rows_kept, found.report.rows_in - found.report.rows_kept,
                    system, persona, prompts)


def _free_name(workspace: Workspace, base: str) -> str:
    taken = {d.name for d in list_datasets(workspace)}
    n = 1
    while (name := base if n == 1 else f"{base}-{n}") in taken:
        n += 1
    return name


def _held_out_prompts(chosen: Goal) -> list[str]:
    if not chosen.held_out:
        return []
    lines = [line.strip() for line in chosen.held_out.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line][:PROMPTS]


def summary(p: Prepared) -> Message:
    """What will be learned, in plain words."""
    who = msg(" Every conversation starts with {name}'s character card as its instructions, so the model "
              "learns to be {name}.", name=p.card.name) if p.card else ""
    left = msg(" {n} rows could not be used and are left out.", n=p.dropped) if p.dropped else ""
    return msg("The model will study {rows} example conversations from {file} and learn to write replies like "
               "the ones in them: their tone, their length, their habits. The questions are only read, not "
               "learned.{who}{left}", rows=p.rows, file=p.source, who=who, left=left)


def examples(workspace: Workspace, p: Prepared, model: str = "default", count: int = 2, max_seq_length: int = 512):
    """The first `count` rows rendered exactly as training sees them (engine.data.render.Preview)."""
    from engine.chat.models import resolve_model
    from engine.data.render import preview, shared_tokenizer
    from engine.data.store import read_dataset

    tokenizer = shared_tokenizer(str(resolve_model(model, workspace)))
    return [preview(row, tokenizer, max_seq_length) for row in read_dataset(workspace, p.name)[:count]]


def preset_for(device: str) -> str:
    """The safe preset for this machine: the Quick test on a CPU (a few minutes), the roleplay preset where a
    GPU makes a full run quick."""
    return "roleplay" if device == "cuda" else "quick-test"


def setup(workspace: Workspace, p: Prepared, hw, taste: bool = True, model: str = "default") -> tuple[RunConfig, plans.Plan]:
    """The config for this machine and its plan; where it would not fit, the plan's first fix is applied."""
    extra = {"probes": {"prompts": p.prompts or _first_prompts(workspace, p), "max_new_tokens": PROBE_TOKENS}}
    if taste:
        extra["train"] = {"max_steps": TASTE_STEPS, "save_steps": TASTE_STEPS}
    config = presets.build(preset_for(hw.device), p.name, model, **extra)
    made = plans.make(config, workspace, hw)
    if made.verdict == plans.WONT_FIT and made.fixes:
        config = with_changes(config, made.fixes[0].changes)
        made = plans.make(config, workspace, hw)
    return config, made


def _first_prompts(workspace: Workspace, p: Prepared) -> list[str]:
    """For a file of the person's own: the first user messages of its last rows, as prompts to watch."""
    from engine.data.store import read_dataset

    found = []
    for row in reversed(read_dataset(workspace, p.name)):
        first = next((m["content"] for m in row.get("messages", []) if m["role"] == "user"), None)
        if first and first not in found:
            found.append(first)
        if len(found) == PROMPTS:
            break
    return found


def plan_words(made: plans.Plan) -> Message:
    """The plan's verdict and time, for someone who has never read a plan."""
    need, free = made.memory.total / plans.GiB, made.free_bytes / plans.GiB
    fits = {
        plans.FITS: msg("It fits easily in this machine's memory (about {need:.1f} of {free:.1f} GiB free).",
                        need=need, free=free),
        plans.TIGHT: msg("It just fits in this machine's memory (about {need:.1f} of {free:.1f} GiB free): close "
                         "other programs before you start.", need=need, free=free),
        plans.WONT_FIT: msg("It needs about {need:.1f} GiB but only {free:.1f} GiB is free: it would run out of "
                            "memory. Close other programs, or use the Train tab to pick a smaller model.",
                            need=need, free=free),
    }[made.verdict]
    time = msg("Training takes about {time}: {steps} steps, then the test prompts are answered again.",
               time=plans.duration(made.seconds or 0), steps=made.total_steps)
    guess = "" if made.speed_measured else msg(" (An estimate: this machine has not trained here yet.)")
    cannot = msg(" It cannot start yet: {why}", why=" ".join(made.problems)) if made.problems else ""
    return msg("{fits} {time}{guess}{cannot}", fits=fits, time=time, guess=guess, cannot=cannot)


def start(workspace: Workspace, manager, config: RunConfig):
    """Start the guided run (it waits in line if another run is training); returns (run, note)."""
    from engine.train import launch

    return launch.start(workspace, manager, config)


def latest_run(workspace: Workspace):
    """The newest run started from this path (its data set is one `prepare` saved), to show again after a
    reload; None if there is none."""
    from engine.train.runs import list_runs

    for run in list_runs(workspace):
        try:
            if run.config.dataset.startswith(PREFIX):
                return run
        except ValueError:  # an unreadable run.yaml is the Train tab's to show
            continue
    return None


def side_by_side(run) -> list[tuple[str, str, str]]:
    """(prompt, the model's answer before training, after) for the held-out prompts; [] until both exist."""
    from engine.compare import prompts

    step, rows = prompts.before_after(run)
    return rows if step else []


def export_for_ollama(workspace: Workspace, run, progress=None):
    """The run as one GGUF file with an Ollama Modelfile that carries the persona's system prompt."""
    from engine.export.exporter import export

    system = read_meta(workspace, run.config.dataset).system_prompt
    return export(workspace, run.name, EXPORT_FORMAT, system=system, progress=progress)
