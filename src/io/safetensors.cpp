#include <khalo/detail/comm.hpp>
#include <khalo/detail/strides.hpp>
#include <khalo/io/safetensors.hpp>
#include <khalo/io/snapshot.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <limits>

namespace khalo::io {

namespace {

static_assert(std::numeric_limits<float>::is_iec559, "khalo::io::SafetensorsFile: needs IEEE-754 float");

bool little_endian() {
  const std::uint16_t one = 1;
  unsigned char first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

std::uint64_t read_le64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::size_t element_size(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  if (dtype == "F64") return 8;
  return 0;
}

// IEEE half to float, exactly (every half is a float).
float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits = 0;
  if (exponent == 0x1f) {  // inf, nan
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {  // normal
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa != 0) {  // subnormal: normalise
    exponent = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
  } else {
    bits = sign;
  }
  float f = 0.0f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(std::uint16_t b) {
  const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
  float f = 0.0f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

SafetensorsFile::SafetensorsFile(MPI_Comm comm, const std::string& path) : path_(path) {
  std::string error;
  try {
    map_and_parse();
  } catch (const std::exception& e) {
    error = e.what();
  }
  khalo::detail::throw_if_any<Error>(comm, error);
}

SafetensorsFile::~SafetensorsFile() {
  if (data_ != nullptr) ::munmap(const_cast<unsigned char*>(data_), size_);
}

void SafetensorsFile::map_and_parse() {
  const std::string where = "khalo::io::SafetensorsFile: '" + path_ + "': ";
  if (!little_endian()) throw Error(where + "reading safetensors needs a little-endian host");
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(where + "cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(where + "not a regular file");
  }
  size_ = static_cast<std::size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw Error(where + "damaged file: " + std::to_string(size_) + " bytes, too short for the 8-byte header length");
  }
  void* map = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) throw Error(where + "cannot map: " + std::strerror(errno));
  data_ = static_cast<const unsigned char*>(map);

  const std::uint64_t header = read_le64(data_);
  if (header > kMaxHeaderBytes || header > size_ - 8) {
    throw Error(where + "damaged file: its header claims " + std::to_string(header) + " bytes, the file has " +
                std::to_string(size_ - 8) + " after the length (the format allows at most 100 MiB)");
  }
  const std::size_t data_start = 8 + static_cast<std::size_t>(header);
  const std::size_t data_bytes = size_ - data_start;
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(data_ + 8, data_ + data_start);
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + "damaged file: the header is not JSON (" + e.what() + ")");
  }
  if (!json.is_object()) throw Error(where + "damaged file: the header is not a JSON object");
  for (const auto& [key, value] : json.items()) {
    if (key == "__metadata__") continue;
    const std::string what = where + "damaged file: tensor '" + key + "' ";
    if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") || !value.contains("data_offsets")) {
      throw Error(what + "lacks dtype, shape or data_offsets");
    }
    const auto& dt = value["dtype"];
    const auto& sh = value["shape"];
    const auto& off = value["data_offsets"];
    if (!dt.is_string() || !sh.is_array() || !off.is_array() || off.size() != 2) {
      throw Error(what + "has a malformed dtype, shape or data_offsets");
    }
    Entry e;
    e.dtype = dt.get<std::string>();
    const std::size_t elem = element_size(e.dtype);
    if (elem == 0) throw Error(what + "has dtype " + e.dtype + "; khalo reads F32, F16, BF16 and F64");
    std::int64_t count = 1;
    for (const auto& d : sh) {
      if (!d.is_number_unsigned()) throw Error(what + "has a shape entry that is not a non-negative integer");
      const auto n = d.get<std::uint64_t>();
      if (n > static_cast<std::uint64_t>(kMaxElements) ||
          (n > 0 && count > kMaxElements / static_cast<std::int64_t>(n))) {
        throw Error(what + "claims more than " + std::to_string(kMaxElements) + " elements");
      }
      count *= static_cast<std::int64_t>(n);
      e.shape.push_back(static_cast<std::int64_t>(n));
    }
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) {
      throw Error(what + "has data_offsets that are not non-negative integers");
    }
    const auto begin = off[0].get<std::uint64_t>();
    const auto end = off[1].get<std::uint64_t>();
    if (begin > end || end > data_bytes) {
      throw Error(what + "has bytes [" + std::to_string(begin) + ", " + std::to_string(end) + ") outside the file's " +
                  std::to_string(data_bytes) + " bytes of data");
    }
    if (end - begin != static_cast<std::uint64_t>(count) * elem) {
      throw Error(what + "has " + std::to_string(end - begin) + " bytes, but shape " +
                  khalo::detail::shape_text(e.shape) + " of " + e.dtype + " needs " +
                  std::to_string(static_cast<std::uint64_t>(count) * elem));
    }
    e.begin = data_start + static_cast<std::size_t>(begin);
    e.bytes = static_cast<std::size_t>(end - begin);
    keys_.push_back(key);
    entries_.emplace(key, std::move(e));
  }
}

const SafetensorsFile::Entry& SafetensorsFile::entry(const std::string& key) const {
  const auto it = entries_.find(key);
  if (it == entries_.end()) throw Error("khalo::io::SafetensorsFile: '" + path_ + "': missing key '" + key + "'");
  return it->second;
}

std::vector<float> SafetensorsFile::load(const std::string& key,
                                         const std::vector<std::int64_t>& expected_shape) const {
  const Entry& e = entry(key);
  if (e.shape != expected_shape) {
    throw Error("khalo::io::SafetensorsFile: '" + path_ + "': key '" + key + "' has shape " +
                khalo::detail::shape_text(e.shape) + ", expected " + khalo::detail::shape_text(expected_shape));
  }
  const std::size_t n = static_cast<std::size_t>(khalo::detail::element_count(e.shape));
  std::vector<float> out(n);
  const unsigned char* p = data_ + e.begin;
  if (e.dtype == "F32") {
    std::memcpy(out.data(), p, n * 4);
  } else if (e.dtype == "F64") {
    for (std::size_t i = 0; i < n; ++i) {
      double d = 0.0;
      std::memcpy(&d, p + 8 * i, 8);
      out[i] = static_cast<float>(d);
    }
  } else {
    const bool half = e.dtype == "F16";
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint16_t v = static_cast<std::uint16_t>(p[2 * i] | (p[2 * i + 1] << 8));
      out[i] = half ? half_to_float(v) : bf16_to_float(v);
    }
  }
  return out;
}

}  // namespace khalo::io
