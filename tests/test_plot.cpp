#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <vector>

#include "attacks/plot.h"
#include "datasets/image_folder.h"
#include "engine/error.h"
#include "tests/test_util.h"

using namespace lethe;
using namespace lethe::attacks::plot;
using lethe::test::contains;
using lethe::test::input_error_of;
using lethe::test::TempDir;
using lethe::test::usage_error_of;

namespace {

constexpr Colour kRed{1, 0, 0};
constexpr Colour kBlue{0, 0, 1};
constexpr int64_t kFar = std::numeric_limits<int64_t>::max();

// Pixels of `colour` in [x0, x1) x [y0, y1) (the whole canvas by default).
int64_t count(const Canvas& c, Colour colour, int64_t x0 = 0, int64_t y0 = 0, int64_t x1 = -1, int64_t y1 = -1) {
  if (x1 < 0) x1 = c.width;
  if (y1 < 0) y1 = c.height;
  int64_t n = 0;
  for (int64_t y = y0; y < y1; ++y)
    for (int64_t x = x0; x < x1; ++x) n += pixel(c, x, y) == colour ? 1 : 0;
  return n;
}

// The first and last row of column x holding `colour`, or {-1, -1}.
std::pair<int64_t, int64_t> rows_of(const Canvas& c, int64_t x, Colour colour) {
  int64_t first = -1, last = -1;
  for (int64_t y = 0; y < c.height; ++y)
    if (pixel(c, x, y) == colour) {
      if (first < 0) first = y;
      last = y;
    }
  return {first, last};
}

int64_t set_bits(const std::array<uint8_t, kGlyphHeight>& rows) {
  int64_t n = 0;
  for (uint8_t r : rows) n += std::popcount(r);
  return n;
}

// A canvas whose pixels sit between two guard bands of a larger buffer, so a write out of bounds shows up as a
// changed guard value (the pixels tensor only borrows the buffer, which the caller keeps alive).
struct GuardedCanvas {
  static constexpr int64_t kGuard = 4096;
  static constexpr float kSentinel = -7.0f;
  std::vector<float> buffer;
  Canvas canvas;
  GuardedCanvas(int64_t width, int64_t height) {
    const Canvas white = make_canvas(width, height);
    buffer.assign(static_cast<size_t>(white.pixels.numel() + 2 * kGuard), kSentinel);
    std::copy_n(white.pixels.f32(), white.pixels.numel(), buffer.begin() + kGuard);
    canvas = {width, height, Tensor::borrow(buffer.data() + kGuard, {1, 3, height, width})};
  }
  bool guards_intact() const {
    const auto intact = [](auto first, auto last) {
      return std::all_of(first, last, [](float v) { return v == kSentinel; });
    };
    return intact(buffer.begin(), buffer.begin() + kGuard) && intact(buffer.end() - kGuard, buffer.end());
  }
};

BarChart sample_bars() {
  BarChart chart;
  chart.title = "Accuracy change";
  chart.x_label = "class";
  chart.y_label = "delta (%)";
  chart.categories = {"cat", "dog", "ship"};
  chart.values = {1, -0.5, 2};
  chart.highlight = {false, false, true};
  chart.reference = 0.5;
  return chart;
}

StripPlot sample_strips() {
  StripPlot plot;
  plot.title = "Per-class attack scores";
  plot.y_label = "score";
  plot.groups = {"0", "1 (forgot)", "2"};
  plot.values = {{0.1, 0.2, 0.15, 0.3}, {0.9, 0.95, 0.85}, {0.2, 0.25}};
  plot.highlight = {false, true, false};
  return plot;
}

}  // namespace

