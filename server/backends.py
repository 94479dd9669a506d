"""Model backends: load a local model and turn a conversation into the next command.

A backend is a `dsl` policy (`backend(messages) -> str`; `backend(messages, temperature=t)` draws
one reply at `t`), so the language server, `coedit fix`, the trainer's evaluation and RL rollouts
all drive models the same way, through `dsl.run_episode`.
Both backends encode with `server.tokens.TokenFormat` (the format the model was trained on) and,
with `grammar="code"` (the default), can only write commands that apply to the code in view (read
back from the last tool turn by `dsl.lines_in_view`): a line that exists, a REPW's old text that is
on its line; `grammar="syntax"` allows any well-formed command. A conversation that no longer
fits the model's context ends with EXIT (counted in `overflows`), never with a truncated context.

* `TransformersBackend`: a checkpoint directory (`save_pretrained` output, with the `coedit.json`
  that `trainer.sft` writes); the grammar is enforced token by token with `dsl.can_extend`.
* `LlamaCppBackend`: a GGUF file through llama-cpp-python: the code grammar by a logits processor
  over `dsl.can_extend`, the syntax grammar (or a state it cannot read) with `dsl.GRAMMAR_GBNF`.

`load_backend(path)` picks by path: a `.gguf` file or a directory. Local paths only; nothing is
downloaded. Direct mode (`mode="direct"`) generates a whole program instead of one command.
Sampling (temperature > 0) cuts the candidates the same way in both (`server/sampling.py`).
Both backends also `score` given replies (each token's log-probability as the next message), and
the llama.cpp one `complete`s a forced start (`REPL 5 >>>`: the repair engine's line proposals).
The server, `coedit fix` and `trainer eval` run a backend in its own process (server/model_process.py).
"""
from __future__ import annotations

import os
import random
import threading
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from dsl import lines_in_view

from .grammar import canonical_gbnf, grammar_allows, grammar_mode
from .llama_runtime import check_cpu, plain_cpu_buffers
from .model_files import ModelError, chat_of, gguf_meta, lora_base, require_model
from .sampling import MIN_P, TOP_P, at_temperature, checked_cutoffs, kept_by_cutoffs
from .tokens import FORMATS, CHATML, LlamaTokenizer, TokenFormat

if TYPE_CHECKING:
    from .scripted import ScriptedBackend


class TransformersBackend:
    # candidates ranked per token: the best few hundred almost always hold one the grammar allows,
    # and sorting the whole vocabulary (49k for SmolLM2) took ~30 ms a token, more than a forward pass
    HEAD = 256

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
        self.context = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        self.grammar = grammar_mode(grammar) if mode == "coe" else "off"
        self.temperature, self.top_k, self.max_new_tokens = temperature, top_k, max_new_tokens
        self.top_p, self.min_p = checked_cutoffs(top_p, min_p)
        self.mode = mode
        self.rng = random.Random(seed)
        self.generated_tokens = 0
        self.overflows = 0  # replies not generated because the conversation outgrew the context
        self._past, self._fed = None, []  # KV cache of the last context, and the ids it holds
        self._lock = threading.Lock()  # jobs on two documents share one model: one generation at a time

    def __call__(self, messages: list[dict[str, str]], temperature: float | None = None) -> str:
        """The next command; `temperature` overrides the backend's for this reply only."""
        ids = self.fmt.prompt(messages)
        if _overflows(self, ids):
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
        if _overflows(self, ids):
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
            return self._generate_ids(ids, lines if self.grammar == "code" else None)

    def _generate_ids(self, ids: list[int], lines: list[str | None] | None) -> tuple[list[int], bool]:
        torch = self.torch
        stop = self.fmt.stop_ids[0]
        out: list[int] = []
        stopped = False
        # An episode's context only grows (last context + reply + tool turn), so the KV cache of the
        # previous call is reused and only the new suffix is prefilled. The cache lives as long as
        # this backend, over which the weights do not change (RL builds a new one every step).
        # Taken out while in use: the forward pass extends `past` in place, and an interrupted call
        # must not leave behind a cache that disagrees with `_fed`.
        past, fed = self._past, self._fed
        self._past, self._fed = None, []
        if past is None or len(ids) <= len(fed) or ids[: len(fed)] != fed:
            past, fed = None, []
        fed, step = list(fed), ids[len(fed):]
        with torch.no_grad():
            for _ in range(reply_limit(self)):
                res = self.model(input_ids=torch.tensor([step], device=self.model.device), cache=past, use_cache=True,
                                 logits_to_keep=1)  # only the last position's logits are used
                past = res.cache
                fed.extend(step)
                logits = res.logits[0, -1].float()
                nxt = self.choose(logits, out, stop, lines)
                if nxt is None or nxt == stop:
                    stopped = nxt == stop
                    break
                out.append(nxt)
                step = [nxt]
        self._past, self._fed = past, fed
        self.generated_tokens += len(out) + 1
        return out, stopped

    def choose(self, logits, out: list[int], stop: int, lines: list[str | None] | None = None) -> int | None:
        """The next token: greedy or sampled (top-k, top-p, min-p), among those the grammar allows."""
        torch = self.torch
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
                r, acc = self.rng.random() * sum(w for _, w in pool), 0.0
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


