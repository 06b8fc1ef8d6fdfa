"""The progress bar: accepted samples toward the target, with rejected/failed counts and words per second."""

from __future__ import annotations

import sys

from tqdm import tqdm


class Progress:
    def __init__(self, target: int, initial: int, enabled: bool = True, prices=None):
        self.prices = prices
        self.bar = tqdm(total=target, initial=min(initial, target), unit="sample", desc="accepted",
                        disable=not enabled, mininterval=0.5, dynamic_ncols=True, file=sys.stderr)

    def update(self, engine) -> None:
        summary, totals = engine.summary, engine.totals
        self.bar.n = min(totals["accepted"], self.bar.total)
        elapsed = max(engine.elapsed, 1e-9)
        limiter = engine.limits.concurrency if engine.limits else None
        limit = f"/{limiter.current}" if limiter and limiter.current < limiter.ceiling else ""
        figures = (
            f"rejected={totals['rejected']} failed={totals['failed']} jobs={len(engine.in_flight)} "
            f"in-flight={engine.requests_in_flight}{limit} req/min={engine.requests_done / elapsed * 60:.0f} "
            f"tok/s in={engine.tokens_in / elapsed:.0f} out={engine.tokens_out / elapsed:.0f} "
            f"words/s={summary.words / elapsed:.0f}"
        )
        if self.prices is not None:
            figures += f" cost=${self.prices.cost(engine.tokens_in, engine.tokens_cached, engine.tokens_out):,.2f}"
        self.bar.set_postfix_str(figures, refresh=False)
        self.bar.update(0)

    def close(self) -> None:
        self.bar.close()
