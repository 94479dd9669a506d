"""`TransformersBackend`: a checkpoint directory (`save_pretrained` output, with the `coedit.json`
that `trainer.sft` writes), or a model already in memory (RL samples from the model it trains).

The code grammar is enforced token by token with `dsl.can_extend` (grammar.py). Decoding is one
KV-cached step for any number of rows (`KVRows.feed`) and one loop over it (`decode_rows`): a
single reply here is a batch of one row, and RL's lockstep batches (lockstep.py) are many rows of
the same two functions, so the two paths cannot drift apart.
"""
from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Callable

from dsl import lines_in_view

from .grammar import grammar_allows, grammar_mode
from .limits import overflows, reply_limit
from .model_files import ModelError, chat_of
from .sampling import HEAD, MIN_P, TOP_P, at_temperature, checked_cutoffs, kept_by_cutoffs
from .tokens import CHATML, FORMATS, TokenFormat


class KVRows:
    """Rows of token ids in one batched KV cache; `feed` appends ids to some rows in one forward pass.

    Rows grow by different amounts. A chunk is left-padded per row (so its last column is real for
    every row that has one), a row that feeds nothing feeds padding, and the attention mask hides
    every padding column, holes in the middle included. Positions are counted over a row's real
    tokens only, so a row sees exactly the positions it would see alone. One row has no padding,
    and is fed as a plain causal sequence (no mask, no positions): the single-reply path.
    """

    def __init__(self, model, rows: int, pad: int):
        import torch
        self.torch, self.model, self.n, self.pad = torch, model, rows, pad
        self.reset()

    def reset(self) -> None:
        """Forget every row's cache."""
        self.cache = None
        self.fed: list[list[int]] = [[] for _ in range(self.n)]  # the real ids each row's cache holds
        self.mask = self.torch.zeros(self.n, 0, dtype=self.torch.long, device=self.model.device)

    def feed(self, chunks: dict[int, list[int]]) -> dict:
        """One forward pass: each row of `chunks` appends its ids, every other row padding. The
        last-position logits (float, on the host) of the rows that fed something."""
        torch, device = self.torch, self.model.device
        if self.n == 1:
            ids, extra = torch.tensor([chunks[0]], device=device), {}
        else:
            width = max(len(c) for c in chunks.values())
            ids = torch.full((self.n, width), self.pad, dtype=torch.long)
            mask = torch.zeros(self.n, width, dtype=torch.long)
            pos = torch.zeros(self.n, width, dtype=torch.long)
            for r in range(self.n):
                seen = len(self.fed[r])
                pos[r] = max(seen - 1, 0)  # padding's position: any; its column is masked everywhere
                c = chunks.get(r, [])
                if c:
                    ids[r, width - len(c):] = torch.tensor(c)
                    mask[r, width - len(c):] = 1
                    pos[r, width - len(c):] = torch.arange(seen, seen + len(c))
            self.mask = torch.cat([self.mask, mask.to(device)], dim=1)
            ids, extra = ids.to(device), {"attention_mask": self.mask, "position_ids": pos.to(device)}
        # only the last position's logits are used
        res = self.model(input_ids=ids, cache=self.cache, use_cache=True, logits_to_keep=1, **extra)
        self.cache = res.cache
        for r, c in chunks.items():
            self.fed[r].extend(c)
        # one copy to the host for the whole batch: choosing a token (top-k, softmax, grammar) is a
        # few small ops per row, and on a GPU each would be its own kernel launch and sync
        rows = sorted(chunks)
        last = res.logits[rows, -1].float().cpu()
        return {r: last[i] for i, r in enumerate(rows)}


Chooser = Callable[[object, list[int]], "int | None"]  # (logits, reply so far) -> next token or None