class LlamaCppBackend:
    HEAD = TransformersBackend.HEAD

    def __init__(self, path: str | Path, *, grammar: bool | str = True, temperature: float = 0.0, top_k: int = 40,
                 top_p: float = TOP_P, min_p: float = MIN_P, max_new_tokens: int = 128, seed: int = 0,
                 threads: int = 0, n_gpu_layers: int = 0, n_ctx: int = 0, mode: str = "coe", chat: str = "chatml"):
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
        try:
            # llama-cpp-python defaults to half the cores; a fix or an evaluation wants them all
            cores = threads or os.cpu_count() or 1
            self._open = partial(self._plain, model_path=str(model), lora_path=str(lora) if lora else None,
                                 n_threads=cores, n_threads_batch=cores, n_gpu_layers=n_gpu_layers, seed=seed,
                                 verbose=False)
            self.llm = self._open(n_ctx=n_ctx, logits_all=False)
        except ModelError:
            raise
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"{path}: llama.cpp cannot load it ({e}); is it a GGUF model?") from e
        self.context = self.llm.n_ctx()  # n_ctx=0: the context the model was trained with
        self.fmt = TokenFormat(LlamaTokenizer(self.llm), FORMATS.get(chat, CHATML))
        from dsl import GRAMMAR_GBNF
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
        self._scorer = None  # a second instance that keeps every position's logits, made on first use

    @staticmethod
    def _plain(**options):
        """A `Llama` with no extra buffer types (server/llama_runtime.py: AMX crashed LoRA models)."""
        from llama_cpp import Llama
        with plain_cpu_buffers():
            return Llama(**options)

    def __call__(self, messages: list[dict[str, str]], temperature: float | None = None) -> str:
        """The next command; `temperature` overrides the backend's for this reply only."""
        ids = self.fmt.prompt(messages)
        if _overflows(self, ids):
            return "EXIT"
        lines = lines_in_view(messages[-1]["content"]) if self.grammar_mode == "code" else None
        # the seed and temperature with their reply: two documents' jobs share one model
        with self._lock, at_temperature(self, temperature):
            self.llm.set_seed(self.rng.randrange(1, 2**31))
            return self._generate(ids, lines)

    def complete(self, messages: list[dict[str, str]], prefix: str, n: int, temperature: float = 0.7) -> list[str]:
        """`n` replies that begin with `prefix` (e.g. `REPL 5 >>>`: the model rewrites line 5), the
        first greedy, the rest drawn at `temperature`; the code grammar holds for the whole reply."""
        ids = self.fmt.prompt(messages)
        if _overflows(self, ids) or self.grammar_mode != "code":
            return []  # the syntax grammar (GBNF) cannot start mid-command
        lines = lines_in_view(messages[-1]["content"])
        start = self.fmt.tok.encode(prefix)
        out = []
        with self._lock:
            for i in range(n):
                with at_temperature(self, 0.0 if i == 0 else temperature):
                    self.llm.set_seed(self.rng.randrange(1, 2**31))
                    out.append(self._generate(ids, lines, start))
        return out

    def score(self, messages: list[dict[str, str]], replies: list[str]) -> list[list[float]]:
        """Per reply, the log-probability of each of its tokens (its end of turn last) as the model's
        next message: how likely the model is to write it. The conversation is prefilled once."""
        import numpy as np
        ids = self.fmt.prompt(messages)
        if _overflows(self, ids):
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
            out.append(tok)
        self.generated_tokens += len(out) + 1
        return self._text(out)

    def _text(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids).decode("utf-8", errors="replace")

    def _code_filter(self, out: list[int], lines: list[str | None], stop: int):
        """A llama.cpp logits processor that leaves only tokens `dsl.can_extend` allows against the
        code (the end of turn where `dsl.can_end` does): the best one when greedy, the best top-k
        when sampling, so the sampler draws among them. `out` is the reply so far (the caller
        appends each token before the next call)."""
        import numpy as np
        ends = {stop, self.llm.token_eos()}
        wanted = self.top_k if self.temperature > 0 else 1

        def allowed(text: str, tok: int) -> bool:
            return grammar_allows(self._text, out, text, tok, ends, lines)

        def process(_input_ids, scores):
            text = self._text(out)
            head = min(self.HEAD, scores.size)
            top = np.argpartition(-scores, head - 1)[:head]
            ranked = top[np.argsort(-scores[top], kind="stable")].tolist()
            keep = list(islice((t for t in ranked if allowed(text, t)), wanted))  # stop at the first `wanted`
            if not keep:  # the head holds nothing allowed: go down the whole ranking
                rest = np.argsort(-scores, kind="stable").tolist()[head:]
                keep = list(islice((t for t in rest if allowed(text, t)), wanted))
            if not keep:
                return scores  # nothing allowed (cannot happen while the text is a valid prefix)
            masked = np.full_like(scores, -np.inf)
            masked[keep] = scores[keep]
            return masked

        return process


def reply_limit(backend) -> int:
    """The most tokens one reply may take: `max_new_tokens` for a command, four times that for a
    Direct-mode program (a whole function, not one line)."""
    return backend.max_new_tokens if backend.mode == "coe" else 4 * backend.max_new_tokens


def _overflows(backend, ids: list[int]) -> bool:
    """A conversation longer than the model's context (less room for the reply) ends the episode:
    the model answers EXIT, and the backend counts it (`overflows`) so evaluations can say so."""
    if backend.context and len(ids) + reply_limit(backend) > backend.context:
        backend.overflows += 1
        return True
    return False


def load_backend(path: str | Path, **options) -> TransformersBackend | LlamaCppBackend | ScriptedBackend:
    """A backend for a local model: a `.gguf` file (llama.cpp) or a checkpoint directory
    (or `scripted:FILE`, see server/scripted.py)."""
    if str(path).startswith("scripted:"):
        from .scripted import ScriptedBackend
        return ScriptedBackend(str(path)[len("scripted:"):])
    require_model(str(path))
    path = Path(path).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelError(f"{path}: not a .gguf file")
        return LlamaCppBackend(path, **options)
    options.pop("n_gpu_layers", None)
    options.pop("n_ctx", None)
    return TransformersBackend(path, **options)

