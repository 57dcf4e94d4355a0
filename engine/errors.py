"""Failures of the machine, not of the person's input (disk full, no permission, input nested too deep,
out of memory) said as plain sentences: what happened and what to do. The exception's class and
traceback belong in the log, never in the sentence."""

from __future__ import annotations

import errno

from engine.i18n import Message, msg

_OS = {
    errno.ENOSPC: "The disk is full{where}. Free some space (delete old runs or exports) and try again.",
    errno.EDQUOT: "The disk quota is used up{where}. Free some space (delete old runs or exports) and try again.",
    errno.EACCES: "The app may not write{where}. Choose another folder, or give the app permission to write there.",
    errno.EPERM: "The app may not write{where}. Choose another folder, or give the app permission to write there.",
    errno.EROFS: "The folder is read-only{where}. Choose a folder the app can write to.",
    errno.EEXIST: "There is already something{where} that this app did not write, so it was left as it was. "
                  "Choose a new or empty folder.",
    errno.ENOTDIR: "A file stands where a folder is needed{where}. Choose another folder.",
    errno.ENAMETOOLONG: "A file name is too long{where}. Choose a shorter name.",
    errno.EMFILE: "Too many files are open at once. Wait a moment and try again.",
    errno.ENOENT: "A file or folder is missing{where}. It may have been moved or deleted; check it and try again.",
}


def plain(e: BaseException) -> Message | None:
    """A sentence for a failure of the machine, or None where `e` is not one of them."""
    if isinstance(e, OSError) and e.errno in _OS:
        where = msg(" (at {path})", path=e.filename) if getattr(e, "filename", None) else ""
        return msg(_OS[e.errno], where=where)
    if isinstance(e, RecursionError):
        return msg("The input is nested too deeply to read (lists or objects inside each other thousands of levels deep).")
    if isinstance(e, MemoryError):
        return msg("The machine ran out of memory. Close other work, or use a smaller file or model, and try again.")
    return None
