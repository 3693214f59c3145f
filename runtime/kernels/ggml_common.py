"""What ggml-common.h defines for the kernels: block geometry and code tables of the weight types,
keyed by ggml's type id (gguf.GGMLQuantizationType). Geometry comes from gguf's GGML_QUANT_SIZES;
Numba kernels read it at compile time through block_bytes / block_size of a literal type id.

Kernels pass the type id as a plain int (numba specializes on int literals, not on IntEnum
members), hence the int aliases below; they are ggml's ids, not a private numbering.
"""
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from numba.extending import overload

(F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS) = (
    int(t) for t in (T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K,
                     T.Q5_K, T.Q6_K, T.IQ4_NL, T.IQ4_XS))

# kvalues_iq4nl: the 16 code values of IQ4_NL and IQ4_XS
KVALUES_IQ4NL = (-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)


def block_size(fmt):
    """Elements per block of ggml type `fmt` (Python, or jitted code with a literal fmt)."""
    return GGML_QUANT_SIZES[T(fmt)][0]


def block_bytes(fmt):
    """Bytes per block of ggml type `fmt` (Python, or jitted code with a literal fmt)."""
    return GGML_QUANT_SIZES[T(fmt)][1]


def _literal_overload(fn):
    @overload(fn, inline="always", prefer_literal=True)
    def ov(fmt):
        value = fn(fmt.literal_value)
        return lambda fmt: value
    return ov


_literal_overload(block_size)
_literal_overload(block_bytes)
