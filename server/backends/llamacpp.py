"""`LlamaCppBackend`: a GGUF file through llama-cpp-python, the backend the language server runs.

The code grammar is a logits processor over `dsl.can_extend` (only commands that apply to the code in
view); the syntax grammar, or a state it cannot read, is `dsl.GRAMMAR_GBNF`, which llama.cpp enforces
itself. Besides the next command it `complete`s a forced start (`REPL 5 >>>`: the repair engine's
line proposals) and `score`s given replies. llama.cpp is loaded the portable way (llama_runtime.py),
a LoRA adapter merged into its base model first (lora_merge.py).
"""
from __future__ import annotations

import os
import random
import sys
import threading
import time
from functools import partial
from pathlib import Path

from dsl import GRAMMAR_GBNF, OutOfTime, can_extend, lines_in_view

from .grammar import best_allowed, canonical_gbnf, grammar_allows, grammar_mode
from .limits import overflows, reply_limit
from .llama_runtime import check_cpu, plain_cpu_buffers
from .lora_merge import merged_gguf
from .model_files import ModelError, gguf_meta, lora_base
from .sampling import HEAD, MIN_P, TOP_P, at_temperature, checked_cutoffs
from .tokens import CHATML, FORMATS, LlamaTokenizer, TokenFormat


READ_SAMPLE = 64  # prompt tokens read to measure the reading rate
ATTENTION_COST = 2.0  # an attention operation's time against a weight product's (`_work`)


