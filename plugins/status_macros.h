// Early-return helpers for absl::Status. Debian's Abseil (20220623) predates ABSL_RETURN_IF_ERROR,
// so the project keeps this one local equivalent instead of a copy per file.
#ifndef HUBLINK_PLUGINS_STATUS_MACROS_H_
#define HUBLINK_PLUGINS_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define HUBLINK_STATUS_CONCAT_INNER_(a, b) a##b
#define HUBLINK_STATUS_CONCAT_(a, b) HUBLINK_STATUS_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the enclosing function when it is not OK.
#define HUBLINK_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::absl::Status hublink_status_ = (expr);           \
    if (!hublink_status_.ok()) return hublink_status_; \
  } while (0)

// `lhs = value of expr` when `expr` (an absl::StatusOr) holds a value, else returns its status.
#define HUBLINK_ASSIGN_OR_RETURN(lhs, expr) \
  HUBLINK_ASSIGN_OR_RETURN_IMPL_(HUBLINK_STATUS_CONCAT_(hublink_or_, __LINE__), lhs, expr)
#define HUBLINK_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return std::move(tmp).status();       \
  lhs = std::move(tmp).value()

namespace hublink {

// Returns `status` with `prefix: ` in front of its message, keeping its code.
absl::Status Annotate(const absl::Status& status, absl::string_view prefix);

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_STATUS_MACROS_H_
