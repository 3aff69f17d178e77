// lazyfs: a FUSE pass-through filesystem that keeps file data in memory until the application
// syncs it, so that a test can simulate a power loss (the approach of Jepsen's LazyFS). This
// kernel has no device-mapper, hence no dm-flakey; FUSE is what it has.
//
//   lazyfs BACKING_DIR MOUNTPOINT      (foreground; needs root and /dev/fuse)
//
// Every data write goes into per-file dirty 4 KiB pages, not to BACKING_DIR. fsync/fdatasync of
// a file writes its dirty pages to the backing file and fsyncs it. close() does not: it never
// made data durable. Reads and getattr see the dirty data (sizes include unsynced appends).
//
//   SIGUSR1          power loss: every unsynced byte is discarded, the mount goes away, and
//                    lazyfs exits 0. BACKING_DIR then holds exactly what was synced.
//   SIGTERM/SIGINT   clean unmount: dirty data is written back first, as a real kernel would.
//
// Limitations of the model (it loses *data*, not directory entries):
//   - create, mkdir, rename, unlink, rmdir, link, symlink, chmod, chown, utimens and truncate go
//     straight to BACKING_DIR and so survive the power loss even if never synced.
//   - At a power cut every unsynced page is lost; none is torn, and none is written back early
//     (a real disk may persist some unsynced pages, or half of one).
//   - A sync writes the file's dirty pages back under one global lock, so no write lands while
//     a sync is running, which narrows the window in which a write is in flight.
//   - syncfs(2)/sync(2) do not reach FUSE filesystems, so only fsync/fdatasync make data durable.
//   - fallocate is not supported (EOPNOTSUPP); applications fall back to plain writes.
#include <dirent.h>
#include <fcntl.h>
#include <fuse3/fuse.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr uint64_t kPageSize = 4096;

// Unsynced data of one backing file, keyed in `files` by the backing inode number, so that a
// rename keeps it with the file (RocksDB writes CURRENT as a temp file and renames it).
struct FileState {
  int fd = -1;        // a writable descriptor of the backing file, to write back on fsync
  uint64_t size = 0;  // the size the application sees, unsynced appends included
  std::map<uint64_t, std::vector<char>> pages;  // page index -> kPageSize bytes
};

struct LazyFs {
  std::string backing;
  std::string mountpoint;
  std::mutex mu;  // guards everything below; FUSE calls and the power cut take it
  std::map<ino_t, FileState> files;
  bool powered_off = false;
  uint64_t synced_bytes = 0;
};

LazyFs g;

std::string Backing(const char* path) { return g.backing + path; }

// An open file: the backing descriptor (O_RDWR whenever the application may write).
int Fd(const fuse_file_info* fi) { return static_cast<int>(fi->fh); }

ino_t InoOf(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return 0;
  return st.st_ino;
}

ssize_t PreadFull(int fd, char* buf, size_t len, off_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, buf + done, len - done, off + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) break;
    done += n;
  }
  return done;
}

bool PwriteFull(int fd, const char* buf, size_t len, off_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pwrite(fd, buf + done, len - done, off + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += n;
  }
  return true;
}

// The file's dirty state, created from the backing file on first use. Caller holds g.mu.
FileState* StateFor(int fd, int* err) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    *err = -errno;
    return nullptr;
  }
  auto it = g.files.find(st.st_ino);
  if (it != g.files.end()) return &it->second;
  FileState s;
  s.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (s.fd < 0) {
    *err = -errno;
    return nullptr;
  }
  s.size = st.st_size;
  return &g.files.emplace(st.st_ino, std::move(s)).first->second;
}

FileState* FindState(ino_t ino) {
  auto it = g.files.find(ino);
  return it == g.files.end() ? nullptr : &it->second;
}

