"""A chat's own settings: its model, system prompt, temperature, top-p, max tokens and seed, and the presets
(config.toml's ``chat.presets``) a chat can start from.

The dialog edits a ``ChatSetup`` and returns it (None when dismissed); the app stores it with the chat, or
keeps it for the chat the next message starts. A field left empty is not set by the chat: config.toml's
``[chat]`` value applies. Values are checked here (``ChatOptions``), so a bad one is said under the fields
and nothing is returned until it is fixed.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ValidationError
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, TextArea

from ...config import Preset
from ...untrusted import clean, plain
from ..backend import ChatSetup

FIELDS = ("temperature", "top_p", "max_tokens", "seed")
NO_PRESET = "(keep)"


class ChatSettingsDialog(ModalScreen[ChatSetup | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, setup: ChatSetup, models: list[str], presets: dict[str, Preset]) -> None:
        super().__init__()
        self.setup = setup
        self.models = models if setup.model_id is None or setup.model_id in models else [setup.model_id, *models]
        self.presets = presets

    def compose(self) -> ComposeResult:
        setup = self.setup
        with VerticalScroll(classes="dialog", id="chat-settings"):
            yield Label("Chat settings", classes="dialog-title")
            yield Label("Preset")
            # names from config.toml and model ids from the store are data: plain Text, never markup
            preset_options = [(plain(name, one_line=True), name) for name in self.presets]
            yield Select(preset_options, prompt=NO_PRESET, id="settings-preset", allow_blank=True)
            yield Label("Model")
            model_options = [(plain(m, one_line=True), m) for m in self.models]
            yield Select(model_options, value=setup.model_id or Select.BLANK, id="settings-model", allow_blank=False)
            yield Label("System prompt")
            yield TextArea(setup.system_prompt, id="settings-system", soft_wrap=True, compact=True)
            for name in FIELDS:
                value = setup.options.get(name)
                yield Label(name.replace("_", " "))
                yield Input("" if value is None else str(value), id=f"settings-{name}", placeholder="config default")
            yield Label("", id="settings-error", classes="dialog-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="settings-save")
                yield Button("Cancel", id="settings-cancel")

    @on(Select.Changed, "#settings-preset")
    def _preset(self, event: Select.Changed) -> None:
        """A preset fills the system prompt and the settings it names; the others are cleared (defaults)."""
        if event.value is Select.BLANK or not isinstance(event.value, str):
            return
        preset = self.presets[event.value]
        self.query_one("#settings-system", TextArea).text = preset.system_prompt
        options = preset.options()
        for name in FIELDS:
            value = options.get(name)
            self.query_one(f"#settings-{name}", Input).value = "" if value is None else str(value)

    @on(Button.Pressed, "#settings-save")
    def _save(self) -> None:
        setup = self.result()
        if setup is not None:
            self.dismiss(setup)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._save()

    @on(Button.Pressed, "#settings-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def result(self) -> ChatSetup | None:
        """The edited settings, or None (with the reason under the fields) when a value is not valid."""
        from ...chat import ChatOptions

        options: dict[str, Any] = {}
        for name in FIELDS:
            text = self.query_one(f"#settings-{name}", Input).value.strip()
            if text:
                options[name] = text
        error = self.query_one("#settings-error", Label)
        try:
            checked = ChatOptions.model_validate(options)
        except ValidationError as exc:
            first = exc.errors()[0]
            error.update(f"{first['loc'][0]}: {clean(first['msg'], one_line=True)}")
            return None
        error.update("")
        model = self.query_one("#settings-model", Select).value
        return ChatSetup(
            model_id=model if isinstance(model, str) else self.setup.model_id,
            system_prompt=self.query_one("#settings-system", TextArea).text,
            options=checked.model_dump(include=set(options)),
        )
