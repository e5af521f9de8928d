#include "jobs/train_config.h"

#include <cmath>

#include <set>

namespace jigsaw::train {
namespace {

Status Bad(const std::string& key, const std::string& why) {
  return InvalidArgumentError("model config: \"" + key + "\" " + why);
}

Result<int64_t> PositiveInt(const nlohmann::json& j, const std::string& key) {
  if (!j.is_number_integer() || j.get<int64_t>() < 1) return Bad(key, "must be a positive integer, not " + j.dump());
  return j.get<int64_t>();
}

Result<float> Number(const nlohmann::json& j, const std::string& key) {
  if (!j.is_number()) return Bad(key, "must be a number, not " + j.dump());
  return j.get<float>();
}

}  // namespace

Result<TrainConfig> ParseTrainConfig(const nlohmann::json& j) {
  if (!j.is_object()) return InvalidArgumentError("model config: not a JSON object");
  TrainConfig c;
  c.model.depth = -1;
  static const std::set<std::string> kKeys = {"patch",
                                              "dim",
                                              "depth",
                                              "token_hidden",
                                              "token_mix_ratio",
                                              "channel_hidden",
                                              "lr",
                                              "min_lr",
                                              "embed_lr_scale",
                                              "warmup_steps",
                                              "weight_decay",
                                              "clip",
                                              "beta1",
                                              "beta2",
                                              "eps",
                                              "seed",
                                              "channel_weights"};
  for (const auto& [key, v] : j.items()) {
    if (key.starts_with("_")) continue;  // "_comment" and the like: notes for people
    if (!kKeys.count(key)) {
      std::string known;
      for (const auto& k : kKeys) known += (known.empty() ? "" : ", ") + k;
      return Bad(key, "is not a key of the model config (known: " + known + ")");
    }
    OptimizerConfig& o = c.optimizer;
    if (key == "patch") {
      if (v.is_number_integer()) {
        ASSIGN_OR_RETURN(c.model.patch_h, PositiveInt(v, key));
        c.model.patch_w = c.model.patch_h;
      } else if (v.is_array() && v.size() == 2) {
        ASSIGN_OR_RETURN(c.model.patch_h, PositiveInt(v[0], key));
        ASSIGN_OR_RETURN(c.model.patch_w, PositiveInt(v[1], key));
      } else {
        return Bad(key, "must be an integer or [height, width], not " + v.dump());
      }
    } else if (key == "dim") {
      ASSIGN_OR_RETURN(c.model.dim, PositiveInt(v, key));
    } else if (key == "depth") {
      if (!v.is_number_integer() || v.get<int64_t>() < 0) return Bad(key, "must be a non-negative integer");
      c.model.depth = v.get<int64_t>();
    } else if (key == "token_hidden") {
      ASSIGN_OR_RETURN(c.model.token_hidden, PositiveInt(v, key));
    } else if (key == "token_mix_ratio") {
      ASSIGN_OR_RETURN(float r, Number(v, key));
      if (!(r > 0) || !(r < 1e6)) return Bad(key, "must be positive and below 1e6 (token_hidden = ratio x tokens)");
      c.token_mix_ratio = r;
    } else if (key == "channel_hidden") {
      ASSIGN_OR_RETURN(c.model.channel_hidden, PositiveInt(v, key));
    } else if (key == "seed") {
      if (!v.is_number_integer() || v.get<int64_t>() < 0) return Bad(key, "must be a non-negative integer");
      c.seed = v.get<uint64_t>();
    } else if (key == "warmup_steps") {
      if (!v.is_number_integer() || v.get<int64_t>() < 0) return Bad(key, "must be a non-negative integer");
      o.warmup_steps = v.get<int64_t>();
    } else if (key == "channel_weights") {
      if (!v.is_object()) return Bad(key, "must be an object {channel name: weight}");
      for (const auto& [name, w] : v.items()) {
        ASSIGN_OR_RETURN(float x, Number(w, key + "." + name));
        if (!(x >= 0) || !std::isfinite(x)) return Bad(key + "." + name, "must be finite and not negative (as a float32)");
        c.channel_weights[name] = x;
      }
    } else {
      ASSIGN_OR_RETURN(float x, Number(v, key));
      if (key == "lr") o.lr = x;
      if (key == "min_lr") o.min_lr = x;
      if (key == "embed_lr_scale") o.embed_lr_scale = x;
      if (key == "weight_decay") o.weight_decay = x;
      if (key == "clip") o.clip = x;
      if (key == "beta1") o.beta1 = x;
      if (key == "beta2") o.beta2 = x;
      if (key == "eps") o.eps = x;
    }
  }
  for (const char* key : {"dim", "channel_hidden"}) {
    if (!j.contains(key)) return Bad(key, "is missing");
  }
  if (!j.contains("depth")) return Bad("depth", "is missing");
  if (!j.contains("token_hidden") && !j.contains("token_mix_ratio"))
    return Bad("token_hidden", "is missing (or give token_mix_ratio)");
  if (j.contains("token_hidden") && j.contains("token_mix_ratio"))
    return Bad("token_mix_ratio", "and \"token_hidden\" are both given");
  RETURN_IF_ERROR(c.optimizer.Validate().Annotate("model config"));
  return c;
}

nlohmann::json TrainConfig::ToJson() const {
  nlohmann::json j = optimizer.ToJson();
  j.erase("total_steps");
  j["patch"] = {model.patch_h, model.patch_w};
  j["dim"] = model.dim;
  j["depth"] = model.depth;
  j["token_hidden"] = model.token_hidden;
  j["channel_hidden"] = model.channel_hidden;
  j["seed"] = seed;
  j["channel_weights"] = channel_weights;
  return j;
}

}  // namespace jigsaw::train
