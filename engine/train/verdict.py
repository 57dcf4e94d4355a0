"""What a finished (or stopped) run came to, in sentences a newcomer understands: whether its loss ended
in the range the loss chart recommends and what to do if not, whether the probe answers changed from
the untrained model's, and signs of over-fitting (an answer that repeats a phrase over and over, one
answer to different questions, a held-out loss that rose again)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from engine.i18n import Message, joined, msg
from engine.train.advice import LOSS_RANGE
from engine.train.runs import Run

WORD = re.compile(r"[\w']+")


@dataclass
class Verdict:
    loss: float  # the smoothed final loss: the mean of the last logged steps
    averaged: int  # how many steps that mean is over
    band: str  # "low", "in range" or "high", against the range the loss chart recommends
    changed: int = 0  # probe prompts whose latest answer differs from the untrained model's
    probed: int = 0  # probe prompts answered both at step 0 and after training
    repeats: dict[str, str] = field(default_factory=dict)  # prompt -> the phrase its latest answer repeats
    same_answer: bool = False  # different prompts got one and the same latest answer
    eval_rise: tuple[int, float, float] | None = None  # (best step, its held-out loss, the last one)
    lines: list[Message] = field(default_factory=list)

    @property
    def overfitting_signs(self) -> bool:
        return bool(self.repeats or self.same_answer or self.eval_rise)

    def markdown(self) -> Message:
        return msg("#### How it went\n{lines}", lines=joined((msg("- {line}", line=line) for line in self.lines), "\n"))


def judge(run: Run) -> Verdict | None:
    """The verdict on a run that has ended with steps trained (completed or stopped); None otherwise."""
    steps = run.current("step")
    if run.live or run.state not in ("completed", "stopped") or not steps:
        return None
    window = min(len(steps), max(3, len(steps) // 10))
    losses = [e["loss"] for e in steps]
    loss = sum(losses[-window:]) / window
    low, high = LOSS_RANGE
    v = Verdict(loss, window, "low" if loss < low else "high" if loss > high else "in range")
    _probes(v, run.probes)
    _held_out(v, run.current("eval"))
    try:
        rate = run.config.train.learning_rate
    except ValueError:  # an unreadable run.yaml: the advice goes without the numbers
        rate = None
    v.lines = [_loss_line(v, losses, rate), *_probe_lines(v), *_overfitting_lines(v), _next_line(v)]
    if (margins := [e["reward_margin"] for e in steps if e.get("reward_margin") is not None]):
        v.lines[0] = _reward_line(margins[:window], margins[-window:])  # a preference loss has no such range
    return v


def _reward_line(first: list[float], last: list[float]) -> str:
    """A preference run's result: how far the chosen replies' reward moved above the rejected ones'."""
    start, end = sum(first) / len(first), sum(last) / len(last)
    if end > start:
        return msg("The reward margin (how much more the model prefers the chosen reply than the rejected one, "
                   "against where it started) rose from **{start:.2f}** to **{end:.2f}**: the model learned the "
                   "preferences. Compare it with the supervised adapter on new prompts.", start=start, end=end)
    return msg("The reward margin did not rise (**{start:.2f}** to **{end:.2f}**): the model has not learned the "
               "preferences yet. Train longer, with a slightly higher learning rate, or with more pairs.",
               start=start, end=end)


