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
      first_row_(dec.owned(3).begin) {}

RowBands RowBands::upsampled() const {
  return RowBands(dec_.refined({n_, 1, 1, 2 * h_, 2 * w_}, {1, 1, 1, 2, 2}), format_);
}

Decomposition RowBands::decomposition(std::int64_t channels, std::int64_t frames) const {
  return dec_.refined({n_, channels, frames, h_, w_});
}

Activation<LayerMem> RowBands::allocate(const std::string& label, std::int64_t channels, std::int64_t frames,
                                        int ghost) const {
  auto a = make_activation<LayerMem>(label, {n_, channels, frames, rows_ + 2 * ghost, w_}, format_);
  Kokkos::deep_copy(a, 0.0f);
  return a;
}

double LayerLog::start() const { return active() ? MPI_Wtime() : 0.0; }

void LayerLog::report(const std::string& name, double t0, double flops, const Activation<>* output, int frames,
                      int row_offset, const std::string& kernel) const {
  if (!active()) return;
  LayerExec().fence();
  double dt = MPI_Wtime() - t0, slowest = 0, total = 0;
  KHALO_MPI_CHECK(MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, state_->comm));
  KHALO_MPI_CHECK(MPI_Allreduce(&flops, &total, 1, MPI_DOUBLE, MPI_SUM, state_->comm));
  state_->on_layer(LayerEvent{prefix_ + name, state_->chunk, slowest, total, output, frames, row_offset, kernel});
}

HaloStats HaloPlans::stats() const {
  HaloStats total;
  for (const auto& [frames, plan] : plans_) accumulate(total, plan->stats());
  return total;
}

void accumulate(HaloStats& a, const HaloStats& b) {
  a.faces_packed += b.faces_packed;
  a.bytes_packed += b.bytes_packed;
  a.bytes_sent += b.bytes_sent;
  a.bytes_received += b.bytes_received;
  a.messages += b.messages;
  a.allocations += b.allocations;
}

}  // namespace khalo::nn
