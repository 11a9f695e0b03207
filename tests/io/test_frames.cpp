// FrameSink (docs/cli.md §4): the PNGs are decoded back with libpng and every
// pixel is checked against the documented formula applied to a function of the
// global index; a fake ffmpeg (a shell script) records the bytes it is fed and
// the arguments it is given; every error is thrown on every rank alike.
#include <khalo/error.hpp>
#include <khalo/io/frames.hpp>

#include "temp_dir.hpp"
#include "test_views.hpp"

#include <gtest/gtest.h>
#include <mpi.h>
#include <png.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using khalo::test::Index;
using khalo::test::ScopedEnv;
using khalo::test::world_rank;
using khalo::test::world_size;
using khalo::test::write_script;

// The decoder's output at global index (n, c, t, h, w): multiples of 1/256 in about [-1.2, 1.2] (exact in
// float), so some lie outside [-1, 1]; NaN at some places.
double output_at(const Index& i) {
  if ((i[0] + 2 * i[1] + 3 * i[2] + 5 * i[3] + 7 * i[4]) % 11 == 4) return std::numeric_limits<double>::quiet_NaN();
  const auto v = static_cast<std::int64_t>(khalo::test::value_at(i));
  return static_cast<double>(v % 613 - 306) / 256.0;
}

// The pixel docs/cli.md §4 promises, computed another way.
std::uint8_t expected_pixel(double y) {
  if (std::isnan(y)) return 0;
  const double c = std::min(1.0, std::max(-1.0, y));
  return static_cast<std::uint8_t>(std::floor((c + 1.0) * 127.5 + 0.5));
}

struct Band {
  std::int64_t begin = 0, end = 0;
};
// Rows [begin, end) of this rank: contiguous, in rank order; at 3 ranks and 5 rows one rank holds one row.
Band band_of(std::int64_t height) {
  const std::int64_t r = world_rank(), p = world_size();
  return {r * height / p, (r + 1) * height / p};
}

// This rank's band of frames [t0, t0 + frames) plus one frame more that must not be written.
template <class Case, class T>
auto make_band(std::int64_t samples, std::int64_t t0, int frames, std::int64_t height, std::int64_t width) {
  const Band b = band_of(height);
  auto v = Case::template make<T*****>("band", Index{samples, 3, frames + 1, b.end - b.begin, width});
  khalo::test::fill(v, [&](const Index& i) {
    if (i[2] == frames) return -7.0;  // beyond the frames appended
    return output_at({i[0], i[1], t0 + i[2], b.begin + i[3], i[4]});
  });
  return v;
}

struct Image {
  int bit_depth = 0, color_type = 0;
  std::int64_t width = 0, height = 0;
  std::vector<std::uint8_t> rgb;
};

Image read_png(const std::string& path) {
  Image img;
  std::ifstream in(path, std::ios::binary);
  const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 26) return img;
  img.bit_depth = bytes[24];  // IHDR: 8-byte signature, length, "IHDR", width, height, bit depth, colour type
  img.color_type = bytes[25];
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  if (png_image_begin_read_from_file(&image, path.c_str()) == 0) return img;
  image.format = PNG_FORMAT_RGB;
  img.rgb.resize(PNG_IMAGE_SIZE(image));
  if (png_image_finish_read(&image, nullptr, img.rgb.data(), 0, nullptr) == 0) {
    img.rgb.clear();
    return img;
  }
  img.width = image.width;
  img.height = image.height;
  return img;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string png_name(std::int64_t samples, std::int64_t n, std::int64_t t) {
  char name[64];
  if (samples == 1) {
    std::snprintf(name, sizeof(name), "frame_%05d.png", static_cast<int>(t));
  } else {
    std::snprintf(name, sizeof(name), "sample%d_frame_%05d.png", static_cast<int>(n), static_cast<int>(t));
  }
  return name;
}

