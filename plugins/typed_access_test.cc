#include "plugins/typed_access.h"

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "plugins/signer.h"

namespace hublink {
namespace {

// An interface a plugin object may offer, as an out-of-tree plugin would declare one.
class Rotating {
 public:
  static constexpr absl::string_view kInterfaceId = "test.Rotating";
  virtual ~Rotating() = default;
  virtual int Rotate() = 0;
};

class Named {
 public:
  static constexpr absl::string_view kInterfaceId = "test.Named";
  virtual ~Named() = default;
  virtual absl::string_view Name() const = 0;
};

class Plain : public TypedAccess {};

// Rotating is the second base, so a correct answer must adjust the pointer: a cast through void*
// from the wrong type would point at the TypedAccess subobject instead.
class RotatingObject : public TypedAccess, public Rotating {
 public:
  int Rotate() override { return ++rotations; }
  int rotations = 0;

 protected:
  void* FindInterface(absl::string_view id) override { return OfferInterface<Rotating>(this, id); }
};

// A subclass that adds an interface and falls back to its base for the others.
class NamedRotatingObject : public RotatingObject, public Named {
 public:
  absl::string_view Name() const override { return "named"; }

 protected:
  void* FindInterface(absl::string_view id) override {
    if (void* found = OfferInterface<Named>(this, id)) return found;
    return RotatingObject::FindInterface(id);
  }
};

// The example of typed_access.h, as an out-of-tree signer would write it.
class MySigner : public Signer {
 public:
  static constexpr absl::string_view kInterfaceId = "mycompany.MySigner";
  absl::StatusOr<Credentials> Sign(const SignRequest& request) override { return Credentials(); }
  void Rotate() { ++rotations; }
  int rotations = 0;

 protected:
  void* FindInterface(absl::string_view id) override { return OfferInterface<MySigner>(this, id); }
};

class PlainSigner : public Signer {
 public:
  absl::StatusOr<Credentials> Sign(const SignRequest& request) override { return Credentials(); }
};

TEST(TypedAccessTest, TheHeaderExampleReachesItsSignerAndNoOther) {
  std::unique_ptr<Signer> mine = std::make_unique<MySigner>();
  if (auto* signer = mine->As<MySigner>()) signer->Rotate();
  EXPECT_EQ(static_cast<MySigner&>(*mine).rotations, 1);
  std::unique_ptr<Signer> plain = std::make_unique<PlainSigner>();
  EXPECT_EQ(plain->As<MySigner>(), nullptr);
}

TEST(TypedAccessTest, AnObjectOffersNothingByDefault) {
  Plain plain;
  TypedAccess& object = plain;
  EXPECT_EQ(object.As<Rotating>(), nullptr);
  EXPECT_EQ(static_cast<const TypedAccess&>(object).As<Named>(), nullptr);
}

TEST(TypedAccessTest, AsReturnsTheOfferedSubobject) {
  RotatingObject rotating;
  TypedAccess& object = rotating;
  Rotating* as_rotating = object.As<Rotating>();
  ASSERT_EQ(as_rotating, static_cast<Rotating*>(&rotating));
  EXPECT_EQ(as_rotating->Rotate(), 1);
  EXPECT_EQ(rotating.rotations, 1);
  EXPECT_EQ(object.As<Named>(), nullptr);
}

TEST(TypedAccessTest, ConstAccess) {
  NamedRotatingObject named;
  const TypedAccess& object = static_cast<RotatingObject&>(named);
  const Named* as_named = object.As<Named>();
  ASSERT_EQ(as_named, static_cast<const Named*>(&named));
  EXPECT_EQ(as_named->Name(), "named");
}

TEST(TypedAccessTest, ASubclassKeepsItsBaseClassInterfaces) {
  NamedRotatingObject named;
  TypedAccess& object = static_cast<RotatingObject&>(named);
  EXPECT_EQ(object.As<Named>(), static_cast<Named*>(&named));
  EXPECT_EQ(object.As<Rotating>(), static_cast<Rotating*>(&named));
}

}  // namespace
}  // namespace hublink
