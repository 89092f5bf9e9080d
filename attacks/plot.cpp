#include "attacks/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

#include "datasets/png_grid.h"
#include "engine/error.h"

namespace lethe::attacks::plot {
namespace {

// The glyphs of ASCII 32..126 (the HD44780 LCD character set's shapes, 'g' lowered to the x-height): 7 rows, top
// first, bit 4 the leftmost pixel.
constexpr uint8_t kFont[95][kGlyphHeight] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // space
    {0x04, 0x04, 0x04, 0x04, 0x00, 0x00, 0x04},  // !
    {0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00},  // "
    {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A},  // #
    {0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04},  // $
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03},  // %
    {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D},  // &
    {0x0C, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00},  // '
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02},  // (
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},  // )
    {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00},  // *
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00},  // +
    {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08},  // ,
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00},  // -
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C},  // .
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00},  // /
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E},  // 0
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},  // 1
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F},  // 2
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},  // 3
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02},  // 4
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},  // 5
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E},  // 6
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},  // 7
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E},  // 8
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},  // 9
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00},  // :
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08},  // ;
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02},  // <
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00},  // =
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08},  // >
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04},  // ?
    {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E},  // @
    {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11},  // A
    {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E},  // B
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E},  // C
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C},  // D
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F},  // E
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10},  // F
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F},  // G
    {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},  // H
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E},  // I
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},  // J
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11},  // K
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},  // L
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11},  // M
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},  // N
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},  // O
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},  // P
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D},  // Q
    {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},  // R
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E},  // S
    {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},  // T
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},  // U
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04},  // V
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A},  // W
    {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11},  // X
    {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04},  // Y
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F},  // Z
    {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E},  // [
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00},  // backslash
    {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E},  // ]
    {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00},  // ^
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F},  // _
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00},  // `
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F},  // a
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E},  // b
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E},  // c
    {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F},  // d
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E},  // e
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08},  // f
    {0x00, 0x00, 0x0F, 0x11, 0x0F, 0x01, 0x0E},  // g
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11},  // h
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E},  // i
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C},  // j
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12},  // k
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E},  // l
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11},  // m
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11},  // n
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E},  // o
    {0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10},  // p
    {0x00, 0x00, 0x0D, 0x13, 0x0F, 0x01, 0x01},  // q
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10},  // r
    {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E},  // s
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06},  // t
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D},  // u
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04},  // v
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A},  // w
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11},  // x
    {0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E},  // y
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F},  // z
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02},  // {
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},  // |
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08},  // }
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00},  // ~
};
constexpr std::array<uint8_t, kGlyphHeight> kBox = {0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F};

// The canvas's pixel planes, after checking they have the shape the canvas claims.
float* planes(const Canvas& canvas) {
  const Tensor& p = canvas.pixels;
  if (!p.defined() || p.dtype() != DType::F32 || p.device() != Device::CPU ||
      p.shape() != Shape{1, 3, canvas.height, canvas.width})
    throw UsageError("plot: the canvas's pixels are not a CPU f32 [1, 3, height, width] tensor");
  return p.f32();
}

// The part of [start, start + len) inside [0, limit), as [lo, hi) (empty when hi <= lo), without overflow for any
// int64 arguments.
std::pair<int64_t, int64_t> clip_span(int64_t start, int64_t len, int64_t limit) {
  if (len <= 0 || start >= limit) return {0, 0};
  if (start < 0) {
    len += start;  // opposite signs: cannot overflow
    start = 0;
    if (len <= 0) return {0, 0};
  }
  return {start, start + std::min(len, limit - start)};
}

void check_scale(int64_t scale) {
  if (scale < 1 || scale > kMaxTextScale)
    throw UsageError("plot: text scale " + std::to_string(scale) + " is outside [1, " +
                     std::to_string(kMaxTextScale) + "]");
}

// Calls place(u, v) for every set pixel of `text`, (u, v) in font pixels of the unrotated line (u rightwards).
template <class Place>
void for_each_font_pixel(const std::string& text, Place place) {
  for (size_t i = 0; i < text.size(); ++i) {
    const std::array<uint8_t, kGlyphHeight> rows = glyph_rows(text[i]);
    for (int64_t v = 0; v < kGlyphHeight; ++v)
      for (int64_t u = 0; u < kGlyphWidth; ++u)
        if ((rows[v] >> (kGlyphWidth - 1 - u)) & 1) place(static_cast<int64_t>(i) * kGlyphAdvance + u, v);
  }
}