// On rank 0: the directory holds exactly the PNGs of frames [0, frames) of every sample, each an 8-bit RGB
// image whose every pixel is expected_pixel(output_at(...)); some of them NaN and out of range.
void check_pngs(const std::string& dir, std::int64_t samples, std::int64_t frames, std::int64_t height,
                std::int64_t width) {
  if (world_rank() != 0) return;
  std::vector<std::string> want;
  for (std::int64_t n = 0; n < samples; ++n) {
    for (std::int64_t t = 0; t < frames; ++t) want.push_back(png_name(samples, n, t));
  }
  std::sort(want.begin(), want.end());
  EXPECT_EQ(list_dir(dir), want);
  int nan = 0, clamped = 0;
  for (std::int64_t n = 0; n < samples; ++n) {
    for (std::int64_t t = 0; t < frames; ++t) {
      const Image img = read_png(dir + "/" + png_name(samples, n, t));
      EXPECT_EQ(img.bit_depth, 8);
      EXPECT_EQ(img.color_type, PNG_COLOR_TYPE_RGB);
      ASSERT_EQ(img.width, width) << png_name(samples, n, t);
      ASSERT_EQ(img.height, height);
      ASSERT_EQ(img.rgb.size(), static_cast<std::size_t>(height * width * 3));
      for (std::int64_t h = 0; h < height; ++h) {
        for (std::int64_t w = 0; w < width; ++w) {
          for (std::int64_t c = 0; c < 3; ++c) {
            const double y = output_at({n, c, t, h, w});
            nan += std::isnan(y) ? 1 : 0;
            clamped += std::abs(y) > 1 ? 1 : 0;
            ASSERT_EQ(img.rgb[static_cast<std::size_t>((h * width + w) * 3 + c)], expected_pixel(y))
                << png_name(samples, n, t) << " h " << h << " w " << w << " c " << c << " y " << y;
          }
        }
      }
    }
  }
  EXPECT_GT(nan, 0);
  EXPECT_GT(clamped, 0);
}

// The rgb24 bytes of frames [0, frames) of sample 0, in the order a video gets them.
std::vector<std::uint8_t> expected_rgb24(std::int64_t frames, std::int64_t height, std::int64_t width) {
  std::vector<std::uint8_t> out;
  for (std::int64_t t = 0; t < frames; ++t) {
    for (std::int64_t h = 0; h < height; ++h) {
      for (std::int64_t w = 0; w < width; ++w) {
        for (std::int64_t c = 0; c < 3; ++c) out.push_back(expected_pixel(output_at({0, c, t, h, w})));
      }
    }
  }
  return out;
}

