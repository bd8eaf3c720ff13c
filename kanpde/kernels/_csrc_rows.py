"""C source of the local contractions: per-point micro-kernels over gathered rows.

Text compiled by :mod:`kanpde.kernels.cpu`, written once for a real type ``REAL`` with a name
suffix ``SFX`` (instantiated for ``double``/``f64`` and ``float``/``f32``). A point touches, per
input ``i``, the ``k + 1`` coefficient rows ``w[i, idx + r, :]``; the micro-kernels take those
rows through an offset table ``roff`` and four rows ``c`` of local weights at a time:

* ``rows_gemm``: ``out_c[j] = sum_t A_c[t] w[roff[t] + j]`` (forward);
* ``rows_dot``: ``DA_c[t] = sum_j g_c[j] w[roff[t] + j]`` (cotangent of the local weights);
* ``rows_axpy``: ``dw[roff[t] + j] += sum_c A_c[t] g_c[j]`` (cotangent of the coefficients).

The generic maps ``kan_gather``, ``kan_sampled`` and ``kan_scatter`` of
:mod:`kanpde.kernels.contract` are these over all points (OpenMP over points; ``kan_scatter`` sums
fixed blocks of points into private copies, reduced in block order).
"""

SOURCE = r"""
/* ---- per-point micro-kernels over nt gathered rows w[roff[t] .. roff[t] + nout) ----
 * They take 4 rows c at a time: pointers to 4 local-weight rows A_c[t], 4 cotangent rows
 * g_c[j], 4 output rows (a missing row c >= nc points to zeros, or to scratch for outputs).
 * vec_SFX is a 32-byte vector of VL_SFX reals (GCC/Clang vector extension). */
typedef REAL vec_SFX __attribute__((vector_size(32)));
typedef REAL c4_SFX __attribute__((vector_size(4 * sizeof(REAL))));
#define VL_SFX ((int64_t)(32 / sizeof(REAL)))

static inline vec_SFX load_SFX(const REAL *p) { vec_SFX v; memcpy(&v, p, sizeof v); return v; }
static inline void store_SFX(REAL *p, vec_SFX v) { memcpy(p, &v, sizeof v); }

static void rows_gemm_SFX(REAL *const out[4], const REAL *const A[4], const int64_t *roff,
                          const REAL *w, int64_t nt, int64_t nout)
{
    /* out_c[j] = sum_t A_c[t] w[roff[t] + j]: 4 rows c x 2 vectors j in registers */
    int64_t j0 = 0;
    for (; j0 + 2 * VL_SFX <= nout; j0 += 2 * VL_SFX) {
        const vec_SFX zero = {0};
        vec_SFX c00 = zero, c01 = zero, c10 = zero, c11 = zero;
        vec_SFX c20 = zero, c21 = zero, c30 = zero, c31 = zero;
        for (int64_t t = 0; t < nt; ++t) {
            const REAL *row = w + roff[t] + j0;
            const vec_SFX r0 = load_SFX(row), r1 = load_SFX(row + VL_SFX);
            const REAL x0 = A[0][t], x1 = A[1][t], x2 = A[2][t], x3 = A[3][t];
            c00 += x0 * r0; c01 += x0 * r1; c10 += x1 * r0; c11 += x1 * r1;
            c20 += x2 * r0; c21 += x2 * r1; c30 += x3 * r0; c31 += x3 * r1;
        }
        const vec_SFX acc[4][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
        for (int cc = 0; cc < 4; ++cc) {
            store_SFX(out[cc] + j0, acc[cc][0]);
            store_SFX(out[cc] + j0 + VL_SFX, acc[cc][1]);
        }
    }
    for (; j0 < nout; ++j0) {
        REAL acc[4] = {0};
        for (int64_t t = 0; t < nt; ++t) {
            const REAL v = w[roff[t] + j0];
            for (int cc = 0; cc < 4; ++cc) acc[cc] += A[cc][t] * v;
        }
        for (int cc = 0; cc < 4; ++cc) out[cc][j0] = acc[cc];
    }
}

static void rows_dot_SFX(REAL *const DA[4], const REAL *const g[4], const int64_t *roff,
                         const REAL *w, int64_t nt, int64_t nout, REAL *gT)
{
    /* DA_c[t] = sum_j g_c[j] w[roff[t] + j]: with gT[j] = (g_0[j] .. g_3[j]) one 4-lane
       vector, four rows t at a time accumulate all c at once (no horizontal sums) */
    for (int64_t j = 0; j < nout; ++j)
        for (int cc = 0; cc < 4; ++cc) gT[4 * j + cc] = g[cc][j];
    const c4_SFX zero = {0};
    int64_t t = 0;
    for (; t + 8 <= nt; t += 8) { /* 8 independent sums hide the FMA latency */
        const REAL *r[8];
        for (int k = 0; k < 8; ++k) r[k] = w + roff[t + k];
        c4_SFX a0 = zero, a1 = zero, a2 = zero, a3 = zero, a4 = zero, a5 = zero, a6 = zero,
               a7 = zero;
        for (int64_t j = 0; j < nout; ++j) {
            c4_SFX q;
            memcpy(&q, gT + 4 * j, sizeof q);
            a0 += r[0][j] * q; a1 += r[1][j] * q; a2 += r[2][j] * q; a3 += r[3][j] * q;
            a4 += r[4][j] * q; a5 += r[5][j] * q; a6 += r[6][j] * q; a7 += r[7][j] * q;
        }
        const c4_SFX acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
        for (int k = 0; k < 8; ++k)
            for (int cc = 0; cc < 4; ++cc) DA[cc][t + k] = acc[k][cc];
    }
    for (; t < nt; ++t) {
        const REAL *row = w + roff[t];
        c4_SFX a = zero;
        for (int64_t j = 0; j < nout; ++j) {
            c4_SFX q;
            memcpy(&q, gT + 4 * j, sizeof q);
            a += row[j] * q;
        }
        for (int cc = 0; cc < 4; ++cc) DA[cc][t] = a[cc];
    }
}

static void rows_axpy_SFX(REAL *dw, const REAL *const A[4], const REAL *const g[4],
                          const int64_t *roff, int64_t nt, int64_t nout)
{
    /* dw[roff[t] + j] += sum_c A_c[t] g_c[j]: 2 vectors of each g_c in registers */
    int64_t j = 0;
    for (; j + 2 * VL_SFX <= nout; j += 2 * VL_SFX) {
        const vec_SFX q00 = load_SFX(g[0] + j), q01 = load_SFX(g[0] + j + VL_SFX);
        const vec_SFX q10 = load_SFX(g[1] + j), q11 = load_SFX(g[1] + j + VL_SFX);
        const vec_SFX q20 = load_SFX(g[2] + j), q21 = load_SFX(g[2] + j + VL_SFX);
        const vec_SFX q30 = load_SFX(g[3] + j), q31 = load_SFX(g[3] + j + VL_SFX);
        for (int64_t t = 0; t < nt; ++t) {
            REAL *d = dw + roff[t] + j;
            const REAL x0 = A[0][t], x1 = A[1][t], x2 = A[2][t], x3 = A[3][t];
            const vec_SFX s0 = (x0 * q00 + x1 * q10) + (x2 * q20 + x3 * q30);
            const vec_SFX s1 = (x0 * q01 + x1 * q11) + (x2 * q21 + x3 * q31);
            store_SFX(d, load_SFX(d) + s0);
            store_SFX(d + VL_SFX, load_SFX(d + VL_SFX) + s1);
        }
    }
    for (; j < nout; ++j)
        for (int64_t t = 0; t < nt; ++t)
            dw[roff[t] + j] += A[0][t] * g[0][j] + A[1][t] * g[1][j] + A[2][t] * g[2][j]
                               + A[3][t] * g[3][j];
}

/* the 4 rows c0 .. c0 + 3 of a (nc, len) block, zeros (or scratch) past nc */
static inline void block_SFX(const REAL *rows[4], const REAL *base, int64_t c0, int64_t nc,
                             int64_t len, const REAL *zeros)
{
    for (int cc = 0; cc < 4; ++cc) rows[cc] = c0 + cc < nc ? base + (c0 + cc) * len : zeros;
}

static inline void out_block_SFX(REAL *rows[4], REAL *base, int64_t c0, int64_t nc,
                                 int64_t len, REAL *scratch)
{
    for (int cc = 0; cc < 4; ++cc) rows[cc] = c0 + cc < nc ? base + (c0 + cc) * len : scratch;
}

static void reduce_blocks_SFX(REAL *dw, const REAL *part, int64_t nblk, int64_t sz)
{
    memcpy(dw, part, sizeof(REAL) * sz);
    for (int64_t b = 1; b < nblk; ++b)
        for (int64_t e = 0; e < sz; ++e) dw[e] += part[b * sz + e];
}

/* scratch of one thread: zeros and a sink, each max(len) long */
static REAL *scratch_SFX(int64_t len) { return calloc(2 * (len > 0 ? len : 1), sizeof(REAL)); }

/* ---- generic local contractions: rows t = i kk + r, roff[t] = (i nb + idx + r) nout, so
 * a[p] is a (nc, nin kk) block of rows ---- */
static void generic_rows_SFX(int64_t *roff, const int64_t *ip, int64_t nin, int64_t kk,
                             int64_t nb, int64_t nout)
{
    for (int64_t i = 0; i < nin; ++i)
        for (int64_t r = 0; r < kk; ++r) roff[i * kk + r] = (i * nb + ip[i] + r) * nout;
}

void kan_gather_SFX(const REAL *a, const int64_t *idx, const REAL *w, REAL *out, int64_t n,
                    int64_t nc, int64_t nin, int64_t kk, int64_t nb, int64_t nout, int nt)
{
    const int64_t rows = nin * kk, len = rows > nout ? rows : nout;
    #pragma omp parallel num_threads(nt)
    {
        int64_t *roff = malloc(sizeof(int64_t) * rows);
        REAL *zs = scratch_SFX(len);
        const REAL *A[4];
        REAL *O[4];
        #pragma omp for schedule(static)
        for (int64_t p = 0; p < n; ++p) {
            generic_rows_SFX(roff, idx + p * nin, nin, kk, nb, nout);
            for (int64_t c0 = 0; c0 < nc; c0 += 4) {
                block_SFX(A, a + p * nc * rows, c0, nc, rows, zs);
                out_block_SFX(O, out + p * nc * nout, c0, nc, nout, zs + len);
                rows_gemm_SFX(O, A, roff, w, rows, nout);
            }
        }
        free(zs);
        free(roff);
    }
}

void kan_sampled_SFX(const REAL *g, const int64_t *idx, const REAL *w, REAL *da, int64_t n,
                     int64_t nc, int64_t nin, int64_t kk, int64_t nb, int64_t nout, int nt)
{
    const int64_t rows = nin * kk, len = rows > nout ? rows : nout;
    #pragma omp parallel num_threads(nt)
    {
        int64_t *roff = malloc(sizeof(int64_t) * rows);
        REAL *zs = scratch_SFX(len), *gT = malloc(sizeof(REAL) * 4 * (nout > 0 ? nout : 1));
        const REAL *G[4];
        REAL *D[4];
        #pragma omp for schedule(static)
        for (int64_t p = 0; p < n; ++p) {
            generic_rows_SFX(roff, idx + p * nin, nin, kk, nb, nout);
            for (int64_t c0 = 0; c0 < nc; c0 += 4) {
                block_SFX(G, g + p * nc * nout, c0, nc, nout, zs);
                out_block_SFX(D, da + p * nc * rows, c0, nc, rows, zs + len);
                rows_dot_SFX(D, G, roff, w, rows, nout, gT);
            }
        }
        free(gT);
        free(zs);
        free(roff);
    }
}

void kan_scatter_SFX(const REAL *a, const int64_t *idx, const REAL *g, REAL *dw, REAL *part,
                     int64_t nblk, int64_t n, int64_t nc, int64_t nin, int64_t kk, int64_t nb,
                     int64_t nout, int nt)
{
    const int64_t rows = nin * kk, sz = nin * nb * nout, len = rows > nout ? rows : nout;
    #pragma omp parallel num_threads(nt)
    {
        int64_t *roff = malloc(sizeof(int64_t) * rows);
        REAL *zs = scratch_SFX(len);
        const REAL *A[4], *G[4];
        #pragma omp for schedule(static)
        for (int64_t b = 0; b < nblk; ++b) {
            REAL *dwb = part + b * sz;
            memset(dwb, 0, sizeof(REAL) * sz);
            for (int64_t p = n * b / nblk; p < n * (b + 1) / nblk; ++p) {
                generic_rows_SFX(roff, idx + p * nin, nin, kk, nb, nout);
                for (int64_t c0 = 0; c0 < nc; c0 += 4) {
                    block_SFX(A, a + p * nc * rows, c0, nc, rows, zs);
                    block_SFX(G, g + p * nc * nout, c0, nc, nout, zs);
                    rows_axpy_SFX(dwb, A, G, roff, rows, nout);
                }
            }
        }
        free(zs);
        free(roff);
    }
    reduce_blocks_SFX(dw, part, nblk, sz);
}

"""