TEST_CASE("plot canvas: white, fill_rect colours exactly its rectangle, clipped at the edges") {
  Canvas c = make_canvas(7, 5);
  CHECK(c.pixels.shape() == Shape{1, 3, 5, 7});
  for (float v : c.pixels.to_vector()) REQUIRE(v == 1.0f);
  CHECK(count(c, kWhite) == 35);

  fill_rect(c, 2, 1, 3, 2, kRed);  // x 2..4, y 1..2
  CHECK(count(c, kRed) == 6);
  for (int64_t y = 1; y <= 2; ++y)
    for (int64_t x = 2; x <= 4; ++x) CHECK(pixel(c, x, y) == kRed);
  CHECK(pixel(c, 1, 1) == kWhite);
  CHECK(pixel(c, 5, 2) == kWhite);
  CHECK(pixel(c, 2, 0) == kWhite);
  CHECK(pixel(c, 4, 3) == kWhite);

  fill_rect(c, -2, 3, 4, 10, kBlue);  // only x 0..1, y 3..4 is on the canvas
  CHECK(count(c, kBlue) == 4);
  CHECK(pixel(c, 0, 3) == kBlue);
  CHECK(pixel(c, 1, 4) == kBlue);
  CHECK(pixel(c, 2, 3) == kWhite);

  const std::vector<float> before = c.pixels.to_vector();
  fill_rect(c, 7, 0, 3, 3, kBlue);  // right of the canvas
  fill_rect(c, -5, -5, 5, 5, kBlue);  // above and left, touching the corner
  fill_rect(c, 0, 5, 7, 1, kBlue);    // below
  fill_rect(c, 1, 1, 0, 3, kBlue);    // empty
  fill_rect(c, 1, 1, -3, 3, kBlue);
  fill_rect(c, kFar, kFar, kFar, kFar, kBlue);
  fill_rect(c, -kFar - 1, 0, kFar, 5, kBlue);
  CHECK(c.pixels.to_vector() == before);
  fill_rect(c, -kFar - 1, -kFar - 1, kFar, kFar, kBlue);  // ends at -2: still nothing
  CHECK(c.pixels.to_vector() == before);
  fill_rect(c, -kFar, -kFar, kFar, kFar, kBlue);  // ends at x = y = 0 exclusive: nothing
  CHECK(c.pixels.to_vector() == before);
  fill_rect(c, -10, -10, kFar, kFar, kRed);  // covers everything without overflowing
  CHECK(count(c, kRed) == 35);

  GuardedCanvas g(9, 6);
  fill_rect(g.canvas, -100, -100, 1000, 1000, kBlue);
  CHECK(count(g.canvas, kBlue) == 54);
  CHECK(g.guards_intact());

  CHECK(contains(usage_error_of([] { make_canvas(0, 5); }), "[1, 8192]"));
  CHECK(contains(usage_error_of([] { make_canvas(5, -1); }), "5x-1"));
  CHECK(contains(usage_error_of([] { make_canvas(9000, 10); }), "9000x10"));
  CHECK(contains(usage_error_of([&] { pixel(c, 7, 0); }), "outside"));
  CHECK(contains(usage_error_of([&] { pixel(c, 0, -1); }), "outside"));
  Canvas broken = c;
  broken.width = 8;  // the pixels no longer match
  CHECK(contains(usage_error_of([&] { fill_rect(broken, 0, 0, 1, 1, kRed); }), "[1, 3, height, width]"));
}

