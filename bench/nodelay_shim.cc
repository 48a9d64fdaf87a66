// LD_PRELOAD shim: sets TCP_NODELAY on every TCP socket right after connect()
// (blocking or not), for clients such as Paho C that never set it themselves
// and then pay Nagle + delayed-ACK stalls on request/response traffic. Built as
// a shared object (cc_binary linkshared).
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

extern "C" int connect(int fd, const struct sockaddr* address, socklen_t length) {
  using ConnectFn = int (*)(int, const struct sockaddr*, socklen_t);
  static ConnectFn real_connect = reinterpret_cast<ConnectFn>(dlsym(RTLD_NEXT, "connect"));
  int saved_errno;
  int rc = real_connect(fd, address, length);
  saved_errno = errno;
  if ((rc == 0 || saved_errno == EINPROGRESS) && address != nullptr &&
      (address->sa_family == AF_INET || address->sa_family == AF_INET6)) {
    int type = 0;
    socklen_t type_length = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_length) == 0 && type == SOCK_STREAM) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
  }
  errno = saved_errno;
  return rc;
}
