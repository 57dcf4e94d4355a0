"""Rows that need an image (or video, or sound): LLaVA-style `<image>` placeholders, image path
columns, content parts holding images. The app trains text models, so such a row is never trained:
a placeholder would be learned as text. A file of them may give its text-only rows, if asked."""

from __future__ import annotations

import re

from engine.data.turns import IMAGE_MARK

COLUMNS = frozenset({"image", "images", "image_path", "image_file", "image_url", "img", "video", "videos", "audio", "audios"})
PLACEHOLDER = re.compile(r"<(?:image|img|video|audio|\|image\||image_\d+|image_placeholder|\|vision_start\||image content part)>")
_PARTS = re.compile(r"'type': '(?:image|image_url|input_image|video|audio|input_audio)'|'(?:inlineData|fileData)':")


def image_of(record: dict | None, row: dict) -> str | None:
    """What image `row` (converted from `record`) needs, in words; None for a text-only row."""
    if record is not None:
        for key in COLUMNS.intersection(record):
            if record[key]:
                return f"an image in '{key}'"
    texts = [m["content"] for m in row["messages"]] if "messages" in row else [row.get("text", "")]
    for text in texts:
        if "<" in text and (found := PLACEHOLDER.search(text)):
            return "an image content part" if found.group(0) == IMAGE_MARK else f"the image placeholder {found.group(0)}"
    return None


def holds_image(record: dict) -> bool:
    """Whether a raw record (not yet converted) holds an image anywhere; for the sampled records."""
    if any(record[k] for k in COLUMNS.intersection(record)):
        return True
    text = repr(record)
    return bool(PLACEHOLDER.search(text) or _PARTS.search(text))
