/* floor_ping: minimal request/response client for the round-trip scenario.
 *
 *   floor_ping HOST PORT < lines > replies
 *
 * For each stdin line (without its '\n'): one send, then one recv of the reply (2 s timeout),
 * written to stdout with '\n' through a stdio buffer. One request in flight at a time.
 * Exit 3 if a reply did not come.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: floor_ping HOST PORT < lines\n");
        return 2;
    }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) return 2;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) < 0) {
        perror("floor_ping: connect");
        return 1;
    }
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    static char buf[65536];
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned long long missing = 0;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') len--;
        if (send(fd, line, len, 0) < 0) {
            perror("floor_ping: send");
            return errno == ECONNREFUSED ? 4 : 1;
        }
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) { missing++; continue; }
            perror("floor_ping: recv");
            return errno == ECONNREFUSED ? 4 : 1;
        }
        fwrite(buf, 1, r, stdout);
        putchar('\n');
    }
    if (fflush(stdout) != 0) return 1;
    if (missing) fprintf(stderr, "floor_ping: %llu replies missing\n", missing);
    return missing ? 3 : 0;
}