// Applies a truncate to the backing file at once (a documented limitation) and to the dirty
// pages. Caller holds g.mu.
int TruncateLocked(int fd, off_t size) {
  if (ftruncate(fd, size) != 0) return -errno;
  FileState* s = FindState(InoOf(fd));
  if (!s) return 0;
  uint64_t first_gone = (size + kPageSize - 1) / kPageSize;
  s->pages.erase(s->pages.lower_bound(first_gone), s->pages.end());
  if (size % kPageSize) {
    auto it = s->pages.find(size / kPageSize);
    if (it != s->pages.end()) {
      std::memset(it->second.data() + size % kPageSize, 0, kPageSize - size % kPageSize);
    }
  }
  s->size = size;
  return 0;
}

// Writes a file's dirty pages to the backing file and syncs it. Caller holds g.mu.
int WriteBackLocked(ino_t ino, bool datasync) {
  auto it = g.files.find(ino);
  if (it == g.files.end()) return 0;
  FileState& s = it->second;
  for (const auto& [index, page] : s.pages) {
    uint64_t off = index * kPageSize;
    if (off >= s.size) continue;
    size_t len = std::min<uint64_t>(kPageSize, s.size - off);
    if (!PwriteFull(s.fd, page.data(), len, off)) return -errno;
    g.synced_bytes += len;
  }
  struct stat st;
  if (fstat(s.fd, &st) != 0) return -errno;
  // An extension by a write beyond the end (a hole) has no page at the end.
  if (static_cast<uint64_t>(st.st_size) != s.size && ftruncate(s.fd, s.size) != 0) return -errno;
  if ((datasync ? fdatasync(s.fd) : fsync(s.fd)) != 0) return -errno;
  close(s.fd);
  g.files.erase(it);
  return 0;
}

void* Init(fuse_conn_info* conn, fuse_config* cfg) {
  // No kernel caching of data or attributes: every read, write and stat reaches lazyfs.
  cfg->direct_io = 1;
  cfg->kernel_cache = 0;
  cfg->attr_timeout = 0;
  cfg->entry_timeout = 0;
  cfg->negative_timeout = 0;
  cfg->use_ino = 1;
  cfg->hard_remove = 1;  // unlink at once, no .fuse_hidden files
  cfg->nullpath_ok = 1;  // operations on open files use the descriptor, never the path
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  return nullptr;
}

void Destroy(void*) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.powered_off) return;
  // A clean unmount writes dirty data back, as a real kernel does.
  while (!g.files.empty()) {
    ino_t ino = g.files.begin()->first;
    if (WriteBackLocked(ino, false) != 0) {
      close(g.files.begin()->second.fd);
      g.files.erase(g.files.begin());
    }
  }
}

int GetAttr(const char* path, struct stat* st, fuse_file_info* fi) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.powered_off) return -EIO;
  int r = fi ? fstat(Fd(fi), st) : lstat(Backing(path).c_str(), st);
  if (r != 0) return -errno;
  if (S_ISREG(st->st_mode)) {
    if (FileState* s = FindState(st->st_ino)) {
      st->st_size = s->size;
      st->st_blocks = (s->size + 511) / 512;
    }
  }
  return 0;
}

int Access(const char* path, int mask) {
  return access(Backing(path).c_str(), mask) == 0 ? 0 : -errno;
}

int ReadLink(const char* path, char* buf, size_t size) {
  ssize_t n = readlink(Backing(path).c_str(), buf, size - 1);
  if (n < 0) return -errno;
  buf[n] = '\0';
  return 0;
}

// Directory and attribute changes go straight to the backing directory (see the limitations
// above), but not once the power is out. Returns 0 or -errno of `op`.
template <class F>
int WhilePowered(F op) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.powered_off) return -EIO;
  return op() == 0 ? 0 : -errno;
}

int MkNod(const char* path, mode_t mode, dev_t rdev) {
  return WhilePowered([&] { return mknod(Backing(path).c_str(), mode, rdev); });
}

int MkDir(const char* path, mode_t mode) {
  return WhilePowered([&] { return mkdir(Backing(path).c_str(), mode); });
}

int Unlink(const char* path) {
  return WhilePowered([&] { return unlink(Backing(path).c_str()); });
}

