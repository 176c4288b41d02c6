// The floor under the write-cost row: one 1-byte send(2) on loopback with TCP_NODELAY, timed
// as bench/workloads/write-cost.mjs times write(): batches of 10,000 sends, the receiver drained
// between batches (same thread), median ns per send over 100 batches after 10 warm-up ones.
// No runtime, no JS: what any implementation that sends on every write() pays at least. Then the
// cost of a system call that does nothing, the part of the floor that is entering the kernel.
//   cc -O2 -o /tmp/send-floor bench/tools/send-floor.c && /tmp/send-floor
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
static int cmp(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }
int main(void) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t n = sizeof a;
  bind(l, (void *)&a, sizeof a); listen(l, 1); getsockname(l, (void *)&a, &n);
  int c = socket(AF_INET, SOCK_STREAM, 0);
  connect(c, (void *)&a, sizeof a);
  int s = accept(l, 0, 0), one = 1;
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(s, F_SETFL, O_NONBLOCK); fcntl(c, F_SETFL, O_NONBLOCK);
  char b = 'x', buf[65536];
  double r[100];
  for (int k = 0; k < 110; k++) {
    double t0 = now();
    for (int i = 0; i < 10000; i++) if (send(c, &b, 1, 0) != 1) { fprintf(stderr, "short\n"); return 1; }
    double t = (now() - t0) / 10000;
    if (k >= 10) r[k - 10] = t;
    while (recv(s, buf, sizeof buf, 0) > 0) {}
  }
  qsort(r, 100, sizeof r[0], cmp);
  printf("send(2) 1 byte, TCP_NODELAY, loopback: median %.0f ns\n", r[50]);
  // The part of that which is entering and leaving the kernel at all: a system call that does
  // nothing (getppid), timed the same way.
  for (int k = 0; k < 110; k++) {
    double t0 = now();
    for (int i = 0; i < 10000; i++) syscall(SYS_getppid);
    double t = (now() - t0) / 10000;
    if (k >= 10) r[k - 10] = t;
  }
  qsort(r, 100, sizeof r[0], cmp);
  printf("getppid(2), the cost of any system call: median %.0f ns\n", r[50]);
  return 0;
}
