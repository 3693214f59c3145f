"""The SIMD layer of the Numba kernels (ggml-cpu's simd-mappings.h role): vector types and
intrinsics emitting LLVM vector IR.

  core.py    vector types, IR helpers, the intrinsic factories
  u8.py      byte vectors: loads, bit ops, nibble / code-table unpacking, the int8 dot (VNNI)
  i32.py     int32 lanes: scales, corrections, exact reductions
  f32.py     float lanes: F32x16 / F32x4 arithmetic, llama.cpp's reduction trees, float -> int8
  scalar.py  scalars at byte offsets, fp16 rounding, prefetch
"""