def decode_rows(kv: KVRows, chunks: dict[int, list[int]], choosers: dict[int, Chooser], stop: int,
                limit: int) -> dict[int, tuple[list[int], bool]]:
    """Per row of `chunks` (its new context ids), (reply ids without the stop token, whether the
    model chose to stop): one forward pass per token for all rows; `choosers[r]` picks row r's
    next token. As many tokens as `limit`; the token chosen at the limit is not fed."""
    outs: dict[int, list[int]] = {r: [] for r in chunks}
    done: dict[int, tuple[list[int], bool]] = {}
    with kv.torch.no_grad():
        logits = kv.feed(chunks)
        for i in range(limit):
            step = {}
            for r in sorted(logits):
                nxt = choosers[r](logits[r], outs[r])
                if nxt is None or nxt == stop:
                    done[r] = (outs[r], nxt == stop)
                else:
                    outs[r].append(nxt)
                    step[r] = [nxt]
            if not step or i == limit - 1:
                break
            logits = kv.feed(step)
    for r in chunks:
        done.setdefault(r, (outs[r], False))
    return done


class TransformersBackend:
    HEAD = HEAD  # the best tokens ranked against the grammar first (sampling.py)

    def __init__(self, path: str | Path, *, grammar: bool | str = True, temperature: float = 0.0, top_k: int = 40,
                 top_p: float = TOP_P, min_p: float = MIN_P, max_new_tokens: int = 128, seed: int = 0,
                 threads: int = 0, mode: str = "coe"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(path)
        if not (path / "config.json").is_file():
            raise ModelError(f"{path}: not a model directory (no config.json); give a checkpoint made by "
                             "`python -m trainer sft` or a .gguf file")
        if threads:
            torch.set_num_threads(threads)
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self._setup(model, tok, FORMATS.get(chat_of(path), CHATML), grammar=grammar, temperature=temperature,
                    top_k=top_k, top_p=top_p, min_p=min_p, max_new_tokens=max_new_tokens, seed=seed, mode=mode)

    @classmethod
    def from_model(cls, model, tokenizer, chat=CHATML, **options) -> "TransformersBackend":
        """A backend over a model already in memory (RL rollouts sample from the model being trained)."""
        self = cls.__new__(cls)
        self._setup(model, tokenizer, chat, **options)
        return self

    def _setup(self, model, tok, chat, *, grammar: bool | str = True, temperature: float = 0.0, top_k: int = 40,
               top_p: float = TOP_P, min_p: float = MIN_P, max_new_tokens: int = 128, seed: int = 0,
               mode: str = "coe") -> None:
        import torch
        self.torch = torch
        self.model, self.tok = model, tok
        self.fmt = TokenFormat(tok, chat)
        self.stop = self.fmt.stop_ids[0]
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else self.stop
        self.context = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        self.grammar = grammar_mode(grammar) if mode == "coe" else "off"
        self.temperature, self.top_k, self.max_new_tokens = temperature, top_k, max_new_tokens
        self.top_p, self.min_p = checked_cutoffs(top_p, min_p)
        self.mode = mode
        self.rng = random.Random(seed)
        self.generated_tokens = 0
        self.overflows = 0  # replies not generated because the conversation outgrew the context
        self._kv = KVRows(model, 1, self.pad)  # the last context's cache, reused while episodes grow
        self._lock = threading.Lock()  # jobs on two documents share one model: one generation at a time

    def __call__(self, messages: list[dict[str, str]], temperature: float | None = None) -> str:
        """The next command; `temperature` overrides the backend's for this reply only."""
        ids = self.fmt.prompt(messages)
        if overflows(self, ids):
            return "EXIT"
        lines = lines_in_view(messages[-1]["content"]) if self.grammar == "code" else None
        with self._lock, at_temperature(self, temperature):
            out, _ = self._generate_ids(ids, lines)
        return self.tok.decode(out, skip_special_tokens=True)

    def score(self, messages: list[dict[str, str]], replies: list[str]) -> list[list[float]]:
        """Per reply, the log-probability of each of its tokens (its end of turn last) as the model's
        next message: how likely the model is to write it. The conversation is prefilled once."""
        torch = self.torch
        ids = self.fmt.prompt(messages)
        if overflows(self, ids):
            return [[float("-inf")] for _ in replies]
        device = self.model.device
        out = []
        with self._lock, torch.no_grad():
            res = self.model(input_ids=torch.tensor([ids], device=device), use_cache=True, logits_to_keep=1)
            cache, first = res.cache, res.logits[0, -1:].float()
            for text in replies:
                reply = self.fmt.tok.encode(text, add_special_tokens=False) + self.fmt.stop_ids
                logits = first
                if len(reply) > 1:
                    more = self.model(input_ids=torch.tensor([reply[:-1]], device=device), cache=cache, use_cache=True)
                    cache.crop(-(len(reply) - 1))  # back to the conversation alone for the next reply
                    logits = torch.cat([first, more.logits[0].float()])
                picked = torch.log_softmax(logits, dim=-1)[torch.arange(len(reply)), torch.tensor(reply)]
                out.append(picked.tolist())
        return out

    def generate_ids(self, ids: list[int], lines: list[str | None] | None = None) -> tuple[list[int], bool]:
        """(reply ids without the stop token, whether the model chose to stop) after context `ids`;
        `lines`: the code the reply edits, for the "code" grammar (`dsl.lines_in_view`).
        The ids are exactly the sampled ones: RL computes log-probs on them, never on a re-encoding."""
        with self._lock:
            return self._generate_ids(ids, lines)

    def forget_cache(self) -> None:
        """The next reply prefills its whole context (the cache is otherwise reused while it applies)."""
        with self._lock:
            self._kv.reset()

    def _generate_ids(self, ids: list[int], lines: list[str | None] | None) -> tuple[list[int], bool]:
        # An episode's context only grows (last context + reply + tool turn), so the KV cache of the
        # previous call is reused and only the new suffix is prefilled. The cache lives as long as
        # this backend, over which the weights do not change (RL builds a new one every step).
        kv = self._kv
        fed = kv.fed[0]
        if len(ids) <= len(fed) or ids[: len(fed)] != fed:
            kv.reset()
        try:
            chooser = self.chooser(lines)
            out, stopped = decode_rows(kv, {0: ids[len(kv.fed[0]):]}, {0: chooser}, self.stop, reply_limit(self))[0]
        except BaseException:
            kv.reset()  # an interrupted pass may have grown the cache past what `fed` says
            raise
        self.generated_tokens += len(out) + 1
        return out, stopped

    def chooser(self, lines: list[str | None] | None, rng: random.Random | None = None) -> Chooser:
        """`choose` for one reply: against `lines` (the "code" grammar only), drawing from `rng`
        (None: the backend's own stream). Lockstep rows each bring their own stream."""
        lines = lines if self.grammar == "code" else None
        return lambda logits, out: self.choose(logits, out, self.stop, lines, rng)

    def choose(self, logits, out: list[int], stop: int, lines: list[str | None] | None = None,
               rng: random.Random | None = None) -> int | None:
        """The next token: greedy or sampled (top-k, top-p, min-p), among those the grammar allows."""
        torch = self.torch
        rng = rng or self.rng
        sampled = self.top_k if self.temperature > 0 else 0  # sampling draws from the top-k: rank them all
        head = min(max(self.HEAD, sampled), logits.numel())
        order = torch.topk(logits, head).indices.tolist()
        if self.temperature > 0:
            top = order[: self.top_k]
            top = top[: kept_by_cutoffs(torch.softmax(logits[top], dim=0).tolist(), self.top_p, self.min_p)]
            weights = torch.softmax(logits[top] / self.temperature, dim=0).tolist()
            picks = []
            pool = list(zip(top, weights))
            while pool:  # sample without replacement until an allowed token comes up
                r, acc = rng.random() * sum(w for _, w in pool), 0.0
                for k, (tok, w) in enumerate(pool):
                    acc += w
                    if acc >= r:
                        picks.append(tok)
                        pool.pop(k)
                        break
            order = picks + order[len(top):]  # the cut and the rest by rank: the grammar may refuse all picks
        if self.grammar == "off":
            return order[0]
        decode = lambda ids: self.tok.decode(ids, skip_special_tokens=True)  # noqa: E731
        text = decode(out)
        for tok in self._allowed_order(logits, order, head):
            if grammar_allows(decode, out, text, tok, {stop}, lines):
                return tok
        return None  # nothing allowed (cannot happen while the text is a valid prefix)

    def _allowed_order(self, logits, order: list[int], head: int):
        """`order`, then the rest of the vocabulary by logit: the full sort only when the head runs out."""
        yield from order
        if head < logits.numel():
            yield from self.torch.argsort(logits, descending=True).tolist()[head:]