int RmDir(const char* path) {
  return WhilePowered([&] { return rmdir(Backing(path).c_str()); });
}

int SymLink(const char* target, const char* path) {
  return WhilePowered([&] { return symlink(target, Backing(path).c_str()); });
}

int Rename(const char* from, const char* to, unsigned int flags) {
  return WhilePowered([&] {
    return renameat2(AT_FDCWD, Backing(from).c_str(), AT_FDCWD, Backing(to).c_str(), flags);
  });
}

int Link(const char* from, const char* to) {
  return WhilePowered([&] { return link(Backing(from).c_str(), Backing(to).c_str()); });
}

int ChMod(const char* path, mode_t mode, fuse_file_info* fi) {
  return WhilePowered(
      [&] { return fi ? fchmod(Fd(fi), mode) : chmod(Backing(path).c_str(), mode); });
}

int ChOwn(const char* path, uid_t uid, gid_t gid, fuse_file_info* fi) {
  return WhilePowered(
      [&] { return fi ? fchown(Fd(fi), uid, gid) : lchown(Backing(path).c_str(), uid, gid); });
}

int UTimens(const char* path, const timespec ts[2], fuse_file_info* fi) {
  return WhilePowered([&] {
    return fi ? futimens(Fd(fi), ts)
              : utimensat(AT_FDCWD, Backing(path).c_str(), ts, AT_SYMLINK_NOFOLLOW);
  });
}

int Truncate(const char* path, off_t size, fuse_file_info* fi) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.powered_off) return -EIO;
  if (fi) return TruncateLocked(Fd(fi), size);
  int fd = open(Backing(path).c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int r = TruncateLocked(fd, size);
  close(fd);
  return r;
}

// The backing file is opened for reading and writing whenever the application may write: a
// partially written page is first read from it. O_APPEND and O_DIRECT stay out of the backing
// open (lazyfs writes at explicit offsets, in whole pages); O_TRUNC is applied by lazyfs.
int BackingFlags(int flags) {
  int out = flags & ~(O_ACCMODE | O_APPEND | O_DIRECT | O_TRUNC);
  out |= (flags & O_ACCMODE) == O_RDONLY ? O_RDONLY : O_RDWR;
  return out | O_CLOEXEC;
}

int OpenCommon(int fd, fuse_file_info* fi) {
  if ((fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY) {
    int r = TruncateLocked(fd, 0);
    if (r != 0) {
      close(fd);
      return r;
    }
  }
  fi->fh = fd;
  fi->direct_io = 1;
  fi->keep_cache = 0;
  return 0;
}

int Open(const char* path, fuse_file_info* fi) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.powered_off) return -EIO;
  int fd = open(Backing(path).c_str(), BackingFlags(fi->flags));
  if (fd < 0) return -errno;
  return OpenCommon(fd, fi);
}

int Create(const char* path, mode_t mode, fuse_file_info* fi) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.powered_off) return -EIO;
  int fd = open(Backing(path).c_str(), BackingFlags(fi->flags) | O_CREAT, mode);
  if (fd < 0) return -errno;
  return OpenCommon(fd, fi);
}

int Read(const char*, char* buf, size_t size, off_t off, fuse_file_info* fi) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.powered_off) return -EIO;
  int fd = Fd(fi);
  FileState* s = FindState(InoOf(fd));
  if (!s) {
    ssize_t n = PreadFull(fd, buf, size, off);
    return n < 0 ? -errno : static_cast<int>(n);
  }
  if (static_cast<uint64_t>(off) >= s->size) return 0;
  size = std::min<uint64_t>(size, s->size - off);
  // Page by page: dirty pages from memory, the rest from the backing file (zeros past its end,
  // where unsynced writes left a hole).
  size_t done = 0;
  while (done < size) {
    uint64_t pos = off + done;
    uint64_t index = pos / kPageSize, in_page = pos % kPageSize;
    size_t len = std::min<uint64_t>(kPageSize - in_page, size - done);
    auto it = s->pages.find(index);
    if (it != s->pages.end()) {
      std::memcpy(buf + done, it->second.data() + in_page, len);
    } else {
      ssize_t n = PreadFull(fd, buf + done, len, pos);
      if (n < 0) return -errno;
      std::memset(buf + done + n, 0, len - n);
    }
    done += len;
  }
  return static_cast<int>(done);
}

