"""Batched RL rollouts: the episodes of a GRPO step decoded together, one forward pass per token
for all of them.

Sequential rollouts (`trainer/rollout.py`) decode one episode at a time, one token per forward
pass. On an H100 that kept the GPU mostly idle (0.229 episodes/s, 7.6x the 2-core CPU): each pass
moves the whole model for one token of one episode. Here every episode still runs in
`dsl.run_episode` (coedit's one agent loop, through `rollout`), each in its own thread, and
`Lockstep` generates their replies: it waits until every episode still running has asked for its
next reply, then decodes all of those replies in one batch.

* Each row keeps its KV cache across turns inside one batched cache: a turn prefills only the
  row's new tool turn, as the sequential backend does.
* Rows grow by different amounts. A chunk is left-padded per row (so its last column is real
  for every row that has one), a row that is not asking feeds padding, and the attention mask hides
  every padding column, holes in the middle included. Positions are counted over a row's real
  tokens only (`position_ids`), so a row sees exactly the positions it would see alone.
* Tokens are chosen per row by the backend's own `choose` (grammar, temperature, top-k), each row
  with its own random stream, so a row's episode does not depend on which others share its batch.

Sampled episodes therefore differ from the sequential path's (other random streams), and greedy
ones agree with it up to floating-point ties (the padded matrices sum in another order).

On the 2-core CPU this measured no faster than one episode at a time and held more memory
(`bench/rollout_speed.py`): there a forward pass costs about the same per row either way. So
`trainer rl` uses it only with `--batch-rows N`; it is meant for a GPU. On an H100, GRPO steps of
32 episodes in lockstep ran at 1.60 training episodes/s against 0.229 for steps of 8 one at a time
(both including the optimizer's work; README, rl9).
"""
from __future__ import annotations

import copy
import random
import threading

from dsl import Task, Verifier
from server.backends import reply_limit

from .rollout import Rollout, rollout


def row_stream(seed: int, row: int) -> int:
    """The seed of episode `row`'s random stream in a lockstep batch seeded `seed`."""
    return seed * 1_000_003 + row


class Lockstep:
    """Replies of `rows` concurrent episodes, generated in batches by `backend`'s model (a
    `server.backends.TransformersBackend`; its options decide grammar and sampling). Row i's
    random stream is seeded from `seed` and `first + i`. `rows[i]` is what `rollout` drives."""

    def __init__(self, backend, rows: int, seed: int = 0, first: int = 0):
        self.torch = backend.torch
        self.model = backend.model
        self.backend = backend
        self.stop = backend.fmt.stop_ids[0]
        self.pad = backend.tok.pad_token_id if backend.tok.pad_token_id is not None else self.stop
        self.rows = [_Row(self, i, row_stream(seed, first + i)) for i in range(rows)]
        self._cond = threading.Condition()
        self._live = set(range(rows))
        self._pending: dict[int, tuple[list[int], list | None]] = {}
        self._results: dict[int, object] = {}
        self._cache = None
        self._mask = self.torch.zeros(rows, 0, dtype=self.torch.long, device=self.model.device)
        self._fed: list[list[int]] = [[] for _ in range(rows)]  # the real ids each row's cache holds

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
            fed = self._fed[r]
            if len(ids) <= len(fed) or ids[: len(fed)] != fed:
                raise ValueError(f"row {r}: the context does not extend the row's previous one")
            chunks[r] = ids[len(fed):]
        limit = reply_limit(self.backend)
        outs: dict[int, list[int]] = {r: [] for r in batch}
        done: dict[int, tuple[list[int], bool]] = {}
        with self.torch.no_grad():
            logits = self._feed(chunks)
            for i in range(limit):
                step = {}
                for r in sorted(logits):
                    nxt = self.rows[r].sampler.choose(logits[r], outs[r], self.stop, batch[r][1])
                    if nxt is None or nxt == self.stop:
                        done[r] = (outs[r], nxt == self.stop)
                    else:
                        outs[r].append(nxt)
                        step[r] = [nxt]
                # as in the sequential backend, the token chosen at the limit is not fed
                if not step or i == limit - 1:
                    break
                logits = self._feed(step)
        for r in batch:
            done.setdefault(r, (outs[r], False))
            self.backend.generated_tokens += len(done[r][0]) + 1
        return done

    def _feed(self, chunks: dict[int, list[int]]) -> dict:
        """One forward pass: each row of `chunks` appends its ids, every other row padding. The
        last-position logits of the rows that fed something."""
        torch = self.torch
        n_rows, width = len(self.rows), max(len(c) for c in chunks.values())
        ids = torch.full((n_rows, width), self.pad, dtype=torch.long)
        mask = torch.zeros(n_rows, width, dtype=torch.long)
        pos = torch.zeros(n_rows, width, dtype=torch.long)
        for r in range(n_rows):
            seen = len(self._fed[r])
            pos[r] = max(seen - 1, 0)  # padding's position: any; its column is masked everywhere
            c = chunks.get(r, [])
            if c:
                ids[r, width - len(c):] = torch.tensor(c)
                mask[r, width - len(c):] = 1
                pos[r, width - len(c):] = torch.arange(seen, seen + len(c))
        device = self.model.device
        self._mask = torch.cat([self._mask, mask.to(device)], dim=1)
        res = self.model(input_ids=ids.to(device), attention_mask=self._mask, position_ids=pos.to(device),
                         cache=self._cache, use_cache=True, logits_to_keep=1)
        self._cache = res.cache
        for r, c in chunks.items():
            self._fed[r].extend(c)
        # one copy to the host for the whole batch: choosing a token (top-k, softmax, grammar) is a
        # few small ops per row, and on a GPU each would be its own kernel launch and sync
        fed = sorted(chunks)  # row indices, not self.rows
        last = res.logits[fed, -1].float().cpu()
        return {r: last[i] for i, r in enumerate(fed)}


