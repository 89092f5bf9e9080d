#pragma once
// STL-10 binary version: train_X.bin/train_y.bin and test_X.bin/test_y.bin. X is a headerless run of u8 images,
// each 3x96x96 stored column-major (per channel plane, the row index varies fastest), so it is transposed into
// [3, 96, 96] row-major. y is one byte per image holding 1..10, mapped to 0..9.
#include <string>

#include "engine/data.h"

namespace lethe {

// Decodes the bytes of an X file and a y file (paths only name them in errors). The fuzz entry point. Throws
// InputError if the lengths disagree (naming both files and counts) or a label is outside 1..10 (naming its offset).
Dataset parse_stl10(const std::string& x_path, const std::string& x_bytes, const std::string& y_path,
                    const std::string& y_bytes);
Dataset load_stl10(const std::string& x_path, const std::string& y_path);

}  // namespace lethe
