#include "engine/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>

#include <nlohmann/json.hpp>

namespace lethe {

// The format is little-endian; tensors are read and written as raw host memory, so the host must be too.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

// Caps the JSON header so a corrupt length cannot make us allocate gigabytes (the reference reader uses 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
constexpr const char* kMetadataKey = "__metadata__";

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

std::string errno_text() { return std::strerror(errno); }

// One validated header entry; nothing is allocated for it until every entry has passed.
struct Entry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

bool parse_dtype(const std::string& text, DType& out) {
  if (text == "F32") out = DType::F32;
  else if (text == "I64") out = DType::I64;
  else return false;
  return true;
}

// A JSON integer in [0, limit], or false.
bool json_to_u64(const nlohmann::json& j, uint64_t limit, uint64_t& out) {
  if (j.is_number_unsigned()) {
    out = j.get<uint64_t>();
  } else if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v < 0) return false;
    out = static_cast<uint64_t>(v);
  } else {
    return false;
  }
  return out <= limit;
}

Entry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& j, uint64_t data_bytes) {
  const std::string where = path + ": tensor '" + name + "'";
  if (!j.is_object()) throw InputError(where + ": header entry is not a JSON object");
  Entry e;
  e.name = name;

  const auto dtype_it = j.find("dtype");
  if (dtype_it == j.end() || !dtype_it->is_string()) throw InputError(where + ": missing or non-string \"dtype\"");
  const std::string dtype_text = dtype_it->get<std::string>();
  if (!parse_dtype(dtype_text, e.dtype))
    throw InputError(where + ": unsupported dtype \"" + dtype_text + "\" (Lethe reads F32 and I64 only)");

  const auto shape_it = j.find("shape");
  if (shape_it == j.end() || !shape_it->is_array()) throw InputError(where + ": missing or non-array \"shape\"");
  // numel·dtype_size must fit the data section, so bounding the running product by it rules out overflow too.
  uint64_t numel = 1;
  for (const auto& d : *shape_it) {
    uint64_t dim = 0;
    if (!json_to_u64(d, static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), dim))
      throw InputError(where + ": shape " + shape_it->dump() + " has an entry that is not a non-negative integer");
    e.shape.push_back(static_cast<int64_t>(dim));
    if (numel != 0 && dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim)
      throw InputError(where + ": shape " + shape_it->dump() + " has too many elements");
    numel *= dim;
  }
  const uint64_t elem = dtype_size(e.dtype);
  if (numel > std::numeric_limits<uint64_t>::max() / elem)
    throw InputError(where + ": shape " + shape_it->dump() + " has too many elements");
  const uint64_t nbytes = numel * elem;

  const auto off_it = j.find("data_offsets");
  if (off_it == j.end() || !off_it->is_array() || off_it->size() != 2)
    throw InputError(where + ": missing \"data_offsets\" or not a [begin, end] pair");
  if (!json_to_u64((*off_it)[0], std::numeric_limits<uint64_t>::max(), e.begin) ||
      !json_to_u64((*off_it)[1], std::numeric_limits<uint64_t>::max(), e.end))
    throw InputError(where + ": data_offsets " + off_it->dump() + " are not non-negative integers");
  if (e.begin > e.end) throw InputError(where + ": data_offsets " + off_it->dump() + " have begin > end");
  if (e.end > data_bytes)
    throw InputError(where + ": data_offsets " + off_it->dump() + " run past the end of the data section (" +
                     std::to_string(data_bytes) + " bytes; file truncated?)");
  if (e.end - e.begin != nbytes)
    throw InputError(where + ": data_offsets " + off_it->dump() + " span " + std::to_string(e.end - e.begin) +
                     " bytes but " + dtype_text + " " + shape_it->dump() + " needs " + std::to_string(nbytes));
  return e;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const nlohmann::json& j) {
  if (!j.is_object()) throw InputError(path + ": \"__metadata__\" is not a JSON object");
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string())
      throw InputError(path + ": \"__metadata__\" value for \"" + key + "\" is not a string (found " +
                       value.type_name() + ")");
    out[key] = value.get<std::string>();
  }
  return out;
}

void read_exact(std::FILE* f, void* dst, size_t bytes, uint64_t offset, const std::string& path) {
  if (bytes == 0) return;
  if (fseeko(f, static_cast<off_t>(offset), SEEK_SET) != 0 || std::fread(dst, 1, bytes, f) != bytes)
    throw InputError(path + ": read failed at byte " + std::to_string(offset) + " (file truncated or changed?)");
}

// The JSON header's length from the first 8 bytes of a file of `file_bytes` (>= 8) bytes, checked to fit.
uint64_t checked_header_length(const std::string& path, const char* first8, uint64_t file_bytes) {
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, first8, 8);
  const uint64_t header_limit = std::min(file_bytes - 8, kMaxHeaderBytes);
  if (header_bytes < 2 || header_bytes > header_limit)
    throw InputError(path + ": header length " + std::to_string(header_bytes) + " is out of bounds (file has " +
                     std::to_string(file_bytes) + " bytes, limit " + std::to_string(header_limit) +
                     "; truncated or not a safetensors file?)");
  return header_bytes;
}

}  // namespace

