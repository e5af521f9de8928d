#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <span>
#include <vector>

namespace jigsaw::train {

Result<std::unique_ptr<Trainer>> Trainer::Create(const ModelConfig& model, const OptimizerConfig& opt, Backend* be,
                                                 MeshComms* mesh, uint64_t seed, DomainGrid grid) {
  RETURN_IF_ERROR(opt.Validate());
  std::unique_ptr<Trainer> t(new Trainer(be, mesh, opt));
  ASSIGN_OR_RETURN(t->model_, WeatherMixer::Create(model, be, mesh, seed, grid));
  return t;
}

float Trainer::LossScale(const TileBatch& batch) const {
  const ModelConfig& c = model_->config();
  const double job_batch = static_cast<double>(batch.size * mesh_->pos.replicas);
  return static_cast<float>(1.0 / (static_cast<double>(c.channels) * c.height * c.width * job_batch * batch.steps));
}

Result<double> Trainer::SumOverJob(double share) {
  float total = static_cast<float>(share);
  RETURN_IF_ERROR(mesh_->group->AllReduceSum(&total, 1));
  RETURN_IF_ERROR(mesh_->data->AllReduceSum(&total, 1));
  return static_cast<double>(total);
}

Result<double> Trainer::ComputeGradients(const TileBatch& batch) {
  if (batch.size < 1) return InvalidArgumentError("a training batch needs at least one sample");
  const int64_t tile = model_->tile().size();
  for (auto& p : model_->parameters()) be_->Fill(p.grad.data(), p.local_size(), 0.0f);
  const float scale = LossScale(batch);
  double loss = 0;
  // The batch in micro-batches of at most micro_batch_ samples (0: the model's choice): fewer samples at a
  // time hold fewer activations; more make larger products.
  const int64_t per = std::min(model_->SamplesAtOnce(micro_batch_), batch.size);
  // Once a parameter's gradient is final (during the last micro-batch's backward): replicated vectors' copies
  // each hold their own tokens' (or features') share, summed so that every copy holds the whole gradient;
  // then the data-parallel sum over replicas (the scale already divides), started there so that it travels
  // beside the rest of the backward, and waited for after it (at once without overlap).
  const bool overlap = model_->matmul().overlap();
  std::vector<std::unique_ptr<TensorCommunicator::Pending>> sums;
  size_t handed = 0;
  WeatherMixer::GradientsFinal sum_final = [&](std::span<Parameter> final) -> Status {
    handed += final.size();
    for (Parameter& p : final) {
      if (p.layout == Layout::kColumnPart) RETURN_IF_ERROR(mesh_->col->AllReduceSum(p.grad.data(), p.local_size()));
      if (p.layout == Layout::kRowPart) RETURN_IF_ERROR(mesh_->row->AllReduceSum(p.grad.data(), p.local_size()));
      ASSIGN_OR_RETURN(auto sum, mesh_->data->StartAllReduceSum(p.grad.data(), p.local_size()));
      if (overlap) {
        sums.push_back(std::move(sum));
      } else {
        RETURN_IF_ERROR(sum->Wait());
      }
    }
    return OkStatus();
  };
  for (int64_t b = 0; b < batch.size; b += per) {
    const int64_t n = std::min(per, batch.size - b);
    const bool last = b + per >= batch.size;
    ASSIGN_OR_RETURN(double l, model_->ForwardBackward(batch.x0 + b * tile, batch.x1 + b * batch.steps * tile, n,
                                                       batch.steps, scale, batch.on_device,
                                                       last ? sum_final : WeatherMixer::GradientsFinal()));
    loss += l;
  }
  Status waited = OkStatus();
  for (auto& sum : sums) {
    Status st = sum->Wait();
    if (waited.ok() && !st.ok()) waited = std::move(st);
  }
  RETURN_IF_ERROR(waited);
  if (handed != model_->parameters().size()) {
    return InternalError("the backward handed over " + std::to_string(handed) + " parameters' final gradients of " +
                         std::to_string(model_->parameters().size()));
  }
  return SumOverJob(loss);
}

Result<double> Trainer::GradientNorm() {
  const auto& pos = mesh_->pos;
  std::vector<std::pair<const float*, int64_t>> counted;
  for (auto& p : model_->parameters())
    if (p.Counted(pos.i, pos.j)) counted.emplace_back(p.grad.data(), p.local_size());
  float sum = static_cast<float>(be_->SumSquaresAll(counted));
  // Replicas hold identical gradients after the average: the model group's sum is the job's.
  RETURN_IF_ERROR(mesh_->group->AllReduceSum(&sum, 1));
  return std::sqrt(static_cast<double>(sum));
}

Result<StepResult> Trainer::Step(const TileBatch& batch, const std::function<void()>& before_update) {
  const int64_t flops0 = model_->matmul().stats().gemm_flops, bytes0 = model_->matmul().stats().bytes_sent;
  StepResult r;
  r.step = step_;
  ASSIGN_OR_RETURN(r.loss, ComputeGradients(batch));
  ASSIGN_OR_RETURN(r.grad_norm, GradientNorm());
  // Clip as torch.nn.utils.clip_grad_norm_ does, its coefficient applied inside the update (no pass of its
  // own over the gradients).
  float grad_scale = 1.0f;
  if (opt_.clip > 0) {
    const double coef = opt_.clip / (r.grad_norm + 1e-6);
    if (coef < 1.0) grad_scale = static_cast<float>(coef);
  }
  r.lr = LearningRate(opt_, step_);
  if (before_update) before_update();
  std::vector<Backend::AdamWTensor> all;
  for (auto& p : model_->parameters()) {
    const float lr = p.embed_or_head ? r.lr * opt_.embed_lr_scale : r.lr;
    all.push_back({p.value.data(), p.grad.data(), p.adam_m.data(), p.adam_v.data(), p.local_size(), lr,
                   p.decay ? opt_.weight_decay : 0.0f});
  }
  be_->AdamWAll(all, grad_scale, opt_.beta1, opt_.beta2, opt_.eps, step_ + 1);
  ++step_;
  r.gemm_flops = model_->matmul().stats().gemm_flops - flops0;
  r.bytes_sent = model_->matmul().stats().bytes_sent - bytes0;
  return r;
}

}  // namespace jigsaw::train
