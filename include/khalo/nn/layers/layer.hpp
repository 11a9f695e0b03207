#pragma once
/// \file
/// What the decoder's layers share (docs/decoder.md §4): the band of rows a rank owns at a
/// layer's resolution, the halo plans of a layer's inputs (one per frame count), and the
/// per-layer report. Layers run on Kokkos::DefaultExecutionSpace.

#include <khalo/decomposition.hpp>
#include <khalo/halo.hpp>
#include <khalo/layout.hpp>
#include <khalo/nn/tensor.hpp>

#include <mpi.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace khalo::nn {

/// Where the layers run.
using LayerExec = Kokkos::DefaultExecutionSpace;
/// Where their tensors live.
using LayerMem = LayerExec::memory_space;

/// One allocation that layers borrow in turn. A layer reserves its size when it is built and
/// uses the memory only within one call, keeping nothing in it from one call to the next:
/// layers run one after another, so their transient buffers cost the largest of them instead
/// of their sum.
class Scratch {
 public:
  /// A borrower of up to \p floats floats.
  void reserve(std::size_t floats) {
    if (floats > size_) size_ = floats;
  }
  /// At least as many floats as the largest reservation so far, holding whatever the last
  /// borrower left there. Allocated on first use (and again after a larger reservation, which
  /// ends what earlier borrows pointed at).
  float* borrow();

 private:
  std::size_t size_ = 0;
  Kokkos::View<float*, Kokkos::LayoutStride, LayerMem> memory_;
};

/// Which Scratch a borrow comes from: borrows from different ones may be in use together.
enum class ScratchSlot {
  conv_input,  ///< a CausalConv3d's input buffer, from prepare() to finish()
  block,       ///< a ResidualBlock's conv1 output, during its run()
  count        ///< how many slots
};

/// This rank's band of rows of an (N, ., ., H, W) activation at one resolution, and the
/// scratch memory of the layers built on it.
class RowBands {
 public:
  /// \p dec splits dimension 3 (rows) of an (N, C, T, H, W) tensor; only N, H, W and the
  /// split are kept. The bands get scratch of their own.
  RowBands(const Decomposition& dec, MemoryFormat format);

  /// The bands of a tensor upsampled 2x in H and W on every rank: each rank keeps the rows
  /// its own rows became (so no data moves between layers). They share this one's scratch.
  RowBands upsampled() const;
  /// The decomposition of an (N, channels, frames, H, W) tensor split like this one.
  Decomposition decomposition(std::int64_t channels, std::int64_t frames) const;
  /// A zeroed activation (N, channels, frames, rows + 2 ghost, W) in the format.
  Activation<LayerMem> allocate(const std::string& label, std::int64_t channels, std::int64_t frames,
                                int ghost = 0) const;
  /// Reserves scratch in \p slot for an activation like allocate()'s (at build time).
  void reserve(ScratchSlot slot, std::int64_t channels, std::int64_t frames, int ghost = 0) const;
  /// An activation like allocate()'s in \p slot of the shared scratch, not zeroed: valid
  /// until the next borrow from that slot by any layer built on these bands (or on bands made
  /// from them or from which they were made).
  Activation<LayerMem> borrow(ScratchSlot slot, std::int64_t channels, std::int64_t frames, int ghost = 0) const;

  MPI_Comm comm() const { return dec_.grid().comm(); }   ///< the ranks' communicator
  MemoryFormat format() const { return format_; }        ///< the activations' memory format
  std::int64_t batch() const { return n_; }              ///< N
  std::int64_t height() const { return h_; }             ///< H, all rows
  std::int64_t width() const { return w_; }              ///< W
  std::int64_t rows() const { return rows_; }            ///< this rank's rows
  std::int64_t first_row() const { return first_row_; }  ///< global index of this rank's first row

 private:
  Decomposition dec_;  // (N, 1, 1, H, W)
  MemoryFormat format_;
  std::int64_t n_, h_, w_, rows_, first_row_;
  std::shared_ptr<std::array<Scratch, static_cast<std::size_t>(ScratchSlot::count)>> scratch_;
  std::vector<std::int64_t> extents(std::int64_t channels, std::int64_t frames, int ghost) const;
};

/// The row decomposition of an (N, C, T, H, W) input of \p channels channels over \p comm,
/// after the checks every rank makes alike: the rank, the channels, the format, and at
/// least one row per rank (the halo's width). Throws std::invalid_argument on every rank,
/// its message prefixed by \p where; \p taker names what takes the input ("the stage").
Decomposition checked_row_decomposition(MPI_Comm comm, const std::vector<std::int64_t>& shape, std::int64_t channels,
                                        MemoryFormat format, const std::string& where, const std::string& taker);

