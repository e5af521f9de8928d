// Numbers as people read them in logs: 1.2M parameters, 3.4 GB, 1h02m.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace jigsaw {

// v to `digits` significant digits, as printf's %g: 0.0387, 1.23e-05, 42.
inline std::string Significant(double v, int digits = 3) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.*g", digits, v);
  return text;
}

// 950, 12.3k, 4.56M, 7.89G (three significant digits).
inline std::string HumanCount(double n) {
  const char* units[] = {"", "k", "M", "G", "T"};
  int u = 0;
  while (n >= 999.5 && u < 4) {
    n /= 1000;
    ++u;
  }
  char text[32];
  std::snprintf(text, sizeof(text), u == 0 ? "%.0f%s" : (n < 9.995 ? "%.2f%s" : n < 99.95 ? "%.1f%s" : "%.0f%s"), n,
                units[u]);
  return text;
}

// 512 B, 12.3 MB, 1.45 GB (decimal units).
inline std::string HumanBytes(double b) {
  std::string c = HumanCount(b);
  if (!c.empty() && c.back() >= 'A' && c.back() <= 'Z') return c.substr(0, c.size() - 1) + " " + c.back() + "B";
  if (!c.empty() && c.back() == 'k') return c.substr(0, c.size() - 1) + " kB";
  return c + " B";
}

// 0.129 s, 4.56 s, 12 s, 3m12s, 1h02m, 2d03h.
inline std::string HumanDuration(double s) {
  char text[32];
  if (s < 1) {
    std::snprintf(text, sizeof(text), "%.3f s", s);
  } else if (s < 10) {
    std::snprintf(text, sizeof(text), "%.2f s", s);
  } else if (s < 60) {
    std::snprintf(text, sizeof(text), "%.0f s", s);
  } else if (s < 3600) {
    std::snprintf(text, sizeof(text), "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  } else if (s < 86400) {
    std::snprintf(text, sizeof(text), "%dh%02dm", static_cast<int>(s) / 3600, static_cast<int>(s) % 3600 / 60);
  } else {
    std::snprintf(text, sizeof(text), "%dd%02dh", static_cast<int>(s) / 86400, static_cast<int>(s) % 86400 / 3600);
  }
  return text;
}

}  // namespace jigsaw
