"""The progress bar: accepted samples toward the target, with rejected/failed counts and words per second, all read
from the status tracker (generate/status.py)."""

from __future__ import annotations

import sys

from tqdm import tqdm

from .status import StatusTracker


class Progress:
    def __init__(self, status: StatusTracker, enabled: bool = True):
        self.status = status
        self.bar = tqdm(total=status.target, initial=min(status.whole["accepted"], status.target), unit="sample",
                        desc="accepted", disable=not enabled, mininterval=0.5, dynamic_ncols=True, file=sys.stderr)
        status.watch(self.update)

    def line(self) -> str:
        """The figures beside the bar."""
        status, whole = self.status, self.status.whole
        lowered = status.lowered_limit
        figures = (
            f"rejected={whole['rejected']} failed={whole['failed']} jobs={status.jobs_in_flight} "
            f"in-flight={status.requests_in_flight}{'' if lowered is None else f'/{lowered}'} "
            f"req/min={status.per_second(status.paid.requests) * 60:.0f} "
            f"tok/s in={status.per_second(status.paid.prompt_tokens):.0f} "
            f"out={status.per_second(status.paid.completion_tokens):.0f} "
            f"words/s={status.per_second(status.words):.0f}"
        )
        cost = status.cost
        return figures if cost is None else figures + f" cost=${cost:,.2f}"

    def update(self) -> None:
        self.bar.n = min(self.status.whole["accepted"], self.bar.total)
        self.bar.set_postfix_str(self.line(), refresh=False)
        self.bar.update(0)

    def close(self) -> None:
        """Draw the final figures, then release the terminal line."""
        self.update()
        self.bar.close()