int Write(const char*, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.powered_off) return -EIO;
  int err = 0;
  FileState* s = StateFor(Fd(fi), &err);
  if (!s) return err;
  size_t done = 0;
  while (done < size) {
    uint64_t pos = off + done;
    uint64_t index = pos / kPageSize, in_page = pos % kPageSize;
    size_t len = std::min<uint64_t>(kPageSize - in_page, size - done);
    auto it = s->pages.find(index);
    if (it == s->pages.end()) {
      std::vector<char> page(kPageSize, 0);
      // What the application would read there now: the backing file, cut at the current size.
      uint64_t page_off = index * kPageSize;
      if (page_off < s->size) {
        size_t want = std::min<uint64_t>(kPageSize, s->size - page_off);
        if (PreadFull(s->fd, page.data(), want, page_off) < 0) return -errno;
      }
      it = s->pages.emplace(index, std::move(page)).first;
    }
    std::memcpy(it->second.data() + in_page, buf + done, len);
    done += len;
  }
  s->size = std::max<uint64_t>(s->size, off + size);
  return static_cast<int>(size);
}

int StatFs(const char* path, struct statvfs* st) {
  return statvfs(Backing(path).c_str(), st) == 0 ? 0 : -errno;
}

// close() makes nothing durable: flush and release keep the dirty pages.
int Flush(const char*, fuse_file_info*) { return 0; }

int Release(const char*, fuse_file_info* fi) {
  close(Fd(fi));
  return 0;
}

int FSync(const char*, int datasync, fuse_file_info* fi) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.powered_off) return -EIO;
  int fd = Fd(fi);
  ino_t ino = InoOf(fd);
  if (FindState(ino)) return WriteBackLocked(ino, datasync != 0);
  return (datasync ? fdatasync(fd) : fsync(fd)) == 0 ? 0 : -errno;
}

int OpenDir(const char* path, fuse_file_info* fi) {
  DIR* d = opendir(Backing(path).c_str());
  if (!d) return -errno;
  fi->fh = reinterpret_cast<uint64_t>(d);
  return 0;
}

int ReadDir(const char*, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info* fi,
            fuse_readdir_flags) {
  DIR* d = reinterpret_cast<DIR*>(fi->fh);
  rewinddir(d);
  while (dirent* e = readdir(d)) {
    struct stat st {};
    st.st_ino = e->d_ino;
    st.st_mode = DTTOIF(e->d_type);
    if (fill(buf, e->d_name, &st, 0, static_cast<fuse_fill_dir_flags>(0))) break;
  }
  return 0;
}

int ReleaseDir(const char*, fuse_file_info* fi) {
  closedir(reinterpret_cast<DIR*>(fi->fh));
  return 0;
}

// Directory entries already went to the backing directory; syncing it is still honest.
int FSyncDir(const char*, int datasync, fuse_file_info* fi) {
  int fd = dirfd(reinterpret_cast<DIR*>(fi->fh));
  return WhilePowered([&] { return datasync ? fdatasync(fd) : fsync(fd); });
}

int FAllocate(const char*, int, off_t, off_t, fuse_file_info*) { return -EOPNOTSUPP; }