TEST_CASE("plot lines: any direction, thick, dashed, and clipped however far the ends are") {
  Canvas c = make_canvas(8, 8);
  draw_line(c, 1, 2, 5, 2, kRed);
  CHECK(count(c, kRed) == 5);
  CHECK(count(c, kRed, 1, 2, 6, 3) == 5);

  c = make_canvas(8, 8);
  draw_line(c, 3, 6, 3, 0, kRed);  // upwards
  CHECK(count(c, kRed) == 7);
  CHECK(count(c, kRed, 3, 0, 4, 7) == 7);

  c = make_canvas(8, 8);
  draw_line(c, 6, 6, 0, 0, kRed);  // diagonal, drawn backwards
  CHECK(count(c, kRed) == 7);
  for (int64_t i = 0; i <= 6; ++i) CHECK(pixel(c, i, i) == kRed);

  c = make_canvas(8, 8);
  draw_line(c, 0, 0, 7, 3, kRed);  // shallow slope: one pixel per column, rows never skip
  CHECK(count(c, kRed) == 8);
  for (int64_t x = 0; x < 8; ++x) CHECK(rows_of(c, x, kRed).first == rows_of(c, x, kRed).second);
  CHECK(pixel(c, 0, 0) == kRed);
  CHECK(pixel(c, 7, 3) == kRed);

  c = make_canvas(12, 6);
  draw_line(c, 0, 1, 11, 1, kRed, 1, 2);  // on on off off ...
  CHECK(count(c, kRed) == 6);
  for (int64_t x : {0, 1, 4, 5, 8, 9}) CHECK(pixel(c, x, 1) == kRed);
  for (int64_t x : {2, 3, 6, 7, 10, 11}) CHECK(pixel(c, x, 1) == kWhite);
  draw_line(c, 0, 4, 11, 4, kBlue, 3);  // a 3-pixel pen: rows 3..5
  CHECK(count(c, kBlue) == 36);

  GuardedCanvas g(16, 16);
  draw_line(g.canvas, -1'000'000'000'000'000, 5, 1'000'000'000'000'000, 5, kRed);  // clipped first
  CHECK(count(g.canvas, kRed) == 16);
  CHECK(count(g.canvas, kRed, 0, 5, 16, 6) == 16);
  draw_line(g.canvas, -1'000'000'000'000, -1'000'000'000'000, 1'000'000'000'000, 1'000'000'000'000, kBlue);
  CHECK(count(g.canvas, kBlue) == 16);
  for (int64_t i = 0; i < 16; ++i) CHECK(pixel(g.canvas, i, i) == kBlue);
  const std::vector<float> before = g.canvas.pixels.to_vector();
  draw_line(g.canvas, -10, -10, -1, -50, kBlue, 1);
  draw_line(g.canvas, 20, 0, 40, 15, kBlue, 3);
  draw_line(g.canvas, -kFar, kFar, kFar, kFar, kBlue, 5, 3);
  draw_line(g.canvas, -kFar - 1, -kFar - 1, -kFar - 1, kFar, kBlue);
  CHECK(g.canvas.pixels.to_vector() == before);
  draw_line(g.canvas, -3, 0, 20, 0, kBlue, 200);  // a pen larger than the canvas
  CHECK(count(g.canvas, kBlue) == 256);
  CHECK(g.guards_intact());

  CHECK(contains(usage_error_of([&] { draw_line(c, 0, 0, 1, 1, kRed, 0); }), "thickness"));
  CHECK(contains(usage_error_of([&] { draw_line(c, 0, 0, 1, 1, kRed, 1, -1); }), "dash"));
}