// The longest prefix of `text` no wider than `max_width`.
std::string fit(const std::string& text, int64_t max_width, int64_t scale) {
  const int64_t chars = std::max<int64_t>(0, max_width / (kGlyphAdvance * scale));
  return text.substr(0, static_cast<size_t>(std::min<int64_t>(chars, static_cast<int64_t>(text.size()))));
}

void fill_disk(Canvas& canvas, int64_t cx, int64_t cy, int64_t r, Colour colour) {
  for (int64_t dy = -r; dy <= r; ++dy) {
    const auto half = static_cast<int64_t>(std::sqrt(static_cast<double>(r * r - dy * dy) + 0.5));
    fill_rect(canvas, cx - half, cy + dy, 2 * half + 1, 1, colour);
  }
}

// Y ticks at k * step for k in [first, last], step 1, 2 or 5 x 10^j, spanning [lo, hi] in about five steps.
struct Ticks {
  double step = 1;
  int64_t first = 0, last = 1;
};

Ticks nice_ticks(double lo, double hi) {
  if (!std::isfinite(hi - lo)) throw InputError("plot: the values span more than a double can hold");
  const double raw = (hi - lo) / 5;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / magnitude;
  Ticks t;
  constexpr double kSlack = 1 + 1e-9;  // so 0.5 / 0.1 = 5.000000000000001 still picks 5
  t.step = (f <= kSlack ? 1 : f <= 2 * kSlack ? 2 : f <= 5 * kSlack ? 5 : 10) * magnitude;
  t.first = static_cast<int64_t>(std::floor(lo / t.step + 1e-9));
  t.last = static_cast<int64_t>(std::ceil(hi / t.step - 1e-9));
  if (!std::isfinite(t.first * t.step) || !std::isfinite(t.last * t.step))
    throw InputError("plot: the values are too large to plot");
  return t;
}

// A tick's label with as many decimals as the step needs ("0.25" is never a tick: steps are 1, 2 or 5 x 10^j).
std::string tick_label(double v, double step) {
  if (std::abs(v) < step * 1e-6) v = 0;  // no "-0.0" from rounding
  char buf[64];
  if (std::max(std::abs(v), step) >= 1e7 || step < 1e-6) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  } else {
    const int decimals = static_cast<int>(std::max(0.0, -std::floor(std::log10(step) + 1e-9)));
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  }
  return buf;
}

// The text scale for a canvas: 1 up to 800 pixels on the short side, larger for bigger figures.
int64_t text_scale(const Canvas& canvas) {
  return std::clamp<int64_t>(std::min(canvas.width, canvas.height) / 400, 1, 8);
}

// Throws UsageError unless there are columns and the value and highlight lists match them.
void check_columns(const std::string& what, size_t columns, size_t values, size_t highlight) {
  if (columns == 0) throw UsageError(what + ": nothing to plot (no columns)");
  if (values != columns)
    throw UsageError(what + ": " + std::to_string(values) + " values for " + std::to_string(columns) + " columns");
  if (highlight != 0 && highlight != columns)
    throw UsageError(what + ": " + std::to_string(highlight) + " highlight flags for " + std::to_string(columns) +
                     " columns (give none or one per column)");
}

void check_finite(const std::string& what, const std::string& column, double v) {
  if (!std::isfinite(v))
    throw InputError(what + ": a value of '" + column + "' is not finite (" + std::to_string(v) + ")");
}

