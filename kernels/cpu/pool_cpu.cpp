// Max and average pooling over NCHW planes, parallel over (image, channel) planes.
#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/cpu/cpu_ops.h"

namespace lethe::kernels::cpu {

static int plane_team(const Pool2dGeom& g, int threads) { return g.n * g.c * g.h * g.w < 8192 ? 1 : threads; }

// Index (within the plane) of the first maximum of window (oh, ow); -1 if the window is all padding.
static inline int64_t window_argmax(const float* plane, const Pool2dGeom& g, int64_t oh, int64_t ow) {
  const int64_t h0 = oh * g.stride - g.pad, w0 = ow * g.stride - g.pad;
  const int64_t h1 = std::min(h0 + g.kh, g.h), w1 = std::min(w0 + g.kw, g.w);
  int64_t best = -1;
  float best_value = -std::numeric_limits<float>::infinity();
  for (int64_t ih = std::max<int64_t>(h0, 0); ih < h1; ++ih)
    for (int64_t iw = std::max<int64_t>(w0, 0); iw < w1; ++iw) {
      const float v = plane[ih * g.w + iw];
      // NaN propagates, as in PyTorch: a NaN wins the window.
      if (best < 0 || v > best_value || v != v) {
        best = ih * g.w + iw;
        best_value = v;
        if (v != v) return best;
      }
    }
  return best;
}

// NaN anywhere in a plane sends it down the exact window loop, so the 2x2 path can use branch-free maxima.
static inline bool plane_has_nan(const float* p, int64_t n) {
  int nan = 0;
#pragma omp simd reduction(| : nan)
  for (int64_t i = 0; i < n; ++i) nan |= p[i] != p[i];
  return nan != 0;
}

static bool fast_2x2(const Pool2dGeom& g) { return g.kh == 2 && g.kw == 2 && g.stride == 2 && g.pad == 0; }

// One NaN-free plane of a 2x2, stride-2 max pool; the argmax variant is a separate instantiation so each inner
// loop is branch-free and vectorises.
template <bool kArgmax>
static void pool_2x2_plane(const float* xp, float* yp, int64_t* ip, const Pool2dGeom& g) {
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const float* r0 = xp + 2 * oh * g.w;
    const float* r1 = r0 + g.w;
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      const float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
      const float ab = b > a ? b : a, cd = d > c ? d : c, m = cd > ab ? cd : ab;
      yp[oh * g.wo + ow] = m;
      if constexpr (kArgmax) {  // first maximum in window order (a, b, c, d), in integer arithmetic
        const int64_t past_a = a != m, past_b = past_a & (b != m), past_c = past_b & (c != m);
        const int64_t which = past_a + past_b + past_c;
        ip[oh * g.wo + ow] = (2 * oh + (which >> 1)) * g.w + 2 * ow + (which & 1);
      }
    }
  }
}

void maxpool2d_forward(const float* x, float* y, int64_t* argmax, const Pool2dGeom& g, int threads) {
  const int64_t in_plane = g.h * g.w, out_plane = g.ho * g.wo;
#pragma omp parallel for num_threads(plane_team(g, threads)) schedule(static)
  for (int64_t nc = 0; nc < g.n * g.c; ++nc) {
    const float* xp = x + nc * in_plane;
    float* yp = y + nc * out_plane;
    int64_t* ip = argmax ? argmax + nc * out_plane : nullptr;
    if (fast_2x2(g) && !plane_has_nan(xp, in_plane)) {  // LeNet's pools: no window loop, no branches
      if (ip) {
        pool_2x2_plane<true>(xp, yp, ip, g);
      } else {
        pool_2x2_plane<false>(xp, yp, nullptr, g);
      }
      continue;
    }
    for (int64_t oh = 0; oh < g.ho; ++oh)
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        const int64_t i = window_argmax(xp, g, oh, ow);
        yp[oh * g.wo + ow] = i < 0 ? -std::numeric_limits<float>::infinity() : xp[i];
        if (ip) ip[oh * g.wo + ow] = i;
      }
  }
}

void maxpool2d_backward(const int64_t* argmax, const float* dy, float* dx, const Pool2dGeom& g, int threads) {
  const int64_t in_plane = g.h * g.w, out_plane = g.ho * g.wo;
#pragma omp parallel for num_threads(plane_team(g, threads)) schedule(static)
  for (int64_t nc = 0; nc < g.n * g.c; ++nc) {
    const int64_t* ip = argmax + nc * out_plane;
    const float* dyp = dy + nc * out_plane;
    float* dxp = dx + nc * in_plane;
    std::memset(dxp, 0, sizeof(float) * static_cast<size_t>(in_plane));
    for (int64_t o = 0; o < out_plane; ++o)
      if (ip[o] >= 0) dxp[ip[o]] += dyp[o];  // += : overlapping windows may share a maximum
  }
}

// count_include_pad = true: every window divides by kh·kw, as PyTorch's default.
void avgpool2d_forward(const float* x, float* y, const Pool2dGeom& g, int threads) {
  const int64_t in_plane = g.h * g.w, out_plane = g.ho * g.wo;
  const float inv = 1.0f / static_cast<float>(g.kh * g.kw);
#pragma omp parallel for num_threads(plane_team(g, threads)) schedule(static)
  for (int64_t nc = 0; nc < g.n * g.c; ++nc) {
    const float* xp = x + nc * in_plane;
    float* yp = y + nc * out_plane;
    for (int64_t oh = 0; oh < g.ho; ++oh)
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        const int64_t h0 = oh * g.stride - g.pad, w0 = ow * g.stride - g.pad;
        float s = 0;
        for (int64_t ih = std::max<int64_t>(h0, 0); ih < std::min(h0 + g.kh, g.h); ++ih)
          for (int64_t iw = std::max<int64_t>(w0, 0); iw < std::min(w0 + g.kw, g.w); ++iw) s += xp[ih * g.w + iw];
        yp[oh * g.wo + ow] = s * inv;
      }
  }
}

void avgpool2d_backward(const float* dy, float* dx, const Pool2dGeom& g, int threads) {
  const int64_t in_plane = g.h * g.w, out_plane = g.ho * g.wo;
  const float inv = 1.0f / static_cast<float>(g.kh * g.kw);
#pragma omp parallel for num_threads(plane_team(g, threads)) schedule(static)
  for (int64_t nc = 0; nc < g.n * g.c; ++nc) {
    const float* dyp = dy + nc * out_plane;
    float* dxp = dx + nc * in_plane;
    std::memset(dxp, 0, sizeof(float) * static_cast<size_t>(in_plane));
    for (int64_t oh = 0; oh < g.ho; ++oh)
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        const int64_t h0 = oh * g.stride - g.pad, w0 = ow * g.stride - g.pad;
        const float d = dyp[oh * g.wo + ow] * inv;
        for (int64_t ih = std::max<int64_t>(h0, 0); ih < std::min(h0 + g.kh, g.h); ++ih)
          for (int64_t iw = std::max<int64_t>(w0, 0); iw < std::min(w0 + g.kw, g.w); ++iw) dxp[ih * g.w + iw] += d;
      }
  }
}

}  // namespace lethe::kernels::cpu
