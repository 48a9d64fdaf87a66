// Typed access to what a plugin object offers beyond its base interface, without dynamic_cast.
//
// Some callers need more than Signer::Sign() or the Protocol callbacks: hublink::Client drives an
// mqtt::Session, `hublink sign --connid --expiry` calls TencentSigner::SignWith(). They ask the
// object, by an interface id, instead of casting:
//
//   if (auto* tencent = signer->As<hublink::auth::TencentSigner>()) {
//     absl::StatusOr<hublink::Credentials> c = tencent->SignWith(connid, expiry);
//   }
//
// Why not dynamic_cast: a plugin loaded from a shared object (plugin_libraries, --plugin) may carry
// its own copy of a class's type_info (hidden visibility, RTLD_LOCAL), so dynamic_cast can fail
// for an object that does derive from the class; it also lets any subclass be taken for its base
// by accident. An interface id is a string compared by value, so it works across shared objects,
// and an object offers an interface only by saying so (a decorator may offer the interface of the
// object it wraps).
//
// An interface T is any class with a unique id; an object that implements it answers for it:
//
//   class MySigner : public hublink::Signer {  // out of tree, or in a .so
//    public:
//     static constexpr absl::string_view kInterfaceId = "mycompany.MySigner";
//     absl::StatusOr<hublink::Credentials> Sign(const hublink::SignRequest& request) override;
//     void Rotate();  // what callers reach through As<MySigner>()
//
//    protected:
//     void* FindInterface(absl::string_view id) override {
//       return hublink::OfferInterface<MySigner>(this, id);  // or: the base class's answer
//     }
//   };
//
//   // With a ResolvedPipeline whose signer is "mysigner":
//   if (auto* mine = (*pipeline)->signer()->As<MySigner>()) mine->Rotate();
//
// Ids are "<namespace>.<Class>" by convention (hublink's start with "hublink."). As<T>() returns
// null when the object does not offer T; callers turn that into an error naming what they needed.
// Adding an interface to a class is source-compatible; changing FindInterface's signature is an ABI
// change (plugins/plugin_abi.h).
#ifndef HUBLINK_PLUGINS_TYPED_ACCESS_H_
#define HUBLINK_PLUGINS_TYPED_ACCESS_H_

#include "absl/strings/string_view.h"

namespace hublink {

// Base of the plugin object interfaces that offer typed access (Signer, Protocol).
class TypedAccess {
 public:
  virtual ~TypedAccess() = default;

  // This object as T, or null when it does not offer T. T names its id in T::kInterfaceId.
  template <typename T>
  T* As() {
    return static_cast<T*>(FindInterface(T::kInterfaceId));
  }
  template <typename T>
  const T* As() const {
    return static_cast<const T*>(const_cast<TypedAccess*>(this)->FindInterface(T::kInterfaceId));
  }

 protected:
  // A pointer to the T subobject of this object when `id` is T::kInterfaceId for an interface T it
  // offers (use OfferInterface, which converts to T* first), else null. The default offers nothing.
  virtual void* FindInterface(absl::string_view id) {
    (void)id;
    return nullptr;
  }
};

// For FindInterface overrides: `self` (as a T*) when `id` is T's id, else null.
template <typename T>
void* OfferInterface(T* self, absl::string_view id) {
  return id == T::kInterfaceId ? static_cast<void*>(self) : nullptr;
}

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_TYPED_ACCESS_H_
