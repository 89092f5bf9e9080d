#pragma once
// MATLAB level-5 MAT files (the format of SVHN's train_32x32.mat, test_32x32.mat and extra_32x32.mat).
// Reads the 128-byte header, then top-level data elements: miMATRIX arrays, either directly or inside miCOMPRESSED
// (zlib) elements. Only real numeric arrays are decoded; other array classes (cell, struct, sparse, char...) are
// skipped by their declared size. Other MAT variants (v7.3 is HDF5; v4 has no text header) are refused with a
// message saying what the file is. Every tag's size is checked against the bytes that remain before anything is
// allocated, and decompression is capped.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/data.h"

namespace lethe {

// MATLAB array classes (mxClassID) of the numeric kinds.
enum class MatClass : int {
  Double = 6, Single = 7, Int8 = 8, UInt8 = 9, Int16 = 10, UInt16 = 11, Int32 = 12, UInt32 = 13, Int64 = 14,
  UInt64 = 15
};

struct MatArray {
  std::string name;
  MatClass cls = MatClass::Double;
  std::vector<uint64_t> dims;  // as MATLAB reports them (column-major: dims[0] varies fastest)
  // Element values converted to double, in storage (column-major) order. MATLAB may store an array with a smaller
  // element type than its class (a double array of small integers saved as miUINT8), so the stored type is decoded
  // as it is. For uint8 arrays this is left empty and `u8` is filled instead, to avoid an 8x blow-up on SVHN.
  std::vector<double> values;
  std::string u8;
  uint64_t numel() const;
};

// Parses a whole file's bytes (`path` only names it in errors). The fuzz entry point.
std::vector<MatArray> parse_mat5(const std::string& path, const std::string& bytes,
                                 size_t max_decompressed_bytes = size_t(1) << 32);
std::vector<MatArray> read_mat5(const std::string& path);

// SVHN cropped digits: X is uint8 32x32x3xN (column-major), y is N labels 1..10 where 10 means digit 0.
// Images come out [N, 3, 32, 32] row-major; labels 0..9.
Dataset svhn_from_mat(const std::string& path, const std::vector<MatArray>& arrays);
Dataset load_svhn(const std::string& path);

}  // namespace lethe
