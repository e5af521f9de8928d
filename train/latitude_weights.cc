#include "train/latitude_weights.h"

#include <cmath>

namespace jigsaw::train {

std::vector<float> LatitudeWeights(const std::vector<double>& lat) {
  const size_t n = lat.size();
  if (n == 0) return {};
  if (n == 1) return {1.0f};
  const double rad = M_PI / 180.0, pole = lat[0] > lat[n - 1] ? 90.0 : -90.0;
  std::vector<double> area(n);
  double mean = 0;
  for (size_t r = 0; r < n; ++r) {
    const double upper = r == 0 ? pole : (lat[r - 1] + lat[r]) / 2;
    const double lower = r + 1 == n ? -pole : (lat[r] + lat[r + 1]) / 2;
    area[r] = std::abs(std::sin(upper * rad) - std::sin(lower * rad));
    mean += area[r] / static_cast<double>(n);
  }
  std::vector<float> w(n);
  for (size_t r = 0; r < n; ++r) w[r] = static_cast<float>(area[r] / mean);
  return w;
}

}  // namespace jigsaw::train
