/* floor_echo: minimal UDP echo server (recvfrom, sendto back), for the round-trip scenario.
 *
 *   floor_echo [--ready-file PATH] HOST PORT
 *
 * Prints "listening on HOST:PORT" on stderr once bound (PORT 0 picks a free port); runs until
 * SIGTERM/SIGINT.
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

int main(int argc, char **argv) {
    const char *ready = NULL;
    int i = 1;
    if (i + 1 < argc && !strcmp(argv[i], "--ready-file")) ready = argv[i + 1], i += 2;
    if (argc - i != 2) {
        fprintf(stderr, "usage: floor_echo [--ready-file PATH] HOST PORT\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[i + 1]))};
    if (inet_pton(AF_INET, argv[i], &addr.sin_addr) != 1) return 2;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("floor_echo: bind");
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
        if (!f || fprintf(f, "%s\n", name) < 0 || fclose(f) != 0 || rename(tmp, ready) < 0) return 1;
    }
    fprintf(stderr, "listening on %s\n", name);
    static char buf[65536];
    for (;;) {
        struct sockaddr_storage from;
        socklen_t flen = sizeof from;
        ssize_t len = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
        if (len < 0) {
            if (errno == EINTR) continue;
            perror("floor_echo: recvfrom");
            return 1;
        }
        sendto(fd, buf, len, 0, (struct sockaddr *)&from, flen);
    }
}
