// Reads the oracle's safetensors file (tests/train/oracle.py) whole: float32 tensors by name and the
// header's string metadata. Self-contained (nlohmann/json only), so that the oracle check also builds on
// a GPU machine that has none of the storage layer's libraries.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace jigsaw::train::testing {

class OracleFile {
 public:
  // Exits with status 2 naming the problem when the file cannot be read: a test input, not user input.
  explicit OracleFile(const std::string& path) : path_(path) {
    std::ifstream in(path, std::ios::binary);
    uint64_t n = 0;
    if (!in.read(reinterpret_cast<char*>(&n), 8) || n > (64u << 20)) Fail("no safetensors header");
    std::string header(n, '\0');
    if (!in.read(header.data(), static_cast<std::streamsize>(n))) Fail("header cut short");
    header_ = nlohmann::json::parse(header);
    data_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  std::vector<float> Floats(const std::string& name) const {
    if (!header_.contains(name)) Fail("no tensor " + name);
    const auto& e = header_.at(name);
    if (e.at("dtype") != "F32") Fail("tensor " + name + " is not F32");
    const int64_t a = e.at("data_offsets")[0], b = e.at("data_offsets")[1];
    if (b < a || b > static_cast<int64_t>(data_.size())) Fail("tensor " + name + " lies outside the file");
    std::vector<float> v((b - a) / 4);
    std::memcpy(v.data(), data_.data() + a, b - a);
    return v;
  }
  std::string Meta(const std::string& key) const {
    if (!header_.contains("__metadata__") || !header_["__metadata__"].contains(key)) Fail("no metadata " + key);
    return header_["__metadata__"][key].get<std::string>();
  }
  int64_t Int(const std::string& key) const { return std::stoll(Meta(key)); }
  float Float(const std::string& key) const { return std::stof(Meta(key)); }
  std::pair<int64_t, int64_t> Pair(const std::string& key) const {  // "8x16"
    const std::string v = Meta(key);
    const size_t x = v.find('x');
    return {std::stoll(v.substr(0, x)), std::stoll(v.substr(x + 1))};
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    std::fprintf(stderr, "%s: %s\n", path_.c_str(), what.c_str());
    std::exit(2);
  }
  std::string path_;
  nlohmann::json header_;
  std::string data_;
};

}  // namespace jigsaw::train::testing
