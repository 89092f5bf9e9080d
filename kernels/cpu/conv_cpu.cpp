// Convolution by im2col + GEMM. Images are processed in groups so each GEMM is wide enough to run near peak even
// when a layer's spatial size is small (LeNet's 10x10 maps); groups are split statically across threads.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/cpu_ops.h"

namespace lethe::kernels::cpu {

namespace {

// Output columns [lo, hi) whose input column ow*stride + k - pad lies inside [0, w).
inline void valid_range(int64_t out, int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t& lo, int64_t& hi) {
  const int64_t first = pad - k;  // ow*stride >= pad - k
  lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  const int64_t last = in - 1 + pad - k;  // ow*stride <= in - 1 + pad - k
  hi = last < 0 ? 0 : last / stride + 1;
  lo = std::min(lo, out);
  hi = std::min(std::max(hi, lo), out);
}

// Stride 1 with "same" width (WO = W): each im2col row is the input plane shifted by a fixed offset, except for the
// taps that fall in the padding. Those are the rows wholly outside and, per row, the |dj| columns that would wrap
// into the neighbouring image row. One long copy plus these fix-ups replaces HO short row copies.
bool is_same_width(const Conv2dGeom& g) { return g.stride == 1 && g.wo == g.w && g.ho == g.h; }

// Calls fn(dst_row_offset, plane_offset, count) for the contiguous runs of one shifted row, and zero(offset,
// count) for the padding taps, where (di, dj) is the tap's displacement.
template <typename Copy, typename Pad>
void shifted_plane_runs(const Conv2dGeom& g, int64_t di, int64_t dj, Copy copy, Pad pad) {
  const int64_t w = g.w, plane = g.h * g.w;
  const int64_t oh0 = std::max<int64_t>(0, -di), oh1 = std::min<int64_t>(g.h, g.h - di);
  if (oh1 <= oh0) {
    pad(0, plane);
    return;
  }
  pad(0, oh0 * w);
  pad(oh1 * w, plane - oh1 * w);
  const int64_t shift = di * w + dj;
  // Valid destinations [oh0·w, oh1·w) read plane index i + shift; clip the run to the plane, the clipped ends are
  // wrapped taps that the per-row fix-up below covers.
  const int64_t lo = std::max(oh0 * w, -shift), hi = std::min(oh1 * w, plane - shift);
  if (hi > lo) copy(lo, lo + shift, hi - lo);
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    if (dj < 0) pad(oh * w, std::min(-dj, w));
    if (dj > 0) pad(oh * w + w - std::min(dj, w), std::min(dj, w));
  }
  if (lo > oh0 * w) pad(oh0 * w, lo - oh0 * w);
  if (hi < oh1 * w) pad(hi, oh1 * w - hi);
}

// im2col of one image into col rows of length >= HO·WO, consecutive rows `ld` floats apart.
void im2col_ld(const float* x, float* col, const Conv2dGeom& g, int64_t ld) {
  if (is_same_width(g)) {
    for (int64_t c = 0; c < g.c; ++c)
      for (int64_t ki = 0; ki < g.kh; ++ki)
        for (int64_t kj = 0; kj < g.kw; ++kj) {
          float* dst = col + ((c * g.kh + ki) * g.kw + kj) * ld;
          const float* src = x + c * g.h * g.w;
          shifted_plane_runs(
              g, ki - g.pad, kj - g.pad,
              [&](int64_t d, int64_t s, int64_t n) { std::memcpy(dst + d, src + s, sizeof(float) * n); },
              [&](int64_t d, int64_t n) { std::memset(dst + d, 0, sizeof(float) * n); });
        }
    return;
  }
  for (int64_t c = 0; c < g.c; ++c) {
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        float* dst = col + ((c * g.kh + ki) * g.kw + kj) * ld;
        int64_t lo, hi;
        valid_range(g.wo, g.w, kj, g.stride, g.pad, lo, hi);
        for (int64_t oh = 0; oh < g.ho; ++oh) {
          float* d = dst + oh * g.wo;
          const int64_t ih = oh * g.stride - g.pad + ki;
          if (ih < 0 || ih >= g.h) {
            std::memset(d, 0, sizeof(float) * static_cast<size_t>(g.wo));
            continue;
          }
          const float* src = x + (c * g.h + ih) * g.w - g.pad + kj;
          for (int64_t ow = 0; ow < lo; ++ow) d[ow] = 0.0f;
          if (g.stride == 1) {
            for (int64_t ow = lo; ow < hi; ++ow) d[ow] = src[ow];
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) d[ow] = src[ow * g.stride];
          }
          for (int64_t ow = hi; ow < g.wo; ++ow) d[ow] = 0.0f;
        }
      }
    }
  }
}

