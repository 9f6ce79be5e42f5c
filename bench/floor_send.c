/* floor_send: the minimal sender the benchmark compares udpcat against.
 *
 *   floor_send [--chunk N] [--mmsg] [--keep-newline] HOST PORT < input
 *
 * Default: one sendto() per stdin line (read with getline), the line sent without its '\n'
 * (with --keep-newline, with it: for receivers such as socat and nc that add nothing).
 * --chunk N: stdin cut into fixed N-byte datagrams, the last one shorter.
 * --mmsg (with --chunk): 32 datagrams per sendmmsg() call: the batching-only floor that
 * segmentation offload is measured against.
 * The socket is connected once, so each datagram costs exactly one sendto() system call and
 * "port unreachable" is noticed (exit 4). Prints "floor_send: N datagrams, B bytes" on stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int send_one(int fd, const char *buf, size_t len) {
    for (;;) {
        if (sendto(fd, buf, len, 0, NULL, 0) >= 0) return 0;
        if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN) continue;
        perror("floor_send: sendto");
        exit(errno == ECONNREFUSED ? 4 : 1);
    }
}

#define BATCH 32

/* Sends n datagrams of bufs[i], lens[i] with as few sendmmsg calls as it takes. */
static void send_batch(int fd, char **bufs, size_t *lens, int n) {
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int k = 0; k < n; k++) {
        iov[k].iov_base = bufs[k];
        iov[k].iov_len = lens[k];
        msgs[k].msg_hdr.msg_iov = &iov[k];
        msgs[k].msg_hdr.msg_iovlen = 1;
    }
    int done = 0;
    while (done < n) {
        int r = sendmmsg(fd, msgs + done, n - done, 0);
        if (r < 0) {
            if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN) continue;
            perror("floor_send: sendmmsg");
            exit(errno == ECONNREFUSED ? 4 : 1);
        }
        done += r;
    }
}

int main(int argc, char **argv) {
    long chunk = 0;
    int keep_nl = 0, mmsg = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        if (!strcmp(argv[i], "--chunk") && i + 1 < argc) chunk = atol(argv[++i]);
        else if (!strcmp(argv[i], "--keep-newline")) keep_nl = 1;
        else if (!strcmp(argv[i], "--mmsg")) mmsg = 1;
        else { fprintf(stderr, "floor_send: unknown option %s\n", argv[i]); return 2; }
    }
    if (argc - i != 2 || chunk < 0 || chunk > 65507 || (mmsg && !chunk)) {
        fprintf(stderr, "usage: floor_send [--chunk N [--mmsg]] [--keep-newline] HOST PORT < input\n");
        return 2;
    }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[i + 1]))};
    if (inet_pton(AF_INET, argv[i], &to.sin_addr) != 1) {
        fprintf(stderr, "floor_send: bad IPv4 address %s\n", argv[i]);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof to) < 0) {
        perror("floor_send: socket/connect");
        return 1;
    }
    unsigned long long n = 0, bytes = 0;
    if (chunk && mmsg) {
        char *bufs[BATCH];
        size_t lens[BATCH];
        for (int k = 0; k < BATCH; k++) bufs[k] = malloc(chunk);
        int end = 0;
        while (!end) {
            int k = 0;
            for (; k < BATCH; k++) {
                size_t got = 0;
                while (got < (size_t)chunk) {
                    ssize_t r = read(0, bufs[k] + got, chunk - got);
                    if (r < 0 && errno == EINTR) continue;
                    if (r < 0) { perror("floor_send: read"); return 1; }
                    if (r == 0) break;
                    got += r;
                }
                if (got == 0) { end = 1; break; }
                lens[k] = got;
                n++, bytes += got;
                if (got < (size_t)chunk) { end = 1; k++; break; }
            }
            if (k > 0) send_batch(fd, bufs, lens, k);
        }
    } else if (chunk) {
        char *buf = malloc(chunk);
        for (;;) {
            size_t got = 0;
            while (got < (size_t)chunk) {
                ssize_t r = read(0, buf + got, chunk - got);
                if (r < 0 && errno == EINTR) continue;
                if (r < 0) { perror("floor_send: read"); return 1; }
                if (r == 0) break;
                got += r;
            }
            if (got == 0) break;
            send_one(fd, buf, got);
            n++, bytes += got;
            if (got < (size_t)chunk) break;
        }
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while ((len = getline(&line, &cap, stdin)) >= 0) {
            if (!keep_nl && len > 0 && line[len - 1] == '\n') len--;
            send_one(fd, line, len);
            n++, bytes += len;
        }
    }
    fprintf(stderr, "floor_send: %llu datagrams, %llu bytes\n", n, bytes);
    return 0;
}