// SIGUSR1: the power goes out. Unsynced data is dropped under the lock, so an fsync either
// completed before (its data is in the backing file) or fails after; then the mount goes.
void PowerCutOnSignal(fuse* f) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  int sig = 0;
  sigwait(&set, &sig);
  uint64_t bytes = 0;
  size_t files = 0;
  {
    std::lock_guard<std::mutex> lock(g.mu);
    g.powered_off = true;
    for (auto& [ino, s] : g.files) {
      for (const auto& [index, page] : s.pages) {
        uint64_t off = index * kPageSize;
        if (off < s.size) bytes += std::min<uint64_t>(kPageSize, s.size - off);
      }
      ++files;
      close(s.fd);
    }
    g.files.clear();
  }
  std::fprintf(stderr,
               "lazyfs: power cut: discarded %llu bytes of unsynced pages in %zu files "
               "(%llu bytes were synced before)\n",
               static_cast<unsigned long long>(bytes), files,
               static_cast<unsigned long long>(g.synced_bytes));
  std::fflush(stderr);
  fuse_exit(f);
  // A lazy unmount: the FUSE connection ends once the last open file on it is closed (the
  // killed application's), which ends fuse_loop.
  umount2(g.mountpoint.c_str(), MNT_DETACH);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: lazyfs BACKING_DIR MOUNTPOINT\n");
    return 2;
  }
  char real[PATH_MAX];
  if (!realpath(argv[1], real)) {
    std::fprintf(stderr, "lazyfs: %s: %s\n", argv[1], std::strerror(errno));
    return 1;
  }
  g.backing = real;
  g.mountpoint = argv[2];

  // SIGUSR1 is taken by the power-cut thread only: block it everywhere else.
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, nullptr);

  fuse_operations ops{};
  ops.init = Init;
  ops.destroy = Destroy;
  ops.getattr = GetAttr;
  ops.access = Access;
  ops.readlink = ReadLink;
  ops.mknod = MkNod;
  ops.mkdir = MkDir;
  ops.unlink = Unlink;
  ops.rmdir = RmDir;
  ops.symlink = SymLink;
  ops.rename = Rename;
  ops.link = Link;
  ops.chmod = ChMod;
  ops.chown = ChOwn;
  ops.utimens = UTimens;
  ops.truncate = Truncate;
  ops.open = Open;
  ops.create = Create;
  ops.read = Read;
  ops.write = Write;
  ops.statfs = StatFs;
  ops.flush = Flush;
  ops.release = Release;
  ops.fsync = FSync;
  ops.opendir = OpenDir;
  ops.readdir = ReadDir;
  ops.releasedir = ReleaseDir;
  ops.fsyncdir = FSyncDir;
  ops.fallocate = FAllocate;
  // No `lock`: the kernel then handles POSIX locks (RocksDB's LOCK file) locally.

  std::vector<const char*> fuse_argv = {argv[0], "-o", "fsname=lazyfs,subtype=lazyfs"};
  fuse_args args =
      FUSE_ARGS_INIT(static_cast<int>(fuse_argv.size()), const_cast<char**>(fuse_argv.data()));
  fuse* f = fuse_new(&args, &ops, sizeof(ops), nullptr);
  if (!f) return 1;
  if (fuse_mount(f, g.mountpoint.c_str()) != 0) {
    fuse_destroy(f);
    return 1;
  }
  if (fuse_set_signal_handlers(fuse_get_session(f)) != 0) {
    fuse_unmount(f);
    fuse_destroy(f);
    return 1;
  }
  std::fprintf(stderr, "lazyfs: %s mounted on %s\n", g.backing.c_str(), g.mountpoint.c_str());
  std::fflush(stderr);
  std::thread(PowerCutOnSignal, f).detach();

  // One thread serves every request: simple, and the global lock would serialize them anyway.
  int r = fuse_loop(f);
  fuse_remove_signal_handlers(fuse_get_session(f));
  bool cut;
  {
    std::lock_guard<std::mutex> lock(g.mu);
    cut = g.powered_off;
  }
  if (!cut) fuse_unmount(f);  // after a power cut the mount is already gone
  fuse_destroy(f);
  // fuse_loop returns the number of a signal that ended it, or a negative errno.
  std::fprintf(stderr, "lazyfs: unmounted (loop returned %d)\n", r);
  return r < 0 ? 1 : 0;
}
