"""A GGUF export run by llama.cpp itself: `llama-completion` (built from the pinned source by
`make gguf-runtime`) loads the file and answers each verification prompt through the chat template
embedded in the file (`--jinja`), greedily. Its reply is compared with the in-app model's word for
word, and the in-app model is teacher-forced on llama.cpp's reply: each of its tokens, up to 64 and its
end of turn, must be the in-app model's first choice or a near tie with it (see `passed`).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from engine.export.gguf import TOOLS
from engine.i18n import msg

RUNTIME = TOOLS / "bin" / "llama-completion"
END_OF_TURN = " [end of text]\n"  # what llama-completion prints when the model writes an end-of-generation token
FINISHED = "total time ="  # in the timings llama-completion prints (to stderr) as it exits normally
# The largest logit gap below the in-app model's first choice that a token of an f16 file's reply may
# have: llama.cpp's CPU kernels round activations to 16 bits, which flips near ties (docs/export.md has
# the measurement); a wrong template, tokenizer or weight is ranked far lower.
NEAR_TIE = 0.1


@dataclass
class RuntimeAnswer:
    prompt: str
    reference: str  # the in-app model's reply, as text
    reply: str  # llama.cpp's
    same_tokens: int  # how many of the in-app model's tokens llama.cpp wrote the same, from the start
    reference_tokens: int
    reference_stopped: bool  # the in-app model ended its turn within the tokens asked for
    stopped: bool  # llama.cpp ended its turn (an end-of-generation token) within them
    # per token of llama.cpp's reply (`printed`, retokenized, with its end of turn): the in-app model's top logit
    # minus this token's, teacher-forced on llama.cpp's reply; 0 where it is the first choice
    gaps: list[float] = field(default_factory=list)
    printed: str = ""  # llama.cpp's reply with its special tokens (--special), the end token included
    reference_ids: list[int] = field(default_factory=list)  # the in-app model's reply, its end token included

    @property
    def worst(self) -> tuple[int, float]:
        """The token the in-app model ranks lowest, and its gap."""
        return max(enumerate(self.gaps), key=lambda g: g[1], default=(0, 0.0))


@dataclass
class RuntimeCheck:
    built: bool
    answers: list[RuntimeAnswer] = field(default_factory=list)
    problem: str = ""  # llama.cpp could not run the file

    @property
    def identical(self) -> bool:
        return bool(self.answers) and all(a.reply == a.reference and a.stopped == a.reference_stopped
                                          for a in self.answers)

    @property
    def agreement(self) -> float:
        total = sum(a.reference_tokens for a in self.answers)
        return sum(a.same_tokens for a in self.answers) / total if total else 0.0

    @property
    def runs_on(self) -> list[RuntimeAnswer]:
        """Replies that reached the in-app model's end of turn with its words and did not stop there."""
        return [a for a in self.answers if a.reference_stopped and a.reply.startswith(a.reference) and not a.stopped]

    @property
    def runs_cleanly(self) -> bool:
        """It ran every prompt and ended each reply where the in-app model did (or not built: nothing to say)."""
        return not self.built or not (self.problem or not self.answers or self.runs_on)

    @property
    def passed(self) -> bool:
        """True without the runtime built (the transformers check stands alone then). Else (the f16 rule):
        every reply stops where the in-app model's does, and each of its tokens is the in-app model's
        first choice or within NEAR_TIE of it. llama.cpp's CPU arithmetic rounds activations to 16 bits,
        so a near tie may go the other way and the rest of the reply follows; the word-for-word comparison
        is reported beside it."""
        if not self.built:
            return True
        if not self.runs_cleanly:
            return False
        return all(a.gaps and a.worst[1] <= NEAR_TIE for a in self.answers)

    def lines(self, new_tokens: int, near_ties: bool = True) -> list[str]:
        if not self.built:
            return [msg("llama.cpp: not checked, its runtime is not built on this machine. Build it once with "
                        "`make gguf-runtime` (a few minutes), then export again to have the file run by llama.cpp too.")]
        if self.problem:
            return [msg("llama.cpp: could not run the file: {problem}", problem=self.problem)]
        stops = [a for a in self.answers if a.reference_stopped]
        stop = (msg(", did NOT stop at end of turn") if self.runs_on
                else msg(", stopped at end of turn") if stops and all(a.stopped for a in stops) else "")
        if self.identical:
            head = msg("llama.cpp: same reply for {n} tokens{stop}", n=new_tokens, stop=stop)
        else:
            head = msg("llama.cpp: the same reply on {same} of {total} prompts, the same first tokens {share} of the "
                       "time{stop}", same=sum(a.reply == a.reference for a in self.answers),
                       total=len(self.answers), share=f"{self.agreement:.0%}", stop=stop)
        out = [head]
        if near_ties and self.answers and all(a.gaps for a in self.answers):
            index, gap = max((a.worst for a in self.answers), key=lambda w: w[1])
            rule = (msg("llama.cpp: fed llama.cpp's replies, the in-app model ranks each of their tokens first or within "
                        "{margin} (logit) of first; the largest gap is {gap}", margin=f"{NEAR_TIE:g}", gap=f"{gap:.2f}")
                    if gap <= NEAR_TIE else
                    msg("llama.cpp: FAILED, fed llama.cpp's replies, the in-app model ranks token {index} of one {gap} "
                        "(logit) below its first choice, more than the {margin} a 16-bit rounding can flip",
                        index=index + 1, gap=f"{gap:.2f}", margin=f"{NEAR_TIE:g}"))
            out.append(rule)
        for a in self.answers:
            if a.reply != a.reference:
                out.append(msg("  '{prompt}': the same for the first {k} of {n} tokens\n    in-app: {ref}\n"
                               "    llama.cpp: {reply}", prompt=a.prompt, k=a.same_tokens, n=a.reference_tokens,
                               ref=repr(a.reference), reply=repr(a.reply)))
        return out