// What both charts share: the title, y label, y ticks with gridlines, the axes, column labels (cut to their slot)
// and the x label. Returns the plot area the marks go in.
ChartLayout draw_frame(Canvas& canvas, const std::string& what, const std::string& title, const std::string& x_label,
                       const std::string& y_label, const std::vector<std::string>& columns, const Ticks& ticks) {
  const int64_t s = text_scale(canvas), gap = 6 * s, tick = 4 * s, line = text_height(s);
  std::vector<std::pair<double, std::string>> labels;
  int64_t label_width = 0;
  for (int64_t k = ticks.first; k <= ticks.last; ++k) {
    const double value = static_cast<double>(k) * ticks.step;
    labels.emplace_back(value, tick_label(value, ticks.step));
    label_width = std::max(label_width, text_width(labels.back().second, s));
  }
  ChartLayout l;
  l.top = gap + (title.empty() ? 0 : text_height(2 * s) + gap) + line / 2;
  l.left = gap + (y_label.empty() ? 0 : line + gap) + label_width + tick + 1;
  l.right = canvas.width - 2 * gap;
  l.bottom = canvas.height - gap - (x_label.empty() ? 0 : line + gap) - line - tick - 1;
  l.y_min = static_cast<double>(ticks.first) * ticks.step;
  l.y_max = static_cast<double>(ticks.last) * ticks.step;
  const auto n = static_cast<int64_t>(columns.size());
  if (l.right - l.left < 3 * n || l.bottom - l.top < 40)
    throw UsageError(what + ": a " + std::to_string(canvas.width) + "x" + std::to_string(canvas.height) +
                     " canvas is too small for " + std::to_string(n) + " columns");
  const int64_t plot_w = l.right - l.left, slot = plot_w / n;

  if (!title.empty()) {  // twice the label size, or the label size for a title too long for that
    const int64_t room = canvas.width - 2 * gap, ts = text_width(title, 2 * s) <= room + 2 * s ? 2 * s : s;
    const std::string t = fit(title, room + ts, ts);
    draw_text(canvas, (canvas.width - text_width(t, ts) + ts) / 2, gap + (2 * s - ts) * kGlyphHeight / 2, t, kBlack,
              ts);
  }
  if (!y_label.empty()) {
    const std::string t = fit(y_label, l.bottom - l.top, s);
    draw_text_up(canvas, gap, (l.top + l.bottom - text_width(t, s)) / 2, t, kBlack, s);
  }
  for (const auto& [value, text] : labels) {
    const int64_t y = l.y_of(value);
    draw_line(canvas, l.left, y, l.right - 1, y, kGrid);
    draw_line(canvas, l.left - 1 - tick, y, l.left - 2, y, kBlack);
    draw_text(canvas, l.left - 1 - tick - s - text_width(text, s), y - line / 2, text, kBlack, s);
  }
  draw_line(canvas, l.left - 1, l.top, l.left - 1, l.bottom, kBlack);
  draw_line(canvas, l.left - 1, l.bottom, l.right - 1, l.bottom, kBlack);
  for (int64_t i = 0; i < n; ++i) {
    l.centres.push_back(l.left + (2 * i + 1) * plot_w / (2 * n));
    const std::string t = fit(columns[static_cast<size_t>(i)], slot - s, s);
    draw_text(canvas, l.centres.back() - (text_width(t, s) - s) / 2, l.bottom + 1 + tick, t, kBlack, s);
  }
  if (!x_label.empty()) {
    const std::string t = fit(x_label, canvas.width, s);
    draw_text(canvas, (l.left + l.right - text_width(t, s)) / 2, l.bottom + 1 + tick + line + gap, t, kBlack, s);
  }
  return l;
}

// A fraction in [0, 1) fixed by (group, index): splitmix64's finaliser, so jitter needs no random state.
double jitter(uint64_t group, uint64_t index) {
  uint64_t z = group * 0x9E3779B97F4A7C15ull + index + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

double median(std::vector<double> v) {
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  if (v.size() % 2 == 1) return v[mid];
  return (v[mid] + *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid))) / 2;
}

}  // namespace

Canvas make_canvas(int64_t width, int64_t height) {
  if (width < 1 || height < 1 || width > kMaxCanvasSide || height > kMaxCanvasSide)
    throw UsageError("plot: a canvas of " + std::to_string(width) + "x" + std::to_string(height) +
                     " pixels (each side must be in [1, " + std::to_string(kMaxCanvasSide) + "])");
  return {width, height, Tensor::full({1, 3, height, width}, 1.0f)};
}

Colour pixel(const Canvas& canvas, int64_t x, int64_t y) {
  const float* p = planes(canvas);
  if (x < 0 || y < 0 || x >= canvas.width || y >= canvas.height)
    throw UsageError("plot: pixel (" + std::to_string(x) + ", " + std::to_string(y) + ") is outside the canvas");
  const int64_t plane = canvas.width * canvas.height, at = y * canvas.width + x;
  return {p[at], p[plane + at], p[2 * plane + at]};
}

void fill_rect(Canvas& canvas, int64_t x, int64_t y, int64_t w, int64_t h, Colour colour) {
  float* p = planes(canvas);
  const auto [x0, x1] = clip_span(x, w, canvas.width);
  const auto [y0, y1] = clip_span(y, h, canvas.height);
  if (x1 <= x0 || y1 <= y0) return;
  const float rgb[3] = {colour.r, colour.g, colour.b};
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t row = y0; row < y1; ++row) {
      float* line = p + (c * canvas.height + row) * canvas.width;
      std::fill(line + x0, line + x1, rgb[c]);
    }
}

