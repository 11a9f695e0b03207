// FrameSink: every rank converts its band of rows to 8-bit RGB, rank 0 gathers
// each frame (MPI_Gatherv), writes its PNG and feeds ffmpeg (video.hpp).
//
// Failure contract (include/khalo/io/frames.hpp): every step that may fail on
// one rank only (a PNG rank 0 cannot write, ffmpeg dying) is run inside
// collectively(), so every rank throws the same io::Error before the next
// collective; the sink is then abandoned: ffmpeg is killed and the temporary
// video removed (the PNGs already renamed into place stay).
#include "atomic_file.hpp"
#include "collective.hpp"
#include "video.hpp"

#include <khalo/detail/comm.hpp>
#include <khalo/detail/mpi_error.hpp>
#include <khalo/detail/strides.hpp>
#include <khalo/io/frames.hpp>

#include <fcntl.h>
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace khalo::io {

using namespace khalo::io::detail;
namespace fs = std::filesystem;

std::uint8_t pixel_value(double y) noexcept {
  if (std::isnan(y)) return 0;
  const double c = y < -1.0 ? -1.0 : (y > 1.0 ? 1.0 : y);
  return static_cast<std::uint8_t>(std::round((c / 2.0 + 0.5) * 255.0));
}

namespace {

constexpr const char* kWhere = "khalo::io::FrameSink: ";

std::string frame_name(std::int64_t samples, std::int64_t n, std::int64_t t) {
  char name[96];
  if (samples == 1) {
    std::snprintf(name, sizeof(name), "frame_%05lld.png", static_cast<long long>(t));
  } else {
    std::snprintf(name, sizeof(name), "sample%lld_frame_%05lld.png", static_cast<long long>(n),
                  static_cast<long long>(t));
  }
  return name;
}

void fsync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // best effort: some file systems refuse directory fds
  ::fsync(fd);
  ::close(fd);
}

// Writes \p rgb (height rows of width * 3 bytes) as an 8-bit RGB PNG named \p target: into a temporary in the
// same directory, then renamed. Throws std::runtime_error, leaving no temporary.
void write_png(const fs::path& target, const std::uint8_t* rgb, std::int64_t width, std::int64_t height) {
  const fs::path temp =
      target.parent_path() / ("." + target.filename().string() + ".khalo-tmp-" + std::to_string(::getpid()));
  std::FILE* f = std::fopen(temp.c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("cannot create '" + temp.string() + "': " + std::strerror(errno));
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = PNG_FORMAT_RGB;
  std::string why;
  if (png_image_write_to_stdio(&image, f, 0, rgb, static_cast<png_int_32>(width * 3), nullptr) == 0) {
    why = std::string("libpng: ") + image.message;
  }
  png_image_free(&image);
  if (why.empty() && (std::fflush(f) != 0 || std::ferror(f) != 0)) why = std::strerror(errno);
  if (why.empty() && ::fsync(::fileno(f)) != 0) why = std::strerror(errno);
  if (std::fclose(f) != 0 && why.empty()) why = std::strerror(errno);
  if (why.empty() && std::rename(temp.c_str(), target.c_str()) != 0) why = std::strerror(errno);
  if (!why.empty()) {
    ::unlink(temp.c_str());
    throw std::runtime_error("cannot write '" + target.string() + "': " + why);
  }
}

// The band (N, 3, F, rows, W) in C order as 8-bit pixels (N, F, rows, W, 3): each frame's rows contiguous.
template <class T>
std::vector<std::uint8_t> to_rgb(const T* band, std::int64_t samples, std::int64_t frames, std::int64_t rows,
                                 std::int64_t width) {
  const std::int64_t plane = rows * width;  // one channel of one frame
  std::vector<std::uint8_t> out(static_cast<std::size_t>(samples * frames * plane * 3));
  for (std::int64_t n = 0; n < samples; ++n) {
    for (std::int64_t c = 0; c < 3; ++c) {
      for (std::int64_t t = 0; t < frames; ++t) {
        const T* src = band + ((n * 3 + c) * frames + t) * plane;
        std::uint8_t* dst = out.data() + (n * frames + t) * plane * 3 + c;
        for (std::int64_t i = 0; i < plane; ++i) dst[3 * i] = pixel_value(static_cast<double>(src[i]));
      }
    }
  }
  return out;
}

std::int64_t bits_of(double v) {
  std::int64_t b = 0;
  std::memcpy(&b, &v, sizeof(b));
  return b;
}

}  // namespace

struct FrameSink::Impl {
  // broken: a failure on this rank alone (MPI); the other ranks may be anywhere, so nothing collective is left.
  enum class State { open, finished, failed, broken };
  khalo::detail::Comm comm;
  int rank = 0;
  FrameOutput what;
  std::int64_t samples = 0, height = 0, width = 0, rows = 0;
  std::vector<int> counts, displs;  // bytes of each rank's rows of one frame, and where they go in it
  std::int64_t frames = 0;
  std::vector<std::string> files;
  AtomicFile video;  // names the temporary video
  VideoPipe pipe;    // rank 0
  State state = State::open;
  int uncaught = 0;  // std::uncaught_exceptions() when the sink was made

  // Local: stops ffmpeg and removes the temporary video.
  void abandon(State why) noexcept {
    pipe.kill();
    if (rank == 0) video.discard();
    state = why;
  }

  // Runs collective steps; an error from them abandons the sink.
  template <class F>
  void run(F&& f) {
    try {
      f();
    } catch (const CollectiveError&) {
      abandon(State::failed);
      throw;
    } catch (...) {
      abandon(State::broken);
      throw;
    }
  }

  void refuse_if_closed(const std::string& where) const {
    if (state == State::open) return;
    khalo::detail::throw_if_any<Error>(
        comm.get(),
        where + (state == State::finished ? "the sink is already finished" : "the sink was abandoned after an error"));
  }

  template <class T>
  void append(const T* band, int count, const std::string& local_error);
};

FrameSink::FrameSink(MPI_Comm comm, const FrameOutput& what, std::int64_t samples, std::int64_t height,
                     std::int64_t width, std::int64_t row_begin, std::int64_t row_end)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.uncaught = std::uncaught_exceptions();
  m.comm = khalo::detail::Comm::duplicate(comm);
  m.rank = m.comm.rank();
  const int size = m.comm.size();
  m.what = what;
  m.samples = samples;
  m.height = height;
  m.width = width;
  m.rows = row_end - row_begin;
  MPI_Comm c = m.comm.get();
  const bool video = !what.video_path.empty();
  try {
    m.run([&] {
      std::string error;
      if (what.frames_dir.empty() && !video) {
        error = "nothing to write: neither a frames directory nor a video path";
      } else if (samples < 1 || height < 1 || width < 1) {
        error = "the output needs at least one sample, row and column (got N = " + std::to_string(samples) +
                ", H = " + std::to_string(height) + ", W = " + std::to_string(width) + ")";
      } else if (row_begin < 0 || row_end < row_begin || row_end > height) {
        error = "this rank's rows [" + std::to_string(row_begin) + ", " + std::to_string(row_end) +
                ") are not within the " + std::to_string(height) + " rows of a frame";
      } else if (width > INT_MAX / 3 / height) {
        error = "a frame of " + std::to_string(height) + " x " + std::to_string(width) +
                " RGB pixels is larger than INT_MAX bytes, which one MPI_Gatherv can gather";
      } else if (video && !(std::isfinite(what.fps) && what.fps > 0)) {
        error = "the frame rate must be positive and finite (got " + std::to_string(what.fps) + ")";
      } else if (video && samples > 1) {
        error = "--video writes one clip, and the output holds " + std::to_string(samples) +
                " samples (one clip per sample is not supported yet); use --frames for a batch";
      } else if (video && container_format(what.video_path).empty()) {
        error = "cannot tell the video's container from the name '" + what.video_path +
                "' (use .mp4, .m4v, .mov, .mkv, .webm or .avi)";
      }
      const std::string differ = khalo::detail::disagreement(
          c, {samples, height, width, what.frames_dir.empty() ? 0 : 1, video ? 1 : 0, bits_of(what.fps)},
          {"the number of samples", "the height", "the width", "whether to write frames", "whether to write a video",
           "the frame rate"});
      if (error.empty()) error = differ;
      khalo::detail::throw_if_any(c, error.empty() ? error : kWhere + error);

      // The bands: in rank order, contiguous, covering every row.
      const std::int64_t mine[2] = {row_begin, row_end};
      std::vector<std::int64_t> bands(2 * static_cast<std::size_t>(size));
      KHALO_MPI_CHECK(MPI_Allgather(mine, 2, MPI_INT64_T, bands.data(), 2, MPI_INT64_T, c));
      std::int64_t next = 0;
      for (int r = 0; r < size && error.empty(); ++r) {
        const std::int64_t b = bands[2 * static_cast<std::size_t>(r)], e = bands[2 * static_cast<std::size_t>(r) + 1];
        if (b != next) {
          error = "the bands of rows must follow each other in rank order: rank " + std::to_string(r) +
                  " holds rows [" + std::to_string(b) + ", " + std::to_string(e) + "), after row " +
                  std::to_string(next);
        }
        next = e;
      }
      if (error.empty() && next != height) {
        error = "the bands of rows cover rows [0, " + std::to_string(next) + ") of " + std::to_string(height);
      }
      khalo::detail::throw_if_any(c, error.empty() ? error : kWhere + error);
      for (int r = 0; r < size; ++r) {
        const std::int64_t b = bands[2 * static_cast<std::size_t>(r)], e = bands[2 * static_cast<std::size_t>(r) + 1];
        m.counts.push_back(static_cast<int>((e - b) * width * 3));
        m.displs.push_back(static_cast<int>(b * width * 3));
      }

      if (!what.frames_dir.empty()) {
        collectively(c, kWhere + ("'" + what.frames_dir + "': "), [&] {
          if (m.rank != 0) return;
          std::error_code ec;
          fs::create_directories(what.frames_dir, ec);
          if (ec) throw std::runtime_error("cannot create the directory: " + ec.message());
          if (!fs::is_directory(what.frames_dir)) throw std::runtime_error("not a directory");
        });
      }
      if (video) {
        std::string program;
        collectively(c, kWhere, [&] {
          if (m.rank == 0) program = find_ffmpeg();
        });
        const std::string where = kWhere + ("'" + what.video_path + "': ");
        m.video = AtomicFile(c, what.video_path, where);
        collectively(c, where, [&] {
          if (m.rank != 0) return;
          m.pipe = VideoPipe(program, ffmpeg_arguments(static_cast<long>(width), static_cast<long>(height), what.fps,
                                                       container_format(what.video_path), m.video.temp()));
        });
      }
    });
  } catch (...) {
    // A failure on this rank alone: freeing the communicator is collective, so it is left (the job is to end).
    if (m.state == Impl::State::broken) (void)impl_.release();
    throw;
  }
}

