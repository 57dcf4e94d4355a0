"""What every tab receives: the engine objects of this app (the UI holds no model state itself)."""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from engine.hardware import Hardware
from engine.chat.models import ModelManager
from engine.workspace import Workspace
from ui.i18n import t


@dataclass
class Context:
    workspace: Workspace
    manager: ModelManager
    hardware: Hardware
    status: gr.Markdown | None = field(default=None)  # the header line; tabs that change the model refresh it
    demo: gr.Blocks | None = field(default=None)
    tabs: gr.Tabs | None = field(default=None)  # for buttons that lead to another tab (`gr.Tabs(selected=id)`)
    tab: gr.Tab | None = field(default=None)  # the tab being rendered, while `render` runs
    language: gr.Radio | None = field(default=None)  # the page's language control, for lists drawn on the server

    def status_text(self) -> str:
        loaded = self.manager.loaded
        if not loaded:
            model = t("**Model:** none loaded — load one on the Model tab")
        elif loaded.active_adapter:
            model = t("**Model:** {model} · adapter **{adapter}**", model=loaded.summary(), adapter=loaded.active_adapter)
        else:
            model = t("**Model:** {model}", model=loaded.summary())
        return t("{model}  \n**Hardware:** {hardware}", model=model, hardware=self.hardware.summary())