const Tensor* SafeTensorsFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

SafeTensorsFile parse_safetensors(const std::string& path, const std::string& bytes) {
  const uint64_t file_bytes = bytes.size();
  if (file_bytes < 8)
    throw InputError(path + ": truncated safetensors file (" + std::to_string(file_bytes) +
                     " bytes, the 8-byte header length alone needs more)");

  const uint64_t header_bytes = checked_header_length(path, bytes.data(), file_bytes);
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_bytes));
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    throw InputError(path + ": malformed JSON header: " + e.what());
  }
  if (!root.is_object()) throw InputError(path + ": JSON header is not an object");

  const uint64_t data_start = 8 + header_bytes;
  const uint64_t data_bytes = file_bytes - data_start;
  SafeTensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [key, value] : root.items()) {
    if (key == kMetadataKey) out.metadata = parse_metadata(path, value);
    else entries.push_back(parse_entry(path, key, value, data_bytes));
  }

  // Stable: empty tensors sharing an offset keep the header's (sorted-by-name) order.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  const Entry* furthest = nullptr;  // the range reaching furthest so far; any later begin below its end overlaps
  for (const Entry& e : entries) {
    if (e.begin == e.end) continue;  // empty ranges occupy no bytes
    if (furthest && e.begin < furthest->end)
      throw InputError(path + ": tensors '" + furthest->name + "' [" + std::to_string(furthest->begin) + ", " +
                       std::to_string(furthest->end) + ") and '" + e.name + "' [" + std::to_string(e.begin) + ", " +
                       std::to_string(e.end) + ") overlap");
    if (!furthest || e.end > furthest->end) furthest = &e;
  }

  // Every size is now bounded by the input's, so allocating is safe.
  out.tensors.reserve(entries.size());
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (t.nbytes() != 0) std::memcpy(t.raw(), bytes.data() + data_start + e.begin, t.nbytes());
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

SafeTensorsFile read_safetensors(const std::string& path) {
  std::error_code ec;
  const uint64_t file_bytes = std::filesystem::file_size(path, ec);
  if (ec) throw InputError(path + ": cannot read safetensors file: " + ec.message());
  if (file_bytes < 8)
    throw InputError(path + ": truncated safetensors file (" + std::to_string(file_bytes) +
                     " bytes, the 8-byte header length alone needs more)");

  FilePtr f(std::fopen(path.c_str(), "rb"));
  if (!f) throw InputError(path + ": cannot open safetensors file: " + errno_text());
  // Check the header length before reading the rest, so a large file of another kind is refused cheaply.
  char len_bytes[8];
  read_exact(f.get(), len_bytes, 8, 0, path);
  (void)checked_header_length(path, len_bytes, file_bytes);
  std::string bytes(static_cast<size_t>(file_bytes), '\0');
  read_exact(f.get(), bytes.data(), bytes.size(), 0, path);
  return parse_safetensors(path, bytes);
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the caller's tensor order in the header (plain json would sort the keys).
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header[kMetadataKey] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == kMetadataKey || header.contains(name))
      throw Error(ExitCode::Other, path + ": cannot write tensor name '" + name + "' twice or as " + kMetadataKey);
    LETHE_CHECK(t.defined(), "write_safetensors: tensor '" + name + "' is undefined");
    const uint64_t end = offset + t.nbytes();
    header[name] = {{"dtype", dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, end}}};
    offset = end;
  }

  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // e.g. a name or metadata value that is not UTF-8
    throw Error(ExitCode::Other, path + ": cannot encode safetensors header: " + e.what());
  }
  // Pad with spaces to a multiple of 8 so the data section starts aligned, as the reference writer does.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  std::string bytes;
  bytes.reserve(8 + header_text.size() + offset);
  const uint64_t header_len = header_text.size();
  bytes.append(reinterpret_cast<const char*>(&header_len), 8);
  bytes += header_text;
  for (const auto& [name, t] : tensors) {
    if (t.nbytes() == 0) continue;
    const Tensor host = t.device() == Device::CPU ? t : t.to_cpu();
    bytes.append(static_cast<const char*>(host.raw()), host.nbytes());
  }
  write_file_atomic(path, bytes);
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  // Same directory as the target, so the rename stays on one filesystem and is atomic.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  auto fail = [&](const std::string& what) {
    const std::string reason = errno_text();
    std::remove(tmp.c_str());
    throw Error(ExitCode::Other, path + ": " + what + ": " + reason);
  };

  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(ExitCode::Other, path + ": cannot create " + tmp + ": " + errno_text());
  const bool written = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fflush(f) == 0 &&
                       ::fsync(::fileno(f)) == 0;
  if (!written) {
    const int saved = errno;
    std::fclose(f);
    errno = saved;
    fail("write failed");
  }
  if (std::fclose(f) != 0) fail("close failed");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename " + tmp + " over it");

  // Persist the rename itself; best effort, the data is already safe in the file.
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const int dir = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace lethe
