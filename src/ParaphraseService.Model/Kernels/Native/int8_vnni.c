// The integer sums of the int8 CPU kernel (Kernels/Avx2Int8Kernel.cs) with AVX512-VNNI's vpdpbusd: 64 multiply-adds of
// 8-bit operands into 32-bit sums in one instruction, where AVX2 and AVX-512BW need three (vpsignb, vpmaddubsw,
// vpmaddwd) for 32. .NET 10 exposes only the VEX-encoded AVX-VNNI, which CPUs with AVX-512 VNNI but not AVX-VNNI
// (Intel Ice Lake and Cascade Lake servers, AMD Zen 4) lack; hence this one function in C. It is built by
// ParaphraseService.Model.csproj with the system C compiler where there is one, and called only where CPUID reports
// AVX512-VNNI (NativeInt8Sums.cs); everything else is the managed kernel's.
#include <immintrin.h>
#include <stdint.h>

#define VNNI __attribute__((target("avx512f,avx512bw,avx512vnni,bmi2")))

// Bytes ahead of a stream of weight rows that are asked for early (into L2), as the managed kernel does.
#define PREFETCH_BYTES 1024

// sums[r * ldo + column[o]] = Σ_i (w[o][i] + 128) · c[r, i] for a tile of R ≤ 4 rows and O ≤ 4 weight rows: vpdpbusd
// multiplies unsigned by signed bytes, so each weight is read as q + 128 (its top bit flipped), and
// paraphrase_int8_sums takes 128 · Σ_i c[r, i] off. The sums wrap modulo 2^32, as vpdpbusd does; the true Σ q·c fits 32
// bits (the managed kernel's input limit), so the difference is exact. Each weight row is asked for `ahead` bytes early.
static inline __attribute__((always_inline)) VNNI void tile(const int8_t *c, int k, const int8_t *const *w, long ahead,
                                                            int R, int O, int32_t *sums, const long *column, long ldo)
{
    __m512i acc[4][4];
    for (int r = 0; r < R; r++)
        for (int o = 0; o < O; o++)
            acc[r][o] = _mm512_setzero_si512();
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    int i = 0;
    for (; i + 64 <= k; i += 64)
    {
        __m512i b[4], x[4];
        for (int o = 0; o < O; o++)
        {
            _mm_prefetch((const char *)(w[o] + i + ahead), _MM_HINT_T1);
            b[o] = _mm512_xor_si512(_mm512_loadu_si512(w[o] + i), flip);
        }
        for (int r = 0; r < R; r++)
            x[r] = _mm512_loadu_si512(c + (long)r * k + i);
        for (int r = 0; r < R; r++)
            for (int o = 0; o < O; o++)
                acc[r][o] = _mm512_dpbusd_epi32(acc[r][o], b[o], x[r]);
    }
    if (i < k)
    {
        // the last columns, fewer than 64: the rest are read as zeros (a code of 0 adds nothing)
        const __mmask64 m = _bzhi_u64(~0ULL, k - i);
        __m512i b[4], x[4];
        for (int o = 0; o < O; o++)
            b[o] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, w[o] + i), flip);
        for (int r = 0; r < R; r++)
            x[r] = _mm512_maskz_loadu_epi8(m, c + (long)r * k + i);
        for (int r = 0; r < R; r++)
            for (int o = 0; o < O; o++)
                acc[r][o] = _mm512_dpbusd_epi32(acc[r][o], b[o], x[r]);
    }
    for (int r = 0; r < R; r++)
        for (int o = 0; o < O; o++)
            sums[r * ldo + column[o]] = _mm512_reduce_add_epi32(acc[r][o]);
}

// One compiled loop per tile shape (the accumulators stay in registers only where R and O are constants).
#define TILE(R, O) case (R) * 8 + (O): tile(c, k, w, ahead, R, O, sums, column, ldo); return;

static VNNI void any_tile(const int8_t *c, int k, const int8_t *const *w, long ahead, int R, int O, int32_t *sums,
                          const long *column, long ldo)
{
    switch (R * 8 + O)
    {
        TILE(1, 1) TILE(1, 2) TILE(1, 3) TILE(1, 4)
        TILE(2, 1) TILE(2, 2) TILE(2, 3) TILE(2, 4)
        TILE(3, 1) TILE(3, 2) TILE(3, 3) TILE(3, 4)
        TILE(4, 1) TILE(4, 2) TILE(4, 3) TILE(4, 4)
    }
}

// Every row against four weight rows at a time, each weight row read once and from L1 for all rows after the first
// four. Where there are a few rows, reading the weight bounds the time: the four come from the four quarters of the
// outputs, each a stream asked for a little ahead (four streams far apart keep more reads from memory in flight, as in
// the managed kernel's one-row pass: 1.2x at two rows and 1.15x at four here). Where there are more, the arithmetic
// does, and four adjacent weight rows, the next four asked for meanwhile, were faster (1.1x at eight).
static VNNI void sweep(const int8_t *codes, int rows, int k, const int8_t *weights, int outputs, int32_t *sums)
{
    const int streams = rows <= 4;
    const int quarter = outputs / 4;
    const long ahead = streams ? PREFETCH_BYTES : 4L * k;
    for (int t = 0; t < quarter; t++)
    {
        const long column[4] = {streams ? t : 4L * t, streams ? quarter + t : 4L * t + 1,
                                streams ? 2L * quarter + t : 4L * t + 2, streams ? 3L * quarter + t : 4L * t + 3};
        const int8_t *w[4];
        for (int o = 0; o < 4; o++)
            w[o] = weights + column[o] * k;
        for (int r = 0; r < rows; r += 4)
            any_tile(codes + (long)r * k, k, w, ahead, rows - r < 4 ? rows - r : 4, 4, sums + (long)r * outputs, column, outputs);
    }
    for (int o = 4 * quarter; o < outputs; o++)
    {
        const long column[1] = {o};
        const int8_t *w[1] = {weights + (long)o * k};
        for (int r = 0; r < rows; r += 4)
            any_tile(codes + (long)r * k, k, w, ahead, rows - r < 4 ? rows - r : 4, 1, sums + (long)r * outputs, column, outputs);
    }
}

// Σ_i c[i], 64 codes at a time (vpdpbusd against bytes of 1).
static VNNI int32_t code_sum(const int8_t *c, int k)
{
    __m512i acc = _mm512_setzero_si512();
    const __m512i ones = _mm512_set1_epi8(1);
    for (int i = 0; i < k; i += 64)
    {
        const __mmask64 m = k - i >= 64 ? ~0ULL : _bzhi_u64(~0ULL, k - i);
        acc = _mm512_dpbusd_epi32(acc, ones, _mm512_maskz_loadu_epi8(m, c + i));
    }
    return _mm512_reduce_add_epi32(acc);
}

// sums (rows × outputs, row-major) = codes (rows × k, row-major) · weightsᵀ (outputs × k, row-major), exactly.
// Four weight rows at a time stay in L1 while every row's codes pass over them.
__attribute__((visibility("default"))) VNNI void paraphrase_int8_sums(const int8_t *codes, int rows, int k,
                                                                        const int8_t *weights, int outputs, int32_t *sums)
{
    sweep(codes, rows, k, weights, outputs, sums);
    for (int r = 0; r < rows; r++)
    {
        const int32_t offset = (int32_t)((uint32_t)code_sum(codes + (long)r * k, k) * 128u);
        for (int o = 0; o < outputs; o++)
            sums[(long)r * outputs + o] = (int32_t)((uint32_t)sums[(long)r * outputs + o] - (uint32_t)offset);
    }
}
