"""The one token format: how a conversation becomes model tokens, for training and serving alike.

SFT rows (`trainer/sft.py`), RL rollouts and the inference backends (`server/backends/`) all
encode through `TokenFormat`, so a model is trained on exactly the tokens it will be served.

Each message is encoded on its own and the pieces are concatenated:

    header(role)  +  content  +  stop  +  after_stop
    e.g. ChatML:  "<|im_start|>assistant\\n" + "REPL 2 >>>    return a + b" + "<|im_end|>" + "\\n"

Encoding the pieces separately means appending a turn never re-tokenises earlier text, which RL
needs (log-probs must be of the tokens that were sampled). The loss mask covers an assistant
message's content and its stop token: the model learns to say the command, then stop.
Pure Python over any tokenizer with `encode(text, add_special_tokens=False)` and `decode(ids)`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Tokenizer(Protocol):
    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...
    def decode(self, ids: list[int], skip_special_tokens: bool = ...) -> str: ...


@dataclass(frozen=True)
class ChatFormat:
    name: str
    header: str  # with {role}
    stop: str  # the end-of-turn text the model generates
    after_stop: str = ""  # what follows the stop token in the context (not predicted)
    bos: str = ""  # once, at the very start


CHATML = ChatFormat("chatml", "<|im_start|>{role}\n", "<|im_end|>", "\n")  # SmolLM2, Qwen2.5, tiny
LLAMA3 = ChatFormat("llama3", "<|start_header_id|>{role}<|end_header_id|>\n\n", "<|eot_id|>", "", "<|begin_of_text|>")
FORMATS = {f.name: f for f in (CHATML, LLAMA3)}


class TokenFormat:
    def __init__(self, tokenizer: Tokenizer, chat: ChatFormat = CHATML):
        self.tok, self.chat = tokenizer, chat
        self._cache: dict[str, list[int]] = {}  # headers and stop tokens, encoded once
        self.stop_ids = self._fixed(chat.stop)
        if len(self.stop_ids) != 1:
            raise ValueError(f"the tokenizer must have {chat.stop!r} as a single token, got {self.stop_ids}")

    def _fixed(self, text: str) -> list[int]:
        if text not in self._cache:
            self._cache[text] = self.tok.encode(text, add_special_tokens=False) if text else []
        return self._cache[text]

    def message(self, role: str, content: str) -> tuple[list[int], list[int]]:
        """(ids, loss mask) of one message; the mask is 1 on an assistant's content and stop."""
        head = self._fixed(self.chat.header.format(role=role))
        body = self.tok.encode(content, add_special_tokens=False) if content else []
        tail = self._fixed(self.chat.after_stop)
        learn = 1 if role == "assistant" else 0
        ids = head + body + self.stop_ids + tail
        mask = [0] * len(head) + [learn] * (len(body) + 1) + [0] * len(tail)
        return ids, mask

    def encode(self, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
        """A whole conversation: (ids, loss mask)."""
        ids, mask = list(self._fixed(self.chat.bos)), [0] * len(self._fixed(self.chat.bos))
        for m in messages:
            i, k = self.message(m["role"], m["content"])
            ids += i
            mask += k
        return ids, mask

    def prompt(self, messages: list[dict[str, str]]) -> list[int]:
        """The context to generate the next assistant message from."""
        return self.encode(messages)[0] + self._fixed(self.chat.header.format(role="assistant"))

    def tool_turn(self, content: str) -> list[int]:
        """The ids that follow a sampled reply's stop token when the tool answers with `content`:
        the rest of the assistant message, the tool's (user) message, the next assistant header.
        An RL rollout appends these after each reply, so earlier ids are never re-encoded."""
        return (self._fixed(self.chat.after_stop) + self.message("user", content)[0]
                + self._fixed(self.chat.header.format(role="assistant")))

    def decode_reply(self, ids: list[int]) -> str:
        """Generated ids up to (not including) the stop token, as text."""
        stop = self.stop_ids[0]
        if stop in ids:
            ids = ids[: ids.index(stop)]
        return self.tok.decode(ids, skip_special_tokens=True)


class LlamaTokenizer:
    """llama.cpp's tokenizer behind the small interface `TokenFormat` needs."""

    def __init__(self, llm):
        self.llm = llm

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=False, special=True)

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.llm.detokenize(ids).decode("utf-8", errors="replace")
