"""Progress bars in a Jupyter notebook whose saved output is the bar's final state.

A notebook file keeps a cell's outputs as they were sent, not as widgets later redrew
them: tqdm's widget bar is saved with the text it had when it appeared (0 %), and a
text bar on stderr is saved as hundreds of stream pieces cut in between the printed
lines. Both bars here are displayed once, under a display id:

* :class:`WidgetBar` -- tqdm's widget (with ipywidgets); its display is sent again when
  it closes, so the saved text (what a notebook shows without the widget's state, e.g.
  converted to HTML) is the final one;
* :class:`DisplayBar` -- tqdm's text bar drawn into its display (without ipywidgets),
  every redraw replacing it in place.

Imported only in a kernel (this imports IPython and tqdm's notebook module).
"""

from __future__ import annotations

import io
import uuid
from typing import Any

from tqdm.notebook import tqdm as notebook_tqdm
from tqdm.std import tqdm as std_tqdm

from ._live_view import send_display

__all__ = ["DisplayBar", "WidgetBar"]


class WidgetBar(notebook_tqdm):  # pyright: ignore[reportMissingTypeArgument]
    """tqdm's widget bar, displayed under a display id and sent again when it closes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, display=False, **kwargs)  # pyright: ignore[reportUnknownMemberType]
        self._display_id = uuid.uuid4().hex
        send_display(self.container, self._display_id, raw=False)
        self.displayed = True

    def close(self) -> None:
        """Close the bar; a bar that stays shows its final text in the saved notebook."""
        closing = not self.disable
        super().close()
        if closing and self.leave:
            send_display(self.container, self._display_id, update=True, raw=False)


class DisplayBar(std_tqdm):  # pyright: ignore[reportMissingTypeArgument]
    """tqdm's text bar, drawn into one display area of the cell instead of a stream."""

    monitor_interval = 0  # no monitor thread: the bar redraws only on updates

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._display_id = ""
        kwargs["file"] = io.StringIO()  # tqdm's own writes (newlines, clearing) go nowhere
        super().__init__(*args, **kwargs)  # pyright: ignore[reportUnknownMemberType]

    def display(self, msg: str | None = None, pos: int | None = None) -> None:
        """Draw the bar (``msg``: this text instead; ``""`` when a bar that goes closes)."""
        data = {"text/plain": self.__str__() if msg is None else msg}
        if self._display_id:
            send_display(data, self._display_id, update=True)
        else:
            self._display_id = uuid.uuid4().hex
            send_display(data, self._display_id)
