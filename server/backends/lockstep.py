"""Lockstep decoding: the replies of many concurrent episodes decoded together, one forward pass
per token for all of them (RL's GRPO steps on a GPU; `trainer.rollout.rollouts` drives it).

Each episode still runs in `dsl.run_episode` (coedit's one agent loop), each in its own thread,
and asks its row (`Lockstep.rows[i]`, a sampler like a `TransformersBackend`) for its next reply.
`Lockstep` waits until every episode still running has asked, then decodes all of those replies
in one batch with the backend's own decoding (`KVRows`, `decode_rows`, `TransformersBackend.chooser`):

* Each row keeps its KV cache across turns inside one batched cache: a turn prefills only the
  row's new tool turn, as a single reply does (transformers.py describes the padding and positions).
* Tokens are chosen per row by the backend's grammar and sampling options, each row with its own
  random stream, so a row's episode does not depend on which others share its batch.

Sampled episodes therefore differ from a lone backend's (other random streams) unless it is given
the row's stream (`row_stream`), and greedy ones agree with it up to floating-point ties (the
padded matrices sum in another order).

On the 2-core CPU this measured no faster than one episode at a time and held more memory
(`bench/rollout_speed.py`): there a forward pass costs about the same per row either way. So
`trainer rl` uses it only with `--batch-rows N`; it is meant for a GPU. On an H100, GRPO steps of
32 episodes in lockstep ran at 1.60 training episodes/s against 0.229 for steps of 8 one at a time
(both including the optimizer's work; docs/results.md, rl9).
"""
from __future__ import annotations

import random
import threading

from .limits import reply_limit
from .transformers import KVRows, TransformersBackend, decode_rows


def row_stream(seed: int, row: int) -> int:
    """The seed of episode `row`'s random stream in a lockstep batch seeded `seed`."""
    return seed * 1_000_003 + row


class Lockstep:
    """Replies of `rows` concurrent episodes, generated in batches by `backend`'s model (its options
    decide grammar and sampling). Row i's random stream is seeded from `seed` and `first + i`."""

    def __init__(self, backend: TransformersBackend, rows: int, seed: int = 0, first: int = 0):
        self.backend = backend
        self.rows = [Row(self, i, row_stream(seed, first + i)) for i in range(rows)]
        self._kv = KVRows(backend.model, rows, backend.pad)
        self._cond = threading.Condition()
        self._live = set(range(rows))
        self._pending: dict[int, tuple[list[int], list | None]] = {}
        self._results: dict[int, object] = {}

    def request(self, row: int, ids: list[int], lines) -> tuple[list[int], bool]:
        """Row `row`'s reply after context `ids` (blocks until its batch is decoded)."""
        with self._cond:
            self._pending[row] = (ids, lines)
            self._run_if_all_waiting()
            while row not in self._results:
                self._cond.wait()
            result = self._results.pop(row)
        if isinstance(result, BaseException):
            raise result
        return result

    def leave(self, row: int) -> None:
        """Row `row`'s episode ended: the others no longer wait for it."""
        with self._cond:
            self._live.discard(row)
            self._run_if_all_waiting()

    def _run_if_all_waiting(self) -> None:
        # called under the lock: every other live row is waiting in `request`, so nothing else runs
        if not self._pending or not self._live <= set(self._pending):
            return
        batch, self._pending = self._pending, {}
        try:
            self._results.update(self._decode(batch))
        except BaseException as e:  # every row of the batch gets the error, none waits forever
            self._results.update({r: e for r in batch})
        self._cond.notify_all()

    def _decode(self, batch: dict[int, tuple[list[int], list | None]]) -> dict[int, tuple[list[int], bool]]:
        chunks = {}
        for r, (ids, _) in batch.items():
            fed = self._kv.fed[r]
            if len(ids) <= len(fed) or ids[: len(fed)] != fed:
                raise ValueError(f"row {r}: the context does not extend the row's previous one")
            chunks[r] = ids[len(fed):]
        backend = self.backend
        choosers = {r: backend.chooser(lines, self.rows[r].rng) for r, (_, lines) in batch.items()}
        done = decode_rows(self._kv, chunks, choosers, backend.stop, reply_limit(backend))
        for out, _ in done.values():
            backend.generated_tokens += len(out) + 1
        return done


class Row:
    """One episode's view of a Lockstep: what `trainer.rollout.rollout` needs of a sampler."""

    def __init__(self, lockstep: Lockstep, index: int, stream: int):
        self.lockstep, self.index = lockstep, index
        self.rng = random.Random(stream)
        backend = lockstep.backend
        self.fmt, self.tok = backend.fmt, backend.tok
        self.context, self.max_new_tokens = backend.context, backend.max_new_tokens

    def generate_ids(self, ids: list[int], lines=None) -> tuple[list[int], bool]:
        return self.lockstep.request(self.index, ids, lines)
