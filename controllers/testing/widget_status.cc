// A controller that exists for tests only, to show that a controller is added by one file: it
// registers itself below and nothing else names it. It reconciles the test-only Widget kind
// (apis/testing/widget_kind.cc), writing each widget's status: its area (size squared) and the
// generation it describes. It reads widgets from the manager's informer cache, which holds them
// only because this controller declares the kind.
#include "controllers/registry.h"

namespace mentat {
namespace {

class WidgetStatus : public Reconciler {
 public:
  WidgetStatus(Store* store, const ObjectCache* cache) : store_(store), cache_(cache) {}

  std::string Name() const override { return "test-widget-status"; }
  WatchedKinds Kinds() const override { return {"Widget", {}, {}}; }

  std::vector<std::string> KeysFor(const WatchEvent& event) override {
    if (event.type == EventType::kDeleted) return {};
    return {NamespaceOf(event.object) + "/" + NameOf(event.object)};
  }

  Result<std::vector<std::string>> AllKeys() override {
    std::vector<std::string> keys;
    for (const auto& w : cache_->List("Widget")) keys.push_back(NamespaceOf(*w) + "/" + NameOf(*w));
    return keys;
  }

  Result<ReconcileResult> Reconcile(const std::string& key) override {
    const auto slash = key.find('/');
    ObjectPtr widget = cache_->Get("Widget", key.substr(0, slash), key.substr(slash + 1));
    if (!widget) return ReconcileResult{};
    const int64_t generation = (*widget)["metadata"].value("generation", int64_t{0});
    const int size = (*widget)["spec"].value("size", 0);
    const Json status = {{"area", size * size}, {"observedGeneration", generation}};
    if (widget->value("status", Json::object()) == status) return ReconcileResult{};
    Json update = *widget;
    update["status"] = status;
    WriteOptions wo;
    wo.expected_revision = ResourceVersionOf(*widget);  // a conflict is retried
    MT_RETURN_IF_ERROR(store_->UpdateStatus(update, wo));
    return ReconcileResult{};
  }

 private:
  Store* store_;
  const ObjectCache* cache_;
};

}  // namespace

MENTAT_REGISTER_CONTROLLER(test_widget_status,
                           [](const ControllerContext& ctx) -> ReconcilerPtr {
                             return std::make_unique<WidgetStatus>(ctx.store, ctx.cache);
                           });

}  // namespace mentat
