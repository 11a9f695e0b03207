#include <khalo/nn/layers/layer.hpp>

namespace khalo::nn {

namespace {
std::vector<std::int64_t> rows_shape(const Decomposition& dec) {
  const auto& g = dec.global_extents();
  return {g.at(0), 1, 1, g.at(3), g.at(4)};
}
}  // namespace

RowBands::RowBands(const Decomposition& dec, MemoryFormat format)
    : dec_(dec.refined(rows_shape(dec))),
      format_(format),
      n_(dec.global_extents().at(0)),
      h_(dec.global_extents().at(3)),
      w_(dec.global_extents().at(4)),
      rows_(dec.owned(3).size()),
      first_row_(dec.owned(3).begin),
      scratch_(std::make_shared<std::array<Scratch, static_cast<std::size_t>(ScratchSlot::count)>>()) {}

float* Scratch::borrow() {
  if (memory_.extent(0) < size_) {
    memory_ = {};  // the old one goes first: the two need not fit together
    memory_ = allocate<float*, LayerMem>("khalo::nn::scratch", {static_cast<std::int64_t>(size_)}, StrideOrder{0});
  }
  return memory_.data();
}

RowBands RowBands::upsampled() const {
  RowBands up(dec_.refined({n_, 1, 1, 2 * h_, 2 * w_}, {1, 1, 1, 2, 2}), format_);
  up.scratch_ = scratch_;
  return up;
}

Decomposition RowBands::decomposition(std::int64_t channels, std::int64_t frames) const {
  return dec_.refined({n_, channels, frames, h_, w_});
}

std::vector<std::int64_t> RowBands::extents(std::int64_t channels, std::int64_t frames, int ghost) const {
  return {n_, channels, frames, rows_ + 2 * ghost, w_};
}

Activation<LayerMem> RowBands::allocate(const std::string& label, std::int64_t channels, std::int64_t frames,
                                        int ghost) const {
  auto a = make_activation<LayerMem>(label, extents(channels, frames, ghost), format_);
  Kokkos::deep_copy(a, 0.0f);
  return a;
}

void RowBands::reserve(ScratchSlot slot, std::int64_t channels, std::int64_t frames, int ghost) const {
  std::size_t floats = 1;
  for (std::int64_t e : extents(channels, frames, ghost)) floats *= static_cast<std::size_t>(e);
  scratch_->at(static_cast<std::size_t>(slot)).reserve(floats);
}

Activation<LayerMem> RowBands::borrow(ScratchSlot slot, std::int64_t channels, std::int64_t frames, int ghost) const {
  float* memory = scratch_->at(static_cast<std::size_t>(slot)).borrow();
  return Activation<LayerMem>(memory, dense_layout(extents(channels, frames, ghost), format_order(format_, 5)));
}

Decomposition checked_row_decomposition(MPI_Comm comm, const std::vector<std::int64_t>& shape, std::int64_t channels,
                                        MemoryFormat format, const std::string& where, const std::string& taker) {
  std::string error;
  if (shape.size() != 5) error = where + "the input must be (N, C, T, H, W)";
  if (error.empty() && shape[1] != channels) {
    error = where + "the input has " + std::to_string(shape[1]) + " channels, " + taker + " takes " +
            std::to_string(channels);
  }
  if (error.empty() && format != MemoryFormat::contiguous && format != MemoryFormat::channels_last_3d) {
    error = where + "layout must be contiguous or channels_last_3d";
  }
  khalo::detail::throw_if_any(comm, error);
  Decomposition dec = row_decomposition(comm, shape);
  const int parts = dec.grid().dims()[0];
  for (int c = 0; c < parts && error.empty(); ++c) {
    if (dec.owned_at(3, c).size() < 1) {
      error = where + "the input has " + std::to_string(shape[3]) + " rows for " + std::to_string(parts) +
              " ranks: rank band " + std::to_string(c) + " would hold none; a band must hold at least the halo (1 row)";
    }
  }
  khalo::detail::throw_if_any(dec.grid().comm(), error);
  return dec;
}

double LayerLog::start() const { return active() && state_->timed ? MPI_Wtime() : 0.0; }

void LayerLog::report(const std::string& name, double t0, double flops, const Activation<>* output,
                      const RowBands& bands, int frames, int row_offset, const std::string& kernel) const {
  if (!active()) return;
  double slowest = 0, total = flops;
  if (state_->timed) {
    LayerExec().fence();
    const double dt = MPI_Wtime() - t0;
    KHALO_MPI_CHECK(MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, state_->comm));
    KHALO_MPI_CHECK(MPI_Allreduce(&flops, &total, 1, MPI_DOUBLE, MPI_SUM, state_->comm));
  }
  state_->on_layer(LayerEvent{prefix_ + name, state_->chunk, slowest, total, output, frames, row_offset, kernel,
                              bands.first_row(), bands.rows(), bands.height()});
}

HaloStats HaloPlans::stats() const {
  HaloStats total;
  for (const auto& [frames, plan] : plans_) total += plan->stats();
  return total;
}

}  // namespace khalo::nn
