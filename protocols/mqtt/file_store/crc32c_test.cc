#include "protocols/mqtt/file_store/crc32c.h"

#include <cstdint>
#include <random>
#include <string>

#include "gtest/gtest.h"

namespace hublink {
namespace mqtt {
namespace {

TEST(Crc32cTest, CheckValue) {
  EXPECT_EQ(crc32c::Value("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c::ExtendPortable(0, "123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c::Value(""), 0u);
}

// RFC 3720 (iSCSI), appendix B.4.
TEST(Crc32cTest, Rfc3720Vectors) {
  std::string zeros(32, '\0');
  std::string ones(32, '\xff');
  std::string ascending(32, '\0');
  std::string descending(32, '\0');
  for (int i = 0; i < 32; ++i) {
    ascending[i] = static_cast<char>(i);
    descending[i] = static_cast<char>(31 - i);
  }
  for (auto crc :
       {+[](const std::string& s) { return crc32c::Value(s); },
        +[](const std::string& s) { return crc32c::ExtendPortable(0, s.data(), s.size()); }}) {
    EXPECT_EQ(crc(zeros), 0x8A9136AAu);
    EXPECT_EQ(crc(ones), 0x62A8AB43u);
    EXPECT_EQ(crc(ascending), 0x46DD794Eu);
    EXPECT_EQ(crc(descending), 0x113FDB5Cu);
  }
}

TEST(Crc32cTest, HardwareAndTableAgreeAtEveryLengthAndAlignment) {
  std::mt19937 rng(42);
  std::string data(300, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t start = 0; start < 9; ++start) {
    for (size_t len = 0; start + len <= data.size(); ++len) {
      ASSERT_EQ(crc32c::Extend(0, data.data() + start, len),
                crc32c::ExtendPortable(0, data.data() + start, len))
          << start << " " << len << " hw=" << crc32c::HardwareAccelerated();
    }
  }
}

TEST(Crc32cTest, ExtendComposes) {
  const std::string a = "hello, ";
  const std::string b = "segment world";
  EXPECT_EQ(crc32c::Extend(crc32c::Value(a), b.data(), b.size()), crc32c::Value(a + b));
  EXPECT_EQ(
      crc32c::ExtendPortable(crc32c::ExtendPortable(0, a.data(), a.size()), b.data(), b.size()),
      crc32c::Value(a + b));
}

}  // namespace
}  // namespace mqtt
}  // namespace hublink
