#include "apis/artifacts/archive_testing.h"

#include <archive.h>
#include <gtest/gtest.h>
#include <sys/sysmacros.h>

#include <fstream>

#include "apis/sha256.h"

namespace mentat {
namespace {

struct archive* OpenWriter(const std::string& path, ArchiveFilter filter) {
  struct archive* a = archive_write_new();
  if (filter == ArchiveFilter::kGzip) archive_write_add_filter_gzip(a);
  if (filter == ArchiveFilter::kZstd) {
    EXPECT_EQ(archive_write_add_filter_zstd(a), ARCHIVE_OK);
  }
  archive_write_set_format_pax_restricted(a);
  EXPECT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK) << path;
  return a;
}

bool Close(struct archive* a) {
  bool ok = archive_write_close(a) == ARCHIVE_OK;
  archive_write_free(a);
  EXPECT_TRUE(ok);
  return ok;
}

}  // namespace

std::filesystem::path FreshTestDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::filesystem::path dir = std::filesystem::path(tmp ? tmp : "/tmp") /
                              ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

bool WriteTestArchive(const std::string& path, const std::vector<ArchiveMember>& entries,
                      ArchiveFilter filter) {
  struct archive* a = OpenWriter(path, filter);
  for (const auto& e : entries) {
    archive_entry* en = archive_entry_new();
    archive_entry_set_pathname(en, e.name.c_str());
    archive_entry_set_filetype(en, e.type);
    archive_entry_set_perm(en, e.perm);
    if (!e.link.empty()) archive_entry_set_symlink(en, e.link.c_str());
    if (!e.hardlink.empty()) archive_entry_set_hardlink(en, e.hardlink.c_str());
    if (e.type == AE_IFCHR) archive_entry_set_rdev(en, makedev(1, 3));
    if (e.type == AE_IFREG && e.hardlink.empty()) {
      archive_entry_set_size(en, e.declared >= 0 ? e.declared : e.content.size());
    }
    archive_write_header(a, en);
    if (!e.content.empty()) archive_write_data(a, e.content.data(), e.content.size());
    archive_entry_free(en);
  }
  return Close(a);
}

bool WriteZeroBomb(const std::string& path, uint64_t file_bytes, int files, ArchiveFilter filter) {
  struct archive* a = OpenWriter(path, filter);
  const std::string zeros(1 << 20, '\0');
  for (int i = 0; i < files; ++i) {
    archive_entry* en = archive_entry_new();
    archive_entry_set_pathname(en, ("zeros-" + std::to_string(i)).c_str());
    archive_entry_set_filetype(en, AE_IFREG);
    archive_entry_set_perm(en, 0644);
    archive_entry_set_size(en, static_cast<la_int64_t>(file_bytes));
    archive_write_header(a, en);
    for (uint64_t left = file_bytes; left > 0;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(left, zeros.size()));
      archive_write_data(a, zeros.data(), n);
      left -= n;
    }
    archive_entry_free(en);
  }
  return Close(a);
}

std::string IncompressibleBytes(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    s[i] = static_cast<char>(seed >> 24);
  }
  return s;
}

std::string ArchiveServer::Add(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::string digest = Sha256::Of(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  files_[digest] = path;
  return digest;
}

Status ArchiveServer::Serve(const std::string& digest,
                            const std::function<bool(const char*, size_t)>& on_data) {
  std::string path;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(digest);
    if (it == files_.end()) return MakeError(Code::kNotFound, digest + " is not on this server");
    path = it->second;
    ++served_;
  }
  if (hook_) hook_(digest);
  std::ifstream f(path, std::ios::binary);
  std::string buf(1 << 16, '\0');
  while (f.read(buf.data(), buf.size()) || f.gcount() > 0) {
    if (!on_data(buf.data(), static_cast<size_t>(f.gcount()))) return {};
  }
  return {};
}

int ArchiveServer::served() const {
  std::lock_guard<std::mutex> lock(mu_);
  return served_;
}

}  // namespace mentat
