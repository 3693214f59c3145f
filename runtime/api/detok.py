"""Token ids -> text the way llama-cpp-python shows it: the concatenated pieces (llama_token_to_piece)."""
from __future__ import annotations


def detokenize(vocab, tokens, special: bool = False) -> bytes:
    """llama-cpp-python's `Llama.detokenize`: pieces joined; one leading space is dropped after a
    BOS (old llama tokenizers put it there)."""
    tokens = [int(t) for t in tokens]
    out = b"".join(vocab.token_to_piece(t, special) for t in tokens)
    if tokens and tokens[0] == vocab.bos_id and out[:1] == b" ":
        out = out[1:]
    return out


def token_str(vocab, tok: int) -> str:
    """One token's text for logprobs (bytes of an unfinished character are dropped, as there)."""
    return vocab.token_to_piece(int(tok)).decode("utf-8", errors="ignore")