void col2im_add_ld(const float* col, float* dx, const Conv2dGeom& g, int64_t ld) {
  if (is_same_width(g)) {
    for (int64_t c = 0; c < g.c; ++c)
      for (int64_t ki = 0; ki < g.kh; ++ki)
        for (int64_t kj = 0; kj < g.kw; ++kj) {
          const float* src = col + ((c * g.kh + ki) * g.kw + kj) * ld;
          float* dst = dx + c * g.h * g.w;
          // Padding taps received no input in forward, so they pass no gradient back: only the copy runs add.
          // The wrapped taps inside a run are excluded by splitting the run at them.
          shifted_plane_runs(
              g, ki - g.pad, kj - g.pad,
              [&](int64_t d, int64_t s, int64_t n) {
                const int64_t lead = kj - g.pad < 0 ? g.pad - kj : 0, tail = kj - g.pad > 0 ? kj - g.pad : 0;
                float* __restrict to = dst + (s - d);
                for (int64_t row = d - d % g.w; row < d + n; row += g.w) {
                  const int64_t a = std::max(row + lead, d), b = std::min(row + g.w - tail, d + n);
                  for (int64_t i = a; i < b; ++i) to[i] += src[i];
                }
              },
              [](int64_t, int64_t) {});
        }
    return;
  }
  for (int64_t c = 0; c < g.c; ++c) {
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        const float* src_row = col + ((c * g.kh + ki) * g.kw + kj) * ld;
        int64_t lo, hi;
        valid_range(g.wo, g.w, kj, g.stride, g.pad, lo, hi);
        for (int64_t oh = 0; oh < g.ho; ++oh) {
          const int64_t ih = oh * g.stride - g.pad + ki;
          if (ih < 0 || ih >= g.h) continue;
          const float* s = src_row + oh * g.wo;
          float* d = dx + (c * g.h + ih) * g.w - g.pad + kj;
          if (g.stride == 1) {
            for (int64_t ow = lo; ow < hi; ++ow) d[ow] += s[ow];
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) d[ow * g.stride] += s[ow];
          }
        }
      }
    }
  }
}

bool is_pointwise(const Conv2dGeom& g) { return g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad == 0; }

// Images per GEMM: about `want` (enough columns for the GEMM to be efficient), with each thread's share split into
// equal groups so the static schedule gives every thread the same number of images.
int64_t group_size(const Conv2dGeom& g, int threads) {
  const int64_t pixels = std::max<int64_t>(1, g.out_pixels());
  const int64_t want = std::max<int64_t>(1, 4096 / pixels);
  const int64_t share = std::max<int64_t>(1, (g.n + threads - 1) / threads);
  const int64_t groups_per_thread = (share + want - 1) / want;
  return (share + groups_per_thread - 1) / groups_per_thread;
}

// The im2col columns of images [n0, n0 + cnt) side by side, [K, cnt·P]; a single pointwise image needs no copy.
const float* group_columns(const float* x, const Conv2dGeom& g, int64_t n0, int64_t cnt, float* buffer) {
  const int64_t P = g.out_pixels(), in_size = g.c * g.h * g.w;
  if (cnt == 1 && is_pointwise(g)) return x + n0 * in_size;
  for (int64_t i = 0; i < cnt; ++i) im2col_ld(x + (n0 + i) * in_size, buffer + i * P, g, cnt * P);
  return buffer;
}

int conv_team(const Conv2dGeom& g, int threads) {
  const int64_t macs = g.n * g.o * g.col_rows() * g.out_pixels();
  return macs < 100000 ? 1 : threads;
}

}  // namespace


// Group g's columns start at image n0's share: K·P floats per image, so groups pack back to back.
int64_t conv2d_columns_size(const Conv2dGeom& g) { return g.n * g.col_rows() * g.out_pixels(); }

void conv2d_forward(const float* x, const float* w, const float* b, float* y, const Conv2dGeom& g, bool relu,
                    float* saved_columns, Workspace& ws, int threads) {
  const int64_t P = g.out_pixels(), K = g.col_rows(), out_size = g.o * P;
  const int team = conv_team(g, threads);
  ws.resize_threads(team);
  const int64_t G = group_size(g, team);
  const int64_t groups = (g.n + G - 1) / G;
#pragma omp parallel for num_threads(team) schedule(static)
  for (int64_t grp = 0; grp < groups; ++grp) {
    const int t = omp_get_thread_num();
    const int64_t n0 = grp * G, cnt = std::min(G, g.n - n0), cols = cnt * P;
    float* scratch = saved_columns ? saved_columns + n0 * K * P : ws.get(t, 0, static_cast<size_t>(K * cols));
    const float* col = group_columns(x, g, n0, cnt, scratch);
    if (cnt == 1) {  // the GEMM writes the image's NCHW output directly
      float* yn = y + n0 * out_size;
      if (b)
        for (int64_t o = 0; o < g.o; ++o) std::fill(yn + o * P, yn + (o + 1) * P, b[o]);
      sgemm(false, false, g.o, P, K, 1.0f, w, K, col, P, b ? 1.0f : 0.0f, yn, P);
      if (relu)
        for (int64_t i = 0; i < out_size; ++i) yn[i] = kernels::relu(yn[i]);
    } else {  // GEMM into [O, cnt·P], then scatter each image's block to NCHW
      float* out = ws.get(t, 1, static_cast<size_t>(g.o * cols));
      sgemm(false, false, g.o, cols, K, 1.0f, w, K, col, cols, 0.0f, out, cols);
      for (int64_t i = 0; i < cnt; ++i) {
        float* yn = y + (n0 + i) * out_size;
        for (int64_t o = 0; o < g.o; ++o) {
          const float bias = b ? b[o] : 0.0f;
          const float* src = out + o * cols + i * P;
          float* dst = yn + o * P;
          if (relu) {
            for (int64_t p = 0; p < P; ++p) dst[p] = kernels::relu(src[p] + bias);
          } else {
            for (int64_t p = 0; p < P; ++p) dst[p] = src[p] + bias;
          }
        }
      }
    }
  }
}