class _Row:
    """One episode's view of a Lockstep: what `rollout` needs of a sampler."""

    def __init__(self, lockstep: Lockstep, index: int, stream: int):
        self.lockstep, self.index = lockstep, index
        self.sampler = copy.copy(lockstep.backend)  # the backend's options, with this row's own random stream
        self.sampler.rng = random.Random(stream)
        self.fmt, self.tok = self.sampler.fmt, self.sampler.tok
        self.context, self.max_new_tokens = self.sampler.context, self.sampler.max_new_tokens

    def generate_ids(self, ids: list[int], lines=None) -> tuple[list[int], bool]:
        return self.lockstep.request(self.index, ids, lines if self.sampler.grammar == "code" else None)


def rollouts(tasks: list[Task], backend, *, rows: int = 8, seed: int | None = None,
             verifier: Verifier | None = None, **options) -> list[Rollout]:
    """`rollout(task, ...)` for every task (`options` go to it), their replies decoded together,
    `rows` episodes at a time (one thread per episode, the tests of one running while the others
    wait); `rows=0`: one after another from `backend` itself (its own random stream; `seed`
    unused). Episode i samples from the same stream whatever `rows` is; `seed` None draws the
    batch's seed from `backend`'s stream (only when batched, so `rows=0` plays as it always did)."""
    if rows < 0:
        raise ValueError(f"rows must be 0 (one episode at a time) or more, not {rows}")
    if rows == 0:
        return [rollout(t, backend, verifier=verifier, **options) for t in tasks]
    # the rows' caches and, in a long prefill, the attention scores grow with the batch: 25
    # held-out episodes of SmolLM2 at once peaked at 18 GB on the CPU
    if seed is None:
        seed = backend.rng.randrange(2**31)
    done = []
    for start in range(0, len(tasks), rows):
        done += _together(tasks[start:start + rows], backend, seed, start, verifier, options)
    return done


def _together(tasks: list[Task], backend, seed: int, first: int, verifier, options: dict) -> list[Rollout]:
    lockstep = Lockstep(backend, len(tasks), seed, first)
    done: list[Rollout | None] = [None] * len(tasks)
    errors: list[BaseException] = []

    def play(i: int) -> None:
        try:
            done[i] = rollout(tasks[i], lockstep.rows[i], verifier=verifier, **options)
        except BaseException as e:  # noqa: BLE001 - re-raised below, in the caller's thread
            errors.append(e)
        finally:
            lockstep.leave(i)

    threads = [threading.Thread(target=play, args=(i,), daemon=True) for i in range(len(tasks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return done
