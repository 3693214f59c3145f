"""Text: everything that needs only the GGUF's metadata, not its weights.

    vocab.py          Vocab (llama-vocab.cpp: tokenize, detokenize, specials) and StreamDecoder
    bpe.py, spm.py    the two tokenizer models (byte-level BPE, SentencePiece)
    pretokenize.py    llama.cpp's pre-tokenizer regexes per `tokenizer.ggml.pre`
    chat_template.py  the GGUF's jinja2 chat template
"""
from .vocab import StreamDecoder, Vocab

__all__ = ["Vocab", "StreamDecoder"]
