// Weight gradient of a "same"-padded, stride-1 depthwise convolution in float32 for mmlk's
// depthwise op (mmlk/ops/depthwise.py; compiled and loaded by mmlk/ops/native.py):
//
//   dL/dw[c, i, j] = sum_{n,h,w} x[n, c, h + i - ph, w + j - pw] * g[n, c, h, w]  (x = 0 outside)
//
// Why a kernel of our own: aten's CPU weight gradient is 5-200x slower than its forward for
// 51x5 / 5x51 / 31x31 kernels, and the grouped-convolution reformulation with the operands
// swapped still left the backward 2.3-3x the forward. Here a tile of A x B kernel taps for one vector of channels lives
// in registers while the loop walks one gradient row: per pixel one load of g and A * B fused
// multiply-adds whose x operands come from a zero-padded copy of the sample's x in cache, so
// it runs at the FMA units' rate, as oneDNN's forward does.
//
// Threads: an OpenMP loop over channel vectors. The library links the libgomp that torch has
// already loaded (same soname), so it runs on torch's own OpenMP team: a second thread pool
// would compete with torch's spinning workers (measured 1.5x slower right after a conv).
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

#if defined(_OPENMP)
#include <omp.h>
#endif

#if defined(__AVX512F__)
#include <immintrin.h>
constexpr int kLanes = 16;
constexpr int kMaxTile = 16;  // accumulators: more spill (measured with GCC 12, 32 zmm)
#elif defined(__AVX__)
constexpr int kLanes = 8;
constexpr int kMaxTile = 10;  // 16 ymm registers
#else
constexpr int kLanes = 4;
constexpr int kMaxTile = 10;
#endif
constexpr int kMaxSide = 16;  // tile sides 1..16 (A * B <= kMaxTile)

// A typedef may lower the alignment: loads and stores through it are unaligned vector moves.
typedef float vec __attribute__((vector_size(kLanes * sizeof(float)), aligned(4), may_alias));

static inline vec load(const float* p) { return *reinterpret_cast<const vec*>(p); }
static inline void store(float* p, vec v) { *reinterpret_cast<vec*>(p) = v; }
#if defined(__AVX512F__)
static inline vec fma(vec a, vec b, vec c) {
  return (vec)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
}
#else
static inline vec fma(vec a, vec b, vec c) { return a * b + c; }
#endif

// out[a][b] += sum_w x[a * x_row + (w + b) * kLanes] * g[w * g_step]: kernel rows a < A and
// columns b < B of one gradient row against the padded x rows it meets.
using TileFn = void (*)(const float*, int64_t, const float*, int64_t, int, float*, int64_t);

template <int A, int B>
static void tile(const float* x, int64_t x_row, const float* g, int64_t g_step, int width,
                 float* out, int64_t out_row) {
  vec acc[A * B];
#pragma GCC unroll 32
  for (int t = 0; t < A * B; ++t) acc[t] = vec{};
  for (int w = 0; w < width; ++w) {
    const vec gv = load(g + w * g_step);
    const float* xw = x + (int64_t)w * kLanes;
#pragma GCC unroll 32
    for (int a = 0; a < A; ++a)
#pragma GCC unroll 32
      for (int b = 0; b < B; ++b)
        acc[a * B + b] = fma(load(xw + a * x_row + b * kLanes), gv, acc[a * B + b]);
  }
#pragma GCC unroll 32
  for (int a = 0; a < A; ++a)
#pragma GCC unroll 32
    for (int b = 0; b < B; ++b) {
      float* o = out + a * out_row + b * kLanes;
      store(o, load(o) + acc[a * B + b]);
    }
}

template <int A, int B, bool kFits = (A * B <= kMaxTile)>
struct TileEntry {
  static constexpr TileFn fn = &tile<A, B>;
};
template <int A, int B>
struct TileEntry<A, B, false> {
  static constexpr TileFn fn = nullptr;
};

template <int... I>
static constexpr std::array<TileFn, sizeof...(I)> make_tiles(std::integer_sequence<int, I...>) {
  return {TileEntry<I / kMaxSide + 1, I % kMaxSide + 1>::fn...};
}
static constexpr auto kTiles = make_tiles(std::make_integer_sequence<int, kMaxSide * kMaxSide>{});

// Split n into near-equal parts of at most `most`: part k covers [start(k), start(k + 1)).
struct Split {
  int64_t n, parts;
  Split(int64_t n_, int64_t most) : n(n_), parts((n_ + most - 1) / most) {}
  int64_t start(int64_t k) const { return k * n / parts; }
};