// Checks that f() throws Exception on every rank, marked collective, with the same message containing \p part.
template <class Exception, class F>
void expect_thrown_everywhere(F&& f, const std::string& part) {
  std::string message;
  bool thrown = false, collective = false;
  try {
    f();
  } catch (const Exception& e) {
    thrown = true;
    collective = khalo::is_collective(e);
    message = e.what();
  } catch (const std::exception& e) {
    message = std::string("another exception: ") + e.what();
  }
  EXPECT_TRUE(thrown) << message;
  EXPECT_TRUE(collective) << message;
  EXPECT_NE(message.find(part), std::string::npos) << message;
  int len = static_cast<int>(message.size());
  MPI_Bcast(&len, 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::string root(static_cast<std::size_t>(len), '\0');
  if (world_rank() == 0) root = message;
  MPI_Bcast(root.data(), len, MPI_CHAR, 0, MPI_COMM_WORLD);
  EXPECT_EQ(message, root);
}

// A fake ffmpeg: checks the arguments a W x H rgb24 stream at \p fps into an mp4 temporary must have, copies
// stdin to \p capture, writes "fake" to its output file. Exits 3 on wrong arguments.
std::string fake_ffmpeg(const khalo::test::SharedTempDir& tmp, std::int64_t width, std::int64_t height,
                        const std::string& fps, const std::string& capture) {
  const std::string want =
      "-f rawvideo -pix_fmt rgb24 -s " + std::to_string(width) + "x" + std::to_string(height) + " -r " + fps + " -i -";
  return write_script(tmp, "fake-ffmpeg",
                      "case \" $* \" in *\" " + want +
                          " \"*) ;; *) echo \"fake ffmpeg: unexpected arguments: $*\" >&2; exit 3 ;; esac\n"
                          "for a in \"$@\"; do prev2=$prev1; prev1=$last; last=$a; done\n"
                          "if [ \"$prev2\" != -f ] || [ \"$prev1\" != mp4 ]; then echo \"fake ffmpeg: no -f mp4\" >&2; "
                          "exit 3; fi\n"
                          "case \"$last\" in */.out.mp4.khalo-tmp-*) ;; *) echo \"fake ffmpeg: output $last\" >&2; "
                          "exit 3 ;; esac\n"
                          "cat > '" +
                          capture + "' || exit 4\nprintf fake > \"$last\"\n");
}

// A fake ffmpeg body that copies its input into its output file (the last argument) as it comes.
const std::string kStreamToOutput = "for a in \"$@\"; do last=$a; done\ncat > \"$last\"\n";

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <class P>
class FramesTyped : public ::testing::Test {};

// Both memory formats, a strided View with padding, float and double.
using FrameParams = ::testing::Types<
    khalo::test::Param<khalo::test::RightCase, float>, khalo::test::Param<khalo::test::ChannelsLastCase, float>,
    khalo::test::Param<khalo::test::RightCase, double>, khalo::test::Param<khalo::test::PaddedCase, float>>;
TYPED_TEST_SUITE(FramesTyped, FrameParams, khalo::test::ParamNames);

// One sample, odd height, appended 1 + 4 + 2 frames as the decoder produces them: frame_00000..00006.png.
TYPED_TEST(FramesTyped, PngPixelsOneSample) {
  using Case = typename TypeParam::layout_case;
  using T = typename TypeParam::value_type;
  khalo::test::SharedTempDir tmp;
  const std::int64_t H = 5, W = 4;
  const Band b = band_of(H);
  const std::string dir = tmp.file("frames/sub");  // made by the sink, parents too
  khalo::io::FrameSink sink(MPI_COMM_WORLD, {dir, "", 16.0}, 1, H, W, b.begin, b.end);
  std::int64_t t0 = 0;
  for (int frames : {1, 4, 2}) {
    sink.append(make_band<Case, T>(1, t0, frames, H, W), frames);
    t0 += frames;
    EXPECT_EQ(sink.frames_written(), t0);
  }
  sink.finish();
  check_pngs(dir, 1, 7, H, W);
  if (world_rank() == 0) {
    std::vector<std::string> want;
    for (int t = 0; t < 7; ++t) want.push_back((fs::path(dir) / png_name(1, 0, t)).string());
    EXPECT_EQ(sink.files(), want);
  }
}

// A batch: sample<n>_frame_<t>.png, 2 + 1 frames; at 3 ranks one row each.
TYPED_TEST(FramesTyped, PngPixelsBatch) {
  using Case = typename TypeParam::layout_case;
  using T = typename TypeParam::value_type;
  khalo::test::SharedTempDir tmp;
  const std::int64_t H = 3, W = 3;
  const Band b = band_of(H);
  khalo::io::FrameSink sink(MPI_COMM_WORLD, {tmp.path(), "", 16.0}, 2, H, W, b.begin, b.end);
  sink.append(make_band<Case, T>(2, 0, 2, H, W), 2);
  sink.append(make_band<Case, T>(2, 2, 1, H, W), 1);
  sink.finish();
  EXPECT_EQ(sink.frames_written(), 3);
  check_pngs(tmp.path(), 2, 3, H, W);
}

// The video: ffmpeg gets N*T*H*W*3 bytes, the frames' rgb24 pixels in order, and the right arguments; the
// video appears under its name only once ffmpeg has succeeded.
TYPED_TEST(FramesTyped, VideoBytes) {
  using Case = typename TypeParam::layout_case;
  using T = typename TypeParam::value_type;
  khalo::test::SharedTempDir tmp;
  const std::int64_t H = 5, W = 4;
  const Band b = band_of(H);
  const std::string capture = tmp.file("capture");
  ScopedEnv env("KHALO_FFMPEG", fake_ffmpeg(tmp, W, H, "24", capture));
  const std::string out = tmp.file("video/out.mp4");
  if (world_rank() == 0) fs::create_directories(tmp.file("video"));
  MPI_Barrier(MPI_COMM_WORLD);
  {
    khalo::io::FrameSink sink(MPI_COMM_WORLD, {"", out, 24.0}, 1, H, W, b.begin, b.end);
    sink.append(make_band<Case, T>(1, 0, 1, H, W), 1);
    sink.append(make_band<Case, T>(1, 1, 4, H, W), 4);
    if (world_rank() == 0) EXPECT_FALSE(fs::exists(out));
    sink.finish();
    if (world_rank() == 0) EXPECT_EQ(sink.files(), std::vector<std::string>{out});
  }
  if (world_rank() == 0) {
    const auto got = read_bytes(capture);
    EXPECT_EQ(got.size(), static_cast<std::size_t>(1 * 5 * H * W * 3));
    EXPECT_TRUE(got == expected_rgb24(5, H, W));
    EXPECT_EQ(read_bytes(out).size(), 4u);  // what the fake wrote: the temporary was renamed
    EXPECT_EQ(list_dir(tmp.file("video")), std::vector<std::string>{"out.mp4"});
  }
}

TEST(Frames, UnwritableDirectoryThrowsEverywhere) {
  khalo::test::SharedTempDir tmp;
  if (world_rank() == 0) std::ofstream(tmp.file("plain")) << "a file";
  MPI_Barrier(MPI_COMM_WORLD);
  const Band b = band_of(4);
  expect_thrown_everywhere<khalo::io::Error>(
      [&] {
        khalo::io::FrameSink(MPI_COMM_WORLD, {tmp.file("plain/frames"), "", 16.0}, 1, 4, 2, b.begin, b.end);
      },
      "cannot create the directory");
}

// Rank 0 cannot write a PNG (its directory became a file): append throws on every rank, and so does any
// later call.
TEST(Frames, PngWriteFailureThrowsEverywhere) {
  khalo::test::SharedTempDir tmp;
  const std::int64_t H = 4, W = 2;
  const Band b = band_of(H);
  const std::string dir = tmp.file("frames");
  khalo::io::FrameSink sink(MPI_COMM_WORLD, {dir, "", 16.0}, 1, H, W, b.begin, b.end);
  sink.append(make_band<khalo::test::RightCase, float>(1, 0, 1, H, W), 1);
  if (world_rank() == 0) {
    fs::remove_all(dir);
    std::ofstream(dir) << "in the way";
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const auto band = make_band<khalo::test::RightCase, float>(1, 1, 2, H, W);
  expect_thrown_everywhere<khalo::io::Error>([&] { sink.append(band, 2); }, "frame_00001.png");
  expect_thrown_everywhere<khalo::io::Error>([&] { sink.append(band, 2); }, "abandoned");
  EXPECT_EQ(sink.frames_written(), 1);
}

TEST(Frames, MissingFfmpegThrowsEverywhere) {
  khalo::test::SharedTempDir tmp;
  const Band b = band_of(4);
  const std::string out = tmp.file("out.mp4");
  {
    ScopedEnv env("KHALO_FFMPEG", tmp.file("no-such-ffmpeg"));
    expect_thrown_everywhere<khalo::io::Error>(
        [&] {
          khalo::io::FrameSink(MPI_COMM_WORLD, {"", out, 16.0}, 1, 4, 2, b.begin, b.end);
        },
        "KHALO_FFMPEG");
  }
  {
    ScopedEnv env("KHALO_FFMPEG", std::nullopt);
    ScopedEnv path("PATH", tmp.path());
    expect_thrown_everywhere<khalo::io::Error>(
        [&] {
          khalo::io::FrameSink(MPI_COMM_WORLD, {"", out, 16.0}, 1, 4, 2, b.begin, b.end);
        },
        "--video needs ffmpeg on PATH");
  }
  if (world_rank() == 0) EXPECT_TRUE(fs::is_empty(tmp.path()));
}

// ffmpeg writes what it reads into its output, then exits 1: finish() throws on every rank and leaves no file.
TEST(Frames, FfmpegFailureThrowsEverywhereAtFinish) {
  khalo::test::SharedTempDir tmp;
  const std::int64_t H = 5, W = 4;
  const Band b = band_of(H);
  ScopedEnv env("KHALO_FFMPEG", write_script(tmp, "failing-ffmpeg", kStreamToOutput + "exit 1\n"));
  const std::string out = tmp.file("video/out.mp4");
  if (world_rank() == 0) fs::create_directories(tmp.file("video"));
  MPI_Barrier(MPI_COMM_WORLD);
  khalo::io::FrameSink sink(MPI_COMM_WORLD, {"", out, 16.0}, 1, H, W, b.begin, b.end);
  sink.append(make_band<khalo::test::RightCase, float>(1, 0, 2, H, W), 2);
  expect_thrown_everywhere<khalo::io::Error>([&] { sink.finish(); }, "exited with status 1");
  if (world_rank() == 0) EXPECT_TRUE(fs::is_empty(tmp.file("video")));
}

// ffmpeg exits before reading anything: the write fails with EPIPE (no SIGPIPE ends the rank) and append
// throws on every rank; no file is left.
TEST(Frames, FfmpegDyingEarlyThrowsEverywhere) {
  khalo::test::SharedTempDir tmp;
  const std::int64_t H = 5, W = 4;
  const Band b = band_of(H);
  const std::string started = tmp.file("started");
  ScopedEnv env("KHALO_FFMPEG", write_script(tmp, "dying-ffmpeg", "touch '" + started + "'\nexit 1\n"));
  const std::string out = tmp.file("video/out.mp4");
  if (world_rank() == 0) fs::create_directories(tmp.file("video"));
  MPI_Barrier(MPI_COMM_WORLD);
  khalo::io::FrameSink sink(MPI_COMM_WORLD, {"", out, 16.0}, 1, H, W, b.begin, b.end);
  if (world_rank() == 0) {  // until the fake has run, and a while for it to exit
    for (int i = 0; i < 200 && !fs::exists(started); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const auto band = make_band<khalo::test::RightCase, float>(1, 0, 2, H, W);
  expect_thrown_everywhere<khalo::io::Error>([&] { sink.append(band, 2); }, "ffmpeg stopped reading its input");
  if (world_rank() == 0) EXPECT_TRUE(fs::is_empty(tmp.file("video")));
}

// A sink dropped without finish() leaves no video, temporary or final, though ffmpeg had begun writing.
TEST(Frames, DestroyedWithoutFinishLeavesNoVideo) {
  khalo::test::SharedTempDir tmp;
  const std::int64_t H = 5, W = 4;
  const Band b = band_of(H);
  ScopedEnv env("KHALO_FFMPEG", write_script(tmp, "streaming-ffmpeg", kStreamToOutput));
  const std::string out = tmp.file("video/out.mp4");
  if (world_rank() == 0) fs::create_directories(tmp.file("video"));
  MPI_Barrier(MPI_COMM_WORLD);
  {
    khalo::io::FrameSink sink(MPI_COMM_WORLD, {"", out, 16.0}, 1, H, W, b.begin, b.end);
    sink.append(make_band<khalo::test::RightCase, float>(1, 0, 1, H, W), 1);
    if (world_rank() == 0) {  // until the fake has made its output
      for (int i = 0; i < 200 && fs::is_empty(tmp.file("video")); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      EXPECT_FALSE(fs::is_empty(tmp.file("video")));
    }
  }
  if (world_rank() == 0) EXPECT_TRUE(fs::is_empty(tmp.file("video")));
}

TEST(Frames, BatchVideoRefusedEverywhere) {
  khalo::test::SharedTempDir tmp;
  const Band b = band_of(4);
  expect_thrown_everywhere<std::invalid_argument>(
      [&] {
        khalo::io::FrameSink(MPI_COMM_WORLD, {"", tmp.file("out.mp4"), 16.0}, 2, 4, 2, b.begin, b.end);
      },
      "one clip");
}

// One rank's band has the wrong width: every rank throws.
TEST(Frames, WrongBandThrowsEverywhere) {
  khalo::test::SharedTempDir tmp;
  const std::int64_t H = 4, W = 3;
  const Band b = band_of(H);
  khalo::io::FrameSink sink(MPI_COMM_WORLD, {tmp.path(), "", 16.0}, 1, H, W, b.begin, b.end);
  const std::int64_t w = world_rank() == world_size() - 1 ? W + 1 : W;
  Kokkos::View<float*****> band("band", 1, 3, 1, b.end - b.begin, w);
  expect_thrown_everywhere<std::invalid_argument>([&] { sink.append(band, 1); }, "expected (1, 3, >= 1,");
}

// Bands that leave a row out are refused on every rank.
TEST(Frames, BandsMustCoverEveryRow) {
  khalo::test::SharedTempDir tmp;
  const std::int64_t H = 4;
  Band b = band_of(H);
  if (world_rank() == world_size() - 1) b.end -= 1;
  expect_thrown_everywhere<std::invalid_argument>(
      [&] {
        khalo::io::FrameSink(MPI_COMM_WORLD, {tmp.path(), "", 16.0}, 1, H, 2, b.begin, b.end);
      },
      "cover rows [0, 3) of 4");
}

}  // namespace
