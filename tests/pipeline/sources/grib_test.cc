// The GRIB file index, its cache, the GRIB name mapping and member choice, on messages made here with
// ecCodes from its own samples (the CLI tests use files written by ecCodes' tools and cfgrib's samples).
#include <eccodes.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "pipeline/sources/grib_index.h"
#include "pipeline/sources/source.h"

namespace jigsaw {
namespace {

// The message's bytes; deletes the handle.
std::string Encoded(codes_handle* h) {
  const void* msg = nullptr;
  size_t size = 0;
  EXPECT_EQ(codes_get_message(h, &msg, &size), CODES_SUCCESS);
  std::string out(static_cast<const char*>(msg), size);
  codes_handle_delete(h);
  return out;
}

struct Field {
  const char* short_name = "t";
  const char* level_type = "isobaricInhPa";
  long level = 500;
  long date = 20200101, time = 0, step = 0;
  long number = -1;  // ensemble member; -1: none
  long ni = 4, nj = 3;
  bool south_first = false;
};

// One message of `f` from ecCodes' regular_ll sample (edition 2): values[j][i] = 100 * j + i in scanning order.
std::string Message(const Field& f, const char* sample = "regular_ll_pl_grib2") {
  codes_handle* h = codes_grib_handle_new_from_samples(nullptr, sample);
  EXPECT_NE(h, nullptr);
  if (f.number >= 0) {
    codes_set_long(h, "productDefinitionTemplateNumber", 1);
    codes_set_long(h, "typeOfEnsembleForecast", 3);
    codes_set_long(h, "numberOfForecastsInEnsemble", 10);
  }
  codes_set_long(h, "Ni", f.ni);
  codes_set_long(h, "Nj", f.nj);
  codes_set_long(h, "jScansPositively", f.south_first ? 1 : 0);
  codes_set_double(h, "latitudeOfFirstGridPointInDegrees", f.south_first ? -60 : 60);
  codes_set_double(h, "latitudeOfLastGridPointInDegrees", f.south_first ? 60 : -60);
  codes_set_double(h, "longitudeOfFirstGridPointInDegrees", 0);
  codes_set_double(h, "longitudeOfLastGridPointInDegrees", 90.0 * (f.ni - 1));
  codes_set_double(h, "iDirectionIncrementInDegrees", 90);
  codes_set_double(h, "jDirectionIncrementInDegrees", 120.0 / (f.nj - 1));
  size_t len = std::strlen(f.short_name);
  codes_set_string(h, "shortName", f.short_name, &len);
  len = std::strlen(f.level_type);
  codes_set_string(h, "typeOfLevel", f.level_type, &len);
  codes_set_long(h, "level", f.level);
  codes_set_long(h, "dataDate", f.date);
  codes_set_long(h, "dataTime", f.time);
  codes_set_long(h, "step", f.step);
  if (f.number >= 0) codes_set_long(h, "number", f.number);
  std::vector<double> v(f.ni * f.nj);
  for (long j = 0; j < f.nj; ++j)
    for (long i = 0; i < f.ni; ++i) v[j * f.ni + i] = 100.0 * j + i;
  EXPECT_EQ(codes_set_double_array(h, "values", v.data(), v.size()), CODES_SUCCESS);
  return Encoded(h);
}

// A sample as ecCodes ships it.
std::string SampleMessage(const char* sample) {
  codes_handle* h = codes_grib_handle_new_from_samples(nullptr, sample);
  EXPECT_NE(h, nullptr);
  return Encoded(h);
}

std::string TempDir(const char* name) {
  auto dir = std::filesystem::temp_directory_path() /
             (std::string("jigsaw-grib-test-") + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

void WriteFile(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

TEST(GribIndex, NamesEachMessageWithItsPlaceAndValidityTime) {
  const std::string a = Message({}), b = Message({.level = 850, .time = 1200, .step = 6}),
                    c = Message({.short_name = "2t", .level_type = "heightAboveGround", .level = 2});
  // Bytes that are not GRIB between messages are skipped, as ecCodes' tools do.
  auto index = ScanGrib("f.grib", a + "junk" + b + c);
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  ASSERT_EQ(index->messages.size(), 3u);
  const GribMessage& m = index->messages[1];
  EXPECT_EQ(m.number, 2);
  EXPECT_EQ(m.offset, static_cast<int64_t>(a.size() + 4));
  EXPECT_EQ(m.length, static_cast<int64_t>(b.size()));
  EXPECT_EQ(m.short_name, "t");
  EXPECT_EQ(m.level_type, "isobaricInhPa");
  EXPECT_EQ(m.level, 850);
  EXPECT_EQ(m.time, 1577880000 + 6 * 3600 - 0);  // 2020-01-01T12 + 6 h
  EXPECT_EQ(m.member, -1);
  EXPECT_EQ(index->messages[2].short_name, "2t");
  EXPECT_EQ(index->grid.ni, 4);
  EXPECT_EQ(index->grid.nj, 3);
  EXPECT_EQ(index->grid.lat_first, 60);
  EXPECT_EQ(index->grid.Describe(), "regular_ll 3x4 (latitude 60 to -60, longitude 0 to 270)");
  EXPECT_EQ(m.Describe(), "message 2 (t on isobaricInhPa 850 at 2020-01-01T18:00:00)");
  // The cached form reads back the same.
  auto back = DecodeGribIndex(EncodeGribIndex(*index));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->grid, index->grid);
  ASSERT_EQ(back->messages.size(), 3u);
  EXPECT_EQ(back->messages[1].offset, m.offset);
  EXPECT_EQ(back->messages[1].time, m.time);
  EXPECT_EQ(back->messages[2].level_type, "heightAboveGround");
  EXPECT_FALSE(DecodeGribIndex(nlohmann::json{{"jigsaw_grib_index", 99}}).ok());
  EXPECT_FALSE(DecodeGribIndex(nlohmann::json::object()).ok());
}

TEST(GribIndex, RefusesOtherGridsNamingTheMessage) {
  auto mixed = ScanGrib("f.grib", Message({}) + Message({.level = 850, .ni = 5}));
  ASSERT_FALSE(mixed.ok());
  EXPECT_EQ(mixed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(mixed.status().message().find("message 2 (t on isobaricInhPa 850 at 2020-01-01T00:00:00) is on the "
                                          "grid regular_ll 3x5"),
            std::string::npos)
      << mixed.status().ToString();
  auto reduced = ScanGrib("g.grib", SampleMessage("reduced_gg_pl_32_grib2"));
  ASSERT_FALSE(reduced.ok());
  EXPECT_EQ(reduced.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(reduced.status().message().find("reduced_gg grid"), std::string::npos)
      << reduced.status().ToString() << "|";
  EXPECT_FALSE(ScanGrib("empty.grib", "").ok());
  auto none = ScanGrib("text.grib", "plain text, no message");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no GRIB message"), std::string::npos) << none.status().ToString();
  // "GRIB" starts a message for ecCodes: what follows is then a damaged one.
  auto damaged = ScanGrib("text.grib", "not a GRIB file at all");
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(damaged.status().message().find("text.grib: message 1 cannot be read"), std::string::npos);
}

TEST(GribIndex, CacheIsUsedUntilTheFileChanges) {
  const std::string dir = TempDir("cache"), path = dir + "/f.grib", cache = dir + "/cache";
  WriteFile(path, Message({}) + Message({.level = 850}));
  bool from_cache = true;
  auto first = LoadGribIndex(path, cache, &from_cache);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE(from_cache);
  auto second = LoadGribIndex(path, cache, &from_cache);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(from_cache);
  EXPECT_EQ(second->messages.size(), 2u);
  EXPECT_EQ(second->path, path);
  // Another file's content under the same name: rebuilt (size and modification time differ).
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  WriteFile(path, Message({}) + Message({.level = 850}) + Message({.level = 250}));
  auto third = LoadGribIndex(path, cache, &from_cache);
  ASSERT_TRUE(third.ok());
  EXPECT_FALSE(from_cache);
  EXPECT_EQ(third->messages.size(), 3u);
  // A damaged entry is rebuilt; a cache that cannot be written is skipped.
  for (const auto& e : std::filesystem::directory_iterator(cache)) WriteFile(e.path().string(), "{\"broken");
  auto fourth = LoadGribIndex(path, cache, &from_cache);
  ASSERT_TRUE(fourth.ok()) << fourth.status().ToString();
  EXPECT_FALSE(from_cache);
  WriteFile(dir + "/file", "x");
  EXPECT_TRUE(LoadGribIndex(path, dir + "/file/cache", &from_cache).ok());
  EXPECT_FALSE(LoadGribIndex(dir + "/absent.grib", cache).ok());
  std::filesystem::remove_all(dir);
}

TEST(GribSource, ReadsCanonicallyAndNamesWhatIsMissing) {
  const std::string dir = TempDir("source"), path = dir + "/f.grib";
  ::setenv("JIGSAW_CACHE_DIR", (dir + "/cache").c_str(), 1);
  // t at 850 and 500 at 00 UTC, only 500 at 06 UTC; scanned south to north.
  WriteFile(path, Message({.level = 850, .south_first = true}) + Message({.south_first = true}) +
                      Message({.time = 600, .south_first = true}));
  auto src = OpenGribSource(path);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  const Source& s = **src;
  EXPECT_EQ(s.grid().latitude, (std::vector<double>{60, 0, -60}));
  EXPECT_EQ(s.times().size(), 2u);
  const VariableInfo* t = s.FindVariable("t");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->levels, (std::vector<double>{500, 850}));
  const int64_t both[] = {1, 0};
  std::vector<float> out(2 * 12);
  ASSERT_TRUE(s.Read("temperature", 0, both, out.data()).ok());
  // Canonical row 0 is the north, the source's last row (j = 2): values 200 + i.
  EXPECT_EQ(out[0], 200);
  EXPECT_EQ(out[3], 203);
  EXPECT_EQ(out[8], 0);
  EXPECT_EQ(out[12], 200);
  EXPECT_EQ(s.Lacks("temperature", 0, both), "");
  EXPECT_EQ(s.Lacks("temperature", 1, both),
            path + ": no message for t (temperature) at 850 hPa at 2020-01-01T06:00:00");
  EXPECT_EQ(s.Read("temperature", 1, both, out.data()).code(), StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

TEST(GribSource, AnEnsembleNeedsAMember) {
  const std::string dir = TempDir("members"), path = dir + "/ens.grib";
  ::setenv("JIGSAW_CACHE_DIR", (dir + "/cache").c_str(), 1);
  WriteFile(path, Message({.number = 0}) + Message({.number = 1}) + Message({.number = 2}));
  auto refused = OpenGribSource(path);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("\"number\" (0, 1, 2): choose one with --member N"), std::string::npos)
      << refused.status().ToString();
  EXPECT_FALSE(OpenGribSource(path, {.member = 7}).ok());
  auto one = OpenGribSource(path, {.member = 2});
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ((*one)->times().size(), 1u);
  // One member in the file: no choice needed; another member than it is refused.
  WriteFile(path, Message({.number = 5}));
  EXPECT_TRUE(OpenGribSource(path).ok());
  EXPECT_TRUE(OpenGribSource(path, {.member = 5}).ok());
  EXPECT_FALSE(OpenGribSource(path, {.member = 4}).ok());
  std::filesystem::remove_all(dir);
}

TEST(Names, GribShortNamesAndLevelTypes) {
  EXPECT_EQ(GribVariableOf("t", "isobaricInhPa").name, "temperature");
  EXPECT_TRUE(GribVariableOf("t", "isobaricInPa").pressure);
  EXPECT_EQ(GribVariableOf("z", "isobaricInhPa").name, "geopotential");
  EXPECT_EQ(GribVariableOf("z", "surface").name, "geopotential_at_surface");
  EXPECT_FALSE(GribVariableOf("z", "surface").pressure);
  EXPECT_EQ(GribVariableOf("2t", "heightAboveGround").name, "2m_temperature");
  EXPECT_EQ(GribVariableOf("10u", "heightAboveGround").name, "10m_u_component_of_wind");
  EXPECT_EQ(GribVariableOf("10v", "heightAboveGround").name, "10m_v_component_of_wind");
  EXPECT_EQ(GribVariableOf("msl", "meanSea").name, "mean_sea_level_pressure");
  EXPECT_EQ(GribVariableOf("lsm", "surface").name, "land_sea_mask");
  EXPECT_EQ(GribVariableOf("slt", "surface").name, "soil_type");
  EXPECT_EQ(GribVariableOf("tcwv", "entireAtmosphere").name, "total_column_water_vapour");
  EXPECT_EQ(GribVariableOf("t", "hybrid").name, "");
  EXPECT_EQ(RoleOfDimension("number"), DimRole::kMember);
  EXPECT_EQ(RoleOfDimension("realization"), DimRole::kMember);
  EXPECT_EQ(RoleOfDimension("expver"), DimRole::kOther);
}

TEST(Names, MemberIndexByCoordinateValue) {
  const double members[] = {0, 5, 10};
  EXPECT_EQ(*MemberIndex("s", "number", members, {.member = 10}), 2);
  auto none = MemberIndex("s", "number", members, {});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().message(),
            "s: an ensemble: dimension \"number\" has 3 members (0, 5, 10): choose one "
            "with --member N, or --members all");
  EXPECT_EQ(*MemberIndex("s", "number", members, {.member = std::nullopt, .first_member = true}), 0);
  auto absent = MemberIndex("s", "realization", members, {.member = 4});
  ASSERT_FALSE(absent.ok());
  EXPECT_EQ(absent.status().message(), "s: no member 4 along \"realization\" (it has 0, 5, 10)");
  const double one[] = {3};
  EXPECT_EQ(*MemberIndex("s", "number", one, {}), 0);
}

}  // namespace
}  // namespace jigsaw