TEST_CASE("plot text: glyphs draw their bitmaps, unknown characters a box, widths and clipping") {
  // The table: printable ASCII, 5-bit rows, every glyph distinct, only the space blank.
  std::set<std::array<uint8_t, kGlyphHeight>> distinct;
  for (int code = 32; code <= 126; ++code) {
    const auto rows = glyph_rows(static_cast<char>(code));
    for (uint8_t r : rows) REQUIRE(r < 32);
    CHECK((set_bits(rows) == 0) == (code == ' '));
    distinct.insert(rows);
  }
  CHECK(distinct.size() == 95);
  const auto box = glyph_rows('\x01');
  CHECK(distinct.count(box) == 0);
  CHECK(glyph_rows('\x7f') == box);
  CHECK(glyph_rows(static_cast<char>(0xC3)) == box);  // a UTF-8 lead byte

  // One glyph at scale 1 lights exactly its bitmap.
  Canvas c = make_canvas(12, 10);
  draw_text(c, 3, 2, "1", kBlack);
  const auto one = glyph_rows('1');
  CHECK(set_bits(one) == 10);  // 04 0C 04 04 04 04 0E
  CHECK(count(c, kBlack) == 10);
  for (int64_t v = 0; v < kGlyphHeight; ++v)
    for (int64_t u = 0; u < kGlyphWidth; ++u)
      CHECK((pixel(c, 3 + u, 2 + v) == kBlack) == (((one[v] >> (4 - u)) & 1) == 1));

  Canvas eight = make_canvas(12, 10);
  draw_text(eight, 3, 2, "8", kBlack);
  CHECK(count(eight, kBlack) == set_bits(glyph_rows('8')));
  CHECK(eight.pixels.to_vector() != c.pixels.to_vector());

  Canvas big = make_canvas(40, 40);
  draw_text(big, 1, 1, "%", kRed, 3);
  CHECK(count(big, kRed) == 9 * set_bits(glyph_rows('%')));
  Canvas unknown = make_canvas(12, 10);
  draw_text(unknown, 0, 0, "\t", kRed);
  CHECK(count(unknown, kRed) == 20);  // the hollow 5x7 box
  CHECK(pixel(unknown, 2, 3) == kWhite);

  // Several characters advance by kGlyphAdvance; the upward text is the same pixels turned anticlockwise.
  Canvas row = make_canvas(40, 10), up = make_canvas(10, 40);
  draw_text(row, 0, 0, "Ab:", kBlack);
  draw_text_up(up, 0, 0, "Ab:", kBlack);
  CHECK(count(row, kBlack) == set_bits(glyph_rows('A')) + set_bits(glyph_rows('b')) + set_bits(glyph_rows(':')));
  CHECK(count(up, kBlack) == count(row, kBlack));
  const int64_t w = text_width("Ab:", 1);
  for (int64_t y = 0; y < kGlyphHeight; ++y)
    for (int64_t x = 0; x < w; ++x) CHECK(pixel(row, x, y) == pixel(up, y, w - 1 - x));

  CHECK(text_width("abc", 2) == 3 * kGlyphAdvance * 2);
  CHECK(text_width("", 1) == 0);
  CHECK(text_height(3) == 21);
  CHECK(contains(usage_error_of([] { text_width("a", 0); }), "scale"));
  CHECK(contains(usage_error_of([&] { draw_text(c, 0, 0, "a", kBlack, kMaxTextScale + 1); }), "scale"));

  // Off the right edge: drawn up to the edge, nothing wraps into the next row, nothing written outside.
  GuardedCanvas g(30, 12);
  draw_text(g.canvas, 22, 0, "WWWWWWWWWWWWWWWW", kBlack, 1);
  CHECK(count(g.canvas, kBlack, 22, 0, 30, 7) > 0);
  CHECK(count(g.canvas, kBlack) == count(g.canvas, kBlack, 22, 0, 30, 7));
  draw_text(g.canvas, -7, 9, "HELLO", kBlue, 2);  // cut on the left and at the bottom
  CHECK(count(g.canvas, kBlue) > 0);
  CHECK(count(g.canvas, kBlue) == count(g.canvas, kBlue, 0, 9, 30, 12));
  const std::vector<float> before = g.canvas.pixels.to_vector();
  for (const auto& [x, y] : std::vector<std::pair<int64_t, int64_t>>{
           {30, 0}, {0, 12}, {-60, 0}, {0, -60}, {kFar, kFar}, {-kFar - 1, -kFar - 1}, {-kFar - 1, 0}}) {
    draw_text(g.canvas, x, y, "HELLO", kRed, 2);
    draw_text_up(g.canvas, x, y, "HELLO", kRed, 2);
  }
  CHECK(g.canvas.pixels.to_vector() == before);
  draw_text_up(g.canvas, 24, -150, "HELLO WORLD", kRed, 3);  // the first L shows
  CHECK(count(g.canvas, kRed) > 0);
  CHECK(g.guards_intact());
}