void draw_line(Canvas& canvas, int64_t x0, int64_t y0, int64_t x1, int64_t y1, Colour colour, int64_t thickness,
               int64_t dash) {
  if (thickness < 1 || thickness > kMaxCanvasSide) throw UsageError("plot: line thickness must be in [1, 8192]");
  if (dash < 0) throw UsageError("plot: a line's dash length cannot be negative");
  // Liang-Barsky: keep the parameter range t in [t0, t1] of the segment inside the canvas grown by the pen, so the
  // loop below only walks pixels near the canvas however far away the endpoints are.
  const double fx = static_cast<double>(x0), fy = static_cast<double>(y0);
  const double dx = static_cast<double>(x1) - fx, dy = static_cast<double>(y1) - fy, m = static_cast<double>(thickness);
  double t0 = 0, t1 = 1;
  auto keep = [&](double p, double q) {  // the half-plane p * t <= q
    if (p == 0) return q >= 0;
    const double t = q / p;
    if (p < 0) t0 = std::max(t0, t);
    else t1 = std::min(t1, t);
    return t0 <= t1;
  };
  if (!keep(-dx, fx + m) || !keep(dx, static_cast<double>(canvas.width) - 1 + m - fx) || !keep(-dy, fy + m) ||
      !keep(dy, static_cast<double>(canvas.height) - 1 + m - fy))
    return;
  const bool whole = t0 == 0 && t1 == 1;  // exact endpoints when nothing was cut
  const int64_t ax0 = whole ? x0 : std::llround(fx + t0 * dx), ay0 = whole ? y0 : std::llround(fy + t0 * dy);
  const int64_t ax1 = whole ? x1 : std::llround(fx + t1 * dx), ay1 = whole ? y1 : std::llround(fy + t1 * dy);
  // The dash pattern continues from where the visible part starts.
  const auto phase = static_cast<int64_t>(std::llround(t0 * std::max(std::abs(dx), std::abs(dy))));
  const int64_t step_x = ax0 < ax1 ? 1 : -1, step_y = ay0 < ay1 ? 1 : -1;
  const int64_t ddx = std::abs(ax1 - ax0), ddy = -std::abs(ay1 - ay0), half = (thickness - 1) / 2;
  int64_t err = ddx + ddy, x = ax0, y = ay0;
  for (int64_t step = phase;; ++step) {
    if (dash == 0 || (step / dash) % 2 == 0) fill_rect(canvas, x - half, y - half, thickness, thickness, colour);
    if (x == ax1 && y == ay1) break;
    const int64_t e2 = 2 * err;
    if (e2 >= ddy) {
      err += ddy;
      x += step_x;
    }
    if (e2 <= ddx) {
      err += ddx;
      y += step_y;
    }
  }
}

std::array<uint8_t, kGlyphHeight> glyph_rows(char c) {
  const int code = static_cast<unsigned char>(c);
  if (code < 32 || code > 126) return kBox;
  std::array<uint8_t, kGlyphHeight> rows{};
  std::copy(std::begin(kFont[code - 32]), std::end(kFont[code - 32]), rows.begin());
  return rows;
}

int64_t text_width(const std::string& text, int64_t scale) {
  check_scale(scale);
  return static_cast<int64_t>(text.size()) * kGlyphAdvance * scale;
}

void draw_text(Canvas& canvas, int64_t x, int64_t y, const std::string& text, Colour colour, int64_t scale) {
  planes(canvas);
  const int64_t w = text_width(text, scale);
  // Wholly outside: nothing to draw, and returning here keeps the coordinates below far from overflow.
  if (x >= canvas.width || y >= canvas.height || x <= -w || y <= -text_height(scale)) return;
  for_each_font_pixel(text, [&](int64_t u, int64_t v) {
    fill_rect(canvas, x + u * scale, y + v * scale, scale, scale, colour);
  });
}

void draw_text_up(Canvas& canvas, int64_t x, int64_t y, const std::string& text, Colour colour, int64_t scale) {
  planes(canvas);
  const int64_t w = text_width(text, scale);
  if (x >= canvas.width || y >= canvas.height || x <= -text_height(scale) || y <= -w) return;
  // Turning anticlockwise puts the line's start at the bottom of the box and the glyphs' tops on its left.
  for_each_font_pixel(text, [&](int64_t u, int64_t v) {
    fill_rect(canvas, x + v * scale, y + w - (u + 1) * scale, scale, scale, colour);
  });
}

