#pragma once
/// \file
/// Output a person can look at (docs/cli.md §4): the decoder's (N, 3, T, H, W)
/// output, distributed by bands of rows, written as one 8-bit RGB PNG per frame
/// and/or piped to ffmpeg as a video, a few frames at a time as they are decoded.

#include <khalo/io/snapshot.hpp>
#include <khalo/layout.hpp>

#include <mpi.h>
#include <Kokkos_Core.hpp>

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace khalo::io {

/// What a FrameSink writes; an empty path turns that output off.
struct FrameOutput {
  std::string frames_dir;  ///< one PNG per frame in this directory (created if needed)
  std::string video_path;  ///< one video, encoded by ffmpeg (its extension names the container)
  double fps = 16.0;       ///< frame rate of the video (Wan 2.1's)
};

/// The 8-bit value of a decoder output \p y (meant for [-1, 1]):
/// `round((clamp(y, -1, 1) / 2 + 0.5) * 255)`, computed in double, halves away
/// from zero; NaN gives 0.
std::uint8_t pixel_value(double y) noexcept;

/// Turns the decoder's output, a few frames at a time, into PNG files and/or a
/// video (docs/cli.md §4). Every method is collective over the communicator.
///
/// Each rank holds rows [row_begin, row_end) of every frame; the bands are in
/// rank order, contiguous, and cover rows [0, height) (a band may be one row, or
/// empty). Each rank converts its rows to 8-bit RGB; rank 0 gathers every frame,
/// writes its PNG (under a temporary name in the directory, then renamed: a
/// frame appears complete or not at all; an existing file of that name is
/// replaced) and feeds the video encoder.
///
/// The video is encoded by an `ffmpeg` found on PATH, or named by the
/// environment variable `KHALO_FFMPEG` (a path, or a name searched on PATH),
/// started by rank 0 with posix_spawn. It writes to a temporary name beside
/// the target that finish() renames once ffmpeg has exited with status 0.
/// Only a single sample (N = 1) can be a video.
///
/// Failure contract: an error (bad arguments, ranks that disagree, a directory
/// that cannot be made, a PNG that cannot be written, ffmpeg missing, dying or
/// failing) is thrown on every rank alike, as a CollectiveError (io::Error for
/// I/O, std::invalid_argument for arguments); the sink is then abandoned (no
/// video is left, PNGs already written stay) and later calls throw. A sink
/// destroyed without finish() stops ffmpeg and removes the temporary video; it
/// enters no collective during stack unwinding (an exception from elsewhere),
/// when it leaves its communicator unfreed and the job is expected to end
/// (docs/failure-policy.md).
class FrameSink {
 public:
  /// Collective: checks the shape (3 channels implied) and the bands, creates
  /// the directory, finds and starts ffmpeg.
  FrameSink(MPI_Comm comm, const FrameOutput& what, std::int64_t samples, std::int64_t height, std::int64_t width,
            std::int64_t row_begin, std::int64_t row_end);
  ~FrameSink();
  FrameSink(const FrameSink&) = delete;
  FrameSink& operator=(const FrameSink&) = delete;

  /// Collective: appends the first \p frames frames of \p band, this rank's
  /// rows: a rank-5 (N, 3, >= frames, row_end - row_begin, W) View of float or
  /// double, any layout (LayoutStride subviews included) and memory space. They
  /// are numbered after the frames already written.
  template <class View>
  void append(const View& band, int frames) {
    static_assert(Kokkos::is_view<View>::value && View::rank == 5,
                  "khalo::io::FrameSink::append: needs a rank-5 (N, C, T, H, W) Kokkos::View");
    using T = typename View::non_const_value_type;
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "khalo::io::FrameSink::append: float or double data only");
    std::string error = check_band(khalo::detail::extents_of(band), frames);
    std::vector<T> host;
    if (error.empty()) {
      try {
        const auto first =
            Kokkos::subview(band, Kokkos::ALL, Kokkos::ALL, std::make_pair(0, frames), Kokkos::ALL, Kokkos::ALL);
        host = SnapshotWriter::to_host_c_order(first);
      } catch (const std::exception& e) {
        error = std::string("khalo::io::FrameSink::append: cannot copy the band to the host: ") + e.what();
      }
    }
    append_c_order(host.data(), frames, error);
  }

  /// The same from this rank's band of the first \p frames frames on the host,
  /// (N, 3, frames, rows, W) in C order. A non-empty \p local_error (found by
  /// the caller on this rank) makes every rank throw it.
  void append_c_order(const float* band, int frames, const std::string& local_error = {});
  /// The same for a band of doubles.
  void append_c_order(const double* band, int frames, const std::string& local_error = {});

  /// Collective: closes ffmpeg's input, waits for it, checks its exit status and
  /// renames the video over its target. Later calls (but files()) throw.
  void finish();

  /// Frames appended so far (per sample), on every rank.
  std::int64_t frames_written() const;
  /// The files written so far (PNGs, then the video once finished); on rank 0, empty elsewhere.
  std::vector<std::string> files() const;

 private:
  /// "" when \p extents and \p frames fit this rank's band, else why not; local.
  std::string check_band(const std::vector<std::int64_t>& extents, int frames) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace khalo::io