TEST_CASE("plot bar chart: bars grow from zero, the highlight in the accent colour, nice ticks") {
  const BarChart chart = sample_bars();
  ChartLayout l;
  const Canvas c = render_bar_chart(chart, 640, 400, &l);
  CHECK(c.width == 640);
  CHECK(c.height == 400);
  REQUIRE(l.centres.size() == 3);
  CHECK(l.y_min == -0.5);  // [-0.5, 2] in steps of 0.5
  CHECK(l.y_max == 2.0);
  CHECK(l.y_of(2.0) == l.top);
  CHECK(l.y_of(-0.5) == l.bottom - 1);

  // Each bar, found by scanning the column through its centre for its colour.
  const Colour colours[3] = {kBar, kBar, kAccent};
  std::pair<int64_t, int64_t> bars[3];
  for (int i = 0; i < 3; ++i) {
    bars[i] = rows_of(c, l.centres[i], colours[i]);
    REQUIRE(bars[i].first >= 0);
  }
  CHECK(count(c, kAccent) > 0);
  CHECK(count(c, kAccent, l.centres[0] - 5, 0, l.centres[1] + 5, c.height) == 0);
  CHECK(rows_of(c, l.centres[2], kBar).first == -1);
  const int64_t zero = l.y_of(0);
  CHECK(bars[2].first < bars[0].first);  // the tallest bar reaches highest
  CHECK(bars[2].first < bars[1].first);
  CHECK(bars[0].second == zero - 1);  // positive bars stand on the zero line...
  CHECK(bars[2].second == zero - 1);
  CHECK(bars[1].first == zero + 1);  // ...the negative one hangs below it
  CHECK(bars[1].second > bars[0].second);
  CHECK(pixel(c, l.centres[0], zero) == kBlack);
  const double unit = static_cast<double>(zero - bars[0].first);  // the height of 1
  CHECK(std::abs(static_cast<double>(zero - bars[2].first) - 2 * unit) <= 2);
  CHECK(std::abs(static_cast<double>(bars[1].second - zero) - 0.5 * unit) <= 2);

  // The reference line is dashed across the plot area; text lies above and left of it.
  const int64_t ref = l.y_of(0.5);
  const int64_t dashes = count(c, kReference, l.left, ref, l.right, ref + 1);
  CHECK(dashes > (l.right - l.left) / 3);
  CHECK(dashes < (l.right - l.left) * 2 / 3);
  CHECK(count(c, kBlack, 0, 0, c.width, l.top - 5) > 0);  // the title
  CHECK(count(c, kBlack, 0, l.top, l.left - 2, l.bottom) > 0);  // tick labels and the y label
  CHECK(count(c, kBlack, l.left, l.bottom + 2, l.right, c.height) > 0);  // category and x labels
  CHECK(count(c, kGrid) > 0);

  // Deterministic, and without highlights no accent.
  CHECK(render_bar_chart(chart).pixels.to_vector() == c.pixels.to_vector());
  BarChart plain = chart;
  plain.highlight.clear();
  CHECK(count(render_bar_chart(plain), kAccent) == 0);
  plain.values = {0, 0, 0};  // all zero still draws a frame over [0, 1]
  plain.reference.reset();
  ChartLayout zl;
  render_bar_chart(plain, 300, 200, &zl);
  CHECK(zl.y_min == 0);
  CHECK(zl.y_max == 1);
}

TEST_CASE("plot bar chart: NaN and infinity are input errors, bad shapes usage errors") {
  BarChart chart = sample_bars();
  chart.values[1] = std::nan("");
  CHECK(contains(input_error_of([&] { render_bar_chart(chart); }), "'dog' is not finite"));
  chart.values[1] = std::numeric_limits<double>::infinity();
  CHECK(contains(input_error_of([&] { render_bar_chart(chart); }), "not finite"));
  chart = sample_bars();
  chart.reference = std::nan("");
  CHECK(contains(input_error_of([&] { render_bar_chart(chart); }), "reference"));
  chart = sample_bars();
  chart.values = {-1e308, 1e308, 0};
  CHECK(contains(input_error_of([&] { render_bar_chart(chart); }), "span"));

  chart = sample_bars();
  chart.values.pop_back();
  CHECK(contains(usage_error_of([&] { render_bar_chart(chart); }), "2 values for 3 columns"));
  chart = sample_bars();
  chart.highlight = {true};
  CHECK(contains(usage_error_of([&] { render_bar_chart(chart); }), "highlight"));
  chart = BarChart{};
  CHECK(contains(usage_error_of([&] { render_bar_chart(chart); }), "no columns"));
  CHECK(contains(usage_error_of([] { render_bar_chart(sample_bars(), 60, 40); }), "too small"));
  CHECK(contains(usage_error_of([] { render_bar_chart(sample_bars(), 0, 400); }), "canvas"));
}