// Channels [c_begin, c_end) of the gradient (c_begin a multiple of the vector width), one
// channel vector after the other.
static int grad_weight_range(const float* x, const int64_t* xs, const float* g,
                             const int64_t* gs, int64_t n_batch, int64_t channels,
                             int64_t height, int64_t width, int64_t kh, int64_t kw,
                             int64_t c_begin, int64_t c_end, float* out) {
  // Tile shape: B columns of the kernel (balanced chunks of <= kMaxSide), A rows so that
  // A * B <= kMaxTile (wide kernels: one row of 13-16 taps; 51x5: 3 rows of 5).
  const Split cols(kw, std::min<int64_t>({kw, kMaxSide, kMaxTile}));
  const int64_t widest = (kw + cols.parts - 1) / cols.parts;
  const Split rows(kh, std::max<int64_t>(1, std::min<int64_t>(kMaxSide, kMaxTile / widest)));
  const int64_t ph = kh / 2, pw = kw / 2;
  const int64_t padded_height = height + kh - 1, padded_width = width + kw - 1;
  const int64_t x_row = padded_width * kLanes, out_row = kw * kLanes;
  float* xp = static_cast<float*>(std::malloc(sizeof(float) * padded_height * x_row));
  float* g_row = static_cast<float*>(std::malloc(sizeof(float) * kLanes * width));
  float* acc = static_cast<float*>(std::malloc(sizeof(float) * kh * out_row));
  if (!xp || !g_row || !acc) {
    std::free(xp), std::free(g_row), std::free(acc);
    return -1;
  }
  // Lanes past the last channel compute on whatever these hold and are never written out.
  std::memset(xp, 0, sizeof(float) * padded_height * x_row);
  std::memset(g_row, 0, sizeof(float) * kLanes * width);
  for (int64_t c0 = c_begin; c0 < c_end; c0 += kLanes) {
    const int lanes = (int)(c0 + kLanes <= channels ? kLanes : channels - c0);
    // g is read in place when the vector's channels are adjacent and all present
    // (channels-last); otherwise each row is gathered into g_row (missing lanes stay 0).
    const bool g_direct = gs[1] == 1 && lanes == kLanes;
    std::memset(acc, 0, sizeof(float) * kh * out_row);
    for (int64_t n = 0; n < n_batch; ++n) {
      // zero-padded copy of sample n's x for this channel vector: xp[hp][wp][lane] (the
      // border, zeroed once, is never written)
      for (int64_t h = 0; h < height; ++h) {
        const float* src = x + n * xs[0] + c0 * xs[1] + h * xs[2];
        float* dst = xp + (h + ph) * x_row + pw * kLanes;
        if (xs[1] == 1 && lanes == kLanes) {  // channels-last: one vector per pixel
          for (int64_t w = 0; w < width; ++w) store(dst + w * kLanes, load(src + w * xs[3]));
        } else {
          for (int64_t w = 0; w < width; ++w)
            for (int l = 0; l < lanes; ++l) dst[w * kLanes + l] = src[w * xs[3] + l * xs[1]];
        }
      }
      for (int64_t h = 0; h < height; ++h) {
        const float* g_src = g + n * gs[0] + c0 * gs[1] + h * gs[2];
        const float* grad = g_src;
        int64_t g_step = gs[3];
        if (!g_direct) {
          for (int64_t w = 0; w < width; ++w)
            for (int l = 0; l < lanes; ++l) g_row[w * kLanes + l] = g_src[w * gs[3] + l * gs[1]];
          grad = g_row, g_step = kLanes;
        }
        // gradient row h meets padded x rows h + i for kernel rows i
        for (int64_t r = 0; r < rows.parts; ++r) {
          const int64_t i0 = rows.start(r), a = rows.start(r + 1) - i0;
          for (int64_t c = 0; c < cols.parts; ++c) {
            const int64_t j0 = cols.start(c), b = cols.start(c + 1) - j0;
            kTiles[(a - 1) * kMaxSide + (b - 1)](xp + (h + i0) * x_row + j0 * kLanes, x_row, grad,
                                                 g_step, (int)width,
                                                 acc + i0 * out_row + j0 * kLanes, out_row);
          }
        }
      }
    }
    for (int64_t l = 0; l < lanes; ++l)
      for (int64_t t = 0; t < kh * kw; ++t) out[(c0 + l) * kh * kw + t] = acc[t * kLanes + l];
  }
  std::free(xp), std::free(g_row), std::free(acc);
  return 0;
}

extern "C" {

// x, g: (N, C, H, W) float32 with element strides xs[4] / gs[4] in (N, C, H, W) order.
// out: (C, kh, kw) float32. Returns 0, -1 if a buffer could not be allocated, -2 for an even
// or empty kernel side.
int mmlk_dw_grad_weight(const float* x, const int64_t* xs, const float* g, const int64_t* gs,
                        int64_t n_batch, int64_t channels, int64_t height, int64_t width,
                        int64_t kh, int64_t kw, int64_t threads, float* out) {
  if (kh < 1 || kw < 1 || kh % 2 == 0 || kw % 2 == 0) return -2;
  const int64_t vectors = (channels + kLanes - 1) / kLanes;
  int status = 0;
  // one contiguous block of channel vectors per thread (buffers allocated once per thread)
#pragma omp parallel num_threads(threads) reduction(min : status)
  {
#if defined(_OPENMP)
    const int64_t team = omp_get_num_threads(), rank = omp_get_thread_num();
#else  // a compiler without OpenMP: one thread
    const int64_t team = 1, rank = 0;
    (void)threads;
#endif
    const int64_t lo = vectors * rank / team * kLanes;
    const int64_t hi = std::min(channels, vectors * (rank + 1) / team * kLanes);
    if (lo < hi)
      status = grad_weight_range(x, xs, g, gs, n_batch, channels, height, width, kh, kw, lo,
                                 hi, out);
  }
  return status;
}
}
