"""llama.cpp's random numbers: seed resolution and std::mt19937 with libstdc++'s
std::uniform_real_distribution draws."""
from __future__ import annotations

import math
import secrets

import numpy as np

from ggraph.errors import GGraphError

LLAMA_DEFAULT_SEED = 0xFFFFFFFF  # llama.h: "use a random seed"

_F32 = np.float32


def resolve_seed(seed) -> int:
    """llama.cpp `get_rng_seed`: None, -1 or 0xFFFFFFFF (LLAMA_DEFAULT_SEED) -> a random 32-bit seed."""
    if seed is None or seed == -1 or seed == LLAMA_DEFAULT_SEED:
        return secrets.randbits(32)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= 0xFFFFFFFF:
        raise GGraphError(f"invalid seed={seed!r}: must be None, -1 or an integer in [0, 4294967295]")
    return int(seed)


class StdMT19937:
    """`std::mt19937` seeded with a 32-bit value (numpy's legacy MT19937 seeding is the same
    `init_genrand`), plus the draws of libstdc++'s `uniform_real_distribution`:

    - double: `generate_canonical<double, 53>` takes two 32-bit outputs a, b and returns
      `double(a + b * 2^32) / 2^64` (the sum rounded to double), or nextafter(1, 0) if that is 1.0;
    - float: one output, `float(a) / 2^32`, or nextafter(1f, 0f) if that is 1.0f.
    """

    def __init__(self, seed: int):
        self.seed(seed)

    def seed(self, seed: int) -> None:
        state = np.random.RandomState(int(seed)).get_state()
        bg = np.random.MT19937()
        bg.state = {"bit_generator": "MT19937", "state": {"key": state[1], "pos": state[2]}}
        self._bg = bg

    def next_u32(self, n: int = 1) -> np.ndarray:
        return self._bg.random_raw(n)

    def uniform_double(self) -> float:
        a, b = self._bg.random_raw(2)
        r = (float(a) + float(b) * 4294967296.0) / 18446744073709551616.0
        if r >= 1.0:
            r = math.nextafter(1.0, 0.0)
        return r

    def uniform_float(self) -> np.float32:
        a = self._bg.random_raw()
        r = _F32(float(a)) / _F32(4294967296.0)
        if r >= _F32(1.0):
            r = np.nextafter(_F32(1.0), _F32(0.0))
        return r

    def __deepcopy__(self, memo):
        new = StdMT19937.__new__(StdMT19937)
        bg = np.random.MT19937()
        bg.state = self._bg.state
        new._bg = bg
        return new
