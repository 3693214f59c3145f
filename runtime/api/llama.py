"""`ggraph.Llama`: llama-cpp-python's `Llama` (0.3.x argument names and defaults) on ggraph's runtime.

    import ggraph
    llm = ggraph.Llama("smollm2", n_ctx=2048, seed=42, verbose=False)   # or model_path="x.gguf"
    llm2 = ggraph.Llama.from_model(llm.model, n_ctx=2048)               # a second context, same weights
    out = llm("The capital of France is", max_tokens=32, stop=["\\n"], temperature=0)
    print(out["choices"][0]["text"], out["choices"][0]["finish_reason"], out["usage"])
    for chunk in llm("Once upon a time", max_tokens=64, stream=True):
        print(chunk["choices"][0]["text"], end="", flush=True)
    out = llm("The cat", max_tokens=8, logprobs=3, echo=True)   # OpenAI completion logprobs
    chat = llm.create_chat_completion(messages=[{"role": "user", "content": "Hi!"}], max_tokens=64)
    print(chat["choices"][0]["message"]["content"])
    for chunk in llm.create_chat_completion(messages=[...], stream=True):
        print(chunk["choices"][0]["delta"].get("content", ""), end="")
    ids = llm.tokenize(b"Hello", add_bos=True, special=False); llm.detokenize(ids)  # -> bytes
    emb = ggraph.Llama("smollm2", embedding=True, pooling_type=1).embed(["a", "b"])   # docs/embeddings.md

One sequence per Llama (no batching of requests). The KV cache keeps the longest common prefix of
the previous call's tokens. GPU and memory-placement arguments are accepted and ignored; arguments
that would change the results and that ggraph lacks (LoRA, RoPE overrides, mirostat, ...)
raise GGraphError when set. `grammar=` takes a GBNF (or `%llguidance`) string or an object holding one
(llama-cpp-python's LlamaGrammar: its `_grammar`; or a `grammar` attribute); `response_format`
{"type": "json_object"[, "schema": {...}]} or {"type": "json_schema", "json_schema": {"schema": {...}}}
constrains a chat completion to JSON (docs/grammars.md). Errors are one-line ggraph.GGraphError, never ValueError.
"""
from __future__ import annotations

import sys
import warnings

import numpy as np

from ggraph.errors import GGraphError

from ..sampling import LLAMA_DEFAULT_SEED
from ..sampling.grammar import Grammar, grammar_text, response_format_grammar
from . import chat, completion
from .detok import detokenize as _detokenize
from .hooks import LogitsProcessorList, StoppingCriteriaList, as_hook
from .sampler import make_sampler
from .stop import normalize_stop

# llama.h's "unspecified" enum values, the defaults llama-cpp-python passes
_UNSPECIFIED = -1
_SPLIT_MODE_LAYER = 1



def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_bool(name: str, v) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise GGraphError(f"{name} must be True or False, got {v!r}")
    return bool(v)


