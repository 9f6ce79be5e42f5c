/* floor_recv: the minimal receiver the benchmark compares udpcat against.
 *
 *   floor_recv [--count N] [--idle-ms MS] [--raw] [--mmsg] [--ready-file PATH] HOST PORT > output
 *
 * A plain recvfrom() loop on a socket whose receive buffer is set to 8 MiB (SO_RCVBUFFORCE
 * first, SO_RCVBUF if that is not permitted). Each datagram goes to stdout through one 1 MiB
 * stdio buffer, followed by '\n' unless --raw. Stops after N datagrams, or after MS
 * milliseconds without a datagram (default 30000), or on SIGTERM/SIGINT (flushing first).
 * PORT 0 picks a free port; the real "HOST:PORT" is written to PATH (write, then rename) and
 * "listening on HOST:PORT" to stderr. Prints "floor_recv: N datagrams, B bytes" on exit.
 * --mmsg: up to 32 datagrams per recvmmsg() call (MSG_WAITFORONE), into 32 64 KiB buffers:
 * the batching-only floor that segmentation offload is measured against.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define TICK_MS 5 /* flush this soon after the stream pauses */

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
    unsigned long long count = 0;
    long idle_ms = 30000;
    int raw = 0, mmsg = 0;
    const char *ready = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        if (!strcmp(argv[i], "--count") && i + 1 < argc) count = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--idle-ms") && i + 1 < argc) idle_ms = atol(argv[++i]);
        else if (!strcmp(argv[i], "--raw")) raw = 1;
        else if (!strcmp(argv[i], "--mmsg")) mmsg = 1;
        else if (!strcmp(argv[i], "--ready-file") && i + 1 < argc) ready = argv[++i];
        else { fprintf(stderr, "floor_recv: unknown option %s\n", argv[i]); return 2; }
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: floor_recv [--count N] [--idle-ms MS] [--raw] [--mmsg] [--ready-file PATH] HOST PORT\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[i + 1]))};
    if (inet_pton(AF_INET, argv[i], &addr.sin_addr) != 1) {
        fprintf(stderr, "floor_recv: bad IPv4 address %s\n", argv[i]);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int size = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    struct timeval tick = {.tv_sec = 0, .tv_usec = TICK_MS * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("floor_recv: bind");
        return 1;
    }
    socklen_t alen = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &alen);
    char name[64];
    snprintf(name, sizeof name, "%s:%d", argv[i], ntohs(addr.sin_port));
    if (ready) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", ready);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%s\n", name) < 0 || fclose(f) != 0 || rename(tmp, ready) < 0) {
            perror("floor_recv: ready file");
            return 1;
        }
    }
    fprintf(stderr, "listening on %s\n", name);

    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: recvfrom returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    static char outbuf[1 << 20];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    /* One receive per turn: a recvfrom into bufs[0], or (--mmsg) a recvmmsg of up to 32. */
    static char bufs[32][65536];
    struct mmsghdr msgs[32];
    struct iovec iov[32];
    unsigned long long n = 0, bytes = 0;
    long idle = 0;
    int status = 0;
    while (!stop && (!count || n < count)) {
        int r;
        if (mmsg) {
            memset(msgs, 0, sizeof msgs);
            for (int k = 0; k < 32; k++) {
                iov[k].iov_base = bufs[k];
                iov[k].iov_len = sizeof bufs[k];
                msgs[k].msg_hdr.msg_iov = &iov[k];
                msgs[k].msg_hdr.msg_iovlen = 1;
            }
            r = recvmmsg(fd, msgs, 32, MSG_WAITFORONE, NULL);
        } else {
            ssize_t len = recvfrom(fd, bufs[0], sizeof bufs[0], 0, NULL, NULL);
            r = len < 0 ? -1 : 1;
            msgs[0].msg_len = len < 0 ? 0 : (unsigned)len;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                fflush(stdout);
                if ((idle += TICK_MS) >= idle_ms) { status = 3; break; }
                continue;
            }
            if (errno == EINTR) continue;
            perror(mmsg ? "floor_recv: recvmmsg" : "floor_recv: recvfrom");
            status = 1;
            break;
        }
        idle = 0;
        for (int k = 0; k < r; k++) {
            fwrite(bufs[k], 1, msgs[k].msg_len, stdout);
            if (!raw) putchar('\n');
            n++, bytes += msgs[k].msg_len;
        }
    }
    fflush(stdout);
    fprintf(stderr, "floor_recv: %llu datagrams, %llu bytes\n", n, bytes);
    return stop ? 143 : status;
}
