#include "apis/server/admission.h"

namespace mentat {

Status Admission::Admit(Json& object, const SourceMap& marks) {
  const KindInfo* kind = KindNamed(object.value("kind", ""));
  if (!kind || !kind->admit) return {};
  return kind->admit(object, marks, *this);
}

Result<std::vector<Json>> Admission::Stored(const std::string& kind) {
  MT_ASSIGN_OR_RETURN(auto list, store_->List(kind, {}));
  return std::move(list.items);
}

}  // namespace mentat
