// Minimal TCP echo server for the probe: measures the sandbox network's own round trip.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int port = atoi(argv[1]);
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  bind(s, (struct sockaddr *)&a, sizeof a);
  listen(s, 16);
  for (;;) {
    int c = accept(s, 0, 0);
    if (c < 0) continue;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fork() == 0) {
      char buf[4096];
      ssize_t n;
      while ((n = read(c, buf, sizeof buf)) > 0) write(c, buf, n);
      _exit(0);
    }
    close(c);
  }
}
