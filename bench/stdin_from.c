/* stdin_from: run CMD with FILE as its stdin, without a shell.
 *
 *   stdin_from FILE CMD [ARG...]
 *
 * The start-up scenario runs every contestant through it under `hyperfine -N`, so each pays
 * the same one extra exec and none pays for a shell (hyperfine 1.15 has no --input).
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: stdin_from FILE CMD [ARG...]\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0 || dup2(fd, 0) < 0) {
        perror(argv[1]);
        return 126;
    }
    if (fd != 0) close(fd);
    execvp(argv[2], argv + 2);
    perror(argv[2]);
    return 127;
}