void conv2d_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db,
                     const Conv2dGeom& g, const float* saved_columns, Workspace& ws, int threads) {
  const int64_t P = g.out_pixels(), K = g.col_rows(), in_size = g.c * g.h * g.w, out_size = g.o * P;
  const int team = conv_team(g, threads);
  ws.resize_threads(team);
  const int64_t G = group_size(g, team);
  const int64_t groups = (g.n + G - 1) / G;
  const int64_t wsize = g.o * K;
  // Per-thread partial weight/bias gradients, combined in thread order below: deterministic for a thread count.
  int ran = 1;  // threads the runtime actually gave us (fewer when nested)
#pragma omp parallel num_threads(team)
  {
    const int t = omp_get_thread_num();
#pragma omp single
    ran = omp_get_num_threads();
    float* dw_part = nullptr;
    float* db_part = nullptr;
    if (dw) {
      dw_part = ws.get(t, 2, static_cast<size_t>(wsize + g.o));
      std::fill(dw_part, dw_part + wsize + g.o, 0.0f);
      db_part = dw_part + wsize;
    } else if (db) {
      db_part = ws.get(t, 2, static_cast<size_t>(g.o));
      std::fill(db_part, db_part + g.o, 0.0f);
    }
#pragma omp for schedule(static)
    for (int64_t grp = 0; grp < groups; ++grp) {
      const int64_t n0 = grp * G, cnt = std::min(G, g.n - n0), cols = cnt * P;
      // dY for the group as [O, cnt·P]
      const float* dyg;
      if (cnt == 1) {
        dyg = dy + n0 * out_size;
      } else {
        float* buf = ws.get(t, 1, static_cast<size_t>(g.o * cols));
        for (int64_t i = 0; i < cnt; ++i)
          for (int64_t o = 0; o < g.o; ++o)
            std::memcpy(buf + o * cols + i * P, dy + (n0 + i) * out_size + o * P, sizeof(float) * P);
        dyg = buf;
      }
      if (db_part) {
        for (int64_t o = 0; o < g.o; ++o) {
          float s = 0;
          for (int64_t p = 0; p < cols; ++p) s += dyg[o * cols + p];
          db_part[o] += s;
        }
      }
      if (dw) {
        const float* col = (saved_columns && !(cnt == 1 && is_pointwise(g)))
                               ? saved_columns + n0 * K * P
                               : group_columns(x, g, n0, cnt, ws.get(t, 0, static_cast<size_t>(K * cols)));
        sgemm(false, true, g.o, K, cols, 1.0f, dyg, cols, col, cols, 1.0f, dw_part, K);
      }
      if (dx) {
        float* dxn = dx + n0 * in_size;
        if (cnt == 1 && is_pointwise(g)) {
          sgemm(true, false, K, P, g.o, 1.0f, w, K, dyg, P, 0.0f, dxn, P);
        } else {
          float* dcol = ws.get(t, 3, static_cast<size_t>(K * cols));
          sgemm(true, false, K, cols, g.o, 1.0f, w, K, dyg, cols, 0.0f, dcol, cols);
          std::memset(dxn, 0, sizeof(float) * static_cast<size_t>(cnt * in_size));
          for (int64_t i = 0; i < cnt; ++i) col2im_add_ld(dcol + i * P, dxn + i * in_size, g, cols);
        }
      }
    }
  }
  if (dw || db) {
    const int64_t total = (dw ? wsize : 0) + g.o;
#pragma omp parallel for num_threads(total < 16384 ? 1 : team) schedule(static)
    for (int64_t j = 0; j < total; ++j) {
      float s = 0;
      for (int t = 0; t < ran; ++t) s += ws.get(t, 2, 0)[j];
      if (dw && j < wsize) {
        dw[j] += s;
      } else if (db) {
        db[j - (dw ? wsize : 0)] += s;
      }
    }
  }
}

}  // namespace lethe::kernels::cpu