def repeated_phrase(text: str) -> str | None:
    """A phrase the text repeats as a model stuck in a loop does: the same words three times in a row
    (one word four times, a phrase of four words or more twice), or a phrase of three words or more
    three times anywhere."""
    words = text.split()
    keys = [" ".join(WORD.findall(w.lower())) for w in words]
    for n in range(1, min(12, len(words) // 2) + 1):
        grams = [tuple(keys[j:j + n]) for j in range(len(words) - n + 1)]
        for i, gram in enumerate(grams):
            if not any(gram):
                continue
            copies = 1
            while i + copies * n < len(grams) and grams[i + copies * n] == gram:
                copies += 1
            if copies >= (4 if n == 1 else 3 if n < 4 else 2):
                return _sentence_start(words, i, n)
        if n >= 3:
            counts = Counter(g for g in grams if any(g))
            gram, count = counts.most_common(1)[0] if counts else ((), 0)
            if count >= 3:
                i = grams.index(gram)
                return " ".join(words[i:i + n])
    return None


def _sentence_start(words: list[str], i: int, n: int) -> str:
    """The repeated n words starting at i, turned to end where a sentence ends ("Arr, matey!", not
    "matey! Arr,"), as far as the loop goes on."""
    for j in range(i, i + n):
        loop = all(_norm(a) == _norm(b) for a, b in zip(words[j:j + n], words[j + n:j + 2 * n])) and j + 2 * n <= len(words)
        if loop and words[j + n - 1][-1] in ".!?":
            return " ".join(words[j:j + n])
    return " ".join(words[i:i + n])


def _probes(v: Verdict, records: list[dict]) -> None:
    by_step: dict[int, dict[str, str]] = {}
    for r in records:
        by_step.setdefault(r["step"], {}).update(zip(r["prompts"], r["answers"]))
    later = [s for s in by_step if s > 0]
    if not later:
        return
    latest = by_step[max(later)]
    before = by_step.get(0, {})
    both = [p for p in latest if p in before]
    v.probed = len(both)
    v.changed = sum(_norm(latest[p]) != _norm(before[p]) for p in both)
    v.repeats = {p: phrase for p, answer in latest.items() if (phrase := repeated_phrase(answer))}
    answers = [_norm(a) for a in latest.values() if a.strip()]
    v.same_answer = len(answers) >= 2 and len(set(answers)) < len(answers)


def _held_out(v: Verdict, evals: list[dict]) -> None:
    if len(evals) < 2:
        return
    best = min(evals, key=lambda e: e["eval_loss"])
    last = evals[-1]["eval_loss"]
    if best is not evals[-1] and last > 1.05 * best["eval_loss"]:
        v.eval_rise = (best["step"], best["eval_loss"], last)


def _loss_line(v: Verdict, losses: list[float], rate: float | None) -> Message:
    low, high = LOSS_RANGE
    said = msg("The loss ended at **{loss:.2f}** (the average of the last {steps} steps); the chart recommends "
               "{low:g} to {high:g}.", loss=v.loss, steps=v.averaged, low=low, high=high)
    if v.band == "in range":
        return joined([said, msg("That is in the range: the model has learned the data set without copying it word "
                                 "for word.")])
    if v.band == "low":
        return joined([said, msg("That is low: the model may be learning the examples by heart (over-fitting) and "
                                 "answer new questions worse. Check its answers to new prompts in Compare; next time "
                                 "try fewer epochs, a lower learning rate or more dropout, or add more varied examples.")])
    earlier = losses[-2 * v.averaged:-v.averaged]
    falling = bool(earlier) and v.loss < 0.97 * sum(earlier) / len(earlier)
    said = joined([said, msg("That is still high: the model has not learned the data set closely yet.")])
    if falling:
        return joined([said, msg("It was still falling at the end, so more training should help: Resume with 1 or 2 "
                                 "**More epochs**.")])
    if rate:
        return joined([said, msg("It had levelled off, so more of the same helps little: train again with a higher "
                                 "learning rate (say {higher:g} instead of {rate:g}), or more epochs.",
                                 higher=2 * rate, rate=rate)])
    return joined([said, msg("It had levelled off, so more of the same helps little: train again with a higher "
                             "learning rate, or more epochs.")])


def _probe_lines(v: Verdict) -> list[Message]:
    if not v.probed:
        return []
    if v.changed == 0:
        return [msg("None of the {probed} probe answers changed from the untrained model's: the adapter has "
                    "hardly changed the model yet. Train longer or with a higher learning rate.", probed=v.probed)]
    return [msg("The probe answers changed from the untrained model's for **{changed} of {probed}** prompts: "
                "the training changed what the model says (the table below shows how).", changed=v.changed,
                probed=v.probed)]


def _overfitting_lines(v: Verdict) -> list[Message]:
    lines = []
    if v.repeats:
        prompt, phrase = next(iter(v.repeats.items()))
        more = msg(" (and {n} more)", n=len(v.repeats) - 1) if len(v.repeats) > 1 else ""
        lines.append(msg("**Sign of over-fitting:** the answer to \"{prompt}\"{more} repeats \"{phrase}\" over and "
                         "over. The model has learned a phrase of the data set too well and loops on it.",
                         prompt=prompt, more=more, phrase=phrase))
    if v.same_answer:
        lines.append(msg("**Sign of over-fitting:** different probe prompts got the same answer: the model answers "
                         "from memory of the data set rather than to the question."))
    if v.eval_rise:
        step, best, last = v.eval_rise
        lines.append(msg("**Sign of over-fitting:** the held-out loss was lowest at step {step} ({best:.2f}) and rose "
                         "to {last:.2f}: the model got better at the training rows and worse at new ones.",
                         step=step, best=best, last=last))
    return lines


def _next_line(v: Verdict) -> Message:
    if v.overfitting_signs and v.band != "in range":
        if v.band == "high":
            return msg("Next: Compare its answers with the base model before training more: more of the same would "
                       "lower the loss but deepen the repeating. For a better run, add more varied examples or "
                       "raise the dropout.")
        return msg("Next: Compare its answers with the base model; next time train less (fewer epochs or steps).")
    if v.overfitting_signs:
        return msg("Next: Compare its answers with the base model; if they repeat there too, use an earlier "
                   "checkpoint or train fewer epochs.")
    return msg("Next: Compare it with the base model, chat with it, or export it.")


def _norm(text: str) -> str:
    return " ".join(WORD.findall(text.lower()))