class Llama:
    """A model and one context: completions, chat completions, tokenizer (llama-cpp-python's API)."""

    def __init__(self, model_path: str, *, n_gpu_layers: int = 0, split_mode: int = _SPLIT_MODE_LAYER,
                 main_gpu: int = 0, tensor_split=None, vocab_only: bool = False, use_mmap: bool = True,
                 use_mlock: bool = False, kv_overrides=None, seed: int = LLAMA_DEFAULT_SEED, n_ctx: int = 512,
                 n_batch: int = 512, n_ubatch: int = 512, n_threads: int | None = None,
                 n_threads_batch: int | None = None, rope_scaling_type: int | None = _UNSPECIFIED,
                 pooling_type: int = _UNSPECIFIED, attention_type: int = _UNSPECIFIED,
                 rope_freq_base: float = 0.0, rope_freq_scale: float = 0.0, yarn_ext_factor: float = -1.0,
                 yarn_attn_factor: float = 1.0, yarn_beta_fast: float = 32.0, yarn_beta_slow: float = 1.0,
                 yarn_orig_ctx: int = 0, logits_all: bool = False, embedding: bool = False,
                 offload_kqv: bool = True, flash_attn: bool = False, op_offload: bool | None = None,
                 swa_full: bool | None = None, no_perf: bool = False, last_n_tokens_size: int = 64,
                 lora_base: str | None = None, lora_scale: float = 1.0, lora_path: str | None = None,
                 numa=False, chat_format: str | None = None, chat_handler=None, draft_model=None,
                 tokenizer=None, type_k: int | None = None, type_v: int | None = None,
                 spm_infill: bool = False, verbose: bool = True, **kwargs):
        # Accepted and ignored: where weights live and how memory is managed, not what is computed
        # (n_gpu_layers, split_mode, main_gpu, tensor_split, use_mmap, use_mlock, offload_kqv, flash_attn,
        # op_offload, swa_full, numa, no_perf, n_threads_batch, lora_scale, **kwargs); logits_all too:
        # logprobs work without it. Arguments that change what is computed are refused unless left at
        # llama-cpp-python's default.
        if rope_scaling_type is None:           # llama-cpp-python reads None as unspecified
            rope_scaling_type = _UNSPECIFIED
        for name, value, default in (
                ("vocab_only", vocab_only, False), ("kv_overrides", kv_overrides, None),
                ("rope_scaling_type", rope_scaling_type, _UNSPECIFIED),
                ("attention_type", attention_type, _UNSPECIFIED), ("rope_freq_base", rope_freq_base, 0.0),
                ("rope_freq_scale", rope_freq_scale, 0.0), ("yarn_ext_factor", yarn_ext_factor, -1.0),
                ("yarn_attn_factor", yarn_attn_factor, 1.0), ("yarn_beta_fast", yarn_beta_fast, 32.0),
                ("yarn_beta_slow", yarn_beta_slow, 1.0), ("yarn_orig_ctx", yarn_orig_ctx, 0),
                ("lora_base", lora_base, None), ("lora_path", lora_path, None),
                ("draft_model", draft_model, None), ("tokenizer", tokenizer, None), ("type_k", type_k, None),
                ("type_v", type_v, None), ("spm_infill", spm_infill, False)):
            if value != default:
                raise GGraphError(f"Llama: {name}={value!r} is not supported by ggraph (leave it at {default!r})")
        for name, v, low in (("n_ctx", n_ctx, 0), ("n_batch", n_batch, 1), ("n_ubatch", n_ubatch, 1),
                             ("last_n_tokens_size", last_n_tokens_size, -1)):
            if not _is_int(v) or v < low:
                raise GGraphError(f"Llama: {name} must be an integer >= {low}, got {v!r}")
        if chat_format is not None and not isinstance(chat_format, str):
            raise GGraphError(f"Llama: chat_format must be a string, got {chat_format!r}")
        if chat_handler is not None and not callable(chat_handler):
            raise GGraphError("Llama: chat_handler must be callable")
        self.set_seed(LLAMA_DEFAULT_SEED if seed is None else seed)
        self.verbose = _check_bool("verbose", verbose)
        from ..model import Model, load
        if isinstance(model_path, Model):        # from_model: weights loaded once, shared by contexts
            self.model, self.model_path = model_path, model_path.path
        else:
            self.model_path = str(model_path)
            self.model = load(model_path)        # ggraph.runtime.model.Model
        n_ctx = int(n_ctx) or self.model.hp.n_ctx_train      # 0 = the model's training context
        self.n_batch = min(n_ctx, int(n_batch))                 # as llama-cpp-python clamps it
        # swa_full: llama-cpp-python's None keeps llama_context_default_params' true; embedding contexts
        # pack several sequences in one stream, which needs the full-size cache
        swa_full = True if swa_full is None or embedding else _check_bool("swa_full", swa_full)
        self.ctx = kwargs.get("_context") or self.model.new_context(    # _context: from_model's
            n_ctx=n_ctx, n_batch=self.n_batch, n_ubatch=min(self.n_batch, int(n_ubatch)), n_threads=n_threads,
            swa_full=swa_full)
        self.n_threads = self.ctx.n_threads
        self._n_ctx = n_ctx
        self.last_n_tokens_size = int(last_n_tokens_size)
        self.chat_format, self.chat_handler = chat_format, chat_handler
        # embeddings (api/embedding.py): pooling_type -1 = the model's default (GGUF <arch>.pooling_type, else none)
        self._embedding = _check_bool("embedding", embedding)
        from .. import embeddings
        self._pooling_type = embeddings.resolve_pooling(self.model, pooling_type) if embedding else embeddings.NONE
        self._input_ids: list[int] = []          # tokens whose K/V are in the cache, in order
        self._logits: np.ndarray | None = None   # raw logits after the last of them
        self._active = None                      # the generation allowed to go on (see _sample_loop)
        if self.verbose:
            hp = self.model.hp
            print(f"ggraph.Llama: {self.model.path} ({self.model.file.arch}, {hp.n_layer} layers, "
                  f"n_vocab={hp.n_vocab}), n_ctx={n_ctx}, n_batch={self.n_batch}, n_threads={self.n_threads}",
                  file=sys.stderr)

    @classmethod
    def from_model(cls, model, *, n_ctx: int = 512, n_batch: int = 512, n_ubatch: int = 512,
                   n_threads: int | None = None, seed: int = LLAMA_DEFAULT_SEED, last_n_tokens_size: int = 64,
                   chat_format: str | None = None, chat_handler=None, verbose: bool = True,
                   context=None, embedding: bool = False, pooling_type: int = _UNSPECIFIED) -> "Llama":
        """A Llama over an already-loaded `ggraph.load(...)` Model: its own context (KV cache, plans)
        on the model's weights, which are not loaded again. Several may share one Model (the server's
        slots); they must not decode at the same time. context: a context-like object to run on
        instead of a new Context (the server's per-slot view of its batched context)."""
        from ..model import Model
        if not isinstance(model, Model):
            raise GGraphError(f"Llama.from_model takes a model from ggraph.load(), got {type(model).__name__}")
        return cls(model, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_ubatch, n_threads=n_threads, seed=seed,
                   last_n_tokens_size=last_n_tokens_size, chat_format=chat_format, chat_handler=chat_handler,
                   verbose=verbose, embedding=embedding, pooling_type=pooling_type, _context=context)

    # -- model facts --------------------------------------------------------------------------
    def n_ctx(self) -> int:
        return self._n_ctx

    def n_vocab(self) -> int:
        return self.model.n_vocab

    def n_embd(self) -> int:
        return self.model.hp.n_embd

    def token_bos(self) -> int:
        return self.model.vocab.bos_id

    def token_eos(self) -> int:
        return self.model.vocab.eos_id

    @property
    def metadata(self) -> dict[str, str]:
        """The GGUF's scalar keys as strings (llama.cpp's llama_model_meta_val_str; arrays left out)."""
        out = {}
        for k, v in self.model.file.metadata.items():
            if isinstance(v, bool):
                out[k] = "true" if v else "false"
            elif isinstance(v, (str, int, float)):
                out[k] = str(v)
        return out

    @property
    def n_tokens(self) -> int:
        """Tokens evaluated into the KV cache."""
        return len(self._input_ids)

    @property
    def input_ids(self) -> np.ndarray:
        return np.asarray(self._input_ids, dtype=np.intc)

    def pooling_type(self) -> int:
        """llama_pooling_type of the context: 0 none, 1 mean, 2 cls, 3 last."""
        return self._pooling_type

    # -- embeddings (llama-cpp-python's; runtime/api/embedding.py) ----------------------------------
    def embed(self, input, normalize: bool = False, truncate: bool = True, return_count: bool = False):
        """Embeddings of a string or a list of strings (needs embedding=True): pooled, a list of
        n_embd floats per input; pooling none, one such list per token. normalize: euclidean."""
        from .embedding import embed
        return embed(self, input, normalize=normalize, truncate=truncate, return_count=return_count)

    def create_embedding(self, input, model: str | None = None) -> dict:
        """OpenAI's embedding response: {"object": "list", "data": [...], "model", "usage"}."""
        from .embedding import create_embedding
        return create_embedding(self, input, model=model)

    # -- tokenizer ------------------------------------------------------------------------------
    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        """UTF-8 bytes -> ids (llama_tokenize: add_bos adds the model's BOS/EOS if it wants them,
        special parses special-token text)."""
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", errors="replace")
        elif not isinstance(text, str):
            raise GGraphError(f"tokenize() takes bytes, got {type(text).__name__}")
        return self.model.tokenize(text, add_special=bool(add_bos), parse_special=bool(special))

    def detokenize(self, tokens, prev_tokens=None, special: bool = False) -> bytes:
        """ids -> bytes (pieces joined; prev_tokens is accepted and unused, as in llama-cpp-python)."""
        return _detokenize(self.model.vocab, self._check_ids(tokens, "detokenize"), special)

    def _check_ids(self, tokens, what: str) -> list[int]:
        if isinstance(tokens, np.ndarray):
            tokens = tokens.tolist()
        if not isinstance(tokens, (list, tuple)) or not all(_is_int(t) for t in tokens):
            raise GGraphError(f"{what}: expected a list of token ids, got {tokens!r:.80}")
        n = self.model.n_vocab
        for t in tokens:
            if not 0 <= t < n:
                raise GGraphError(f"{what}: token id {t} is outside the vocabulary (0..{n - 1})")
        return [int(t) for t in tokens]

    # -- state ----------------------------------------------------------------------------------
    def set_seed(self, seed: int) -> None:
        if not (_is_int(seed) and (seed == -1 or 0 <= seed <= 0xFFFFFFFF)):
            raise GGraphError(f"seed must be -1, {LLAMA_DEFAULT_SEED} (random) or an integer in "
                              f"[0, 4294967295], got {seed!r}")
        self._seed = int(seed)

    def reset(self) -> None:
        """Forget the evaluated tokens (the next call evaluates its whole prompt)."""
        self._active = None
        self._truncate(0)

    def close(self) -> None:
        self.ctx = None
        self._input_ids, self._logits = [], None

    def eval(self, tokens) -> None:
        """Append tokens to the evaluated sequence (llama-cpp-python's Llama.eval)."""
        self._active = None
        self._eval(self._check_ids(tokens, "eval"))

    def _live(self):
        if self.ctx is None:
            raise GGraphError("this Llama is closed")
        return self.ctx

    def _truncate(self, n: int) -> None:
        if n < len(self._input_ids):
            self._live()
            n = self.ctx.truncate(n)        # 0 when a window-sized SWA cache cannot keep n
            del self._input_ids[n:]
            self._logits = None

    def _eval(self, tokens: list[int], all_logits: bool = False):
        if not tokens:
            return None
        try:
            out = self._live().decode(tokens, logits_all=all_logits)
        except BaseException:
            # a failed or interrupted decode may have written part of the tokens: keep cache and ids in step
            self.ctx.truncate(min(self.ctx.n_past, len(self._input_ids)))
            raise
        self._input_ids += tokens
        self._logits = out[-1] if all_logits else out
        return out

    def _prepare(self, tokens: list[int], all_logits: bool = False):
        """Evaluate a prompt, reusing the longest common prefix already in the cache
        (llama-cpp-python's generate()). all_logits: evaluate it all and return every row."""
        self._active = None
        if not tokens:
            raise GGraphError("no prompt tokens to evaluate")
        n = 0
        if not all_logits:
            for a, b in zip(self._input_ids, tokens):
                if a != b:
                    break
                n += 1
            if n == len(tokens) == len(self._input_ids) and self._logits is not None:
                if self.verbose:
                    print("Llama.generate: full prompt already cached", file=sys.stderr)
                return None
            if n == len(tokens):
                n -= 1      # re-evaluate the last prompt token for its logits
            if n > 0 and self.verbose:
                print(f"Llama.generate: {n} prefix-match hit, remaining {len(tokens) - n} prompt tokens to eval",
                      file=sys.stderr)
        self._truncate(n)
        return self._eval(tokens[n:], all_logits)

    def _sample_loop(self, chain, logits_processor=None, stopping_criteria=None):
        """Yield (token, raw logits it was sampled from); each token is evaluated only when the
        next one is asked for. Returns 'stop' (stopping criteria) or 'length' (context full).
        A paused generation may not go on once another call has used the cache."""
        me = self._active = object()
        while True:
            logits = self._logits
            if logits is None:
                raise GGraphError("nothing to sample from: evaluate some tokens first")
            scores = logits
            if logits_processor is not None:
                scores = np.asarray(logits_processor(self.input_ids, logits.copy()), dtype=np.float32)
            tok = chain.sample(scores)
            chain.accept(tok)
            if stopping_criteria is not None and stopping_criteria(np.asarray(self._input_ids + [tok], np.intc), logits):
                return "stop"
            yield tok, logits
            if self._active is not me:
                raise GGraphError("this Llama was used by another call while this generation was paused: "
                                  "start it again")
            if len(self._input_ids) >= self._n_ctx:
                return "length"
            self._eval([tok])

    # -- sampling -------------------------------------------------------------------------------
    def _sampler(self, temperature, top_k, top_p, min_p, typical_p, repeat_penalty, frequency_penalty,
                 presence_penalty, logit_bias=None, seed=None, mirostat_mode=0, grammar=None):
        if mirostat_mode not in (0, None):
            raise GGraphError(f"mirostat_mode={mirostat_mode!r} is not supported by ggraph (0 = off)")
        chain = make_sampler(self.model.n_vocab, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                             typical_p=typical_p, repeat_penalty=repeat_penalty, frequency_penalty=frequency_penalty,
                             presence_penalty=presence_penalty, last_n=self.last_n_tokens_size, logit_bias=logit_bias,
                             seed=self._seed if seed is None else seed)
        text = grammar_text(grammar)     # a GBNF / %llguidance string, or llama-cpp-python's LlamaGrammar
        if text is not None:
            chain.grammar = Grammar(self.model.vocab, text)
        return chain

    def sample(self, top_k: int = 40, top_p: float = 0.95, min_p: float = 0.05, typical_p: float = 1.0,
               temp: float = 0.80, repeat_penalty: float = 1.0, frequency_penalty: float = 0.0,
               presence_penalty: float = 0.0, tfs_z: float = 1.0, mirostat_mode: int = 0,
               mirostat_eta: float = 0.1, mirostat_tau: float = 5.0, penalize_nl: bool = True,
               logits_processor=None, grammar=None, idx=None) -> int:
        """One token from the logits of the last evaluated token (a fresh chain: no penalty history)."""
        if idx is not None and idx != self.n_tokens - 1:
            raise GGraphError("sample: only the last evaluated token's logits are kept (idx=None)")
        chain = self._sampler(temp, top_k, top_p, min_p, typical_p, repeat_penalty, frequency_penalty,
                              presence_penalty, mirostat_mode=mirostat_mode, grammar=grammar)
        gen = self._sample_loop(chain, as_hook(logits_processor, LogitsProcessorList, "logits_processor"))
        tok, _ = next(gen)
        gen.close()
        return tok

    def generate(self, tokens, top_k: int = 40, top_p: float = 0.95, min_p: float = 0.05, typical_p: float = 1.0,
                 temp: float = 0.80, repeat_penalty: float = 1.0, reset: bool = True,
                 frequency_penalty: float = 0.0, presence_penalty: float = 0.0, tfs_z: float = 1.0,
                 mirostat_mode: int = 0, mirostat_tau: float = 5.0, mirostat_eta: float = 0.1,
                 penalize_nl: bool = True, logits_processor=None, stopping_criteria=None, grammar=None):
        """Token ids after `tokens` (end-of-generation tokens included: the caller stops);
        reset=True reuses the cached prefix, reset=False appends `tokens` to the current state."""
        tokens = self._check_ids(list(tokens), "generate")
        if reset and not tokens:
            raise GGraphError("generate: no tokens given")
        chain = self._sampler(temp, top_k, top_p, min_p, typical_p, repeat_penalty, frequency_penalty,
                              presence_penalty, mirostat_mode=mirostat_mode, grammar=grammar)
        lp = as_hook(logits_processor, LogitsProcessorList, "logits_processor")
        sc = as_hook(stopping_criteria, StoppingCriteriaList, "stopping_criteria")
        if len(tokens) + (0 if reset else self.n_tokens) > self._n_ctx:
            raise GGraphError(f"generate: {len(tokens)} tokens do not fit in n_ctx={self._n_ctx}")

        def run():
            if reset:
                self._prepare(tokens)
            else:
                self._eval(tokens)
            for tok, _ in self._sample_loop(chain, lp, sc):
                yield tok
        return run()

    # -- completions ----------------------------------------------------------------------------
    def _prompt(self, prompt) -> tuple[list[int], str]:
        """(prompt tokens, prompt text) as llama-cpp-python builds them: a str gets the model's
        BOS/EOS and special tokens parsed; a list of ids is used as it is."""
        vocab = self.model.vocab
        if isinstance(prompt, str):
            ids, text = self.model.tokenize(prompt, add_special=True, parse_special=True), prompt
        elif isinstance(prompt, (list, tuple, np.ndarray)):
            ids = self._check_ids(prompt, "prompt")
            text = _detokenize(vocab, ids).decode("utf-8", errors="replace")
        else:
            raise GGraphError(f"prompt must be a string or a list of token ids, got {type(prompt).__name__}")
        if not ids:
            if vocab.bos_id < 0:
                raise GGraphError("the prompt is empty and the model has no BOS token to start from")
            ids = [vocab.bos_id]       # llama-cpp-python starts an empty prompt from BOS
        if vocab.bos_id >= 0 and ids[:2] == [vocab.bos_id] * 2:
            warnings.warn(f'Detected duplicate leading "{vocab.token_text(vocab.bos_id)}" in prompt, this will '
                          "likely reduce response quality, consider removing it...", RuntimeWarning, stacklevel=3)
        return ids, text

    def create_completion(self, prompt, suffix: str | None = None, max_tokens: int | None = 16,
                          temperature: float = 0.8, top_p: float = 0.95, min_p: float = 0.05,
                          typical_p: float = 1.0, logprobs: int | None = None, echo: bool = False,
                          stop=[], frequency_penalty: float = 0.0, presence_penalty: float = 0.0,  # noqa: B006
                          repeat_penalty: float = 1.0, top_k: int = 40, stream: bool = False,
                          seed: int | None = None, tfs_z: float = 1.0, mirostat_mode: int = 0,
                          mirostat_tau: float = 5.0, mirostat_eta: float = 0.1, model: str | None = None,
                          stopping_criteria=None, logits_processor=None, grammar=None, logit_bias=None):
        """A text_completion dict, or with stream=True an iterator of chunk dicts (the last one
        carries finish_reason: 'stop' for an end-of-generation token or a stop string, 'length').
        stop=[] is llama-cpp-python's default (a shared list, never mutated here)."""
        if suffix is not None:
            raise GGraphError("suffix (fill-in-the-middle) is not supported yet")
        if max_tokens is not None and not _is_int(max_tokens):
            raise GGraphError(f"max_tokens must be an integer or None, got {max_tokens!r}")
        if logprobs is not None and (not _is_int(logprobs) or not 0 <= logprobs <= self.model.n_vocab):
            raise GGraphError(f"logprobs must be None or an integer in [0, {self.model.n_vocab}], got {logprobs!r}")
        if model is not None and not isinstance(model, str):
            raise GGraphError(f"model must be a string, got {model!r}")
        echo, stream = _check_bool("echo", echo), _check_bool("stream", stream)
        stops = normalize_stop(stop)
        chain = self._sampler(temperature, top_k, top_p, min_p, typical_p, repeat_penalty, frequency_penalty,
                              presence_penalty, logit_bias, seed, mirostat_mode, grammar)
        lp = as_hook(logits_processor, LogitsProcessorList, "logits_processor")
        sc = as_hook(stopping_criteria, StoppingCriteriaList, "stopping_criteria")
        self._live()
        ids, text = self._prompt(prompt)
        room = self._n_ctx - len(ids)
        if room <= 0:
            raise GGraphError(f"the prompt has {len(ids)} tokens but the context holds n_ctx={self._n_ctx} "
                              "(it needs at least one free position: raise n_ctx or shorten the prompt)")
        # None or <= 0: until the context is full, as llama-cpp-python does
        max_tokens = room if max_tokens is None or max_tokens <= 0 else min(int(max_tokens), room)
        run = completion.CompletionRun(self, ids, text, max_tokens=max_tokens, stops=stops, n_logprobs=logprobs,
                                       echo=echo, sampler=chain, logits_processor=lp, stopping_criteria=sc)
        name = model if model is not None else self.model_path
        return completion.stream(run, name) if stream else completion.response(run, name)

    def __call__(self, prompt, suffix: str | None = None, max_tokens: int | None = 16, temperature: float = 0.8,
                 top_p: float = 0.95, min_p: float = 0.05, typical_p: float = 1.0, logprobs: int | None = None,
                 echo: bool = False, stop=[], frequency_penalty: float = 0.0,  # noqa: B006
                 presence_penalty: float = 0.0, repeat_penalty: float = 1.0, top_k: int = 40,
                 stream: bool = False, seed: int | None = None, tfs_z: float = 1.0, mirostat_mode: int = 0,
                 mirostat_tau: float = 5.0, mirostat_eta: float = 0.1, model: str | None = None,
                 stopping_criteria=None, logits_processor=None, grammar=None, logit_bias=None):
        return self.create_completion(
            prompt, suffix=suffix, max_tokens=max_tokens, temperature=temperature, top_p=top_p, min_p=min_p,
            typical_p=typical_p, logprobs=logprobs, echo=echo, stop=stop, frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty, repeat_penalty=repeat_penalty, top_k=top_k, stream=stream, seed=seed,
            tfs_z=tfs_z, mirostat_mode=mirostat_mode, mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta,
            model=model, stopping_criteria=stopping_criteria, logits_processor=logits_processor, grammar=grammar,
            logit_bias=logit_bias)

    def create_chat_completion(self, messages, functions=None, function_call=None, tools=None, tool_choice=None,
                               temperature: float = 0.2, top_p: float = 0.95, top_k: int = 40, min_p: float = 0.05,
                               typical_p: float = 1.0, stream: bool = False, stop=[], seed: int | None = None,  # noqa: B006
                               response_format=None, max_tokens: int | None = None, presence_penalty: float = 0.0,
                               frequency_penalty: float = 0.0, repeat_penalty: float = 1.0, tfs_z: float = 1.0,
                               mirostat_mode: int = 0, mirostat_tau: float = 5.0, mirostat_eta: float = 0.1,
                               model: str | None = None, logits_processor=None, grammar=None, logit_bias=None,
                               logprobs: bool | None = None, top_logprobs: int | None = None):
        """A chat.completion dict, or with stream=True chat.completion.chunk dicts, from the model's
        chat template (the GGUF's tokenizer.chat_template, or chat_format='chat_template.NAME')."""
        args = dict(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p, typical_p=typical_p,
                    stream=stream, stop=stop, seed=seed, response_format=response_format, max_tokens=max_tokens,
                    presence_penalty=presence_penalty, frequency_penalty=frequency_penalty,
                    repeat_penalty=repeat_penalty, tfs_z=tfs_z, mirostat_mode=mirostat_mode,
                    mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta, model=model,
                    logits_processor=logits_processor, grammar=grammar, logit_bias=logit_bias,
                    logprobs=logprobs, top_logprobs=top_logprobs)
        if self.chat_handler is not None:      # a llama-cpp-python chat handler drives us itself
            return self.chat_handler(llama=self, messages=messages, functions=functions, function_call=function_call,
                                     tools=tools, tool_choice=tool_choice, **args)
        rf_grammar = response_format_grammar(response_format)   # json_object / json_schema -> a JSON grammar
        if rf_grammar is not None:
            if grammar is not None:
                raise GGraphError("give grammar or a JSON response_format, not both")
            grammar = rf_grammar
        if functions is not None:               # legacy functions -> tools, as llama-cpp-python converts them
            tools = [{"type": "function", "function": f} for f in functions]
        if function_call is not None:
            tool_choice = function_call if isinstance(function_call, str) else \
                {"type": "function", "function": {"name": function_call.get("name")}}
        if isinstance(tool_choice, dict):
            raise GGraphError("tool_choice naming a function needs grammar-constrained sampling: not supported yet")
        if logprobs is not None:
            _check_bool("logprobs", logprobs)
        if top_logprobs is not None and not _is_int(top_logprobs):
            raise GGraphError(f"top_logprobs must be an integer, got {top_logprobs!r}")
        stops = normalize_stop(stop)
        ids, template_stops = chat.chat_prompt(self, messages, tools, tool_choice)
        out = self.create_completion(
            ids, max_tokens=max_tokens, temperature=temperature, top_p=top_p, min_p=min_p, typical_p=typical_p,
            logprobs=(top_logprobs or 0) if logprobs else None, stop=stops + template_stops,
            frequency_penalty=frequency_penalty, presence_penalty=presence_penalty, repeat_penalty=repeat_penalty,
            top_k=top_k, stream=stream, seed=seed, tfs_z=tfs_z, mirostat_mode=mirostat_mode, model=model,
            logits_processor=logits_processor, grammar=grammar, logit_bias=logit_bias)
        return chat.to_chat_chunks(out) if stream else chat.to_chat(out)