int64_t ChartLayout::y_of(double v) const {
  const double f = (v - y_min) / (y_max - y_min);
  return bottom - 1 - std::llround(f * static_cast<double>(bottom - 1 - top));
}

Canvas render_bar_chart(const BarChart& chart, int64_t width, int64_t height, ChartLayout* layout) {
  const std::string what = chart.title.empty() ? "bar chart" : "bar chart '" + chart.title + "'";
  const size_t n = chart.categories.size();
  check_columns(what, n, chart.values.size(), chart.highlight.size());
  double lo = 0, hi = 0;  // bars grow from 0, so 0 is always in range
  for (size_t i = 0; i < n; ++i) {
    check_finite(what, chart.categories[i], chart.values[i]);
    lo = std::min(lo, chart.values[i]);
    hi = std::max(hi, chart.values[i]);
  }
  if (chart.reference) {
    check_finite(what, "reference line", *chart.reference);
    lo = std::min(lo, *chart.reference);
    hi = std::max(hi, *chart.reference);
  }
  if (hi == lo) hi = 1;  // all zero

  Canvas canvas = make_canvas(width, height);
  const ChartLayout l =
      draw_frame(canvas, what, chart.title, chart.x_label, chart.y_label, chart.categories, nice_ticks(lo, hi));
  const int64_t s = text_scale(canvas), slot = (l.right - l.left) / static_cast<int64_t>(n);
  const int64_t bar = std::max<int64_t>(1, slot * 7 / 10), zero = l.y_of(0);
  for (size_t i = 0; i < n; ++i) {
    const int64_t end = l.y_of(chart.values[i]), top = std::min(end, zero), bottom = std::max(end, zero);
    const Colour colour = !chart.highlight.empty() && chart.highlight[i] ? kAccent : kBar;
    fill_rect(canvas, l.centres[i] - bar / 2, top, bar, bottom - top + 1, colour);
  }
  if (l.y_min < 0) draw_line(canvas, l.left, zero, l.right - 1, zero, kBlack);
  if (chart.reference) {
    const int64_t y = l.y_of(*chart.reference);
    draw_line(canvas, l.left, y, l.right - 1, y, kReference, s, 6 * s);
  }
  if (layout) *layout = l;
  return canvas;
}

Canvas render_strip_plot(const StripPlot& plot, int64_t width, int64_t height, ChartLayout* layout) {
  const std::string what = plot.title.empty() ? "strip plot" : "strip plot '" + plot.title + "'";
  const size_t n = plot.groups.size();
  check_columns(what, n, plot.values.size(), plot.highlight.size());
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (size_t g = 0; g < n; ++g)
    for (double v : plot.values[g]) {
      check_finite(what, plot.groups[g], v);
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  if (lo > hi) {  // no values at all: an empty frame over [0, 1]
    lo = 0;
    hi = 1;
  } else if (hi - lo <= 1e-12 * std::max({1.0, std::abs(lo), std::abs(hi)})) {  // one value: a band around it
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }

  Canvas canvas = make_canvas(width, height);
  const ChartLayout l = draw_frame(canvas, what, plot.title, "", plot.y_label, plot.groups, nice_ticks(lo, hi));
  const int64_t s = text_scale(canvas), slot = (l.right - l.left) / static_cast<int64_t>(n);
  const int64_t spread = std::min<int64_t>(slot / 2, 60 * s), mark = std::min<int64_t>(slot * 7 / 20, 40 * s);
  for (size_t g = 0; g < n; ++g) {
    const std::vector<double>& values = plot.values[g];
    if (values.empty()) continue;
    const Colour colour = !plot.highlight.empty() && plot.highlight[g] ? kAccent : kBar;
    for (size_t i = 0; i < values.size(); ++i) {
      const auto dx = static_cast<int64_t>(std::llround((jitter(g, i) - 0.5) * static_cast<double>(spread)));
      fill_disk(canvas, l.centres[g] + dx, l.y_of(values[i]), 2 * s, colour);
    }
    const int64_t y = l.y_of(median(values));
    draw_line(canvas, l.centres[g] - mark, y, l.centres[g] + mark, y, kMedian, 2 * s);
  }
  if (layout) *layout = l;
  return canvas;
}

std::string encode_png(const Canvas& canvas) {
  planes(canvas);
  return encode_png_grid(canvas.pixels, 1, 1, 0);
}

void write_png(const std::string& path, const Canvas& canvas) {
  planes(canvas);
  write_png_grid(path, canvas.pixels, 1, 1, 0);
}

}  // namespace lethe::attacks::plot