/// Reported after each layer of each chunk (rank 0 prints them; --dump-layers writes them).
struct LayerEvent {
  std::string name;                      ///< e.g. "resnets.0.conv1"
  int chunk = 0;                         ///< which chunk (the whole decoder: which latent frame)
  double seconds = 0.0;                  ///< max over ranks (0 when the log is not timed)
  double flops = 0.0;                    ///< all ranks together (this rank's when the log is not timed)
  const Activation<>* output = nullptr;  ///< this rank's band, valid during the callback
  int output_frames = 0;                 ///< frames of this chunk in *output (the leading ones)
  int output_row_offset = 0;             ///< rows of *output before the band's first owned row (ghost rows)
  std::string kernel;                    ///< the convolution kernel the layer ran (ConvKernel::name), if any
  std::int64_t first_row = 0;            ///< global index of the band's first owned row at the layer's resolution
  std::int64_t rows = 0;                 ///< owned rows of the band
  std::int64_t global_rows = 0;          ///< rows of the whole tensor at the layer's resolution
};

/// Times layers and passes their events on. Without a callback it costs nothing: no fence,
/// no reduction. Copies made by under() share the callback and the current chunk.
class LayerLog {
 public:
  LayerLog() : state_(std::make_shared<State>()) {}
  /// With \p timed, each report fences and reduces over the ranks of \p comm (seconds: the
  /// slowest rank's; flops: all ranks'). Without, it only passes the event on (seconds 0,
  /// flops this rank's): a run nobody times is not synchronized after every layer.
  LayerLog(MPI_Comm comm, std::function<void(const LayerEvent&)> on_layer, bool timed = true)
      : state_(std::make_shared<State>(State{comm, std::move(on_layer), 0, timed})) {}
  /// The same log for the layers under \p prefix (their names are prefixed).
  LayerLog under(const std::string& prefix) const {
    LayerLog l = *this;
    l.prefix_ += prefix;
    return l;
  }
  /// Whether anyone listens.
  bool active() const { return static_cast<bool>(state_->on_layer); }
  /// The chunk the next events belong to.
  void set_chunk(int chunk) const { state_->chunk = chunk; }
  /// A start time (MPI_Wtime) for report().
  double start() const;
  /// Fences, reduces the time and the flops over ranks, and calls the callback.
  void report(const std::string& name, double t0, double flops, const Activation<>* output, const RowBands& bands,
              int frames, int row_offset, const std::string& kernel = {}) const;

 private:
  struct State {
    MPI_Comm comm = MPI_COMM_NULL;
    std::function<void(const LayerEvent&)> on_layer;
    int chunk = 0;
    bool timed = true;
  };
  std::shared_ptr<State> state_;
  std::string prefix_;
};

/// The halo plans of one input buffer with one ghost row: one plan per frame count, built
/// on first use (collective) and kept.
class HaloPlans {
 public:
  HaloPlans() = default;
  /// Plans for buffers of \p channels channels over \p bands.
  HaloPlans(const RowBands& bands, std::int64_t channels) : bands_(std::make_shared<RowBands>(bands)), c_(channels) {}
  /// Frames [0, frames) of \p buffer from frame \p first, exchanged while \p launch(r0, r1)
  /// computes output rows [1, out_rows - 1) (those that need no ghost row), then the edge rows.
  template <class Launch>
  void overlapped(const Activation<>& buffer, int first, int frames, int out_rows, Launch&& launch) {
    const LayerExec exec;
    auto view = Kokkos::subview(buffer, Kokkos::ALL, Kokkos::ALL, std::make_pair(first, first + frames), Kokkos::ALL,
                                Kokkos::ALL);
    auto pending = plan(frames, view).start(exec, view);
    launch(1, out_rows - 1);
    pending.wait();
    launch(0, 1);
    if (out_rows > 1) launch(out_rows - 1, out_rows);
  }
  /// Traffic of every plan so far.
  HaloStats stats() const;

 private:
  template <class View>
  Halo<LayerExec>& plan(int frames, const View& view) {
    auto it = plans_.find(frames);
    if (it == plans_.end()) {
      it = plans_
               .emplace(frames, std::make_unique<Halo<LayerExec>>(bands_->decomposition(c_, frames), HaloSpec(1), view))
               .first;
    }
    return *it->second;
  }
  std::shared_ptr<RowBands> bands_;
  std::int64_t c_ = 0;
  std::map<int, std::unique_ptr<Halo<LayerExec>>> plans_;
};

}  // namespace khalo::nn
