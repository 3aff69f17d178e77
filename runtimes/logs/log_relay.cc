#include "runtimes/logs/log_relay.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>

namespace mentat {

void RunLogRelay(int out_fd, int err_fd, TaskLogWriter* writer,
                 const std::function<void(const std::string&)>& on_error) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  static char buf[1 << 16];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      on_error(std::string("poll: ") + std::strerror(errno));
      return;
    }
    for (int i = 0; i < 2; ++i) {
      // POLLHUP with data still buffered: read on until read says end of file.
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;  // poll skips a negative descriptor
        continue;
      }
      if (!writer) continue;
      auto st = writer->Append(static_cast<LogStream>(i), std::string_view(buf, static_cast<size_t>(n)));
      if (!st) on_error(st.error().message());
    }
  }
}

}  // namespace mentat