FrameSink::~FrameSink() {
  if (!impl_) return;
  Impl& m = *impl_;
  if (m.state == Impl::State::open) m.abandon(Impl::State::open);
  const bool unwinding = std::uncaught_exceptions() > m.uncaught;
  if (m.state == Impl::State::broken || (m.state == Impl::State::open && unwinding)) {
    // Maybe on this rank alone: freeing the communicator is collective, so it is left (the job is to end).
    (void)impl_.release();
  }
}

std::string FrameSink::check_band(const std::vector<std::int64_t>& extents, int frames) const {
  const Impl& m = *impl_;
  const std::string where = "khalo::io::FrameSink::append: ";
  if (frames < 0) return where + "the number of frames to append is negative (" + std::to_string(frames) + ")";
  if (extents.size() != 5 || extents[0] != m.samples || extents[1] != 3 || extents[2] < frames ||
      extents[3] != m.rows || extents[4] != m.width) {
    return where + "this rank's band is " + khalo::detail::shape_text(extents) + ", expected (" +
           std::to_string(m.samples) + ", 3, >= " + std::to_string(frames) + ", " + std::to_string(m.rows) + ", " +
           std::to_string(m.width) + ")";
  }
  return {};
}

template <class T>
void FrameSink::Impl::append(const T* band, int count, const std::string& local_error) {
  const std::string where = "khalo::io::FrameSink::append: ";
  MPI_Comm c = comm.get();
  refuse_if_closed(where);
  run([&] {
    std::string error = local_error;
    if (error.empty() && count < 0) error = where + "the number of frames to append is negative";
    if (error.empty() && band == nullptr && count > 0 && rows > 0) error = where + "no data";
    const std::string differ = khalo::detail::disagreement(c, {count}, {"the number of frames to append"});
    if (error.empty() && !differ.empty()) error = where + differ;
    khalo::detail::throw_if_any(c, error);

    std::vector<std::uint8_t> rgb;
    collectively(c, where, [&] { rgb = to_rgb(band, samples, count, rows, width); });
    std::vector<std::uint8_t> frame(rank == 0 ? static_cast<std::size_t>(height * width * 3) : 0);
    const int mine = static_cast<int>(rows * width * 3);
    for (std::int64_t n = 0; n < samples; ++n) {
      for (std::int64_t t = 0; t < count; ++t) {
        const std::uint8_t* part = rgb.data() + (n * count + t) * rows * width * 3;
        KHALO_MPI_CHECK(MPI_Gatherv(part, mine, MPI_UNSIGNED_CHAR, frame.data(), counts.data(), displs.data(),
                                    MPI_UNSIGNED_CHAR, 0, c));
        collectively(c, where, [&] {
          if (rank != 0) return;
          if (!what.frames_dir.empty()) {
            const fs::path png = fs::path(what.frames_dir) / frame_name(samples, n, frames + t);
            write_png(png, frame.data(), width, height);
            files.push_back(png.string());
          }
          if (pipe.running()) pipe.write(frame.data(), frame.size());
        });
      }
    }
    frames += count;
  });
}

