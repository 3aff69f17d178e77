// A controller that exists for tests only, to show that a controller is added by one file: it
// registers itself below and nothing else names it. It marks every SecurityProfile with the
// annotation test.mentat.io/observed, reading profiles from the manager's informer cache,
// which holds them only because this controller declares the kind.
#include "controllers/registry.h"

namespace mentat {
namespace {

constexpr char kObserved[] = "test.mentat.io/observed";

class ProfileAnnotator : public Reconciler {
 public:
  ProfileAnnotator(Store* store, const ObjectCache* cache) : store_(store), cache_(cache) {}

  std::string Name() const override { return "test-profile-annotator"; }
  WatchedKinds Kinds() const override { return {"SecurityProfile", {}, {}}; }

  std::vector<std::string> KeysFor(const WatchEvent& event) override {
    if (event.type == EventType::kDeleted) return {};
    return {NameOf(event.object)};
  }

  Result<std::vector<std::string>> AllKeys() override {
    std::vector<std::string> keys;
    for (const auto& p : cache_->List("SecurityProfile")) keys.push_back(NameOf(*p));
    return keys;
  }

  Result<ReconcileResult> Reconcile(const std::string& name) override {
    ObjectPtr profile = cache_->Get("SecurityProfile", "", name);
    if (!profile) return ReconcileResult{};
    const Json& annotations = (*profile)["metadata"].value("annotations", Json::object());
    if (annotations.contains(kObserved)) return ReconcileResult{};
    Json update = *profile;
    update["metadata"]["annotations"][kObserved] = "true";
    WriteOptions wo;
    wo.expected_revision = ResourceVersionOf(*profile);  // a conflict is retried
    MT_RETURN_IF_ERROR(store_->Put(update, wo));
    return ReconcileResult{};
  }

 private:
  Store* store_;
  const ObjectCache* cache_;
};

}  // namespace

MENTAT_REGISTER_CONTROLLER(test_profile_annotator,
                           [](const ControllerContext& ctx) -> ReconcilerPtr {
                             return std::make_unique<ProfileAnnotator>(ctx.store, ctx.cache);
                           });

}  // namespace mentat
