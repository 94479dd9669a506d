"""`ParallelSampler`: several replies to one conversation decoded side by side, one llama.cpp batch
per step, the conversation read once.

The repair engine's line proposals ask for N rewrites of one line (`REPL 5 >>>` forced). Drawn one
after another, each reply's tokens cost a forward pass of their own, and a 135M model's pass on
2 cores is mostly fixed cost (reading the weights): a batch of 8 tokens, one per reply, costs far
less than 8 passes (`python bench/parallel_sampling.py` measures the ratio). So every reply gets its
own sequence in the model's llama.cpp context, whose cache the sequences share (`kv_unified`): the
prompt is read once into sequence 0 (or found there, read for an earlier reply), copied to the
others without any compute, and each step decodes one token for every reply still going. Replies
that are alike so far share that token's cell too (`alike`): most samples of a line repeat one
another, and on 2 cores a batch costs about in proportion to its tokens.

Sampling is done here, in Python, the way `LlamaCppBackend` has llama.cpp do it for one reply: the
code grammar's filter over the best-ranked tokens (the best one when greedy, the best `top_k`
otherwise), then top-p and min-p on their probabilities, then the temperature (sampling.py). One
difference: replies alike so far draw without replacement while the cut leaves a token none of
them has taken (`ParallelSampler._pick`), so fewer samples repeat another.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

from dsl import OutOfTime

from .grammar import best_allowed, grammar_allows
from .sampling import HEAD, kept_by_cutoffs

MAX_SEQUENCES = 16  # replies decoded side by side at most; more are drawn in further rounds
READ_CHUNK = 128  # prompt tokens read per call, the deadline checked between: as fast as 512 at a time
LAST_CHUNK = 8  # near the deadline, before a chunk's time is known


def read_prompt(llm, ids: list[int], deadline: float | None = None) -> None:
    """`ids` into sequence 0, the way llama-cpp-python's `generate` reads a prompt: what is cached
    already is kept, and the last token is always read again (its logits are the reply's first
    draw). In chunks of READ_CHUNK tokens, so that a long prompt stops at `deadline` (a
    `time.monotonic()` value): OutOfTime where it passes first. A chunk cannot be stopped once
    begun (the last 128 tokens of a 900-token prompt take about 0.45 s on 2 cores), so in the
    last second a chunk is only as long as the previous one's rate says fits the time left."""
    llm.n_tokens = llm.longest_token_prefix(llm._input_ids, ids[:-1])
    per_token = 0.0  # seconds a token of the previous chunk took
    while llm.n_tokens < len(ids):
        size = READ_CHUNK
        if deadline is not None:
            left = deadline - time.monotonic()
            if left < 1.0:
                size = min(size, int(left / per_token) if per_token else LAST_CHUNK)
            if left <= 0 or size < 1:
                raise OutOfTime("the fix's time ran out while the model read its prompt")
        t = time.monotonic()
        chunk = ids[llm.n_tokens: llm.n_tokens + size]
        llm.eval(chunk)
        per_token = (time.monotonic() - t) / len(chunk)


@contextmanager
def shared_sequences(n: int = MAX_SEQUENCES):
    """While open, every `llama_cpp.Llama` made has a context for `n` sequences over one cache
    (`kv_unified`), so that `ParallelSampler` can copy the prompt a reply was read for into the
    others. `Llama.__init__` takes its context parameters from `llama_context_default_params()`
    and does not expose these two; this wraps that one function, as `plain_cpu_buffers` does the
    model's. One sequence decodes as fast in such a context (13.8 against 13.8 ms a token, median
    of 6 loads each: docs/results.md, seventh pass)."""
    import llama_cpp.llama_cpp as lib
    made = lib.llama_context_default_params

    def params():
        p = made()
        p.n_seq_max, p.kv_unified = n, True
        return p
    lib.llama_context_default_params = params
    try:
        yield
    finally:
        lib.llama_context_default_params = made


