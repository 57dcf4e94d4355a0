"""Data: read any common fine-tuning file, detect its shape, convert it to conversations, apply the
rules, preview the rendering, and save it to the workspace. No gradio here; heavy libraries
(transformers, datasets) load only where rendering or tokenising needs them."""

from engine.data.cards import Card, read_card
from engine.data.errors import DataError
from engine.data.formats import RECORD_FORMATS
from engine.data.pipeline import Inspection, Options, inspect, load_conversations
from engine.data.rules import Rules

__all__ = ["Card", "DataError", "RECORD_FORMATS", "Inspection", "Options", "Rules", "inspect", "load_conversations", "read_card"]