void FrameSink::append_c_order(const float* band, int frames, const std::string& local_error) {
  impl_->append(band, frames, local_error);
}

void FrameSink::append_c_order(const double* band, int frames, const std::string& local_error) {
  impl_->append(band, frames, local_error);
}

void FrameSink::finish() {
  Impl& m = *impl_;
  const std::string where = "khalo::io::FrameSink::finish: ";
  m.refuse_if_closed(where);
  m.run([&] {
    if (!m.what.video_path.empty()) {
      collectively(m.comm.get(), where + "'" + m.what.video_path + "': ", [&] {
        if (m.rank != 0) return;
        m.pipe.finish();
        struct stat st {};
        if (::stat(m.video.temp().c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
          throw std::runtime_error("ffmpeg ended without writing the video");
        }
        if (std::rename(m.video.temp().c_str(), m.video.target().c_str()) != 0) {
          throw std::runtime_error(std::string("cannot rename the finished video over the target: ") +
                                   std::strerror(errno));
        }
        const fs::path target(m.video.target());
        fsync_directory(target.has_parent_path() ? target.parent_path() : fs::path("."));
        m.files.push_back(m.video.target());
      });
    }
    m.state = Impl::State::finished;
  });
}

std::int64_t FrameSink::frames_written() const { return impl_->frames; }

std::vector<std::string> FrameSink::files() const { return impl_->files; }

}  // namespace khalo::io
