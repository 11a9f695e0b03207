#pragma once
// Private to src/io: khalo's dataset attributes (docs/snapshots.md), written and read.
// Reading treats the file as untrusted: an attribute of another kind or size
// than khalo writes reads as absent, never as a larger read into a small buffer.

#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>

namespace khalo::io::detail {

/// A fixed-length, NUL-terminated scalar string attribute (variable-length
/// strings live in the global heap, which HDF5 1.10 may crash on when damaged).
void write_string_attribute(hid_t obj, const char* name, const std::string& value);
void write_int_attribute(hid_t obj, const char* name, std::int64_t value);

/// The value of a scalar integer attribute; nullopt when absent, not an integer or not one element.
std::optional<std::int64_t> read_int_attribute(hid_t obj, const char* name);
/// The value of a scalar string attribute; "" when absent, not a string, not one
/// element or longer than max_string_attribute bytes.
std::string read_string_attribute(hid_t obj, const char* name);

/// The longest string attribute khalo reads (its own are a few bytes).
inline constexpr std::size_t max_string_attribute = 64 * 1024;

}  // namespace khalo::io::detail
