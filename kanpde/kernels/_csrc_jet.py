"""C source of the fused jet of one KAN layer (forward and backward).

Text compiled by :mod:`kanpde.kernels.cpu` after :mod:`kanpde.kernels._csrc_rows` (whose
micro-kernels it uses), written once for a real type ``REAL`` with a name suffix ``SFX``.
Per point, ``jet_local`` evaluates the local features (``silu`` and the ``k + 1`` non-zero
bases with their derivatives, from the uniform-grid table or precomputed) and the local
weights of every jet row; the forward contracts them with the gathered coefficient rows and
the backward returns the cotangents of the layer inputs, their gradients and channels and
of the coefficients. See :func:`kanpde.kernels.cpu.jet_forward` for the math.
"""

SOURCE = r"""
/* ---- fused jet of one KAN layer ----
 * Local features of (p, i), q < nq1, e < ke = kk + 1: F[q][e][i] = silu^(q)(h_i) for e = 0,
 * B^(q)_{idx + e - 1}(h_i) for e >= 1, read from b (N, nq1, kk, nin) and idx or, when b is
 * NULL, computed on a uniform grid: s = (h - lo) ih,
 * idx = clamp(floor(s), 0, G - 1), u = s - idx, B^(q)_{idx + r} = ih^q sum_e tab[q][r][e] u^e.
 * Jet rows c: 0 value, 1..nd gradient, 1+nd.. channels; the local weights of coefficient
 * row t = e nin + i are A[0][t] = F[0][e][i], A[1 + al][t] = grad_al F[1][e][i],
 * A[1 + nd + s][t] = quad_s F[2][e][i] + sec_s F[1][e][i]; row t is w[i][0] (silu weight)
 * for e = 0 and w[i][idx + e] for e >= 1. Everything per point is contiguous in i; the inputs
 * may be strided views: h[p][i] at x + p st[0], grad[p][al][i] at grad + p st[1] + al st[2],
 * sec at sec + p st[3] + s st[4], quad at quad + p st[5] + s st[6]. With quad NULL the
 * channels are diagonal, quad_s = sum_al diag[s][al] grad_al^2 (diag (nr, nd)), computed
 * here and differentiated into the cotangent of grad. */
static inline __attribute__((always_inline)) void jet_local_k_SFX(
    int64_t *roff, REAL *F, REAL *A, REAL *work, int64_t p, const REAL *x, const REAL *lo,
    const REAL *ih, const REAL *tab, int64_t grid, const REAL *b,
    const int64_t *idx, const REAL *grad, const REAL *sec, const REAL *quad, const int64_t *st,
    const REAL *diag, int64_t nin, int64_t nq1, const int64_t kk, int64_t nd, int64_t nr,
    int64_t nb, int64_t nout)
{
    const int64_t ke = kk + 1, rows = ke * nin;
    REAL *fl = work, *u = work + nin, *sc = work + 2 * nin;
    /* silu^(q) = q sig^(q-1) + h sig^(q) with sig^(1) = sig (1 - sig) = d1,
       sig^(2) = d1 t, sig^(3) = d1 (t^2 - 2 d1), t = 1 - 2 sig (no cancellation) */
    const REAL *xp = x + p * st[0];
    REAL *s0 = work + 3 * nin, *s1 = s0 + nin, *s2 = s1 + nin, *s3 = s2 + nin;
    #pragma omp simd
    for (int64_t i = 0; i < nin; ++i) {
        const double h = xp[i], z = kan_exp_neg(-fabs(h)), inv = 1.0 / (1.0 + z);
        const double sig = h >= 0 ? inv : z * inv, sigc = h >= 0 ? z * inv : inv;
        const double d1 = sig * sigc, t = sigc - sig;
        s0[i] = (REAL)(h * sig);
        s1[i] = (REAL)(sig + h * d1);
        s2[i] = (REAL)(d1 * (2.0 + h * t));
        s3[i] = (REAL)(d1 * (3.0 * t + h * (t * t - 2.0 * d1)));
    }
    for (int64_t q = 0; q < nq1; ++q) memcpy(F + q * rows, s0 + q * nin, sizeof(REAL) * nin);
    if (b) {
        for (int64_t i = 0; i < nin; ++i) fl[i] = (REAL)idx[p * nin + i];
        for (int64_t q = 0; q < nq1; ++q)
            memcpy(F + q * rows + nin, b + (p * nq1 + q) * kk * nin, sizeof(REAL) * kk * nin);
    } else {
        #pragma omp simd
        for (int64_t i = 0; i < nin; ++i) {
            const REAL s = (xp[i] - lo[i]) * ih[i];
            REAL v = floor(s);
            v = v >= 0 ? v : 0; /* negative or NaN */
            v = v < grid - 1 ? v : grid - 1;
            fl[i] = v;
            u[i] = s - v;
            sc[i] = 1;
        }
        for (int64_t q = 0; q < nq1; ++q) {
            for (int64_t r = 0; r < kk; ++r) {
                const REAL *t = tab + (q * kk + r) * kk;
                REAL *out = F + q * rows + (1 + r) * nin;
                #pragma omp simd
                for (int64_t i = 0; i < nin; ++i) {
                    REAL v = t[kk - 1];
                    for (int64_t e = kk - 2; e >= 0; --e) v = v * u[i] + t[e];
                    out[i] = v * sc[i];
                }
            }
            #pragma omp simd
            for (int64_t i = 0; i < nin; ++i) sc[i] *= ih[i];
        }
    }
    for (int64_t i = 0; i < nin; ++i) {
        const int64_t first = (int64_t)fl[i];
        roff[i] = i * nb * nout;
        for (int64_t e = 1; e < ke; ++e) roff[e * nin + i] = (i * nb + first + e) * nout;
    }
    memcpy(A, F, sizeof(REAL) * rows);
    for (int64_t al = 0; al < nd; ++al) {
        const REAL *ga = grad + p * st[1] + al * st[2];
        for (int64_t e = 0; e < ke; ++e) {
            const REAL *f1 = F + rows + e * nin;
            REAL *at = A + (1 + al) * rows + e * nin;
            #pragma omp simd
            for (int64_t i = 0; i < nin; ++i) at[i] = ga[i] * f1[i];
        }
    }
    if (!quad) /* diagonal channels: quad_s = sum_al diag[s][al] grad_al^2, kept in work */
        for (int64_t s = 0; s < nr; ++s) {
            REAL *qw = work + (7 + s) * nin;
            for (int64_t i = 0; i < nin; ++i) qw[i] = 0;
            for (int64_t al = 0; al < nd; ++al) {
                const REAL *ga = grad + p * st[1] + al * st[2], c = diag[s * nd + al];
                #pragma omp simd
                for (int64_t i = 0; i < nin; ++i) qw[i] += c * ga[i] * ga[i];
            }
        }
    for (int64_t s = 0; s < nr; ++s) {
        const REAL *qs = quad ? quad + p * st[5] + s * st[6] : work + (7 + s) * nin;
        const REAL *ss = sec + p * st[3] + s * st[4];
        for (int64_t e = 0; e < ke; ++e) {
            const REAL *f1 = F + rows + e * nin, *f2 = F + 2 * rows + e * nin;
            REAL *at = A + (1 + nd + s) * rows + e * nin;
            #pragma omp simd
            for (int64_t i = 0; i < nin; ++i) at[i] = qs[i] * f2[i] + ss[i] * f1[i];
        }
    }
}

/* features F (nq1, ke, nin), rows roff and local weights A (1 + nd + nr, ke nin) of point p,
 * with the spline order a compile-time constant */
static void jet_local_SFX(int64_t *roff, REAL *F, REAL *A, REAL *work, int64_t p,
                          const REAL *x, const REAL *lo, const REAL *ih, const REAL *tab,
                          int64_t grid, const REAL *b, const int64_t *idx,
                          const REAL *grad, const REAL *sec, const REAL *quad,
                          const int64_t *st, const REAL *diag, int64_t nin,
                          int64_t nq1, int64_t kk, int64_t nd, int64_t nr, int64_t nb,
                          int64_t nout)
{
#define JET_LOCAL_CASE(K) case K: jet_local_k_SFX(roff, F, A, work, p, x, lo, ih, tab, grid, \
    b, idx, grad, sec, quad, st, diag, nin, nq1, K, nd, nr, nb, nout); break;
    switch (kk) {
        JET_LOCAL_CASE(2) JET_LOCAL_CASE(3) JET_LOCAL_CASE(4) JET_LOCAL_CASE(5) JET_LOCAL_CASE(6)
        default: jet_local_k_SFX(roff, F, A, work, p, x, lo, ih, tab, grid, b, idx, grad,
                                 sec, quad, st, diag, nin, nq1, kk, nd, nr, nb, nout);
    }
#undef JET_LOCAL_CASE
}

void kan_jet_forward_SFX(const REAL *x, const REAL *lo, const REAL *ih, const REAL *tab,
                         const REAL *b, const int64_t *idx, const REAL *grad,
                         const REAL *sec, const REAL *quad, const int64_t *st,
                         const REAL *diag, const REAL *w, REAL *out,
                         int64_t n, int64_t nin, int64_t nq1, int64_t kk, int64_t nd,
                         int64_t nr, int64_t nb, int64_t nout, int64_t grid, int nt)
{
    const int64_t nc = 1 + nd + nr, rows = (kk + 1) * nin, len = rows > nout ? rows : nout;
    #pragma omp parallel num_threads(nt)
    {
        int64_t *roff = malloc(sizeof(int64_t) * rows);
        REAL *F = malloc(sizeof(REAL) * (nq1 * rows + (7 + nr) * nin));
        REAL *A = malloc(sizeof(REAL) * nc * rows), *zs = scratch_SFX(len);
        const REAL *Ab[4];
        REAL *O[4];
        #pragma omp for schedule(static)
        for (int64_t p = 0; p < n; ++p) {
            jet_local_SFX(roff, F, A, F + nq1 * rows, p, x, lo, ih, tab, grid, b, idx,
                          grad, sec, quad, st, diag, nin, nq1, kk, nd, nr, nb, nout);
            for (int64_t c0 = 0; c0 < nc; c0 += 4) {
                block_SFX(Ab, A, c0, nc, rows, zs);
                out_block_SFX(O, out + p * nc * nout, c0, nc, nout, zs + len);
                rows_gemm_SFX(O, Ab, roff, w, rows, nout);
            }
        }
        free(zs);
        free(A);
        free(F);
        free(roff);
    }
}

/* Cotangents of value (through F[q] -> F[q + 1], so nq1 must exceed the orders the rows use),
 * grad, sec, quad and (if dw) of w, for the output cotangent g (N, nc, nout). */
void kan_jet_backward_SFX(const REAL *x, const REAL *lo, const REAL *ih, const REAL *tab,
                          const REAL *b, const int64_t *idx, const REAL *grad,
                          const REAL *sec, const REAL *quad, const int64_t *st,
                          const REAL *diag, const REAL *w, const REAL *g,
                          REAL *dval, REAL *dgrad, REAL *dsec, REAL *dquad, REAL *dw,
                          REAL *part, int64_t nblk, int64_t n, int64_t nin, int64_t nq1,
                          int64_t kk, int64_t nd, int64_t nr, int64_t nb, int64_t nout,
                          int64_t grid, int nt)
{
    const int64_t nc = 1 + nd + nr, ke = kk + 1, rows = ke * nin, sz = nin * nb * nout;
    const int64_t nq = nr ? 3 : (nd ? 2 : 1), len = rows > nout ? rows : nout;
    #pragma omp parallel num_threads(nt)
    {
        int64_t *roff = malloc(sizeof(int64_t) * rows);
        REAL *F = malloc(sizeof(REAL) * (nq1 * rows + (7 + nr) * nin));
        REAL *A = malloc(sizeof(REAL) * nc * rows), *DA = malloc(sizeof(REAL) * nc * rows);
        REAL *acc = malloc(sizeof(REAL) * 3 * nin), *zs = scratch_SFX(len);
        REAL *dq = malloc(sizeof(REAL) * (nr > 0 ? nr : 1) * nin);
        REAL *gT = malloc(sizeof(REAL) * 4 * (nout > 0 ? nout : 1));
        const REAL *Ab[4], *G[4];
        REAL *D[4];
        #pragma omp for schedule(static)
        for (int64_t blk = 0; blk < nblk; ++blk) {
            REAL *dwb = dw ? part + blk * sz : 0;
            if (dw) memset(dwb, 0, sizeof(REAL) * sz);
            for (int64_t p = n * blk / nblk; p < n * (blk + 1) / nblk; ++p) {
                jet_local_SFX(roff, F, A, F + nq1 * rows, p, x, lo, ih, tab, grid, b, idx,
                              grad, sec, quad, st, diag, nin, nq1, kk, nd, nr, nb, nout);
                for (int64_t c0 = 0; c0 < nc; c0 += 4) {
                    block_SFX(G, g + p * nc * nout, c0, nc, nout, zs);
                    out_block_SFX(D, DA, c0, nc, rows, zs + len);
                    rows_dot_SFX(D, G, roff, w, rows, nout, gT);
                    if (dw) {
                        block_SFX(Ab, A, c0, nc, rows, zs);
                        rows_axpy_SFX(dwb, Ab, G, roff, rows, nout);
                    }
                }
                /* h: dv = sum_e DA0 F1 + (sum_al grad_al DA_al + sum_s sec_s DA_s) F2
                      + (sum_s quad_s DA_s) F3; grad_al: sum_e DA_al F1;
                      sec_s: sum_e DA_s F1; quad_s: sum_e DA_s F2 */
                REAL *dv = acc, *d1 = acc + nin, *d2 = acc + 2 * nin;
                for (int64_t i = 0; i < nin; ++i) dv[i] = 0;
                for (int64_t e = 0; e < ke; ++e) {
                    const REAL *f1 = F + rows + e * nin, *de = DA + e * nin;
                    #pragma omp simd
                    for (int64_t i = 0; i < nin; ++i) {
                        dv[i] += de[i] * f1[i];
                        d1[i] = 0;
                        d2[i] = 0;
                    }
                    for (int64_t al = 0; al < nd; ++al) {
                        const REAL *ga = grad + p * st[1] + al * st[2];
                        const REAL *da = DA + (1 + al) * rows + e * nin;
                        #pragma omp simd
                        for (int64_t i = 0; i < nin; ++i) d1[i] += ga[i] * da[i];
                    }
                    for (int64_t s = 0; s < nr; ++s) {
                        const REAL *qs = quad ? quad + p * st[5] + s * st[6]
                                              : F + nq1 * rows + (7 + s) * nin;
                        const REAL *ss = sec + p * st[3] + s * st[4];
                        const REAL *da = DA + (1 + nd + s) * rows + e * nin;
                        #pragma omp simd
                        for (int64_t i = 0; i < nin; ++i) {
                            d1[i] += ss[i] * da[i];
                            d2[i] += qs[i] * da[i];
                        }
                    }
                    if (nq > 1) {
                        const REAL *f2 = F + 2 * rows + e * nin;
                        #pragma omp simd
                        for (int64_t i = 0; i < nin; ++i) dv[i] += d1[i] * f2[i];
                    }
                    if (nq > 2) {
                        const REAL *f3 = F + 3 * rows + e * nin;
                        #pragma omp simd
                        for (int64_t i = 0; i < nin; ++i) dv[i] += d2[i] * f3[i];
                    }
                }
                memcpy(dval + p * nin, dv, sizeof(REAL) * nin);
                for (int64_t c = 1; c < nc; ++c) {
                    const int64_t s = c - 1 - nd;
                    REAL *o1 = c <= nd ? dgrad + (p * nd + c - 1) * nin : dsec + (p * nr + s) * nin;
                    for (int64_t i = 0; i < nin; ++i) o1[i] = 0;
                    for (int64_t e = 0; e < ke; ++e) {
                        const REAL *f1 = F + rows + e * nin, *da = DA + c * rows + e * nin;
                        #pragma omp simd
                        for (int64_t i = 0; i < nin; ++i) o1[i] += da[i] * f1[i];
                    }
                    if (c > nd) {
                        REAL *o2 = quad ? dquad + (p * nr + s) * nin : dq + s * nin;
                        for (int64_t i = 0; i < nin; ++i) o2[i] = 0;
                        for (int64_t e = 0; e < ke; ++e) {
                            const REAL *f2 = F + 2 * rows + e * nin, *da = DA + c * rows + e * nin;
                            #pragma omp simd
                            for (int64_t i = 0; i < nin; ++i) o2[i] += da[i] * f2[i];
                        }
                    }
                }
                if (!quad) /* grad_al += 2 sum_s diag[s][al] grad_al dquad_s */
                    for (int64_t al = 0; al < nd; ++al) {
                        const REAL *ga = grad + p * st[1] + al * st[2];
                        REAL *o1 = dgrad + (p * nd + al) * nin;
                        for (int64_t s = 0; s < nr; ++s) {
                            const REAL c = 2 * diag[s * nd + al], *dqs = dq + s * nin;
                            #pragma omp simd
                            for (int64_t i = 0; i < nin; ++i) o1[i] += c * ga[i] * dqs[i];
                        }
                    }
            }
        }
        free(dq);
        free(gT);
        free(zs);
        free(acc);
        free(DA);
        free(A);
        free(F);
        free(roff);
    }
    if (dw) reduce_blocks_SFX(dw, part, nblk, sz);
}
"""
