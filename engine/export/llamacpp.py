"""A GGUF export run by llama.cpp itself: `llama-completion` (built from the pinned source by
`make gguf-runtime`) loads the file and answers each verification prompt through the chat template
embedded in the file (`--jinja`), greedily. Its reply is held to the in-app model's: the same text for
the 64 tokens (f16), or the same first tokens for at least the format's floor (quantised), and it must
stop where the in-app model ends its turn.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from engine.export.gguf import TOOLS
from engine.i18n import msg

RUNTIME = TOOLS / "bin" / "llama-completion"
END_OF_TURN = " [end of text]"  # what llama-completion prints when the model writes an end-of-generation token


@dataclass
class RuntimeAnswer:
    prompt: str
    reference: str  # the in-app model's reply, as text
    reply: str  # llama.cpp's
    same_tokens: int  # how many of the in-app model's tokens llama.cpp wrote the same, from the start
    reference_tokens: int
    reference_stopped: bool  # the in-app model ended its turn within the tokens asked for
    stopped: bool  # llama.cpp ended its turn (an end-of-generation token) within them


@dataclass
class RuntimeCheck:
    built: bool
    floor: float | None = None
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
    def passed(self) -> bool:
        """True without the runtime built (the transformers check stands alone then); else its verdict."""
        if not self.built:
            return True
        if self.problem or not self.answers:
            return False
        if self.floor is None:
            return self.identical
        return self.agreement >= self.floor and all(a.stopped for a in self.answers if a.reply == a.reference)

    def lines(self, new_tokens: int) -> list[str]:
        if not self.built:
            return [msg("llama.cpp: not checked, its runtime is not built on this machine. Build it once with "
                        "`make gguf-runtime` (a few minutes), then export again to have the file run by llama.cpp too.")]
        if self.problem:
            return [msg("llama.cpp: could not run the file: {problem}", problem=self.problem)]
        stops = [a for a in self.answers if a.reference_stopped]
        stop = (msg(", stopped at end of turn") if stops and all(a.stopped for a in stops)
                else msg(", did NOT stop at end of turn") if stops else "")
        if self.identical:
            head = msg("llama.cpp: same reply for {n} tokens{stop}", n=new_tokens, stop=stop)
        else:
            head = msg("llama.cpp: the same first tokens {share} of the time ({floor} needed){stop}",
                       share=f"{self.agreement:.0%}", floor="100%" if self.floor is None else f"{self.floor:.0%}",
                       stop=stop)
        out = [head]
        for a in self.answers:
            if a.reply != a.reference:
                out.append(msg("  '{prompt}': the same for the first {k} of {n} tokens\n    in-app: {ref}\n"
                               "    llama.cpp: {reply}", prompt=a.prompt, k=a.same_tokens, n=a.reference_tokens,
                               ref=repr(a.reference), reply=repr(a.reply)))
        return out


def reply(file: Path, prompt: str, new_tokens: int, timeout: float = 300) -> tuple[str, bool]:
    """llama.cpp's greedy reply to one user message, through the file's own chat template, and whether
    it ended its turn."""
    threads = str(min(4, os.cpu_count() or 2))
    command = [str(RUNTIME), "-m", str(file), "--jinja", "-cnv", "-st", "-p", prompt, "-n", str(new_tokens),
               "--temp", "0", "--seed", "0", "-c", "1024", "-t", threads, "--no-display-prompt", "--simple-io",
               "--no-warmup"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode:
        raise RuntimeError("\n".join(done.stderr.strip().splitlines()[-5:]))
    text = done.stdout.rstrip("\n")
    stopped = text.endswith(END_OF_TURN)
    return text.removesuffix(END_OF_TURN), stopped


def check(file: Path, prompts, reference_ids: list[list[int]], tokenizer, new_tokens: int,
          floor: float | None) -> RuntimeCheck:
    """llama.cpp's replies to `prompts` against the in-app model's token ids (which end with the end
    token when it ended its turn)."""
    if not RUNTIME.is_file():
        return RuntimeCheck(built=False, floor=floor)
    result = RuntimeCheck(built=True, floor=floor)
    ends = set(tokenizer.all_special_ids)
    for prompt, want in zip(prompts, reference_ids):
        try:
            text, stopped = reply(file, prompt, new_tokens)
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
            import logging

            logging.getLogger(__name__).warning("llama.cpp failed on %s", file, exc_info=e)
            result.problem = str(e) if isinstance(e, RuntimeError) else msg("llama-completion did not finish.")
            return result
        reference_stopped = bool(want) and want[-1] in ends
        words = want[:-1] if reference_stopped else want
        got = tokenizer(text, add_special_tokens=False)["input_ids"]
        same = next((i for i, (x, y) in enumerate(zip(words, got)) if x != y), min(len(words), len(got)))
        if reference_stopped and stopped and same == len(words) == len(got):
            same += 1  # the end token, written by both
        result.answers.append(RuntimeAnswer(prompt, tokenizer.decode(words), text, same, len(want),
                                            reference_stopped, stopped))
    return result
