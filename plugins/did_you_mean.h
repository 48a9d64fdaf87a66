// "Did you mean ...?" for config errors: the known name closest to a misspelled one (a plugin name,
// a config message type, a field), so an error can say what the user most likely meant.
#ifndef HUBLINK_PLUGINS_DID_YOU_MEAN_H_
#define HUBLINK_PLUGINS_DID_YOU_MEAN_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace hublink {

// Edits (insert, delete, substitute, swap two neighbours) between `a` and `b`, ignoring ASCII case.
size_t EditDistance(absl::string_view a, absl::string_view b);

// The candidate closest to `word`, when it is close enough to be a slip rather than another name:
// equal ignoring case, or within max(1, size/4) edits (so "quic" is not taken for "tcp"). Empty
// when none is. Ties go to the first candidate.
std::string ClosestMatch(absl::string_view word, const std::vector<std::string>& candidates);

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_DID_YOU_MEAN_H_