class LlamaCppBackend:
    HEAD = HEAD  # the best tokens ranked against the grammar first (sampling.py)

    def __init__(self, path: str | Path, *, grammar: bool | str = True, temperature: float = 0.0, top_k: int = 40,
                 top_p: float = TOP_P, min_p: float = MIN_P, max_new_tokens: int = 128, seed: int = 0,
                 threads: int = 0, n_gpu_layers: int = 0, n_ctx: int = 0, mode: str = "coe", chat: str = "chatml",
                 merge_lora: bool = True, parallel: bool = True):
        try:
            from llama_cpp import LlamaGrammar
        except ImportError as e:
            raise ModelError("the llama.cpp backend needs llama-cpp-python: pip install 'coedit[server]'") from e
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        meta = gguf_meta(path)
        chat = meta.get("chat", chat)
        # a LoRA adapter GGUF (`trainer export --lora`) goes on top of a base GGUF from a pip package
        model, lora = (lora_base(meta["lora_base"], path), path) if meta.get("lora_base") else (path, None)
        check_cpu()  # a library built for another CPU is refused with its rebuild command, not run
        # llama-cpp-python defaults to half the cores; a fix or an evaluation wants them all
        cores = threads or os.cpu_count() or 1
        options = dict(n_threads=cores, n_threads_batch=cores, n_gpu_layers=n_gpu_layers, seed=seed, verbose=False)
        self.llm = None
        if lora is not None and merge_lora:  # one plain model runs 1.6-2.4x as fast (lora_merge.py)
            try:
                self._open = partial(self._plain, model_path=str(merged_gguf(model, lora)), **options)
                self.llm = self._open(n_ctx=n_ctx, logits_all=False)
            except (ModelError, ValueError, RuntimeError) as e:
                print(f"coedit: {e}; running the adapter unmerged (slower)", file=sys.stderr)
        try:
            if self.llm is None:
                self._open = partial(self._plain, model_path=str(model), lora_path=str(lora) if lora else None,
                                     **options)
                self.llm = self._open(n_ctx=n_ctx, logits_all=False)
        except ModelError:
            raise
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"{path}: llama.cpp cannot load it ({e}); is it a GGUF model?") from e
        self.context = self.llm.n_ctx()  # n_ctx=0: the context the model was trained with
        self.fmt = TokenFormat(LlamaTokenizer(self.llm), FORMATS.get(chat, CHATML))
        self._bytes = {} if _byte_level(self.llm) else None  # token -> its bytes (`_text`)
        self.grammar_mode = grammar_mode(grammar) if mode == "coe" else "off"
        self.grammar = (LlamaGrammar.from_string(canonical_gbnf(GRAMMAR_GBNF), verbose=False)
                        if self.grammar_mode != "off" else None)
        self.temperature, self.top_k, self.max_new_tokens, self.mode = temperature, top_k, max_new_tokens, mode
        self.top_p, self.min_p = checked_cutoffs(top_p, min_p)
        # llama-cpp-python builds a new sampler, seeded with the Llama's seed, at every generate():
        # a fixed seed would replay the same random draws in every reply (samples of one task
        # nearly identical), and seed 0 means "random" to it (nothing reproducible). So each reply
        # gets its own seed, drawn from a stream that `seed` makes reproducible.
        self.rng = random.Random(seed)
        self.generated_tokens = 0
        self.overflows = 0  # replies not generated because the conversation outgrew the context
        self._lock = threading.Lock()  # jobs on two documents share one model: one generation at a time
        self.parallel = parallel  # `complete` decodes its replies side by side (llama_batch.py)
        self._parallel = None  # llama_batch.ParallelSampler
        self._scorer = None  # a second instance that keeps every position's logits, made on first use
        self.read_rate = 0.0  # prompt work read per second, measured on a prompt's own tokens (read_seconds)
        # a `time.monotonic()` value no reply may outlast (the repair engine sets its fix's end): a reply
        # not whole by then raises dsl.OutOfTime. The model process sets it per request.
        self.deadline: float | None = None
        self._attention_scale: float | None = None  # attention's work per earlier position (_work)

    @staticmethod
    def _plain(**options):
        """A `Llama` with no extra buffer types (server/llama_runtime.py: AMX crashed LoRA models), its
        context open to several sequences (llama_batch.py: replies decoded side by side)."""
        from llama_cpp import Llama

        from .llama_batch import shared_sequences
        with plain_cpu_buffers(), shared_sequences():
            return Llama(**options)

    def __call__(self, messages: list[dict[str, str]], temperature: float | None = None) -> str:
        """The next command; `temperature` overrides the backend's for this reply only."""
        ids = self.fmt.prompt(messages)
        if overflows(self, ids):
            return "EXIT"
        lines = lines_in_view(messages[-1]["content"]) if self.grammar_mode == "code" else None
        # the seed and temperature with their reply: two documents' jobs share one model
        with self._lock, at_temperature(self, temperature):
            self.llm.set_seed(self.rng.randrange(1, 2**31))
            return self._generate(ids, lines)

    def complete(self, messages: list[dict[str, str]], prefix: str, n: int, temperature: float = 0.7) -> list[str]:
        """`n` replies that begin with `prefix` (e.g. `REPL 5 >>>`: the model rewrites line 5), the
        first greedy, the rest drawn at `temperature`; the code grammar holds for the whole reply."""
        return self.complete_each(messages, [(prefix, n)], temperature)[0]

    def complete_each(self, messages: list[dict[str, str]], asks: list[tuple[str, int]],
                      temperature: float = 0.7) -> list[list[str]]:
        """`complete` for each (prefix, n) of `asks`, all decoded side by side (llama_batch.py) where
        they fit; one list of replies per ask, in order."""
        ids = self.fmt.prompt(messages)
        if overflows(self, ids) or self.grammar_mode != "code":
            return [[] for _ in asks]  # the syntax grammar (GBNF) cannot start mid-command
        lines = lines_in_view(messages[-1]["content"])
        # a line the code does not have, say, lets no token follow: nothing to draw
        asks = [(prefix, n if can_extend(prefix, lines) else 0) for prefix, n in asks]
        starts = [self.fmt.tok.encode(prefix) for prefix, _ in asks]
        total, longest = sum(n for _, n in asks), max((len(s) for s in starts), default=0)
        with self._lock:
            if self.parallel and total > 1 and self._sampler().fits(len(ids), total, reply_limit(self), longest):
                import numpy as np
                from .llama_batch import code_check
                ends = {self.fmt.stop_ids[0], self.llm.token_eos()}
                flat = [start for start, (_, n) in zip(starts, asks) for _ in range(n)]
                temps = [0.0 if i == 0 else temperature for _, n in asks for i in range(n)]
                replies = self._parallel.sample(
                    ids, flat, temps, limit=reply_limit(self), top_k=self.top_k, top_p=self.top_p, min_p=self.min_p,
                    allowed=code_check(self._text, lines, ends), stops=ends, head=self.HEAD,
                    rng=np.random.default_rng(self.rng.randrange(1, 2**31)), deadline=self.deadline)
                self.generated_tokens += sum(len(r) - len(start) + 1 for r, start in zip(replies, flat))
                texts = iter([self._text(r) for r in replies])
                return [[next(texts) for _ in range(n)] for _, n in asks]
            out = []
            for start, (_, n) in zip(starts, asks):
                out.append([])
                for i in range(n):
                    with at_temperature(self, 0.0 if i == 0 else temperature):
                        self.llm.set_seed(self.rng.randrange(1, 2**31))
                        out[-1].append(self._generate(ids, lines, start))
            return out

    def _sampler(self):
        """The side-by-side sampler (over the model's own context), made on first use."""
        if self._parallel is None:
            from .llama_batch import ParallelSampler
            self._parallel = ParallelSampler(self.llm)
        return self._parallel

    def read_seconds(self, messages: list[dict[str, str]]) -> float:
        """About how long reading `messages` would take before the reply's first token: the tokens
        not already in the cache over the measured reading rate. The rate is measured on the prompt's
        own next tokens, which then stay in the cache for the reply (no work is thrown away); a
        5,600-token QuixBugs prompt takes 38 s on 2 cores, past a 30 s fix's budget."""
        ids = self.fmt.prompt(messages)
        if overflows(self, ids):
            return 0.0
        with self._lock:
            llm = self.llm
            cached = llm.longest_token_prefix(llm._input_ids, ids[:-1])  # the last one is read with the reply
            if len(ids) - cached > 2 * READ_SAMPLE:
                llm.n_tokens = cached
                t = time.monotonic()
                llm.eval(ids[cached: cached + READ_SAMPLE])
                self.read_rate = self._work(cached, cached + READ_SAMPLE) / max(time.monotonic() - t, 1e-6)
                cached += READ_SAMPLE
        return self._work(cached, len(ids)) / self.read_rate if self.read_rate else 0.0

    def _work(self, start: int, end: int) -> float:
        """Reading prompt positions start..end, in units of one token's weight multiplications:
        attention adds work growing with the position (4·layers·width per earlier token, against
        2 per weight), which doubles a 135M model's cost per token by about 3,000 tokens in; the
        first tokens' rate alone said 27 s for QuixBugs' 5,600-token `wrap`, and it took 38.
        Attention's operations count ATTENTION_COST times a weight's: they run in float over the
        KV cache, the weights' in quantized kernels (the merged model read `wrap` in about 24 s where
        the count alone said 17)."""
        if self._attention_scale is None:
            import llama_cpp
            model = self.llm.model
            weights = llama_cpp.llama_model_n_params(model) - self.llm.n_vocab() * self.llm.n_embd()
            per_position = 4 * llama_cpp.llama_model_n_layer(model) * self.llm.n_embd()
            self._attention_scale = ATTENTION_COST * per_position / max(2 * weights, 1)
        n = end - start
        return n + self._attention_scale * (start + end - 1) * n / 2

    def score(self, messages: list[dict[str, str]], replies: list[str]) -> list[list[float]]:
        """Per reply, the log-probability of each of its tokens (its end of turn last) as the model's
        next message: how likely the model is to write it. The conversation is prefilled once."""
        import numpy as np
        ids = self.fmt.prompt(messages)
        if overflows(self, ids):
            return [[float("-inf")] for _ in replies]
        out = []
        with self._lock:
            # generation keeps the last position's logits only; scoring needs them all, and turning
            # that on for generation would compute the vocabulary's logits at every prompt token
            if self._scorer is None:
                self._scorer = self._open(n_ctx=self.context, logits_all=True)
            llm = self._scorer
            llm.reset()
            llm.eval(ids)
            for text in replies:
                reply = self.fmt.tok.encode(text) + self.fmt.stop_ids
                llm.n_tokens = len(ids)  # back to the conversation alone: eval() drops the cache past it
                llm.eval(reply)
                logits = llm.scores[len(ids) - 1: len(ids) - 1 + len(reply)].astype(np.float64)
                top = logits.max(axis=1)
                norm = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
                out.append((logits[np.arange(len(reply)), reply] - norm).tolist())
        return out

    def _generate(self, ids: list[int], lines: list[str | None] | None = None, start: list[int] = ()) -> str:
        from llama_cpp import LogitsProcessorList

        from .llama_batch import read_prompt
        deadline = self.deadline
        # the prompt read here in chunks, the deadline checked between; `generate` finds it cached
        read_prompt(self.llm, ids + list(start), deadline)
        stop = self.fmt.stop_ids[0]
        out: list[int] = list(start)  # a forced start is part of the reply the grammar checks
        limit = reply_limit(self)
        # with the code in view, the grammar is checked in Python on the best-ranked tokens; the
        # syntax-only GBNF would have nothing left to remove
        code = LogitsProcessorList([self._code_filter(out, lines, stop)]) if lines is not None else None
        # top_p and min_p always passed: llama-cpp-python's defaults are its own to change
        for tok in self.llm.generate(ids + list(start), temp=self.temperature, top_k=self.top_k, top_p=self.top_p,
                                     min_p=self.min_p, reset=True,
                                     grammar=None if code else self.grammar, logits_processor=code):
            if tok == stop or tok == self.llm.token_eos() or len(out) >= limit:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise OutOfTime("the fix's time ran out while the model wrote its command")
            out.append(tok)
        self.generated_tokens += len(out) + 1
        return self._text(out)

    def _text(self, ids: list[int]) -> str:
        """The reply's text. The grammar asks for it after every candidate token (30,000 times in 64
        line samples), and a byte-level BPE vocabulary's tokens decode to bytes that simply follow
        each other: each token's bytes are looked up once, not the whole reply detokenized again."""
        if self._bytes is None:
            return self.llm.detokenize(ids).decode("utf-8", errors="replace")
        pieces = self._bytes
        for t in ids:
            if t not in pieces:
                pieces[t] = self.llm.detokenize([t])
        return b"".join(pieces[t] for t in ids).decode("utf-8", errors="replace")

    def _code_filter(self, out: list[int], lines: list[str | None], stop: int):
        """A llama.cpp logits processor that leaves only tokens `dsl.can_extend` allows against the
        code (the end of turn where `dsl.can_end` does): the best one when greedy, the best top-k
        when sampling, so the sampler draws among them. `out` is the reply so far (the caller
        appends each token before the next call)."""
        import numpy as np
        ends = {stop, self.llm.token_eos()}
        wanted = self.top_k if self.temperature > 0 else 1

        def process(_input_ids, scores):
            text = self._text(out)
            keep = best_allowed(scores, wanted, lambda t: grammar_allows(self._text, out, text, t, ends, lines),
                                self.HEAD)
            if not keep:
                return scores  # nothing allowed (cannot happen while the text is a valid prefix)
            masked = np.full_like(scores, -np.inf)
            masked[keep] = scores[keep]
            return masked

        return process


def _byte_level(llm) -> bool:
    """Whether the model's vocabulary is byte-level BPE (SmolLM2's, Qwen's), whose tokens' bytes
    concatenate to the text's; SentencePiece's leading space does not."""
    import llama_cpp
    return llama_cpp.llama_vocab_type(llama_cpp.llama_model_get_vocab(llm.model)) == llama_cpp.LLAMA_VOCAB_TYPE_BPE