def reply(file: Path, prompt: str, new_tokens: int, timeout: float = 300) -> tuple[str, bool]:
    """llama.cpp's greedy reply to one user message, through the file's own chat template, with its
    special tokens (a think block, the end token), and whether it ended its turn. A run that did not
    print its closing timings lost part of its output (a llama-completion not built by
    tools/llama_cpp.py, which makes it flush its log) and is reported, never judged."""
    threads = str(min(4, os.cpu_count() or 2))
    command = [str(RUNTIME), "-m", str(file), "--jinja", "-cnv", "-st", "-p", prompt, "-n", str(new_tokens),
               "--temp", "0", "--seed", "0", "-c", "1024", "-t", threads, "--no-display-prompt", "--simple-io",
               "--no-warmup", "--special"]
    done = subprocess.run(command, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if done.returncode:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()[-5:]
        raise RuntimeError("\n".join(said) or msg("llama-completion ended with exit code {code} and printed nothing.",
                                                  code=done.returncode))
    if FINISHED not in done.stderr:
        raise RuntimeError(msg("llama-completion exited before it had printed its whole reply; build it "
                               "again with `make gguf-runtime`, which makes it print all of it."))
    text = done.stdout.removesuffix("\n\n")  # llama-completion's last words are a blank line
    stopped = text.endswith(END_OF_TURN)
    return text.removesuffix(END_OF_TURN), stopped


def check(file: Path, prompts, reference_ids: list[list[int]], tokenizer, new_tokens: int) -> RuntimeCheck:
    """llama.cpp's replies to `prompts` against the in-app model's token ids (which end with the end
    token when it ended its turn). `judge` then scores them with the in-app model."""
    if not RUNTIME.is_file():
        return RuntimeCheck(built=False)
    result = RuntimeCheck(built=True)
    ends = set(tokenizer.all_special_ids)
    for prompt, want in zip(prompts, reference_ids):
        try:
            printed, stopped = reply(file, prompt, new_tokens)
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
            import logging

            logging.getLogger(__name__).warning("llama.cpp failed on %s", file, exc_info=e)
            result.problem = str(e) if isinstance(e, RuntimeError) else msg("llama-completion did not finish.")
            return result
        reference_stopped = bool(want) and (len(want) < new_tokens or want[-1] in ends)
        words = want[:-1] if reference_stopped else want
        reference = tokenizer.decode(words, skip_special_tokens=True)
        text = tokenizer.decode(tokenizer(printed, add_special_tokens=False)["input_ids"], skip_special_tokens=True)
        # compared as text: llama.cpp prints pieces, and text need not tokenize back into the same ids
        same = next((k for k in range(len(words))
                     if not text.startswith(tokenizer.decode(words[:k + 1], skip_special_tokens=True))), len(words))
        if reference_stopped and stopped and text == reference:
            same += 1  # the end token, written by both
        result.answers.append(RuntimeAnswer(prompt, reference, text, same, len(want), reference_stopped, stopped,
                                            printed=printed, reference_ids=list(want)))
    return result


def judge(result: RuntimeCheck, model, prompt_ids: list[list[int]], tokenizer, new_tokens: int) -> None:
    """Teacher-force the in-app model on each of llama.cpp's replies as printed (special tokens and the
    end token included), tokenized with the training tokenizer: up to `new_tokens` tokens and its end."""
    for answer, ids in zip(result.answers, prompt_ids):
        tokens = printed_tokens(answer, tokenizer)
        answer.gaps = logit_gaps(model, ids, tokens[:new_tokens + answer.stopped])


def printed_tokens(answer: RuntimeAnswer, tokenizer) -> list[int]:
    """llama.cpp's reply as token ids: the in-app model's own ids for the text both wrote the same from
    the start, then the rest tokenized. Text need not tokenize back into the ids that wrote it (a random
    or odd reply may merge into other tokens), so only the part after the two part ways is retokenized."""
    ids, printed = answer.reference_ids, answer.printed
    heads = ((k, tokenizer.decode(ids[:k], skip_special_tokens=False)) for k in range(len(ids), 0, -1))
    k, head = next(((k, head) for k, head in heads if printed.startswith(head)), (0, ""))
    rest = printed[len(head):]
    return ids[:k] + (tokenizer(rest, add_special_tokens=False)["input_ids"] if rest else [])


def logit_gaps(model, prompt_ids: list[int], tokens: list[int]) -> list[float]:
    import torch

    with torch.no_grad():
        x = torch.tensor([prompt_ids + tokens], device=model.device)
        logits = model(x).logits[0, len(prompt_ids) - 1:].float().cpu()
    top = logits.max(-1).values
    return [(top[i] - logits[i, t]).item() for i, t in enumerate(tokens)]
