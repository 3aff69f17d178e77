// mt base build / mt base list: the sandbox's bases on this machine (docs/sandbox.md). They talk
// to no server: a base is built where it is used, from the recipes compiled into mt.
#include <chrono>
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cmd/mt/commands.h"
#include "cmd/mt/output.h"
#include "cmd/mt/table.h"
#include "runtimes/sandbox/bases.h"

namespace mentat::mt {
namespace {

std::string HumanSize(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

int Build(const BaseFlags& f) {
  auto before = ListBases(f.dir);
  std::string previous;
  if (before) {
    for (const auto& b : *before) {
      if (b.name == f.name) previous = b.rootfs;
    }
  }
  auto start = std::chrono::steady_clock::now();
  Result<BaseInfo> base = Internal("not built");
  if (f.force) {
    auto recipe = KnownBaseRecipe(f.name);
    if (!recipe) return PrintError(recipe.error());
    EnsureBaseOptions o;
    o.force_rebuild = true;
    base = EnsureBaseFromRecipe(f.dir, *recipe, o);
  } else {
    base = EnsureBase(f.dir, f.name);
  }
  if (!base) return PrintError(base.error());
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  if (base->rootfs == previous) {
    std::cout << base->name << " is up to date: " << base->version << ", "
              << HumanSize(base->size_bytes) << ", built " << base->built_at << "\n";
  } else {
    char took[32];
    if (ms < 1000) {
      std::snprintf(took, sizeof(took), "%lld ms", static_cast<long long>(ms));
    } else {
      std::snprintf(took, sizeof(took), "%.1f s", ms / 1000.0);
    }
    std::cout << "built " << base->name << ": " << base->version << ", "
              << HumanSize(base->size_bytes) << " in " << took << "\n";
  }
  std::cout << "rootfs: " << base->rootfs << "\n";
  return kExitOk;
}

int List(const BaseFlags& f) {
  auto bases = ListBases(f.dir);
  if (!bases) return PrintError(bases.error());
  if (bases->empty()) {
    std::string known;
    for (const auto& n : KnownBases()) known += (known.empty() ? "" : ", ") + n;
    std::cerr << "No bases built in " << f.dir << " (mt base build NAME; known: " << known
              << ").\n";
    return kExitOk;
  }
  Table t({"NAME", "VERSION", "SIZE", "BUILT"});
  for (const auto& b : *bases) t.Add({b.name, b.version, HumanSize(b.size_bytes), b.built_at});
  std::cout << t.Render();
  return kExitOk;
}

}  // namespace

std::string KnownBaseNames() {
  std::string out;
  for (const auto& n : KnownBases()) out += (out.empty() ? "" : ", ") + n;
  return out;
}

int RunBase(const BaseFlags& f) {
  if (f.action == "build") return Build(f);
  return List(f);
}

Command AddBaseCommand(CLI::App& app) {
  auto f = std::make_shared<BaseFlags>();
  f->dir = kDefaultBasesDir;
  auto* base = app.add_subcommand("base", "build or list the sandbox's bases on this machine");
  base->require_subcommand(1);
  auto* build = base->add_subcommand(
      "build", "build a base from its recipe, unless it is built and up to date");
  build->add_option("name", f->name, "the base: " + KnownBaseNames())->required();
  build->add_option("--dir", f->dir, "where bases live")->capture_default_str();
  build->add_flag("--force", f->force, "rebuild even when up to date");
  auto* list = base->add_subcommand("list", "the bases built on this machine");
  list->add_option("--dir", f->dir, "where bases live")->capture_default_str();
  return {.cli = base, .offline = [f, build] {
            f->action = build->parsed() ? "build" : "list";
            return RunBase(*f);
          }};
}

}  // namespace mentat::mt
