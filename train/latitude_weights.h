// WeatherBench2's latitude weights: the area of each row's cell, sin(upper edge) - sin(lower edge) with
// edges half way between rows and the outer edges at the poles, over the mean over rows.
#pragma once

#include <vector>

namespace jigsaw::train {

std::vector<float> LatitudeWeights(const std::vector<double>& latitudes_deg);

}  // namespace jigsaw::train