TEST_CASE("plot strip plot: dots in every group's column, medians marked, NaN rejected") {
  const StripPlot plot = sample_strips();
  ChartLayout l;
  const Canvas c = render_strip_plot(plot, 640, 400, &l);
  REQUIRE(l.centres.size() == 3);
  const int64_t slot = (l.right - l.left) / 3;
  for (size_t g = 0; g < 3; ++g) {
    const int64_t x0 = l.centres[g] - slot / 2, x1 = l.centres[g] + slot / 2;
    const Colour dot = g == 1 ? kAccent : kBar, other = g == 1 ? kBar : kAccent;
    CAPTURE(g);
    CHECK(count(c, dot, x0, l.top - 3, x1, l.bottom + 3) > 0);
    CHECK(count(c, other, x0, 0, x1, c.height) == 0);
    // Dots lie between the rows of the group's smallest and largest value (give or take their radius).
    const auto [lo, hi] = std::minmax_element(plot.values[g].begin(), plot.values[g].end());
    CHECK(count(c, dot, x0, 0, x1, l.y_of(*hi) - 2) == 0);
    CHECK(count(c, dot, x0, l.y_of(*lo) + 3, x1, c.height) == 0);
  }
  CHECK(pixel(c, l.centres[0], l.y_of(0.175)) == kMedian);  // even count: the mean of the middle two
  CHECK(pixel(c, l.centres[1], l.y_of(0.9)) == kMedian);
  CHECK(pixel(c, l.centres[2], l.y_of(0.225)) == kMedian);
  CHECK(render_strip_plot(plot).pixels.to_vector() == c.pixels.to_vector());  // jitter is deterministic

  StripPlot sparse = plot;
  sparse.values[2].clear();  // an empty group draws nothing in its column
  sparse.highlight.clear();
  const Canvas s = render_strip_plot(sparse, 640, 400, &l);
  CHECK(count(s, kBar, l.centres[2] - slot / 2, l.top, l.centres[2] + slot / 2, l.bottom) == 0);
  CHECK(count(s, kAccent) == 0);
  sparse.values = {{}, {}, {}};
  CHECK(count(render_strip_plot(sparse), kBar) == 0);
  sparse.values = {{3}, {3}, {3}};  // one distinct value: a band around it
  render_strip_plot(sparse, 640, 400, &l);
  CHECK(l.y_min < 3);
  CHECK(l.y_max > 3);

  StripPlot bad = plot;
  bad.values[0][2] = std::nan("");
  CHECK(contains(input_error_of([&] { render_strip_plot(bad); }), "'0' is not finite"));
  bad = plot;
  bad.values.pop_back();
  CHECK(contains(usage_error_of([&] { render_strip_plot(bad); }), "2 values for 3 columns"));
  bad = plot;
  bad.highlight.push_back(false);
  CHECK(contains(usage_error_of([&] { render_strip_plot(bad); }), "highlight"));
  CHECK(contains(usage_error_of([] { render_strip_plot(StripPlot{}); }), "no columns"));
}

TEST_CASE("plot png: encode_png gives a PNG of the canvas, write_png the same bytes") {
  Canvas c = make_canvas(16, 8);
  fill_rect(c, 2, 1, 5, 3, kAccent);
  draw_text(c, 8, 0, "7", kBlack);
  const std::string bytes = encode_png(c);
  REQUIRE(bytes.size() > 8);
  CHECK(bytes.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));

  // Decoded, it is the canvas to 8-bit precision.
  const Tensor decoded = decode_image("plot.png", bytes);
  REQUIRE(decoded.shape() == Shape{3, 8, 16});
  const std::vector<float> want = c.pixels.to_vector(), got = decoded.to_vector();
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(want[i] - got[i])));
  CHECK(worst <= 0.5 / 255 + 1e-6);

  TempDir dir("plot");
  const std::string path = dir.file("figure.png");
  write_png(path, c);
  CHECK(lethe::test::read_bytes(path) == bytes);
  write_png(path, render_bar_chart(sample_bars(), 320, 200));  // replaces the file
  CHECK(lethe::test::read_bytes(path) == encode_png(render_bar_chart(sample_bars(), 320, 200)));
  CHECK(contains(usage_error_of([] { encode_png(Canvas{}); }), "[1, 3, height, width]"));
}
