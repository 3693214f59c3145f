"""mul_mat between activations (attention: K x Q and V x softmax), batched over heads with GQA
broadcast: out[b, m, n] = sum_k a[b // r, n, k] * x[b, m, k]. Inputs are C-contiguous float32."""
from numba import njit, prange


@njit(cache=True, parallel=True, fastmath=True)
def bmm_f32(a, x, out):
    B0, N, K = a.shape
    B1, M, _ = x.shape
    r = B1 // B0
    for bm in prange(B1 * M):
        b = bm // M
        m = bm - b * M
        ab = b // r
        for n in range(N):
            acc = 0.0
            for k in range(K):
                acc += a[ab, n, k] * x[b, m, k]
            out[b, m, n] = acc
