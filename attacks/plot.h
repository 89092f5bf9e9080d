#pragma once
// Report figures without a plotting library: an RGB canvas with rectangles, lines and a built-in 5x7 bitmap font,
// bar charts and strip plots drawn on it, and PNG output through datasets/png_grid.h. Everything drawn is clipped to
// the canvas, so callers may place shapes and text partly or wholly outside it. Rendering is deterministic: the same
// chart gives the same bytes (strip-plot jitter is a hash of the point's index, not a random draw).
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace lethe::attacks::plot {

// An RGB colour, each channel in [0, 1].
struct Colour {
  float r = 0, g = 0, b = 0;
  friend bool operator==(const Colour&, const Colour&) = default;
};

// The palette the charts use, public so callers and tests can find what a chart drew.
inline constexpr Colour kWhite{1, 1, 1};
inline constexpr Colour kBlack{0, 0, 0};
inline constexpr Colour kGrid{0.88f, 0.88f, 0.88f};       // horizontal gridlines at the y ticks
inline constexpr Colour kBar{0.27f, 0.51f, 0.71f};        // bars and strip-plot dots
inline constexpr Colour kAccent{0.87f, 0.33f, 0.16f};     // highlighted bars and dots (e.g. the forgotten class)
inline constexpr Colour kReference{0.5f, 0.1f, 0.5f};     // the bar chart's dashed reference line
inline constexpr Colour kMedian{0.1f, 0.1f, 0.1f};        // the strip plot's median marks

// Pixels [1, 3, height, width] (CPU f32, RGB planes, values in [0, 1]): the layout encode_png_grid takes.
struct Canvas {
  int64_t width = 0, height = 0;
  Tensor pixels;
};

inline constexpr int64_t kMaxCanvasSide = 8192;  // a guard against typos such as 64000x400, not a PNG limit

// A white canvas. Throws UsageError for a side below 1 or above kMaxCanvasSide.
Canvas make_canvas(int64_t width, int64_t height);

// The colour at (x, y); throws UsageError outside the canvas (reading, unlike drawing, is never clipped).
Colour pixel(const Canvas& canvas, int64_t x, int64_t y);

// The rectangle [x, x + w) x [y, y + h), clipped; w or h <= 0 draws nothing.
void fill_rect(Canvas& canvas, int64_t x, int64_t y, int64_t w, int64_t h, Colour colour);

// A line from (x0, y0) to (x1, y1), both ends included, in any direction (Bresenham), drawn with a square pen
// `thickness` pixels wide. With dash > 0 it alternates `dash` pixels drawn and `dash` skipped. Clipped, and cheap
// even for endpoints far outside the canvas. Throws UsageError for thickness < 1 or dash < 0.
void draw_line(Canvas& canvas, int64_t x0, int64_t y0, int64_t x1, int64_t y1, Colour colour, int64_t thickness = 1,
               int64_t dash = 0);

// The built-in font: printable ASCII 32..126 as 5x7 glyphs, advancing 6 pixels (one blank column) per character.
inline constexpr int64_t kGlyphWidth = 5, kGlyphHeight = 7, kGlyphAdvance = 6;
inline constexpr int64_t kMaxTextScale = 64;

// The 7 rows of the glyph drawn for `c`, top first; bit 4 of a row is its leftmost pixel. Characters outside
// 32..126 (including UTF-8 bytes) get a hollow box.
std::array<uint8_t, kGlyphHeight> glyph_rows(char c);

// Pixels one line of text covers, magnified `scale` times: text.size() * kGlyphAdvance * scale wide (the trailing
// blank column included) and kGlyphHeight * scale high.
int64_t text_width(const std::string& text, int64_t scale = 1);
inline int64_t text_height(int64_t scale = 1) { return kGlyphHeight * scale; }

// One line of text with its top-left corner at (x, y), each font pixel a scale x scale square; clipped. Throws
// UsageError for a scale outside [1, kMaxTextScale].
void draw_text(Canvas& canvas, int64_t x, int64_t y, const std::string& text, Colour colour, int64_t scale = 1);
// The same text turned 90 degrees anticlockwise (reading upwards, as y-axis labels do) in the box of
// text_height(scale) x text_width(text, scale) whose top-left corner is (x, y).
void draw_text_up(Canvas& canvas, int64_t x, int64_t y, const std::string& text, Colour colour, int64_t scale = 1);

// Where a chart put things, for callers that annotate the figure afterwards and for tests that inspect it.
struct ChartLayout {
  int64_t left = 0, top = 0, right = 0, bottom = 0;  // the plot area [left, right) x [top, bottom)
  std::vector<int64_t> centres;                      // the x of each bar's or group's centre
  double y_min = 0, y_max = 1;                       // the value range the y axis spans (rounded to ticks)
  // The row of value v: y_max at `top`, y_min at `bottom - 1`.
  int64_t y_of(double v) const;
};

// One bar per category, growing from 0 (down for negative values), with y ticks at "nice" steps (1, 2 or 5 x 10^k).
struct BarChart {
  std::string title, x_label, y_label;
  std::vector<std::string> categories;
  std::vector<double> values;           // one per category
  std::vector<bool> highlight;          // empty, or one per category: true draws the bar in kAccent
  std::optional<double> reference;      // a dashed horizontal line, e.g. 0 or a chance level
};

// The bar chart on a width x height canvas; `layout`, when given, receives where it was drawn. Throws InputError for
// a non-finite value or reference (NaN never plots silently), UsageError for no categories, sizes that disagree, or
// a canvas too small to hold the chart.
Canvas render_bar_chart(const BarChart& chart, int64_t width = 640, int64_t height = 400,
                        ChartLayout* layout = nullptr);

// One column of dots per group (e.g. per-class attack scores: the forgotten class against the rest), each dot
// jittered sideways by a hash of its index, with the group's median as a short horizontal mark.
struct StripPlot {
  std::string title, y_label;
  std::vector<std::string> groups;
  std::vector<std::vector<double>> values;  // one list per group; a group may be empty
  std::vector<bool> highlight;              // empty, or one per group: true draws its dots in kAccent
};

// The strip plot, with the same errors and `layout` as render_bar_chart.
Canvas render_strip_plot(const StripPlot& plot, int64_t width = 640, int64_t height = 400,
                         ChartLayout* layout = nullptr);

// The canvas as PNG bytes, and written to `path` atomically (encode_png_grid / write_png_grid with one image).
std::string encode_png(const Canvas& canvas);
void write_png(const std::string& path, const Canvas& canvas);

}  // namespace lethe::attacks::plot