class ParallelSampler:
    """Side-by-side replies in a `Llama`'s own context (made under `shared_sequences`): sequence 0
    is the one llama-cpp-python reads prompts into, so a prompt read here is cached for the next
    `generate` and the other way round."""

    def __init__(self, llm, *, sequences: int = MAX_SEQUENCES):
        from llama_cpp import _internals
        self.llm, self.sequences = llm, min(sequences, llm.context_params.n_seq_max)
        self.n_ctx, self.n_batch = llm.n_ctx(), llm.n_batch
        # a token may go to several sequences at once: replies that are still alike share their cells
        self.batch = _internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=self.sequences, verbose=False)
        self.n_vocab = llm.n_vocab()

    def fits(self, prompt: int, n: int, limit: int, start: int) -> bool:
        """Whether `n` replies of up to `limit` tokens (a `start`-token forced start included) after
        a `prompt`-token conversation fit the cache, and a round's forced starts one batch."""
        k = min(n, self.sequences)
        return prompt + k * limit <= self.n_ctx and k * start <= self.n_batch

    def sample(self, ids: list[int], starts: list[list[int]], temperatures: list[float], *, limit: int, top_k: int,
               top_p: float, min_p: float, allowed, stops: set[int], rng: np.random.Generator,
               head: int = HEAD, deadline: float | None = None) -> list[list[int]]:
        """One reply (a token list, its forced start first, no stop token) per start, drawn at its
        temperature (0: greedy), to the prompt `ids`. `allowed(out, tok)` is the grammar's check of
        token `tok` after the reply so far `out`, asked of the `head` best tokens first (grammar.py's
        `best_allowed`); `limit` counts the whole reply, start included. OutOfTime where `deadline`
        (`time.monotonic()`) passes before the replies are whole: between the prompt's chunks and
        between steps, so no call outlasts it by more than a chunk's read or one step."""
        replies: list[list[int]] = []
        for lo in range(0, len(starts), self.sequences):
            replies += self._round(list(ids), starts[lo: lo + self.sequences], temperatures[lo: lo + self.sequences],
                                   limit, (top_k, top_p, min_p, head), allowed, stops, rng, deadline)
        return replies

    # -- one round: up to `sequences` replies side by side ----------------------------------------
    def _round(self, prompt, starts, temps, limit, cutoffs, allowed, stops, rng, deadline) -> list[list[int]]:
        k, n = len(starts), len(prompt)
        last = self._read(prompt, deadline)
        ctx = self.llm._ctx
        for s in range(1, k):  # the other replies see the same prompt: their cells are sequence 0's
            ctx.kv_cache_seq_cp(0, s, 0, n)
        outs = [list(start) for start in starts]
        try:
            rows = self._decode(alike([(s, start, start, n) for s, start in enumerate(starts) if start]))
            rows.update({s: last for s, start in enumerate(starts) if not start})
            going = list(range(k))
            while going:
                if deadline is not None and time.monotonic() >= deadline:
                    raise OutOfTime("the fix's time ran out while the model wrote lines")
                step, groups = [], {}
                for s in going:  # replies alike so far (the same tokens after one prompt: one logits row)
                    groups.setdefault(tuple(outs[s]), []).append(s)
                for members in groups.values():
                    toks = self._pick(rows[members[0]], outs[members[0]], [temps[s] for s in members], cutoffs,
                                      allowed, rng)
                    for s, tok in zip(members, toks):
                        if tok is None or tok in stops:
                            continue
                        outs[s].append(tok)
                        if len(outs[s]) < limit:
                            step.append((s, outs[s], [tok], n + len(outs[s]) - 1))
                going = [s for s, *_ in step]
                rows = self._decode(alike(step))
        finally:
            for s in range(1, k):
                ctx.kv_cache_seq_rm(s, -1, -1)
            # sequence 0 keeps the prompt but its last token, as llama-cpp-python's records then say: the
            # context's logits are a reply's now, and `generate` samples an exact cache hit from them
            # as they are (after line samples of a state, the greedy episode from that state began
            # with a command drawn from the last sample's logits: 9 of 12 MBPP tasks in a one-off
            # check); this way the next reply to this prompt reads its last token again
            ctx.kv_cache_seq_rm(0, n - 1, -1)
            self.llm.n_tokens = n - 1
        return outs

    def _decode(self, pieces: list[tuple[list[int], list[int], int]]) -> dict[int, np.ndarray]:
        """One batch: each (sequences, tokens, position of the first) appended to all its sequences
        (their cells shared); the logits after each piece's last token, by sequence."""
        if not pieces:
            return {}
        b, i, at = self.batch.batch, 0, {}
        for seqs, toks, pos in pieces:
            for j, tok in enumerate(toks):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos + j, len(seqs), j == len(toks) - 1
                for m, s in enumerate(seqs):
                    b.seq_id[i][m] = s
                i += 1
            at[tuple(seqs)] = i - 1
        b.n_tokens = i
        self.llm._ctx.decode(self.batch)
        rows = {}
        for seqs, j in at.items():
            row = self._logits(j)
            rows.update((s, row) for s in seqs)  # read only: each reply draws from it on its own
        return rows

    def _read(self, prompt: list[int], deadline: float | None = None) -> np.ndarray:
        """Sequence 0 holds `prompt` (`read_prompt`); the logits after its last token."""
        llm = self.llm
        read_prompt(llm, prompt, deadline)
        return np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(self.n_vocab,)).copy()

    def _logits(self, i: int) -> np.ndarray:
        ptr = self.llm._ctx.get_logits_ith(i)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    @staticmethod
    def _pick(scores: np.ndarray, out: list[int], temps: list[float], cutoffs: tuple[int, float, float, int],
              allowed, rng: np.random.Generator) -> list[int | None]:
        """The next token of each of a group of replies alike so far (one logits row), at its own
        temperature: the best allowed one when greedy; otherwise drawn among the best `top_k` allowed,
        cut by top-p and min-p. None: nothing is allowed.

        Drawn replies take a token no other reply of the group has taken while the cut leaves one
        (a draw without replacement), then draw freely: a 135M model's samples of a line repeated
        one another at any temperature (9-10 distinct programs of 36 samples), and a reply that
        stays alike with another costs a test of nothing new. Each reply is still drawn from the
        model's own cut distribution, only steered off the tokens already taken."""
        top_k, top_p, min_p, head = cutoffs
        # the grammar ranks the row once for the group; the best allowed token is the greedy one
        keep = best_allowed(scores, top_k if max(temps) > 0 else 1, lambda t: allowed(out, t), head)
        if not keep:
            return [None] * len(temps)
        taken = {keep[0]} if min(temps) <= 0 else set()
        if len(keep) > 1:
            z = scores[keep].astype(np.float64)
            p = np.exp(z - z.max())
            cut = kept_by_cutoffs((p / p.sum()).tolist(), top_p, min_p)
        picks = []
        for t in temps:
            if t <= 0 or len(keep) == 1:
                picks.append(keep[0])
                continue
            zt = z[:cut] / t
            q = np.exp(zt - zt.max())
            free = np.array([tok not in taken for tok in keep[:cut]])
            if free.any():
                q = q * free
            tok = keep[int(rng.choice(cut, p=q / q.sum()))]
            taken.add(tok)
            picks.append(tok)
        return picks


def alike(pieces: list[tuple[int, list[int], list[int], int]]) -> list[tuple[list[int], list[int], int]]:
    """(sequence, its reply so far, the tokens to append, position of the first) grouped by reply:
    replies alike so far (most samples of one line are: a 135M model's line rewrites repeat 3 times
    in 4) have the same cells and the same logits, so one batch entry serves them all."""
    groups: dict[tuple[int, ...], tuple[list[int], list[int], int]] = {}
    for s, reply, toks, pos in pieces:
        groups.setdefault(tuple(reply), ([], list(toks), pos))[0].append(s)
    return list(groups.values())


def code_check(decode, lines, ends):
    """`allowed(out, tok)` for `ParallelSampler.sample`: the code grammar against `lines`. A step asks
    about many tokens after one reply: its text is decoded once."""
    text: dict[tuple[int, ...], str] = {}

    def allowed(out: list[int], tok: int) -> bool:
        key = tuple(out)
        if key not in text:
            text[key] = decode(out)
        return grammar_allows(decode, out, text[key], tok, ends, lines)
    return allowed
